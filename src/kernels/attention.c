/*
 * attention.c — multi-head self-attention core on a fused qkv projection, torch
 * nn.MultiheadAttention semantics: att = softmax(q k^T / sqrt(hs) [+ causal -inf for key j > query i]),
 * out = att v, heads concatenated (before out_proj).
 *
 * Layouts: qkv[B,T,3C] (q | k | v per token, head h at columns h*hs within each), att[B,NH,T,T],
 * out[B,T,C]. Fast path: each product q k^T, att v (and the four of backward) is ONE batched
 * oneDNN fp32 matmul over B x NH on strided views of qkv (cached primitives, dnnl_matmul.c;
 * ~2x the per-head loop, which runs single-threaded in OpenBLAS at these sizes), and the
 * softmax / softmax-backward run over all B*NH*T rows in one OpenMP loop. Fallback when oneDNN
 * is unavailable: per-(b,h) sgemm through cm_matmul() (serial calls: no OpenMP region around BLAS).
 * The batch runs in power-of-two chunks whose primitives cm_attention_plan creates ahead; the
 * backward's dA scratch [B,NH,T,T] and the primitives' scratchpad are the caller's workspace
 * (cm_attention_plan bytes): kernels never allocate or create. The double-precision reference lives in tests/kernel_lab/.
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "kernels/kernels_internal.h"
#include "common/common.h"
#include <math.h>
#include <string.h>

// in place over rows of att[rows,T]: softmax of the visible keys (0..i when causal), 0 elsewhere
static void att_softmax(float *att, size_t rows, int T, bool causal) {
    #pragma omp parallel for if (rows * T > CM_OMP_MIN)
    for (size_t r = 0; r < rows; r++) {
        float *a = att + r * T;
        int n = causal ? (int)(r % T) + 1 : T;  // keys 0..i visible
        cm_softmax_row(a, a, n);
        for (int j = n; j < T; j++) a[j] = 0.0f;
    }
}

// in place over rows: dA -> dS = A * (dA - rowsum(dA * A)), 0 at masked keys
CM_HOT static void att_softmax_backward(float *dA, const float *att, size_t rows, int T, bool causal) {
    #pragma omp parallel for if (rows * T > CM_OMP_MIN)
    for (size_t r = 0; r < rows; r++) {
        const float *a = att + r * T;
        float *d = dA + r * T;
        int n = causal ? (int)(r % T) + 1 : T;
        float dot = 0.0f;
        #pragma omp simd reduction(+:dot)
        for (int j = 0; j < n; j++) dot += d[j] * a[j];
        #pragma omp simd
        for (int j = 0; j < n; j++) d[j] = a[j] * (d[j] - dot);
        for (int j = n; j < T; j++) d[j] = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// fast path: the same products as one batched oneDNN matmul each (over B x NH), on strided views

static void view4(CmMatmulDesc *d, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                  int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
    d->dims[0] = d0; d->dims[1] = d1; d->dims[2] = d2; d->dims[3] = d3;
    d->strides[0] = s0; d->strides[1] = s1; d->strides[2] = s2; d->strides[3] = s3;
    d->dt = CM_DT_F32;
}
// views of qkv / out / att as [B,NH,rows,cols]
static void v_qkv(CmMatmulDesc *d, int B, int T, int C, int NH) {       // q, k or v: [B,NH,T,hs]
    view4(d, B, NH, T, C / NH, (int64_t)T * 3 * C, C / NH, 3 * C, 1);
}
static void v_qkv_t(CmMatmulDesc *d, int B, int T, int C, int NH) {     // k^T or v^T: [B,NH,hs,T]
    view4(d, B, NH, C / NH, T, (int64_t)T * 3 * C, C / NH, 1, 3 * C);
}
static void v_out(CmMatmulDesc *d, int B, int T, int C, int NH) {       // out / dout: [B,NH,T,hs]
    view4(d, B, NH, T, C / NH, (int64_t)T * C, C / NH, C, 1);
}
static void v_att(CmMatmulDesc *d, int B, int T, int NH, bool tr) {    // att (or att^T): [B,NH,T,T]
    view4(d, B, NH, T, T, (int64_t)NH * T * T, (int64_t)T * T, tr ? 1 : T, tr ? T : 1);
}

static void fwd_keys(CmMatmulKey *k1, CmMatmulKey *k2, int B, int T, int C, int NH) {
    cm_mm_key_init(k1, 4);                   // att = scale * q @ k^T
    v_qkv(&k1->src, B, T, C, NH);
    v_qkv_t(&k1->wei, B, T, C, NH);
    v_att(&k1->dst, B, T, NH, false);
    k1->scale = 1.0f / sqrtf((float)(C / NH));
    cm_mm_key_init(k2, 4);                   // out = att @ v
    v_att(&k2->src, B, T, NH, false);
    v_qkv(&k2->wei, B, T, C, NH);
    v_out(&k2->dst, B, T, C, NH);
}

static void bwd_keys(CmMatmulKey *kA, CmMatmulKey *kV, CmMatmulKey *kQ, CmMatmulKey *kK, int B, int T, int C, int NH) {
    cm_mm_key_init(kA, 4);                   // dA = dout @ v^T
    v_out(&kA->src, B, T, C, NH);
    v_qkv_t(&kA->wei, B, T, C, NH);
    v_att(&kA->dst, B, T, NH, false);
    cm_mm_key_init(kV, 4);                   // dv += att^T @ dout
    v_att(&kV->src, B, T, NH, true);
    v_out(&kV->wei, B, T, C, NH);
    v_qkv(&kV->dst, B, T, C, NH);
    kV->acc = 1;
    cm_mm_key_init(kQ, 4);                   // dq += scale * dS @ k
    v_att(&kQ->src, B, T, NH, false);
    v_qkv(&kQ->wei, B, T, C, NH);
    v_qkv(&kQ->dst, B, T, C, NH);
    kQ->acc = 1;
    kQ->scale = 1.0f / sqrtf((float)(C / NH));
    *kK = *kQ;                               // dk += scale * dS^T @ q
    v_att(&kK->src, B, T, NH, true);
}

/* The batch is cut into power-of-two chunks (cm_mm_row_chunks with granularity 1): the primitives
   of the chunk sizes up to the planned B, created by cm_attention_plan, serve every smaller batch
   met later (a short last batch) without creating anything at run time. */
