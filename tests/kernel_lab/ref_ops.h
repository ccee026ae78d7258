/*
 * ref_ops.h — double-precision references of the kernels (tests/kernel_lab/ref_ops.c), linked into
 * the tests and benchmarks only. Same signatures and contracts as the fast paths in
 * src/kernels/ops.h (forward writes, backward accumulates, NULL gradients skipped), minus the
 * workspace argument (a reference allocates what it needs).
 */
#ifndef CM_REF_OPS_H
#define CM_REF_OPS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void cm_linear_forward_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC);
void cm_linear_backward_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                         const float *W, int M, int C, int OC);
void cm_gelu_forward_ref(float *out, const float *inp, size_t n);
void cm_gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);
void cm_quickgelu_forward_ref(float *out, const float *inp, size_t n);
void cm_quickgelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t n);
void cm_softmax_forward_ref(float *out, const float *inp, int M, int N);
void cm_softmax_backward_ref(float *dinp, const float *out, const float *dout, int M, int N);
void cm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int M, int C);
void cm_layernorm_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int M, int C);
void cm_linear_forward_bf16_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC);
void cm_linear_backward_bf16_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                              const float *W, int M, int C, int OC);
void cm_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal);
void cm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH, bool causal);
float cm_contrastive_forward_ref(float *p_img, float *p_txt, const float *U, const float *V, float s,
                             const int32_t *labels, int N, int D);
void cm_contrastive_backward_ref(float *dU, float *dV, float *dscale, const float *p_img, const float *p_txt,
                              const float *U, const float *V, float s, const int32_t *labels, int N, int D,
                              float dloss);

#endif
