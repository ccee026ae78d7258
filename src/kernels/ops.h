/*
 * ops.h — the compute kernels: every layer's forward and backward side by side, on plain float*
 * host buffers: the CPU backend's implementation. The model reaches them through the backend table
 * (kernels/backend.h, CmBackend), the interface a second backend (CUDA) implements; this header is
 * the CPU backend's own. The double-precision references (`*_ref`) the tests hold these to live in
 * tests/kernel_lab/ref_ops.[ch], not in the library.
 *
 * Dimension legend
 *   M   rows (= B*T for token activations)     B   batch        T   tokens per sequence
 *   C   input width                            OC  output width  NH  heads, hs = C/NH head size
 *   K   classes                                N   samples in the contrastive batch, D feature dim
 *
 * Contracts
 *   - forward writes (=) its outputs; backward ACCUMULATES (+=) into every gradient buffer, so the
 *     caller zeroes gradients once per step. Pass NULL for a gradient that is not wanted: a frozen
 *     weight gets NULL and then no weight-gradient work is done at all.
 *   - Buffers of one call do not alias unless a comment says so.
 *   - Threading: fast paths use OpenMP on outer loops and the OpenMP build of OpenBLAS; no kernel
 *     nests its own parallel region around a BLAS call.
 *   - Weights use torch nn.Linear layout W[OC,C]: y = x W^T + b.
 *   - Kernels never allocate or create: scratch is the caller's workspace (`void *ws`,
 *     `ws_bytes`), sized by the matching *_plan(...) (or *_workspace) call when the caller plans
 *     its activations; *_plan also creates the oneDNN primitives (with user-mode scratchpads in
 *     that workspace) of every shape up to the planned one.
 * defines (every name prefixed cm_): linear_* (fp32 and _bf16), matmul, bf16_*, layernorm_*, gelu_*,
 *          quickgelu_*, relu_*, softmax_*, attention_*, l2norm_*, crossentropy_*, contrastive_*, dropout_*,
 *          embedding_*, im2patch, add_*, lora_*, residual_init, transpose_scaled, gather/scatter_rows,
 *          cls_pos_*, scale, dot, adamw, sumsq, int8_*
 */
#ifndef CM_OPS_H
#define CM_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/rng.h"
#include "common/common.h"

// ---------------------------------------------------------------------------------------------
// matrix products (BLAS sgemm)

/* out[M,OC] = inp[M,C] @ W[OC,C]^T + b[OC]   (b may be NULL) */
void cm_linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC);
/* dinp[M,C] += dout[M,OC] @ W ; dW[OC,C] += dout^T @ inp ; db[OC] += colsum(dout). Any may be NULL. */
void cm_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int M, int C, int OC);

/* bf16 products for `--precision amp` (oneDNN matmul, AMX/AVX512-BF16): inputs rounded to bf16
   (nearest even), fp32 accumulation and outputs; same contract as cm_linear_forward/backward
   (db is an fp32 column sum). Planning: cm_linear_bf16_plan creates the oneDNN products (thread-
   safe cache) of every row chunk of up to M rows (forward with or without bias; backward: the
   dinp and dW products) and returns the workspace bytes of a call with at most M rows (64-byte
   aligned; bf16 copies, a staging area, the primitives' scratchpad). Without oneDNN bf16 support:
   bf16-rounded inputs through fp32 sgemm (same numbers up to summation order). */
size_t cm_linear_bf16_plan(int M, int C, int OC, bool bias, bool backward);
void cm_linear_forward_bf16(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC,
                            void *ws, size_t ws_bytes);
void cm_linear_backward_bf16(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                             const float *W, int M, int C, int OC, void *ws, size_t ws_bytes);
float cm_bf16_round(float x);   /* fp32 -> nearest-even bf16 -> fp32 */
bool cm_bf16_native(void);      /* true when oneDNN provides bf16 matmul on this CPU */
void cm_bf16_release(void);     /* destroys the cached oneDNN primitives (none may be running) */

/* Plain row-major sgemm: C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose when tA/tB.
   lda/ldb/ldc are row strides. The one place BLAS is called. */
void cm_matmul(bool tA, bool tB, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *Cm, int ldc);

// ---------------------------------------------------------------------------------------------
// normalisation

/* LayerNorm over the last dim (eps 1e-5, biased variance as torch):
   out[M,C] = (inp - mean) * rstd * w + b; caches mean[M], rstd[M] for backward. */
