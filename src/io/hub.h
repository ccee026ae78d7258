/*
 * hub.h — `--pretrained` resolution: a file path, or an OpenCLIP pretrained tag looked up in the
 * Hugging Face hub cache (models--<org>--<name>/{blobs,snapshots,refs}) and downloaded into it when
 * missing (libcurl; $HF_ENDPOINT honoured; progress, resume from blobs/<etag>.incomplete, size and
 * SHA-256 verification, atomic placement).
 * defines: CmPretrainedTag, CmHubOptions, cm_pretrained_*, cm_hub_*
 */
#ifndef CM_HUB_H
#define CM_HUB_H

#include <stdbool.h>
#include "common/common.h"

/* A known OpenCLIP pretrained tag (src/open_clip/pretrained.py). */
typedef struct {
    const char *model;        /* "ViT-B-32" */
    const char *tag;          /* "laion2b_s34b_b79k" */
    const char *repo;         /* "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" */
    bool quick_gelu;
} CmPretrainedTag;

/* The entry for (model, tag); model may be NULL (first entry with that tag). NULL when unknown. */
const CmPretrainedTag *cm_pretrained_lookup(const char *model, const char *tag);

/* The files OpenCLIP tries, in order (OpenCLIP v2.30 pretrained.py / factory.py): open_clip_model.safetensors, open_clip_pytorch_model.bin. */
#define CM_HF_SAFE_WEIGHTS_NAME "open_clip_model.safetensors"
#define CM_HF_WEIGHTS_NAME "open_clip_pytorch_model.bin"

typedef struct {
    const char *cache_dir;    /* NULL: $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub */
    bool allow_download;      /* also false when HF_HUB_OFFLINE=1 */
    const char *endpoint;     /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *revision;     /* NULL: "main" */
    int progress;             /* -1: auto (stderr; rate + ETA on a terminal, plain lines otherwise); 0 off; 1 on */
    int max_retries;          /* attempts in a row without progress before giving up; <= 0: 3 */
    long stall_timeout_s;     /* abort an attempt after this long below 1 byte/s; <= 0: 60 */
} CmHubOptions;

/* Defaults as above (allow_download = true unless HF_HUB_OFFLINE is set). */
CmHubOptions cm_hub_default_options(void);

/* The cache directory that options resolve to (malloc'd). */
char *cm_hub_cache_dir(const CmHubOptions *o);

/* Path of repo/file in the cache for revision (refs/<revision> -> snapshots/<commit>/file, else any
   snapshots/<dir>/file), or NULL (no error) when absent. malloc'd. */
char *cm_hub_cached_path(const char *cache_dir, const char *repo, const char *file, const char *revision);

/* Download repo/file into the cache (or find it there) and return its snapshot path (malloc'd). */
cm_status cm_hub_download(const char *repo, const char *file, const CmHubOptions *o, char **out_path);

/* --pretrained VALUE: an existing file is returned as is; a known tag for model_name (may be NULL)
   resolves to the cached open_clip_model.safetensors, then open_clip_pytorch_model.bin, downloading
   (in that order) when neither is cached and downloads are allowed. Errors name the tag, the repo,
   the cache dir and what was tried. *out_path is malloc'd. */
cm_status cm_pretrained_resolve(const char *model_name, const char *pretrained, const CmHubOptions *o,
                                char **out_path);

#endif
