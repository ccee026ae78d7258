/*
 * dnnl_matmul.c — a small cache of oneDNN matmul primitives (C API, dnnl.h) shared by the bf16
 * linear layers and the batched attention products. A primitive is described by a CmMatmulKey
 * (dims and strides of src/weights/dst, data types, bias, output scale, accumulate) and created
 * once (oneDNN: ~ms to tens of ms), then reused; the cache is protected by a mutex, so kernels may
 * be called from several threads. The cache is a fixed table (no allocation of ours; oneDNN
 * allocates the primitives themselves): planning code creates the primitives of the shapes it
 * knows (cm_mm_prepare through cm_linear_bf16_prepare / cm_attention_prepare); shapes met later
 * (a smaller last batch, packed text rows) are created on first use; a full table evicts the least
 * recently used idle entry. Primitives run with oneDNN's OpenMP threading (the same OpenMP
 * runtime as OpenBLAS and our loops); they are never called from inside our parallel regions.
 */
#include "kernels/kernels_internal.h"
#include "common/common.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>

/* A fixed table (kernels never allocate): when it is full, the least recently used entry that no
   thread is running is destroyed and replaced; if every entry is running, the caller falls back. */
#define CM_MM_CACHE 1024
typedef struct { CmMatmulKey key; dnnl_primitive_t prim; int users; uint64_t last; } Entry;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static int g_state;  // 0 untried, 1 ready, -1 unavailable
static Entry g_cache[CM_MM_CACHE];
static int g_n;
static uint64_t g_tick;

void cm_mm_key_init(CmMatmulKey *k, int nd) {
    memset(k, 0, sizeof *k);  // padding too: keys are compared with memcmp
    k->nd = nd;
    k->scale = 1.0f;
}

static dnnl_data_type_t dnnl_dt(int dt) {
    return dt == CM_DT_BF16 ? dnnl_bf16 : dt == CM_DT_S8 ? dnnl_s8 : dt == CM_DT_U8 ? dnnl_u8 : dt == CM_DT_S32 ? dnnl_s32 : dnnl_f32;
}

static void strides_of(const CmMatmulDesc *t, int nd, dnnl_dims_t d, dnnl_dims_t s) {
    for (int i = 0; i < nd; i++) { d[i] = t->dims[i]; s[i] = t->strides[i]; }
}

static dnnl_primitive_t create_locked(const CmMatmulKey *k) {
    if (g_state == 0) g_state = dnnl_engine_create(&g_engine, dnnl_cpu, 0) == dnnl_success ? 1 : -1;
    if (g_state != 1) return NULL;
    dnnl_memory_desc_t src, wei, dst, bia;
    dnnl_dims_t d, s, bd, bs;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_matmul_desc_t desc;
    bool ok = true;
    strides_of(&k->src, k->nd, d, s);
    ok = ok && dnnl_memory_desc_init_by_strides(&src, k->nd, d, dnnl_dt(k->src.dt), s) == dnnl_success;
    strides_of(&k->wei, k->nd, d, s);
    ok = ok && dnnl_memory_desc_init_by_strides(&wei, k->nd, d, dnnl_dt(k->wei.dt), s) == dnnl_success;
    strides_of(&k->dst, k->nd, d, s);
    ok = ok && dnnl_memory_desc_init_by_strides(&dst, k->nd, d, dnnl_dt(k->dst.dt), s) == dnnl_success;
    if (k->bias) {  // [1,..,1,N] broadcast over rows
        for (int i = 0; i < k->nd; i++) { bd[i] = 1; bs[i] = 0; }
        bd[k->nd - 1] = k->dst.dims[k->nd - 1];
        bs[k->nd - 1] = 1;
        for (int i = k->nd - 2; i >= 0; i--) bs[i] = bd[k->nd - 1];
        ok = ok && dnnl_memory_desc_init_by_strides(&bia, k->nd, bd, dnnl_f32, bs) == dnnl_success;
    }
    ok = ok && dnnl_matmul_desc_init(&desc, &src, &wei, k->bias ? &bia : NULL, &dst) == dnnl_success;
    ok = ok && dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && k->scale != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->scale) == dnnl_success;
    if (ok && k->acc)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    if (ok) ok = dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL) == dnnl_success;
    if (ok && dnnl_primitive_create(&prim, pd) != dnnl_success) prim = NULL;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return prim;
}

static int g_warned;

/* the cached primitive for k, created on first use (with users+1 when `use`); NULL when oneDNN
   cannot provide it */
static Entry *get_entry(const CmMatmulKey *k, bool use) {
    pthread_mutex_lock(&g_lock);
    Entry *hit = NULL;
    for (int i = 0; i < g_n; i++)
        if (!memcmp(&g_cache[i].key, k, sizeof *k)) { hit = &g_cache[i]; break; }
    if (!hit) {
        dnnl_primitive_t prim = create_locked(k);
        if (prim) {
            if (g_n < CM_MM_CACHE) hit = &g_cache[g_n++];
            else
                for (int i = 0; i < g_n; i++)   /* evict the least recently used idle entry */
                    if (!g_cache[i].users && (!hit || g_cache[i].last < hit->last)) hit = &g_cache[i];
            if (hit && hit->prim) dnnl_primitive_destroy(hit->prim);   /* an evicted entry */
            if (hit) {
                hit->key = *k;
                hit->prim = prim;
                hit->users = 0;
            } else {
                dnnl_primitive_destroy(prim);
            }
        } else if (!g_warned) {
            g_warned = 1;
            cm_debug("oneDNN matmul unavailable for a %dD %s product; using the BLAS fallback",
                     k->nd, k->src.dt == CM_DT_BF16                            ? "bf16"
                            : k->src.dt == CM_DT_S8 || k->src.dt == CM_DT_U8 ? "int8"
                                                                             : "fp32");
        }
    }
    if (hit) {
        hit->last = ++g_tick;
        if (use) hit->users++;
    }
    pthread_mutex_unlock(&g_lock);
    return hit;
}

bool cm_mm_prepare(const CmMatmulKey *k) { return get_entry(k, false) != NULL; }

bool cm_mm_run(const CmMatmulKey *k, const void *src, const void *wei, const float *bias, void *dst) {
    Entry *e = get_entry(k, true);
    if (!e) return false;
    dnnl_primitive_t prim = e->prim;
    const_dnnl_primitive_desc_t pd;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL;
    dnnl_stream_t st = NULL;
    bool ok = dnnl_primitive_get_primitive_desc(prim, &pd) == dnnl_success &&
              dnnl_memory_create(&ms, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), g_engine, (void *)src) == dnnl_success &&
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
    pthread_mutex_lock(&g_lock);
    e->users--;
    pthread_mutex_unlock(&g_lock);
    CM_ASSERT(ok);  // a primitive that was created must run on the buffers it describes
    return true;
}

void cm_mm_release(void) {
    pthread_mutex_lock(&g_lock);
    int kept = 0;   /* entries another thread is running stay where they are (and so does the engine) */
    for (int i = 0; i < g_n; i++) {
        if (g_cache[i].users) { kept++; continue; }
        if (g_cache[i].prim) dnnl_primitive_destroy(g_cache[i].prim);
        memset(&g_cache[i], 0, sizeof g_cache[i]);   /* a hole: its zero key matches no product */
    }
    if (kept == 0) g_n = 0;
    if (g_state == 1 && kept == 0) {
        dnnl_engine_destroy(g_engine);
        g_state = 0;
    }
    pthread_mutex_unlock(&g_lock);
}
