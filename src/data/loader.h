/*
 * loader.h — the training / validation data loader (DESIGN §4.1, OpenCLIP v2.30 open_clip_train/data.py): WebDataset shards
 * -> batches of images [B,3,S,S] float32, tokens [B,ctx] int32 (77 unless configured) and labels
 * [B] int32. The only shard reader of training and evaluation (loader_source.h's cm_batches_open
 * wraps it as a batch source).
 *
 * Structure (mirrors OpenCLIP's get_wds_dataset, with threads instead of processes):
 *   - V = max(1, workers) "virtual workers" each own a deterministic sample stream: resampled
 *     (shards drawn with replacement by upsampling weight, RNG seeded by seed/epoch/worker) or
 *     not (shard list shuffled per epoch with seed+epoch, split by rank then by worker; with
 *     fewer shards than workers x ranks, split by sample instead: the k workers sharing a shard
 *     each take every k-th sample, one warning, docs/data.md); each stream goes through
 *     webdataset's shuffle buffer (train: 5000, initial 1000). Batch k comes
 *     from worker k mod V, as torch's DataLoader interleaves workers; each worker yields at most
 *     num_worker_batches batches per epoch (OpenCLIP's epoch sizing), full batches only.
 *   - Validation: one stream over the shards in order (split by rank, by sample when there are
 *     fewer shards than ranks), no shuffle, the last partial batch kept.
 *   - `workers` decode threads (at least one) decode the image (RGB), apply the train or eval
 *     transform, tokenize the caption and read the label, feeding a bounded queue; one
 *     assembler thread takes results in stream order, so batches are identical for a given seed
 *     whatever the thread timing (each sample's augmentation RNG is seeded from
 *     seed/epoch/worker/sample index).
 *   - A bad sample (damaged member, no image, undecodable image, no caption, bad caption text,
 *     bad JSON, unknown label) is skipped and counted, logged with shard and key; a bad shard
 *     (missing, truncated, garbage) is logged, counted, and the loader moves on. When nothing
 *     usable can be read (every shard bad, or 10,000 bad samples in a row) the loader fails with
 *     an error instead of spinning.
 * defines: CmLoaderConfig, CmBatch, CmLoaderStats, cm_loader_*
 */
#ifndef CM_LOADER_H
#define CM_LOADER_H

#include <stdint.h>
#include <stdbool.h>
#include "common/common.h"
#include "data/sample_ids.h"
#include "data/tokenizer.h"

typedef struct {
    const char *urls;          /* "a-{000..009}.tar::b-{00..99}.tar" */
    const char *upsampling;    /* "w1::w2" (requires resampled); NULL or "" for none */
    bool train;                /* train transform + shuffle + full batches + epoch sizing */
    bool resampled;            /* --dataset-resampled */
    int batch_size;
    int workers;               /* decode threads = max(1, workers); virtual workers likewise */
    int64_t num_samples;       /* train: --train-num-samples (0: from sizes.json / __len__) */
    uint64_t seed;
    int rank, world_size;      /* 0, 1 for one process */
    int image_size;            /* 0 -> 224 */
    CmTokenizer *tok;          /* shared read-only; NULL (and no encode): cm_tokenizer_load(NULL) */
    /* Optional caption encoder used instead of tok (e.g. the demo's byte-level one); called from
       several threads at once. context_len: ids per caption (0 -> 77). */
    cm_status (*encode)(void *ctx, const char *text, size_t len, int32_t *ids, int context_len);
    void *encode_ctx;
    int context_len;
    int shuffle_bufsize;       /* 0 -> 5000 (train only) */
    int shuffle_initial;       /* 0 -> 1000 */
    uint64_t max_member;       /* 0 -> CM_TAR_DEFAULT_MAX_MEMBER */
    int max_logged;            /* bad samples/shards logged individually (0 -> 50); all are counted */
} CmLoaderConfig;

typedef struct CmBatch {
    int n;                     /* samples in this batch (== batch_size except a last validation batch) */
    int image_size, context_len;
    float *images;             /* [n,3,S,S] */
    int32_t *tokens;           /* [n,context_len] (77 unless configured) */
    int32_t *labels;           /* [n] class ids 0..6 */
    CmSampleIds ids;           /* key and shard URL of each sample (cm_batch_key) */
    struct CmBatchPool *pool_; /* internal: cm_batch_free recycles the memory into the loader */
    struct CmBatch *next_;     /* internal */
} CmBatch;

typedef struct {
    int64_t samples;           /* samples delivered in batches */
    int64_t bad_samples;       /* skipped samples */
    int64_t bad_shards;        /* shards that could not be read to the end */
    int64_t shards;            /* shards opened */
    int64_t no_json;           /* delivered samples without .json metadata (label 0, DESIGN §4.2) */
} CmLoaderStats;

typedef struct CmLoader CmLoader;

cm_status cm_loader_open(const CmLoaderConfig *cfg, CmLoader **out);
/* Start epoch `epoch` (0-based); abandons what remains of the previous one. */
cm_status cm_loader_start_epoch(CmLoader *l, int epoch);
/* 1: *out is the next batch (free with cm_batch_free); 0: end of the epoch; negative: the
   loader failed (message set). */
int cm_loader_next(CmLoader *l, CmBatch **out);
/* The WebDataset key of sample i of b and its shard URL in *url (NULL outside 0..n-1). */
const char *cm_batch_key(const CmBatch *b, int i, const char **url);
/* Gives the batch back (its memory is reused by the loader while it is open). */
void cm_batch_free(CmBatch *b);
/* Train: batches / samples per epoch (OpenCLIP's sizing); validation: -1 (until exhausted). */
int64_t cm_loader_num_batches(const CmLoader *l);
int64_t cm_loader_num_samples(const CmLoader *l);
CmLoaderStats cm_loader_stats(CmLoader *l);
void cm_loader_close(CmLoader *l);

#endif
