/*
 * test_alloc_fail.c — out of memory is a status, never an abort (issue 8 item 1): with the
 * failing-allocator hook (cm_set_alloc_hook) the N-th cm_malloc/cm_calloc fails, for every N from 1
 * up to the number of allocations a clean run makes, during model setup, activation planning and
 * one training step (forward with activations, losses, backward, AdamW), for fp32 and amp
 * (bf16 workspaces), full and LoRA training, and for an inference session. Each run must return
 * CM_ERR_OOM from the call that met the failure (with a message), release what it built, and not
 * crash; under `make asan` LeakSanitizer also proves nothing leaks on any of these paths.
 */
#include "testlib.h"
#include "model/model.h"
#include "model/infer.h"
#include "train/optim.h"

static long g_count, g_fail_at;   /* fail the g_fail_at-th allocation (0: never) */
static bool hook(size_t bytes, const char *what, void *ctx) {
    (void)bytes; (void)what; (void)ctx;
    long k = __atomic_add_fetch(&g_count, 1, __ATOMIC_RELAXED);
    return k != g_fail_at;
}

static const char *CFG =
    "{\"model_name\": \"oom-test\", \"model_cfg\": {\"embed_dim\": 16, \"quick_gelu\": true,"
    " \"vision_cfg\": {\"image_size\": 16, \"layers\": 2, \"width\": 32, \"patch_size\": 8, \"head_width\": 16, \"mlp_ratio\": 2.0},"
    " \"text_cfg\": {\"context_length\": 8, \"vocab_size\": 64, \"width\": 32, \"heads\": 2, \"layers\": 2, \"mlp_ratio\": 2.0}},"
    " \"lora\": {\"r\": 4, \"alpha\": 8.0},"
    " \"head\": {\"d\": 16, \"heads\": 2, \"ff\": 32, \"layers\": 1, \"classes\": 3}}";

enum { B = 3, E = 16, K = 3, S = 16, T = 8 };

/* setup + one training step; returns the first failing status (everything freed) */
static cm_status train_once(CmTrainMode mode, bool amp) {
    float img[B * 3 * S * S], U[B * E], V[B * E], dU[B * E], dV[B * E], hl[B * K], dh[B * K];
    int32_t tok[B * T] = {0}, lab[B] = {0, 2, 0};
    for (size_t i = 0; i < sizeof img / sizeof *img; i++) img[i] = (float)((i * 29) % 53) / 26.0f - 1.0f;
    for (int b = 0; b < B; b++) {
        tok[b * T] = 62;
        for (int t = 1; t < 3 + b; t++) tok[b * T + t] = 1 + (t * 7 + b) % 60;
        tok[b * T + 3 + b] = 63;
    }
    CmModelConfig cfg;
    CmModel *m = NULL;
    CmActs *a = NULL;
    CmOptParam *op = NULL;
    CmAdamW opt;
    bool opt_ok = false;
    cm_status st = cm_config_from_json(CFG, strlen(CFG), "oom config", &cfg);
    if (!st) st = cm_model_create(&cfg, &m);
    if (!st) {
        cm_model_init(m, 5);
        cm_model_set_amp(m, amp);
        st = cm_model_set_mode(m, mode, false, false);
    }
    if (!st) st = cm_acts_create(m, B, false, &a);
    int n = 0;
    if (!st) {
        op = cm_calloc((size_t)m->n_params, sizeof *op, "optimizer table");
        if (!op) st = CM_ERR_OOM;
        for (int i = 0; !st && i < m->n_params; i++)
            if (m->params[i].trainable)
                op[n++] = (CmOptParam){m->params[i].name, m->params[i].data, m->params[i].grad, m->params[i].numel,
                                       m->params[i].ndim, m->params[i].decay};
    }
    if (!st) { st = cm_adamw_init(&opt, op, n, 0.9, 0.98, 1e-6, 0.1); opt_ok = st == CM_OK; }
    if (!st) {
        cm_model_zero_grad(m);
        st = cm_model_forward(m, a, img, tok, B, true, U, V, hl);
    }
    if (!st) st = cm_loss(U, V, hl, lab, B, E, K, m->logit_scale.data[0], 1, 1, NULL, dU, dV, dh, NULL);
    if (!st) st = cm_model_backward(m, a, dU, dV, dh);
    if (!st) cm_adamw_step(&opt, 1e-3);
    if (opt_ok) cm_adamw_free(&opt);
    cm_free(op);
    cm_acts_free(a);
    cm_model_free(m);
    return st;
}

static cm_status infer_once(void) {
    float img[B * 3 * S * S] = {0}, lg[B * K];
    int32_t tok[B * T] = {0};
    for (int b = 0; b < B; b++) { tok[b * T] = 62; tok[b * T + 1] = 5; tok[b * T + 2] = 63; }
    CmModelConfig cfg;
    CmModel *m = NULL;
    CmInfer *s = NULL;
    cm_status st = cm_config_from_json(CFG, strlen(CFG), "oom config", &cfg);
    if (!st) st = cm_model_create(&cfg, &m);
    if (!st) { cm_model_init(m, 5); st = cm_model_set_int8(m, true); }
    if (!st) st = cm_infer_create(m, B, &s);
    if (!st) st = cm_infer_classify(s, img, tok, B, lg, NULL, NULL);
    cm_infer_free(s);
    cm_model_free(m);
    return st;
}

/* every allocation index of a clean run, made to fail in turn */
static void sweep(const char *what, cm_status (*run)(void *), void *arg) {
    g_fail_at = 0;
    g_count = 0;
    cm_set_alloc_hook(hook, NULL);
    cm_status st = run(arg);
    long total = g_count;
    CHECK(st == CM_OK, "%s: clean run failed: %s", what, cm_last_error());
    CHECK(total > 10, "%s: only %ld allocations seen: the hook is not live", what, total);
    int bad = 0;
    for (long k = 1; k <= total; k++) {
        g_fail_at = k;
        g_count = 0;
        cm_clear_error();
        st = run(arg);
        if (st != CM_ERR_OOM || !cm_last_error()[0]) {
            if (bad++ < 5)
                fprintf(stderr, "    %s: allocation %ld of %ld failed -> status %d (%s)\n", what, k, total, (int)st, cm_last_error());
        }
    }
    cm_set_alloc_hook(NULL, NULL);
    CHECK(bad == 0, "%s: %d of %ld injected allocation failures did not come back as CM_ERR_OOM", what, bad, total);
    fprintf(stderr, "    %s: %ld allocation sites failed in turn, each a clean CM_ERR_OOM\n", what, total);
}

typedef struct { CmTrainMode mode; bool amp; } TrainArg;
static cm_status run_train(void *p) { TrainArg *t = p; return train_once(t->mode, t->amp); }
static cm_status run_infer(void *p) { (void)p; return infer_once(); }

static void test_oom_training_step_fp32_full(void) { TrainArg t = {CM_TRAIN_FULL, false}; sweep("fp32 full step", run_train, &t); }
static void test_oom_training_step_lora_amp(void) { TrainArg t = {CM_TRAIN_LORA, true}; sweep("amp LoRA step", run_train, &t); }
static void test_oom_inference_int8(void) { sweep("int8 inference", run_infer, NULL); }

int main(void) {
    RUN(test_oom_training_step_fp32_full);
    RUN(test_oom_training_step_lora_amp);
    RUN(test_oom_inference_int8);
    return tl_summary("test_alloc_fail");
}
