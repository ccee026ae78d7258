/*
 * export_open.h — the file names of a `clipmod export` folder and its reader (export_open.c).
 * defines: CM_EXPORT_WEIGHTS, CM_EXPORT_CONFIG, CM_EXPORT_HEAD, cm_export_is_dir, cm_export_open
 */
#ifndef CM_MODEL_EXPORT_OPEN_H
#define CM_MODEL_EXPORT_OPEN_H
#include <stdbool.h>
#include "common/common.h"
#include "model/model.h"
#include "model/open.h"

#define CM_EXPORT_WEIGHTS "open_clip_model.safetensors"
#define CM_EXPORT_CONFIG "open_clip_config.json"
#define CM_EXPORT_HEAD "classifier_head.safetensors"

/* True when path is a folder. */
bool cm_export_is_dir(const char *path);
/* Open an export folder: config from classifier_head.safetensors' "model_config", the CLIP tensors
   from open_clip_model.safetensors (all of them, nothing else), the head from
   classifier_head.safetensors (all of it, nothing else); without the head file, a plain OpenCLIP
   folder (config from open_clip_config.json, else shapes; LoRA/head only when the file holds
   them). info (may be NULL) gets the weights file, config source and tokenizer. */
cm_status cm_export_open(const char *dir, CmModel **out, CmModelInfo *info);

#endif
