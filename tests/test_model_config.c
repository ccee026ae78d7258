/*
 * test_model_config.c — model configs and the parameter table: named and JSON configs, DESIGN
 * §1.4 counts, the tiny golden's table (names/shapes/order against model.safetensors' header),
 * ViT-B-32's 302 tensors against golden/full/weights_seed1_tensors.json, config errors, and the
 * WEIGHTS.md formula weights (SHA-256 of the whole safetensors serialisation and of every tensor,
 * hashed while streaming, without writing the 605 MB file).
 */
#include <stdint.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include "testlib.h"
#include "model/model.h"
#include "io/tensorfile.h"
#include <unistd.h>


static void test_named_counts(void) {
    CmModelConfig c;
    REQ_OK(cm_config_from_name("ViT-B-32", &c));
    CmParamCounts k;
    cm_param_counts(&c, &k);
    CHECK(k.vision == 87849216, "vision %lld", (long long)k.vision);
    CHECK(k.text == 63428096, "text %lld", (long long)k.text);
    CHECK(k.clip_total == 151277313, "clip %lld", (long long)k.clip_total);
    CHECK(k.head == 6571015, "head %lld", (long long)k.head);
    CHECK(k.lora == 122880, "lora %lld", (long long)k.lora);
    CHECK(k.trainable_lora == 6693895, "trainable lora %lld", (long long)k.trainable_lora);
    CHECK(k.trainable_baseline == 157848328, "baseline %lld", (long long)k.trainable_baseline);
    CHECK(k.n_clip_tensors == 302, "clip tensors %d", k.n_clip_tensors);
    CHECK(!c.quick_gelu && c.vision.heads == 12 && c.text.heads == 8, "B-32 fields");
    REQ_OK(cm_config_from_name("ViT-B-16-quickgelu", &c));
    CHECK(c.quick_gelu && c.vision.patch_size == 16, "B-16-quickgelu fields");
    cm_param_counts(&c, &k);
    CHECK(k.vision == 86192640, "B-16 vision %lld", (long long)k.vision);  /* 85.8M+pos: model_profile 86.19 */
    REQ_OK(cm_config_from_name("ViT-L-14", &c));
    cm_param_counts(&c, &k);
    CHECK(k.vision == 303966208 && k.text == 123650304, "L-14 %lld %lld", (long long)k.vision, (long long)k.text);
    CHECK(cm_config_from_name("ViT-Q-99", &c) == CM_ERR_ARG && strstr(cm_last_error(), "ViT-Q-99"), "%s", cm_last_error());
}

static void test_tiny_json_config(void) {
    SHARED_OR_SKIP();
    CmModelConfig c;
    REQ_OK(cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &c));
    CHECK(c.embed_dim == 32 && c.vision.image_size == 64 && c.vision.patch_size == 16 && c.vision.heads == 2,
          "vision fields");
    CHECK(c.text.width == 64 && c.text.heads == 2 && c.text.layers == 2, "text fields");
    CHECK(c.head.d == 32 && c.head.heads == 4 && c.head.ff == 128 && c.head.layers == 2 && c.head.n_classes == 7, "head");
    CHECK(c.lora_rank == 4 && c.lora_alpha == 32.0f, "lora");
    CmParamCounts k;
    cm_param_counts(&c, &k);
    CHECK(k.vision == 152576 && k.text == 3269184 && k.clip_total == 3421761 && k.head == 26695 && k.lora == 2048,
          "tiny counts %lld %lld %lld %lld %lld", (long long)k.vision, (long long)k.text, (long long)k.clip_total,
          (long long)k.head, (long long)k.lora);
    CHECK(k.n_clip_tensors == 62 && k.n_lora_tensors == 8 && k.n_head_tensors == 28, "tensor counts");

    /* The table against model.safetensors' header: same names, shapes, order. */
    uint8_t *buf = NULL;
    size_t len = 0;
    REQ_OK(cm_read_file(tl_shared("golden/tiny/model.safetensors"), 1u << 26, &buf, &len));
    uint64_t hl = 0;
    memcpy(&hl, buf, 8);
    REQUIRE(hl + 8 <= len, "header");
    cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, hl);
    REQUIRE(h, "json");
    CmParam *p = NULL;
    int n = 0;
    REQ_OK(cm_param_table(&c, &p, &n));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        if (!strcmp(e->string, "__metadata__")) continue;
        REQUIRE(i < n, "more tensors in file than table");
        CHECK(!strcmp(e->string, p[i].name), "tensor %d: file %s table %s", i, e->string, p[i].name);
        const cJSON *sh = cJSON_GetObjectItem(e, "shape");
        CHECK(cJSON_GetArraySize(sh) == p[i].ndim, "%s ndim", p[i].name);
        for (int d = 0; d < p[i].ndim && d < cJSON_GetArraySize(sh); d++)
            CHECK(cJSON_GetArrayItem(sh, d)->valuedouble == (double)p[i].shape[d], "%s dim %d", p[i].name, d);
        i++;
    }
    CHECK(i == n, "file %d tensors, table %d", i, n);
    cm_free(p);
    cJSON_Delete(h);
    cm_free(buf);
}

