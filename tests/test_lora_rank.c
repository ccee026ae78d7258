/*
 * test_lora_rank.c — every LoRA rank the config accepts trains (issue 8 item 7): ranks 1, 4, 32
 * and 64 (the old kernel held at most 16 in a stack array and aborted above) give LoRA gradients
 * equal to a double-precision reference of the LoRA formula, and `clipmod train --lora-rank R`
 * trains with each of them.
 *
 * Reference. With out = ao W^T + b + s (ao A^T) B^T (s = alpha/r) and G = dL/d out (per block),
 *   dW = G^T ao,   dB = s G^T (ao A^T) = s dW A^T,   dA = s B^T G^T ao = s B^T dW.
 * In full-training mode the model computes dW (BLAS path, independent of the LoRA kernels) and
 * dA, dB (the LoRA kernels); the test evaluates s dW A^T and s B^T dW in double from the fp32 dW.
 * Both routes sum the same n = M*D products (M rows, D width) in different orders, so they agree
 * to c * sqrt(n) * eps_fp32 * scale with scale = the tensor's largest |reference| (c = 8).
 * Widths of 160 (two 128-column blocks) and ranks above 16 (several rank tiles) cover every tile
 * edge of the kernel. No ../shared data is needed.
 */
#include "testlib.h"
#include "data/synth.h"
#include "model/model.h"

static const char *CFG_JSON =
    "{\"model_name\": \"lora-rank-test\", \"model_cfg\": {\"embed_dim\": 32, \"quick_gelu\": false,"
    " \"vision_cfg\": {\"image_size\": 64, \"layers\": 2, \"width\": 160, \"patch_size\": 16, \"head_width\": 32, \"mlp_ratio\": 2.0},"
    " \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 1000, \"width\": 160, \"heads\": 5, \"layers\": 2, \"mlp_ratio\": 2.0}},"
    " \"lora\": {\"r\": 4, \"alpha\": 32.0},"
    " \"head\": {\"d\": 32, \"heads\": 4, \"ff\": 64, \"layers\": 1, \"classes\": 7}}";

