/*
 * linear_int8.c — int8 inference linears (`--precision int8`):
 *   weights: per-output-channel symmetric int8, w_scale[n] = max_c |W[n,c]| / 127, quantised once;
 *   activations: per-row asymmetric u8 at run time over the inlier columns (and 0):
 *     x_scale[i] = (max - min) / 255, zero point z[i] = round(-min / x_scale[i]), so a row uses all
 *     255 steps even when it is one-sided (GELU outputs: twice the resolution of symmetric s8);
 *     the zero point comes out as acc - z[i] * sum_c Wq[n,c] (w_sum, kept with the weights);
 *   outliers: activation columns whose largest |value| over the rows exceeds CM_INT8_OUTLIER_RATIO
 *     x the median column maximum (at most C/16 of them, the largest first) are taken out of the
 *     int8 product and multiplied in fp32 against the matching fp32 weight columns (the
 *     mixed-precision decomposition of LLM.int8(), Dettmers et al. 2022). Real CLIP checkpoints
 *     have a few residual-stream channels tens of times larger than the rest; with one scale per
 *     row they would leave the other channels a handful of int8 levels;
 *   product: u8 x s8 -> s32 through a cached oneDNN matmul (VNNI's native operand types; AMX),
 *     then one pass out[i,n] = (acc[i,n] - z[i] w_sum[n]) * x_scale[i] * w_scale[n] + b[n]
 *     (+ res[i,n]) (GELU when fused) (+ the fp32 outlier part).
 * LayerNorm, softmax, GELU and everything outside the linears stay fp32. Kernels do not allocate:
 * the caller passes a workspace of cm_linear_int8_plan(M, C, OC) bytes (planning also creates the
 * oneDNN primitives, with their scratchpad in that workspace).
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

/* max without libm's fmaxf (NaN rules keep GCC from inlining it: a call per element) */
static inline float maxf(float a, float b) { return a > b ? a : b; }

