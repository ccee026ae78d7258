/*
 * fuzz_torchzip.c — libFuzzer target for PyTorch zip checkpoints: the zip reader (zipread.c), the
 * restricted unpickler (pickle.c) and the state-dict / OpenCLIP-checkpoint interpretation
 * (torchzip.c). The first byte picks the mode:
 *   even: the rest is a whole file, opened with cm_tensorfile_open_memory (zip structure, CRCs,
 *         deflate);
 *   odd:  the rest is a pickle program; the target wraps it as archive/data.pkl in a valid stored
 *         zip together with storages archive/data/0..3 (64 bytes each), so that mutations reach the
 *         unpickler and torchzip's checks instead of failing the CRC.
 * Every tensor that comes back is read whole (the image is an exact-size heap copy, so ASan sees a
 * view that reaches past the end).
 * Seeds: tests/fuzz/corpus/torchzip/ (tests/fuzz/make_corpus.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz_util.h"
#include "io/tensorfile.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

typedef struct { uint8_t *p; size_t n, cap; } Buf;
static void put(Buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put16(Buf *b, unsigned v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; put(b, x, 2); }
static void put32(Buf *b, uint32_t v) { uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)}; put(b, x, 4); }

/* A stored (uncompressed) zip of n entries, as torch.save writes it (no data descriptors). */
static void make_zip(Buf *z, const char **names, const uint8_t **datas, const size_t *sizes, int n) {
    uint32_t offs[8];
    for (int i = 0; i < n; i++) {
        offs[i] = (uint32_t)z->n;
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)sizes[i]);
        put32(z, 0x04034b50); put16(z, 20); put16(z, 0); put16(z, 0); put16(z, 0); put16(z, 0);
        put32(z, crc); put32(z, (uint32_t)sizes[i]); put32(z, (uint32_t)sizes[i]);
        put16(z, (unsigned)strlen(names[i])); put16(z, 0);
        put(z, names[i], strlen(names[i]));
        put(z, datas[i], sizes[i]);
    }
    uint32_t cd = (uint32_t)z->n;
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, datas[i], (uInt)sizes[i]);
        put32(z, 0x02014b50); put16(z, 20); put16(z, 20); put16(z, 0); put16(z, 0); put16(z, 0); put16(z, 0);
        put32(z, crc); put32(z, (uint32_t)sizes[i]); put32(z, (uint32_t)sizes[i]);
        put16(z, (unsigned)strlen(names[i])); put16(z, 0); put16(z, 0); put16(z, 0); put16(z, 0);
        put32(z, 0); put32(z, offs[i]);
        put(z, names[i], strlen(names[i]));
    }
    uint32_t cd_len = (uint32_t)z->n - cd;
    put32(z, 0x06054b50); put16(z, 0); put16(z, 0); put16(z, (unsigned)n); put16(z, (unsigned)n);
    put32(z, cd_len); put32(z, cd); put16(z, 0);
}

/* Reading every element: ASan reports a view that reaches past its (exact-size) buffer. */
static void check(const CmTensorView *v) {
    if (v->nbytes != v->numel * cm_dtype_size(v->dtype)) abort();
    if (v->numel > ((size_t)1 << 22)) return;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    Buf z = {0};
    const uint8_t *img = data + 1;
    size_t len = size - 1;
    uint8_t *copy = NULL;
    if (data[0] & 1) {
        static uint8_t storage[4][64];   /* fixed storage bytes */
        static int init;
        if (!init) {
            for (int s = 0; s < 4; s++) for (int i = 0; i < 64; i++) storage[s][i] = (uint8_t)(s * 16 + i / 4);
            init = 1;
        }
        const char *names[6] = {"archive/data.pkl", "archive/data/0", "archive/data/1", "archive/data/2",
                                "archive/data/3", "archive/version"};
        const uint8_t *datas[6] = {img, storage[0], storage[1], storage[2], storage[3], (const uint8_t *)"3\n"};
        size_t sizes[6] = {len, 64, 64, 64, 64, 2};
        make_zip(&z, names, datas, sizes, 6);
        len = z.n;
    }
    {   /* an exact-size copy: ASan then catches a read one byte past the end */
        copy = malloc(len ? len : 1);
        if (!copy) abort();
        if (len) memcpy(copy, z.p ? z.p : img, len);
        img = copy;
    }
    CmTensorFile *f;
    if (FZ(cm_tensorfile_open_memory(img, len, "fuzz.pt", &f)) == CM_OK) {
        int n = cm_tensorfile_count(f);
        for (int i = 0; i < n; i++) {
            const CmTensorView *v = cm_tensorfile_at(f, i);
            if (cm_tensorfile_find(f, v->name) != v) abort();
            check(v);
        }
        const CmCheckpointInfo *ck = cm_tensorfile_checkpoint(f);
        if (ck) {
            for (int i = 0; i < ck->n_state; i++) {
                const CmOptState *s = &ck->state[i];
                if (cm_checkpoint_state(ck, s->index) == NULL) abort();
                if (s->exp_avg) check(s->exp_avg);
                if (s->exp_avg_sq) check(s->exp_avg_sq);
                if (s->max_exp_avg_sq) check(s->max_exp_avg_sq);
            }
            for (int g = 0; g < ck->n_groups; g++)
                for (int k = 0; k < ck->groups[g].n_params; k++) (void)ck->groups[g].params[k];
            if (ck->name) (void)strlen(ck->name);
        }
        cm_tensorfile_close(f);
    }
    free(copy);
    free(z.p);
    return 0;
}
