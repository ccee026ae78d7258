/*
 * linear_bf16.c — bf16 matrix products for `--precision amp` (torch autocast semantics on CPU):
 * inputs (activations, weights, upstream gradients) are rounded fp32 -> bf16 (round to nearest
 * even), products accumulate in fp32, outputs are fp32. The same forward/backward contract as
 * linear_forward/linear_backward (backward accumulates, NULL gradients skipped).
 *
 * Engine: oneDNN's matmul primitive (C API, dnnl.h; AMX/AVX512-BF16 kernels). Primitives are
 * created once per (shape, layout, accumulate) and kept in a mutex-protected cache (the first
 * creation costs ~60 ms, later calls ~0 ms). The bf16 copies of the inputs live in grow-only
 * thread-local scratch buffers. When oneDNN cannot build a bf16 primitive (a CPU without bf16
 * support), the fallback rounds the inputs to bf16 and multiplies with fp32 sgemm: the same
 * numbers up to summation order. The *_ref versions round, then use plain loops in double.
 *
 * Every product is  dst[M,N] (+)= src[M,K] @ wei[K,N]  with src/wei given as plain row-major
 * (tag ab) or transposed (tag ba) views:
 *   forward  out[M,OC]   = inp[M,C] (ab)   @ W^T: W[OC,C] seen as [C,OC] (ba)  + b
 *   dX       dinp[M,C]  += dout[M,OC] (ab) @ W[OC,C] (ab)
 *   dW       dW[OC,C]   += dout^T: dout[M,OC] seen as [OC,M] (ba) @ inp[M,C] (ab)
 */
#include "kernels/ops.h"
#include "kernels/vecmath.h"
#include "common/common.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// fp32 <-> bf16

static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);                                          // nearest even
    return (uint16_t)(u >> 16);
}

