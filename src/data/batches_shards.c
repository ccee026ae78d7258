/*
 * batches_shards.c — a simple, single-threaded WebDataset batch source on src/data (tar/wds
 * reader, image decode + transforms, labels), with either text encoder of textenc.h. It serves
 * the demo (byte-level captions) and any run where the threaded loader is not wanted.
 * Semantics follow OpenCLIP's pipeline (reference §8) in the simple form:
 *   train: shards drawn with replacement by upsampling weight (resampled) or the shard list
 *          shuffled per epoch (cycled when an epoch needs more), a sample shuffle buffer of raw
 *          samples, RandomResizedCrop, exactly num_batches full batches per epoch;
 *   val:   shards in order, no shuffle, eval transform, the last batch partial.
 * Every random choice comes from an RNG seeded by (seed, epoch): epochs are reproducible and a
 * resumed run sees the same data. A bad sample or shard is skipped, counted and logged (the
 * first 20 by shard and key); an epoch that finds no usable sample at all is an error. A sample
 * without .json gets label 0 (DESIGN §4.2), counted in no_json and logged (the first 20).
 */
#include "data/batches.h"

#include <string.h>
#include "common/rng.h"
#include "data/image.h"
#include "data/wds.h"
#include "data/shards.h"

typedef struct {
    CmBatchSource base;
    CmShardSourceCfg cfg;
    CmShardList sl;
    CmRng rng;
    int *order;               /* shard order of this epoch (non-resampled) */
    int next_shard;           /* index into order */
    CmWdsReader *rd;
    CmWdsSample **buf;        /* shuffle buffer (raw samples) */
    int nbuf, cap;
    bool exhausted;           /* validation: no shards left */
    int64_t served, logged, read_this_epoch, empty_passes;
    CmSampleIds ids;          /* keys / shard URLs of the last batch */
} ShardSource;

/* Count a bad sample or shard; the first 50 are logged one by one, then one line says the rest
   are only counted (the count ends up in the command's summary), as the threaded loader does. */
#define MAX_LOGGED 50
static bool log_more(ShardSource *s) {
    s->base.skipped++;
    int64_t n = s->logged++;
    if (n == MAX_LOGGED) cm_warn("data: more bad samples/shards: counted, no longer logged one by one");
    return n < MAX_LOGGED;
}

static void log_bad(ShardSource *s, const char *shard, const char *key, const char *why) {
    if (log_more(s)) cm_warn("skipping sample %s in %s: %s", key ? key : "?", shard ? shard : "?", why);
}

/* Next raw sample from the shard stream; NULL at the end (validation) or on a hopeless stream. */
static CmWdsSample *raw_next(ShardSource *s) {
    for (;;) {
        if (s->rd) {
            CmWdsSample *x = NULL;
            int r = cm_wds_next(s->rd, &x);
            if (r == 1) {
                if (x->error) { log_bad(s, cm_wds_path(s->rd), x->key, x->error); cm_wds_sample_free(x); continue; }
                s->read_this_epoch++;
                return x;
            }
            if (r < 0 && log_more(s)) cm_warn("shard damaged, moving on: %s", cm_last_error());
            cm_wds_close(s->rd);
            s->rd = NULL;
        }
        int n = s->sl.urls.n, idx;
        if (s->cfg.train && s->cfg.resampled) idx = cm_shardlist_draw(&s->sl, &s->rng);
        else {
            if (s->next_shard >= n) {
                if (!s->cfg.train) { s->exhausted = true; return NULL; }
                /* the epoch needs more: another shuffled pass (a pass with no sample is fatal) */
                if (s->read_this_epoch == 0 && ++s->empty_passes > 1) return NULL;
                s->read_this_epoch = 0;
                cm_shuffle_ints(s->order, n, &s->rng);
                s->next_shard = 0;
            }
            idx = s->order[s->next_shard++];
        }
        if (cm_wds_open(s->sl.urls.v[idx], true, 0, &s->rd)) {
            if (log_more(s)) cm_warn("cannot read shard, moving on: %s", cm_last_error());
            s->rd = NULL;
            if (s->cfg.train && s->cfg.resampled && ++s->empty_passes > 100 * (int64_t)n + 100) return NULL;
        }
    }
}

/* Decode one raw sample into slot k of the batch; false (counted) when unusable. */
static bool decode(ShardSource *s, CmWdsSample *x, float *img, int32_t *tok, int32_t *lab) {
    const CmWdsField *im = cm_wds_image(x), *tx = cm_wds_field(x, "txt");
    const char *shard = x->url;
    if (!im || !tx) { log_bad(s, shard, x->key, !im ? "no image" : "no caption"); return false; }
    int label = 0;
    bool no_json = false;
    if (cm_sample_label(x, &label, &no_json)) { log_bad(s, shard, x->key, cm_last_error()); return false; }
    CmImage pic = {0};
    char what[600];
    snprintf(what, sizeof what, "%s:%s", shard ? shard : "?", x->key);
    cm_status st = cm_image_decode(im->data, im->size, what, 0, &pic);
    if (!st) st = s->cfg.train ? cm_transform_train(&pic, s->base.image_size, &CM_CLIP_NORMALIZE, &s->rng, img)
                               : cm_transform_eval(&pic, s->base.image_size, &CM_CLIP_NORMALIZE, img);
    cm_image_free(&pic);
    if (!st) st = cm_textenc_encode(s->cfg.te, (const char *)tx->data, tx->size, tok, s->base.ctx);
    if (st) { log_bad(s, shard, x->key, cm_last_error()); return false; }
    *lab = label;
    if (no_json) {   /* DESIGN §4.2: label 0, counted */
        if (s->base.no_json < 20) cm_warn("%s: sample '%s' has no .json metadata: label 0 (DESIGN §4.2)", shard ? shard : "?", x->key);
        else if (s->base.no_json == 20) cm_warn("more samples without .json: counted, no longer logged one by one");
        s->base.no_json++;
    }
    return true;
}

