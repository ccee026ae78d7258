/*
 * linear_bf16.c — bf16 matrix products for `--precision amp` (torch autocast semantics on CPU):
 * inputs (activations, weights, upstream gradients) are rounded fp32 -> bf16 (round to nearest
 * even), products accumulate in fp32, outputs are fp32. The same forward/backward contract as
 * cm_linear_forward/cm_linear_backward (backward accumulates, NULL gradients skipped).
 *
 * Engine: oneDNN's matmul primitive (C API, dnnl.h; AMX/AVX512-BF16 kernels). Primitives are
 * created once per (shape, layout, accumulate) and kept in the mutex-protected cache of
 * dnnl_matmul.c (the first creation costs ms to tens of ms, later calls ~0). The bf16 copies of the
 * inputs live in the caller's workspace (cm_linear_bf16_workspace bytes): kernels never allocate. When oneDNN cannot build a bf16 primitive (a CPU without bf16
 * support), the fallback rounds the inputs to bf16 and multiplies with fp32 sgemm: the same
 * numbers up to summation order. The references (round, then loops in double) are in tests/kernel_lab/.
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
#include "common/bf16.h"
#include "kernels/kernels_internal.h"
#include <string.h>

// ---------------------------------------------------------------------------------------------
// fp32 <-> bf16

float cm_bf16_round(float x) { return cm_bf16_to_f32(cm_bf16_from_f32(x)); }

CM_HOT static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = cm_bf16_from_f32(src[i]);
}

/* y[0..n) = bf16-rounded x (the fallback's fp32 operands) */
static float *rounded_copy(float *y, const float *x, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] = cm_bf16_round(x[i]);
    return y;
}

/* Workspace layout (bytes = cm_linear_bf16_workspace): native path: the bf16 copies of the three
   operands of the call (src, weights, dout) at offsets 0, MC, MC+OCC halfwords; fallback: the
   two fp32 rounded operands of one product at float offsets 0 and the first's size. */
size_t cm_linear_bf16_workspace(int M, int C, int OC) {
    size_t mc = (size_t)(M > 0 ? M : 0) * (C > 0 ? C : 0), oc = (size_t)(OC > 0 ? OC : 0) * (C > 0 ? C : 0),
           mo = (size_t)(M > 0 ? M : 0) * (OC > 0 ? OC : 0);
    size_t native = 2 * (mc + oc + mo), pair = mc + oc;
    if (mo + oc > pair) pair = mo + oc;
    if (mo + mc > pair) pair = mo + mc;
    return native > 4 * pair ? native : 4 * pair;
}

// ---------------------------------------------------------------------------------------------
// oneDNN products through the shared primitive cache (dnnl_matmul.c)

static void view2(CmMatmulDesc *d, int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
    d->dims[0] = rows; d->dims[1] = cols; d->strides[0] = srow; d->strides[1] = scol; d->dt = CM_DT_BF16;
}

static void prim_key(CmMatmulKey *k, int M, int N, int K, int src_t, int wei_t, int bias, int acc) {
    cm_mm_key_init(k, 2);
    view2(&k->src, M, K, src_t ? 1 : K, src_t ? M : 1);
    view2(&k->wei, K, N, wei_t ? 1 : N, wei_t ? K : 1);
    view2(&k->dst, M, N, N, 1);
    k->dst.dt = CM_DT_F32;
    k->bias = bias;
    k->acc = acc;
}

bool cm_linear_bf16_prepare(int M, int C, int OC, bool bias, bool backward) {
    if (M <= 0 || C <= 0 || OC <= 0) return false;
    CmMatmulKey k;
    prim_key(&k, M, OC, C, 0, 1, bias, 0);
    bool ok = cm_mm_prepare(&k);
    if (ok && backward) {
        prim_key(&k, M, C, OC, 0, 0, 0, 1);   /* dinp */
        ok = cm_mm_prepare(&k);
        prim_key(&k, OC, C, M, 1, 0, 0, 1);   /* dW */
        ok = ok && cm_mm_prepare(&k);
    }
    return ok;
}

/* dst[M,N] (+)= src[M,K] @ wei[K,N] (+ bias); src_t/wei_t: the operand is stored transposed */
static bool run_prim(int M, int N, int K, const uint16_t *src, int src_t, const uint16_t *wei, int wei_t,
                     const float *bias, float *dst, int acc) {
    CmMatmulKey k;
    prim_key(&k, M, N, K, src_t, wei_t, bias != NULL, acc);
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

void cm_bf16_release(void) { cm_mm_release(); }

// ---------------------------------------------------------------------------------------------
// fallback: bf16-rounded copies + fp32 sgemm

static void fallback_forward(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC,
                             float *ws) {
    float *x = rounded_copy(ws, inp, (size_t)M * C), *w = rounded_copy(ws + (size_t)M * C, W, (size_t)OC * C);
    cm_linear_forward(out, x, w, b, M, C, OC);
}

// forward: out[M,OC] = bf16(inp)[M,C] @ bf16(W)[OC,C]^T + b[OC]
void cm_linear_forward_bf16(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC,
                            void *ws) {
    if (M <= 0 || OC <= 0) return;
    if (C <= 0) { cm_linear_forward(out, inp, W, b, M, C, OC); return; }
    uint16_t *x = ws, *w = x + (size_t)M * C;
    to_bf16(x, inp, (size_t)M * C);
    to_bf16(w, W, (size_t)OC * C);
    if (!run_prim(M, OC, C, x, 0, w, 1, b, out, 0)) fallback_forward(out, inp, W, b, M, C, OC, ws);
}

// backward: dinp[M,C] += bf16(dout) @ bf16(W) ; dW[OC,C] += bf16(dout)^T @ bf16(inp) ; db += colsum(dout)
void cm_linear_backward_bf16(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                          const float *W, int M, int C, int OC, void *ws) {
    if (M <= 0 || C <= 0 || OC <= 0) return;
    if (db) cm_linear_backward(NULL, NULL, db, dout, inp, W, M, C, OC);  // fp32 column sums
    if (!dinp && !dW) return;
    uint16_t *x = ws, *w = x + (size_t)M * C, *g = w + (size_t)OC * C;
    to_bf16(g, dout, (size_t)M * OC);
    if (dinp) {
        to_bf16(w, W, (size_t)OC * C);
        if (!run_prim(M, C, OC, g, 0, w, 0, NULL, dinp, 1)) {   /* fallback: the bf16 copies are not needed */
            float *d = rounded_copy(ws, dout, (size_t)M * OC), *wr = rounded_copy(d + (size_t)M * OC, W, (size_t)OC * C);
            cm_linear_backward(dinp, NULL, NULL, d, NULL, wr, M, C, OC);
            if (dW) to_bf16(g, dout, (size_t)M * OC);   /* the fallback overwrote them */
        }
    }
    if (dW) {
        to_bf16(x, inp, (size_t)M * C);
        if (!run_prim(OC, C, M, g, 1, x, 0, NULL, dW, 1)) {
            float *d = rounded_copy(ws, dout, (size_t)M * OC), *xr = rounded_copy(d + (size_t)M * OC, inp, (size_t)M * C);
            cm_linear_backward(NULL, dW, NULL, d, xr, NULL, M, C, OC);
        }
    }
}