size_t cm_attention_plan(int B, int T, int C, int NH, bool backward) {
    if (B <= 0 || T <= 0 || NH <= 0 || C % NH) return 0;
    size_t scratch = 0, s = 0;
    bool ok = true;
    CmMatmulKey k[6];
    for (int nb = 1; ok && nb <= cm_mm_max_chunk(B, 1, false); nb *= 2) {
        fwd_keys(&k[0], &k[1], nb, T, C, NH);
        bwd_keys(&k[2], &k[3], &k[4], &k[5], nb, T, C, NH);
        for (int i = 0; ok && i < (backward ? 6 : 2); i++) {
            ok = cm_mm_prepare(&k[i], &s);
            if (ok && s > scratch) scratch = s;
        }
    }
    return (backward ? cm_ws_align(cm_attention_backward_workspace(B, T, NH)) : 0) + cm_ws_align(scratch);
}

/* true when the products of every batch chunk have their primitives and enough scratchpad */
static bool chunks_ready(const int *ch, int n, int T, int C, int NH, bool backward, size_t scratch_bytes) {
    CmMatmulKey k[6];
    for (int i = 0; i < n; i++) {
        fwd_keys(&k[0], &k[1], ch[i], T, C, NH);
        if (backward) bwd_keys(&k[2], &k[3], &k[4], &k[5], ch[i], T, C, NH);
        for (int j = backward ? 2 : 0; j < (backward ? 6 : 2); j++)
            if (!cm_mm_ready(&k[j], scratch_bytes)) return false;
    }
    return true;
}

/* P = the probabilities multiplied with v: att, or its dropped-out copy (dr) */
static const float *attn_dropout(float *att, int B, int T, int NH, const CmAttnDropout *dr) {
    if (!dr) return att;
    cm_dropout_forward(dr->attd, dr->mask, att, dr->p, (size_t)NH * T * T, B, dr->key, dr->site);
    return dr->attd;
}

