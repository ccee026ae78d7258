/*
 * run.h — a whole training run as OpenCLIP's main()/train_one_epoch() drive it (OpenCLIP v2.30 open_clip_train/train.py and main.py):
 * run folder <logs>/<name>/ with out.log (OpenCLIP's "date | LEVEL | message" lines), params.txt
 * and checkpoints/; resume (PATH or latest); the epoch loop with the LR schedule per optimizer
 * step, progress lines (samples/s, losses, LR, logit scale, ETA) every --log-every-n-steps;
 * validation every --val-frequency epochs appended to <logs>/<name>/results.jsonl (DESIGN §3);
 * checkpoints per --save-frequency / --save-most-recent / --delete-previous-checkpoint.
 *
 * Reproducibility: the head-dropout RNG is reseeded at the start of every epoch from (--seed,
 * epoch) and the batch sources reseed from (seed, epoch) too, so a run resumed from its epoch-N
 * checkpoint continues bit-identically (same thread count).
 * Stopping: when *stop becomes non-zero (a SIGINT/SIGTERM handler sets it) the run finishes the
 * optimizer step in progress, writes checkpoints/step_<N>.safetensors (model, optimizer, dropout
 * RNG, step, "epoch_step" = steps done in the unfinished epoch) and returns CM_OK with
 * r->stopped set. Resuming from it restarts the epoch's batch source from (seed, epoch) and
 * replays (decodes and discards) the batches already used, then restores the dropout RNG: the
 * continued run is bit-identical to an uninterrupted one.
 * defines: CmRun, cm_train_run (cm_epoch_seed: common/rng.h)
 */
#ifndef CM_TRAIN_RUN_H
#define CM_TRAIN_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include "model/model.h"
#include "data/batches.h"
#include "eval/metrics.h"
#include "train/train_config.h"
#include "train/trainer.h"

typedef struct {
    /* inputs */
    const CmTrainConfig *o;
    CmModel *m;                  /* weights loaded, mode set (cm_model_set_mode) */
    CmBatchSource *train;        /* num_batches per epoch already sized (cm_epoch_size, data/wds.h) */
    CmBatchSource *val;          /* NULL: no validation */
    const char *base_model;      /* the --pretrained weights file, NULL when trained from scratch */
    const char *tokenizer;       /* recorded in checkpoints: "bpe" (NULL) or "bytes" */
    char base_sha256[65];        /* SHA-256 of base_model when already known (the data-parallel check), else "" */
    bool dropout;                /* head dropout in training (true normally; false for golden checks) */
    void (*on_step)(void *ctx, int64_t step, const CmStepStats *s);   /* optional, after each step */
    void *cb_ctx;
    volatile sig_atomic_t *stop; /* optional: non-zero (a signal number) = stop at the next step boundary */
    /* outputs */
    int stopped;                 /* the *stop value when the run stopped early, else 0 */
    char stop_checkpoint[1200];  /* the checkpoint written then ("" with --logs none) */
    char run_dir[1024];          /* "" when --logs none */
    bool have_val;
    CmMetrics val_metrics;       /* the last validation */
    CmStepStats last;            /* the last optimizer step */
    int64_t steps_done;
    double train_seconds;
    int64_t train_skipped, val_skipped;   /* bad samples/shards the sources skipped (cumulative) */
} CmRun;

cm_status cm_train_run(CmRun *r);

#endif
