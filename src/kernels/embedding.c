/*
 * embedding.c — token + positional embedding (forward/backward) and cm_im2patch (the patch
 * flattening that turns the bias-free patch conv of the vision tower into one cm_linear_forward).
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "common/common.h"
#include <string.h>

// forward: out[B,T,C] = table[ids[b,t], :] + pos[t, :]   (pos may be NULL)
void cm_embedding_forward(float *out, const int32_t *ids, const float *table, const float *pos, int B, int T, int C) {
    #pragma omp parallel for if ((size_t)B * T * C > CM_OMP_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        const float *e = table + (size_t)ids[bt] * C;
        float *o = out + (size_t)bt * C;
        if (pos) {
            const float *p = pos + (size_t)(bt % T) * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        } else {
            memcpy(o, e, sizeof(float) * C);
        }
    }
}

// backward: dtable[ids[b,t], :] += dout[b,t,:] ; dpos[t,:] += sum_b dout[b,t,:]
// Parallel over column blocks so that repeated ids never race (deterministic, no atomics).
void cm_embedding_backward(float *dtable, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C) {
    int nblk = (C + 63) / 64;
    #pragma omp parallel for if ((size_t)B * T * C > CM_OMP_MIN)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            if (dtable) {
                float *g = dtable + (size_t)ids[bt] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dpos) {
                float *g = dpos + (size_t)(bt % T) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
}

// patches[B*NP, 3*P*P]: patch (gy,gx) of image b at row b*NP + gy*GW + gx, columns (c, ky, kx)
void cm_im2patch(float *patches, const float *img, int B, int H, int W, int P) {
    CM_ASSERT(P > 0 && H % P == 0 && W % P == 0);
    int GH = H / P, GW = W / P, NP = GH * GW, PP = P * P;
    #pragma omp parallel for if ((size_t)B * 3 * H * W > CM_OMP_MIN)
    for (int bp = 0; bp < B * NP; bp++) {
        int b = bp / NP, g = bp % NP, gy = g / GW, gx = g % GW;
        float *row = patches + (size_t)bp * 3 * PP;
        for (int c = 0; c < 3; c++)
            for (int ky = 0; ky < P; ky++)
                memcpy(row + c * PP + ky * P,
                       img + (((size_t)b * 3 + c) * H + gy * P + ky) * W + gx * P, sizeof(float) * P);
    }
}

void cm_embedding_forward_rows(float *out, const int32_t *ids, const int32_t *row_pos, const float *table, const float *pos,
                            int M, int C) {
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int i = 0; i < M; i++) {
        const float *e = table + (size_t)ids[i] * C, *p = pos + (size_t)row_pos[i] * C;
        float *o = out + (size_t)i * C;
        #pragma omp simd
        for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
    }
}

// parallel over column blocks (repeated ids and positions never race; deterministic order)
void cm_embedding_backward_rows(float *dtable, float *dpos, const float *dout, const int32_t *ids, const int32_t *row_pos,
                             int M, int C) {
    int nblk = (C + 63) / 64;
    #pragma omp parallel for if ((size_t)M * C > CM_OMP_MIN)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
        for (int i = 0; i < M; i++) {
            const float *d = dout + (size_t)i * C;
            if (dtable) { float *g = dtable + (size_t)ids[i] * C; for (int c = c0; c < c1; c++) g[c] += d[c]; }
            if (dpos) { float *g = dpos + (size_t)row_pos[i] * C; for (int c = c0; c < c1; c++) g[c] += d[c]; }
        }
    }
}