void cm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C);
/* dinp[M,C] += ..., dw[C] += ..., db[C] += ...   (dw/db may be NULL) */
void cm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C);

/* out[M,C] = inp / max(||inp||_2, 1e-12) row-wise (F.normalize); caches norm[M] (the unclamped
   norm). dinp[M,C] += d/dinp given dout and the forward's out and norm. */
void cm_l2norm_forward(float *out, float *norm, const float *inp, int M, int C);
void cm_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int M, int C);

// ---------------------------------------------------------------------------------------------
// elementwise activations (n elements); backward: dinp += f'(inp) * dout

void cm_gelu_forward(float *out, const float *inp, size_t n);        /* exact: 0.5 x (1 + erf(x/sqrt2)) */
void cm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cm_quickgelu_forward(float *out, const float *inp, size_t n);   /* x * sigmoid(1.702 x) */
void cm_quickgelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void cm_relu_forward(float *out, const float *inp, size_t n);
void cm_relu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out = a + b (n elements); may alias out == a */
void cm_add_forward(float *out, const float *a, const float *b, size_t n);

/* Inverted dropout with probability p on B samples of n elements each (sample b's elements are
   the n consecutive values at b*n): mask = keep ? 1/(1-p) : 0, out = inp * mask (out may alias
   inp). The keep decision of element e of sample b is a pure function of (key->seed, key->step,
   site, key->sample_base + b, e) through Philox4x32-10 — counter (e/4, site, global sample index,
   step), key = seed, word e%4, 24-bit uniform >= p — so the masks do not depend on how a batch is
   split into micro-batches, processes or devices, nor on the thread count, and a resumed run
   draws the same masks. p == 0 (or eval) must be handled by the caller skipping the call.
   dinp += dout * mask. */
typedef struct { uint64_t seed, step; int64_t sample_base; } CmDropoutKey;
void cm_dropout_forward(float *out, float *mask, const float *inp, float p, size_t n, int B, const CmDropoutKey *key,
                        uint32_t site);
void cm_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n);

// ---------------------------------------------------------------------------------------------
// int8 inference linears (linear_int8.c)

/* Activation columns larger than this many times the median column maximum are multiplied in
   fp32 (at most C/16 of them), the rest in int8. */
#define CM_INT8_OUTLIER_RATIO 6.0f
typedef struct CmInt8Weights {
    int OC, C;
    int8_t *w;            /* [OC,C] round(W / w_scale[n]) */
    float *w_scale;       /* [OC] max_c |W[n,c]| / 127 */
    int32_t *w_sum;       /* [OC] sum_c w[n,c] (the activations' zero points; same block as w_scale) */
    const float *w_f32;   /* the fp32 weights [OC,C] (outlier columns; not owned) */
} CmInt8Weights;
/* Quantises W [OC,C] per output channel into mem (cm_int8_weights_bytes(OC, C) bytes, 4-byte
   aligned, owned by the caller: q->w == mem); keeps a pointer to W (it must outlive q). */
size_t cm_int8_weights_bytes(int OC, int C);
cm_status cm_int8_weights_init(CmInt8Weights *q, const float *W, int OC, int C, void *mem);
/* Planning (when a session sizes its activations): creates the oneDNN products of every row
   chunk of up to M rows and returns the workspace bytes of a call with at most M rows (the
   kernel runs plain integer loops where oneDNN cannot provide a product). */
size_t cm_linear_int8_plan(int M, int C, int OC);
/* out[M,OC] = x[M,C] W^T + b (+ res, may be NULL or equal to out) with x quantised per row
   (asymmetric u8; outlier columns in fp32); b may be NULL. ws: ws_bytes >= cm_linear_int8_plan. */
void cm_linear_forward_int8(float *out, const float *x, const CmInt8Weights *q, const float *b, const float *res,
                            int M, void *ws, size_t ws_bytes);
/* out = gelu(x W^T + b) (quick: x sigmoid(1.702 x)), the activation applied in the
   dequantisation pass; same numbers as cm_linear_forward_int8 then cm_(quick)gelu_forward. */
void cm_linear_gelu_forward_int8(float *out, const float *x, const CmInt8Weights *q, const float *b, bool quick,
                                 int M, void *ws, size_t ws_bytes);

// ---------------------------------------------------------------------------------------------
// softmax and attention

