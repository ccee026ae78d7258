/*
 * test_model_tiny.c — the model against the tiny OpenCLIP goldens (../shared/golden/tiny):
 * features (raw and normalised), logits, head logits and the three losses within 1e-5 of each
 * tensor's largest |value|; gradients in LoRA, full and head-only modes, with and without
 * gradient checkpointing, within 1e-4 of each golden tensor's largest |gradient| (absolute:
 * in_proj_bias's key part is fp32 noise); the B = 0 goldens (A gradients exactly 0); fp16 weights.
 */
#include <stdint.h>
#include <string.h>
#include "testlib.h"
#include "model/model.h"

#include "io/tensorfile.h"

static CmModelConfig g_cfg;
static CmTensorFile *g_in, *g_exp, *g_b0;
static float *g_images;
static int32_t g_tokens[8 * 77], g_labels[8];
enum { NB = 8 };

/* |got - want| <= rel * max|want| (+ a tiny floor for all-zero goldens) */
static int close_rel(const float *got, const float *want, size_t n, double rel, const char *what) {
    double mx = tl_max_abs(want, n), d = tl_max_abs_diff(got, want, n), tol = rel * mx + 1e-12;
    CHECK(d <= tol, "%s: max abs diff %.3g > %.3g (= %.0e x max %.3g); got[0] %.7g want[0] %.7g", what, d, tol, rel, mx,
          (double)got[0], (double)want[0]);
    return d <= tol;
}

static int setup(void) {
    if (g_in) return 1;
    if (cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &g_cfg)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/inputs.safetensors"), &g_in)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/expected.safetensors"), &g_exp)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/expected_lora_b0.safetensors"), &g_b0)) return 0;
    g_images = (float *)tl_f32(g_in, "images", NULL);
    int64_t tok[8 * 77], lab[8];
    if (cm_tensor_to_i64(cm_tensorfile_find(g_in, "tokens"), tok)) return 0;
    if (cm_tensor_to_i64(cm_tensorfile_find(g_in, "labels"), lab)) return 0;
    for (int i = 0; i < 8 * 77; i++) g_tokens[i] = (int32_t)tok[i];
    for (int i = 0; i < 8; i++) g_labels[i] = (int32_t)lab[i];
    return 1;
}

static CmModel *load_tiny(const char *file, unsigned flags) {
    CmModel *m = NULL;
    CmModelConfig c = g_cfg;
    if (cm_model_create(&c, &m)) return NULL;
    if (cm_model_load_file(m, tl_shared(file), flags, 1)) { fprintf(stderr, "  load: %s\n", cm_last_error()); cm_model_free(m); return NULL; }
    return m;
}

/* Forward outputs against a golden file (expected or expected_lora_b0). */
static void check_forward(CmModel *m, CmTensorFile *ex, const char *tag) {
    int E = g_cfg.embed_dim, K = g_cfg.head.n_classes;
    float ir[NB * 32], tr_[NB * 32], U[NB * 32], V[NB * 32], hl[NB * 7], L[NB * NB];
    REQUIRE(E == 32 && K == 7, "tiny dims");
    REQ_OK(cm_encode_image(m, g_images, NB, ir, NULL));
    REQ_OK(cm_encode_text(m, g_tokens, NB, tr_, NULL));
    REQ_OK(cm_model_forward(m, NULL, g_images, g_tokens, NB, false, U, V, hl));
    char w[96];
    snprintf(w, sizeof w, "%s image_features_raw", tag);
    close_rel(ir, tl_f32(ex, "image_features_raw", NULL), NB * 32, 1e-5, w);
    snprintf(w, sizeof w, "%s text_features_raw", tag);
    close_rel(tr_, tl_f32(ex, "text_features_raw", NULL), NB * 32, 1e-5, w);
    snprintf(w, sizeof w, "%s image_features", tag);
    close_rel(U, tl_f32(ex, "image_features", NULL), NB * 32, 1e-5, w);
    snprintf(w, sizeof w, "%s text_features", tag);
    close_rel(V, tl_f32(ex, "text_features", NULL), NB * 32, 1e-5, w);
    float s = expf(m->logit_scale.data[0]);
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < NB; j++) {
            float acc = 0;
            for (int c = 0; c < E; c++) acc += U[i * E + c] * V[j * E + c];
            L[i * NB + j] = s * acc;
        }
    snprintf(w, sizeof w, "%s logits_per_image", tag);
    close_rel(L, tl_f32(ex, "logits_per_image", NULL), NB * NB, 1e-5, w);
    snprintf(w, sizeof w, "%s head_logits", tag);
    close_rel(hl, tl_f32(ex, "head_logits", NULL), NB * 7, 1e-5, w);
    CmLossValues lv;
    REQ_OK(cm_loss(U, V, hl, g_labels, NB, E, K, m->logit_scale.data[0], 1, 1, &lv, NULL, NULL, NULL, NULL));
    float want[3] = {tl_f32(ex, "loss", NULL)[0], tl_f32(ex, "loss_con", NULL)[0], tl_f32(ex, "loss_cls", NULL)[0]};
    float got[3] = {lv.loss, lv.loss_con, lv.loss_cls};
    const char *nm[3] = {"loss", "loss_con", "loss_cls"};
    for (int i = 0; i < 3; i++)
        CHECK(fabsf(got[i] - want[i]) <= 1e-5f * fabsf(want[i]) + 1e-7f, "%s %s %.8g vs %.8g", tag, nm[i], got[i], want[i]);
    if (tl_f32(ex, "logit_scale_exp", NULL)) CHECK(fabsf(s - tl_f32(ex, "logit_scale_exp", NULL)[0]) < 1e-5f, "logit_scale_exp");
}

