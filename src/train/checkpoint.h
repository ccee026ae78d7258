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
 *             unfinished epoch: interrupted runs, see run.h); "world_size" (data-parallel ranks
 *             that trained it, docs/distributed.md); "name" (run); "model_config" (JSON in the
 *             open_clip_config.json layout: model_cfg + lora + head); "has_lora"/"has_head";
 *             "train_mode" lora|full|head|none; "lock_image"/"lock_text"; "trainable_only";
 *             "base_model" (absolute path or "") + "base_model_sha256", "base_model_size",
 *             "base_model_mtime", "base_model_pretrained" (the --pretrained tag, "" for a path),
 *             "base_model_arch" (--model): how model/open.c finds a moved base; "rng" (JSON: named xoshiro
 *             states as 4 hex words); "optimizer" (JSON: type, lr, betas, eps, weight_decay,
 *             param_groups [{weight_decay, params:[names]}], step:{name: n}); "args" (the
 *             training options as JSON, CmTrainConfig.args_json); "tokenizer" bpe|bytes.
 * Resume (cm_checkpoint_load) overlays the checkpoint onto the run's model. Opening one for
 * inference (base model found by SHA-256, metadata reader, CmCkptMeta) is model/open.h's
 * cm_model_open. Tensors under "optimizer." are never model tensors.
 * defines: cm_checkpoint_*, cm_opt_params_from_model
 */
#ifndef CM_TRAIN_CHECKPOINT_H
#define CM_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"
#include "common/rng.h"
#include "io/sha256.h"
#include "model/model.h"
#include "model/open.h"
#include "train/optim.h"

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
/* The same from an open tensor file (e.g. the bytes rank 0 broadcast under MPI: opened with
   cm_tensorfile_open_memory); path names it in messages. */
cm_status cm_checkpoint_load_file(const struct CmTensorFile *f, const char *path, CmModel *m, CmAdamW *opt, CmCkptMeta *meta);

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
