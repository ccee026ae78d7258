/*
 * attention.c — multi-head self-attention core on a fused qkv projection, torch
 * nn.MultiheadAttention semantics: att = softmax(q k^T / sqrt(hs) [+ causal -inf for key j > query i]),
 * out = att v, heads concatenated (before out_proj).
 *
 * Layouts: qkv[B,T,3C] (q | k | v per token, head h at columns h*hs within each), att[B,NH,T,T],
 * out[B,T,C]. Fast path: per-(b,h) sgemm through matmul() on strided views (called serially: no
 * OpenMP region around BLAS), then softmax / softmax-backward over all B*NH*T rows in one OpenMP
 * loop. The reference is plain loops in double.
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "kernels/kernels_internal.h"
#include "common/common.h"
#include <stdlib.h>
#include <string.h>

// forward: att[b,h] = softmax(scale * Q K^T) ; out[b,:,h] = att[b,h] @ V
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t TT = (size_t)T * T;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C;
            matmul(false, true, T, T, hs, scale, q, C3, k, C3, 0.0f, att + ((size_t)b * NH + h) * TT, T);
        }
    size_t rows = (size_t)B * NH * T;
    #pragma omp parallel for if (rows * T > CM_OMP_MIN)
    for (size_t r = 0; r < rows; r++) {
        float *a = att + r * T;
        int n = causal ? (int)(r % T) + 1 : T;  // keys 0..i visible
        cm_softmax_row(a, a, n);
        for (int j = n; j < T; j++) a[j] = 0.0f;
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *v = qkv + (size_t)b * T * C3 + 2 * C + h * hs;
            matmul(false, false, T, hs, T, 1.0f, att + ((size_t)b * NH + h) * TT, T, v, C3, 0.0f,
                   out + (size_t)b * T * C + h * hs, C);
        }
}

// backward, per (b,h), with dO = dout[b,:,h]:
//   dA = dO V^T ; dV += A^T dO ; dS = A * (dA - rowsum(dA*A)) ; dQ += scale dS K ; dK += scale dS^T Q
// Masked entries have A = 0, so dS = 0 there without special-casing.
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                        int B, int T, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    size_t TT = (size_t)T * T, rows = (size_t)B * NH * T;
    float *dA = malloc(sizeof(float) * rows * T);
    CM_ASSERT(dA != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *v = qkv + (size_t)b * T * C3 + 2 * C + h * hs;
            const float *dO = dout + (size_t)b * T * C + h * hs;
            const float *A = att + ((size_t)b * NH + h) * TT;
            float *dv = dqkv + (size_t)b * T * C3 + 2 * C + h * hs;
            matmul(false, true, T, T, hs, 1.0f, dO, C, v, C3, 0.0f, dA + ((size_t)b * NH + h) * TT, T);
            matmul(true, false, T, hs, T, 1.0f, A, T, dO, C, 1.0f, dv, C3);
        }
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
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C;
            const float *dS = dA + ((size_t)b * NH + h) * TT;
            matmul(false, false, T, hs, T, scale, dS, T, k, C3, 1.0f, dq, C3);
            matmul(true, false, T, hs, T, scale, dS, T, q, C3, 1.0f, dk, C3);
        }
    free(dA);
}

void attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    double *s = malloc(sizeof(double) * (T > 0 ? T : 1));
    CM_ASSERT(s != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * C3 + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) { s[j] = -INFINITY; continue; }
                    const float *k = qkv + ((size_t)b * T + j) * C3 + C + h * hs;
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)q[e] * k[e];
                    s[j] = d * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (int j = 0; j < T; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
                float *a = att + (((size_t)b * NH + h) * T + i) * T;
                for (int j = 0; j < T; j++) { s[j] /= sum; a[j] = (float)s[j]; }
                for (int e = 0; e < hs; e++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += s[j] * qkv[((size_t)b * T + j) * C3 + 2 * C + h * hs + e];
                    out[((size_t)b * T + i) * C + h * hs + e] = (float)o;
                }
            }
    free(s);
}

void attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH, bool causal) {
    CM_ASSERT(NH > 0 && C % NH == 0);
    int hs = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)hs);
    double *dA = malloc(sizeof(double) * (T > 0 ? T : 1));
    CM_ASSERT(dA != NULL);
#define QKV(b, t, part, e) ((((size_t)(b) * T + (t)) * C3) + (part) * C + h * hs + (e))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *a = att + (((size_t)b * NH + h) * T + i) * T;
                const float *dO = dout + ((size_t)b * T + i) * C + h * hs;
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)dO[e] * qkv[QKV(b, j, 2, e)];
                    dA[j] = d;
                    dot += d * a[j];
                    for (int e = 0; e < hs; e++) dqkv[QKV(b, j, 2, e)] += (float)((double)a[j] * dO[e]);
                }
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) continue;
                    double ds = a[j] * (dA[j] - dot) * scale;
                    for (int e = 0; e < hs; e++) {
                        dqkv[QKV(b, i, 0, e)] += (float)(ds * qkv[QKV(b, j, 1, e)]);
                        dqkv[QKV(b, j, 1, e)] += (float)(ds * qkv[QKV(b, i, 0, e)]);
                    }
                }
            }
#undef QKV
    free(dA);
}
