/*
 * batches.h — where the training loop and evaluation get their host batches from: a small
 * interface with two implementations, WebDataset shards through the threaded loader
 * (batches_loader.c, opened with cm_batches_open of loader_source.h: the only shard path) and
 * memory (batches_mem.c: fixed tensors, for tests and the golden trajectories, so that the loop
 * runs without shards).
 *
 * A source yields batches of `batch` samples: images [b,3,S,S] float32 (already transformed),
 * tokens [b,ctx] int32, labels [b] int32 in 0..6. A training source delivers at most
 * num_batches full batches per epoch (OpenCLIP drops each worker's partial last batch, and its
 * rounded-up epoch sizing can ask for more samples than the shards hold: then the epoch ends
 * early, as in OpenCLIP); a validation source delivers every sample once, the last batch
 * possibly partial.
 * defines: CmBatchSource, cm_batches_*
 */
#ifndef CM_DATA_BATCHES_H
#define CM_DATA_BATCHES_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"
#include "data/sample_ids.h"

typedef struct CmBatchSource CmBatchSource;
struct CmBatchSource {
    /* Restart for epoch e (reseeds its shuffles from the run seed and e: deterministic). */
    cm_status (*start_epoch)(CmBatchSource *s, int64_t epoch);
    /* Fill up to s->batch samples; *got = how many (0: the epoch's data is exhausted). */
    cm_status (*next)(CmBatchSource *s, float *images, int32_t *tokens, int32_t *labels, int *got);
    void (*close)(CmBatchSource *s);
    /* Optional (NULL: unknown): the WebDataset key of sample i of the batch the last `next`
       returned, and its shard URL in *url; NULL when not known. Valid until the next call. */
    const char *(*sample_key)(CmBatchSource *s, int i, const char **url);
    int batch;               /* samples per batch */
    int image_size, ctx;     /* S, context length */
    int64_t num_batches;     /* training: batches per epoch; validation: 0 (until exhausted) */
    int64_t num_samples;     /* samples per epoch (training) or in total (validation, if known) */
    int64_t skipped;         /* bad samples skipped so far (logged by the source) */
    int64_t no_json;         /* samples served without .json metadata, so with label 0 (DESIGN §4.2) */
};

static inline void cm_batches_close(CmBatchSource *s) { if (s && s->close) s->close(s); }
static inline const char *cm_batches_sample_key(CmBatchSource *s, int i, const char **url) {
    if (url) *url = NULL;
    return s && s->sample_key ? s->sample_key(s, i, url) : NULL;
}

/* Memory source over n samples (copied). Training (drop_last): per epoch num_batches = n / batch
   batches in order, wrapping around when `epoch_batches` > n / batch (epoch_batches <= 0: n /
   batch). Validation (!drop_last): every sample once, last batch partial. */
cm_status cm_batches_memory(const float *images, const int32_t *tokens, const int32_t *labels, int n,
                            int image_size, int ctx, int batch, bool drop_last, int64_t epoch_batches,
                            CmBatchSource **out);

#endif