float cm_bf16_round(float x) {
    uint32_t u = (uint32_t)f2bf(x) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void to_bf16(uint16_t *dst, const float *src, size_t n) {
    #pragma omp parallel for simd if (n > CM_OMP_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = f2bf(src[i]);
}

static float *rounded_copy(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    CM_ASSERT(y != NULL);
    for (size_t i = 0; i < n; i++) y[i] = cm_bf16_round(x[i]);
    return y;
}

// thread-local grow-only scratch for the bf16 copies (slot 0: src, 1: weights, 2: dout)
static _Thread_local uint16_t *tl_buf[3];
static _Thread_local size_t tl_cap[3];

static uint16_t *scratch(int slot, size_t n) {
    if (n > tl_cap[slot]) {
        cm_free(tl_buf[slot]);
        tl_buf[slot] = cm_malloc(n * sizeof(uint16_t), "bf16 scratch");
        CM_ASSERT(tl_buf[slot] != NULL);
        tl_cap[slot] = n;
    }
    return tl_buf[slot];
}

// ---------------------------------------------------------------------------------------------
// oneDNN primitive cache

typedef struct Prim {
    int M, N, K, src_t, wei_t, bias, acc;
    dnnl_primitive_t prim;
    struct Prim *next;
} Prim;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static int g_state;  // 0 untried, 1 engine ready, -1 unavailable
static Prim *g_cache;
static int g_warned;

static dnnl_engine_t engine_locked(void) {
    if (g_state == 0) g_state = dnnl_engine_create(&g_engine, dnnl_cpu, 0) == dnnl_success ? 1 : -1;
    return g_state == 1 ? g_engine : NULL;
}

/* The cached primitive for dst[M,N] (+)= src[M,K] @ wei[K,N] (+ bias[N]), or NULL when oneDNN
   cannot provide a bf16 one (then the caller uses the fp32 fallback). */
static dnnl_primitive_t get_prim(int M, int N, int K, int src_t, int wei_t, int bias, int acc) {
    pthread_mutex_lock(&g_lock);
    for (Prim *p = g_cache; p; p = p->next)
        if (p->M == M && p->N == N && p->K == K && p->src_t == src_t && p->wei_t == wei_t &&
            p->bias == bias && p->acc == acc) {
            pthread_mutex_unlock(&g_lock);
            return p->prim;
        }
    dnnl_primitive_t prim = NULL;
    dnnl_engine_t eng = engine_locked();
    if (eng) {
        dnnl_memory_desc_t src, wei, bmd, dst;
        dnnl_dims_t ds = {M, K}, dw = {K, N}, db = {1, N}, dd = {M, N};
        dnnl_primitive_attr_t attr = NULL;
        dnnl_post_ops_t po = NULL;
        dnnl_matmul_desc_t desc;
        dnnl_primitive_desc_t pd = NULL;
        bool ok = dnnl_memory_desc_init_by_tag(&src, 2, ds, dnnl_bf16, src_t ? dnnl_ba : dnnl_ab) == dnnl_success &&
                  dnnl_memory_desc_init_by_tag(&wei, 2, dw, dnnl_bf16, wei_t ? dnnl_ba : dnnl_ab) == dnnl_success &&
                  dnnl_memory_desc_init_by_tag(&bmd, 2, db, dnnl_f32, dnnl_ab) == dnnl_success &&
                  dnnl_memory_desc_init_by_tag(&dst, 2, dd, dnnl_f32, dnnl_ab) == dnnl_success &&
                  dnnl_matmul_desc_init(&desc, &src, &wei, bias ? &bmd : NULL, &dst) == dnnl_success &&
                  dnnl_primitive_attr_create(&attr) == dnnl_success;
        if (ok && acc)
            ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
                 dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
        if (ok) ok = dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL) == dnnl_success;
        if (ok && dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
        if (pd) dnnl_primitive_desc_destroy(pd);
        if (po) dnnl_post_ops_destroy(po);
        if (attr) dnnl_primitive_attr_destroy(attr);
    }
    if (prim) {
        Prim *p = calloc(1, sizeof *p);
        CM_ASSERT(p != NULL);
        *p = (Prim){M, N, K, src_t, wei_t, bias, acc, prim, g_cache};
        g_cache = p;
    } else if (!g_warned) {
        g_warned = 1;
        cm_warn("bf16: oneDNN has no bf16 matmul here; using bf16-rounded inputs with fp32 sgemm");
    }
    pthread_mutex_unlock(&g_lock);
    return prim;
}

bool cm_bf16_native(void) {
    return get_prim(16, 16, 16, 0, 0, 0, 0) != NULL;
}

void cm_bf16_release(void) {
    pthread_mutex_lock(&g_lock);
    while (g_cache) {
        Prim *p = g_cache;
        g_cache = p->next;
        dnnl_primitive_destroy(p->prim);
        free(p);
    }
    if (g_state == 1) dnnl_engine_destroy(g_engine);
    g_state = 0;
    pthread_mutex_unlock(&g_lock);
    for (int i = 0; i < 3; i++) { cm_free(tl_buf[i]); tl_buf[i] = NULL; tl_cap[i] = 0; }
}

/* run dst[M,N] (+)= src @ wei (+ bias) with a cached primitive; false when unavailable */
static bool run_prim(int M, int N, int K, const uint16_t *src, int src_t, const uint16_t *wei, int wei_t,
                     const float *bias, float *dst, int acc) {
    dnnl_primitive_t prim = get_prim(M, N, K, src_t, wei_t, bias != NULL, acc);
    if (!prim) return false;
    const_dnnl_primitive_desc_t pd;
    dnnl_primitive_get_primitive_desc(prim, &pd);
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL;
    dnnl_stream_t st = NULL;
    bool ok = dnnl_memory_create(&ms, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), g_engine, (void *)src) == dnnl_success &&
              dnnl_memory_create(&mw, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), g_engine, (void *)wei) == dnnl_success &&
              dnnl_memory_create(&md, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), g_engine, dst) == dnnl_success &&
              (!bias || dnnl_memory_create(&mb, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), g_engine, (void *)bias) == dnnl_success) &&
              dnnl_stream_create(&st, g_engine, dnnl_stream_default_flags) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}, {DNNL_ARG_BIAS, mb}};
        ok = dnnl_primitive_execute(prim, st, bias ? 4 : 3, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success;
    }
    if (st) dnnl_stream_destroy(st);
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (mb) dnnl_memory_destroy(mb);
    if (md) dnnl_memory_destroy(md);
    CM_ASSERT(ok);  // a primitive that was created must run on the memory it was created for
    return true;
}

