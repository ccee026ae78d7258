/*
 * rng.h — a small seedable RNG (xoshiro256**, seeded by splitmix64) used for dropout, data
 * augmentation, shuffling and initialisation. Its whole state is 4 words so that checkpoints can
 * store and restore it exactly. Not torch's generator: OpenCLIP's random draws cannot be matched
 * bit for bit anyway (data order differs), so we only promise determinism for a given seed.
 * defines: CmRng, cm_rng_seed, cm_rng_u64, cm_rng_uniform, cm_rng_normal, cm_rng_below, cm_epoch_seed
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
/* The per-epoch seed of a stream (1: dropout, 2: the shard pipeline's shuffles) of a run. */
static inline uint64_t cm_epoch_seed(uint64_t seed, int64_t epoch, uint64_t stream) {
    uint64_t x = seed ^ 0x5deece66dULL;
    uint64_t a = cm_splitmix64(&x);
    x = a ^ ((uint64_t)epoch * 0x9e3779b97f4a7c15ULL) ^ (stream << 56);
    return cm_splitmix64(&x);
}

#endif
