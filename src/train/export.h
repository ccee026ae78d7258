/*
 * export.h — `clipmod export` (DESIGN §7, issue 11 item 3): a model folder OpenCLIP can load.
 *
 *   DIR/open_clip_model.safetensors   the CLIP tensors only, LoRA merged into attn.out_proj.weight
 *                                     (W + alpha/r B A), OpenCLIP state-dict names and order, F32,
 *                                     logit_scale shape [] (302 tensors for ViT-B-32): loads with
 *                                     open_clip.create_model_and_transforms(NAME, pretrained=FILE)
 *                                     under strict loading.
 *   DIR/open_clip_config.json         OpenCLIP's model-config JSON ({"embed_dim", "vision_cfg",
 *                                     "text_cfg", "quick_gelu"}, the layout of
 *                                     src/open_clip/model_configs/ViT-B-32.json), so that
 *                                     open_clip.add_model_config(DIR/open_clip_config.json) registers
 *                                     a non-standard config under the name "open_clip_config".
 *   DIR/classifier_head.safetensors   the classifier_head.* tensors (F32) and __metadata__:
 *                                     "clipmod_export" "1", "model_config" (clipmod's config JSON,
 *                                     LoRA disabled), "head_config" (JSON), "tokenizer" bpe|bytes,
 *                                     "class_names" (JSON array), "lora" (JSON: merged r/alpha or
 *                                     {"enabled": false}), "source" (the checkpoint exported).
 *   DIR/adapter_model.safetensors +   (--peft, LoRA models only) the unmerged adapters in PEFT
 *   DIR/adapter_config.json           naming: base_model.model.<block>.attn.out_proj.lora_A.weight.
 *   DIR/bpe_simple_vocab_16e6.txt.gz  (--vocab) a copy of the BPE vocabulary, which the tokenizer
 *   or DIR/merges.txt                 search finds next to the model: the folder is self-contained.
 * Each file is written atomically into a temporary sibling folder first, then moved into DIR.
 * defines: CmExportOpts, cm_export_write, cm_export_open, cm_export_is_dir, CM_EXPORT_*
 */
#ifndef CM_TRAIN_EXPORT_H
#define CM_TRAIN_EXPORT_H

#include <stdbool.h>
#include "common/common.h"
#include "model/model.h"
#include "train/checkpoint.h"

#define CM_EXPORT_WEIGHTS "open_clip_model.safetensors"
#define CM_EXPORT_CONFIG "open_clip_config.json"
#define CM_EXPORT_HEAD "classifier_head.safetensors"
#define CM_EXPORT_PEFT "adapter_model.safetensors"
#define CM_EXPORT_PEFT_CONFIG "adapter_config.json"
#define CM_EXPORT_VOCAB_GZ "bpe_simple_vocab_16e6.txt.gz"
#define CM_EXPORT_VOCAB_TXT "merges.txt"

typedef struct {
    bool overwrite;          /* DIR may exist and hold files (ours are replaced, others kept) */
    bool peft;               /* also write the unmerged LoRA in PEFT naming (needs LoRA) */
    const char *tokenizer;   /* "bpe" (default when NULL/"") or "bytes" */
    const char *source;      /* recorded as "source" (may be NULL) */
    const char *vocab;       /* BPE vocabulary file to copy into dir (checked by loading it), as
                                bpe_simple_vocab_16e6.txt.gz (a .gz file) or merges.txt; NULL: none */
} CmExportOpts;

/* Write the export of m (LoRA, when present, merged into a copy; m is not changed) into dir; a
   model without a head gives no classifier_head.safetensors (a plain OpenCLIP folder). A dir that exists and is not empty is refused (CM_ERR_ARG) unless o->overwrite. */
cm_status cm_export_write(const CmModel *m, const char *dir, const CmExportOpts *o);

/* True when path is a folder (an export to open with cm_export_open). */
bool cm_export_is_dir(const char *path);

/* Open an export folder: config from classifier_head.safetensors' "model_config", the CLIP tensors
   from open_clip_model.safetensors (all of them, nothing else), the head from
   classifier_head.safetensors (all of it, nothing else). meta (may be NULL) gets the tokenizer
   kind and base_model = the weights file; mode CM_TRAIN_NONE. */
cm_status cm_export_open(const char *dir, CmModel **out, CmCkptMeta *meta);

#endif