static void test_json_errors(void) {
    CmModelConfig c;
    const char *bad[] = {
        "{\"embed_dim\": 512, \"vision_cfg\": {\"layers\": 12}",                                    /* truncated */
        "[1,2]",                                                                                  /* not object */
        "{\"embed_dim\": 512}",                                                                   /* no towers */
        "{\"embed_dim\": 512, \"vision_cfg\": {\"layers\": [3,4,6,3]}, \"text_cfg\": {}}",          /* ResNet */
        "{\"embed_dim\": 512, \"vision_cfg\": {\"timm_model_name\": \"x\"}, \"text_cfg\": {}}",     /* timm */
        "{\"embed_dim\": \"big\", \"vision_cfg\": {}, \"text_cfg\": {}}",                           /* type */
        "{\"embed_dim\": 512, \"vision_cfg\": {\"image_size\": 225, \"patch_size\": 32}, \"text_cfg\": {}}",
        "{\"embed_dim\": 512, \"vision_cfg\": {\"width\": -5}, \"text_cfg\": {}}",
        "{\"embed_dim\": 512, \"vision_cfg\": {}, \"text_cfg\": {\"width\": 512, \"heads\": 7}}",
        "{\"embed_dim\": 512, \"vision_cfg\": {\"width\": 100000000}, \"text_cfg\": {}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_clear_error();
        cm_status st = cm_config_from_json(bad[i], strlen(bad[i]), "cfg.json", &c);
        CHECK(st != CM_OK, "case %zu accepted", i);
        CHECK(strstr(cm_last_error(), "cfg.json") != NULL, "case %zu message lacks the file: %s", i, cm_last_error());
    }
    const char *good = "{\"embed_dim\": 512, \"vision_cfg\": {\"image_size\": 224, \"layers\": 12, \"width\": 768, "
                       "\"patch_size\": 32}, \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, "
                       "\"width\": 512, \"heads\": 8, \"layers\": 12}}";
    REQ_OK(cm_config_from_json(good, strlen(good), "ViT-B-32.json", &c));
    CmParamCounts k;
    cm_param_counts(&c, &k);
    CHECK(k.clip_total == 151277313, "json B-32 total %lld", (long long)k.clip_total);
    CHECK(cm_config_from_json_file("/nonexistent/x.json", &c) == CM_ERR_IO, "missing file");
}

