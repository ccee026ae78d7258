/*
 * bench_model.c — ViT-B-32 throughput at batch 32, fp32, formula weights (no files needed):
 * image encode and text encode (images/s, texts/s, achieved GFLOP/s at 8.8 GFLOP per image and
 * 6.0 GFLOP per caption), each as a fraction of the sgemm rate measured in the same run on a
 * tower-shaped product, plus one LoRA-mode training step (forward + loss + backward).
 * Targets (issue 2, PyTorch 1.13 on 2 cores): >= 17 images/s, >= 24 texts/s.
 * Usage: build/bench/bench_model [iterations (default 3)]; runs with OMP_WAIT_POLICY=passive unless the
 * variable is set (OMP_WAIT_POLICY=active build/bench/bench_model for libgomp's spinning default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/common.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "model/model.h"

#define CHK(x) do { if ((x) != CM_OK) { fprintf(stderr, "bench_model: %s failed: %s\n", #x, cm_last_error()); return 1; } } while (0)

static double sgemm_rate(void) {
    int M = 1600, K = 768, N = 3072;   /* vision c_fc at batch 32 */
    float *A = cm_malloc((size_t)M * K * 4, "a"), *B = cm_malloc((size_t)N * K * 4, "b"), *C = cm_malloc((size_t)M * N * 4, "c");
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) B[i] = (float)(i % 7) * 0.01f;
    cm_matmul(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);   /* warm-up */
    int reps = 10;
    double t0 = cm_now();
    for (int r = 0; r < reps; r++) cm_matmul(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
    double dt = cm_now() - t0;
    cm_free(A); cm_free(B); cm_free(C);
    return 2.0 * M * N * K * reps / dt / 1e9;
}

