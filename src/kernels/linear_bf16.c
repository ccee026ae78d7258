/*
 * linear_bf16.c — bf16 matrix products for `--precision amp` (torch autocast semantics on CPU):
 * inputs (activations, weights, upstream gradients) are rounded fp32 -> bf16 (round to nearest
 * even), products accumulate in fp32, outputs are fp32. The same forward/backward contract as
 * cm_linear_forward/cm_linear_backward (backward accumulates, NULL gradients skipped).
 *
 * Engine: oneDNN's matmul primitive (C API, dnnl.h; AMX/AVX512-BF16 kernels). Primitives are
 * created once per (shape, layout, accumulate) and kept in the mutex-protected cache of
 * dnnl_matmul.c (the first creation costs ms to tens of ms, later calls ~0). The bf16 copies of the inputs live in grow-only
 * thread-local scratch buffers. When oneDNN cannot build a bf16 primitive (a CPU without bf16
 * support), the fallback rounds the inputs to bf16 and multiplies with fp32 sgemm: the same
 * numbers up to summation order. The *_ref versions round, then use plain loops in double.
 *
 * Every product is  dst[M,N] (+)= src[M,K] @ wei[K,N]  with src/wei given as plain row-major
 * (tag ab) or transposed (tag ba) views:
 *   forward  out[M,OC]   = inp[M,C] (ab)   @ W^T: W[OC,C] seen as [C,OC] (ba)  + b
 *   dX       dinp[M,C]  += dout[M,OC] (ab) @ W[OC,C] (ab)
 *   dW       dW[OC,C]   += dout^T: dout[M,OC] seen as [OC,M] (ba) @ inp[M,C] (ab)
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "common/common.h"
#include "kernels/kernels_internal.h"
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// fp32 <-> bf16

static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                          // nearest even
    return (uint16_t)(u >> 16);
}

float cm_bf16_round(float x) {
    uint32_t u = (uint32_t)f2bf(x) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

CM_HOT static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = f2bf(src[i]);
}

static float *rounded_copy(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    CM_ASSERT(y != NULL);
    for (size_t i = 0; i < n; i++) y[i] = cm_bf16_round(x[i]);
    return y;
}

// thread-local grow-only scratch for the bf16 copies (slot 0: src, 1: weights, 2: dout)
static _Thread_local uint16_t *tl_buf[3];
static _Thread_local size_t tl_cap[3];

static uint16_t *scratch(int slot, size_t n) {
    if (n > tl_cap[slot]) {
        cm_free(tl_buf[slot]);
        tl_buf[slot] = cm_malloc(n * sizeof(uint16_t), "bf16 scratch");
        CM_ASSERT(tl_buf[slot] != NULL);
        tl_cap[slot] = n;
    }
    return tl_buf[slot];
}

// ---------------------------------------------------------------------------------------------
// oneDNN products through the shared primitive cache (dnnl_matmul.c)

static void view2(CmMatmulDesc *d, int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
    d->dims[0] = rows; d->dims[1] = cols; d->strides[0] = srow; d->strides[1] = scol; d->dt = CM_DT_BF16;
}

/* dst[M,N] (+)= src[M,K] @ wei[K,N] (+ bias); src_t/wei_t: the operand is stored transposed */
static bool run_prim(int M, int N, int K, const uint16_t *src, int src_t, const uint16_t *wei, int wei_t,
                     const float *bias, float *dst, int acc) {
    CmMatmulKey k;
    cm_mm_key_init(&k, 2);
    view2(&k.src, M, K, src_t ? 1 : K, src_t ? M : 1);
    view2(&k.wei, K, N, wei_t ? 1 : N, wei_t ? K : 1);
    view2(&k.dst, M, N, N, 1);
    k.dst.dt = CM_DT_F32;
    k.bias = bias != NULL;
    k.acc = acc;
    if (cm_mm_run(&k, src, wei, bias, dst)) return true;
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        cm_warn("bf16: oneDNN has no bf16 matmul here; using bf16-rounded inputs with fp32 sgemm");
    return false;
}

