/*
 * bench_kernels.c — kernel throughput on ViT-B-32 shapes at batch 32 (`make bench`):
 *   - sgemm GFLOP/s (and bf16 oneDNN GFLOP/s, ratio to fp32) through cm_linear_forward / cm_linear_backward (dX only, dW only) for the
 *     qkv (768->2304), fc1 (768->3072), out_proj (768->768) and fc2 (3072->768) layers, M = 32*50;
 *   - attention forward and backward (vision B=32 T=50 C=768 NH=12; text B=32 T=77 C=512 NH=8
 *     causal): batched oneDNN path vs the per-head BLAS fallback vs the plain reference;
 *   - GELU / QuickGELU / softmax / layernorm: fast vs reference in ns/element.
 * Every ratio is measured in the same run. CLIPMOD_THREADS sets the thread count.
 * BENCH_QUICK=1 runs each case once (smoke test).
 */
#include "kernels/ops.h"
#include "kernels/kernels_internal.h"
#include "kernel_lab/ref_ops.h"
#include "common/common.h"
#include "common/rng.h"
#include <stdlib.h>
#include <string.h>

static int quick;

static float *randv(size_t n, float scale, CmRng *r) {
    float *x = cm_malloc(sizeof(float) * n, "bench buffer");
    if (!x) { fprintf(stderr, "%s\n", cm_last_error()); exit(1); }
    for (size_t i = 0; i < n; i++) x[i] = (float)((cm_rng_uniform(r) * 2 - 1) * scale);
    return x;
}

/* best-of wall time of fn over `reps` repetitions after one warm-up */
#define BEST(reps, stmt) ({ double best_ = 1e30; int reps_ = quick ? 1 : (reps); \
    stmt; for (int r_ = 0; r_ < reps_; r_++) { double t0_ = cm_now(); stmt; double t_ = cm_now() - t0_; \
    if (t_ < best_) best_ = t_; } best_; })

static void bench_gemm(CmRng *r) {
    const int M = 32 * 50;
    const struct { const char *name; int C, OC; } sh[] = {
        {"qkv     768->2304", 768, 2304}, {"fc1     768->3072", 768, 3072},
        {"outproj 768->768 ", 768, 768},  {"fc2    3072->768 ", 3072, 768}};
    printf("sgemm (OpenBLAS via linear_*), M=%d, GFLOP/s:\n", M);
    printf("  %-18s %9s %9s %9s\n", "layer", "forward", "dX", "dW");
    for (size_t k = 0; k < sizeof sh / sizeof sh[0]; k++) {
        int C = sh[k].C, OC = sh[k].OC;
        float *x = randv((size_t)M * C, 1, r), *W = randv((size_t)OC * C, 0.05f, r), *b = randv(OC, 1, r);
        float *y = randv((size_t)M * OC, 1, r), *dx = randv((size_t)M * C, 0, r), *dW = randv((size_t)OC * C, 0, r);
        double fl = 2.0 * M * C * OC;
        double tf = BEST(5, cm_linear_forward(y, x, W, b, M, C, OC));
        double tx = BEST(5, cm_linear_backward(dx, NULL, NULL, y, x, W, M, C, OC));
        double tw = BEST(5, cm_linear_backward(NULL, dW, NULL, y, x, W, M, C, OC));
        printf("  %-18s %9.1f %9.1f %9.1f   fp32\n", sh[k].name, fl / tf * 1e-9, fl / tx * 1e-9, fl / tw * 1e-9);
        double c0 = cm_now();
        size_t wsb = cm_linear_bf16_plan(M, C, OC, true, true);   // planning creates the primitives
        double tc = cm_now() - c0;
        void *ws = cm_malloc(wsb, "bf16 workspace");
        double bf = BEST(5, cm_linear_forward_bf16(y, x, W, b, M, C, OC, ws, wsb));
        double bx = BEST(5, cm_linear_backward_bf16(dx, NULL, NULL, y, x, W, M, C, OC, ws, wsb));
        double bw = BEST(5, cm_linear_backward_bf16(NULL, dW, NULL, y, x, W, M, C, OC, ws, wsb));
        printf("  %-18s %9.1f %9.1f %9.1f   bf16 (oneDNN%s; incl. fp32->bf16 conversion; planning %.0f ms)\n",
               "", fl / bf * 1e-9, fl / bx * 1e-9, fl / bw * 1e-9, cm_bf16_native() ? "" : " UNAVAILABLE: fallback", tc * 1e3);
        printf("  %-18s %8.2fx %8.2fx %8.2fx   bf16/fp32 speed\n", "", tf / bf, tx / bx, tw / bw);
        cm_free(x); cm_free(W); cm_free(b); cm_free(y); cm_free(dx); cm_free(dW); cm_free(ws);
    }
}

