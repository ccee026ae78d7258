/*
 * tensorfile_internal.h — what the readers in src/io share: the CmTensorFile layout, the mmap of the
 * whole file, the table of views (names owned by the file), and the entry points of each format.
 * Not for use outside src/io.
 */
#ifndef CM_TENSORFILE_INTERNAL_H
#define CM_TENSORFILE_INTERNAL_H

#include "io/tensorfile.h"

struct CmTensorFile {
    char *path;
    const uint8_t *map;        /* the whole file, read-only mmap (NULL for an empty file) */
    size_t map_len;
    bool borrowed;             /* map belongs to the caller (cm_tensorfile_open_memory): no munmap */
    int n, cap;                /* state-dict views, file order */
    CmTensorView *views;
    int *sorted;               /* indices of views sorted by name (for find and duplicate checks) */
    int n_extra, cap_extra;    /* optimizer-state views (not listed by count/at) */
    CmTensorView *extra;
    int n_meta;
    char **meta_keys, **meta_vals;
    bool has_ckpt;
    CmCheckpointInfo ckpt;
    CmOptState *ck_state;
    CmOptParamGroup *ck_groups;
    void **owned;              /* buffers freed at close (inflated zip entries, names, ...) */
    int n_owned, cap_owned;
};

/* Keep p until close (p may be NULL); false (and cm_error set) on allocation failure, p is freed. */
bool cm_tf_own(CmTensorFile *f, void *p);
/* Duplicate a string owned by the file; NULL + cm_error on failure. */
char *cm_tf_strdup(CmTensorFile *f, const char *s, size_t len);
/* Append a view (name must already be owned by the file); extra=true for optimizer views. */
CmTensorView *cm_tf_add(CmTensorFile *f, bool extra);
/* Build the sorted index; error naming the first duplicate name. */
cm_status cm_tf_index(CmTensorFile *f);
/* numel and nbytes from shape, with overflow checks; false when it overflows. */
bool cm_tf_sizes(CmTensorView *v);

/* Format readers: fill f (map/path already set). */
cm_status cm_safetensors_parse(CmTensorFile *f);
cm_status cm_torchzip_parse(CmTensorFile *f);

/* Small zip reader over a memory image (zipread.c). */
typedef struct {
    char *name;
    const uint8_t *data;       /* stored: points into the image; deflated: inflated buffer */
    size_t size;
    bool inflated;             /* data is a malloc'd buffer owned by the entry */
} CmZipEntry;
typedef struct {
    int n;
    CmZipEntry *e;
} CmZip;
/* Parse the central directory of image[0..len); deflated entries are inflated here, every CRC checked. */
cm_status cm_zip_open(CmZip *z, const uint8_t *image, size_t len, const char *path);
/* Index of the entry with this exact name, or -1. */
int cm_zip_find(const CmZip *z, const char *name);
void cm_zip_close(CmZip *z);


/* The restricted unpickler (pickle.c): a tree of plain values; nothing is ever called or imported. */
typedef enum { PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT, PV_GLOBAL, PV_STORAGE,
               PV_TENSOR } PvKind;
typedef enum { PG_ORDERED_DICT, PG_REBUILD_TENSOR_V2, PG_REBUILD_PARAMETER, PG_STORAGE_TYPE } PvGlobal;
typedef struct Pv Pv;
struct Pv {
    PvKind kind;
    int64_t i;                 /* BOOL, INT; GLOBAL: PvGlobal */
    double f;                  /* FLOAT */
    char *s;                   /* STR (NUL-terminated, no embedded NUL) */
    Pv **items;                /* TUPLE, LIST: n items; DICT: key, value, key, value ... (n = 2 * pairs) */
    size_t n, cap;
    CmDType dtype;             /* GLOBAL storage type, STORAGE, TENSOR */
    const uint8_t *data;       /* STORAGE: its bytes */
    size_t nbytes;             /* STORAGE */
    const char *key;           /* STORAGE: the archive key ("0", "1", ...) */
    Pv *storage;               /* TENSOR */
    int64_t offset;            /* TENSOR: storage offset in elements */
    int ndim;                  /* TENSOR */
    int64_t shape[CM_MAX_DIMS], stride[CM_MAX_DIMS];
};
typedef struct PvArena PvArena;
/* Called for BINPERSID with the persistent id; returns a PV_STORAGE (or NULL + cm_error). */
typedef Pv *(*PvPersistentLoad)(void *ctx, PvArena *a, Pv *pid);
PvArena *cm_pv_arena_new(void);
void cm_pv_arena_free(PvArena *a);
Pv *cm_pv_new(PvArena *a, PvKind kind);
/* Run the pickle in buf[0..len) (path names the file in errors); *out is the value at STOP. */
cm_status cm_unpickle(const uint8_t *buf, size_t len, const char *path, PvArena *a, PvPersistentLoad load,
                      void *ctx, Pv **out);
/* Value of dict d for string key k, or NULL. */
Pv *cm_pv_get(const Pv *d, const char *k);
const char *cm_pv_kind_name(PvKind k);

#endif
