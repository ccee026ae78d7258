/*
 * fuzz_safetensors.c — libFuzzer target: a safetensors file (the input) through
 * cm_tensorfile_open_memory (the same parser cm_tensorfile_open runs over its mmap), then every
 * accessor a loader uses: views converted to float/int64, lookups by name, __metadata__, the model
 * config from the file (metadata JSON or guessed from shapes) and, when the file says it is a clipmod
 * checkpoint, cm_checkpoint_read_meta (rng / model_config / counts metadata).
 * Seeds: tests/fuzz/corpus/safetensors/ (tests/fuzz/make_corpus.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "io/tensorfile.h"
#include "model/model.h"
#include "train/checkpoint.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    CmTensorFile *f;
    if (FZ(cm_tensorfile_open_memory(data, size, "fuzz.safetensors", &f)) != CM_OK) return 0;
    int n = cm_tensorfile_count(f);
    for (int i = 0; i < n; i++) {
        const CmTensorView *v = cm_tensorfile_at(f, i);
        if (cm_tensorfile_find(f, v->name) != v) abort();             /* names are unique */
        if (v->nbytes != v->numel * cm_dtype_size(v->dtype)) abort();
        if (v->nbytes && ((const uint8_t *)v->data < data || (const uint8_t *)v->data + v->nbytes > data + size))
            abort();                                                   /* a view outside the file */
        if (v->numel > ((size_t)1 << 24)) continue;
        if (v->dtype == CM_F32 || v->dtype == CM_F16 || v->dtype == CM_BF16 || v->dtype == CM_F64) {
            float *x = malloc((v->numel ? v->numel : 1) * sizeof *x);
            if (x && cm_tensor_to_f32(v, x) != CM_OK) abort();
            free(x);
        } else {
            int64_t *x = malloc((v->numel ? v->numel : 1) * sizeof *x);
            if (x && cm_tensor_to_i64(v, x) != CM_OK) abort();
            free(x);
        }
    }
    (void)cm_tensorfile_metadata(f, "format");
    CmModelConfig cfg;
    if (FZ(cm_config_from_tensorfile(f, &cfg)) == CM_OK) (void)cm_config_validate(&cfg);
    bool is_ckpt = cm_tensorfile_metadata(f, "clipmod_checkpoint") != NULL;
    cm_tensorfile_close(f);
    if (is_ckpt) {   /* the checkpoint reader takes a path: the same bytes as a file */
        CmCkptMeta meta;
        (void)FZ(cm_checkpoint_read_meta(fz_file(data, size), &meta, &cfg));
    }
    return 0;
}
