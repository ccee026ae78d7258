/*
 * batches_loader.c — cm_batches_open (loader_source.h): the batch source over the threaded
 * WebDataset loader of src/data/loader.h (--workers decode threads, OpenCLIP's resampling /
 * shard shuffles / shuffle buffer / epoch sizing, the split by rank and worker), with the
 * caption encoder of textenc.h (BPE or byte level) at the model's context length.
 */
#include "data/loader_source.h"
#include "data/loader.h"

#include <string.h>

typedef struct {
    CmBatchSource base;
    CmLoader *l;
    bool train;
    CmSampleIds ids;          /* keys / shard URLs of the last batch */
} LoaderSource;

static cm_status ls_start(CmBatchSource *b, int64_t epoch) {
    LoaderSource *s = (LoaderSource *)b;
    return cm_loader_start_epoch(s->l, (int)epoch);
}

static cm_status ls_next(CmBatchSource *b, float *images, int32_t *tokens, int32_t *labels, int *got) {
    LoaderSource *s = (LoaderSource *)b;
    *got = 0;
    cm_sample_ids_clear(&s->ids);
    CmBatch *bt = NULL;
    int r = cm_loader_next(s->l, &bt);
    /* the counts also when the epoch ends or fails (every shard missing: the summary says how many) */
    CmLoaderStats ls = cm_loader_stats(s->l);
    b->skipped = ls.bad_samples + ls.bad_shards;
    b->no_json = ls.no_json;
    if (r < 0) return cm_last_status() ? cm_last_status() : CM_ERR_IO;
    if (r == 0) return CM_OK;
    if (bt->n > b->batch || bt->image_size != b->image_size || bt->context_len != b->ctx) {
        cm_batch_free(bt);
        return cm_error(CM_ERR_ARG, "loader: batch of %d images of %d px, %d tokens, expected <= %d of %d px, %d tokens", bt->n,
                        bt->image_size, bt->context_len, b->batch, b->image_size, b->ctx);
    }
    memcpy(images, bt->images, (size_t)bt->n * 3 * b->image_size * b->image_size * sizeof(float));
    memcpy(tokens, bt->tokens, (size_t)bt->n * b->ctx * sizeof(int32_t));
    memcpy(labels, bt->labels, (size_t)bt->n * sizeof(int32_t));
    *got = bt->n;
    for (int i = 0; i < bt->n; i++) {
        const char *url, *key = cm_batch_key(bt, i, &url);
        cm_status st = cm_sample_ids_add(&s->ids, key, url);
        if (st) { cm_batch_free(bt); return st; }
    }
    cm_batch_free(bt);
    return CM_OK;
}

static const char *ls_key(CmBatchSource *b, int i, const char **url) {
    return cm_sample_ids_get(&((LoaderSource *)b)->ids, i, url);
}

static void ls_close(CmBatchSource *b) {
    LoaderSource *s = (LoaderSource *)b;
    cm_sample_ids_free(&s->ids);
    if (s->l) cm_loader_close(s->l);
    cm_free(s);
}

static cm_status te_encode(void *ctx, const char *text, size_t len, int32_t *ids, int n) {
    return cm_textenc_encode(ctx, text, len, ids, n);
}

cm_status cm_batches_open(const CmBatchesConfig *c, CmBatchSource **out) {
    *out = NULL;
    if (!c->urls || !*c->urls || !c->te || c->context_len < 1)
        return cm_error(CM_ERR_ARG, "%s: no shards, text encoder or context length", c->train ? "--train-data" : "--val-data");
    CmLoaderConfig lc = {0};
    lc.urls = c->urls;
    lc.upsampling = c->train ? c->upsampling : NULL;
    lc.train = c->train;
    lc.resampled = c->train && c->resampled;
    lc.batch_size = c->batch_size;
    lc.workers = c->workers;
    lc.num_samples = c->train && c->num_samples > 0 ? c->num_samples : 0;
    lc.seed = c->seed;
    lc.world_size = c->world_size > 0 ? c->world_size : 1;
    lc.rank = c->rank;
    lc.image_size = c->image_size;
    lc.encode = te_encode;
    lc.encode_ctx = c->te;
    lc.context_len = c->context_len;
    LoaderSource *s = cm_calloc(1, sizeof *s, "loader source");
    if (!s) return CM_ERR_OOM;
    cm_status st = cm_loader_open(&lc, &s->l);
    if (st) { cm_free(s); return st; }
    s->train = lc.train;
    s->base.start_epoch = ls_start;
    s->base.next = ls_next;
    s->base.close = ls_close;
    s->base.sample_key = ls_key;
    s->base.batch = lc.batch_size;
    s->base.image_size = lc.image_size > 0 ? lc.image_size : 224;
    s->base.ctx = lc.context_len;
    s->base.num_batches = lc.train ? cm_loader_num_batches(s->l) : 0;
    s->base.num_samples = lc.train ? cm_loader_num_samples(s->l) : 0;
    *out = &s->base;
    return CM_OK;
}
