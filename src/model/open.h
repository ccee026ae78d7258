/*
 * open.h — THE way to open a model for inference (embed, eval, predict, serve, info, the public
 * API). One call takes any file clipmod reads or writes and returns a ready model (mode
 * CM_TRAIN_NONE, read-only, shareable by threads) plus what it is (docs/open.md):
 *
 *   path is                              config from                          tensors
 *   a clipmod checkpoint (safetensors    its "model_config" metadata          the file (all
 *     with "clipmod_checkpoint")                                              tensors), or its
 *                                                                             base + the file
 *                                                                             (trainable-only)
 *   a safetensors written by             "model_config" metadata              the file
 *     cm_model_save / an export
 *   OpenCLIP weights: safetensors,       opts->config, else                   the file; absent
 *     open_clip_pytorch_model.bin,        cm_config_discover: open_clip_       LoRA (B = 0) and
 *     epoch_N.pt (torch zip)              config.json beside it, else shapes   head initialised
 *                                         that are exactly a built-in config
 *   a folder (HF snapshot / export)      as above, for the first of           as above
 *                                         open_clip_model.safetensors,
 *                                         open_clip_pytorch_model.bin in it
 *   a pretrained tag ("laion2b_s34b_b79k") with opts->config naming the model: the Hugging Face
 *     cache (opts->cache_dir, $HF_HOME, ...), never downloaded here.
 *
 * A trainable-only (LoRA / head-only) checkpoint finds its base model by SHA-256 (metadata
 * "base_model_sha256"), trying in order: opts->base_model (--base-model), the recorded path
 * ("base_model"), the recorded file name next to the checkpoint (and OpenCLIP's two file names
 * there), the HF cache by the recorded pretrained tag ("base_model_pretrained" + model name). A
 * candidate is hashed only when its path, size or mtime differ from the recorded ones
 * ("base_model_size", "base_model_mtime"); older checkpoints without them are hashed. When no
 * candidate matches, the error lists every place tried and why each failed.
 *
 * The tokenizer a model needs: the checkpoint's "tokenizer" metadata (bpe | bytes), else a
 * "tokenizer" key of the side config file / the file's metadata, else bytes when the text
 * vocabulary is the byte-level one (CM_BYTE_VOCAB = 258), else BPE.
 *
 * defines: CmOpenOptions, CmModelInfo, CmTokenizerKind, CmCkptMeta, cm_model_open,
 *          cm_ckpt_meta_read, cm_model_overlay, cm_train_mode_name, cm_train_mode_parse
 */
#ifndef CM_MODEL_OPEN_H
#define CM_MODEL_OPEN_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"
#include "common/rng.h"
#include "model/model.h"

struct CmTensorFile;

typedef enum { CM_TOKENIZER_BPE = 0, CM_TOKENIZER_BYTES = 1 } CmTokenizerKind;

/* Commands initialise it positionally ({config, base_model, cache_dir}): add new fields at the end. */
typedef struct {
    const char *config;      /* model name or JSON config for a plain weights file; NULL: from the
                                file. Ignored for a clipmod checkpoint (its own config). */
    const char *base_model;  /* --base-model: where a LoRA checkpoint's base is; NULL: search */
    const char *cache_dir;   /* --cache-dir: HF hub cache; NULL: $HF_HUB_CACHE, $HF_HOME/hub, ... */
} CmOpenOptions;

#define CM_CKPT_MAX_RNG 4

/* A clipmod checkpoint's metadata (the layout is documented in train/checkpoint.h). */
typedef struct {
    int64_t epoch;               /* completed epochs */
    int64_t step;                /* optimizer steps done */
    int64_t epoch_step;          /* optimizer steps done in epoch `epoch` (not yet complete): 0 for the
                                    end-of-epoch checkpoints, > 0 for one written on SIGINT/SIGTERM */
    char name[256];              /* run name */
    char base_model[1024];       /* base weights file ("" when trained from scratch / all tensors) */
    char base_sha256[65];
    int64_t base_size;           /* bytes of the base file when saved; -1 unknown */
    int64_t base_mtime;          /* its mtime (seconds) when saved; -1 unknown */
    char base_pretrained[128];   /* --pretrained tag the base came from ("" for a path) */
    char base_arch[64];          /* --model the base was resolved for (the HF cache lookup) */
    CmTrainMode mode;
    bool lock_image, lock_text, trainable_only;
    int n_rng;
    char rng_name[CM_CKPT_MAX_RNG][32];
    CmRng rng[CM_CKPT_MAX_RNG];
    char tokenizer[16];          /* "bpe" (OpenCLIP's; also when empty) or "bytes" (the demo's) */
    int world;                   /* data-parallel ranks that trained it (1: one process; 0: unknown, older) */
    const char *args_json;       /* save: options JSON (may be NULL); load: not filled */
} CmCkptMeta;

/* What cm_model_open found. */
typedef struct {
    CmTokenizerKind tokenizer;
    bool is_checkpoint;          /* a clipmod training checkpoint (meta filled) */
    CmCkptMeta meta;             /* zeroed unless is_checkpoint */
    char weights[4096];          /* the file the tensors came from (path, or the folder's file) */
    char base_model[4096];       /* the base used for a trainable-only checkpoint, else "" */
    char config_source[4096];    /* "checkpoint", "option", or cm_config_discover's source: "metadata",
                                    the side file's path (open_clip_config.json / config.json), "shapes" */
} CmModelInfo;

/* Open path as above. opts and info may be NULL. Errors name the file (and every base tried). */
cm_status cm_model_open(const char *path, const CmOpenOptions *opts, CmModel **out, CmModelInfo *info);

/* The checkpoint metadata of an open tensor file (path for messages); cfg (may be NULL) gets its
   model config. CM_ERR_FORMAT when f is not a clipmod checkpoint. */
cm_status cm_ckpt_meta_read(const struct CmTensorFile *f, const char *path, CmCkptMeta *meta, CmModelConfig *cfg);
/* Copy every model tensor of f into m by name (shapes checked; "optimizer.*" skipped); loaded[i]
   (may be NULL) is set for each parameter copied. */
cm_status cm_model_overlay(CmModel *m, const struct CmTensorFile *f, const char *path, bool *loaded);
const char *cm_train_mode_name(CmTrainMode m);
bool cm_train_mode_parse(const char *s, CmTrainMode *m);

#endif