static void bench_attention(CmRng *r, int B, int T, int C, int NH, bool causal) {
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    float *qkv = randv(nq, 1, r), *out = randv(no, 0, r), *att = randv(na, 0, r), *dq = randv(nq, 0, r);
    double fl = 4.0 * B * NH * T * T * (C / NH);  // q k^T and att v
    size_t wsb = cm_attention_plan(B, T, C, NH, true);
    void *ws = cm_malloc(wsb, "attention workspace");
    double tf = BEST(5, cm_attention_forward(out, att, qkv, B, T, C, NH, causal, ws, wsb));
    double tr = BEST(1, cm_attention_forward_ref(out, att, qkv, B, T, C, NH, causal));
    double tb = BEST(5, cm_attention_backward(dq, out, qkv, att, B, T, C, NH, causal, ws, wsb));
    double hf = BEST(5, cm_attention_forward_blas(out, att, qkv, B, T, C, NH, causal));
    double hb = BEST(5, cm_attention_backward_blas(dq, out, qkv, att, B, T, C, NH, causal, ws));
    printf("attention B=%d T=%d C=%d NH=%d%s:\n  batched oneDNN: forward %.2f ms (%.1f GFLOP/s), backward %.2f ms\n"
           "  per-head BLAS:  forward %.2f ms, backward %.2f ms  (per-head/batched %.2fx, %.2fx)\n"
           "  reference:      forward %.1f ms (ref/fast %.1fx)\n", B, T, C, NH, causal ? " causal" : "",
           tf * 1e3, fl / tf * 1e-9, tb * 1e3, hf * 1e3, hb * 1e3, hf / tf, hb / tb, tr * 1e3, tr / tf);
    cm_free(qkv); cm_free(out); cm_free(att); cm_free(dq); cm_free(ws);
}

typedef void (*ew_fn)(float *, const float *, size_t);
static void bench_ew(CmRng *r, const char *name, ew_fn fast, ew_fn ref) {
    size_t n = (size_t)32 * 50 * 3072;  // the fc1 activation of ViT-B-32 at batch 32
    float *x = randv(n, 4, r), *y = randv(n, 0, r);
    double tf = BEST(5, fast(y, x, n)), tr = BEST(2, ref(y, x, n));
    printf("%-10s n=%zu: fast %.3f ns/elem, ref %.3f ns/elem, ref/fast %.1fx\n", name, n,
           tf / n * 1e9, tr / n * 1e9, tr / tf);
    cm_free(x); cm_free(y);
}

static void bench_rows(CmRng *r) {
    int M = 32 * 50, C = 768;
    size_t n = (size_t)M * C;
    float *x = randv(n, 2, r), *y = randv(n, 0, r), *w = randv(C, 1, r), *b = randv(C, 1, r);
    float *mu = randv(M, 0, r), *rs = randv(M, 0, r);
    double tf = BEST(5, cm_layernorm_forward(y, mu, rs, x, w, b, M, C));
    double tr = BEST(2, cm_layernorm_forward_ref(y, mu, rs, x, w, b, M, C));
    printf("layernorm  M=%d C=%d: fast %.3f ns/elem, ref %.3f ns/elem, ref/fast %.1fx\n", M, C,
           tf / n * 1e9, tr / n * 1e9, tr / tf);
    int Ms = 32 * 12 * 50, N = 50;
    float *s = randv((size_t)Ms * N, 4, r), *p = randv((size_t)Ms * N, 0, r);
    tf = BEST(5, cm_softmax_forward(p, s, Ms, N));
    tr = BEST(2, cm_softmax_forward_ref(p, s, Ms, N));
    printf("softmax    M=%d N=%d: fast %.3f ns/elem, ref %.3f ns/elem, ref/fast %.1fx\n", Ms, N,
           tf / ((double)Ms * N) * 1e9, tr / ((double)Ms * N) * 1e9, tr / tf);
    cm_free(x); cm_free(y); cm_free(w); cm_free(b); cm_free(mu); cm_free(rs); cm_free(s); cm_free(p);
}

int main(void) {
    const char *q = getenv("BENCH_QUICK");
    quick = q && *q && strcmp(q, "0");
    cm_threads_set(0);
    printf("bench_kernels: %d threads%s\n", cm_threads_get(), quick ? " (quick)" : "");
    CmRng r;
    cm_rng_seed(&r, 7);
    bench_gemm(&r);
    bench_attention(&r, 32, 50, 768, 12, false);
    bench_attention(&r, 32, 77, 512, 8, true);
    bench_ew(&r, "gelu", cm_gelu_forward, cm_gelu_forward_ref);
    bench_ew(&r, "quickgelu", cm_quickgelu_forward, cm_quickgelu_forward_ref);
    bench_rows(&r);
    cm_bf16_release();
    return 0;
}
