/*
 * linear_int8.c — int8 inference linears (`--precision int8`):
 *   weights: per-output-channel symmetric int8, w_scale[n] = max_c |W[n,c]| / 127, quantised once;
 *   activations: per-row symmetric int8 at run time, x_scale[i] = max_c |x[i,c]| / 127 over the
 *     inlier columns;
 *   outliers: activation columns whose largest |value| over the rows exceeds CM_INT8_OUTLIER_RATIO
 *     x the median column maximum (at most C/16 of them, the largest first) are taken out of the
 *     int8 product and multiplied in fp32 against the matching fp32 weight columns (the
 *     mixed-precision decomposition of LLM.int8(), Dettmers et al. 2022). Real CLIP checkpoints
 *     have a few residual-stream channels tens of times larger than the rest; with one scale per
 *     row they would leave the other channels a handful of int8 levels;
 *   product: s8 x s8 -> s32 through a cached oneDNN matmul (VNNI / AMX kernels), then one pass
 *     out[i,n] = acc[i,n] * x_scale[i] * w_scale[n] + b[n] (+ res[i,n]) (+ the fp32 outlier part).
 * LayerNorm, softmax, GELU and everything outside the linears stay fp32. Kernels do not allocate:
 * the caller passes a workspace of cm_linear_int8_workspace(M, C, OC) bytes.
 * Fallback when oneDNN cannot build an int8 primitive: the same integer products with plain loops
 * (exact in int32, so the numbers are identical, only slower).
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "kernels/kernels_internal.h"
#include "common/common.h"
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline int8_t q8(float v, float inv) {
    float r = nearbyintf(v * inv);
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

static size_t int8_w_bytes(int OC, int C) { return ((size_t)OC * C + 63) & ~(size_t)63; }

size_t cm_int8_weights_bytes(int OC, int C) {
    if (OC < 1 || C < 1) return 0;
    return int8_w_bytes(OC, C) + (size_t)OC * sizeof(float);
}

cm_status cm_int8_weights_init(CmInt8Weights *q, const float *W, int OC, int C, void *mem) {
    memset(q, 0, sizeof *q);
    if (OC < 1 || C < 1) return cm_error(CM_ERR_ARG, "int8 weights: bad shape [%d,%d]", OC, C);
    if (!mem) return cm_error(CM_ERR_ARG, "int8 weights: no memory given");
    q->w = mem;
    q->w_scale = (float *)((char *)mem + int8_w_bytes(OC, C));
    q->OC = OC;
    q->C = C;
    q->w_f32 = W;
    #pragma omp parallel for if ((size_t)OC * C > CM_OMP_MIN)
    for (int n = 0; n < OC; n++) {
        const float *w = W + (size_t)n * C;
        float mx = 0.0f;
        for (int c = 0; c < C; c++) mx = fmaxf(mx, fabsf(w[c]));
        float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        q->w_scale[n] = s;
        for (int c = 0; c < C; c++) q->w[(size_t)n * C + c] = q8(w[c], inv);
    }
    return CM_OK;
}

/* workspace layout (each part 64-byte aligned) */
typedef struct { int8_t *xq; float *xs; int32_t *acc; float *colmax, *sorted; int *idx; float *xo, *wo; } Ws;
static size_t al(size_t n) { return (n + 63) & ~(size_t)63; }
static size_t layout(Ws *w, void *base, int M, int C, int OC) {
    int no = C / 16 > 0 ? C / 16 : 1;
    size_t sz[8] = {al((size_t)M * C), al((size_t)M * 4), al((size_t)M * OC * 4), al((size_t)C * 4), al((size_t)C * 4),
                    al((size_t)C * sizeof(int)), al((size_t)M * no * 4), al((size_t)OC * no * 4)};
    size_t off = 0;
    char *b = base;
    void **slot[8] = {(void **)&w->xq, (void **)&w->xs, (void **)&w->acc, (void **)&w->colmax, (void **)&w->sorted,
                      (void **)&w->idx, (void **)&w->xo, (void **)&w->wo};
    for (int i = 0; i < 8; i++) {
        if (w) *slot[i] = b ? b + off : NULL;
        off += sz[i];
    }
    return off;
}

size_t cm_linear_int8_workspace(int M, int C, int OC) { Ws w; return layout(&w, NULL, M, C, OC); }

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* outlier columns of x[M,C]: indices into w->idx, count returned; w->colmax[c] becomes the
   column's keep factor (1 inlier, 0 outlier) */
