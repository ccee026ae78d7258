/*
 * adamw.c — the optimizer's arithmetic (torch.optim.AdamW, foreach=False semantics, fp32 state):
 * one parameter buffer per call, and the deterministic sum of squares that gradient-norm clipping
 * reduces (fixed 4096-element blocks, double accumulation: the same value for any thread count).
 */
#include "kernels/ops.h"
#include <math.h>

typedef struct { float decay_mul, b1, a1, b2, a2, bc2_sqrt, eps, neg_step; } AdamScalars;

static AdamScalars adam_scalars(const CmAdamWArgs *h) {
    AdamScalars s;
    double bc1 = 1.0 - pow(h->beta1, (double)h->step);
    double bc2 = 1.0 - pow(h->beta2, (double)h->step);
    s.decay_mul = (float)(1.0 - h->lr * h->wd);
    s.b1 = (float)h->beta1; s.a1 = (float)(1.0 - h->beta1);
    s.b2 = (float)h->beta2; s.a2 = (float)(1.0 - h->beta2);
    s.bc2_sqrt = (float)sqrt(bc2);
    s.eps = (float)h->eps;
    s.neg_step = (float)(-(h->lr / bc1));
    return s;
}

void cm_adamw(float *p, const float *g, float *m, float *v, size_t n, const CmAdamWArgs *h) {
    AdamScalars s = adam_scalars(h);
    bool decay = h->wd != 0.0;   /* torch multiplies by (1 - lr*0) = 1: skipping is bit-identical */
    long long nn = (long long)n;
    #pragma omp parallel for schedule(static) if (nn > 65536)
    for (long long k = 0; k < nn; k++) {
        float pv = p[k];
        if (decay) pv = pv * s.decay_mul;
        float mv = fmaf(g[k], s.a1, m[k] * s.b1);
        float vv = v[k] * s.b2 + (s.a2 * g[k]) * g[k];
        float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
        m[k] = mv; v[k] = vv;
        p[k] = pv + (s.neg_step * mv) / denom;
    }
}

double cm_sumsq(const float *g, size_t n) {
    double total = 0;
    size_t nb = (n + 4095) / 4096;
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        size_t e = (b + 1) * 4096 < n ? (b + 1) * 4096 : n;
        for (size_t k = b * 4096; k < e; k++) s += (double)g[k] * g[k];
        total += s;
    }
    return total;
}