bool cm_bf16_native(void) {
    static const uint16_t one[16 * 16];
    float out[16 * 16];
    return run_prim(16, 16, 16, one, 0, one, 0, NULL, out, 0);
}

void cm_bf16_release(void) {
    cm_mm_release();
    for (int i = 0; i < 3; i++) { cm_free(tl_buf[i]); tl_buf[i] = NULL; tl_cap[i] = 0; }
}

// ---------------------------------------------------------------------------------------------
// fallback: bf16-rounded copies + fp32 sgemm

static void fallback_forward(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    float *x = rounded_copy(inp, (size_t)M * C), *w = rounded_copy(W, (size_t)OC * C);
    cm_linear_forward(out, x, w, b, M, C, OC);
    free(x); free(w);
}

// forward: out[M,OC] = bf16(inp)[M,C] @ bf16(W)[OC,C]^T + b[OC]
void cm_linear_forward_bf16(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    if (M <= 0 || OC <= 0) return;
    if (C <= 0) { cm_linear_forward(out, inp, W, b, M, C, OC); return; }
    uint16_t *x = scratch(0, (size_t)M * C), *w = scratch(1, (size_t)OC * C);
    to_bf16(x, inp, (size_t)M * C);
    to_bf16(w, W, (size_t)OC * C);
    if (!run_prim(M, OC, C, x, 0, w, 1, b, out, 0)) fallback_forward(out, inp, W, b, M, C, OC);
}

// backward: dinp[M,C] += bf16(dout) @ bf16(W) ; dW[OC,C] += bf16(dout)^T @ bf16(inp) ; db += colsum(dout)
void cm_linear_backward_bf16(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                          const float *W, int M, int C, int OC) {
    if (M <= 0 || C <= 0 || OC <= 0) return;
    if (db) cm_linear_backward(NULL, NULL, db, dout, inp, W, M, C, OC);  // fp32 column sums
    if (!dinp && !dW) return;
    uint16_t *g = scratch(2, (size_t)M * OC);
    to_bf16(g, dout, (size_t)M * OC);
    if (dinp) {
        uint16_t *w = scratch(1, (size_t)OC * C);
        to_bf16(w, W, (size_t)OC * C);
        if (!run_prim(M, C, OC, g, 0, w, 0, NULL, dinp, 1)) {
            float *d = rounded_copy(dout, (size_t)M * OC), *wr = rounded_copy(W, (size_t)OC * C);
            cm_linear_backward(dinp, NULL, NULL, d, NULL, wr, M, C, OC);
            free(d); free(wr);
        }
    }
    if (dW) {
        uint16_t *x = scratch(0, (size_t)M * C);
        to_bf16(x, inp, (size_t)M * C);
        if (!run_prim(OC, C, M, g, 1, x, 0, NULL, dW, 1)) {
            float *d = rounded_copy(dout, (size_t)M * OC), *xr = rounded_copy(inp, (size_t)M * C);
            cm_linear_backward(NULL, dW, NULL, d, xr, NULL, M, C, OC);
            free(d); free(xr);
        }
    }
}

void cm_linear_forward_bf16_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    float *x = rounded_copy(inp, (size_t)M * C), *w = rounded_copy(W, (size_t)OC * C);
    cm_linear_forward_ref(out, x, w, b, M, C, OC);
    free(x); free(w);
}

void cm_linear_backward_bf16_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                              const float *W, int M, int C, int OC) {
    if (db) cm_linear_backward_ref(NULL, NULL, db, dout, inp, W, M, C, OC);
    float *d = rounded_copy(dout, (size_t)M * OC), *x = rounded_copy(inp, (size_t)M * C);
    float *w = rounded_copy(W, (size_t)OC * C);
    cm_linear_backward_ref(dinp, dW, NULL, d, x, w, M, C, OC);
    free(d); free(x); free(w);
}
