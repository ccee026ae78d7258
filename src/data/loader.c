/*
 * loader.c — see loader.h. Threads: `nthreads` decode threads popping jobs from one queue, and
 * one assembler thread per epoch that pulls samples from the virtual workers' streams (shard
 * choice, tar reading, shuffle buffer — cheap, sequential, deterministic), submits them as jobs
 * a bounded number ahead, and consumes finished jobs strictly in each stream's order, so the
 * batches depend only on the seed. Finished batches wait in a bounded queue for cm_loader_next.
 */
#include "data/loader.h"
#include "data/image.h"
#include "data/tar.h"
#include "data/wds.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BAD_RUN_LIMIT 10000     /* bad samples in a row before the loader gives up */
#define BATCH_QUEUE 2           /* finished batches waiting for the consumer */

typedef struct Job {
    CmWdsSample *s;
    uint64_t seed;
    float *img;                 /* [3,S,S] */
    int32_t *tok;               /* [ctx] */
    int32_t label;
    int done;                   /* guarded by mu */
    bool ok;
    bool no_json;               /* no .json: label 0 */
    char err[512];
    struct Job *next;           /* worker FIFO / free list */
    struct Job *qnext;          /* decode queue */
} Job;

typedef struct {
    int id;
    int *shards, nshards, next_shard;   /* not resampled: this worker's shards, in order */
    int stride, offset;         /* split by sample: of each shard take samples offset, offset+stride, ... */
    int64_t pos;                /* raw samples read from the current shard */
    CmRng rng_shard, rng_shuf;
    CmWdsReader *rd;
    bool got_in_shard;
    int empty_run;
    CmWdsSample **buf;
    int nbuf, cap;
    bool src_eof;
    bool done;                  /* yields no more batches this epoch */
    int64_t batches, planned, counter;
    Job *head, *tail;
} VWorker;

struct CmLoader {
    CmLoaderConfig cfg;
    CmShardList sl;
    CmTokenizer *tok;
    bool own_tok;
    int S, V, nthreads, inflight_max, ctx;
    VWorker *vw;
    int64_t nwb;                /* batches per worker per epoch (train) */
    CmEpochSize es;
    int epoch;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done, cv_batch;
    Job *qhead, *qtail, *freelist;
    bool quit, stop;
    pthread_t asm_thread;
    bool asm_running, epoch_end, started;
    CmBatch *bq[BATCH_QUEUE];
    int bq_head, bq_n;
    cm_status fatal;
    char fatal_msg[1024];
    CmLoaderStats st;
    int logged;
    int inflight;
    int plan_w, plan_sub;       /* submission plan: worker of the batch being prefetched */
    struct CmBatchPool *pool;
};

// ----------------------------------------------------------------------------
// logging and accounting (assembler thread; stats under mu)

static void log_bad(CmLoader *l, const char *shard, const char *key, const char *why, bool is_shard) {
    pthread_mutex_lock(&l->mu);
    if (is_shard) l->st.bad_shards++; else l->st.bad_samples++;
    int n = l->logged++;
    pthread_mutex_unlock(&l->mu);
    if (n < l->cfg.max_logged) {
        if (is_shard) cm_warn("data: bad shard %s: %s (skipped)", shard, why);
        else cm_warn("data: bad sample in %s: key '%s': %s (skipped)", shard, key, why);
    } else if (n == l->cfg.max_logged) {
        cm_warn("data: more bad samples/shards: counted, no longer logged one by one");
    }
}

static void set_fatal(CmLoader *l, cm_status st, const char *msg) {
    pthread_mutex_lock(&l->mu);
    if (!l->fatal) { l->fatal = st; snprintf(l->fatal_msg, sizeof l->fatal_msg, "%s", msg); }
    pthread_cond_broadcast(&l->cv_batch);
    pthread_mutex_unlock(&l->mu);
}

static bool stopping(CmLoader *l) {
    pthread_mutex_lock(&l->mu);
    bool s = l->stop || l->fatal;
    pthread_mutex_unlock(&l->mu);
    return s;
}

// ----------------------------------------------------------------------------
// sample streams

