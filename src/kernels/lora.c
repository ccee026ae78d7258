/*
 * lora.c — the small-rank products of LoRA on attn.out_proj (DESIGN §1.2) and the fused residual
 * pass of a linear with a residual: plain loops, because BLAS is slow at N = r = 4..64. Any rank
 * r >= 1: the accumulation of cm_lora_tn runs over rank tiles of 16 and column blocks of 128 (8 KiB
 * of stack), so no rank limit and no allocation.
 *
 *   cm_lora_down     lt[M,r]  = x[M,D] @ A[r,D]^T
 *   cm_lora_tn       out[r,D] += alpha * a[M,r]^T @ X[M,D]       (dA, and dB^T)
 *   cm_lora_up_acc   y[M,D]   += l[M,r] @ A[r,D]                 (dx of the down product)
 *   cm_residual_init dst[M,D]  = res + b (+ s * lt @ B^T)        (before the GEMM adds x W^T)
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"

void cm_lora_down(float *lt, const float *x, const float *A, int M, int D, int r) {
    #pragma omp parallel for if ((size_t)M * D > 65536)
    for (int i = 0; i < M; i++) {
        const float *xi = x + (size_t)i * D;
        for (int k = 0; k < r; k++) {
            const float *a = A + (size_t)k * D;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int c = 0; c < D; c++) acc += xi[c] * a[c];
            lt[(size_t)i * r + k] = acc;
        }
    }
}

void cm_residual_init(float *dst, const float *res, const float *b, const float *lt, const float *Bt, int r,
                      int M, int D) {
    #pragma omp parallel for if ((size_t)M * D > 65536)
    for (int i = 0; i < M; i++) {
        float *y = dst + (size_t)i * D;
        const float *x = res + (size_t)i * D;
        #pragma omp simd
        for (int c = 0; c < D; c++) y[c] = x[c] + b[c];
        if (lt)
            for (int k = 0; k < r; k++) {
                float l = lt[(size_t)i * r + k];
                const float *bt = Bt + (size_t)k * D;
                #pragma omp simd
                for (int c = 0; c < D; c++) y[c] += l * bt[c];
            }
    }
}

void cm_transpose_scaled(float *dst, const float *src, int rows, int cols, float s) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * rows + i] = s * src[(size_t)i * cols + j];
}

#define TN_RK 16
#define TN_CB 128
void cm_lora_tn(float *out, const float *a, const float *X, int M, int D, int r, float alpha) {
    int nblk = (D + TN_CB - 1) / TN_CB, nkt = (r + TN_RK - 1) / TN_RK;
    #pragma omp parallel for collapse(2) if ((size_t)M * D * (size_t)nkt > 65536)
    for (int kt = 0; kt < nkt; kt++)
        for (int bk = 0; bk < nblk; bk++) {
            int c0 = bk * TN_CB, c1 = c0 + TN_CB < D ? c0 + TN_CB : D;
            int k0 = kt * TN_RK, k1 = k0 + TN_RK < r ? k0 + TN_RK : r;
            float acc[TN_RK][TN_CB];
            for (int k = 0; k < k1 - k0; k++) for (int c = 0; c < c1 - c0; c++) acc[k][c] = 0.0f;
            for (int i = 0; i < M; i++) {
                const float *x = X + (size_t)i * D + c0;
                const float *ai = a + (size_t)i * r + k0;
                for (int k = 0; k < k1 - k0; k++) {
                    float w = ai[k];
                    #pragma omp simd
                    for (int c = 0; c < c1 - c0; c++) acc[k][c] += w * x[c];
                }
            }
            for (int k = 0; k < k1 - k0; k++)
                for (int c = c0; c < c1; c++) out[(size_t)(k0 + k) * D + c] += alpha * acc[k][c - c0];
        }
}

void cm_lora_up_acc(float *y, const float *l, const float *A, int M, int D, int r) {
    #pragma omp parallel for if ((size_t)M * D > 65536)
    for (int i = 0; i < M; i++) {
        float *yi = y + (size_t)i * D;
        for (int q = 0; q < r; q++) {
            float w = l[(size_t)i * r + q];
            const float *aw = A + (size_t)q * D;
            #pragma omp simd
            for (int c = 0; c < D; c++) yi[c] += w * aw[c];
        }
    }
}
