/*
 * batches_loader.c — the batch source over src/data/loader.h (the threaded WebDataset loader:
 * --workers decode threads, OpenCLIP's resampling / shard shuffles / shuffle buffer / epoch
 * sizing). Used for BPE-tokenised models with 77-token contexts (every OpenCLIP config); the
 * demo's byte-level captions go through batches_shards.c instead.
 */
#include "train/loader_source.h"

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
    if (r < 0) return cm_last_status() ? cm_last_status() : CM_ERR_IO;
    if (r == 0) return CM_OK;
    if (bt->n > b->batch || bt->image_size != b->image_size) {
        cm_batch_free(bt);
        return cm_error(CM_ERR_ARG, "loader: batch of %d images of %d px, expected <= %d of %d px", bt->n, bt->image_size, b->batch, b->image_size);
    }
    memcpy(images, bt->images, (size_t)bt->n * 3 * b->image_size * b->image_size * sizeof(float));
    memcpy(tokens, bt->tokens, (size_t)bt->n * 77 * sizeof(int32_t));
    memcpy(labels, bt->labels, (size_t)bt->n * sizeof(int32_t));
    *got = bt->n;
    for (int i = 0; i < bt->n; i++) {
        const char *url, *key = cm_batch_key(bt, i, &url);
        cm_status st = cm_sample_ids_add(&s->ids, key, url);
        if (st) { cm_batch_free(bt); return st; }
    }
    cm_batch_free(bt);
    CmLoaderStats st = cm_loader_stats(s->l);
    b->skipped = st.bad_samples + st.bad_shards;
    b->no_json = st.no_json;
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

cm_status cm_batches_loader(const CmLoaderConfig *cfg, CmBatchSource **out) {
    *out = NULL;
    LoaderSource *s = cm_calloc(1, sizeof *s, "loader source");
    if (!s) return CM_ERR_OOM;
    cm_status st = cm_loader_open(cfg, &s->l);
    if (st) { cm_free(s); return st; }
    s->train = cfg->train;
    s->base.start_epoch = ls_start;
    s->base.next = ls_next;
    s->base.close = ls_close;
    s->base.sample_key = ls_key;
    s->base.batch = cfg->batch_size;
    s->base.image_size = cfg->image_size > 0 ? cfg->image_size : 224;
    s->base.ctx = 77;
    s->base.num_batches = cfg->train ? cm_loader_num_batches(s->l) : 0;
    s->base.num_samples = cm_loader_num_samples(s->l);
    *out = &s->base;
    return CM_OK;
}
