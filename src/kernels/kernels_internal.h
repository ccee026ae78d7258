/*
 * kernels_internal.h — helpers shared between the kernel files (not part of the ops.h contract).
 */
#ifndef CM_KERNELS_INTERNAL_H
#define CM_KERNELS_INTERNAL_H
#include <stdbool.h>
#include <stdint.h>

/* y[0..n) = softmax(x[0..n)), max-subtracted; y may alias x. Serial (call inside a parallel loop). */
void cm_softmax_row(float *y, const float *x, int n);

/* oneDNN matmul primitive cache (dnnl_matmul.c): dst (+)= scale * src @ wei (+ bias), batched over
   the leading dims (nd = 2..4), every operand a strided view of data type dt (f32 dst for
   f32/bf16 products, s32 dst for s8 x s8). */
enum { CM_DT_F32 = 0, CM_DT_BF16 = 1, CM_DT_S8 = 2, CM_DT_S32 = 3, CM_DT_U8 = 4 };
typedef struct { int64_t dims[4], strides[4]; int dt; } CmMatmulDesc;
typedef struct {
    int nd;
    CmMatmulDesc src, wei, dst;
    int bias;     /* f32 bias of length N added to every row */
    float scale;  /* output scale */
    int acc;      /* 1: dst += result (sum post-op) */
} CmMatmulKey;
void cm_mm_key_init(CmMatmulKey *k, int nd);  /* zeroes the key (memcmp'd), scale 1 */
/* Runs the cached (or newly created) primitive; false when oneDNN cannot provide it. */
bool cm_mm_run(const CmMatmulKey *k, const void *src, const void *wei, const float *bias, void *dst);
/* Creates (or finds) the primitive without running it; false when unavailable. */
bool cm_mm_prepare(const CmMatmulKey *k);
void cm_mm_release(void);

/* The per-head BLAS versions of attention (used when oneDNN is unavailable; tested directly). */
void cm_attention_forward_blas(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal);
void cm_attention_backward_blas(float *dqkv, const float *dout, const float *qkv, const float *att,
                                int B, int T, int C, int NH, bool causal, void *ws);

#endif
