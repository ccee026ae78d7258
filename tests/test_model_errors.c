/*
 * test_model_errors.c — loading, saving and bad input for the model core: save/load round trip
 * (config from the file's metadata), strict-loading errors that name the missing / unexpected /
 * mis-shaped / non-float / non-finite tensor, token and label range errors, misuse of the
 * forward/backward API, head dropout (seeded, off in eval, finite-difference gradient check with
 * dropout on), and --lock-image.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include "testlib.h"
#include "model/model.h"
#include "io/tensorfile.h"


static CmModelConfig g_cfg;
static CmTensorFile *g_in;
static int32_t g_tok[8 * 77], g_lab[8];
static const float *g_img;

static int setup(void) {
    if (g_in) return 1;
    if (cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &g_cfg)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/inputs.safetensors"), &g_in)) return 0;
    int64_t t[8 * 77], l[8];
    if (cm_tensor_to_i64(cm_tensorfile_find(g_in, "tokens"), t) || cm_tensor_to_i64(cm_tensorfile_find(g_in, "labels"), l)) return 0;
    for (int i = 0; i < 8 * 77; i++) g_tok[i] = (int32_t)t[i];
    for (int i = 0; i < 8; i++) g_lab[i] = (int32_t)l[i];
    g_img = cm_tensorfile_find(g_in, "images")->data;
    return 1;
}

static CmModel *tiny(void) {
    CmModel *m = NULL;
    if (cm_model_create(&g_cfg, &m)) return NULL;
    if (cm_model_load_file(m, tl_shared("golden/tiny/model.safetensors"), CM_LOAD_STRICT, 0)) { cm_model_free(m); return NULL; }
    return m;
}

/* Write the tiny model's tensors with one change: drop `drop`, add `extra`, reshape `reshape`. */
static void write_variant(const CmModel *m, const char *path, const char *drop, const char *extra, const char *reshape,
                          CmDType extra_dtype, const char *nan_in) {
    CmTensorOut *ts = calloc((size_t)m->n_params + 1, sizeof *ts);
    float *nanbuf = NULL;
    int n = 0;
    static float extra_data[4] = {1, 2, 3, 4};
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        if (drop && !strcmp(p->name, drop)) continue;
        CmTensorOut *t = &ts[n++];
        t->name = p->name;
        t->dtype = CM_F32;
        t->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t->shape[d] = p->shape[d];
        t->data = p->data;
        if (reshape && !strcmp(p->name, reshape)) t->shape[0] -= 1;
        if (nan_in && !strcmp(p->name, nan_in)) {
            nanbuf = malloc(p->numel * sizeof(float));
            memcpy(nanbuf, p->data, p->numel * sizeof(float));
            nanbuf[p->numel / 2] = NAN;
            t->data = nanbuf;
        }
    }
    if (extra) {
        CmTensorOut *t = &ts[n++];
        t->name = extra;
        t->dtype = extra_dtype;
        t->ndim = 1;
        t->shape[0] = 4;
        t->data = extra_data;
    }
    cm_status st = cm_safetensors_write(path, ts, n, NULL, 0);
    CHECK(st == CM_OK, "write %s: %s", path, cm_last_error());
    free(ts);
    free(nanbuf);
}

static void test_save_roundtrip(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup: %s", cm_last_error());
    CmModel *m = tiny();
    REQUIRE(m, "load: %s", cm_last_error());
    const char *path = tl_tmp("rt.safetensors");
    REQ_OK(cm_model_save(m, path, false, NULL, 0));
    CmModel *m2 = NULL;
    REQ_OK(cm_model_from_file(path, NULL, CM_LOAD_STRICT, 0, &m2));   /* config from the metadata */
    CHECK(m2->cfg.vision.heads == 2 && m2->cfg.head.ff == 128 && m2->cfg.has_lora && m2->cfg.has_head, "config from metadata");
    REQUIRE(m2->n_params == m->n_params, "n params");
    for (int i = 0; i < m->n_params; i++)
        CHECK(!memcmp(m->params[i].data, m2->params[i].data, m->params[i].numel * 4), "%s differs", m->params[i].name);
    cm_model_free(m2);
    /* trainable-only save: only the 36 LoRA + head tensors */
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    REQ_OK(cm_model_save(m, path, true, NULL, 0));
    CmTensorFile *f = NULL;
    REQ_OK(cm_tensorfile_open(path, &f));
    CHECK(cm_tensorfile_count(f) == 36, "trainable-only file has %d tensors", cm_tensorfile_count(f));
    CHECK(cm_tensorfile_metadata(f, "model_config") != NULL, "model_config metadata");
    cm_tensorfile_close(f);
    /* partial load of it onto a model: allowed with CM_LOAD_PARTIAL_OK only */
    REQ_OK(cm_model_create(&g_cfg, &m2));
    CHECK(cm_model_load_file(m2, path, CM_LOAD_STRICT, 0) == CM_ERR_SHAPE, "strict load of a partial file");
    REQ_OK(cm_model_load_file(m2, path, CM_LOAD_PARTIAL_OK, 0));
    cm_model_free(m2);
    /* a guessed config (file without metadata): LoRA and head detected, loads strictly */
    REQ_OK(cm_model_from_file(tl_shared("golden/tiny/model.safetensors"), NULL, CM_LOAD_STRICT, 0, &m2));
    CHECK(m2->cfg.has_lora && m2->cfg.has_head && m2->cfg.lora_rank == 4 && m2->cfg.head.n_classes == 7, "guessed config");
    cm_model_free(m2);
    unlink(path);
    cm_model_free(m);
}

