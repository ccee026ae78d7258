/*
 * setup.h — building the model a training run starts from, from OpenCLIP's flags:
 *   --model NAME|FILE.json (+ --force-quick-gelu), --enable-lora / --lora-rank / --lora-alpha,
 *   --pretrained '' (random init from --seed, OpenCLIP's default inits) | FILE | TAG (with
 *   --cache-dir: the Hugging Face cache layout of DESIGN §6), --lock-image / --lock-text.
 * The weights file may be a plain OpenCLIP file (CLIP tensors only: LoRA B = 0 and the head are
 * initialised from --seed) or a clipmod export with LoRA/head tensors; loading is strict.
 * Mode: --enable-lora -> LoRA + head trainable (logit_scale frozen, as the seed); else all.
 * defines: cm_train_build_model, cm_resolve_pretrained
 */
#ifndef CM_TRAIN_SETUP_H
#define CM_TRAIN_SETUP_H

#include <stdbool.h>
#include "model/model.h"
#include "train/train_config.h"

/* Resolve --pretrained with src/io/hub.h: an existing file is itself; a tag is looked up in the
   Hugging Face cache (--cache-dir, else $HF_HUB_CACHE / $HF_HOME/hub / ~/.cache/huggingface/hub)
   and downloaded there when missing unless offline (--offline or HF_HUB_OFFLINE=1).
   *out cm_malloc'd. */
cm_status cm_resolve_pretrained(const char *model, const char *pretrained, const char *cache_dir, bool offline, char **out);

/* Build, load/initialise and set the training mode. *base_path: the weights file (cm_malloc'd)
   or NULL when initialised from scratch. */
cm_status cm_train_build_model(const CmTrainConfig *o, CmModel **out, char **base_path);

#endif
