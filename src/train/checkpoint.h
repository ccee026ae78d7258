/*
 * checkpoint.h — training checkpoints (DESIGN §3, §6): one safetensors file per save,
 * <logs>/<name>/checkpoints/epoch_N.safetensors (and epoch_latest.safetensors), written
 * atomically (temp file, fsync, rename, by cm_safetensors_write).
 *
 * Layout
 *   tensors   the model tensors with OpenCLIP names — all of them, or with a base model file
 *             and a mode that freezes the towers (--enable-lora, head-only) only the trainable
 *             ones — then the AdamW state of every trainable tensor as
 *             "optimizer.exp_avg.<name>" and "optimizer.exp_avg_sq.<name>" (F32).
 *   __metadata__ (all strings): "format" "pt"; "clipmod_checkpoint" "1"; "epoch" (completed
 *             epochs); "step" (optimizer steps done); "epoch_step" (steps done in the
 *             unfinished epoch: interrupted runs, see run.h); "name" (run); "model_config" (JSON in the
 *             open_clip_config.json layout: model_cfg + lora + head); "has_lora"/"has_head";
 *             "train_mode" lora|full|head|none; "lock_image"/"lock_text"; "trainable_only";
 *             "base_model" (path or "") + "base_model_sha256"; "rng" (JSON: named xoshiro
 *             states as 4 hex words); "optimizer" (JSON: type, lr, betas, eps, weight_decay,
 *             param_groups [{weight_decay, params:[names]}], step:{name: n}); "args" (the
 *             training options as JSON, CmTrainConfig.args_json); "tokenizer" bpe|bytes.
 * Loading overlays the checkpoint onto a model built from the same config (its frozen tensors
 * loaded from the base model first); the base model's SHA-256 is checked against the metadata.
 * Tensors under "optimizer." are never model tensors, so `clipmod eval --model CKPT` works.
 * defines: CmCkptMeta, cm_checkpoint_*, cm_sha256_file
 */
#ifndef CM_TRAIN_CHECKPOINT_H
#define CM_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"
#include "common/rng.h"
#include "model/model.h"
#include "train/optim.h"

#define CM_CKPT_MAX_RNG 4

typedef struct {
    int64_t epoch;               /* completed epochs */
    int64_t step;                /* optimizer steps done */
    int64_t epoch_step;          /* optimizer steps done in epoch `epoch` (not yet complete): 0 for the
                                    end-of-epoch checkpoints, > 0 for one written on SIGINT/SIGTERM */
    char name[256];              /* run name */
    char base_model[1024];       /* base weights file ("" when trained from scratch / all tensors) */
    char base_sha256[65];
    CmTrainMode mode;
    bool lock_image, lock_text, trainable_only;
    int n_rng;
    char rng_name[CM_CKPT_MAX_RNG][32];
    CmRng rng[CM_CKPT_MAX_RNG];
    char tokenizer[16];          /* "bpe" (OpenCLIP's; also when empty) or "bytes" (the demo's) */
    const char *args_json;       /* save: options JSON (may be NULL); load: not filled */
} CmCkptMeta;

/* SHA-256 of a file, streamed (64 hex chars). */
cm_status cm_sha256_file(const char *path, char out[65]);

/* Write a checkpoint. opt may be NULL (no optimizer state; e.g. an exported model). With
   meta->trainable_only only trainable tensors are written (needs meta->base_model). */
cm_status cm_checkpoint_save(const char *path, const CmModel *m, const CmAdamW *opt, const CmCkptMeta *meta);

/* Read the metadata and config of a checkpoint written by cm_checkpoint_save (NOT the tensors).
   A safetensors file without "clipmod_checkpoint" gives CM_ERR_FORMAT naming the file. */
cm_status cm_checkpoint_read_meta(const char *path, CmCkptMeta *meta, CmModelConfig *cfg);

/* Overlay the checkpoint's model tensors onto m (built from the checkpoint's config, base
   already loaded when trainable_only) and, when opt != NULL, its optimizer state (the optimizer
   must hold the same trainable tensors; a missing state tensor is an error naming it).
   Fills meta when not NULL. */
cm_status cm_checkpoint_load(const char *path, CmModel *m, CmAdamW *opt, CmCkptMeta *meta);

/* Build a ready model from a checkpoint (base model loaded + SHA checked when trainable_only,
   mode CM_TRAIN_NONE) — what eval / predict use. A plain weights file (no clipmod metadata) is
   loaded with cm_model_from_file (CLIP-only files allowed). */
cm_status cm_checkpoint_open_model(const char *path, CmModel **out, CmCkptMeta *meta);

/* eval / predict: a clipmod checkpoint (config from its metadata; config_name must then be NULL
   or agree) or a weights file (config from config_name — a name or JSON file — else found by
   cm_config_discover; LoRA/head initialised when absent). meta->tokenizer tells the tokenizer. */
cm_status cm_model_open_any(const char *path, const char *config_name, CmModel **out, CmCkptMeta *meta);

/* The optimizer's parameter list: the model's trainable tensors in state-dict order (name, data,
   grad, numel, ndim, decay). *out cm_malloc'd; names point into m. */
cm_status cm_opt_params_from_model(const CmModel *m, CmOptParam **out, int *n);

/* <dir>/epoch_<n>.safetensors or epoch_latest.safetensors (n < 0). */
void cm_checkpoint_path(char *buf, size_t n, const char *dir, int64_t epoch);
/* <dir>/step_<step>.safetensors: the checkpoint written when a run is interrupted. */
void cm_checkpoint_step_path(char *buf, size_t n, const char *dir, int64_t step);
/* --resume latest: the complete checkpoint with the most optimizer steps among
   epoch_N / epoch_latest / step_N .safetensors in dir (its metadata is read; temp files and files
   whose header cannot be read are ignored with a warning; on a tie epoch_N, then epoch_latest,
   then step_N). CM_ERR_IO when there is none; *out cm_malloc'd. */
cm_status cm_checkpoint_find_latest(const char *dir, char **out);

#endif
