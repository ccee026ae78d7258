/*
 * backend.h — the compute seam: ONE table of operations (CmBackend) through which the model and
 * the optimizer compute, in the spirit of ggml's backend interface (scaled down). A backend owns
 * its buffers (alloc/free/copy/zero, synchronize) and implements every op below on them; the CPU
 * backend (cm_backend_cpu) wraps the kernels of ops.h. A second backend (CUDA) fills the same
 * table with device pointers: callers never assume more than "a float* of n elements that the
 * backend allocated", and never touch the elements themselves.
 *
 * Contracts (the same for every backend; tests/test_backend_ops.c checks each op of each backend
 * against the double-precision references of tests/kernel_lab/, forward and gradients)
 *   - forward ops write (=) their outputs; backward ops ACCUMULATE (+=) into gradient buffers
 *     (the caller zeroes once per step); a NULL gradient is not computed at all.
 *   - Ops never allocate and never fail: memory comes from alloc() (a status on failure) and
 *     scratch from a workspace (ws, ws_bytes) the caller planned before the step (as it sizes its
 *     activations): plan_* creates whatever the backend caches per shape (oneDNN primitives with
 *     user-mode scratchpads on the CPU) for every shape up to the planned one (fewer rows: packed
 *     text, a short last batch) and returns the workspace bytes those calls need. Nothing is
 *     created at run time. Invalid shapes are caller bugs.
 *   - Precision is an argument (CmMatPrec), not a different call site: F32, or BF16 products
 *     (inputs rounded to bf16 nearest-even, fp32 accumulation and outputs: torch autocast on CPU).
 *   - Ops run in issue order on one stream; synchronize() waits for all of them (host reads).
 * Shapes and layouts are those of ops.h (W[OC,C] nn.Linear layout, qkv[B,T,3C], att[B,NH,T,T]).
 * defines: CmMatPrec, CmBackend, cm_backend_cpu
 */
#ifndef CM_BACKEND_H
#define CM_BACKEND_H

#include "kernels/ops.h"

typedef enum { CM_MM_F32 = 0, CM_MM_BF16 = 1 } CmMatPrec;