static void test_modes_and_flags(void) {
    CmModelConfig c;
    SHARED_OR_SKIP();
    REQ_OK(cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &c));
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    CHECK(m->n_params == 98, "n %d", m->n_params);
    CHECK(fabsf(m->logit_scale.data[0] - 2.6592600f) < 1e-6f, "logit_scale init");
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CHECK(cm_model_trainable_count(m) == 28743, "lora trainable %lld", (long long)cm_model_trainable_count(m));
    int nt = 0, nd = 0;
    for (int i = 0; i < m->n_params; i++) {
        nt += m->params[i].trainable;
        nd += m->params[i].trainable && m->params[i].decay;
        CHECK(m->params[i].trainable == (m->params[i].grad != NULL), "grad alloc %s", m->params[i].name);
    }
    CHECK(nt == 36 && nd == 18, "lora: %d trainable, %d decayed", nt, nd);
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, false, false));
    nt = nd = 0;
    for (int i = 0; i < m->n_params; i++) { nt += m->params[i].trainable; nd += m->params[i].trainable && m->params[i].decay; }
    CHECK(nt == 98 && nd == 40, "full: %d trainable, %d decayed", nt, nd);
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_HEAD, false, false));
    CHECK(cm_model_trainable_count(m) == 26695, "head trainable");
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, true, false));
    CHECK(!m->params[m->visual.conv.idx].trainable && m->params[m->text.tok.idx].trainable, "lock-image");
    /* init from scratch is deterministic and sane */
    cm_model_init(m, 7);
    float a0 = m->text.tok.data[5];
    cm_model_init(m, 7);
    CHECK(a0 == m->text.tok.data[5] && a0 != 0.0f, "deterministic init");
    int lb = cm_model_find(m, "visual.transformer.resblocks.0.attn.out_proj.lora_B.weight");
    REQUIRE(lb >= 0, "lora_B");
    CHECK(tl_max_abs(m->params[lb].data, m->params[lb].numel) == 0.0, "lora_B zero");
    cm_model_free(m);
}

/* Per-tensor records of weights_seed1_tensors.json + streaming sha256 of the safetensors bytes. */
static void test_formula_weights(void) {
    SHARED_OR_SKIP();
    cJSON *root = tl_read_golden_json("golden/full/weights_seed1_tensors.json");
    REQUIRE(root, "golden/full/weights_seed1_tensors.json unreadable or not JSON");
    const cJSON *tensors = cJSON_GetObjectItem(root, "tensors");
    const char *want_file = cJSON_GetObjectItem(root, "file_sha256")->valuestring;
    double want_bytes = cJSON_GetObjectItem(root, "file_bytes")->valuedouble;

    CmModelConfig c;
    REQ_OK(cm_config_from_name("ViT-B-32", &c));
    c.has_lora = false;
    c.has_head = false;
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    REQUIRE(m->n_params == 302 && cJSON_GetArraySize(tensors) == 302, "302 tensors");
    double t0 = cm_now();
    cm_model_init_formula(m, 1);
    double t1 = cm_now();

    /* header exactly as json.dumps(separators=(',',':')), padded with spaces to a multiple of 8 */
    size_t cap = 1 << 16, hl = 0, off = 0;
    char *hdr = malloc(cap);
    hl += snprintf(hdr + hl, cap - hl, "{");
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        hl += snprintf(hdr + hl, cap - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", p->name);
        for (int d = 0; d < p->ndim; d++) hl += snprintf(hdr + hl, cap - hl, "%s%lld", d ? "," : "", (long long)p->shape[d]);
        hl += snprintf(hdr + hl, cap - hl, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * p->numel);
        off += 4 * p->numel;
    }
    hl += snprintf(hdr + hl, cap - hl, "}");
    while (hl % 8) hdr[hl++] = ' ';
    CHECK(hl == 33952, "header length %zu", hl);
    CHECK(8 + hl + off == (size_t)want_bytes, "file bytes %zu vs %.0f", 8 + hl + off, want_bytes);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    uint64_t hl64 = hl;
    EVP_DigestUpdate(ctx, &hl64, 8);   /* little-endian host */
    EVP_DigestUpdate(ctx, hdr, hl);
    int bad = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        const cJSON *t = cJSON_GetArrayItem(tensors, i);
        const char *nm = cJSON_GetObjectItem(t, "name")->valuestring;
        CHECK(!strcmp(nm, p->name), "tensor %d name %s vs %s", i, p->name, nm);
        const cJSON *sh = cJSON_GetObjectItem(t, "shape");
        CHECK(cJSON_GetArraySize(sh) == p->ndim, "%s ndim", p->name);
        for (int d = 0; d < p->ndim && d < cJSON_GetArraySize(sh); d++)
            CHECK(cJSON_GetArrayItem(sh, d)->valuedouble == (double)p->shape[d], "%s dim %d", p->name, d);
        char hex[65];
        cm_sha256_hex(p->data, 4 * p->numel, hex);
        if (strcmp(hex, cJSON_GetObjectItem(t, "sha256_le")->valuestring)) {
            if (bad++ < 5) CHECK(0, "tensor %s sha256 %s differs (first value %.9g)", p->name, hex, p->data[0]);
        }
        EVP_DigestUpdate(ctx, p->data, 4 * p->numel);
    }
    CHECK(bad == 0, "%d tensors differ", bad);
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_DigestFinal_ex(ctx, md, &ml);
    EVP_MD_CTX_free(ctx);
    char hex[65];
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    CHECK(!strcmp(hex, want_file), "file sha256 %s != %s", hex, want_file);
    fprintf(stderr, "  formula weights: generated in %.2f s, hashed in %.2f s\n", t1 - t0, cm_now() - t1);
    free(hdr);
    cm_model_free(m);
    cJSON_Delete(root);
}