int main(int argc, char **argv) {
    /* libgomp's default (spinning) wait policy loses 30-40% when the 2 cores are shared with other
       processes; passive waiting keeps the forward at ~0.9 of the sgemm rate. The policy is read
       when libgomp loads, so set it by re-executing once (an explicit setting is kept). */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);   /* returns only on failure: then run as is */
    }
    printf("OMP_WAIT_POLICY=%s\n", getenv("OMP_WAIT_POLICY"));
    int iters = argc > 1 ? atoi(argv[1]) : 3;
    if (iters < 1) iters = 1;
    cm_threads_set(0);
    const int B = 32;
    CmModelConfig c;
    if (cm_config_from_name("ViT-B-32", &c)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
    CmModel *m = NULL;
    if (cm_model_create(&c, &m)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
    cm_model_init_formula(m, 1);
    size_t isz = 3 * 224 * 224;
    float *img = cm_malloc(B * isz * sizeof(float), "images");
    int32_t *tok = cm_malloc((size_t)B * 77 * sizeof(int32_t), "tokens");
    float *feat = cm_malloc((size_t)B * 512 * sizeof(float), "features");
    float *feat2 = cm_malloc((size_t)B * 512 * sizeof(float), "features");
    CmRng r;
    cm_rng_seed(&r, 1);
    for (size_t i = 0; i < B * isz; i++) img[i] = (float)cm_rng_normal(&r);
    for (int b = 0; b < B; b++) {
        int len = 8 + b % 20;
        for (int t = 0; t < 77; t++) tok[b * 77 + t] = 0;
        tok[b * 77] = 49406;
        for (int t = 1; t <= len; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok[b * 77 + len + 1] = 49407;
    }
    double gemm = sgemm_rate();
    printf("threads %d; sgemm [1600x768]x[768x3072]: %.1f GFLOP/s\n", cm_threads_get(), gemm);

    CHK(cm_encode_image(m, img, B, NULL, feat));   /* warm-up (allocations, oneDNN primitives) */
    double t0 = cm_now();
    for (int i = 0; i < iters; i++) CHK(cm_encode_image(m, img, B, NULL, feat));
    double ti = (cm_now() - t0) / iters;
    double ips = B / ti, igf = ips * 8.8;
    printf("image encode  b%d fp32: %6.2f images/s  %6.1f GFLOP/s  = %.2f of sgemm   (target >= 17 images/s: %s)\n",
           B, ips, igf, igf / gemm, ips >= 17 ? "met" : "NOT met");

    /* full-length captions (EOT at position 76): the same work as PyTorch's 77-token tower */
    int32_t *tok77 = cm_malloc((size_t)B * 77 * sizeof(int32_t), "tokens");
    for (int b = 0; b < B; b++) {
        tok77[b * 77] = 49406;
        for (int t = 1; t < 76; t++) tok77[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok77[b * 77 + 76] = 49407;
    }
    CHK(cm_encode_text(m, tok77, B, NULL, feat));
    t0 = cm_now();
    for (int i = 0; i < iters; i++) CHK(cm_encode_text(m, tok77, B, NULL, feat));
    double tt = (cm_now() - t0) / iters;
    double tps = B / tt, tgf = tps * 6.0;
    printf("text encode   b%d fp32: %6.2f texts/s   %6.1f GFLOP/s  = %.2f of sgemm   (77-token captions; target >= 24 texts/s: %s)\n",
           B, tps, tgf, tgf / gemm, tps >= 24 ? "met" : "NOT met");
    /* typical captions (8..27 tokens): the tower stops at the batch's last EOT (exact under the causal mask) */
    CHK(cm_encode_text(m, tok, B, NULL, feat));
    t0 = cm_now();
    for (int i = 0; i < iters; i++) CHK(cm_encode_text(m, tok, B, NULL, feat));
    double tts = B / ((cm_now() - t0) / iters);
    printf("text encode   b%d fp32: %6.2f texts/s with 8..27-token captions (%.2fx the 77-token rate)\n", B, tts, tts / tps);

    /* --precision amp: bf16 products in the tower linears */
    cm_model_set_amp(m, true);
    CHK(cm_encode_image(m, img, B, NULL, feat));
    t0 = cm_now();
    for (int i = 0; i < iters; i++) CHK(cm_encode_image(m, img, B, NULL, feat));
    double bi = B / ((cm_now() - t0) / iters);
    CHK(cm_encode_text(m, tok77, B, NULL, feat));
    t0 = cm_now();
    for (int i = 0; i < iters; i++) CHK(cm_encode_text(m, tok77, B, NULL, feat));
    double bt = B / ((cm_now() - t0) / iters);
    cm_model_set_amp(m, false);
    printf("amp (bf16 linears, native=%d): %6.2f images/s (%.2fx fp32), %6.2f texts/s (%.2fx fp32)  (PyTorch bf16: 33.2 / 39)\n",
           (int)cm_bf16_native(), bi, bi / ips, bt, bt / tps);

    /* one LoRA-mode training step: forward with activations, loss, backward (B = 0 LoRA init) */
    cm_model_free(m);
    c.has_head = true;
    c.has_lora = true;
    if (cm_model_create(&c, &m)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
    cm_model_init_formula(m, 1);
    cm_model_init_lora_head(m, 2);
    CHK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmActs *a = NULL;
    if (cm_acts_create(m, B, false, &a)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
    float *dU = cm_malloc((size_t)B * 512 * 4, "dU"), *dV = cm_malloc((size_t)B * 512 * 4, "dV");
    float hl[32 * 7], dh[32 * 7];
    int32_t lab[32];
    for (int b = 0; b < B; b++) lab[b] = b % 7;
    /* the median of `steps` timed steps after one warm-up step (one timed step swung by +-10% on
       a shared machine, more than the differences bench/compare.sh looks for) */
    int steps = iters < 3 ? 3 : iters;
    double st[64];
    if (steps > 64) steps = 64;
    for (int i = 0; i <= steps; i++) {
        double s0 = cm_now();
        cm_model_zero_grad(m);
        CHK(cm_model_forward(m, a, img, tok, B, true, feat, feat2, hl));
        CmLossValues lv;
        CHK(cm_loss(feat, feat2, hl, lab, B, 512, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, NULL));
        CHK(cm_model_backward(m, a, dU, dV, dh));
        if (i) st[i - 1] = cm_now() - s0;
    }
    for (int i = 1; i < steps; i++)   /* insertion sort: the median */
        for (int j = i; j > 0 && st[j] < st[j - 1]; j--) { double t = st[j]; st[j] = st[j - 1]; st[j - 1] = t; }
    double ts = st[steps / 2];
    printf("LoRA train step b%d fp32: %6.2f samples/s (median of %d steps; PyTorch 1.13 on 2 cores: 4.9)\n", B, B / ts, steps);
    cm_acts_free(a);
    cm_free(dU); cm_free(dV);
    cm_free(img); cm_free(tok); cm_free(tok77); cm_free(feat); cm_free(feat2);
    cm_model_free(m);
    return 0;
}