static void test_forward_golden(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup: %s", cm_last_error());
    CmModel *m = load_tiny("golden/tiny/model.safetensors", CM_LOAD_STRICT);
    REQUIRE(m, "load");
    check_forward(m, g_exp, "lora");
    /* the same through activations (training path, eval mode) */
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, false, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, NB, false, &a));
    float U[NB * 32], V[NB * 32], hl[NB * 7];
    REQ_OK(cm_model_forward(m, a, g_images, g_tokens, NB, false, U, V, hl));
    close_rel(U, tl_f32(g_exp, "image_features", NULL), NB * 32, 1e-5, "acts image_features");
    close_rel(hl, tl_f32(g_exp, "head_logits", NULL), NB * 7, 1e-5, "acts head_logits");
    close_rel(cm_acts_image_raw(a), tl_f32(g_exp, "image_features_raw", NULL), NB * 32, 1e-5, "acts image raw");
    cm_acts_free(a);
    cm_model_free(m);
}

static double g_grad_rel = 1e-4;   /* gradient tolerance, relative to each golden tensor's max */
static bool g_amp = false;
static double g_worst = 0;

/* One training step's gradients, compared with prefix.<name> for every trainable tensor. */
static void grad_check(CmTrainMode mode, bool ckpt, CmTensorFile *ex, const char *prefix, bool zero_B) {
    CmModel *m = load_tiny("golden/tiny/model.safetensors", CM_LOAD_STRICT);
    REQUIRE(m, "load");
    cm_model_set_amp(m, g_amp);
    if (zero_B)
        for (int i = 0; i < m->n_params; i++)
            if (strstr(m->params[i].name, "lora_B")) memset(m->params[i].data, 0, m->params[i].numel * sizeof(float));
    REQ_OK(cm_model_set_mode(m, mode, false, false));
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, NB, ckpt, &a));
    float U[NB * 32], V[NB * 32], hl[NB * 7], dU[NB * 32], dV[NB * 32], dh[NB * 7], dls = 0;
    for (int rep = 0; rep < 2; rep++) {   /* twice: a stale-state bug would show */
        cm_model_zero_grad(m);
        REQ_OK(cm_model_forward(m, a, g_images, g_tokens, NB, false, U, V, hl));
        CmLossValues lv;
        REQ_OK(cm_loss(U, V, hl, g_labels, NB, 32, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, &dls));
        REQ_OK(cm_model_backward(m, a, dU, dV, dh));
    }
    if (m->logit_scale.grad) m->logit_scale.grad[0] += dls;
    int n_checked = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        char nm[160];
        snprintf(nm, sizeof nm, "%s.%s", prefix, p->name);
        const float *want = tl_f32(ex, nm, NULL);
        if (!p->trainable) continue;
        if (!want) {   /* head-only mode compares with grad_lora.* for the head */
            CHECK(mode == CM_TRAIN_HEAD && p->group != CM_GROUP_HEAD, "no golden %s", nm);
            continue;
        }
        char w[200];
        snprintf(w, sizeof w, "%s%s grad %s", prefix, ckpt ? " (ckpt)" : "", p->name);
        if (g_amp) {   /* bf16: relative L2 error of the whole tensor */
            double num = 0, den = 0;
            for (size_t e = 0; e < p->numel; e++) {
                double d = (double)p->grad[e] - want[e];
                num += d * d;
                den += (double)want[e] * want[e];
            }
            double rl2 = sqrt(num / (den + 1e-30));
            double bar = p->numel == 1 ? 0.35 : g_grad_rel;   /* logit_scale: a difference of large terms */
            if (p->numel > 1 && rl2 > g_worst) g_worst = rl2;
            CHECK(rl2 <= bar, "%s: relative L2 error %.3g > %.3g", w, rl2, bar);
        } else {
            close_rel(p->grad, want, p->numel, g_grad_rel, w);
        }
        if (zero_B && strstr(p->name, "lora_A")) CHECK(tl_max_abs(p->grad, p->numel) == 0.0, "%s not exactly 0", w);
        n_checked++;
    }
    int want_n = mode == CM_TRAIN_FULL ? 98 : mode == CM_TRAIN_LORA ? 36 : 28;
    CHECK(n_checked == want_n, "%d gradients checked, want %d", n_checked, want_n);
    /* frozen tensors have no gradient buffers at all */
    for (int i = 0; i < m->n_params; i++) CHECK(m->params[i].trainable == (m->params[i].grad != NULL), "%s grad buffer", m->params[i].name);
    cm_acts_free(a);
    cm_model_free(m);
}