// ---------------------------------------------------------------------------------------------
// fallback: bf16-rounded copies + fp32 sgemm

static void fallback_forward(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    float *x = rounded_copy(inp, (size_t)M * C), *w = rounded_copy(W, (size_t)OC * C);
    linear_forward(out, x, w, b, M, C, OC);
    free(x); free(w);
}

// forward: out[M,OC] = bf16(inp)[M,C] @ bf16(W)[OC,C]^T + b[OC]
void linear_forward_bf16(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    if (M <= 0 || OC <= 0) return;
    if (C <= 0) { linear_forward(out, inp, W, b, M, C, OC); return; }
    uint16_t *x = scratch(0, (size_t)M * C), *w = scratch(1, (size_t)OC * C);
    to_bf16(x, inp, (size_t)M * C);
    to_bf16(w, W, (size_t)OC * C);
    if (!run_prim(M, OC, C, x, 0, w, 1, b, out, 0)) fallback_forward(out, inp, W, b, M, C, OC);
}

// backward: dinp[M,C] += bf16(dout) @ bf16(W) ; dW[OC,C] += bf16(dout)^T @ bf16(inp) ; db += colsum(dout)
void linear_backward_bf16(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                          const float *W, int M, int C, int OC) {
    if (M <= 0 || C <= 0 || OC <= 0) return;
    if (db) linear_backward(NULL, NULL, db, dout, inp, W, M, C, OC);  // fp32 column sums
    if (!dinp && !dW) return;
    uint16_t *g = scratch(2, (size_t)M * OC);
    to_bf16(g, dout, (size_t)M * OC);
    if (dinp) {
        uint16_t *w = scratch(1, (size_t)OC * C);
        to_bf16(w, W, (size_t)OC * C);
        if (!run_prim(M, C, OC, g, 0, w, 0, NULL, dinp, 1)) {
            float *d = rounded_copy(dout, (size_t)M * OC), *wr = rounded_copy(W, (size_t)OC * C);
            linear_backward(dinp, NULL, NULL, d, NULL, wr, M, C, OC);
            free(d); free(wr);
        }
    }
    if (dW) {
        uint16_t *x = scratch(0, (size_t)M * C);
        to_bf16(x, inp, (size_t)M * C);
        if (!run_prim(OC, C, M, g, 1, x, 0, NULL, dW, 1)) {
            float *d = rounded_copy(dout, (size_t)M * OC), *xr = rounded_copy(inp, (size_t)M * C);
            linear_backward(NULL, dW, NULL, d, xr, NULL, M, C, OC);
            free(d); free(xr);
        }
    }
}

void linear_forward_bf16_ref(float *out, const float *inp, const float *W, const float *b, int M, int C, int OC) {
    float *x = rounded_copy(inp, (size_t)M * C), *w = rounded_copy(W, (size_t)OC * C);
    linear_forward_ref(out, x, w, b, M, C, OC);
    free(x); free(w);
}

void linear_backward_bf16_ref(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                              const float *W, int M, int C, int OC) {
    if (db) linear_backward_ref(NULL, NULL, db, dout, inp, W, M, C, OC);
    float *d = rounded_copy(dout, (size_t)M * OC), *x = rounded_copy(inp, (size_t)M * C);
    float *w = rounded_copy(W, (size_t)OC * C);
    linear_backward_ref(dinp, dW, NULL, d, x, w, M, C, OC);
    free(d); free(x); free(w);
}
