/*
 * tensorfile.h — reading and writing named tensors: safetensors (read by mmap) and PyTorch zip
 * checkpoints (torch.save: open_clip_pytorch_model.bin, OpenCLIP epoch_N.pt) read without Python
 * through a restricted unpickler that only builds tensors and never executes anything.
 *
 * Reading gives views: name, dtype, shape and a pointer to the little-endian bytes (valid until the
 * file is closed). Model code converts to float32 with cm_tensor_to_f32 and checks shapes itself
 * (strict loading lives in src/model, which knows the expected names).
 * defines: CmDType, CmTensorView, CmTensorFile, cm_tensorfile_*, cm_tensor_to_f32, cm_safetensors_write,
 *          CmCheckpointInfo (OpenCLIP epoch_N.pt extras: epoch, name, AdamW state), f16/bf16 helpers
 *
 * Implementation: tensorfile.c (common part, dtype conversion), safetensors.c (reader + writer),
 * zipread.c (a small zip reader over the mmap), pickle.c (restricted unpickler), hub.c/hub.h (Hugging
 * Face cache resolution and download).
 */
#ifndef CM_TENSORFILE_H
#define CM_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>
#include "common/common.h"
#include "common/bf16.h"

typedef enum { CM_F32, CM_F16, CM_BF16, CM_F64, CM_I64, CM_I32, CM_I16, CM_I8, CM_U8, CM_BOOL } CmDType;
#define CM_MAX_DIMS 8

typedef struct {
    const char *name;          /* e.g. "visual.transformer.resblocks.0.attn.in_proj_weight" */
    CmDType dtype;
    int ndim;                  /* 0 for a scalar (shape []) */
    int64_t shape[CM_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;          /* little-endian, C order, contiguous */
} CmTensorView;

typedef struct CmTensorFile CmTensorFile;

/* Open by content (not by name): safetensors, or a torch zip checkpoint (state dict at top level,
   or under "state_dict"; a "module." prefix on every key is stripped). */
cm_status cm_tensorfile_open(const char *path, CmTensorFile **out);
/* The same over bytes in memory (name stands for the file in errors). The bytes are borrowed:
   they must stay unchanged until cm_tensorfile_close. Used by the fuzz targets, so that a read past
   the end is caught by ASan instead of landing in the rest of an mmap'd page. */
cm_status cm_tensorfile_open_memory(const void *bytes, size_t len, const char *name, CmTensorFile **out);
void cm_tensorfile_close(CmTensorFile *f);
int cm_tensorfile_count(const CmTensorFile *f);
const CmTensorView *cm_tensorfile_at(const CmTensorFile *f, int i);      /* in file order */
const CmTensorView *cm_tensorfile_find(const CmTensorFile *f, const char *name);
/* safetensors __metadata__ value (string) for key, or NULL. */
const char *cm_tensorfile_metadata(const CmTensorFile *f, const char *key);
const char *cm_tensorfile_path(const CmTensorFile *f);

/* Tensor views of an OpenCLIP training checkpoint (epoch_N.pt) beyond the state dict: the
   torch.optim AdamW state_dict(). Present only when the file is a torch zip whose top level is a
   dict with a "state_dict" key. Views stay valid until the file is closed. */
typedef struct {
    int64_t index;                 /* key in optimizer["state"] (= position in the param groups) */
    bool has_step;
    double step;                   /* "step": a 0-dim tensor (torch >= 1.12) or a number */
    const CmTensorView *exp_avg;   /* NULL when absent; name "optimizer.state.<i>.exp_avg" */
    const CmTensorView *exp_avg_sq;
    const CmTensorView *max_exp_avg_sq;   /* amsgrad only, else NULL */
} CmOptState;
typedef struct {
    double lr, weight_decay, beta1, beta2, eps;
    bool amsgrad, maximize;
    double initial_lr;             /* NaN when the key is absent */
    int n_params;
    const int64_t *params;         /* indices into the optimizer state */
} CmOptParamGroup;
typedef struct {
    bool has_epoch;
    int64_t epoch;                 /* "epoch" */
    const char *name;              /* "name" or NULL */
    bool has_optimizer;
    int n_state;
    const CmOptState *state;       /* sorted by index */
    int n_groups;
    const CmOptParamGroup *groups;
} CmCheckpointInfo;
/* NULL when the file is not such a checkpoint (safetensors, a bare state dict). */
const CmCheckpointInfo *cm_tensorfile_checkpoint(const CmTensorFile *f);
/* The optimizer state entry for index, or NULL. */
const CmOptState *cm_checkpoint_state(const CmCheckpointInfo *ck, int64_t index);

size_t cm_dtype_size(CmDType t);
const char *cm_dtype_name(CmDType t);   /* safetensors spelling: "F32", "F16", "BF16", ... */
/* Convert a floating tensor (F32/F16/BF16/F64) to float32; dst has t->numel elements. */
cm_status cm_tensor_to_f32(const CmTensorView *t, float *dst);
/* Convert an integer or bool tensor to int64 (exact); dst has t->numel elements. */
cm_status cm_tensor_to_i64(const CmTensorView *t, int64_t *dst);
/* Exact scalar conversions: f16 -> f32 exact; f32 -> f16 round to nearest even (as torch's
   .half(); NaN stays NaN, overflow gives inf). bf16: common/bf16.h (cm_bf16_to_f32 /
   cm_bf16_from_f32, the library's one conversion). */
float cm_f16_to_f32(uint16_t h);
uint16_t cm_f32_to_f16(float f);
/* Parse a safetensors dtype name ("F32", ...); false when unknown. */
bool cm_dtype_parse(const char *s, CmDType *out);

/* Write a safetensors file atomically, tensors in the given order, offsets contiguous.
   metadata: NULL or an array of n_meta (key, value) string pairs for "__metadata__". */
typedef struct CmTensorOut {
    const char *name;
    CmDType dtype;
    int ndim;
    int64_t shape[CM_MAX_DIMS];
    const void *data;
} CmTensorOut;
cm_status cm_safetensors_write(const char *path, const CmTensorOut *ts, int n,
                               const char *const *metadata, int n_meta);

#endif
