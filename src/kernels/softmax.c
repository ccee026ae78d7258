/*
 * softmax.c — row softmax (max-subtracted) forward and backward, and the row helper that
 * attention and the losses share. The exp loop is a `#pragma omp simd` loop vectorised with
 * libmvec's expf (vecmath.h).
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "kernels/kernels_internal.h"

// y[0..n) = softmax(x[0..n)); y may alias x
CM_HOT void cm_softmax_row(float *y, const float *x, int n) {
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int j = 0; j < n; j++) {
        float e = expf(x[j] - m);
        y[j] = e;
        s += e;
    }
    float inv = 1.0f / s;
    #pragma omp simd
    for (int j = 0; j < n; j++) y[j] *= inv;
}

// out[M,N] = softmax rows of inp[M,N]
CM_HOT void cm_softmax_forward(float *out, const float *inp, int M, int N) {
    #pragma omp parallel for if ((size_t)M * N > CM_OMP_MIN)
    for (int i = 0; i < M; i++) cm_softmax_row(out + (size_t)i * N, inp + (size_t)i * N, N);
}

// dinp[M,N] += out * (dout - sum_j dout*out)
CM_HOT void cm_softmax_backward(float *dinp, const float *out, const float *dout, int M, int N) {
    #pragma omp parallel for if ((size_t)M * N > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *y = out + (size_t)i * N, *dy = dout + (size_t)i * N;
        float *dx = dinp + (size_t)i * N;
        float dot = 0.0f;
        #pragma omp simd reduction(+:dot)
        for (int j = 0; j < N; j++) dot += dy[j] * y[j];
        #pragma omp simd
        for (int j = 0; j < N; j++) dx[j] += y[j] * (dy[j] - dot);
    }
}

