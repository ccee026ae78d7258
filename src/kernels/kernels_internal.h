/*
 * kernels_internal.h — helpers shared between the kernel files (not part of the ops.h contract).
 */
#ifndef CM_KERNELS_INTERNAL_H
#define CM_KERNELS_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
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
/* Planning: creates (or finds) the primitive of k with a user-mode scratchpad, its memory objects
   and stream; *scratch (may be NULL) = the scratchpad bytes its runs need. false when oneDNN
   cannot provide it (the caller's fallback runs). */
bool cm_mm_prepare(const CmMatmulKey *k, size_t *scratch);
/* Runs the primitive of k on the buffers with `scratch` (scratch_bytes available, 64-byte
   aligned) as its scratchpad. false, with nothing written, when oneDNN cannot provide it or it
   needs more scratch than given. A key planning did not create is created here and counted. */
bool cm_mm_run(const CmMatmulKey *k, const void *src, const void *wei, const float *bias, void *dst,
               void *scratch, size_t scratch_bytes);
/* true when the primitive of k exists (created here and counted when planning missed it) and
   needs at most scratch_bytes of scratchpad: the kernels check every chunk of a product before
   running the first, so that a fallback never meets half-accumulated outputs */
bool cm_mm_ready(const CmMatmulKey *k, size_t scratch_bytes);
/* primitives cm_mm_run / cm_mm_ready had to create (planning missed them): the tests hold this at 0 */
size_t cm_mm_created_at_run(void);
/* Cuts M rows into power-of-two chunks, largest first, so that the primitives of the powers up to a
   planned maximum serve every M below it: the binary digits of M rounded down to a multiple of
   `gran`, then one chunk of `gran` rows holding the M % gran tail (rows beyond M are the caller's
   to pad or stage); pad_tail: M is rounded up instead (the tail is merged into the binary digits).
   gran is a power of two. Returns the number of chunks (at most 32). */
static inline int cm_mm_row_chunks(int M, int gran, bool pad_tail, int *chunks) {
    int n = 0;
    if (M <= 0) return 0;
    int body = M / gran * gran, tail = M - body;
    if (pad_tail && tail) { body += gran; tail = 0; }
    for (int bit = 30; bit >= 0; bit--)
        if (body & (1 << bit)) chunks[n++] = 1 << bit;
    if (tail) chunks[n++] = gran;   /* the caller stages it (rows beyond M) */
    return n;
}
/* the largest chunk cm_mm_row_chunks makes for M (the chunk sizes to plan: gran, 2 gran, .., this) */
static inline int cm_mm_max_chunk(int M, int gran, bool pad_tail) {
    int p = gran, top = pad_tail ? (M + gran - 1) / gran * gran : (M > gran ? M : gran);
    while ((long)p * 2 <= top) p *= 2;
    return p;
}
/* 64-byte aligned offset arithmetic inside a workspace */
static inline size_t cm_ws_align(size_t bytes) { return (bytes + 63) & ~(size_t)63; }
void cm_mm_release(void);

/* The per-head BLAS versions of attention (used when oneDNN is unavailable; tested directly). */
void cm_attention_forward_blas(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal);
void cm_attention_backward_blas(float *dqkv, const float *dout, const float *qkv, const float *att,
                                int B, int T, int C, int NH, bool causal, void *ws);

#endif