static uint64_t g_state = 0x9e3779b97f4a7c15ull;
static float urand(void) {   /* U(-1, 1) */
    g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(g_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

static void check_rank(int r) {
    CmModelConfig cfg;
    REQ_OK(cm_config_from_json(CFG_JSON, strlen(CFG_JSON), "test config", &cfg));
    cfg.lora_rank = r;
    REQ_OK(cm_config_validate(&cfg));
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    cm_model_init(m, 7);
    /* B = 0 after init would make dA = 0 exactly: give B values */
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < m->params[i].numel; k++) m->params[i].data[k] = 0.05f * urand();
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, false, false));
    enum { B = 4 };
    int S = cfg.vision.image_size, ctx = cfg.text.context_length, E = cfg.embed_dim, K = cfg.head.n_classes;
    float *img = cm_malloc((size_t)B * 3 * S * S * sizeof(float), "images");
    int32_t tok[B * 77] = {0}, labels[B] = {0, 3, 6, 2};
    float U[B * 32], V[B * 32], logits[B * 7], dU[B * 32], dV[B * 32], dh[B * 7];
    REQUIRE(img && E == 32 && K == 7 && ctx == 77, "setup");
    for (size_t i = 0; i < (size_t)B * 3 * S * S; i++) img[i] = urand();
    for (int b = 0; b < B; b++) {
        int len = 5 + 9 * b;   /* EOT (the largest id) at 5, 14, 23, 32 */
        tok[b * ctx] = 998;
        for (int t = 1; t < len; t++) tok[b * ctx + t] = 1 + (int)((urand() + 1.0f) * 400.0f);
        tok[b * ctx + len] = 999;
    }
    CmActs *a;
    REQ_OK(cm_acts_create(m, B, false, &a));
    REQ_OK(cm_model_forward(m, a, img, tok, B, false, U, V, logits));
    CmLossValues lv;
    float dls;
    REQ_OK(cm_loss(U, V, logits, labels, B, E, K, m->logit_scale.data[0], 1.0f, 1.0f, &lv, dU, dV, dh, &dls));
    REQ_OK(cm_model_backward(m, a, dU, dV, dh));

    const double eps = 5.96e-8, c = 8.0, s = cfg.lora_alpha / (double)r;
    int checked = 0;
    double worst = 0;
    for (int tower = 0; tower < 2; tower++) {
        int L = tower ? cfg.text.layers : cfg.vision.layers;
        int D = tower ? cfg.text.width : cfg.vision.width;
        int M = tower ? B * 33 : B * ((S / 16) * (S / 16) + 1);
        for (int l = 0; l < L; l++) {
            const CmBlockParams *k = tower ? &m->text.blocks[l] : &m->visual.blocks[l];
            REQUIRE(k->lora_A.idx >= 0 && k->lora_B.idx >= 0 && k->out_w.idx >= 0, "block %d has no LoRA", l);
            const CmParam *pA = &m->params[k->lora_A.idx], *pB = &m->params[k->lora_B.idx], *pW = &m->params[k->out_w.idx];
            REQUIRE(pA->grad && pB->grad && pW->grad, "LoRA / out_proj not trainable");
            REQUIRE(pA->shape[0] == r && pA->shape[1] == D && pB->shape[0] == D && pB->shape[1] == r, "LoRA shapes");
            const float *A = pA->data, *Bw = pB->data, *dW = pW->grad;
            double *refA = cm_malloc((size_t)r * D * sizeof(double), "ref"), *refB = cm_malloc((size_t)D * r * sizeof(double), "ref");
            REQUIRE(refA && refB, "oom");
            double maxA = 0, maxB = 0;
            for (int q = 0; q < r; q++)
                for (int col = 0; col < D; col++) {   /* dA[q,col] = s sum_d B[d,q] dW[d,col] */
                    double acc = 0;
                    for (int d = 0; d < D; d++) acc += (double)Bw[(size_t)d * r + q] * dW[(size_t)d * D + col];
                    refA[(size_t)q * D + col] = s * acc;
                    if (fabs(s * acc) > maxA) maxA = fabs(s * acc);
                }
            for (int d = 0; d < D; d++)
                for (int q = 0; q < r; q++) {         /* dB[d,q] = s sum_col dW[d,col] A[q,col] */
                    double acc = 0;
                    for (int col = 0; col < D; col++) acc += (double)dW[(size_t)d * D + col] * A[(size_t)q * D + col];
                    refB[(size_t)d * r + q] = s * acc;
                    if (fabs(s * acc) > maxB) maxB = fabs(s * acc);
                }
            double tolA = c * sqrt((double)M * D) * eps * maxA, tolB = c * sqrt((double)M * D) * eps * maxB;
            double eA = 0, eB = 0;
            for (size_t i = 0; i < (size_t)r * D; i++) {
                eA = fmax(eA, fabs(pA->grad[i] - refA[i]));
                eB = fmax(eB, fabs(pB->grad[i] - refB[i]));
            }
            CHECK(maxA > 0 && maxB > 0, "rank %d %s: zero reference gradient", r, pA->name);
            CHECK(eA <= tolA, "rank %d %s: max |diff| %.3g > %.3g (max |ref| %.3g)", r, pA->name, eA, tolA, maxA);
            CHECK(eB <= tolB, "rank %d %s: max |diff| %.3g > %.3g (max |ref| %.3g)", r, pB->name, eB, tolB, maxB);
            worst = fmax(worst, fmax(eA / tolA, eB / tolB));
            checked++;
            cm_free(refA);
            cm_free(refB);
        }
    }
    CHECK(checked == 4, "%d blocks checked", checked);
    fprintf(stderr, "    rank %2d: LoRA grads within %.2f of the fp32 bound\n", r, worst);
    cm_acts_free(a);
    cm_free(img);
    cm_model_free(m);
}

