/*
 * layernorm.c — LayerNorm (torch semantics: eps 1e-5, biased variance) and the row L2
 * normalisation of F.normalize (eps 1e-12 clamps the norm), forward and backward side by side.
 * Fast paths: OpenMP over rows (and over column blocks for the dw/db reductions), two-pass
 * float statistics; the references (tests/kernel_lab/ref_ops.c) accumulate in double.
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"

#define LN_EPS 1e-5f

// forward: out[M,C] = (inp - mean) * rstd * w + b ; mean[M], rstd[M] cached
CM_HOT void cm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int M, int C) {
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int c = 0; c < C; c++) s += x[c];
        float m = s / C;
        float v = 0.0f;
        #pragma omp simd reduction(+:v)
        for (int c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
        float r = 1.0f / sqrtf(v / C + LN_EPS);
        #pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + b[c];
        mean[i] = m;
        rstd[i] = r;
    }
}

// backward: with xhat = (x-mean)*rstd, g = dout*w:
//   dinp += rstd * (g - mean(g) - xhat * mean(g*xhat)); dw += sum_rows dout*xhat; db += sum_rows dout
CM_HOT void cm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int M, int C) {
    if (dinp) {
        #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
        for (int i = 0; i < M; i++) {
            const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float m = mean[i], r = rstd[i], sg = 0.0f, sgx = 0.0f;
            #pragma omp simd reduction(+:sg, sgx)
            for (int c = 0; c < C; c++) {
                float g = dy[c] * w[c];
                sg += g;
                sgx += g * (x[c] - m) * r;
            }
            sg /= C;
            sgx /= C;
            #pragma omp simd
            for (int c = 0; c < C; c++) {
                float xh = (x[c] - m) * r;
                dx[c] += r * (dy[c] * w[c] - sg - xh * sgx);
            }
        }
    }
    if (dw || db) {
        int nblk = (C + 63) / 64;
        #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
            float aw[64] = {0}, ab[64] = {0};
            for (int i = 0; i < M; i++) {
                const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
                float m = mean[i], r = rstd[i];
                #pragma omp simd
                for (int c = c0; c < c1; c++) {
                    aw[c - c0] += dy[c] * (x[c] - m) * r;
                    ab[c - c0] += dy[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dw) dw[c] += aw[c - c0];
                if (db) db[c] += ab[c - c0];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// F.normalize: out = x / max(||x||, 1e-12); norm[M] = ||x|| (unclamped)
void cm_l2norm_forward(float *out, float *norm, const float *inp, int M, int C) {
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *x = inp + (size_t)i * C;
        double s = 0;
        for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
        float n = (float)sqrt(s);
        float d = n > 1e-12f ? n : 1e-12f;
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = x[c] / d;
        norm[i] = n;
    }
}

// backward: norm > eps: dinp += (dout - out * <dout,out>) / norm ; clamped: dinp += dout / eps
void cm_l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, int M, int C) {
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *dy = dout + (size_t)i * C, *y = out + (size_t)i * C;
        float *dx = dinp + (size_t)i * C;
        if (norm[i] > 1e-12f) {
            double dot = 0;
            for (int c = 0; c < C; c++) dot += (double)dy[c] * y[c];
            double inv = 1.0 / norm[i];
            for (int c = 0; c < C; c++) dx[c] += (float)((dy[c] - y[c] * dot) * inv);
        } else {
            for (int c = 0; c < C; c++) dx[c] += dy[c] / 1e-12f;
        }
    }
}