// in place over dA: the gradient through the dropout of the probabilities
static void attn_dropout_backward(float *dA, const float *mask, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dA[i] *= mask[i];
}

static void blas_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                         const CmAttnDropout *dr);
static void blas_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const float *P,
                          const float *mask, int B, int T, int C, int NH, bool causal, void *ws);

void cm_attention_forward_dropout(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                                  const CmAttnDropout *dr, void *ws, size_t ws_bytes) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    if (B <= 0 || T <= 0) return;
    int ch[32], n = cm_mm_row_chunks(B, 1, false, ch);
    if (!chunks_ready(ch, n, T, C, NH, false, ws_bytes)) {
        blas_forward(out, att, qkv, B, T, C, NH, causal, dr);
        return;
    }
    size_t TT = (size_t)T * T, sq = (size_t)T * 3 * C, so = (size_t)T * C;
    CmMatmulKey k1, k2;
    for (int i = 0, b0 = 0; i < n; b0 += ch[i++]) {
        fwd_keys(&k1, &k2, ch[i], T, C, NH);
        cm_mm_run(&k1, qkv + b0 * sq, qkv + b0 * sq + C, NULL, att + b0 * NH * TT, ws, ws_bytes);
    }
    att_softmax(att, (size_t)B * NH * T, T, causal);
    const float *P = attn_dropout(att, B, T, NH, dr);
    for (int i = 0, b0 = 0; i < n; b0 += ch[i++]) {
        fwd_keys(&k1, &k2, ch[i], T, C, NH);
        cm_mm_run(&k2, P + b0 * NH * TT, qkv + b0 * sq + 2 * C, NULL, out + b0 * so, ws, ws_bytes);
    }
}

void cm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                          void *ws, size_t ws_bytes) {
    cm_attention_forward_dropout(out, att, qkv, B, T, C, NH, causal, NULL, ws, ws_bytes);
}

size_t cm_attention_backward_workspace(int B, int T, int NH) {
    return sizeof(float) * (size_t)(B > 0 ? B : 0) * (size_t)(NH > 0 ? NH : 0) * (size_t)(T > 0 ? T : 0) * (T > 0 ? T : 0);
}

void cm_attention_backward_dropout(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                   int C, int NH, bool causal, const CmAttnDropout *dr, void *ws, size_t ws_bytes) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    if (B <= 0 || T <= 0) return;
    CM_ASSERT(ws_bytes >= cm_attention_backward_workspace(B, T, NH));   /* planned with cm_attention_plan */
    const float *P = dr ? dr->attd : att, *mask = dr ? dr->mask : NULL;
    size_t da_bytes = cm_ws_align(cm_attention_backward_workspace(B, T, NH));
    char *scratch = da_bytes <= ws_bytes ? (char *)ws + da_bytes : NULL;
    size_t scratch_bytes = da_bytes <= ws_bytes ? ws_bytes - da_bytes : 0;
    int ch[32], n = cm_mm_row_chunks(B, 1, false, ch);
    if (!chunks_ready(ch, n, T, C, NH, true, scratch_bytes)) {
        blas_backward(dqkv, dout, qkv, att, P, mask, B, T, C, NH, causal, ws);
        return;
    }
    size_t rows = (size_t)B * NH * T, TT = (size_t)T * T, sq = (size_t)T * 3 * C, so = (size_t)T * C;
    float *dA = ws;   /* [B,NH,T,T] */
    CmMatmulKey kA, kV, kQ, kK;
    for (int i = 0, b0 = 0; i < n; b0 += ch[i++]) {
        bwd_keys(&kA, &kV, &kQ, &kK, ch[i], T, C, NH);
        cm_mm_run(&kA, dout + b0 * so, qkv + b0 * sq + 2 * C, NULL, dA + b0 * NH * TT, scratch, scratch_bytes);
        cm_mm_run(&kV, P + b0 * NH * TT, dout + b0 * so, NULL, dqkv + b0 * sq + 2 * C, scratch, scratch_bytes);
    }
    if (mask) attn_dropout_backward(dA, mask, rows * T);
    att_softmax_backward(dA, att, rows, T, causal);
    for (int i = 0, b0 = 0; i < n; b0 += ch[i++]) {
        bwd_keys(&kA, &kV, &kQ, &kK, ch[i], T, C, NH);
        cm_mm_run(&kQ, dA + b0 * NH * TT, qkv + b0 * sq + C, NULL, dqkv + b0 * sq, scratch, scratch_bytes);
        cm_mm_run(&kK, dA + b0 * NH * TT, qkv + b0 * sq, NULL, dqkv + b0 * sq + C, scratch, scratch_bytes);
    }
}

