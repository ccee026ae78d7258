/*
 * tar_write.c — the tar writer of tar.h: POSIX ustar members (what Python's tarfile writes in its
 * default PAX format, minus the float mtime), a PAX `x` header carrying `path` when the name is
 * longer than 100 bytes or not ASCII (and `size` beyond 8 GiB), then two zero blocks and padding
 * to a 10240-byte record. Written through a temp file renamed into place (cm_atomic_*).
 */
#include "data/tar.h"

#include <stdlib.h>
#include <string.h>

struct CmTarWriter {
    CmAtomicFile af;
    int64_t mtime;
    uint64_t bytes;
    char *path;
};

static void put_oct(uint8_t *f, int width, uint64_t v) {
    /* width-1 octal digits then NUL, as tarfile's itn() */
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%0*llo", width - 1, (unsigned long long)v);
    memcpy(f, tmp, (size_t)width - 1);
    f[width - 1] = 0;
}

static void fill_header(uint8_t *h, const char *name, size_t nl, uint64_t size, char type, int64_t mtime) {
    memset(h, 0, CM_TAR_BLOCK);
    memcpy(h, name, nl > 100 ? 100 : nl);
    put_oct(h + 100, 8, 0444);
    put_oct(h + 108, 8, 0);
    put_oct(h + 116, 8, 0);
    put_oct(h + 124, 12, size);
    put_oct(h + 136, 12, (uint64_t)(mtime < 0 ? 0 : mtime));
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    memcpy(h + 265, "bigdata", 7);
    memcpy(h + 297, "bigdata", 7);
    put_oct(h + 329, 8, 0);
    put_oct(h + 337, 8, 0);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < CM_TAR_BLOCK; i++) sum += h[i];
    char ck[8];
    snprintf(ck, sizeof ck, "%06o", sum & 0777777);
    memcpy(h + 148, ck, 6);
    h[154] = 0;
    h[155] = ' ';
}

static cm_status wr(CmTarWriter *w, const void *p, size_t n) {
    cm_status st = cm_atomic_write(&w->af, p, n);
    if (st == CM_OK) w->bytes += n;
    return st;
}

static cm_status wr_pad(CmTarWriter *w, uint64_t n) {
    static const uint8_t zero[CM_TAR_BLOCK];
    size_t p = (size_t)((CM_TAR_BLOCK - n % CM_TAR_BLOCK) % CM_TAR_BLOCK);
    return p ? wr(w, zero, p) : CM_OK;
}

/* One PAX record "LEN key=value\n" (LEN counts itself). */
static size_t pax_record(char *dst, size_t cap, const char *key, const char *val, size_t vl) {
    size_t body = 1 + strlen(key) + 1 + vl + 1;   /* " key=value\n" */
    size_t len = body + 1;
    for (;;) {
        char d[24];
        int nd = snprintf(d, sizeof d, "%zu", len);
        if ((size_t)nd + body == len) break;
        len = (size_t)nd + body;
    }
    if (len > cap) return 0;
    int k = snprintf(dst, cap, "%zu %s=", len, key);
    memcpy(dst + k, val, vl);
    dst[k + vl] = '\n';
    return len;
}

cm_status cm_tar_writer_open(const char *path, int64_t mtime, CmTarWriter **out) {
    *out = NULL;
    CmTarWriter *w = calloc(1, sizeof *w);
    if (!w) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    w->mtime = mtime;
    w->path = strdup(path);
    cm_status st = cm_atomic_open(&w->af, path);
    if (st) { free(w->path); free(w); return st; }
    *out = w;
    return CM_OK;
}

uint64_t cm_tar_writer_bytes(const CmTarWriter *w) { return w->bytes; }

cm_status cm_tar_writer_add(CmTarWriter *w, const char *name, const void *data, size_t len) {
    size_t nl = strlen(name);
    if (nl == 0 || nl > 4096) return cm_error(CM_ERR_ARG, "%s: bad member name length %zu", w->path, nl);
    bool ascii = true;
    for (size_t i = 0; i < nl; i++) if ((unsigned char)name[i] >= 0x80) ascii = false;
    bool big = (uint64_t)len >= (UINT64_C(1) << 33);
    uint8_t h[CM_TAR_BLOCK];
    cm_status st;
    if (nl > 100 || !ascii || big) {
        char *rec = malloc(nl + 128);
        if (!rec) return cm_error(CM_ERR_OOM, "%s: out of memory", w->path);
        size_t rl = 0;
        if (nl > 100 || !ascii) rl += pax_record(rec, nl + 128, "path", name, nl);
        if (big) {
            char sz[24];
            int k = snprintf(sz, sizeof sz, "%zu", len);
            rl += pax_record(rec + rl, nl + 128 - rl, "size", sz, (size_t)k);
        }
        fill_header(h, "././@PaxHeader", 14, rl, 'x', w->mtime);
        st = wr(w, h, CM_TAR_BLOCK);
        if (!st) st = wr(w, rec, rl);
        if (!st) st = wr_pad(w, rl);
        free(rec);
        if (st) return st;
    }
    fill_header(h, name, nl, big ? 0 : len, '0', w->mtime);
    if ((st = wr(w, h, CM_TAR_BLOCK))) return st;
    if (len && (st = wr(w, data, len))) return st;
    return wr_pad(w, len);
}

cm_status cm_tar_writer_close(CmTarWriter *w) {
    static const uint8_t zero[CM_TAR_BLOCK];
    cm_status st = wr(w, zero, CM_TAR_BLOCK);
    if (!st) st = wr(w, zero, CM_TAR_BLOCK);
    while (!st && w->bytes % 10240) st = wr(w, zero, CM_TAR_BLOCK);
    if (st) { cm_tar_writer_abort(w); return st; }
    st = cm_atomic_commit(&w->af);
    free(w->path);
    free(w);
    return st;
}

void cm_tar_writer_abort(CmTarWriter *w) {
    if (!w) return;
    cm_atomic_abort(&w->af);
    free(w->path);
    free(w);
}
