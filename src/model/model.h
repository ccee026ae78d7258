/*
 * model.h — the OpenCLIP-exact model core (DESIGN §1, §2): configs, the parameter table with
 * OpenCLIP state-dict names, the vision and text towers, LoRA on attn.out_proj, the per-sample
 * classification head, the losses, forward and backward in three training modes.
 *
 * Ownership and threads
 *   - CmModel holds the parameters (float32, one arena) and, for trainable tensors only, their
 *     gradients. Forward never writes to the model: a model may be shared read-only by threads,
 *     each with its own CmActs (or none, for inference).
 *   - CmActs holds everything a forward keeps for backward (allocated for a maximum batch), the
 *     dropout RNG and scratch. Without --grad-checkpointing it keeps every block's activations;
 *     with it, only each block's input, and backward recomputes the block.
 *
 * Data layout: images [B,3,H,W] float32 (already normalised), tokens [B,ctx] int32, features
 * [B,E], head logits [B,n_classes]. Weights use torch layouts (Linear W[out,in]).
 *
 * Split of forward / loss / backward (for OpenCLIP's --accum-freq feature cache):
 *   cm_model_forward   -> U, V (L2-normalised), head logits         (acts may be NULL: no grad)
 *   cm_loss            -> loss values and dU, dV, dhead, d logit_scale over N rows (pure)
 *   cm_model_backward  -> accumulates (+=) into the grads of trainable tensors
 *
 * defines: CmModelConfig, CmParam, CmTensorRef, CmBlockParams, CmTowerParams, CmHeadLayerParams,
 *          CmHeadParams, CmModel, CmActs, CmTrainMode, cm_config_*, cm_model_*, cm_acts_*, cm_loss*,
 *          cm_param_*, cm_formula_*, cm_ref_trainable, cm_refs_trainable
 */
#ifndef CM_MODEL_H
#define CM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"
#include "common/rng.h"

struct CmTensorFile;

// ---------------------------------------------------------------------------------------------
// configuration

typedef struct {
    int image_size;      /* 224 */
    int patch_size;      /* 32 */
    int width;           /* 768 */
    int layers;          /* 12 */
    int head_width;      /* 64 (heads = width / head_width) */
    int heads;           /* derived: width / head_width */
    float mlp_ratio;     /* 4.0 */
} CmVisionConfig;

typedef struct {
    int context_length;  /* 77 */
    int vocab_size;      /* 49408 */
    int width;           /* 512 */
    int heads;           /* 8 */
    int layers;          /* 12 */
    float mlp_ratio;     /* 4.0 */
} CmTextConfig;

typedef struct {
    int d;               /* = embed_dim */
    int heads;           /* 4 */
    int ff;              /* 4*d */
    int layers;          /* 2 */
    int n_classes;       /* 7 */
    float dropout;       /* 0.1: attention weights, after attention, after ReLU, after FF */
    float cls_dropout;   /* 0.2: classifier.2 Dropout */
} CmHeadConfig;

typedef struct {
    char name[64];       /* "ViT-B-32", or the JSON's model_name / file name */
    int embed_dim;       /* 512 */
    bool quick_gelu;     /* x*sigmoid(1.702x) instead of exact erf GELU in both towers */
    CmVisionConfig vision;
    CmTextConfig text;
    bool has_lora;       /* LoRA tensors exist (--enable-lora) */
    int lora_rank;       /* 4 */
    float lora_alpha;    /* 32 (scaling = alpha / rank) */
    bool has_head;       /* classifier_head.* tensors exist */
    CmHeadConfig head;
} CmModelConfig;

/* Named OpenCLIP configs: ViT-B-32, ViT-B-16, ViT-L-14 and their "-quickgelu" forms.
   Defaults: has_lora true (r 4, alpha 32), has_head true (d = embed_dim, 4 heads, ff 4d, 2
   layers, 7 classes, dropout 0.1 / 0.2). Unknown name: CM_ERR_ARG naming it and the known ones. */
cm_status cm_config_from_name(const char *name, CmModelConfig *cfg);
/* An OpenCLIP model-config JSON ({"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"}) or the
   open_clip_config.json / golden layout ({"model_cfg": {...}, "lora": {"r","alpha"},
   "head": {"d","heads","ff","layers","classes","dropout_design","classifier_dropout_design"}}).
   Fields OpenCLIP defaults are filled as its dataclasses do; non-ViT towers (timm, HF text,
   ResNet layer lists) and non-default structural options are refused as CM_ERR_UNSUPPORTED. */