/* Next good raw sample of worker w (damaged samples and shards are logged and skipped). */
static CmWdsSample *raw_next(CmLoader *l, VWorker *w) {
    int limit = 2 * l->sl.urls.n + 20;
    for (;;) {
        if (stopping(l)) return NULL;
        if (!w->rd) {
            int idx;
            if (l->cfg.resampled) {
                if (w->empty_run > limit) {
                    char msg[600];
                    snprintf(msg, sizeof msg, "data: %d shards in a row gave no readable sample (of %d shards, first %s)",
                             w->empty_run, l->sl.urls.n, l->sl.urls.v[0]);
                    set_fatal(l, CM_ERR_FORMAT, msg);
                    return NULL;
                }
                idx = cm_shardlist_draw(&l->sl, &w->rng_shard);
            } else {
                if (w->next_shard >= w->nshards) return NULL;
                idx = w->shards[w->next_shard++];
            }
            const char *url = l->sl.urls.v[idx];
            /* a shard shared by several workers (split by sample) is counted and its errors
               logged by the first of them only */
            bool first = w->offset == 0;
            if (first) {
                pthread_mutex_lock(&l->mu);
                l->st.shards++;
                pthread_mutex_unlock(&l->mu);
            }
            if (cm_wds_open(url, true, l->cfg.max_member, &w->rd)) {
                if (first) log_bad(l, url, NULL, cm_last_error(), true);
                w->rd = NULL;
                w->empty_run++;
                continue;
            }
            w->got_in_shard = false;
            w->pos = 0;
        }
        CmWdsSample *s;
        int rc = cm_wds_next(w->rd, &s);
        if (rc == 1) {
            if (w->pos++ % w->stride != w->offset) { cm_wds_sample_free(s); continue; }   /* another worker's sample */
            if (s->error) { log_bad(l, s->url, s->key, s->error, false); cm_wds_sample_free(s); continue; }
            w->got_in_shard = true;
            w->empty_run = 0;
            return s;
        }
        if (rc < 0 && w->offset == 0) log_bad(l, cm_wds_path(w->rd), NULL, cm_last_error(), true);
        if (!w->got_in_shard) w->empty_run++;
        cm_wds_close(w->rd);
        w->rd = NULL;
    }
}

static CmWdsSample *pick(VWorker *w) {
    int k = (int)cm_rng_below(&w->rng_shuf, (uint64_t)w->nbuf);
    CmWdsSample *s = w->buf[k];
    w->buf[k] = w->buf[--w->nbuf];
    return s;
}

static bool buf_push(CmLoader *l, VWorker *w, CmWdsSample *s) {
    if (w->nbuf == w->cap) {
        int nc = w->cap ? w->cap * 2 : 256;
        CmWdsSample **nb = realloc(w->buf, sizeof *nb * (size_t)nc);
        if (!nb) { cm_wds_sample_free(s); set_fatal(l, CM_ERR_OOM, "data: out of memory (shuffle buffer)"); return false; }
        w->buf = nb; w->cap = nc;
    }
    w->buf[w->nbuf++] = s;
    return true;
}

/* Worker stream after webdataset's shuffle(bufsize, initial) (train) or as is (validation). */
static CmWdsSample *stream_next(CmLoader *l, VWorker *w) {
    if (!l->cfg.train) {
        CmWdsSample *s = w->src_eof ? NULL : raw_next(l, w);
        if (!s) w->src_eof = true;
        return s;
    }
    int bufsize = l->cfg.shuffle_bufsize, initial = l->cfg.shuffle_initial < bufsize ? l->cfg.shuffle_initial : bufsize;
    while (!w->src_eof) {
        CmWdsSample *s = raw_next(l, w);
        if (!s) { w->src_eof = true; break; }
        if (!buf_push(l, w, s)) return NULL;
        if (w->nbuf < bufsize) {
            CmWdsSample *s2 = raw_next(l, w);
            if (s2) { if (!buf_push(l, w, s2)) return NULL; }
            else w->src_eof = true;
        }
        if (w->nbuf >= initial) return pick(w);
    }
    if (stopping(l)) return NULL;
    return w->nbuf ? pick(w) : NULL;
}

// ----------------------------------------------------------------------------
// jobs

