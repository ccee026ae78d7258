/*
 * activation.c — elementwise ops, forward and backward side by side: exact GELU
 * (0.5 x (1 + erf(x/sqrt2))), QuickGELU (x sigmoid(1.702 x)), ReLU, add, inverted dropout.
 * Fast paths are `#pragma omp parallel for simd` loops that GCC vectorises with libmvec's
 * erff/expf (see vecmath.h); the double-precision references are in tests/kernel_lab/ref_ops.c.
 * Backward accumulates: dinp += f'(inp) * dout.
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f
#define QG_K 1.702f

CM_HOT void cm_gelu_forward(float *out, const float *inp, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    }
}

// d/dx = 0.5 (1 + erf(x/sqrt2)) + x * exp(-x^2/2) / sqrt(2 pi)
CM_HOT void cm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float d = 0.5f * (1.0f + erff(x * INV_SQRT2)) + x * INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += d * dout[i];
    }
}

CM_HOT void cm_quickgelu_forward(float *out, const float *inp, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-QG_K * x));
    }
}

// d/dx = s + 1.702 x s (1 - s), s = sigmoid(1.702 x)
CM_HOT void cm_quickgelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float s = 1.0f / (1.0f + expf(-QG_K * x));
        dinp[i] += (s + QG_K * x * s * (1.0f - s)) * dout[i];
    }
}

void cm_relu_forward(float *out, const float *inp, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void cm_relu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

// out = a + b (out may alias a)
void cm_add_forward(float *out, const float *a, const float *b, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// inverted dropout: mask = keep ? 1/(1-p) : 0 from counter-based draws (ops.h), out = inp*mask
void cm_dropout_forward(float *out, float *mask, const float *inp, float p, size_t n, int B, const CmDropoutKey *key,
                        uint32_t site) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint32_t k[2] = {(uint32_t)key->seed, (uint32_t)(key->seed >> 32)};
    #pragma omp parallel for if ((size_t)B * n > CM_OMP_MIN)
    for (int b = 0; b < B; b++) {
        uint64_t g = (uint64_t)(key->sample_base + b);
        float *o = out + (size_t)b * n, *mk = mask + (size_t)b * n;
        const float *x = inp + (size_t)b * n;
        for (size_t e0 = 0; e0 < n; e0 += 4) {
            const uint32_t c[4] = {(uint32_t)(e0 / 4), site, (uint32_t)g, (uint32_t)key->step};
            uint32_t r[4];
            cm_philox4x32_10(c, k, r);
            for (size_t j = 0; j < 4 && e0 + j < n; j++) {
                float u = (float)(r[j] >> 8) * (1.0f / 16777216.0f);
                mk[e0 + j] = u >= p ? scale : 0.0f;
                o[e0 + j] = x[e0 + j] * mk[e0 + j];
            }
        }
    }
}

void cm_dropout_backward(float *dinp, const float *dout, const float *mask, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i];
}