cm_status cm_config_from_json(const char *json, size_t len, const char *what, CmModelConfig *cfg);
cm_status cm_config_from_json_file(const char *path, CmModelConfig *cfg);
/* Name ("ViT-B-32") or path to a .json file. */
cm_status cm_config_load(const char *name_or_path, CmModelConfig *cfg);
/* Checks sizes for sanity (positive, divisible, not absurd); names the bad field. */
cm_status cm_config_validate(const CmModelConfig *cfg);

// ---------------------------------------------------------------------------------------------
// parameter table

typedef enum { CM_GROUP_VISION = 0, CM_GROUP_TEXT, CM_GROUP_LOGIT_SCALE, CM_GROUP_LORA, CM_GROUP_HEAD } CmParamGroup;

typedef struct {
    char name[96];       /* OpenCLIP state-dict name */
    int ndim;            /* 0 for logit_scale */
    int64_t shape[4];
    size_t numel;
    CmParamGroup group;
    bool decay;          /* ndim >= 2 and the name contains none of bn, ln, bias, logit_scale */
    /* filled by cm_model_create / cm_model_set_mode: */
    float *data;
    float *grad;         /* NULL unless trainable */
    bool trainable;
} CmParam;

/* The parameter table of a config (no data), in OpenCLIP state-dict order: the CLIP tensors, with
   a block's lora_A/lora_B right after its attn.out_proj.bias, then classifier_head.*.
   *out is cm_malloc'd (cm_free). 302 CLIP tensors for ViT-B-32. */
cm_status cm_param_table(const CmModelConfig *cfg, CmParam **out, int *n);

typedef struct {
    int64_t vision, text, logit_scale, clip_total, head, lora, trainable_lora, trainable_baseline;
    int n_clip_tensors, n_lora_tensors, n_head_tensors;
} CmParamCounts;
/* DESIGN §1.4 counts (lora counted for cfg->lora_rank even when has_lora is false). */
void cm_param_counts(const CmModelConfig *cfg, CmParamCounts *c);

// ---------------------------------------------------------------------------------------------
// model

typedef enum {
    CM_TRAIN_NONE = 0,   /* inference: nothing trainable, no grads */
    CM_TRAIN_LORA,       /* LoRA + head (logit_scale frozen) */
    CM_TRAIN_FULL,       /* everything incl. logit_scale (and LoRA/head when present) */
    CM_TRAIN_HEAD        /* frozen towers: head only */
} CmTrainMode;

/* Parameters as the model code uses them (built by cm_model_create from the table's names; the
   gradient pointers follow cm_model_set_mode). The table (CmModel.params, OpenCLIP names, state-dict
   order) stays the one list that checkpoints, export, loading and the optimizer iterate over; these
   structs only name its entries. A tensor absent from the config (LoRA or head off, a stem tensor
   of the other tower) has idx -1 and NULL pointers. */
typedef struct {
    float *data;         /* the tensor's values (CmParam.data), NULL when absent */
    float *grad;         /* its gradient: non-NULL exactly when trainable (CmParam.grad) */
    int idx;             /* index in CmModel.params, -1 when absent */
} CmTensorRef;
static inline bool cm_ref_trainable(CmTensorRef r) { return r.grad != NULL; }
/* true when any of r[0..n) is trainable */
static inline bool cm_refs_trainable(const CmTensorRef *r, int n) {
    for (int i = 0; i < n; i++) if (r[i].grad) return true;
    return false;
}

/* One residual block of a tower: <prefix>transformer.resblocks.<l>.{ln_1, attn.in_proj_*,
   attn.out_proj, attn.out_proj.lora_A/B, ln_2, mlp.c_fc, mlp.c_proj}. all[] views the same
   refs in field order (loops: "any trainable", syncing the gradient pointers). */
#define CM_BLOCK_NREFS 14
typedef union {
    struct {
        CmTensorRef ln1_w, ln1_b, in_w, in_b, out_w, out_b, lora_A, lora_B, ln2_w, ln2_b, fc_w, fc_b, proj_w, proj_b;
    };
    CmTensorRef all[CM_BLOCK_NREFS];
} CmBlockParams;

