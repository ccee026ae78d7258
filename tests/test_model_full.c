/*
 * test_model_full.c — full-size ViT-B-32 parity (../shared/golden/full): the WEIGHTS.md formula
 * weights (seed 1) generated in memory, the 2 preprocessed images (golden/preprocess/<file>.f32)
 * and the 6 captions' tokens of expected.json; embeddings within 1e-5 (normalised) and 2e-4 (raw),
 * per-layer traces of image 0 / text 0 (sum within 1e-4 of sum_abs, first8 within 1e-4), and the
 * training-path forward (activations kept) giving the same features.
 */
#include <stdint.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "testlib.h"
#include "model/model.h"
#include "model/internal.h"


static void get_floats(const cJSON *arr, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = (float)cJSON_GetArrayItem(arr, i)->valuedouble;
}

static void check_trace(const cJSON *trace, const char *key, const float *x, size_t n) {
    const cJSON *t = cJSON_GetObjectItem(trace, key);
    if (!t) { CHECK(0, "trace %s missing", key); return; }
    double sum = 0, want = cJSON_GetObjectItem(t, "sum")->valuedouble, sabs = cJSON_GetObjectItem(t, "sum_abs")->valuedouble;
    for (size_t i = 0; i < n; i++) sum += x[i];
    CHECK(fabs(sum - want) <= 1e-4 * sabs, "trace %s: sum %.6g vs %.6g (sum_abs %.6g)", key, sum, want, sabs);
    float f8[8];
    get_floats(cJSON_GetObjectItem(t, "first8"), f8, 8);
    CHECK_CLOSE(x, f8, 8, 1e-4, key);
}

