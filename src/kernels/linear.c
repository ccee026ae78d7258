/*
 * linear.c — matrix products: `cm_matmul` (the one place cblas_sgemm of OpenBLAS-openmp is called)
 * and the nn.Linear layer forward/backward built on it (references: tests/kernel_lab/ref_ops.c).
 * BLAS threads itself; no OpenMP region is ever opened around a BLAS call.
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include <cblas.h>
#include <string.h>

// C[M,N] = alpha op(A) op(B) + beta C (row-major, lda/ldb/ldc row strides)
void cm_matmul(bool tA, bool tB, int M, int N, int K, float alpha, const float *A, int lda,
            const float *B, int ldb, float beta, float *Cm, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // op(A)op(B) is empty: C = beta C
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) Cm[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * Cm[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc);
}

// forward: out[M,OC] = inp[M,C] @ W[OC,C]^T + b[OC]
void cm_linear_forward(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    if (b) {
        #pragma omp parallel for if ((size_t)M * OC > CM_OMP_MIN)
        for (int i = 0; i < M; i++) memcpy(out + (size_t)i * OC, b, sizeof(float) * OC);
    }
    cm_matmul(false, true, M, OC, C, 1.0f, inp, C, W, C, b ? 1.0f : 0.0f, out, OC);
}

// backward: dinp[M,C] += dout[M,OC] @ W[OC,C]; dW[OC,C] += dout^T @ inp; db[OC] += colsum(dout)
void cm_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                     const float *W, int M, int C, int OC) {
    if (dinp) cm_matmul(false, false, M, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    if (dW) cm_matmul(true, false, OC, C, M, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
    if (db) {
        // column blocks per thread: deterministic, no atomics
        int nblk = (OC + 63) / 64;
        #pragma omp parallel for if ((size_t)M * OC > CM_OMP_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int j0 = blk * 64, j1 = j0 + 64 < OC ? j0 + 64 : OC;
            float acc[64] = {0};
            for (int i = 0; i < M; i++) {
                const float *r = dout + (size_t)i * OC;
                #pragma omp simd
                for (int j = j0; j < j1; j++) acc[j - j0] += r[j];
            }
            for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
        }
    }
}