/* A tower. Vision: visual.{class_embedding, positional_embedding, conv1.weight, ln_pre.*},
   blocks, visual.ln_post.*, visual.proj. Text: token_embedding.weight, positional_embedding,
   blocks, ln_final.*, text_projection. The other tower's stem refs are absent. */
#define CM_STEM_NREFS 6
#define CM_TOP_NREFS 3
typedef struct {
    union {
        struct { CmTensorRef class_emb, pos, conv, ln_pre_w, ln_pre_b, tok; };
        CmTensorRef stem[CM_STEM_NREFS];
    };
    int n_blocks;
    CmBlockParams *blocks;   /* [n_blocks] */
    union {
        struct { CmTensorRef ln_post_w, ln_post_b, proj; };   /* ln_post / ln_final, visual.proj / text_projection */
        CmTensorRef top[CM_TOP_NREFS];
    };
} CmTowerParams;

/* One head layer: classifier_head.transformer.layers.<l>.{self_attn.in_proj_*,
   self_attn.out_proj, linear1, linear2, norm1, norm2}. */
#define CM_HEAD_LAYER_NREFS 12
typedef union {
    struct { CmTensorRef in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b, n1_w, n1_b, n2_w, n2_b; };
    CmTensorRef all[CM_HEAD_LAYER_NREFS];
} CmHeadLayerParams;
/* The classification head: layers (n_layers 0 without a head), classifier.0 and classifier.3. */
#define CM_HEAD_CLS_NREFS 4
typedef struct {
    int n_layers;
    CmHeadLayerParams *layers;   /* [n_layers] */
    union {
        struct { CmTensorRef c0_w, c0_b, c3_w, c3_b; };
        CmTensorRef cls[CM_HEAD_CLS_NREFS];
    };
} CmHeadParams;

struct CmBackend;
typedef struct CmModel {
    CmModelConfig cfg;
    const struct CmBackend *be;   /* the compute backend every op goes through (cm_backend_cpu() by default) */
    CmParam *params;     /* n_params entries, state-dict order */
    int n_params;
    float *arena;        /* all parameter data */
    float *grad_arena;   /* grads of the trainable tensors (NULL when none) */
    size_t n_floats, n_grad_floats;
    CmTrainMode mode;
    bool lock_image, lock_text;
    bool amp_bf16;       /* --precision amp/amp_bf16 on CPU: bf16 products in the tower linears */
    bool text_padded;    /* text tower on [B, longest caption] padded rows instead of packed captions */
    struct CmInt8Weights *q8;   /* [n_params] int8 copies of the tower linears (cm_model_set_int8), or NULL */
    /* the parameters by name (refs into params[]) */
    CmTensorRef logit_scale;
    CmTowerParams visual, text;
    CmHeadParams head;
} CmModel;

/* Allocate the parameters of cfg (all zero; logit_scale = ln(1/0.07)). Mode CM_TRAIN_NONE. */
cm_status cm_model_create(const CmModelConfig *cfg, CmModel **out);
void cm_model_free(CmModel *m);
/* Index of the tensor called name, or -1. */
int cm_model_find(const CmModel *m, const char *name);

/* Initialise from scratch (OpenCLIP v2.30 model.py / transformer.py: OpenCLIP/torch default inits; LoRA A kaiming-uniform,
   B = 0; head torch defaults, layers independent), deterministic for a seed. */
void cm_model_init(CmModel *m, uint64_t seed);
/* Initialise only the LoRA and head tensors (for a CLIP-only weights file). */
void cm_model_init_lora_head(CmModel *m, uint64_t seed);
/* The golden/full/WEIGHTS.md formula, bit for bit (any tensor; CLIP tensors as specified). */
void cm_model_init_formula(CmModel *m, uint64_t seed);
void cm_formula_fill(const char *name, int ndim, const int64_t *shape, uint64_t seed, float *out);

/* Set which tensors are trainable and (re)allocate their gradients (zeroed).
   lock_image / lock_text freeze a tower (OpenCLIP --lock-image / --lock-text). */
cm_status cm_model_set_mode(CmModel *m, CmTrainMode mode, bool lock_image, bool lock_text);
void cm_model_zero_grad(CmModel *m);
/* --precision amp / amp_bf16 on CPU (DESIGN §3): the towers' linear layers (patch embedding,
   in_proj, out_proj, c_fc, c_proj; forward and backward) use bf16 products with fp32
   accumulation; weights, LayerNorm, softmax, attention, LoRA, head, losses stay fp32. Set it
   before sharing the model between threads. */
