/*
 * tensorfile.c — the format-independent part of tensor files: open (mmap, detect the format by its
 * first bytes), close, lookup by name, dtype names and sizes, and the exact dtype conversions
 * (f16/bf16 <-> f32, round to nearest even; ints -> int64).
 */
#include "io/tensorfile_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tensor files are read as little-endian");

// ----------------------------------------------------------------------------
// dtypes

static const struct { CmDType t; const char *name; size_t size; } k_dtypes[] = {
    {CM_F32, "F32", 4}, {CM_F16, "F16", 2}, {CM_BF16, "BF16", 2}, {CM_F64, "F64", 8},
    {CM_I64, "I64", 8}, {CM_I32, "I32", 4}, {CM_I16, "I16", 2}, {CM_I8, "I8", 1},
    {CM_U8, "U8", 1},   {CM_BOOL, "BOOL", 1},
};
#define N_DTYPES ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

size_t cm_dtype_size(CmDType t) {
    for (int i = 0; i < N_DTYPES; i++) if (k_dtypes[i].t == t) return k_dtypes[i].size;
    return 0;
}
const char *cm_dtype_name(CmDType t) {
    for (int i = 0; i < N_DTYPES; i++) if (k_dtypes[i].t == t) return k_dtypes[i].name;
    return "?";
}
bool cm_dtype_parse(const char *s, CmDType *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, k_dtypes[i].name)) { *out = k_dtypes[i].t; return true; }
    return false;
}

// ----------------------------------------------------------------------------
// scalar conversions (bit exact)

float cm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);            /* inf / nan (payload kept) */
    else if (exp) bits = sign | ((exp + 112) << 23) | (man << 13);       /* normal: 127 - 15 = 112 */
    else if (!man) bits = sign;                                           /* +-0 */
    else {                                                                /* subnormal: normalise */
        int e = 113;
        while (!(man & 0x400)) { man <<= 1; e--; }
        bits = sign | ((uint32_t)e << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t cm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;           /* nan -> quiet nan, as c10::Half */
    if (ax >= 0x477ff000u) return sign | 0x7c00;          /* >= 65520 rounds to inf (and inf) */
    if (ax >= 0x38800000u) {                               /* normal half (>= 2^-14) */
        uint32_t r = ax - 0x38000000u;                     /* rebias exponent 127 -> 15 */
        uint32_t lsb = (r >> 13) & 1;
        r += 0xfff + lsb;                                  /* round to nearest even */
        return sign | (uint16_t)(r >> 13);
    }
    if (ax < 0x33000000u) return sign;                     /* < 2^-25: rounds to 0 */
    /* subnormal half: value = man * 2^-24 */
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
    /* value = m * 2^(e-150) = m * 2^(e-126) units of 2^-24: shift right by 126 - e (14..24) */
    int shift = 126 - (int)e;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
}


cm_status cm_tensor_to_f32(const CmTensorView *t, float *dst) {
    const uint8_t *s = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case CM_F32: if (n) memcpy(dst, s, n * 4); return CM_OK;
    case CM_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = cm_f16_to_f32(h); }
        return CM_OK;
    case CM_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = cm_bf16_to_f32(h); }
        return CM_OK;
    case CM_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        return CM_OK;
    default:
        return cm_error(CM_ERR_UNSUPPORTED, "tensor %s: dtype %s is not a floating type", t->name,
                        cm_dtype_name(t->dtype));
    }
}

cm_status cm_tensor_to_i64(const CmTensorView *t, int64_t *dst) {
    const uint8_t *s = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case CM_I64: memcpy(&dst[i], s + 8 * i, 8); break;
        case CM_I32: { int32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = v; break; }
        case CM_I16: { int16_t v; memcpy(&v, s + 2 * i, 2); dst[i] = v; break; }
        case CM_I8: dst[i] = (int8_t)s[i]; break;
        case CM_U8: dst[i] = s[i]; break;
        case CM_BOOL: dst[i] = s[i] != 0; break;
        default:
            return cm_error(CM_ERR_UNSUPPORTED, "tensor %s: dtype %s is not an integer type", t->name,
                            cm_dtype_name(t->dtype));
        }
    }
    return CM_OK;
}

// ----------------------------------------------------------------------------
// the file object

bool cm_tf_own(CmTensorFile *f, void *p) {
    if (!p) return true;
    if (f->n_owned == f->cap_owned) {
        int cap = f->cap_owned ? 2 * f->cap_owned : 64;
        void **o = realloc(f->owned, (size_t)cap * sizeof *o);
        if (!o) { free(p); cm_error(CM_ERR_OOM, "%s: out of memory", f->path); return false; }
        f->owned = o;
        f->cap_owned = cap;
    }
    f->owned[f->n_owned++] = p;
    return true;
}

char *cm_tf_strdup(CmTensorFile *f, const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (!d) { cm_error(CM_ERR_OOM, "%s: out of memory", f->path); return NULL; }
    memcpy(d, s, len);
    d[len] = 0;
    return cm_tf_own(f, d) ? d : NULL;
}

CmTensorView *cm_tf_add(CmTensorFile *f, bool extra) {
    CmTensorView **arr = extra ? &f->extra : &f->views;
    int *n = extra ? &f->n_extra : &f->n, *cap = extra ? &f->cap_extra : &f->cap;
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        CmTensorView *a = realloc(*arr, (size_t)c * sizeof *a);
        if (!a) { cm_error(CM_ERR_OOM, "%s: out of memory", f->path); return NULL; }
        *arr = a;
        *cap = c;
    }
    CmTensorView *v = &(*arr)[(*n)++];
    memset(v, 0, sizeof *v);
    return v;
}