static int find_outliers(const float *x, int M, int C, Ws *w) {
    int nblk = (C + 63) / 64;
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int bk = 0; bk < nblk; bk++) {   /* column blocks: each thread owns its columns */
        int c0 = bk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
        float mx[64] = {0};
        for (int i = 0; i < M; i++) {
            const float *r = x + (size_t)i * C;
            #pragma omp simd
            for (int c = c0; c < c1; c++) mx[c - c0] = fmaxf(mx[c - c0], fabsf(r[c]));
        }
        for (int c = c0; c < c1; c++) w->colmax[c] = mx[c - c0];
    }
    memcpy(w->sorted, w->colmax, (size_t)C * sizeof(float));
    qsort(w->sorted, (size_t)C, sizeof(float), cmp_float);
    float med = w->sorted[C / 2], thr = CM_INT8_OUTLIER_RATIO * med;
    int cap = C / 16, n = 0;
    /* the largest first: the cap-th largest maximum is the lowest admissible one */
    float cut = cap > 0 ? w->sorted[C - cap] : INFINITY;
    if (cut < thr) cut = thr;
    for (int c = 0; c < C; c++) {
        bool out = n < cap && med > 0.0f && w->colmax[c] > thr && w->colmax[c] >= cut;
        if (out) w->idx[n++] = c;
        w->colmax[c] = out ? 0.0f : 1.0f;
    }
    return n;
}

void cm_linear_forward_int8(float *out, const float *x, const CmInt8Weights *q, const float *b, const float *res,
                            int M, void *workspace) {
    const int C = q->C, OC = q->OC;
    Ws w;
    layout(&w, workspace, M, C, OC);
    int no = find_outliers(x, M, C, &w);
    const float *keep = w.colmax;
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *r = x + (size_t)i * C;
        int8_t *o = w.xq + (size_t)i * C;
        float mx = 0.0f;
        #pragma omp simd reduction(max:mx)
        for (int c = 0; c < C; c++) mx = fmaxf(mx, fabsf(r[c]) * keep[c]);
        float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        w.xs[i] = s;
        #pragma omp simd
        for (int c = 0; c < C; c++) o[c] = q8(r[c] * keep[c], inv);
    }
    /* acc[M,OC] = xq[M,C] @ Wq^T: Wq [OC,C] seen as [C,OC] */
    CmMatmulKey k;
    cm_mm_key_init(&k, 2);
    k.src = (CmMatmulDesc){{M, C}, {C, 1}, CM_DT_S8};
    k.wei = (CmMatmulDesc){{C, OC}, {1, C}, CM_DT_S8};
    k.dst = (CmMatmulDesc){{M, OC}, {OC, 1}, CM_DT_S32};
    if (!cm_mm_run(&k, w.xq, q->w, NULL, w.acc)) {
        #pragma omp parallel for if ((size_t)M * OC > 4096)
        for (int i = 0; i < M; i++)
            for (int n = 0; n < OC; n++) {
                const int8_t *a = w.xq + (size_t)i * C, *bw = q->w + (size_t)n * C;
                int32_t s = 0;
                for (int c = 0; c < C; c++) s += (int32_t)a[c] * bw[c];
                w.acc[(size_t)i * OC + n] = s;
            }
    }
    #pragma omp parallel for if ((size_t)M * OC > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const int32_t *a = w.acc + (size_t)i * OC;
        const float *rr = res ? res + (size_t)i * OC : NULL;
        float *o = out + (size_t)i * OC, xs = w.xs[i];
        #pragma omp simd
        for (int n = 0; n < OC; n++)
            o[n] = (float)a[n] * (xs * q->w_scale[n]) + (b ? b[n] : 0.0f) + (rr ? rr[n] : 0.0f);
    }
    if (no > 0) {   /* out += x[:, O] @ W[:, O]^T in fp32 */
        for (int i = 0; i < M; i++)
            for (int k2 = 0; k2 < no; k2++) w.xo[(size_t)i * no + k2] = x[(size_t)i * C + w.idx[k2]];
        for (int n = 0; n < OC; n++)
            for (int k2 = 0; k2 < no; k2++) w.wo[(size_t)n * no + k2] = q->w_f32[(size_t)n * C + w.idx[k2]];
        cm_matmul(false, true, M, OC, no, 1.0f, w.xo, no, w.wo, no, 1.0f, out, OC);
    }
}