static inline void cm_model_set_amp(CmModel *m, bool bf16) { m->amp_bf16 = bf16; }
/* Text batches run packed by default: every caption only up to its own EOT (the sum of the
   lengths, not B x the longest), the same numbers as the padded computation up to fp32 rounding.
   padded = true restores [B, longest] rows (benchmarks and tests compare the two). Read at every
   forward, so activations (CmActs) and inference sessions created before the call follow it. */
static inline void cm_model_set_text_padding(CmModel *m, bool padded) { m->text_padded = padded; }
int64_t cm_model_trainable_count(const CmModel *m);
/* --precision int8 (inference only): quantise the towers' linear weights (patch embedding,
   in_proj, out_proj, c_fc, c_proj) per output channel; every inference forward (cm_encode_*,
   cm_model_forward without activations) then runs those products in int8 with per-row dynamic
   activation scales and fp32 outlier columns (src/kernels/linear_int8.c). LoRA, the final
   projections, the head, LayerNorm, softmax and GELU stay fp32; merge LoRA first
   (cm_model_merge_lora) so that it is quantised with the weights. Training forwards ignore it.
   on = false frees the copies. Set it before sharing the model between threads. */
cm_status cm_model_set_int8(CmModel *m, bool on);

/* A copy of m without LoRA tensors whose attn.out_proj.weight = W + (alpha/r) B A (DESIGN §1.2
   merge/export for inference). *out has mode CM_TRAIN_NONE. */
cm_status cm_model_merge_lora(const CmModel *m, CmModel **out);

/* Loading (src/model/load.c). Strict: every tensor of the file must be in the table with the same
   shape, and every table tensor must be in the file, else CM_ERR_SHAPE naming every missing /
   unexpected / mis-shaped tensor (the first few by name, then a count).
   CM_LOAD_CLIP_ONLY_OK: the file may lack all LoRA and/or all head tensors (a plain OpenCLIP
   file); those are then initialised with init_seed (LoRA B = 0 so the towers equal plain CLIP).
   CM_LOAD_PARTIAL_OK: any subset (e.g. a LoRA checkpoint holding only trainable tensors);
   unexpected and mis-shaped tensors are still errors. */
enum { CM_LOAD_STRICT = 0, CM_LOAD_CLIP_ONLY_OK = 1, CM_LOAD_PARTIAL_OK = 2 };
cm_status cm_model_load(CmModel *m, const struct CmTensorFile *f, unsigned flags, uint64_t init_seed);
cm_status cm_model_load_file(CmModel *m, const char *path, unsigned flags, uint64_t init_seed);
/* Build a model from a weights file: the config from cfg, or (cfg == NULL) found by
   cm_config_discover. Tensors named "optimizer.*" are never model tensors and are ignored by
   loading. */
cm_status cm_model_from_file(const char *path, const CmModelConfig *cfg, unsigned flags,
                             uint64_t init_seed, CmModel **out);
/* The config of a weights file opened without a name, in this order: (1) its "model_config"
   metadata (clipmod checkpoints, cm_model_save); (2) open_clip_config.json next to it, or a
   config.json there in the same layout ("model_cfg"), which must fit every tensor shape (else
   CM_ERR_ARG naming both files); (3) the tensor shapes, only when they are exactly those of a
   built-in config (ViT-B-32, ViT-B-16, ViT-L-14; GELU, logged): the number of heads is not in
   the weights, so any other shape is refused (CM_ERR_ARG asking for --model-name). LoRA / head
   presence from the tensors. source (may be NULL): "metadata", the side file's path, or "shapes". */
cm_status cm_config_discover(const struct CmTensorFile *f, CmModelConfig *cfg, char *source, size_t source_len);
cm_status cm_config_from_tensorfile(const struct CmTensorFile *f, CmModelConfig *cfg);
/* Save as safetensors (OpenCLIP names, state-dict order). trainable_only: only trainable tensors.
   metadata: (key, value) pairs for __metadata__; "model_config" (the config JSON) is added
   unless given. */
cm_status cm_model_save(const CmModel *m, const char *path, bool trainable_only,
                        const char *const *metadata, int n_meta);
/* The config as JSON (model_name, model_cfg, lora, head incl. "enabled"); cm_malloc'd, NULL (with
   the error set) when out of memory. Read back by cm_config_from_tensorfile from "model_config". */