static void test_grad_lora(void) { SHARED_OR_SKIP(); REQUIRE(setup(), "setup"); grad_check(CM_TRAIN_LORA, false, g_exp, "grad_lora", false); }
static void test_grad_full(void) { SHARED_OR_SKIP(); REQUIRE(setup(), "setup"); grad_check(CM_TRAIN_FULL, false, g_exp, "grad_full", false); }
static void test_grad_head(void) { SHARED_OR_SKIP(); REQUIRE(setup(), "setup"); grad_check(CM_TRAIN_HEAD, false, g_exp, "grad_lora", false); }
static void test_grad_ckpt(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    grad_check(CM_TRAIN_FULL, true, g_exp, "grad_full", false);
    grad_check(CM_TRAIN_LORA, true, g_exp, "grad_lora", false);
}
static void test_lora_b0(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = load_tiny("golden/tiny/model.safetensors", CM_LOAD_STRICT);
    REQUIRE(m, "load");
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "lora_B")) memset(m->params[i].data, 0, m->params[i].numel * sizeof(float));
    check_forward(m, g_b0, "B=0");
    cm_model_free(m);
    grad_check(CM_TRAIN_LORA, false, g_b0, "grad_lora", true);
}

/* CLIP-only files: LoRA (B = 0) and head initialised; features equal the B = 0 goldens. */
static void check_clip_only(const char *file, double rel, const char *tag) {
    CmModel *m = load_tiny(file, CM_LOAD_CLIP_ONLY_OK);
    REQUIRE(m, "%s: %s", file, cm_last_error());
    float U[NB * 32], V[NB * 32], ir[NB * 32];
    REQ_OK(cm_model_forward(m, NULL, g_images, g_tokens, NB, false, U, V, NULL));
    REQ_OK(cm_encode_image(m, g_images, NB, ir, NULL));
    char w[96];
    snprintf(w, sizeof w, "%s image_features", tag);
    close_rel(U, tl_f32(g_b0, "image_features", NULL), NB * 32, rel, w);
    snprintf(w, sizeof w, "%s text_features", tag);
    close_rel(V, tl_f32(g_b0, "text_features", NULL), NB * 32, rel, w);
    snprintf(w, sizeof w, "%s image_features_raw", tag);
    close_rel(ir, tl_f32(g_b0, "image_features_raw", NULL), NB * 32, rel, w);
    /* strict loading without the flag fails and names a LoRA tensor */
    CmModel *m2 = NULL;
    REQ_OK(cm_model_create(&g_cfg, &m2));
    CHECK(cm_model_load_file(m2, tl_shared(file), CM_LOAD_STRICT, 0) == CM_ERR_SHAPE && strstr(cm_last_error(), "lora_A"),
          "strict load of a CLIP-only file: %s", cm_last_error());
    cm_model_free(m2);
    cm_model_free(m);
}
static void test_fp16_weights(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    check_clip_only("golden/tiny/model_fp16.safetensors", 2e-3, "fp16");
}
static void test_torch_bin(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmTensorFile *f = NULL;
    if (cm_tensorfile_open(tl_shared("golden/tiny/open_clip_pytorch_model.bin"), &f) == CM_ERR_UNSUPPORTED) {
        fprintf(stderr, "  SKIPPED: torch zip reader not available in this build: %s\n", cm_last_error());
        tl_skip++;
        return;
    }
    cm_tensorfile_close(f);
    check_clip_only("golden/tiny/open_clip_pytorch_model.bin", 1e-5, "bin");
}