/* Row softmax: out[M,N] = softmax(inp) (max-subtracted). dinp += out * (dout - sum(dout*out)). */
void cm_softmax_forward(float *out, const float *inp, int M, int N);
void cm_softmax_backward(float *dinp, const float *out, const float *dout, int M, int N);

/* Multi-head self-attention core on a fused projection (torch nn.MultiheadAttention semantics):
   qkv[B,T,3C]: per token q | k | v, each C = NH*hs wide, head h at columns [h*hs,(h+1)*hs).
   att[B,NH,T,T]: softmax(q k^T / sqrt(hs) + mask) probabilities, cached for backward.
   out[B,T,C]: heads concatenated (before out_proj). causal: key j > query i masked (-inf).
   Backward: dqkv[B,T,3C] += ...
   Planning: cm_attention_plan creates the oneDNN products for batches of up to B (power-of-two
   batch chunks) and returns the workspace bytes of a call with at most B samples (forward: the
   primitives' scratchpad; backward also the dA scratch [B,NH,T,T]); where oneDNN cannot provide
   them the per-head BLAS products run. */
size_t cm_attention_plan(int B, int T, int C, int NH, bool backward);
/* Optional dropout on the probabilities (torch nn.MultiheadAttention in training): the forward
   keeps att (softmax) and writes attd = dropout(att) with its mask [B,NH,T,T] (cm_dropout_forward
   with n = NH*T*T per sample, the given key and site), and out = attd v; the backward reads them. */
typedef struct { float p; const CmDropoutKey *key; uint32_t site; float *attd, *mask; } CmAttnDropout;
void cm_attention_forward_dropout(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                                  const CmAttnDropout *dr, void *ws, size_t ws_bytes);
void cm_attention_backward_dropout(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                   int C, int NH, bool causal, const CmAttnDropout *dr, void *ws, size_t ws_bytes);
size_t cm_attention_backward_workspace(int B, int T, int NH);   /* the dA part of the plan's bytes */
void cm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                          void *ws, size_t ws_bytes);
void cm_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           int B, int T, int C, int NH, bool causal, void *ws, size_t ws_bytes);
/* The same over B packed sequences of different lengths (text batches without padding): sequence b
   is rows [off[b], off[b+1]) of qkv [M,3C] / out [M,C] / dqkv (M = off[B]); its probabilities for
   head h are the L x L block at att + att_off[b] + h*L*L, att_off[b] = NH * sum_{b'<b} L_b'^2.
   Same numbers as attention_forward on each sequence alone (fp32 rounding). */
void cm_attention_forward_varlen(float *out, float *att, const float *qkv, const int *off, const int64_t *att_off,
                              int B, int C, int NH, bool causal);
void cm_attention_backward_varlen(float *dqkv, const float *dout, const float *qkv, const float *att, const int *off,
                               const int64_t *att_off, int B, int C, int NH, bool causal);

// ---------------------------------------------------------------------------------------------
// embeddings and patches

/* out[B,T,C] = table[ids[b,t], :] + pos[t, :]   (ids checked by the caller to be < V)
   dtable[V,C] += scatter(dout) (may be NULL), dpos[T,C] += sum_b dout (may be NULL) */
void cm_embedding_forward(float *out, const int32_t *ids, const float *table, const float *pos, int B, int T, int C);
void cm_embedding_backward(float *dtable, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C);

/* Rows with explicit positions (packed text): out[M,C] = table[ids[i]] + pos[row_pos[i]];
   dtable += scatter(dout), dpos[row_pos[i]] += dout[i]. */
void cm_embedding_forward_rows(float *out, const int32_t *ids, const int32_t *row_pos, const float *table, const float *pos,
                            int M, int C);
void cm_embedding_backward_rows(float *dtable, float *dpos, const float *dout, const int32_t *ids, const int32_t *row_pos,
                             int M, int C);

/* Flatten non-overlapping PxP patches of img[B,3,H,W] into patches[B*NP, 3*P*P] (NP = (H/P)*(W/P),
   patches row-major over the grid, each patch ordered (c, ky, kx) to match torch conv weight
   [OC,3,P,P] flattened). A conv without bias == cm_linear_forward(patches, W viewed as [OC,3PP]).
   Backward (only needed for input gradients, which training never needs) is omitted on purpose. */
void cm_im2patch(float *patches, const float *img, int B, int H, int W, int P);

// ---------------------------------------------------------------------------------------------
// losses

