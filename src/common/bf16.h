/*
 * bf16.h — the one fp32 -> bf16 conversion of the library: round to nearest even, NaN -> the
 * canonical quiet NaN 0x7fc0 (as c10::BFloat16 writes it). The kernels (bf16 operands of the amp
 * linears) and io (bf16 tensors written to files) both use it, so a value has one bf16 image
 * wherever it is converted. Inline so that the kernels' conversion loops vectorise.
 * defines: cm_bf16_from_f32, cm_bf16_to_f32
 */
#ifndef CM_COMMON_BF16_H
#define CM_COMMON_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t cm_bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;   /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                        /* nearest even */
    return (uint16_t)(u >> 16);
}

static inline float cm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