bool cm_tf_sizes(CmTensorView *v) {
    size_t n = 1;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] < 0 || !cm_mul_ok(n, (size_t)v->shape[d], &n)) return false;
    }
    v->numel = n;
    return cm_mul_ok(n, cm_dtype_size(v->dtype), &v->nbytes);
}

static _Thread_local const CmTensorView *g_sort_views;   /* qsort has no context argument */
static int cmp_name(const void *a, const void *b) {
    return strcmp(g_sort_views[*(const int *)a].name, g_sort_views[*(const int *)b].name);
}

cm_status cm_tf_index(CmTensorFile *f) {
    free(f->sorted);
    f->sorted = malloc((size_t)(f->n ? f->n : 1) * sizeof(int));
    if (!f->sorted) return cm_error(CM_ERR_OOM, "%s: out of memory", f->path);
    for (int i = 0; i < f->n; i++) f->sorted[i] = i;
    g_sort_views = f->views;
    qsort(f->sorted, (size_t)f->n, sizeof(int), cmp_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->views[f->sorted[i]].name, f->views[f->sorted[i - 1]].name))
            return cm_error(CM_ERR_FORMAT, "%s: duplicate tensor name '%s'", f->path,
                            f->views[f->sorted[i]].name);
    return CM_OK;
}

static cm_status parse_image(CmTensorFile *f);

cm_status cm_tensorfile_open(const char *path, CmTensorFile **out) {
    *out = NULL;
    CmTensorFile *f = calloc(1, sizeof *f);
    if (!f) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    f->path = strdup(path);
    if (!f->path) { free(f); return cm_error(CM_ERR_OOM, "%s: out of memory", path); }
    cm_status st = CM_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { st = cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        st = cm_error(CM_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    f->map_len = (size_t)sb.st_size;
    if (f->map_len) {
        void *m = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            st = cm_error(CM_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
            goto fail;
        }
        f->map = m;
    }
    close(fd);
    if ((st = parse_image(f))) goto fail;
    *out = f;
    return CM_OK;
fail:
    cm_tensorfile_close(f);
    return st;
}

/* Detect the format by the first bytes of f->map and parse it (path already set). */
static cm_status parse_image(CmTensorFile *f) {
    const char *path = f->path;
    cm_status st;
    if (f->map_len >= 4 && !memcmp(f->map, "PK\x03\x04", 4)) st = cm_torchzip_parse(f);
    else if (f->map_len >= 4 && !memcmp(f->map, "PK\x05\x06", 4))
        st = cm_error(CM_ERR_FORMAT, "%s: empty zip archive (no data.pkl)", path);
    else if (f->map_len >= 2 && f->map[0] == 0x80 && f->map[1] <= 5)
        st = cm_error(CM_ERR_UNSUPPORTED, "%s: legacy (non-zip) torch.save format is not supported; "
                      "re-save with torch >= 1.6 (zip format) or convert to safetensors", path);
    else if (f->map_len < 8)
        st = cm_error(CM_ERR_FORMAT, "%s: file too short (%zu bytes) for safetensors or a torch zip",
                      path, f->map_len);
    else st = cm_safetensors_parse(f);
    if (st) return st;
    return cm_tf_index(f);
}

cm_status cm_tensorfile_open_memory(const void *bytes, size_t len, const char *name, CmTensorFile **out) {
    *out = NULL;
    CmTensorFile *f = calloc(1, sizeof *f);
    if (!f) return cm_error(CM_ERR_OOM, "%s: out of memory", name);
    f->path = strdup(name);
    if (!f->path) { free(f); return cm_error(CM_ERR_OOM, "%s: out of memory", name); }
    f->borrowed = true;
    f->map = len ? bytes : NULL;
    f->map_len = len;
    cm_status st = parse_image(f);
    if (st) { cm_tensorfile_close(f); return st; }
    *out = f;
    return CM_OK;
}

void cm_tensorfile_close(CmTensorFile *f) {
    if (!f) return;
    if (f->map && !f->borrowed) munmap((void *)f->map, f->map_len);
    for (int i = 0; i < f->n_owned; i++) free(f->owned[i]);
    free(f->owned);
    free(f->views);
    free(f->extra);
    free(f->sorted);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->ck_state);
    free(f->ck_groups);
    free(f->path);
    free(f);
}

int cm_tensorfile_count(const CmTensorFile *f) { return f->n; }
const CmTensorView *cm_tensorfile_at(const CmTensorFile *f, int i) {
    return i >= 0 && i < f->n ? &f->views[i] : NULL;
}
const CmTensorView *cm_tensorfile_find(const CmTensorFile *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(f->views[f->sorted[mid]].name, name);
        if (!c) return &f->views[f->sorted[mid]];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}
const char *cm_tensorfile_metadata(const CmTensorFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++) if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}
const char *cm_tensorfile_path(const CmTensorFile *f) { return f->path; }

const CmCheckpointInfo *cm_tensorfile_checkpoint(const CmTensorFile *f) {
    return f->has_ckpt ? &f->ckpt : NULL;
}
const CmOptState *cm_checkpoint_state(const CmCheckpointInfo *ck, int64_t index) {
    if (!ck) return NULL;
    int lo = 0, hi = ck->n_state - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (ck->state[mid].index == index) return &ck->state[mid];
        if (ck->state[mid].index < index) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}