/* Mean cross-entropy over M rows: returns mean_i -log softmax(logits_i)[labels_i];
   probs[M,K] cached. Backward: dlogits[M,K] += dloss * (probs - onehot(labels)) / M. */
float cm_crossentropy_forward(float *probs, const float *logits, const int32_t *labels, int M, int K);
void cm_crossentropy_backward(float *dlogits, const float *probs, const int32_t *labels, int M, int K, float dloss);

/* The masked contrastive loss of DESIGN §2 on L2-normalised features U[N,D] (image), V[N,D] (text)
   with scale s = exp(logit_scale) and mask m_i = (labels_i == 0):
     L = sum_i m_i (CE(s U V^T [i,:], i) + CE(s V U^T [i,:], i)) / (2 sum_i m_i), 0 if no m_i.
   Caches p_img[N,N] = softmax rows of s U V^T and p_txt[N,N] = softmax rows of s V U^T.
   Backward: dU += ..., dV += ..., *dscale += dL/ds (the caller multiplies by s to get
   d/d logit_scale). Any of dU, dV, dscale may be NULL.
   Written over whole-batch U and V so that a distributed version can pass gathered features.
   Backward ws: cm_contrastive_backward_workspace(N) bytes. */
float cm_contrastive_forward(float *p_img, float *p_txt, const float *U, const float *V, float s,
                          const int32_t *labels, int N, int D);
size_t cm_contrastive_backward_workspace(int N);
void cm_contrastive_backward(float *dU, float *dV, float *dscale, const float *p_img, const float *p_txt,
                          const float *U, const float *V, float s, const int32_t *labels, int N, int D,
                          float dloss, void *ws);

// ---------------------------------------------------------------------------------------------
// LoRA and fused residual (lora.c): any rank r >= 1, no allocation

/* lt[M,r] = x[M,D] @ A[r,D]^T */
void cm_lora_down(float *lt, const float *x, const float *A, int M, int D, int r);
/* out[r,D] += alpha * a[M,r]^T @ X[M,D]   (dA = dlt^T x; dB^T = s lt^T dres) */
void cm_lora_tn(float *out, const float *a, const float *X, int M, int D, int r, float alpha);
/* y[M,D] += l[M,r] @ A[r,D] */
void cm_lora_up_acc(float *y, const float *l, const float *A, int M, int D, int r);
/* dst[M,D] = res[M,D] + b[D] (+ lt[M,r] @ Bt[r,D] when lt): the residual, bias and LoRA terms
   of a linear with a residual, before the product adds x W^T (beta = 1). */
void cm_residual_init(float *dst, const float *res, const float *b, const float *lt, const float *Bt, int r,
                      int M, int D);
/* dst[cols,rows] = s * src[rows,cols]^T */
void cm_transpose_scaled(float *dst, const float *src, int rows, int cols, float s);

// ---------------------------------------------------------------------------------------------
// rows and stems (rows.c)

/* dst[b,:] = src[rows[b],:] for b < n (C columns) / dst[rows[b],:] = src[b,:] */
void cm_gather_rows(float *dst, const float *src, const int *rows, int n, int C);
void cm_scatter_rows(float *dst, const float *src, const int *rows, int n, int C);
/* vision stem: x[B,NP+1,C] = [cls; emb[B,NP,C]] + pos[NP+1,C]. Backward: dcls[C] += sum_b dx[b,0],
   dpos += sum_b dx[b], demb[B,NP,C] = dx[b,1:] (written); any may be NULL. */
void cm_cls_pos_forward(float *x, const float *emb, const float *cls, const float *pos, int B, int NP, int C);
void cm_cls_pos_backward(float *dcls, float *dpos, float *demb, const float *dx, int B, int NP, int C);
/* x[0..n) *= a */
void cm_scale(float *x, float a, size_t n);
/* sum_k a[k] b[k] accumulated in double, in order (deterministic) */
double cm_dot(const float *a, const float *b, size_t n);

// ---------------------------------------------------------------------------------------------
// optimizer (adamw.c)

/* torch AdamW on one buffer at optimizer step `step` (1-based) with weight decay wd (0: none) */
typedef struct { int64_t step; double lr, wd, beta1, beta2, eps; } CmAdamWArgs;
void cm_adamw(float *p, const float *g, float *m, float *v, size_t n, const CmAdamWArgs *h);
/* sum of squares in double over fixed 4096-element blocks (deterministic) */
double cm_sumsq(const float *g, size_t n);

#endif