static inline int8_t q8(float v, float inv) {
    float r = nearbyintf(v * inv);
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

static size_t int8_w_bytes(int OC, int C) { return ((size_t)OC * C + 63) & ~(size_t)63; }

size_t cm_int8_weights_bytes(int OC, int C) {
    if (OC < 1 || C < 1) return 0;
    return int8_w_bytes(OC, C) + (size_t)OC * (sizeof(float) + sizeof(int32_t));   /* w_scale, w_sum */
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
    q->w_sum = (int32_t *)(q->w_scale + OC);
    #pragma omp parallel for if ((size_t)OC * C > CM_OMP_MIN)
    for (int n = 0; n < OC; n++) {
        const float *w = W + (size_t)n * C;
        float mx = 0.0f;
        for (int c = 0; c < C; c++) mx = maxf(mx, fabsf(w[c]));
        float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
        q->w_scale[n] = s;
        int32_t sum = 0;
        for (int c = 0; c < C; c++) sum += q->w[(size_t)n * C + c] = q8(w[c], inv);
        q->w_sum[n] = sum;
    }
    return CM_OK;
}

/* Rows of the int8 product: M rounded up to ROWS (the rows past M are zero and their results
   unused), cut into power-of-two chunks (cm_mm_row_chunks). cm_linear_int8_plan creates the
   primitives of the chunk sizes up to the planned M, so packed text batches (a different M nearly
   every call) and short last batches run on primitives made ahead: nothing is created at run time,
   at <= ROWS-1 wasted rows per product. */
#define ROWS 16
static int rows_padded(int M) { return (M + ROWS - 1) / ROWS * ROWS; }

/* workspace layout (each part 64-byte aligned), then the primitives' scratchpad (the rest) */
typedef struct { uint8_t *xq; float *xs; int32_t *acc; float *colmax, *sorted; int *idx; float *xo, *wo; int32_t *xz; char *scratch; size_t scratch_bytes; } Ws;
static size_t al(size_t n) { return cm_ws_align(n); }
static size_t layout(Ws *w, void *base, size_t bytes, int M, int C, int OC) {
    int no = C / 16 > 0 ? C / 16 : 1, Mp = rows_padded(M);
    size_t sz[9] = {al((size_t)Mp * C), al((size_t)M * 4), al((size_t)Mp * OC * 4), al((size_t)C * 4), al((size_t)C * 4),
                    al((size_t)C * sizeof(int)), al((size_t)M * no * 4), al((size_t)OC * no * 4), al((size_t)M * 4)};
    size_t off = 0;
    char *b = base;
    void **slot[9] = {(void **)&w->xq, (void **)&w->xs, (void **)&w->acc, (void **)&w->colmax, (void **)&w->sorted,
                      (void **)&w->idx, (void **)&w->xo, (void **)&w->wo, (void **)&w->xz};
    for (int i = 0; i < 9; i++) {
        *slot[i] = b ? b + off : NULL;
        off += sz[i];
    }
    w->scratch = b && off <= bytes ? b + off : NULL;
    w->scratch_bytes = b && off <= bytes ? bytes - off : 0;
    return off;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* column maxima of |x| over the rows: w->colmax[c]; parallel over blocks of 64 columns (each
   thread owns its columns) */
CM_HOT static void column_max(const float *x, int M, int C, float *colmax) {
    int nblk = (C + 63) / 64;
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int bk = 0; bk < nblk; bk++) {
        int c0 = bk * 64, n = c0 + 64 < C ? 64 : C - c0;
        float mx[64];
        for (int c = 0; c < 64; c++) mx[c] = 0.0f;
        if (n == 64) {
            for (int i = 0; i < M; i++) {
                const float *r = x + (size_t)i * C + c0;
                #pragma omp simd
                for (int c = 0; c < 64; c++) mx[c] = maxf(mx[c], fabsf(r[c]));
            }
        } else {
            for (int i = 0; i < M; i++) {
                const float *r = x + (size_t)i * C + c0;
                for (int c = 0; c < n; c++) mx[c] = maxf(mx[c], fabsf(r[c]));
            }
        }
        for (int c = 0; c < n; c++) colmax[c0 + c] = mx[c];
    }
}

/* outlier columns of x[M,C]: indices into w->idx, count returned; w->colmax[c] becomes the
   column's keep factor (1 inlier, 0 outlier) */
static int find_outliers(const float *x, int M, int C, Ws *w) {
    column_max(x, M, C, w->colmax);
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

/* xq[i,:] = clamp(round(x[i,:] * keep / xs[i]) + xz[i], 0, 255): per row the range [min, max]
   of x * keep, widened to hold 0 (keep == NULL: every column) */
static inline uint8_t qu8(float v, float inv, float z) {
    float r = nearbyintf(v * inv) + z;
    return (uint8_t)(r > 255.0f ? 255.0f : r < 0.0f ? 0.0f : r);
}
static inline float minf(float a, float b) { return a < b ? a : b; }
CM_HOT static void quantise_rows(uint8_t *xq, float *xs, int32_t *xz, const float *x, const float *keep, int M, int C) {
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *r = x + (size_t)i * C;
        uint8_t *o = xq + (size_t)i * C;
        float mx = 0.0f, mn = 0.0f;
        if (keep) {
            #pragma omp simd reduction(max:mx) reduction(min:mn)
            for (int c = 0; c < C; c++) { mx = maxf(mx, r[c] * keep[c]); mn = minf(mn, r[c] * keep[c]); }
        } else {
            #pragma omp simd reduction(max:mx) reduction(min:mn)
            for (int c = 0; c < C; c++) { mx = maxf(mx, r[c]); mn = minf(mn, r[c]); }
        }
        float s = mx > mn ? (mx - mn) / 255.0f : 1.0f, inv = 1.0f / s;
        float z = nearbyintf(-mn * inv);
        z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;
        xs[i] = s;
        xz[i] = (int32_t)z;
        if (keep) {
            #pragma omp simd
            for (int c = 0; c < C; c++) o[c] = qu8(r[c] * keep[c], inv, z);
        } else {
            #pragma omp simd
            for (int c = 0; c < C; c++) o[c] = qu8(r[c], inv, z);
        }
    }
}

/* out[i,n] = (acc[i,n] - xz[i] ws_sum[n]) * xs[i] * ws[n] (+ b[n]) (+ res[i,n]) (GELU when gelu);
   res may be out */
CM_HOT static void dequantise(float *out, const int32_t *acc, const float *xs, const int32_t *xz, const float *ws,
                              const int32_t *wsum, const float *b, const float *res, int M, int OC, int gelu) {
    #pragma omp parallel for if ((size_t)M * OC > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const int32_t *a = acc + (size_t)i * OC;
        float *o = out + (size_t)i * OC, s = xs[i];
        int32_t z = xz[i];
        if (res) {
            const float *rr = res + (size_t)i * OC;
            if (b) {
                #pragma omp simd
                for (int n = 0; n < OC; n++) o[n] = (float)(a[n] - z * wsum[n]) * (s * ws[n]) + b[n] + rr[n];
            } else {
                #pragma omp simd
                for (int n = 0; n < OC; n++) o[n] = (float)(a[n] - z * wsum[n]) * (s * ws[n]) + rr[n];
            }
        } else if (b) {
            #pragma omp simd
            for (int n = 0; n < OC; n++) o[n] = (float)(a[n] - z * wsum[n]) * (s * ws[n]) + b[n];
        } else {
            #pragma omp simd
            for (int n = 0; n < OC; n++) o[n] = (float)(a[n] - z * wsum[n]) * (s * ws[n]);
        }
        if (gelu == 1) {
            #pragma omp simd
            for (int n = 0; n < OC; n++) o[n] = 0.5f * o[n] * (1.0f + erff(o[n] * 0.70710678118654752f));
        } else if (gelu == 2) {
            #pragma omp simd
            for (int n = 0; n < OC; n++) o[n] = o[n] / (1.0f + expf(-1.702f * o[n]));
        }
    }
}