static void test_full_vitb32(void) {
    SHARED_OR_SKIP();
    cJSON *root = tl_read_golden_json("golden/full/expected.json");
    REQUIRE(root, "golden/full/expected.json unreadable or not JSON");
    CmModelConfig c;
    REQ_OK(cm_config_from_name("ViT-B-32", &c));
    c.has_lora = c.has_head = false;
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    cm_model_init_formula(m, 1);
    CHECK(fabs(m->logit_scale.data[0] - cJSON_GetObjectItem(root, "logit_scale")->valuedouble) < 1e-7, "logit_scale");

    const cJSON *images = cJSON_GetObjectItem(root, "images"), *texts = cJSON_GetObjectItem(root, "texts");
    int NI = cJSON_GetArraySize(images), NT = cJSON_GetArraySize(texts);
    REQUIRE(NI == 2 && NT == 6, "inputs %d %d", NI, NT);
    size_t isz = 3 * 224 * 224;
    float *img = malloc(NI * isz * sizeof(float));
    for (int k = 0; k < NI; k++) {
        const char *file = cJSON_GetObjectItem(cJSON_GetArrayItem(images, k), "file")->valuestring;
        const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
        char rel[256];
        snprintf(rel, sizeof rel, "golden/preprocess/%s.f32", base);
        uint8_t *b = NULL;
        size_t bl = 0;
        REQ_OK(cm_read_file(tl_shared(rel), 1u << 24, &b, &bl));
        REQUIRE(bl == isz * 4, "%s: %zu bytes", rel, bl);
        memcpy(img + k * isz, b, bl);
        cm_free(b);
    }
    int32_t tok[6 * 77];
    for (int k = 0; k < NT; k++) {
        const cJSON *tk = cJSON_GetObjectItem(cJSON_GetArrayItem(texts, k), "tokens");
        REQUIRE(cJSON_GetArraySize(tk) == 77, "tokens");
        for (int t = 0; t < 77; t++) tok[k * 77 + t] = (int32_t)cJSON_GetArrayItem(tk, t)->valuedouble;
    }
    float raw[6 * 512], feat[6 * 512], want[512];
    REQ_OK(cm_encode_image(m, img, NI, raw, feat));
    for (int k = 0; k < NI; k++) {
        const cJSON *e = cJSON_GetArrayItem(images, k);
        char w[64];
        get_floats(cJSON_GetObjectItem(e, "embedding"), want, 512);
        snprintf(w, sizeof w, "image %d embedding", k);
        CHECK_CLOSE(feat + k * 512, want, 512, 1e-5, w);
        get_floats(cJSON_GetObjectItem(e, "embedding_raw"), want, 512);
        snprintf(w, sizeof w, "image %d embedding_raw", k);
        CHECK_CLOSE(raw + k * 512, want, 512, 2e-4, w);
    }
    REQ_OK(cm_encode_text(m, tok, NT, raw, feat));
    for (int k = 0; k < NT; k++) {
        const cJSON *e = cJSON_GetArrayItem(texts, k);
        char w[64];
        get_floats(cJSON_GetObjectItem(e, "embedding"), want, 512);
        snprintf(w, sizeof w, "text %d embedding", k);
        CHECK_CLOSE(feat + k * 512, want, 512, 1e-5, w);
        get_floats(cJSON_GetObjectItem(e, "embedding_raw"), want, 512);
        snprintf(w, sizeof w, "text %d embedding_raw", k);
        CHECK_CLOSE(raw + k * 512, want, 512, 2e-4, w);
    }

    /* captions 0..3 alone (pools 12, 13, 6, 1): the text tower runs on 14 tokens, same results */
    REQ_OK(cm_encode_text(m, tok, 4, raw, feat));
    for (int k = 0; k < 4; k++) {
        get_floats(cJSON_GetObjectItem(cJSON_GetArrayItem(texts, k), "embedding"), want, 512);
        CHECK_CLOSE(feat + k * 512, want, 512, 1e-5, "short-batch text embedding");
        get_floats(cJSON_GetObjectItem(cJSON_GetArrayItem(texts, k), "embedding_raw"), want, 512);
        CHECK_CLOSE(raw + k * 512, want, 512, 2e-4, "short-batch text embedding_raw");
    }

    /* per-layer traces of image 0 and text 0 through a tower that keeps every block */
    const cJSON *trace = cJSON_GetObjectItem(root, "trace");
    for (int vis = 1; vis >= 0; vis--) {
        TowerSpec s;
        cm_tower_spec(m, vis, &s);
        s.keep_all_tokens = true;   /* the trace covers all 77 text positions */
        TowerActs ta;
        REQ_OK(cm_tower_acts_alloc(&ta, &s, 1, TA_SAVE));
        cm_tower_forward(m, &s, &ta, vis ? img : NULL, vis ? NULL : tok, 1);
        size_t n = (size_t)s.T * s.D;
        char key[64];
        if (vis) check_trace(trace, "image0.ln_pre", ta.xin[0], n);
        for (int l = 0; l < s.L; l++) {
            snprintf(key, sizeof key, "%s0.resblocks.%d", vis ? "image" : "text", l);
            check_trace(trace, key, l + 1 < s.L ? ta.xin[l + 1] : ta.x_last, n);
        }
        cm_tower_acts_free(&ta);
    }

    /* the training path (activations kept, full mode) gives the same normalised features */
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, false, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, 2, true, &a));
    float U[2 * 512], V[2 * 512];
    REQ_OK(cm_model_forward(m, a, img, tok, 2, false, U, V, NULL));
    for (int k = 0; k < 2; k++) {
        get_floats(cJSON_GetObjectItem(cJSON_GetArrayItem(images, k), "embedding"), want, 512);
        CHECK_CLOSE(U + k * 512, want, 512, 1e-5, "acts image embedding");
        get_floats(cJSON_GetObjectItem(cJSON_GetArrayItem(texts, k), "embedding"), want, 512);
        CHECK_CLOSE(V + k * 512, want, 512, 1e-5, "acts text embedding");
    }
    cm_acts_free(a);
    free(img);
    cm_model_free(m);
    cJSON_Delete(root);
}

int main(void) {
    cm_threads_set(0);
    RUN(test_full_vitb32);
    return tl_summary("test_model_full");
}