static void process(CmLoader *l, Job *j) {
    CmWdsSample *s = j->s;
    j->ok = false;
    const CmWdsField *im = cm_wds_image(s), *txt = cm_wds_field(s, "txt");
    if (!im) { snprintf(j->err, sizeof j->err, "no image (jpg/png/jpeg/webp)"); return; }
    if (!txt) { snprintf(j->err, sizeof j->err, "missing caption (.txt)"); return; }
    int label = 0;
    if (cm_sample_label(s, &label, &j->no_json)) {
        snprintf(j->err, sizeof j->err, "metadata .json: %s", cm_last_error());
        return;
    }
    char what[600];
    snprintf(what, sizeof what, "%s:%s", s->url, s->key);
    CmImage img = {0};
    if (cm_image_decode(im->data, im->size, what, 0, &img)) {
        snprintf(j->err, sizeof j->err, "image: %s", cm_last_error());
        return;
    }
    cm_status st;
    if (l->cfg.train) {
        CmRng rng;
        cm_rng_seed(&rng, j->seed);
        st = cm_transform_train(&img, l->S, &CM_CLIP_NORMALIZE, &rng, j->img);
    } else {
        st = cm_transform_eval(&img, l->S, &CM_CLIP_NORMALIZE, j->img);
    }
    cm_image_free(&img);
    if (st) { snprintf(j->err, sizeof j->err, "image transform: %s", cm_last_error()); return; }
    cm_status ts = l->cfg.encode ? l->cfg.encode(l->cfg.encode_ctx, (const char *)txt->data, txt->size, j->tok, l->ctx)
                                 : cm_tokenize(l->tok, (const char *)txt->data, txt->size, j->tok, l->ctx);
    if (ts) {
        snprintf(j->err, sizeof j->err, "caption: %s", cm_last_error());
        return;
    }
    j->label = label;
    j->ok = true;
}

static void *decode_main(void *arg) {
    CmLoader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->qhead && !l->quit) pthread_cond_wait(&l->cv_job, &l->mu);
        if (l->quit) break;
        Job *j = l->qhead;
        l->qhead = j->qnext;
        if (!l->qhead) l->qtail = NULL;
        bool skip = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (skip) { j->ok = false; snprintf(j->err, sizeof j->err, "cancelled"); }
        else process(l, j);
        pthread_mutex_lock(&l->mu);
        j->done = 1;
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
    return cm_splitmix64(&x);
}

/* Pull one sample from w's stream and queue it for decoding; false when the stream is over. */
static bool submit(CmLoader *l, VWorker *w) {
    CmWdsSample *s = stream_next(l, w);
    if (!s) return false;
    Job *j = l->freelist;
    if (j) l->freelist = j->next;
    else {
        j = calloc(1, sizeof *j);
        if (j) {
            j->img = cm_malloc(sizeof(float) * 3 * (size_t)l->S * (size_t)l->S, "loader image buffer");
            j->tok = cm_malloc(sizeof(int32_t) * (size_t)l->ctx, "loader token buffer");
        }
        if (!j || !j->img || !j->tok) {
            if (j) { cm_free(j->img); cm_free(j->tok); free(j); }
            cm_wds_sample_free(s);
            set_fatal(l, CM_ERR_OOM, "data: out of memory");
            return false;
        }
    }
    j->s = s;
    j->seed = mix(mix(mix(l->cfg.seed, (uint64_t)l->epoch), (uint64_t)(w->id + 1000 * l->cfg.rank)), (uint64_t)w->counter++);
    j->done = 0;
    j->next = NULL;
    j->qnext = NULL;
    if (w->tail) w->tail->next = j; else w->head = j;
    w->tail = j;
    l->inflight++;
    pthread_mutex_lock(&l->mu);
    if (l->qtail) l->qtail->qnext = j; else l->qhead = j;
    l->qtail = j;
    pthread_cond_signal(&l->cv_job);
    pthread_mutex_unlock(&l->mu);
    return true;
}

static void recycle(CmLoader *l, Job *j) {
    cm_wds_sample_free(j->s);
    j->s = NULL;
    j->next = l->freelist;
    l->freelist = j;
}

static int next_active(CmLoader *l, int from, bool planned) {
    for (int i = 0; i < l->V; i++) {
        int w = (from + i) % l->V;
        VWorker *v = &l->vw[w];
        if (v->done) continue;
        if (planned && (v->src_eof && !v->nbuf && !v->rd && !l->cfg.resampled)) continue;
        if (planned && l->cfg.train && v->planned >= l->nwb) continue;
        return w;
    }
    return -1;
}

