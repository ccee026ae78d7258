/*
 * linear_bf16.c — bf16 matrix products for `--precision amp` (torch autocast semantics on CPU):
 * inputs (activations, weights, upstream gradients) are rounded fp32 -> bf16 (round to nearest
 * even), products accumulate in fp32, outputs are fp32. The same forward/backward contract as
 * cm_linear_forward/cm_linear_backward (backward accumulates, NULL gradients skipped).
 *
 * Engine: oneDNN's matmul primitive (C API, dnnl.h; AMX/AVX512-BF16 kernels), from the
 * mutex-protected cache of dnnl_matmul.c. cm_linear_bf16_plan (called when the caller plans its
 * activations) creates the primitives of every row chunk up to the planned M and returns the
 * workspace bytes: the bf16 copies of the operands, a staging area and the primitives' user-mode
 * scratchpad. The kernels then create and allocate nothing. When oneDNN cannot build a bf16
 * primitive (a CPU without bf16 support), the fallback rounds the inputs to bf16 and multiplies
 * with fp32 sgemm: the same numbers up to summation order. The references (round, then loops in double) are in tests/kernel_lab/.
 *
 * Every product is  dst[M,N] (+)= src[M,K] @ wei[K,N]  with src/wei given as plain row-major
 * (tag ab) or transposed (tag ba) views:
 *   forward  out[M,OC]   = inp[M,C] (ab)   @ W^T: W[OC,C] seen as [C,OC] (ba)  + b
 *   dX       dinp[M,C]  += dout[M,OC] (ab) @ W[OC,C] (ab)
 *   dW       dW[OC,C]   += dout^T: dout[M,OC] seen as [OC,M] (ba) @ inp[M,C] (ab)
 * each over power-of-two row chunks (rows of out/dinp, the reduction of dW).
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

/* y[0..n) += x[0..n) (the staged tail of an accumulating product) */
static void add_into(float *y, const float *x, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

// ---------------------------------------------------------------------------------------------
// oneDNN products through the shared primitive cache (dnnl_matmul.c)

/* Rows come in power-of-two chunks of at least ROWS rows (cm_mm_row_chunks): the primitives of
   the chunk sizes up to the planned maximum, created when the caller plans, serve every M met
   later (packed text rows, a short last batch). The M % ROWS tail rides in one more ROWS-row
   product on zero-padded bf16 copies, its output staged in the workspace. */
#define ROWS 16

static void view2(CmMatmulDesc *d, int64_t rows, int64_t cols, int64_t srow, int64_t scol) {
    d->dims[0] = rows; d->dims[1] = cols; d->strides[0] = srow; d->strides[1] = scol; d->dt = CM_DT_BF16;
}

/* dst[M,N] (+)= src[M,K] @ wei[K,N] (+ bias); src_t/wei_t: the operand is stored transposed */
static void prim_key(CmMatmulKey *k, int M, int N, int K, int src_t, int wei_t, int bias, int acc) {
    cm_mm_key_init(k, 2);
    view2(&k->src, M, K, src_t ? 1 : K, src_t ? M : 1);
    view2(&k->wei, K, N, wei_t ? 1 : N, wei_t ? K : 1);
    view2(&k->dst, M, N, N, 1);
    k->dst.dt = CM_DT_F32;
    k->bias = bias;
    k->acc = acc;
}

/* the three products of a linear layer for a chunk of `rows` rows */
static void key_forward(CmMatmulKey *k, int rows, int C, int OC, bool bias) { prim_key(k, rows, OC, C, 0, 1, bias, 0); }
static void key_dinp(CmMatmulKey *k, int rows, int C, int OC, bool acc) { prim_key(k, rows, C, OC, 0, 0, 0, acc); }
static void key_dw(CmMatmulKey *k, int rows, int C, int OC) { prim_key(k, OC, C, rows, 1, 0, 0, 1); }

/* Workspace layout for M rows (Mp = M rounded up to ROWS): bf16 copies x[Mp,C], w[OC,C],
   g[Mp,OC] (dout), the fp32 stage[ROWS, max(C,OC)] of the tail, then the primitives' scratchpad
   (the rest). Fallback: two fp32 rounded operands of one product at float offsets 0 and the
   first's size. */
typedef struct { uint16_t *x, *w, *g; float *stage; char *scratch; size_t scratch_bytes; } Ws;

static size_t ceil_rows(int M) { return (size_t)(M + ROWS - 1) / ROWS * ROWS; }

static size_t native_bytes(int M, int C, int OC) {
    size_t Mp = ceil_rows(M), mx = (size_t)(C > OC ? C : OC);
    return cm_ws_align(2 * Mp * C) + cm_ws_align(2 * (size_t)OC * C) + cm_ws_align(2 * Mp * OC) +
           cm_ws_align(4 * (size_t)ROWS * mx);
}

static size_t fallback_bytes(int M, int C, int OC) {
    size_t mc = (size_t)M * C, oc = (size_t)OC * C, mo = (size_t)M * OC, pair = mc + oc;
    if (mo + oc > pair) pair = mo + oc;
    if (mo + mc > pair) pair = mo + mc;
    return 4 * pair;
}

static void layout(Ws *w, void *ws, size_t ws_bytes, int M, int C, int OC) {
    size_t Mp = ceil_rows(M), off = 0;
    char *p = ws;
    w->x = (uint16_t *)p;
    off += cm_ws_align(2 * Mp * C);
    w->w = (uint16_t *)(p + off);
    off += cm_ws_align(2 * (size_t)OC * C);
    w->g = (uint16_t *)(p + off);
    off += cm_ws_align(2 * Mp * OC);
    w->stage = (float *)(p + off);
    off += cm_ws_align(4 * (size_t)ROWS * (C > OC ? C : OC));
    w->scratch = off <= ws_bytes ? p + off : NULL;
    w->scratch_bytes = off <= ws_bytes ? ws_bytes - off : 0;
}

size_t cm_linear_bf16_plan(int M, int C, int OC, bool bias, bool backward) {
    if (M <= 0 || C <= 0 || OC <= 0) return 0;
    size_t scratch = 0, s = 0;
    bool ok = true;
    CmMatmulKey k;
#define PREP() do { ok = ok && cm_mm_prepare(&k, &s); if (ok && s > scratch) scratch = s; } while (0)
    for (int rows = ROWS; ok && rows <= cm_mm_max_chunk(M, ROWS, false); rows *= 2) {
        key_forward(&k, rows, C, OC, bias);
        PREP();
        if (backward) {
            key_dinp(&k, rows, C, OC, true);
            PREP();
            if (rows == ROWS) { key_dinp(&k, rows, C, OC, false); PREP(); }   /* the staged tail */
            key_dw(&k, rows, C, OC);
            PREP();
        }
    }
#undef PREP
    size_t native = native_bytes(M, C, OC) + cm_ws_align(scratch), fb = fallback_bytes(M, C, OC);
    return native > fb ? native : fb;
}

bool cm_bf16_native(void) {
    static const uint16_t one[16 * 16];
    static _Alignas(64) char scratch[1 << 16];
    float out[16 * 16];
    CmMatmulKey k;
    prim_key(&k, 16, 16, 16, 0, 0, 0, 0);
    size_t need = 0;
    return cm_mm_prepare(&k, &need) && need <= sizeof scratch &&
           cm_mm_run(&k, one, one, NULL, out, scratch, sizeof scratch);
}

void cm_bf16_release(void) { cm_mm_release(); }

enum { P_FORWARD, P_DINP, P_DW };

/* true when every chunk product of this call has its primitive and enough scratchpad; then the
   chunks run and none can fail (checked before the first, so that a fallback never meets a
   half-accumulated output) */
static bool chunks_ready(const int *ch, int n, int M, int C, int OC, bool bias, int which, const Ws *w) {
    CmMatmulKey k;
    for (int i = 0, r0 = 0; i < n; r0 += ch[i++]) {
        if (which == P_FORWARD) key_forward(&k, ch[i], C, OC, bias);
        else if (which == P_DINP) key_dinp(&k, ch[i], C, OC, r0 + ch[i] <= M);
        else key_dw(&k, ch[i], C, OC);
        if (!cm_mm_ready(&k, w->scratch_bytes)) return false;
    }
    return true;
}

static void warn_fallback(void) {
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        cm_warn("bf16: oneDNN has no bf16 matmul here; using bf16-rounded inputs with fp32 sgemm");
}

/* rows [M, Mp) of a bf16 copy: zeros (the padded tail chunk reads them) */
static void zero_tail(uint16_t *p, int M, size_t width) {
    size_t Mp = ceil_rows(M);
    if (Mp > (size_t)M) memset(p + (size_t)M * width, 0, (Mp - M) * width * sizeof(uint16_t));
}

// ---------------------------------------------------------------------------------------------
// forward and backward

// forward: out[M,OC] = bf16(inp)[M,C] @ bf16(W)[OC,C]^T + b[OC]
void cm_linear_forward_bf16(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC,
                            void *ws, size_t ws_bytes) {
    if (M <= 0 || OC <= 0) return;
    if (C <= 0) { cm_linear_forward(out, inp, W, b, M, C, OC); return; }
    Ws w;
    layout(&w, ws, ws_bytes, M, C, OC);
    int ch[32], n = cm_mm_row_chunks(M, ROWS, false, ch);
    if (!chunks_ready(ch, n, M, C, OC, b != NULL, P_FORWARD, &w)) {
        CM_ASSERT(ws_bytes >= fallback_bytes(M, C, OC));   /* the caller planned with cm_linear_bf16_plan */
        warn_fallback();
        float *x = rounded_copy(ws, inp, (size_t)M * C), *wr = rounded_copy((float *)ws + (size_t)M * C, W, (size_t)OC * C);
        cm_linear_forward(out, x, wr, b, M, C, OC);
        return;
    }
    to_bf16(w.x, inp, (size_t)M * C);
    zero_tail(w.x, M, C);
    to_bf16(w.w, W, (size_t)OC * C);
    CmMatmulKey k;
    for (int i = 0, r0 = 0; i < n; r0 += ch[i++]) {
        bool tail = r0 + ch[i] > M;
        key_forward(&k, ch[i], C, OC, b != NULL);
        cm_mm_run(&k, w.x + (size_t)r0 * C, w.w, b, tail ? w.stage : out + (size_t)r0 * OC, w.scratch, w.scratch_bytes);
        if (tail) memcpy(out + (size_t)r0 * OC, w.stage, (size_t)(M - r0) * OC * sizeof(float));
    }
}

// backward: dinp[M,C] += bf16(dout) @ bf16(W) ; dW[OC,C] += bf16(dout)^T @ bf16(inp) ; db += colsum(dout)
void cm_linear_backward_bf16(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                             const float *W, int M, int C, int OC, void *ws, size_t ws_bytes) {
    if (M <= 0 || C <= 0 || OC <= 0) return;
    if (db) cm_linear_backward(NULL, NULL, db, dout, inp, W, M, C, OC);  // fp32 column sums
    if (!dinp && !dW) return;
    Ws w;
    layout(&w, ws, ws_bytes, M, C, OC);
    int ch[32], n = cm_mm_row_chunks(M, ROWS, false, ch);
    if ((dinp && !chunks_ready(ch, n, M, C, OC, false, P_DINP, &w)) ||
        (dW && !chunks_ready(ch, n, M, C, OC, false, P_DW, &w))) {
        /* fallback: bf16-rounded fp32 copies of one product's operands, fp32 sgemm */
        CM_ASSERT(ws_bytes >= fallback_bytes(M, C, OC));
        warn_fallback();
        float *f = ws;
        if (dinp) {
            float *d = rounded_copy(f, dout, (size_t)M * OC), *wr = rounded_copy(d + (size_t)M * OC, W, (size_t)OC * C);
            cm_linear_backward(dinp, NULL, NULL, d, NULL, wr, M, C, OC);
        }
        if (dW) {
            float *d = rounded_copy(f, dout, (size_t)M * OC), *xr = rounded_copy(d + (size_t)M * OC, inp, (size_t)M * C);
            cm_linear_backward(NULL, dW, NULL, d, xr, NULL, M, C, OC);
        }
        return;
    }
    to_bf16(w.g, dout, (size_t)M * OC);
    zero_tail(w.g, M, OC);
    CmMatmulKey k;
    if (dinp) {
        to_bf16(w.w, W, (size_t)OC * C);
        for (int i = 0, r0 = 0; i < n; r0 += ch[i++]) {
            bool tail = r0 + ch[i] > M;
            key_dinp(&k, ch[i], C, OC, !tail);
            cm_mm_run(&k, w.g + (size_t)r0 * OC, w.w, NULL, tail ? w.stage : dinp + (size_t)r0 * C, w.scratch,
                      w.scratch_bytes);
            if (tail) add_into(dinp + (size_t)r0 * C, w.stage, (size_t)(M - r0) * C);
        }
    }
    if (dW) {
        to_bf16(w.x, inp, (size_t)M * C);
        zero_tail(w.x, M, C);
        for (int i = 0, r0 = 0; i < n; r0 += ch[i++]) {   /* dW += g[chunk]^T x[chunk]; padded rows add 0 */
            key_dw(&k, ch[i], C, OC);
            cm_mm_run(&k, w.g + (size_t)r0 * OC, w.x + (size_t)r0 * C, NULL, dW, w.scratch, w.scratch_bytes);
        }
    }
}
