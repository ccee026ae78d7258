/*
 * rng.h — a small seedable RNG (xoshiro256**, seeded by splitmix64) used for dropout, data
 * augmentation, shuffling and initialisation. Its whole state is 4 words so that checkpoints can
 * store and restore it exactly. Not torch's generator: OpenCLIP's random draws cannot be matched
 * bit for bit anyway (data order differs), so we only promise determinism for a given seed.
 * Also Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011), the counter-based generator behind the dropout masks: a pure function of a 128-bit
 * counter and a 64-bit key, so any element of any mask can be drawn independently, in any order,
 * by any thread, process or device. Written out here (30 lines) because no Debian C library
 * exports it (Random123 is a C++ header collection; cuRAND is CUDA-only).
 * defines: CmRng, cm_rng_seed, cm_rng_u64, cm_rng_uniform, cm_rng_normal, cm_rng_below, cm_philox4x32_10
 */
#ifndef CM_RNG_H
#define CM_RNG_H
#include <stdint.h>
#include <math.h>

typedef struct { uint64_t s[4]; } CmRng;

static inline uint64_t cm_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline void cm_rng_seed(CmRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = cm_splitmix64(&seed);
}
static inline uint64_t cm_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t cm_rng_u64(CmRng *r) {
    uint64_t *s = r->s;
    uint64_t res = cm_rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = cm_rotl64(s[3], 45);
    return res;
}
/* uniform in [0,1) with 24 random bits (float) / 53 bits (double) */
static inline float cm_rng_uniform(CmRng *r) { return (float)(cm_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
static inline double cm_rng_uniform_d(CmRng *r) { return (double)(cm_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
/* uniform integer in [0,n), unbiased (n > 0) */
static inline uint64_t cm_rng_below(CmRng *r, uint64_t n) {
    uint64_t lim = -n % n, x;
    do { x = cm_rng_u64(r); } while (x < lim);
    return x % n;
}
/* standard normal (Box-Muller, double precision) */
static inline double cm_rng_normal(CmRng *r) {
    double u1 = cm_rng_uniform_d(r), u2 = cm_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Philox4x32-10: out = bijection of ctr under key (Random123 word order; known answers in
   tests/test_dropout_rng.c). */
static inline void cm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}
#endif