void cm_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           int B, int T, int C, int NH, bool causal, void *ws, size_t ws_bytes) {
    cm_attention_backward_dropout(dqkv, dout, qkv, att, B, T, C, NH, causal, NULL, ws, ws_bytes);
}

// ---------------------------------------------------------------------------------------------
// fallback: per-(b,h) sgemm through cm_matmul() (serial calls; BLAS threads itself)

// forward: att[b,h] = softmax(scale * Q K^T) ; out[b,:,h] = P[b,h] @ V (P = att or its dropout)
static void blas_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                         const CmAttnDropout *dr) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t TT = (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C;
            cm_matmul(false, true, T, T, hs, scale, q, C3, k, C3, 0.0f, att + ((size_t)b * NH + h) * TT, T);
        }
    att_softmax(att, (size_t)B * NH * T, T, causal);
    const float *P = attn_dropout(att, B, T, NH, dr);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *v = qkv + (size_t)b * T * C3 + 2 * C + h * hs;
            cm_matmul(false, false, T, hs, T, 1.0f, P + ((size_t)b * NH + h) * TT, T, v, C3, 0.0f,
                   out + (size_t)b * T * C + h * hs, C);
        }
}

void cm_attention_forward_blas(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal) {
    blas_forward(out, att, qkv, B, T, C, NH, causal, NULL);
}

// backward, per (b,h), with dO = dout[b,:,h]:
//   dA = (dO V^T) [* mask] ; dV += P^T dO ; dS = A * (dA - rowsum(dA*A)) ; dQ += scale dS K ; dK += scale dS^T Q
// Masked entries have A = 0, so dS = 0 there without special-casing.
static void blas_backward(float *dqkv, const float *dout, const float *qkv, const float *att, const float *P,
                          const float *mask, int B, int T, int C, int NH, bool causal, void *ws) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t TT = (size_t)T * T, rows = (size_t)B * NH * T;
    float *dA = ws;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *v = qkv + (size_t)b * T * C3 + 2 * C + h * hs;
            const float *dO = dout + (size_t)b * T * C + h * hs;
            const float *A = P + ((size_t)b * NH + h) * TT;
            float *dv = dqkv + (size_t)b * T * C3 + 2 * C + h * hs;
            cm_matmul(false, true, T, T, hs, 1.0f, dO, C, v, C3, 0.0f, dA + ((size_t)b * NH + h) * TT, T);
            cm_matmul(true, false, T, hs, T, 1.0f, A, T, dO, C, 1.0f, dv, C3);
        }
    if (mask) attn_dropout_backward(dA, mask, rows * T);
    att_softmax_backward(dA, att, rows, T, causal);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C;
            const float *dS = dA + ((size_t)b * NH + h) * TT;
            cm_matmul(false, false, T, hs, T, scale, dS, T, k, C3, 1.0f, dq, C3);
            cm_matmul(true, false, T, hs, T, scale, dS, T, q, C3, 1.0f, dk, C3);
        }
}

void cm_attention_backward_blas(float *dqkv, const float *dout, const float *qkv, const float *att,
                                int B, int T, int C, int NH, bool causal, void *ws) {
    blas_backward(dqkv, dout, qkv, att, att, NULL, B, T, C, NH, causal, ws);
}

