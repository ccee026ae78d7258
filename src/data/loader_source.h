/*
 * loader_source.h — the one way to open WebDataset shards as a batch source (batches_loader.c):
 * training or validation, BPE or byte-level captions, any context length, one process or one rank
 * of many, all through the threaded loader (src/data/loader.h). `clipmod train` (and the demo and
 * the training API through it) and `clipmod eval` call cm_batches_open.
 * defines: CmBatchesConfig, cm_batches_open
 */
#ifndef CM_DATA_LOADER_SOURCE_H
#define CM_DATA_LOADER_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include "data/batches.h"
#include "data/textenc.h"

typedef struct {
    const char *urls;          /* brace patterns joined by '::' (--train-data / --val-data) */
    const char *upsampling;    /* per-source weights "w1::w2" (train + resampled only); NULL: none */
    bool train;                /* training (augmentation, shuffles, full batches, OpenCLIP's epoch
                                  sizing) or validation (in order, eval transform, last batch partial) */
    bool resampled;            /* --dataset-resampled (train only) */
    int batch_size;
    int workers;               /* decode threads (0 -> 1), and training's virtual workers */
    int64_t num_samples;       /* train: global samples per epoch; <= 0: sizes.json / __len__ */
    uint64_t seed;
    int rank, world_size;      /* this process among the processes sharing the data (0, 1: alone) */
    int image_size, context_len;
    CmTextEnc *te;             /* caption encoder (not owned; called from the decode threads) */
} CmBatchesConfig;

/* Training sources know num_batches / num_samples per epoch (OpenCLIP's sizing); validation
   sources deliver every sample of this rank's share once. */
cm_status cm_batches_open(const CmBatchesConfig *c, CmBatchSource **out);

#endif
