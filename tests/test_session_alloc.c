/*
 * test_session_alloc.c — an inference session allocates nothing per call after its first call
 * (issue 8 item 6: "no per-call allocation after warm-up"). This test is linked with
 * -Wl,--wrap=cm_malloc,--wrap=cm_calloc (Makefile), so every library allocation goes through the
 * counters below; a classify / encode call on a warmed-up session (LoRA model, head, fp32, the
 * same batch size or a smaller one) must not call them. The model-level calls, which build a
 * session per call, do allocate (and the counters see it: the wrap is live).
 */
#include "testlib.h"
#include "model/infer.h"
#include "model/model.h"

static long g_allocs;
void *__real_cm_malloc(size_t n, const char *what);
void *__real_cm_calloc(size_t count, size_t size, const char *what);
void *__wrap_cm_malloc(size_t n, const char *what) { __atomic_add_fetch(&g_allocs, 1, __ATOMIC_RELAXED); return __real_cm_malloc(n, what); }
void *__wrap_cm_calloc(size_t count, size_t size, const char *what) {
    __atomic_add_fetch(&g_allocs, 1, __ATOMIC_RELAXED);
    return __real_cm_calloc(count, size, what);
}

static const char *CFG =
    "{\"model_name\": \"alloc-test\", \"model_cfg\": {\"embed_dim\": 32, \"quick_gelu\": false,"
    " \"vision_cfg\": {\"image_size\": 32, \"layers\": 2, \"width\": 64, \"patch_size\": 16, \"head_width\": 32, \"mlp_ratio\": 2.0},"
    " \"text_cfg\": {\"context_length\": 20, \"vocab_size\": 300, \"width\": 64, \"heads\": 2, \"layers\": 2, \"mlp_ratio\": 2.0}},"
    " \"lora\": {\"r\": 8, \"alpha\": 16.0},"
    " \"head\": {\"d\": 32, \"heads\": 4, \"ff\": 64, \"layers\": 2, \"classes\": 7}}";

static void test_no_allocation_after_warmup(void) {
    CmModelConfig cfg;
    REQ_OK(cm_config_from_json(CFG, strlen(CFG), "test config", &cfg));
    REQUIRE(cfg.has_lora && cfg.has_head, "config");
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    cm_model_init(m, 3);
    for (int i = 0; i < m->n_params; i++)   /* LoRA B != 0: the LoRA path runs for real */
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < m->params[i].numel; k++) m->params[i].data[k] = 0.01f * (float)(k % 7) - 0.03f;
    enum { B = 3 };
    float img[B * 3 * 32 * 32], logits[B * 7], U[B * 32], V[B * 32], want[B * 7];
    int32_t tok[B * 20] = {0};
    for (size_t i = 0; i < sizeof img / sizeof img[0]; i++) img[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int b = 0; b < B; b++) {
        tok[b * 20] = 298;
        for (int t = 1; t < 4 + 3 * b; t++) tok[b * 20 + t] = 1 + (t * 13 + b) % 290;
        tok[b * 20 + 4 + 3 * b] = 299;
    }
    CmInfer *s;
    REQ_OK(cm_infer_create(m, B, &s));
    REQ_OK(cm_infer_classify(s, img, tok, B, logits, U, V));   /* warm-up (oneDNN primitive caches) */
    REQ_OK(cm_infer_classify(s, img, tok, 1, logits, U, V));
    long before = g_allocs;
    for (int rep = 0; rep < 3; rep++) {
        REQ_OK(cm_infer_classify(s, img, tok, B, logits, U, V));
        REQ_OK(cm_infer_classify(s, img, tok, 1, logits, U, V));
        REQ_OK(cm_infer_encode_image(s, img, B, NULL, U));
        REQ_OK(cm_infer_encode_text(s, tok, B, V, NULL));
        REQ_OK(cm_infer_head(s, U, V, B, logits));
    }
    long during = g_allocs - before;
    CHECK(during == 0, "%ld library allocations in 15 calls of a warmed-up session", during);
    /* the same numbers as the model-level path, which allocates a session per call */
    REQ_OK(cm_infer_classify(s, img, tok, B, logits, NULL, NULL));
    before = g_allocs;
    REQ_OK(cm_model_forward(m, NULL, img, tok, B, false, U, V, want));
    CHECK(g_allocs > before, "the allocation counter did not see the model-level call (wrap not linked?)");
    double e = 0;
    for (int i = 0; i < B * 7; i++) e = fmax(e, fabs(logits[i] - want[i]));
    CHECK(e == 0, "session logits differ from cm_model_forward by %g", e);
    cm_infer_free(s);
    cm_model_free(m);
}

int main(void) {
    RUN(test_no_allocation_after_warmup);
    return tl_summary("test_session_alloc");
}
