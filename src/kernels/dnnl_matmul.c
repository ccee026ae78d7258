/*
 * dnnl_matmul.c — a small cache of oneDNN matmul primitives (C API, dnnl.h) shared by the bf16
 * linear layers, the batched attention products and the int8 linears. A primitive is described by
 * a CmMatmulKey (dims and strides of src/weights/dst, data types, bias, output scale, accumulate).
 *
 * Planning and running are separate (backend.h: ops never allocate):
 *   - cm_mm_prepare (called by the kernels' *_plan functions when the caller plans its
 *     activations) creates the primitive with a USER-MODE scratchpad
 *     (dnnl_scratchpad_mode_user: oneDNN allocates no scratch of its own when it runs), its
 *     memory objects and its stream, and reports the scratchpad's size, which the plan adds to
 *     the caller's workspace;
 *   - cm_mm_run points the memory objects at the call's buffers (dnnl_memory_set_data_handle),
 *     takes the scratchpad from the caller's workspace and executes. Nothing is created there.
 * Run-time shapes: the kernels never ask for a shape that planning did not create: rows (and the
 * attention batch) are cut into power-of-two chunks (cm_mm_row_chunks), so that the primitives of
 * the chunk sizes up to the planned maximum serve every smaller shape met later (packed text rows,
 * a short last batch). A key that planning did not create is still created on demand (an entry
 * evicted from a full table, a caller that skipped planning) and counted
 * (cm_mm_created_at_run, which the tests hold at 0 after planning).
 *
 * The cache is a fixed table protected by a mutex, so kernels may be called from several
 * threads; a thread that needs an entry another thread is running waits for it (the memory
 * objects are the entry's; oneDNN threads each run over all cores anyway). A full table evicts
 * the least recently used idle entry. Primitives run with oneDNN's OpenMP threading (the same OpenMP
 * runtime as OpenBLAS and our loops); they are never called from inside our parallel regions.
 */
#include "kernels/kernels_internal.h"
#include "common/common.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>

#define CM_MM_CACHE 1024
enum { M_SRC, M_WEI, M_DST, M_BIAS, M_SCRATCH, M_COUNT };
typedef struct {
    CmMatmulKey key;
    dnnl_primitive_t prim;
    size_t scratch;                 /* bytes of the user-mode scratchpad */
    dnnl_memory_t mem[M_COUNT];     /* handles set per run (NULL: unused argument) */
    dnnl_stream_t stream;
    int users;                      /* 1 while a thread runs it */
    uint64_t last;
} Entry;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;
static dnnl_engine_t g_engine;
static int g_state;  // 0 untried, 1 ready, -1 unavailable
static Entry g_cache[CM_MM_CACHE];
static int g_n;
static uint64_t g_tick;
static size_t g_created_at_run;

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

static void entry_destroy(Entry *e) {
    for (int i = 0; i < M_COUNT; i++)
        if (e->mem[i]) dnnl_memory_destroy(e->mem[i]);
    if (e->stream) dnnl_stream_destroy(e->stream);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    memset(e, 0, sizeof *e);   /* a hole: its zero key matches no product */
}

/* memory objects (no buffer yet) for the arguments of prim; false on failure */
static bool make_memories(dnnl_primitive_t prim, bool bias, dnnl_memory_t mem[M_COUNT], size_t *scratch) {
    const_dnnl_primitive_desc_t pd;
    memset(mem, 0, sizeof(dnnl_memory_t) * M_COUNT);
    if (dnnl_primitive_get_primitive_desc(prim, &pd) != dnnl_success) return false;
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    *scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
    bool ok = dnnl_memory_create(&mem[M_SRC], dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
              dnnl_memory_create(&mem[M_WEI], dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
              dnnl_memory_create(&mem[M_DST], dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), g_engine, DNNL_MEMORY_NONE) == dnnl_success &&
              (!bias || dnnl_memory_create(&mem[M_BIAS], dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), g_engine, DNNL_MEMORY_NONE) == dnnl_success) &&
              (!*scratch || dnnl_memory_create(&mem[M_SCRATCH], sp, g_engine, DNNL_MEMORY_NONE) == dnnl_success);
    if (!ok)
        for (int i = 0; i < M_COUNT; i++)
            if (mem[i]) { dnnl_memory_destroy(mem[i]); mem[i] = NULL; }
    return ok;
}

