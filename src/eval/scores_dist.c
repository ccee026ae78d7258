/*
 * scores_dist.c — per-sample scores of an evaluation split across MPI ranks. See scores_dist.h.
 */
#include "eval/scores_dist.h"

#include <stdlib.h>
#include <string.h>
#include "data/batches.h"
#include "dist/dist.h"
#include "eval/val_scores.h"

cm_status cm_val_scores_collect_ordered(void *ctx, CmBatchSource *src, const float *logits, const int32_t *labels, int n,
                                        int n_classes) {
    CmScoresOrder *o = ctx;
    int64_t base = o->s->n;
    if (base + n > o->cap) {
        int64_t cap = o->cap ? o->cap * 2 : 1024;
        while (cap < base + n) cap *= 2;
        int32_t *p = realloc(o->shard, (size_t)cap * sizeof *p);
        if (!p) return cm_error(CM_ERR_OOM, "scores: out of memory");
        o->shard = p;
        o->cap = cap;
    }
    for (int i = 0; i < n; i++) {
        const char *url = NULL;
        cm_batches_sample_key(src, i, &url);
        int idx = -1;
        if (url && o->last >= 0 && o->last < o->n_urls && !strcmp(o->urls[o->last], url)) idx = o->last;
        for (int k = 0; idx < 0 && url && k < o->n_urls; k++)
            if (!strcmp(o->urls[k], url)) idx = k;
        o->shard[base + i] = idx;
        if (idx >= 0) o->last = idx;
    }
    return cm_val_scores_collect(o->s, src, logits, labels, n, n_classes);
}

/* one row on the wire: int32 shard, int32 label, float probs[k], uint32 key length, key, uint32 url
   length, url; a rank's block starts with int32 k, int64 rows */
static void put(uint8_t **p, const void *v, size_t n) { memcpy(*p, v, n); *p += n; }

static cm_status get(const uint8_t **p, const uint8_t *end, void *v, size_t n) {
    if ((size_t)(end - *p) < n) return cm_error(CM_ERR_FORMAT, "scores gather: a rank's block is cut");
    memcpy(v, *p, n);
    *p += n;
    return CM_OK;
}

typedef struct { int32_t shard; int rank; int64_t seq; const uint8_t *row; } Row;

static int row_cmp(const void *a, const void *b) {
    const Row *x = a, *y = b;
    uint32_t sx = (uint32_t)x->shard, sy = (uint32_t)y->shard;   /* -1 (unknown) sorts last */
    if (sx != sy) return sx < sy ? -1 : 1;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

cm_status cm_scores_gather_ordered(CmScoresOrder *o) {
    if (!cm_dist_active()) return CM_OK;
    const CmScores *s = o->s;
    size_t bytes = 4 + 8;
    for (int64_t i = 0; i < s->n; i++)
        bytes += 8 + (size_t)s->k * 4 + 8 + strlen(s->key[i]) + strlen(cm_scores_url(s, i));
    uint8_t *blk = cm_malloc(bytes, "scores gather"), *p = blk;
    if (!blk) return CM_ERR_OOM;
    int32_t k = s->k;
    int64_t n = s->n;
    put(&p, &k, 4); put(&p, &n, 8);
    for (int64_t i = 0; i < s->n; i++) {
        int32_t sh = o->shard[i], lab = s->label[i];
        const char *key = s->key[i], *url = cm_scores_url(s, i);
        uint32_t kl = (uint32_t)strlen(key), ul = (uint32_t)strlen(url);
        put(&p, &sh, 4); put(&p, &lab, 4); put(&p, cm_scores_probs(s, i), (size_t)s->k * 4);
        put(&p, &kl, 4); put(&p, key, kl); put(&p, &ul, 4); put(&p, url, ul);
    }
    int W = cm_dist_size();
    size_t *counts = cm_calloc((size_t)W, sizeof *counts, "scores gather");
    void *all = NULL;
    cm_status st = counts ? cm_dist_gather_bytes(blk, bytes, &all, counts) : CM_ERR_OOM;
    cm_free(blk);
    if (st || cm_dist_rank() != 0) { cm_free(counts); cm_free(all); return st; }
    /* rank 0: index every row, order them, rebuild the scores */
    int64_t total = 0, kk = -1;
    const uint8_t *q = all;
    for (int r = 0; r < W && !st; r++) {
        const uint8_t *b = q, *end = q + counts[r];
        int32_t rk = 0;
        int64_t rn = 0;
        if (!(st = get(&b, end, &rk, 4)) && !(st = get(&b, end, &rn, 8))) {
            if (rn > 0 && kk >= 0 && rk != kk) st = cm_error(CM_ERR_FORMAT, "scores gather: rank %d has %d classes, another %lld", r, rk, (long long)kk);
            if (rn > 0) kk = rk;
            total += rn;
        }
        q = end;
    }
    Row *rows = st ? NULL : cm_calloc(total ? (size_t)total : 1, sizeof *rows, "scores gather");
    if (!st && !rows) st = CM_ERR_OOM;
    int64_t m = 0;
    q = all;
    for (int r = 0; r < W && !st; r++) {
        const uint8_t *b = q, *end = q + counts[r];
        int32_t rk = 0;
        int64_t rn = 0;
        get(&b, end, &rk, 4); get(&b, end, &rn, 8);
        for (int64_t i = 0; i < rn && !st; i++) {
            rows[m] = (Row){0, r, i, b};
            uint32_t kl = 0, ul = 0;
            if ((st = get(&b, end, &rows[m].shard, 4))) break;
            b += 4 + (size_t)rk * 4;
            if ((st = get(&b, end, &kl, 4))) break;
            b += kl;
            if ((st = get(&b, end, &ul, 4))) break;
            b += ul;
            if (b > end) st = cm_error(CM_ERR_FORMAT, "scores gather: rank %d's block is cut", r);
            m++;
        }
        q = end;
    }
    CmScores merged;
    cm_scores_init(&merged, kk > 0 ? (int)kk : s->k);
    if (!st) {
        qsort(rows, (size_t)m, sizeof *rows, row_cmp);
        float *probs = cm_malloc((size_t)(kk > 0 ? kk : 1) * 4, "scores gather");
        char *key = NULL, *url = NULL;
        if (!probs) st = CM_ERR_OOM;
        for (int64_t i = 0; i < m && !st; i++) {
            const uint8_t *b = rows[i].row + 4;
            int32_t lab;
            uint32_t kl = 0, ul = 0;
            memcpy(&lab, b, 4); b += 4;
            memcpy(probs, b, (size_t)kk * 4); b += (size_t)kk * 4;
            memcpy(&kl, b, 4); b += 4;
            key = cm_malloc(kl + 1, "scores gather");
            if (!key) { st = CM_ERR_OOM; break; }
            memcpy(key, b, kl); key[kl] = 0; b += kl;
            memcpy(&ul, b, 4); b += 4;
            url = cm_malloc(ul + 1, "scores gather");
            if (!url) { st = CM_ERR_OOM; break; }
            memcpy(url, b, ul); url[ul] = 0;
            st = cm_scores_add(&merged, key, url, lab, probs);
            cm_free(key); cm_free(url);
            key = url = NULL;
        }
        cm_free(key); cm_free(url);
        cm_free(probs);
    }
    cm_free(rows);
    cm_free(all);
    cm_free(counts);
    if (st) { cm_scores_free(&merged); return st; }
    cm_scores_free(o->s);
    *o->s = merged;
    return CM_OK;
}

void cm_scores_order_free(CmScoresOrder *o) {
    free(o->shard);
    o->shard = NULL;
    o->cap = 0;
}