static cm_status sh_start(CmBatchSource *b, int64_t epoch) {
    ShardSource *s = (ShardSource *)b;
    if (s->rd) { cm_wds_close(s->rd); s->rd = NULL; }
    for (int i = 0; i < s->nbuf; i++) cm_wds_sample_free(s->buf[i]);
    s->nbuf = 0;
    cm_rng_seed(&s->rng, cm_epoch_seed(s->cfg.seed, epoch, 2));
    for (int i = 0; i < s->sl.urls.n; i++) s->order[i] = i;
    if (s->cfg.train && !s->cfg.resampled) cm_shuffle_ints(s->order, s->sl.urls.n, &s->rng);
    s->next_shard = 0;
    s->exhausted = false;
    s->served = 0;
    s->read_this_epoch = 0;
    s->empty_passes = 0;
    return CM_OK;
}

static cm_status sh_next(CmBatchSource *b, float *images, int32_t *tokens, int32_t *labels, int *got) {
    ShardSource *s = (ShardSource *)b;
    const size_t isz = (size_t)3 * b->image_size * b->image_size;
    *got = 0;
    cm_sample_ids_clear(&s->ids);
    if (s->cfg.train && s->served >= b->num_batches) return CM_OK;
    int k = 0;
    int64_t misses = 0;
    while (k < b->batch) {
        CmWdsSample *x = NULL;
        if (s->cfg.train && s->cfg.shuffle > 1) {
            while (s->nbuf < s->cap) {
                CmWdsSample *y = raw_next(s);
                if (!y) break;
                s->buf[s->nbuf++] = y;
            }
            if (s->nbuf == 0) break;
            int pick = (int)cm_rng_below(&s->rng, (uint64_t)s->nbuf);
            x = s->buf[pick];
            s->buf[pick] = s->buf[--s->nbuf];
        } else x = raw_next(s);
        if (!x) break;
        bool ok = decode(s, x, images + (size_t)k * isz, tokens + (size_t)k * b->ctx, labels + k);
        cm_status ist = ok ? cm_sample_ids_add(&s->ids, x->key, x->url) : CM_OK;
        cm_wds_sample_free(x);
        if (ist) return ist;
        if (ok) { k++; misses = 0; }
        else if (++misses > 10000) return cm_error(CM_ERR_FORMAT, "%s: 10000 bad samples in a row; giving up", s->cfg.urls);
    }
    if (s->cfg.train && k < b->batch) {
        if (s->served == 0 && k == 0)
            return cm_error(CM_ERR_FORMAT, "--train-data %s: no usable sample in the shards", s->cfg.urls);
        return cm_error(CM_ERR_FORMAT, "--train-data %s: ran out of usable samples mid-epoch", s->cfg.urls);
    }
    s->served++;
    *got = k;
    return CM_OK;
}

static const char *sh_key(CmBatchSource *b, int i, const char **url) {
    return cm_sample_ids_get(&((ShardSource *)b)->ids, i, url);
}

static void sh_close(CmBatchSource *b) {
    ShardSource *s = (ShardSource *)b;
    cm_sample_ids_free(&s->ids);
    if (s->rd) cm_wds_close(s->rd);
    for (int i = 0; i < s->nbuf; i++) cm_wds_sample_free(s->buf[i]);
    cm_free(s->buf);
    cm_free(s->order);
    cm_shardlist_free(&s->sl);
    cm_free(s);
}

cm_status cm_batches_shards(const CmShardSourceCfg *c, CmBatchSource **out) {
    *out = NULL;
    if (c->batch < 1 || c->image_size < 1 || c->ctx < 1 || !c->te)
        return cm_error(CM_ERR_ARG, "shard batches: bad configuration");
    ShardSource *s = cm_calloc(1, sizeof *s, "shard batches");
    if (!s) return CM_ERR_OOM;
    s->cfg = *c;
    cm_status st = cm_shardlist_init(&s->sl, c->urls, c->train ? c->upsampling : NULL, c->train ? "--train-data" : "--val-data");
    if (st) { cm_free(s); return st; }
    s->order = cm_calloc((size_t)s->sl.urls.n + 1, sizeof *s->order, "shard order");
    s->cap = c->train && c->shuffle > 1 ? c->shuffle : 0;
    s->buf = s->cap ? cm_calloc((size_t)s->cap, sizeof *s->buf, "shuffle buffer") : NULL;
    if (!s->order || (s->cap && !s->buf)) { sh_close(&s->base); return CM_ERR_OOM; }
    s->base.start_epoch = sh_start;
    s->base.next = sh_next;
    s->base.close = sh_close;
    s->base.sample_key = sh_key;
    s->base.batch = c->batch;
    s->base.image_size = c->image_size;
    s->base.ctx = c->ctx;
    s->base.num_batches = c->train ? c->num_batches : 0;
    s->base.num_samples = c->train ? c->num_batches * c->batch : 0;
    *out = &s->base;
    return CM_OK;
}