typedef struct CmBackend {
    const char *name;

    // --- buffers ------------------------------------------------------------------------------
    /* NULL + cm_error(CM_ERR_OOM, naming `what`) on failure; 64-byte aligned on the CPU */
    void *(*alloc)(size_t bytes, const char *what);
    void (*free)(void *p);
    void (*copy)(void *dst, const void *src, size_t bytes);   /* buffers of this backend or host */
    void (*zero)(void *dst, size_t bytes);
    void (*synchronize)(void);

    // --- planning (before the step): workspace bytes for calls up to the given shape ----------------
    size_t (*plan_linear)(CmMatPrec prec, int M, int C, int OC, bool bias, bool backward);
    size_t (*plan_attention)(int B, int T, int C, int NH, bool backward);
    size_t (*plan_linear_int8)(int M, int C, int OC);
    size_t (*contrastive_workspace)(int N);

    // --- products ------------------------------------------------------------------------------
    /* C[M,N] = alpha op(A) op(B) + beta C, row-major, lda/ldb/ldc row strides (fp32) */
    void (*matmul)(bool tA, bool tB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *Cm, int ldc);
    /* out[M,OC] = inp[M,C] @ W[OC,C]^T + b (b may be NULL); ws: plan_linear(prec, >= M, C, OC, ..) */
    void (*linear_forward)(CmMatPrec prec, float *out, const float *inp, const float *W, const float *b,
                           int M, int C, int OC, void *ws, size_t ws_bytes);
    void (*linear_backward)(CmMatPrec prec, float *dinp, float *dW, float *db, const float *dout,
                            const float *inp, const float *W, int M, int C, int OC, void *ws, size_t ws_bytes);
    /* int8 inference linear (ops.h CmInt8Weights): out = x W^T + b (+ res); ws: plan_linear_int8 */
    void (*linear_forward_int8)(float *out, const float *x, const CmInt8Weights *q, const float *b,
                                const float *res, int M, void *ws, size_t ws_bytes);
    /* out = gelu(x W^T + b) (quick: x sigmoid(1.702 x)), the activation in the dequantisation pass */
    void (*linear_gelu_forward_int8)(float *out, const float *x, const CmInt8Weights *q, const float *b, bool quick,
                                     int M, void *ws, size_t ws_bytes);

    // --- normalisation ---------------------------------------------------------------------------
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w,
                              const float *b, int M, int C);
    void (*layernorm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                               const float *w, const float *mean, const float *rstd, int M, int C);
    void (*l2norm_forward)(float *out, float *norm, const float *inp, int M, int C);
    void (*l2norm_backward)(float *dinp, const float *dout, const float *out, const float *norm, int M, int C);

    // --- elementwise -----------------------------------------------------------------------------
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*quickgelu_forward)(float *out, const float *inp, size_t n);
    void (*quickgelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*relu_forward)(float *out, const float *inp, size_t n);
    void (*relu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*add)(float *out, const float *a, const float *b, size_t n);
    void (*scale)(float *x, float a, size_t n);
    double (*dot)(const float *a, const float *b, size_t n);   /* double accumulation, in order */
    void (*dropout_forward)(float *out, float *mask, const float *inp, float p, size_t n, int B,
                            const CmDropoutKey *key, uint32_t site);
    void (*dropout_backward)(float *dinp, const float *dout, const float *mask, size_t n);

    // --- softmax and attention --------------------------------------------------------------------
    void (*softmax_forward)(float *out, const float *inp, int M, int N);
    void (*softmax_backward)(float *dinp, const float *out, const float *dout, int M, int N);
    /* drop: dropout on the probabilities (ops.h CmAttnDropout), NULL for none; ws: plan_attention(>= B,
       T, C, NH, backward) bytes */
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal,
                              const CmAttnDropout *drop, void *ws, size_t ws_bytes);
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *att,
                               int B, int T, int C, int NH, bool causal, const CmAttnDropout *drop, void *ws,
                               size_t ws_bytes);
    void (*attention_forward_varlen)(float *out, float *att, const float *qkv, const int *off,
                                     const int64_t *att_off, int B, int C, int NH, bool causal);
    void (*attention_backward_varlen)(float *dqkv, const float *dout, const float *qkv, const float *att,
                                      const int *off, const int64_t *att_off, int B, int C, int NH, bool causal);

    // --- embeddings, patches, rows ------------------------------------------------------------------
    void (*embedding_forward)(float *out, const int32_t *ids, const float *table, const float *pos, int B, int T, int C);
    void (*embedding_backward)(float *dtable, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C);
    void (*embedding_forward_rows)(float *out, const int32_t *ids, const int32_t *row_pos, const float *table,
                                   const float *pos, int M, int C);
    void (*embedding_backward_rows)(float *dtable, float *dpos, const float *dout, const int32_t *ids,
                                    const int32_t *row_pos, int M, int C);
    void (*im2patch)(float *patches, const float *img, int B, int H, int W, int P);
    void (*cls_pos_forward)(float *x, const float *emb, const float *cls, const float *pos, int B, int NP, int C);
    void (*cls_pos_backward)(float *dcls, float *dpos, float *demb, const float *dx, int B, int NP, int C);
    void (*gather_rows)(float *dst, const float *src, const int *rows, int n, int C);
    void (*scatter_rows)(float *dst, const float *src, const int *rows, int n, int C);

    // --- LoRA (any rank r >= 1) and the fused residual ------------------------------------------------
    void (*lora_down)(float *lt, const float *x, const float *A, int M, int D, int r);
    void (*lora_tn)(float *out, const float *a, const float *X, int M, int D, int r, float alpha);
    void (*lora_up_acc)(float *y, const float *l, const float *A, int M, int D, int r);
    void (*residual_init)(float *dst, const float *res, const float *b, const float *lt, const float *Bt, int r,
                          int M, int D);
    void (*transpose_scaled)(float *dst, const float *src, int rows, int cols, float s);

    // --- losses ----------------------------------------------------------------------------------------
    float (*crossentropy_forward)(float *probs, const float *logits, const int32_t *labels, int M, int K);
    void (*crossentropy_backward)(float *dlogits, const float *probs, const int32_t *labels, int M, int K, float dloss);
    float (*contrastive_forward)(float *p_img, float *p_txt, const float *U, const float *V, float s,
                                 const int32_t *labels, int N, int D);
    /* ws: contrastive_workspace(N) */
    void (*contrastive_backward)(float *dU, float *dV, float *dscale, const float *p_img, const float *p_txt,
                                 const float *U, const float *V, float s, const int32_t *labels, int N, int D,
                                 float dloss, void *ws);

    // --- optimizer --------------------------------------------------------------------------------------
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, const CmAdamWArgs *h);
    /* sum of squares (deterministic order): grad-norm clipping = sqrt of the sum, then scale() */
    double (*sumsq)(const float *g, size_t n);
} CmBackend;

/* The CPU backend: OpenBLAS sgemm, oneDNN (bf16, int8, batched attention), OpenMP loops. */
const CmBackend *cm_backend_cpu(void);

#endif