static void test_rank_1(void) { check_rank(1); }
static void test_rank_4(void) { check_rank(4); }
static void test_rank_32(void) { check_rank(32); }
static void test_rank_64(void) { check_rank(64); }

/* `clipmod train --enable-lora --lora-rank R` trains (2 optimizer steps) for each rank on the
   synthetic shards of the demo (byte tokenizer: no ../shared needed); the checkpoint holds
   rank-R LoRA tensors. --lora-rank 32 aborted with "assertion 'r <= 16' failed" (exit 134) before. */
static void test_cli_ranks(void) {
    CLIPMOD_BIN_OR_SKIP();
    REQUIRE(tl_tmpdir_make("lora_rank"), "tmpdir");
    CmSynthOpts so;
    cm_synth_opts_default(&so);
    so.n_train = 8; so.n_val = 4; so.shard_size = 8; so.image_size = 32;
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tl_tmp("data"));
    REQ_OK(cm_synth_write(dir, &so));
    static const char *cfg =
        "{\"model_name\": \"rank-cli\", \"model_cfg\": {\"embed_dim\": 32, \"quick_gelu\": false,"
        " \"vision_cfg\": {\"image_size\": 32, \"layers\": 1, \"width\": 64, \"patch_size\": 16, \"head_width\": 32, \"mlp_ratio\": 2.0},"
        " \"text_cfg\": {\"context_length\": 48, \"vocab_size\": 258, \"width\": 64, \"heads\": 2, \"layers\": 1, \"mlp_ratio\": 2.0}},"
        " \"head\": {\"d\": 32, \"heads\": 4, \"ff\": 64, \"layers\": 1, \"classes\": 7}}";
    char cfgp[700];
    snprintf(cfgp, sizeof cfgp, "%s", tl_tmp("model.json"));
    REQUIRE(tl_write_text(cfgp, cfg) == 0, "config");
    static const int ranks[4] = {1, 4, 32, 64};
    static char err[1 << 14];
    for (int i = 0; i < 4; i++) {
        char args[3000];
        snprintf(args, sizeof args,
                 "train --model %s --tokenizer bytes --enable-lora --lora-rank %d --train-data %s/train/00000.tar "
                 "--train-num-samples 8 --batch-size 4 --epochs 1 --warmup 1 --lr 1e-3 --precision fp32 --workers 1 "
                 "--threads 1 --logs %s --name r%d", cfgp, ranks[i], dir, dir, ranks[i]);
        int rc = tl_run_clipmod(args, NULL, 0, err, sizeof err);
        CHECK(rc == 0, "--lora-rank %d: exit %d: %s", ranks[i], rc, err);
        if (rc) continue;
        char ck[800];
        snprintf(ck, sizeof ck, "%s/r%d/checkpoints/epoch_1.safetensors", dir, ranks[i]);
        CmTensorFile *f;
        if (cm_tensorfile_open(ck, &f)) { CHECK(0, "checkpoint %s: %s", ck, cm_last_error()); continue; }
        const CmTensorView *a = cm_tensorfile_find(f, "visual.transformer.resblocks.0.attn.out_proj.lora_A.weight");
        const char *step = cm_tensorfile_metadata(f, "step");
        CHECK(a && a->ndim == 2 && a->shape[0] == ranks[i] && a->shape[1] == 64 && step && !strcmp(step, "2"),
              "--lora-rank %d: checkpoint lora_A %lld x %lld after step %s", ranks[i], a ? (long long)a->shape[0] : -1LL,
              a ? (long long)a->shape[1] : -1LL, step ? step : "?");
        cm_tensorfile_close(f);
    }
    tl_tmpdir_remove();
}

int main(void) {
    RUN(test_rank_1);
    RUN(test_rank_4);
    RUN(test_rank_32);
    RUN(test_rank_64);
    RUN(test_cli_ranks);
    return tl_summary("test_lora_rank");
}