/* Keep up to inflight_max jobs queued, following the batch order the epoch will take. */
static void top_up(CmLoader *l) {
    int B = l->cfg.batch_size;
    while (l->inflight < l->inflight_max && !stopping(l)) {
        if (l->plan_w < 0) return;
        VWorker *w = &l->vw[l->plan_w];
        if (l->plan_sub < B && !w->done && submit(l, w)) { l->plan_sub++; continue; }
        w->planned++;
        l->plan_sub = 0;
        l->plan_w = next_active(l, l->plan_w + 1, true);
    }
}

// ----------------------------------------------------------------------------
// assembler

/* Batches are recycled (a fresh 19 MB batch costs ~3 ms of page faults): the pool lives while
   the loader or any batch handed out does. refs = 1 for the open loader + batches out. */
typedef struct CmBatchPool {
    pthread_mutex_t mu;
    CmBatch *free;
    int nfree, refs;
    bool closed;
} CmBatchPool;

static void batch_release(CmBatch *b) {
    cm_free(b->images); cm_free(b->tokens); cm_free(b->labels);
    cm_sample_ids_free(&b->ids);
    free(b);
}

static void pool_unref_locked(CmBatchPool *p) {
    if (--p->refs > 0 || !p->closed) { pthread_mutex_unlock(&p->mu); return; }
    while (p->free) { CmBatch *b = p->free; p->free = b->next_; batch_release(b); }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const char *cm_batch_key(const CmBatch *b, int i, const char **url) {
    if (url) *url = NULL;
    return b && i < b->n ? cm_sample_ids_get(&b->ids, i, url) : NULL;
}

void cm_batch_free(CmBatch *b) {
    if (!b) return;
    CmBatchPool *p = b->pool_;
    if (!p) { batch_release(b); return; }
    pthread_mutex_lock(&p->mu);
    if (!p->closed && p->nfree < BATCH_QUEUE + 2) { b->next_ = p->free; p->free = b; p->nfree++; }
    else batch_release(b);
    pool_unref_locked(p);
}

static CmBatch *batch_new(CmLoader *l) {
    int B = l->cfg.batch_size;
    CmBatchPool *p = l->pool;
    pthread_mutex_lock(&p->mu);
    CmBatch *b = p->free;
    if (b) { p->free = b->next_; p->nfree--; }
    p->refs++;
    pthread_mutex_unlock(&p->mu);
    if (b) { b->n = 0; cm_sample_ids_clear(&b->ids); return b; }
    b = calloc(1, sizeof *b);
    if (!b) { pthread_mutex_lock(&p->mu); pool_unref_locked(p); return NULL; }
    b->pool_ = p;
    b->image_size = l->S;
    b->context_len = l->ctx;
    b->images = cm_malloc(sizeof(float) * (size_t)B * 3 * (size_t)l->S * (size_t)l->S, "batch images");
    b->tokens = cm_malloc(sizeof(int32_t) * (size_t)B * (size_t)l->ctx, "batch tokens");
    b->labels = cm_malloc(sizeof(int32_t) * (size_t)B, "batch labels");
    if (!b->images || !b->tokens || !b->labels) { cm_batch_free(b); return NULL; }
    return b;
}

static void *assembler_main(void *arg) {
    CmLoader *l = arg;
    int B = l->cfg.batch_size;
    size_t img_n = 3 * (size_t)l->S * (size_t)l->S;
    int64_t bad_run = 0;
    int w_id = next_active(l, 0, false);
    l->plan_w = w_id;
    l->plan_sub = 0;
    while (w_id >= 0 && !stopping(l)) {
        VWorker *w = &l->vw[w_id];
        CmBatch *b = batch_new(l);
        if (!b) { set_fatal(l, CM_ERR_OOM, "data: out of memory for a batch"); break; }
        int filled = 0;
        while (filled < B) {
            top_up(l);
            if (!w->head && !submit(l, w)) break;   /* the worker's stream is over */
            Job *j = w->head;
            pthread_mutex_lock(&l->mu);
            while (!j->done && !l->stop) pthread_cond_wait(&l->cv_done, &l->mu);
            bool stop = l->stop;
            pthread_mutex_unlock(&l->mu);
            if (stop) break;
            w->head = j->next;
            if (!w->head) w->tail = NULL;
            l->inflight--;
            if (j->ok) {
                memcpy(b->images + (size_t)filled * img_n, j->img, sizeof(float) * img_n);
                memcpy(b->tokens + (size_t)filled * (size_t)l->ctx, j->tok, sizeof(int32_t) * (size_t)l->ctx);
                b->labels[filled] = j->label;
                if (cm_sample_ids_add(&b->ids, j->s->key, j->s->url)) {
                    recycle(l, j);
                    set_fatal(l, CM_ERR_OOM, "data: out of memory for the keys of a batch");
                    break;
                }
                filled++;
                bad_run = 0;
                if (j->no_json) {
                    pthread_mutex_lock(&l->mu);
                    int64_t k = l->st.no_json++;
                    pthread_mutex_unlock(&l->mu);
                    if (k < 20) cm_warn("data: %s: sample '%s' has no .json metadata: label 0 (DESIGN §4.2)", j->s->url, j->s->key);
                    else if (k == 20) cm_warn("data: more samples without .json: counted, no longer logged one by one");
                }
            } else {
                log_bad(l, j->s->url, j->s->key, j->err, false);
                if (++bad_run >= BAD_RUN_LIMIT) {
                    char msg[700];
                    snprintf(msg, sizeof msg, "data: %d bad samples in a row (last: %s key '%s': %s); giving up",
                             BAD_RUN_LIMIT, j->s->url, j->s->key, j->err);
                    recycle(l, j);
                    set_fatal(l, CM_ERR_FORMAT, msg);
                    break;
                }
            }
            recycle(l, j);
        }
        if (stopping(l)) { cm_batch_free(b); break; }
        bool full = filled == B;
        if (!full) w->done = true;
        if (full || (!l->cfg.train && filled > 0)) {
            b->n = filled;
            w->batches++;
            if (l->cfg.train && w->batches >= l->nwb) w->done = true;
            pthread_mutex_lock(&l->mu);
            while (l->bq_n == BATCH_QUEUE && !l->stop) pthread_cond_wait(&l->cv_batch, &l->mu);
            if (l->stop) { pthread_mutex_unlock(&l->mu); cm_batch_free(b); break; }
            l->bq[(l->bq_head + l->bq_n) % BATCH_QUEUE] = b;
            l->bq_n++;
            l->st.samples += filled;
            pthread_cond_broadcast(&l->cv_batch);
            pthread_mutex_unlock(&l->mu);
        } else {
            cm_batch_free(b);   /* train drops a partial last batch (partial=False) */
        }
        w_id = next_active(l, w_id + 1, false);
    }
    pthread_mutex_lock(&l->mu);
    l->epoch_end = true;
    pthread_cond_broadcast(&l->cv_batch);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

// ----------------------------------------------------------------------------
// epochs

/* Stop the assembler, wait for queued jobs, free what the epoch held. */
static void end_epoch(CmLoader *l) {
    if (!l->asm_running) return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv_batch);
    pthread_cond_broadcast(&l->cv_done);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->asm_thread, NULL);
    l->asm_running = false;
    for (int i = 0; i < l->V; i++) {
        VWorker *w = &l->vw[i];
        while (w->head) {
            Job *j = w->head;
            pthread_mutex_lock(&l->mu);
            while (!j->done) pthread_cond_wait(&l->cv_done, &l->mu);
            pthread_mutex_unlock(&l->mu);
            w->head = j->next;
            recycle(l, j);
        }
        w->tail = NULL;
        for (int k = 0; k < w->nbuf; k++) cm_wds_sample_free(w->buf[k]);
        w->nbuf = 0;
        cm_wds_close(w->rd);
        w->rd = NULL;
    }
    l->inflight = 0;
    for (int i = 0; i < l->bq_n; i++) cm_batch_free(l->bq[(l->bq_head + i) % BATCH_QUEUE]);
    l->bq_n = 0;
    l->bq_head = 0;
}

