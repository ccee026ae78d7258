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
/* Parse the central directory of image[0..len); entries are decompressed lazily by cm_zip_get. */
cm_status cm_zip_open(CmZip *z, const uint8_t *image, size_t len, const char *path);
/* Index of the entry with this exact name, or -1. */
int cm_zip_find(const CmZip *z, const char *name);
void cm_zip_close(CmZip *z);

#endif