/* The same weights written by the io part's safetensors writer to /tmp: the file's SHA-256 is the
   golden one (then the file is deleted). */
static void test_formula_file(void) {
    SHARED_OR_SKIP();
    CmModelConfig c;
    REQ_OK(cm_config_from_name("ViT-B-32", &c));
    c.has_lora = c.has_head = false;
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    cm_model_init_formula(m, 1);
    CmTensorOut *ts = calloc((size_t)m->n_params, sizeof *ts);
    cm_model_tensor_list(m, false, ts);
    char path[128];
    snprintf(path, sizeof path, "/tmp/clipmod_test_vitb32_seed1_%d.safetensors", (int)getpid());
    cm_status st = cm_safetensors_write(path, ts, m->n_params, NULL, 0);
    free(ts);
    cm_model_free(m);
    REQUIRE(st == CM_OK, "write %s: %s", path, cm_last_error());
    FILE *f = fopen(path, "rb");
    REQUIRE(f, "reopen %s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    static unsigned char buf[1 << 20];
    size_t k, total = 0;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) { EVP_DigestUpdate(ctx, buf, k); total += k; }
    fclose(f);
    unlink(path);
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_DigestFinal_ex(ctx, md, &ml);
    EVP_MD_CTX_free(ctx);
    char hex[65];
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    CHECK(total == 605143212, "file bytes %zu", total);
    CHECK(!strcmp(hex, "bca9394d248be0cabbfa0a0006524577a15f722a786a686cd97dc0e3de872e1e"), "file sha256 %s", hex);
}

static void test_formula_vectors(void) {
    /* WEIGHTS.md test vectors (no shared data needed) */
    int64_t s1[1] = {768}, s2[2] = {512, 512};
    float o[768];
    cm_formula_fill("visual.class_embedding", 1, s1, 1, o);
    uint32_t b;
    memcpy(&b, &o[0], 4);
    CHECK(b == 0x3ce90d74u, "class_embedding[0] bits %08x", b);
    memcpy(&b, &o[7], 4);
    CHECK(b == 0x3d27ddeau, "class_embedding[7] bits %08x", b);
    cm_formula_fill("ln_final.weight", 1, s2, 1, o);
    memcpy(&b, &o[0], 4);
    CHECK(b == 0x3f78122fu, "ln_final.weight[0] bits %08x", b);
    cm_formula_fill("logit_scale", 0, s2, 1, o);
    memcpy(&b, &o[0], 4);
    CHECK(b == 0x402a3151u, "logit_scale bits %08x", b);
}

int main(void) {
    cm_threads_set(0);
    RUN(test_named_counts);
    RUN(test_json_errors);
    RUN(test_tiny_json_config);
    RUN(test_modes_and_flags);
    RUN(test_formula_vectors);
    RUN(test_formula_weights);
    RUN(test_formula_file);
    return tl_summary("test_model_config");
}
