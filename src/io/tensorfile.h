/*
 * tensorfile.h — reading and writing named tensors: safetensors (read by mmap) and PyTorch zip
 * checkpoints (torch.save: open_clip_pytorch_model.bin, OpenCLIP epoch_N.pt) read without Python
 * through a restricted unpickler that only builds tensors and never executes anything.
 *
 * Reading gives views: name, dtype, shape and a pointer to the little-endian bytes (valid until the
 * file is closed). Model code converts to float32 with cm_tensor_to_f32 and checks shapes itself
 * (strict loading lives in src/model, which knows the expected names).
 * defines: CmDType, CmTensorView, CmTensorFile, cm_tensorfile_*, cm_tensor_to_f32, cm_safetensors_write
 */
#ifndef CM_TENSORFILE_H
#define CM_TENSORFILE_H

#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

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
void cm_tensorfile_close(CmTensorFile *f);
int cm_tensorfile_count(const CmTensorFile *f);
const CmTensorView *cm_tensorfile_at(const CmTensorFile *f, int i);      /* in file order */
const CmTensorView *cm_tensorfile_find(const CmTensorFile *f, const char *name);
/* safetensors __metadata__ value (string) for key, or NULL. */
const char *cm_tensorfile_metadata(const CmTensorFile *f, const char *key);
const char *cm_tensorfile_path(const CmTensorFile *f);

size_t cm_dtype_size(CmDType t);
const char *cm_dtype_name(CmDType t);   /* safetensors spelling: "F32", "F16", "BF16", ... */
/* Convert a floating tensor (F32/F16/BF16/F64) to float32; dst has t->numel elements. */
cm_status cm_tensor_to_f32(const CmTensorView *t, float *dst);

/* Write a safetensors file atomically, tensors in the given order, offsets contiguous.
   metadata: NULL or an array of n_meta (key, value) string pairs for "__metadata__". */
typedef struct {
    const char *name;
    CmDType dtype;
    int ndim;
    int64_t shape[CM_MAX_DIMS];
    const void *data;
} CmTensorOut;
cm_status cm_safetensors_write(const char *path, const CmTensorOut *ts, int n,
                               const char *const *metadata, int n_meta);

#endif