cm_status cm_loader_start_epoch(CmLoader *l, int epoch) {
    end_epoch(l);
    l->epoch = epoch;
    l->stop = false;
    l->epoch_end = false;
    l->started = true;
    if (l->fatal) return cm_error(l->fatal, "%s", l->fatal_msg);
    int n = l->sl.urls.n;
    int *order = malloc(sizeof *order * (size_t)n);
    if (!order) return cm_error(CM_ERR_OOM, "out of memory");
    for (int i = 0; i < n; i++) order[i] = i;
    if (l->cfg.train && !l->cfg.resampled) {
        CmRng r;
        cm_rng_seed(&r, l->cfg.seed + (uint64_t)epoch);   /* detshuffle2: seed + epoch, same on every rank */
        cm_shuffle_ints(order, n, &r);
    }
    const int world = l->cfg.world_size, P = world * l->V;
    for (int i = 0; i < l->V; i++) {
        VWorker *w = &l->vw[i];
        w->id = i;
        w->nshards = 0;
        w->next_shard = 0;
        w->stride = 1;
        w->offset = 0;
        w->src_eof = w->done = false;
        w->batches = w->planned = w->counter = 0;
        w->empty_run = 0;
        if (l->cfg.train && l->cfg.resampled) {
            /* every worker draws from all shards */
        } else if (n >= P) {
            /* split_by_node then split_by_worker: shards[rank::world][worker::V] */
            for (int k = 0, m = 0; k < n; k++) {
                if (k % world != l->cfg.rank) continue;
                if (m++ % l->V == i) w->shards[w->nshards++] = order[k];
            }
        } else {
            /* fewer shards than workers x processes (docs/data.md, the one rule): worker g (the
               same numbering as above: shard k goes to g = k mod P) reads shard g mod n, shared by
               the workers g' = g (mod n), and takes every stride-th sample of it from offset g / n:
               every worker has samples, each sample is read by exactly one worker */
            int g = l->cfg.rank + world * i, s = g % n;
            w->shards[w->nshards++] = order[s];
            w->stride = (P - 1 - s) / n + 1;
            w->offset = g / n;
        }
        uint64_t ws = mix(mix(l->cfg.seed, (uint64_t)epoch), (uint64_t)(i + 1000 * l->cfg.rank));
        cm_rng_seed(&w->rng_shard, ws);
        cm_rng_seed(&w->rng_shuf, mix(ws, 0x5348554646ULL));
    }
    free(order);
    if (pthread_create(&l->asm_thread, NULL, assembler_main, l))
        return cm_error(CM_ERR_IO, "data: cannot start the loader thread");
    l->asm_running = true;
    return CM_OK;
}