// ---------------------------------------------------------------------------------------------
// variable-length (packed) attention: B sequences of different lengths in one row buffer.
// Written by hand because neither oneDNN nor OpenBLAS has a ragged batched product: a oneDNN
// primitive per sequence length would cost ~60 ms to create for each of up to 77 lengths, and a
// per-sequence BLAS call cannot run inside our OpenMP loop. Attention is a few percent of the
// text tower's FLOPs; the loops below vectorise over the head dimension (hs = 64).
//
// Sequence b occupies rows [off[b], off[b+1]) of qkv [M,3C] / out [M,C]; its probabilities for
// head h are the L x L matrix at att + att_off[b] + h*L*L (att_off[b] = NH * sum_{b'<b} L_b'^2).
// One thread owns one (sequence, head) pair, so every accumulation is race-free and its order
// fixed: the results do not depend on the thread count.

/* The inference-critical varlen forward, vectorised with GCC vector types (16 floats: one zmm
   in the AVX-512 clone, two ymm in the default one) and contracted multiply-adds (this file is
   otherwise compiled with -std=c11, i.e. -ffp-contract=off):
   scores: the keys of a tile of 64 transposed into kt[hs][64] on the stack (hs <= 128: 32 KiB),
     then each query row is 64 dot products at once in 4 register accumulators;
   att v:  the head's output row in hs/16 register accumulators.
   Heads with hs not in {32, 64, 128} take the plain loops. */
typedef float v16f __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4)));   /* unaligned loads and stores */
#define ld16(p) (*(const v16f_u *)(const void *)(p))
#define st16(p, v) (*(v16f_u *)(void *)(p) = (v))
enum { KT = 64 };

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
static inline __attribute__((always_inline)) void scores_tile(float *A, const float *qkv, int r0, int L, int j0, int jn,
                                                              int hs, int C, int h, float scale, bool causal, float *kt) {
    const int C3 = 3 * C;
    for (int jj = 0; jj < KT; jj++) {
        const float *k = qkv + (size_t)(r0 + j0 + (jj < jn ? jj : 0)) * C3 + C + h * hs;
        for (int e = 0; e < hs; e++) kt[e * KT + jj] = jj < jn ? k[e] : 0.0f;
    }
    for (int i = causal ? j0 : 0; i < L; i++) {
        const float *q = qkv + (size_t)(r0 + i) * C3 + h * hs;
        v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int e = 0; e < hs; e++) {
            float qe = q[e];
            const float *kr = kt + e * KT;
            a0 += qe * ld16(kr);
            a1 += qe * ld16(kr + 16);
            a2 += qe * ld16(kr + 32);
            a3 += qe * ld16(kr + 48);
        }
        float acc[KT];
        st16(acc, a0); st16(acc + 16, a1); st16(acc + 32, a2); st16(acc + 48, a3);
        int lim = causal ? (i + 1 - j0 < jn ? i + 1 - j0 : jn) : jn;
        float *a = A + (size_t)i * L + j0;
        for (int jj = 0; jj < lim; jj++) a[jj] = acc[jj] * scale;
    }
}

/* o[0..16*NV) = sum_{j<n} a[j] v_j */
static inline __attribute__((always_inline)) void att_v(float *o, const float *a, const float *v0, size_t stride, int n,
                                                        int NV) {
    v16f acc[8] = {{0}};
    for (int j = 0; j < n; j++) {
        const float *v = v0 + (size_t)j * stride;
        float w = a[j];
        #pragma GCC unroll 8
        for (int u = 0; u < NV; u++) acc[u] += w * ld16(v + 16 * u);
    }
    #pragma GCC unroll 8
    for (int u = 0; u < NV; u++) st16(o + 16 * u, acc[u]);
}

static inline __attribute__((always_inline)) void head_fast(float *out, float *A, const float *qkv, int r0, int L, int hs,
                                                            int C, int h, float scale, bool causal, int NV) {
    float kt[128 * KT] __attribute__((aligned(64)));
    for (int j0 = 0; j0 < L; j0 += KT) scores_tile(A, qkv, r0, L, j0, L - j0 < KT ? L - j0 : KT, hs, C, h, scale, causal, kt);
    for (int i = 0; i < L; i++) {
        int n = causal ? i + 1 : L;
        float *a = A + (size_t)i * L;
        cm_softmax_row(a, a, n);
        for (int j = n; j < L; j++) a[j] = 0.0f;
        att_v(out + (size_t)(r0 + i) * C + h * hs, a, qkv + (size_t)r0 * 3 * C + 2 * C + h * hs, (size_t)3 * C, n, NV);
    }
}