static void expect_load_error(const CmModel *m, const char *path, const char *needle1, const char *needle2) {
    CmModel *m2 = NULL;
    cm_status cst = cm_model_create(&m->cfg, &m2);
    REQUIRE(cst == CM_OK, "create");
    cm_clear_error();
    cm_status st = cm_model_load_file(m2, path, CM_LOAD_STRICT, 0);
    CHECK(st != CM_OK, "%s: loaded", path);
    CHECK(strstr(cm_last_error(), needle1) != NULL, "message lacks '%s': %s", needle1, cm_last_error());
    if (needle2) CHECK(strstr(cm_last_error(), needle2) != NULL, "message lacks '%s': %s", needle2, cm_last_error());
    CHECK(strstr(cm_last_error(), path) != NULL, "message lacks the file: %s", cm_last_error());
    cm_model_free(m2);
}

static void test_strict_errors(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = tiny();
    REQUIRE(m, "load");
    const char *path = tl_tmp("bad.safetensors");
    write_variant(m, path, "transformer.resblocks.1.mlp.c_fc.bias", NULL, NULL, CM_F32, NULL);
    expect_load_error(m, path, "missing", "transformer.resblocks.1.mlp.c_fc.bias");
    write_variant(m, path, NULL, "visual.transformer.resblocks.0.attn.bogus", NULL, CM_F32, NULL);
    expect_load_error(m, path, "unexpected", "visual.transformer.resblocks.0.attn.bogus");
    write_variant(m, path, NULL, NULL, "ln_final.weight", CM_F32, NULL);
    expect_load_error(m, path, "mis-shaped", "ln_final.weight [63], expected [64]");
    write_variant(m, path, "ln_final.bias", "ln_final.bias", NULL, CM_I32, NULL);
    expect_load_error(m, path, "not floating point", "ln_final.bias");
    write_variant(m, path, NULL, NULL, NULL, CM_F32, "visual.proj");
    expect_load_error(m, path, "non-finite", "visual.proj");
    /* CLIP-only allowance does not cover a missing CLIP tensor */
    write_variant(m, path, "visual.ln_post.bias", NULL, NULL, CM_F32, NULL);
    CmModel *m2 = NULL;
    REQ_OK(cm_model_create(&g_cfg, &m2));
    CHECK(cm_model_load_file(m2, path, CM_LOAD_CLIP_ONLY_OK, 0) == CM_ERR_SHAPE && strstr(cm_last_error(), "visual.ln_post.bias"),
          "%s", cm_last_error());
    cm_model_free(m2);
    /* a file for another config */
    CmModelConfig b32;
    REQ_OK(cm_config_from_name("ViT-B-32", &b32));
    b32.vision.layers = b32.text.layers = 1;
    REQ_OK(cm_model_create(&b32, &m2));
    CHECK(cm_model_load_file(m2, tl_shared("golden/tiny/model.safetensors"), CM_LOAD_STRICT, 0) == CM_ERR_SHAPE &&
          strstr(cm_last_error(), "mis-shaped") && strstr(cm_last_error(), "unexpected"), "%s", cm_last_error());
    cm_model_free(m2);
    CHECK(cm_model_load_file(m, "/nonexistent/model.safetensors", 0, 0) != CM_OK, "missing file");
    unlink(path);
    cm_model_free(m);
}