int cm_loader_next(CmLoader *l, CmBatch **out) {
    *out = NULL;
    if (!l->started) {
        cm_status st = cm_loader_start_epoch(l, 0);
        if (st) return st;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->bq_n && !l->epoch_end && !l->fatal) pthread_cond_wait(&l->cv_batch, &l->mu);
    int rc = 0;
    if (l->bq_n) {
        *out = l->bq[l->bq_head];
        l->bq_head = (l->bq_head + 1) % BATCH_QUEUE;
        l->bq_n--;
        pthread_cond_broadcast(&l->cv_batch);
        rc = 1;
    } else if (l->fatal) {
        rc = cm_error(l->fatal, "%s", l->fatal_msg);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

// ----------------------------------------------------------------------------
// open / close

cm_status cm_loader_open(const CmLoaderConfig *cfg, CmLoader **out) {
    *out = NULL;
    const char *flag = cfg->train ? "--train-data" : "--val-data";
    if (cfg->batch_size <= 0) return cm_error(CM_ERR_ARG, "--batch-size must be positive (got %d)", cfg->batch_size);
    if (cfg->workers < 0) return cm_error(CM_ERR_ARG, "--workers must be >= 0 (got %d)", cfg->workers);
    if (cfg->upsampling && *cfg->upsampling && !(cfg->train && cfg->resampled))
        return cm_error(CM_ERR_ARG, "--train-data-upsampling-factors requires --dataset-resampled");
    int world = cfg->world_size > 0 ? cfg->world_size : 1;
    if (cfg->rank < 0 || cfg->rank >= world) return cm_error(CM_ERR_ARG, "rank %d out of range for world size %d", cfg->rank, world);
    CmLoader *l = calloc(1, sizeof *l);
    if (!l) return cm_error(CM_ERR_OOM, "out of memory");
    l->cfg = *cfg;
    l->cfg.world_size = world;
    if (!l->cfg.shuffle_bufsize) l->cfg.shuffle_bufsize = 5000;
    if (!l->cfg.shuffle_initial) l->cfg.shuffle_initial = 1000;
    if (!l->cfg.max_logged) l->cfg.max_logged = 50;
    l->S = cfg->image_size > 0 ? cfg->image_size : 224;
    l->nthreads = cfg->workers > 1 ? cfg->workers : 1;
    l->V = cfg->train ? l->nthreads : 1;
    l->inflight_max = 4 * l->nthreads + 16;
    l->pool = calloc(1, sizeof *l->pool);
    if (!l->pool) { free(l); return cm_error(CM_ERR_OOM, "out of memory"); }
    pthread_mutex_init(&l->pool->mu, NULL);
    l->pool->refs = 1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_job, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    pthread_cond_init(&l->cv_batch, NULL);
    cm_status st = cm_shardlist_init(&l->sl, cfg->urls, cfg->train ? cfg->upsampling : NULL, flag);
    if (st) goto fail;
    if (!(cfg->train && cfg->resampled) && l->sl.urls.n < l->V * world && l->cfg.rank == 0) {
        int n = l->sl.urls.n, P = l->V * world;
        cm_warn("%s: %d shard%s for %d worker%s x %d process%s: split by sample instead (each shard is shared by up to %d "
                "workers, each taking every k-th of its samples, k = the workers sharing it; docs/data.md)",
                flag, n, n == 1 ? "" : "s", l->V, l->V == 1 ? "" : "s", world, world == 1 ? "" : "es", (P + n - 1) / n);
    }
    if (cfg->train) {
        int64_t n = cfg->num_samples;
        if (n <= 0 && (st = cm_dataset_size(&l->sl.urls, &n))) goto fail;
        if ((st = cm_epoch_size(n, cfg->batch_size, world, cfg->workers, &l->es))) goto fail;
        l->nwb = l->es.num_worker_batches;
    }
    l->tok = cfg->tok;
    l->ctx = cfg->context_len > 0 ? cfg->context_len : CM_CONTEXT_LEN;
    if (!l->tok && !cfg->encode) {
        if ((st = cm_tokenizer_load(NULL, &l->tok))) goto fail;
        l->own_tok = true;
    }
    l->vw = calloc((size_t)l->V, sizeof *l->vw);
    if (!l->vw) { st = cm_error(CM_ERR_OOM, "out of memory"); goto fail; }
    for (int i = 0; i < l->V; i++) {
        l->vw[i].shards = malloc(sizeof(int) * (size_t)(l->sl.urls.n + 1));
        if (!l->vw[i].shards) { st = cm_error(CM_ERR_OOM, "out of memory"); goto fail; }
    }
    l->threads = calloc((size_t)l->nthreads, sizeof *l->threads);
    if (!l->threads) { st = cm_error(CM_ERR_OOM, "out of memory"); goto fail; }
    for (int i = 0; i < l->nthreads; i++)
        if (pthread_create(&l->threads[i], NULL, decode_main, l)) {
            st = cm_error(CM_ERR_IO, "data: cannot start decode thread %d", i);
            l->nthreads = i;
            goto fail;
        }
    *out = l;
    return CM_OK;
fail:
    cm_loader_close(l);
    return st;
}

int64_t cm_loader_num_batches(const CmLoader *l) { return l->cfg.train ? l->es.num_batches : -1; }
int64_t cm_loader_num_samples(const CmLoader *l) { return l->cfg.train ? l->es.num_samples : -1; }

CmLoaderStats cm_loader_stats(CmLoader *l) {
    pthread_mutex_lock(&l->mu);
    CmLoaderStats s = l->st;
    pthread_mutex_unlock(&l->mu);
    return s;
}

void cm_loader_close(CmLoader *l) {
    if (!l) return;
    end_epoch(l);
    pthread_mutex_lock(&l->mu);
    l->quit = true;
    pthread_cond_broadcast(&l->cv_job);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; l->threads && i < l->nthreads; i++) pthread_join(l->threads[i], NULL);
    free(l->threads);
    while (l->freelist) {
        Job *j = l->freelist;
        l->freelist = j->next;
        cm_free(j->img);
        cm_free(j->tok);
        free(j);
    }
    for (int i = 0; l->vw && i < l->V; i++) { free(l->vw[i].shards); free(l->vw[i].buf); }
    free(l->vw);
    if (l->pool) {
        pthread_mutex_lock(&l->pool->mu);
        l->pool->closed = true;
        pool_unref_locked(l->pool);
    }
    if (l->own_tok) cm_tokenizer_free(l->tok);
    cm_shardlist_free(&l->sl);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_job);
    pthread_cond_destroy(&l->cv_done);
    pthread_cond_destroy(&l->cv_batch);
    free(l);
}
