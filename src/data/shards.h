/*
 * shards.h — the simple single-threaded WebDataset batch source (batches_shards.c): shards ->
 * batches with the demo's byte-level or the BPE text encoder. See batches_shards.c.
 * defines: CmShardSourceCfg, cm_batches_shards
 */
#ifndef CM_DATA_SHARDS_H
#define CM_DATA_SHARDS_H

#include <stdbool.h>
#include <stdint.h>
#include "data/batches.h"
#include "data/textenc.h"

typedef struct {
    const char *urls;          /* brace patterns joined by '::' */
    const char *upsampling;    /* per-source weights "w1::w2" (train + resampled only) */
    bool train, resampled;
    int batch, image_size, ctx;
    int64_t num_batches;       /* train: full batches per epoch */
    int shuffle;               /* train: sample shuffle buffer (raw samples; <= 1: none) */
    uint64_t seed;
    CmTextEnc *te;             /* not owned */
} CmShardSourceCfg;

cm_status cm_batches_shards(const CmShardSourceCfg *c, CmBatchSource **out);

#endif