/* --precision amp: bf16 tower linears; looser bars (bf16 has 8 mantissa bits) */
static void test_amp(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = load_tiny("golden/tiny/model.safetensors", CM_LOAD_STRICT);
    REQUIRE(m, "load");
    cm_model_set_amp(m, true);
    float U[NB * 32], V[NB * 32], hl[NB * 7];
    REQ_OK(cm_model_forward(m, NULL, g_images, g_tokens, NB, false, U, V, hl));
    close_rel(U, tl_f32(g_exp, "image_features", NULL), NB * 32, 3e-2, "amp image_features");
    close_rel(V, tl_f32(g_exp, "text_features", NULL), NB * 32, 3e-2, "amp text_features");
    close_rel(hl, tl_f32(g_exp, "head_logits", NULL), NB * 7, 3e-2, "amp head_logits");
    /* and it really is a different computation */
    CHECK(tl_max_abs_diff(U, tl_f32(g_exp, "image_features", NULL), NB * 32) > 1e-6, "amp equals fp32 exactly");
    cm_model_free(m);
    g_amp = true;
    g_grad_rel = 0.15;
    grad_check(CM_TRAIN_FULL, false, g_exp, "grad_full", false);
    grad_check(CM_TRAIN_LORA, true, g_exp, "grad_lora", false);
    fprintf(stderr, "  amp: worst per-tensor relative L2 gradient error (tensors) %.3g\n", g_worst);
    g_amp = false;
    g_grad_rel = 1e-4;
}

/* LoRA folded into out_proj: the same features without the adapter */
static void test_merge_lora(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    CmModel *m = load_tiny("golden/tiny/model.safetensors", CM_LOAD_STRICT), *mm = NULL;
    REQUIRE(m, "load");
    REQ_OK(cm_model_merge_lora(m, &mm));
    CHECK(!mm->cfg.has_lora && mm->n_params == 90, "merged model has %d tensors", mm->n_params);
    float U[NB * 32], V[NB * 32], hl[NB * 7];
    REQ_OK(cm_model_forward(mm, NULL, g_images, g_tokens, NB, false, U, V, hl));
    close_rel(U, tl_f32(g_exp, "image_features", NULL), NB * 32, 1e-5, "merged image_features");
    close_rel(V, tl_f32(g_exp, "text_features", NULL), NB * 32, 1e-5, "merged text_features");
    close_rel(hl, tl_f32(g_exp, "head_logits", NULL), NB * 7, 1e-5, "merged head_logits");
    cm_model_free(mm);
    cm_model_free(m);
}

/* the public API (include/clipmod.h) over the same model */
static void test_public_api(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    clipmod_model *pm = NULL;
    REQ_OK(clipmod_model_load(tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"), &pm));
    CHECK(clipmod_model_embed_dim(pm) == 32 && clipmod_model_image_size(pm) == 64 && clipmod_model_num_classes(pm) == 7, "dims");
    float probs[NB * 7], logits[NB * 7], V[NB * 32];
    REQ_OK(clipmod_classify(pm, g_images, g_tokens, NB, probs, logits));
    close_rel(logits, tl_f32(g_exp, "head_logits", NULL), NB * 7, 1e-5, "api head logits");
    for (int i = 0; i < NB; i++) {
        float z = 0;
        for (int k = 0; k < 7; k++) z += probs[i * 7 + k];
        CHECK(fabsf(z - 1.0f) < 1e-5f, "probs row %d sums to %g", i, z);
    }
    REQ_OK(clipmod_encode_text(pm, g_tokens, NB, true, V));
    close_rel(V, tl_f32(g_exp, "text_features", NULL), NB * 32, 1e-5, "api text features");
    REQ_OK(clipmod_encode_text(pm, g_tokens, NB, false, V));
    close_rel(V, tl_f32(g_exp, "text_features_raw", NULL), NB * 32, 1e-5, "api text features raw");
    clipmod_model_free(pm);
    CHECK(clipmod_model_load(tl_shared("golden/tiny/model.safetensors"), "ViT-B-32", &pm) == CLIPMOD_ERR_SHAPE && !pm,
          "wrong config: %s", clipmod_last_error());
}

int main(void) {
    cm_threads_set(0);
    RUN(test_forward_golden);
    RUN(test_grad_lora);
    RUN(test_grad_full);
    RUN(test_grad_head);
    RUN(test_grad_ckpt);
    RUN(test_lora_b0);
    RUN(test_fp16_weights);
    RUN(test_torch_bin);
    RUN(test_public_api);
    RUN(test_merge_lora);
    RUN(test_amp);
    cm_tensorfile_close(g_in);
    cm_tensorfile_close(g_exp);
    cm_tensorfile_close(g_b0);
    return tl_summary("test_model_tiny");
}
