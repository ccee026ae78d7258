/*
 * rows.c — data movement and small reductions the towers need between the big ops: gathering the
 * pooled rows, scattering their gradient back, the vision stem's class-token and positional adds
 * and their backward, scaling. Plain loops (OpenMP over rows when large).
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include <string.h>

void cm_gather_rows(float *dst, const float *src, const int *rows, int n, int C) {
    for (int b = 0; b < n; b++) memcpy(dst + (size_t)b * C, src + (size_t)rows[b] * C, (size_t)C * sizeof(float));
}

void cm_scatter_rows(float *dst, const float *src, const int *rows, int n, int C) {
    for (int b = 0; b < n; b++) memcpy(dst + (size_t)rows[b] * C, src + (size_t)b * C, (size_t)C * sizeof(float));
}

void cm_cls_pos_forward(float *x, const float *emb, const float *cls, const float *pos, int B, int NP, int C) {
    size_t T = (size_t)NP + 1;
    #pragma omp parallel for
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * C;
        for (int c = 0; c < C; c++) xb[c] = cls[c] + pos[c];
        for (int p = 0; p < NP; p++) {
            const float *e = emb + ((size_t)b * NP + p) * C;
            float *xp = xb + (size_t)(p + 1) * C;
            const float *ps = pos + (size_t)(p + 1) * C;
            for (int c = 0; c < C; c++) xp[c] = e[c] + ps[c];
        }
    }
}

void cm_cls_pos_backward(float *dcls, float *dpos, float *demb, const float *dx, int B, int NP, int C) {
    size_t T = (size_t)NP + 1;
    for (int b = 0; b < B; b++) {
        const float *xb = dx + (size_t)b * T * C;
        if (dcls) for (int c = 0; c < C; c++) dcls[c] += xb[c];
        if (dpos) for (size_t i = 0; i < T * C; i++) dpos[i] += xb[i];
        if (demb) memcpy(demb + (size_t)b * NP * C, xb + C, (size_t)NP * C * sizeof(float));
    }
}

void cm_scale(float *x, float a, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

double cm_dot(const float *a, const float *b, size_t n) {
    double acc = 0;
    for (size_t k = 0; k < n; k++) acc += (double)a[k] * b[k];
    return acc;
}