char *cm_config_to_json(const CmModelConfig *cfg);
/* The model's tensors as a safetensors write list (OpenCLIP names, state-dict order, F32, data
   pointing into the model): fills ts[0..n) (ts has room for m->n_params) and returns n. */
struct CmTensorOut;
int cm_model_tensor_list(const CmModel *m, bool trainable_only, struct CmTensorOut *ts);

/* What a weights file holds, for `clipmod info --model` (against cfg's table). */
typedef struct {
    int n_tensors;
    int64_t n_params;
    char dtype[16];              /* "F32", "F16", ... or "mixed" */
    int n_clip, n_lora, n_head, n_other;
    bool matches;                /* loads into cfg (LoRA and head may be absent) */
} CmInfoFile;
cm_status cm_info_file(const char *path, const CmModelConfig *cfg, CmInfoFile *out);

// ---------------------------------------------------------------------------------------------
// forward / backward

typedef struct CmActs CmActs;

/* Activations for batches up to max_B. grad_ckpt: keep only block inputs. The set of saved
   activations follows the model's mode at forward time (nothing for frozen towers). */
cm_status cm_acts_create(const CmModel *m, int max_B, bool grad_ckpt, CmActs **out);
void cm_acts_free(CmActs *a);
/* Head dropout in training (counter-based, kernels/ops.h cm_dropout_forward): the seed (--seed). */
void cm_acts_seed(CmActs *a, uint64_t seed);
/* The optimizer step and the index, in the whole step's global batch, of this forward's first
   sample: dropout masks are drawn per (seed, step, global sample index), so micro-batches,
   ranks and devices draw what one big batch would, and a resumed run draws the same masks. */
void cm_acts_set_step(CmActs *a, uint64_t step, int64_t sample_base);

/* Full forward. images [B,3,S,S], tokens [B,ctx] int32 (ids < vocab_size, else CM_ERR_ARG).
   U, V [B,E] L2-normalised features; head_logits [B,n_classes] (NULL to skip the head; needs
   has_head). acts == NULL: inference (no grad). train: head dropout on (needs acts for the RNG).
   U_raw / V_raw (optional, may be NULL): the unnormalised projections. */
cm_status cm_model_forward(const CmModel *m, CmActs *a, const float *images, const int32_t *tokens,
                           int B, bool train, float *U, float *V, float *head_logits);
/* The raw (unnormalised) features of the last forward that used acts. */
const float *cm_acts_image_raw(const CmActs *a);
const float *cm_acts_text_raw(const CmActs *a);

/* Backward of the last cm_model_forward with acts: dU, dV [B,E] (may be NULL = 0), dhead
   [B,n_classes] (may be NULL). Accumulates into the grads of trainable tensors; frozen tensors get
   no weight-gradient work and backprop stops below the lowest trainable layer. */
cm_status cm_model_backward(CmModel *m, CmActs *a, const float *dU, const float *dV, const float *dhead);

/* Inference helpers (thread-safe on a shared model; scratch allocated per call).
   feat_raw / feat_norm [B,E], either may be NULL. */
cm_status cm_encode_image(const CmModel *m, const float *images, int B, float *feat_raw, float *feat_norm);
cm_status cm_encode_text(const CmModel *m, const int32_t *tokens, int B, float *feat_raw, float *feat_norm);
/* Head only, eval mode: U, V [B,E] normalised -> logits [B,n_classes]. */
cm_status cm_head_forward(const CmModel *m, const float *U, const float *V, int B, float *logits);

// ---------------------------------------------------------------------------------------------
// losses (DESIGN §2): pure functions over N rows

typedef struct { float loss, loss_con, loss_cls; } CmLossValues;
/* s = exp(logit_scale). labels [N] in 0..K-1 (else CM_ERR_ARG). Gradients (any may be NULL):
   dU, dV [N,E], dhead [N,K] are WRITTEN (=, not accumulated) for d(loss)/d(input);
   d_logit_scale gets d loss / d logit_scale (= s * dL/ds, summed in double as sum U.dU when
   dU or dV is asked for: ~1e-7 relative). head_logits may be NULL (w_cls term
   skipped). */
cm_status cm_loss(const float *U, const float *V, const float *head_logits, const int32_t *labels,
                  int N, int E, int K, float logit_scale, float w_con, float w_cls,
                  CmLossValues *out, float *dU, float *dV, float *dhead, float *d_logit_scale);

#endif