static void test_bad_inputs(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = tiny();
    REQUIRE(m, "load");
    int32_t tok[8 * 77];
    memcpy(tok, g_tok, sizeof tok);
    tok[3 * 77 + 5] = 49408;
    float U[8 * 32], V[8 * 32], hl[8 * 7];
    CHECK(cm_model_forward(m, NULL, g_img, tok, 8, false, U, V, hl) == CM_ERR_ARG && strstr(cm_last_error(), "sample 3 position 5"),
          "%s", cm_last_error());
    tok[3 * 77 + 5] = -1;
    CHECK(cm_encode_text(m, tok, 8, NULL, V) == CM_ERR_ARG, "negative id");
    REQ_OK(cm_model_forward(m, NULL, g_img, g_tok, 8, false, U, V, hl));
    int32_t lab[8];
    memcpy(lab, g_lab, sizeof lab);
    lab[2] = 7;
    CmLossValues lv;
    CHECK(cm_loss(U, V, hl, lab, 8, 32, 7, 2.6f, 1, 1, &lv, NULL, NULL, NULL, NULL) == CM_ERR_ARG && strstr(cm_last_error(), "sample 2"),
          "%s", cm_last_error());
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, 4, false, &a));
    CHECK(cm_model_backward(m, a, NULL, NULL, NULL) == CM_ERR_ARG, "backward before forward");
    CHECK(cm_model_forward(m, a, g_img, g_tok, 8, false, U, V, hl) == CM_ERR_ARG, "batch above max");
    CHECK(cm_model_forward(m, NULL, g_img, g_tok, 8, true, U, V, hl) == CM_ERR_ARG, "train without acts");
    cm_acts_free(a);
    CmActs *a0 = NULL;
    CHECK(cm_acts_create(m, 0, false, &a0) == CM_ERR_ARG && !a0, "max batch 0");
    cm_model_free(m);
}

/* loss with dropout on, RNG reseeded: a deterministic function of the parameters */
static double loss_at(CmModel *m, CmActs *a) {
    float U[8 * 32], V[8 * 32], hl[8 * 7];
    cm_acts_seed(a, 1234);
    if (cm_model_forward(m, a, g_img, g_tok, 8, true, U, V, hl)) return NAN;
    CmLossValues lv;
    cm_loss(U, V, hl, g_lab, 8, 32, 7, m->logit_scale.data[0], 1, 1, &lv, NULL, NULL, NULL, NULL);
    return lv.loss;
}

static void test_dropout(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModelConfig c = g_cfg;
    c.head.dropout = 0.3f;
    c.head.cls_dropout = 0.4f;
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    REQ_OK(cm_model_load_file(m, tl_shared("golden/tiny/model.safetensors"), CM_LOAD_STRICT, 0));
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, 8, false, &a));
    float U[8 * 32], V[8 * 32], h_eval[8 * 7], h1[8 * 7], h2[8 * 7], h3[8 * 7];
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, false, U, V, h_eval));
    cm_acts_seed(a, 5);
    cm_acts_set_step(a, 0, 0);
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, true, U, V, h1));
    cm_acts_set_step(a, 1, 0);
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, true, U, V, h2));
    cm_acts_set_step(a, 0, 0);
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, true, U, V, h3));
    CHECK(tl_max_abs_diff(h1, h_eval, 56) > 1e-3, "dropout changes the logits");
    CHECK(tl_max_abs_diff(h1, h2, 56) > 1e-3, "fresh masks each step");
    CHECK(tl_max_abs_diff(h1, h3, 56) == 0.0, "same seed and step, same masks");
    /* gradient with dropout on vs central differences */
    float dU[8 * 32], dV[8 * 32], dh[8 * 7];
    cm_model_zero_grad(m);
    cm_acts_seed(a, 1234);
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, true, U, V, h1));
    CmLossValues lv;
    REQ_OK(cm_loss(U, V, h1, g_lab, 8, 32, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, NULL));
    REQ_OK(cm_model_backward(m, a, dU, dV, dh));
    const char *names[] = {"classifier_head.classifier.0.weight", "classifier_head.transformer.layers.0.linear1.weight",
                           "classifier_head.transformer.layers.0.self_attn.in_proj_weight",
                           "classifier_head.transformer.layers.1.norm1.bias",
                           "classifier_head.transformer.layers.0.self_attn.out_proj.bias",
                           "transformer.resblocks.1.attn.out_proj.lora_A.weight",
                           "visual.transformer.resblocks.0.attn.out_proj.lora_B.weight"};
    for (size_t t = 0; t < sizeof names / sizeof names[0]; t++) {
        int k = cm_model_find(m, names[t]);
        REQUIRE(k >= 0 && m->params[k].grad, "%s", names[t]);
        CmParam *p = &m->params[k];
        /* the element with the largest |gradient| */
        size_t j = 0;
        for (size_t i = 1; i < p->numel; i++) if (fabsf(p->grad[i]) > fabsf(p->grad[j])) j = i;
        float old = p->data[j], eps = 2e-3f;
        p->data[j] = old + eps;
        double lp = loss_at(m, a);
        p->data[j] = old - eps;
        double lm = loss_at(m, a);
        p->data[j] = old;
        double fd = (lp - lm) / (2.0 * eps), g = p->grad[j];
        CHECK(fabs(fd - g) <= 2e-2 * fabs(g) + 2e-4, "%s[%zu]: backward %.6g vs finite difference %.6g", names[t], j, g, fd);
    }
    cm_acts_free(a);
    cm_model_free(m);
}