static void head_plain(float *out, float *A, const float *qkv, int r0, int L, int hs, int C, int h, float scale, bool causal) {
    int C3 = 3 * C;
    for (int i = 0; i < L; i++) {
        const float *q = qkv + (size_t)(r0 + i) * C3 + h * hs;
        int n = causal ? i + 1 : L;
        float *a = A + (size_t)i * L;
        for (int j = 0; j < n; j++) {
            const float *k = qkv + (size_t)(r0 + j) * C3 + C + h * hs;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int e = 0; e < hs; e++) acc += q[e] * k[e];
            a[j] = acc * scale;
        }
        cm_softmax_row(a, a, n);
        for (int j = n; j < L; j++) a[j] = 0.0f;
        float *o = out + (size_t)(r0 + i) * C + h * hs;
        for (int e = 0; e < hs; e++) o[e] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float *v = qkv + (size_t)(r0 + j) * C3 + 2 * C + h * hs;
            float w = a[j];
            #pragma omp simd
            for (int e = 0; e < hs; e++) o[e] += w * v[e];
        }
    }
}

CM_HOT void cm_attention_forward_varlen(float *out, float *att, const float *qkv, const int *off, const int64_t *att_off,
                                        int B, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for schedule(dynamic, 1) if (off[B] > 8)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, r0 = off[b], L = off[b + 1] - off[b];
        float *A = att + att_off[b] + (int64_t)h * L * L;
        if (hs == 64) head_fast(out, A, qkv, r0, L, hs, C, h, scale, causal, 4);
        else if (hs == 32) head_fast(out, A, qkv, r0, L, hs, C, h, scale, causal, 2);
        else if (hs == 128) head_fast(out, A, qkv, r0, L, hs, C, h, scale, causal, 8);
        else head_plain(out, A, qkv, r0, L, hs, C, h, scale, causal);
    }
}
#pragma GCC pop_options

void cm_attention_backward_varlen(float *dqkv, const float *dout, const float *qkv, const float *att, const int *off,
                               const int64_t *att_off, int B, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for schedule(dynamic, 1) if (off[B] > 8)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, r0 = off[b], L = off[b + 1] - off[b];
        if (L < 1) continue;
        const float *A = att + att_off[b] + (int64_t)h * L * L;
        float dS[L];   /* L <= context_length <= 4096 (config limit): at most 16 KiB of stack */
        for (int i = 0; i < L; i++) {
            const float *dO = dout + (size_t)(r0 + i) * C + h * hs;
            const float *a = A + (size_t)i * L;
            int n = causal ? i + 1 : L;
            float dot = 0.0f;
            for (int j = 0; j < n; j++) {           // dA_ij = dO_i . v_j ; dv_j += A_ij dO_i
                const float *v = qkv + (size_t)(r0 + j) * C3 + 2 * C + h * hs;
                float *dv = dqkv + (size_t)(r0 + j) * C3 + 2 * C + h * hs;
                float acc = 0.0f, w = a[j];
                #pragma omp simd reduction(+:acc)
                for (int e = 0; e < hs; e++) { acc += dO[e] * v[e]; dv[e] += w * dO[e]; }
                dS[j] = acc;
                dot += acc * w;
            }
            const float *q = qkv + (size_t)(r0 + i) * C3 + h * hs;
            float *dq = dqkv + (size_t)(r0 + i) * C3 + h * hs;
            for (int j = 0; j < n; j++) {           // dS = A (dA - rowsum(dA A)); dq_i += s dS k_j; dk_j += s dS q_i
                float g = a[j] * (dS[j] - dot) * scale;
                const float *k = qkv + (size_t)(r0 + j) * C3 + C + h * hs;
                float *dk = dqkv + (size_t)(r0 + j) * C3 + C + h * hs;
                #pragma omp simd
                for (int e = 0; e < hs; e++) { dq[e] += g * k[e]; dk[e] += g * q[e]; }
            }
        }
    }
}