static dnnl_primitive_t create_primitive(const CmMatmulKey *k) {
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
    /* the scratchpad comes from the caller's workspace: oneDNN allocates none when it runs */
    ok = ok && dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
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

/* the entry of k, created when missing (counted when at_run); NULL when oneDNN cannot provide it.
   Called with g_lock held. */
static Entry *get_entry_locked(const CmMatmulKey *k, bool at_run) {
    Entry *hit = NULL;
    for (int i = 0; i < g_n; i++)
        if (!memcmp(&g_cache[i].key, k, sizeof *k)) { hit = &g_cache[i]; break; }
    if (!hit) {
        Entry fresh = {.key = *k};
        fresh.prim = create_primitive(k);
        if (fresh.prim && (!make_memories(fresh.prim, k->bias != 0, fresh.mem, &fresh.scratch) ||
                           dnnl_stream_create(&fresh.stream, g_engine, dnnl_stream_default_flags) != dnnl_success)) {
            entry_destroy(&fresh);
        }
        if (fresh.prim) {
            if (g_n < CM_MM_CACHE) hit = &g_cache[g_n++];
            else
                for (int i = 0; i < g_n; i++)   /* evict the least recently used idle entry */
                    if (!g_cache[i].users && (!hit || g_cache[i].last < hit->last)) hit = &g_cache[i];
            if (hit) {
                if (hit->prim) entry_destroy(hit);
                *hit = fresh;
                if (at_run) g_created_at_run++;
            } else {
                entry_destroy(&fresh);
            }
        } else if (!g_warned) {
            g_warned = 1;
            cm_debug("oneDNN matmul unavailable for a %dD %s product; using the BLAS fallback",
                     k->nd, k->src.dt == CM_DT_BF16                            ? "bf16"
                            : k->src.dt == CM_DT_S8 || k->src.dt == CM_DT_U8 ? "int8"
                                                                             : "fp32");
        }
    }
    if (hit) hit->last = ++g_tick;
    return hit;
}

bool cm_mm_prepare(const CmMatmulKey *k, size_t *scratch) {
    pthread_mutex_lock(&g_lock);
    Entry *e = get_entry_locked(k, false);
    if (scratch) *scratch = e ? e->scratch : 0;
    pthread_mutex_unlock(&g_lock);
    return e != NULL;
}

size_t cm_mm_created_at_run(void) {
    pthread_mutex_lock(&g_lock);
    size_t n = g_created_at_run;
    pthread_mutex_unlock(&g_lock);
    return n;
}

bool cm_mm_ready(const CmMatmulKey *k, size_t scratch_bytes) {
    pthread_mutex_lock(&g_lock);
    Entry *e = get_entry_locked(k, true);
    bool ok = e && e->scratch <= scratch_bytes;
    pthread_mutex_unlock(&g_lock);
    return ok;
}

bool cm_mm_run(const CmMatmulKey *k, const void *src, const void *wei, const float *bias, void *dst,
               void *scratch, size_t scratch_bytes) {
    pthread_mutex_lock(&g_lock);
    Entry *e;
    for (;;) {   /* an entry another thread is running: wait for it (its memory objects are shared) */
        e = get_entry_locked(k, true);
        if (!e || !e->users) break;
        pthread_cond_wait(&g_idle, &g_lock);
    }
    if (e && e->scratch > scratch_bytes) e = NULL;
    if (e) e->users = 1;
    pthread_mutex_unlock(&g_lock);
    if (!e) return false;
    void *handle[M_COUNT] = {(void *)src, (void *)wei, dst, (void *)bias, scratch};
    dnnl_exec_arg_t args[M_COUNT];
    const int which[M_COUNT] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS, DNNL_ARG_SCRATCHPAD};
    int na = 0;
    bool ok = true;
    for (int i = 0; i < M_COUNT; i++)
        if (e->mem[i]) {
            ok = ok && dnnl_memory_set_data_handle(e->mem[i], handle[i]) == dnnl_success;
            args[na++] = (dnnl_exec_arg_t){which[i], e->mem[i]};
        }
    ok = ok && dnnl_primitive_execute(e->prim, e->stream, na, args) == dnnl_success &&
         dnnl_stream_wait(e->stream) == dnnl_success;
    pthread_mutex_lock(&g_lock);
    e->users = 0;
    pthread_cond_broadcast(&g_idle);
    pthread_mutex_unlock(&g_lock);
    /* setting a handle and executing a primitive that planning created on shapes and data types
       oneDNN validated then cannot fail on our buffers: an internal invariant, not input */
    CM_ASSERT(ok);
    return true;
}

void cm_mm_release(void) {
    pthread_mutex_lock(&g_lock);
    int kept = 0;   /* entries another thread is running stay where they are (and so does the engine) */
    for (int i = 0; i < g_n; i++) {
        if (g_cache[i].users) { kept++; continue; }
        if (g_cache[i].prim) entry_destroy(&g_cache[i]);
    }
    if (kept == 0) g_n = 0;
    if (g_state == 1 && kept == 0) {
        dnnl_engine_destroy(g_engine);
        g_state = 0;
    }
    pthread_mutex_unlock(&g_lock);
}