static void test_lock_image(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = tiny();
    REQUIRE(m, "load");
    CmTensorFile *ex = NULL;
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/expected.safetensors"), &ex));
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, true, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, 8, false, &a));
    float U[8 * 32], V[8 * 32], hl[8 * 7], dU[8 * 32], dV[8 * 32], dh[8 * 7];
    REQ_OK(cm_model_forward(m, a, g_img, g_tok, 8, false, U, V, hl));
    CmLossValues lv;
    REQ_OK(cm_loss(U, V, hl, g_lab, 8, 32, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, NULL));
    REQ_OK(cm_model_backward(m, a, dU, dV, dh));
    int nv = 0, nt = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        bool vis = !strncmp(p->name, "visual.", 7);
        if (vis) { CHECK(!p->trainable && !p->grad, "%s trainable under lock-image", p->name); nv++; continue; }
        if (!p->trainable || p->group == CM_GROUP_LOGIT_SCALE) continue;
        char nm[160];
        snprintf(nm, sizeof nm, "grad_full.%s", p->name);
        const float *want = cm_tensorfile_find(ex, nm)->data;
        double tol = 1e-4 * tl_max_abs(want, p->numel) + 1e-12;
        CHECK(tl_max_abs_diff(p->grad, want, p->numel) <= tol, "lock-image %s", p->name);
        nt++;
    }
    CHECK(nv == 36 && nt > 60, "%d vision, %d checked", nv, nt);
    cm_tensorfile_close(ex);
    cm_acts_free(a);
    cm_model_free(m);
}

/* a loaded model shared read-only by threads: concurrent encodes give the serial results */
typedef struct { const CmModel *m; float U[8 * 32], V[8 * 32], hl[8 * 7]; cm_status st; } ThreadJob;
static void *thread_fn(void *arg) {
    ThreadJob *j = arg;
    for (int r = 0; r < 3 && !j->st; r++) j->st = cm_model_forward(j->m, NULL, g_img, g_tok, 8, false, j->U, j->V, j->hl);
    return NULL;
}
static void test_threads(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = tiny();
    REQUIRE(m, "load");
    float U[8 * 32], V[8 * 32], hl[8 * 7];
    REQ_OK(cm_model_forward(m, NULL, g_img, g_tok, 8, false, U, V, hl));
    ThreadJob jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].m = m;
        CHECK(pthread_create(&th[i], NULL, thread_fn, &jobs[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].st == CM_OK, "thread %d: %s", i, cm_last_error());
        CHECK(tl_max_abs_diff(jobs[i].U, U, 8 * 32) <= 1e-6 && tl_max_abs_diff(jobs[i].hl, hl, 8 * 7) <= 1e-6, "thread %d results", i);
    }
    cm_model_free(m);
}

int main(void) {
    if (!tl_tmpdir_make("model_errors")) { perror("mkdtemp"); return 1; }
    cm_threads_set(0);
    RUN(test_save_roundtrip);
    RUN(test_strict_errors);
    RUN(test_bad_inputs);
    RUN(test_dropout);
    RUN(test_lock_image);
    RUN(test_threads);
    cm_tensorfile_close(g_in);
    tl_tmpdir_remove();
    return tl_summary("test_model_errors");
}