static void product_key(CmMatmulKey *k, int rows, int C, int OC) {
    cm_mm_key_init(k, 2);
    k->src = (CmMatmulDesc){{rows, C}, {C, 1}, CM_DT_U8};
    k->wei = (CmMatmulDesc){{C, OC}, {1, C}, CM_DT_S8};
    k->dst = (CmMatmulDesc){{rows, OC}, {OC, 1}, CM_DT_S32};
}

size_t cm_linear_int8_plan(int M, int C, int OC) {
    if (M <= 0 || C <= 0 || OC <= 0) return 0;
    size_t scratch = 0, s = 0;
    CmMatmulKey k;
    for (int rows = ROWS; rows <= cm_mm_max_chunk(M, ROWS, true); rows *= 2) {
        product_key(&k, rows, C, OC);
        if (!cm_mm_prepare(&k, &s)) break;   /* the plain integer loops will run */
        if (s > scratch) scratch = s;
    }
    Ws w;
    return layout(&w, NULL, 0, M, C, OC) + al(scratch);
}

static void forward(float *out, const float *x, const CmInt8Weights *q, const float *b, const float *res, int M,
                    void *workspace, size_t ws_bytes, int gelu) {
    const int C = q->C, OC = q->OC;
    Ws w;
    CM_ASSERT(layout(&w, workspace, ws_bytes, M, C, OC) <= ws_bytes);   /* planned with cm_linear_int8_plan */
    int no = find_outliers(x, M, C, &w);
    quantise_rows(w.xq, w.xs, w.xz, x, no > 0 ? w.colmax : NULL, M, C);
    /* acc[Mp,OC] = xq[Mp,C] @ Wq^T (u8 x s8): Wq [OC,C] seen as [C,OC], in row chunks */
    int Mp = rows_padded(M);
    if (Mp > M) memset(w.xq + (size_t)M * C, 0, (size_t)(Mp - M) * C);
    int ch[32], n = cm_mm_row_chunks(M, ROWS, true, ch);
    CmMatmulKey k;
    bool ready = true;
    for (int i = 0; ready && i < n; i++) {
        product_key(&k, ch[i], C, OC);
        ready = cm_mm_ready(&k, w.scratch_bytes);
    }
    if (ready) {
        for (int i = 0, r0 = 0; i < n; r0 += ch[i++]) {
            product_key(&k, ch[i], C, OC);
            cm_mm_run(&k, w.xq + (size_t)r0 * C, q->w, NULL, w.acc + (size_t)r0 * OC, w.scratch, w.scratch_bytes);
        }
    } else {
        #pragma omp parallel for if ((size_t)M * OC > 4096)
        for (int i = 0; i < M; i++)
            for (int n2 = 0; n2 < OC; n2++) {
                const uint8_t *a = w.xq + (size_t)i * C;
                const int8_t *bw = q->w + (size_t)n2 * C;
                int32_t s = 0;
                for (int c = 0; c < C; c++) s += (int32_t)a[c] * bw[c];
                w.acc[(size_t)i * OC + n2] = s;
            }
    }
    if (no == 0) {
        dequantise(out, w.acc, w.xs, w.xz, q->w_scale, q->w_sum, b, res, M, OC, gelu);
        return;
    }
    dequantise(out, w.acc, w.xs, w.xz, q->w_scale, q->w_sum, b, res, M, OC, 0);
    /* out += x[:, O] @ W[:, O]^T in fp32 */
    for (int i = 0; i < M; i++)
        for (int k2 = 0; k2 < no; k2++) w.xo[(size_t)i * no + k2] = x[(size_t)i * C + w.idx[k2]];
    for (int n2 = 0; n2 < OC; n2++)
        for (int k2 = 0; k2 < no; k2++) w.wo[(size_t)n2 * no + k2] = q->w_f32[(size_t)n2 * C + w.idx[k2]];
    cm_matmul(false, true, M, OC, no, 1.0f, w.xo, no, w.wo, no, 1.0f, out, OC);
    if (gelu == 1) cm_gelu_forward(out, out, (size_t)M * OC);
    else if (gelu == 2) cm_quickgelu_forward(out, out, (size_t)M * OC);
}

void cm_linear_forward_int8(float *out, const float *x, const CmInt8Weights *q, const float *b, const float *res,
                            int M, void *workspace, size_t ws_bytes) {
    forward(out, x, q, b, res, M, workspace, ws_bytes, 0);
}

void cm_linear_gelu_forward_int8(float *out, const float *x, const CmInt8Weights *q, const float *b, bool quick,
                                 int M, void *workspace, size_t ws_bytes) {
    forward(out, x, q, b, NULL, M, workspace, ws_bytes, quick ? 2 : 1);
}
