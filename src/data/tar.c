/*
 * tar.c — the streaming tar reader of tar.h (the writer is in tar_write.c).
 *
 * Why a hand-written parser rather than libarchive: the subset WebDataset needs (ustar, GNU L/K,
 * PAX x/g, whole-stream gzip) is ~300 lines; owning it gives error messages with the exact
 * shard and byte offset of the bad header, lets us refuse an absurd member size before any
 * allocation (libarchive hands out the size but its own buffering is opaque), needs no
 * allocation per member (one data buffer is reused), and measured faster (DESIGN §10: 7 GiB/s
 * vs 4+ GiB/s) — neither is a bottleneck. The semantics follow Python's tarfile, which is what
 * webdataset uses: stop at the first zero block, accept a missing end-of-archive, skip the data
 * of regular and unknown types but not of links/directories/devices, apply global PAX headers
 * to every later member, prefer signed or unsigned checksums alike. Where tarfile is lax
 * (garbage after the first member silently ends the archive) we report an error instead.
 * zlib's gzread reads gzip streams and, when the magic bytes are absent, plain files directly.
 */
#include "data/tar.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct CmTarReader {
    gzFile gz;
    char *path;
    bool load_data, fatal, done, missing_end;
    uint64_t max_member;
    uint64_t pos;                 /* bytes consumed from the uncompressed stream */
    uint8_t *buf; size_t cap;     /* member data (reused) */
    char *meta; size_t meta_cap;  /* PAX / GNU long-name bodies (reused) */
    char *name; size_t name_cap;  /* current member name (reused) */
    char *longname;               /* pending GNU 'L' name */
    char *pax_path, *gpax_path;   /* pending local / global PAX path */
    int64_t pax_size, gpax_size;  /* -1 when absent */
};

// ----------------------------------------------------------------------------
// low-level reads

/* Read up to n bytes; returns bytes read (< n only at end of stream or on error). On a zlib
   error sets r->fatal and the error message and returns -1. */
static int64_t rd(CmTarReader *r, void *dst, uint64_t n) {
    uint64_t got = 0;
    while (got < n) {
        uint64_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30;
        int k = gzread(r->gz, (uint8_t *)dst + got, (unsigned)want);
        if (k < 0) {
            int zerr;
            const char *m = gzerror(r->gz, &zerr);
            r->fatal = true;
            cm_error(CM_ERR_FORMAT, "%s: offset %llu: %s data: %s", r->path, (unsigned long long)(r->pos + got),
                     gzdirect(r->gz) ? "file" : "gzip", m ? m : "read error");
            return -1;
        }
        if (k == 0) {
            int zerr;
            const char *m = gzerror(r->gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END) {
                r->fatal = true;
                cm_error(CM_ERR_FORMAT, "%s: offset %llu: gzip stream ends early or is corrupt: %s", r->path,
                         (unsigned long long)(r->pos + got), m ? m : "?");
                return -1;
            }
            break;
        }
        got += (uint64_t)k;
    }
    r->pos += got;
    return (int64_t)got;
}

/* Skip n bytes (read and discard, so that truncation is always detected). */
static int64_t skip(CmTarReader *r, uint64_t n) {
    uint8_t tmp[65536];
    uint64_t done = 0;
    while (done < n) {
        uint64_t want = n - done < sizeof tmp ? n - done : sizeof tmp;
        int64_t k = rd(r, tmp, want);
        if (k < 0) return -1;
        done += (uint64_t)k;
        if ((uint64_t)k < want) break;
    }
    return (int64_t)done;
}

static uint64_t pad512(uint64_t n) { return (CM_TAR_BLOCK - n % CM_TAR_BLOCK) % CM_TAR_BLOCK; }

static cm_status truncated(CmTarReader *r, const char *what, uint64_t hdr_off, uint64_t want, uint64_t got) {
    r->fatal = true;
    return cm_error(CM_ERR_FORMAT, "%s: offset %llu: truncated: %s declares %llu bytes, the stream ends after %llu",
                    r->path, (unsigned long long)hdr_off, what, (unsigned long long)want, (unsigned long long)got);
}

// ----------------------------------------------------------------------------
// header fields

/* Numeric field: octal text (NUL/space terminated, leading spaces allowed, empty = 0) or GNU
   base-256 (high bit of the first byte set). Returns false when malformed or negative. */
static bool parse_num(const uint8_t *f, int n, uint64_t *out) {
    uint64_t v = 0;
    if (f[0] & 0x80) {
        if (f[0] & 0x40) return false;              /* negative base-256 */
        v = f[0] & 0x3f;
        for (int i = 1; i < n; i++) {
            if (v >> 55) return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return true;
    }
    int i = 0;
    while (i < n && f[i] == ' ') i++;
    for (; i < n && f[i] && f[i] != ' '; i++) {
        if (f[i] < '0' || f[i] > '7' || (v >> 60)) return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < n && f[i]; i++) if (f[i] != ' ') return false;   /* only spaces after the digits */
    *out = v;
    return true;
}

static bool checksum_ok(const uint8_t *h) {
    uint64_t want;
    if (!parse_num(h + 148, 8, &want)) return false;
    uint64_t us = 0;
    int64_t ss = 0;
    for (int i = 0; i < CM_TAR_BLOCK; i++) {
        uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
        us += c;
        ss += (int8_t)c;
    }
    return want == us || (int64_t)want == ss;
}

static size_t nts_len(const uint8_t *s, size_t n) {
    const uint8_t *z = memchr(s, 0, n);
    return z ? (size_t)(z - s) : n;
}

static char *dupn(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static bool grow(void **p, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc);
    if (!np) return false;
    *p = np; *cap = nc;
    return true;
}

/* PAX records "LEN key=value\n". Applies path/size to (path, size). */
static cm_status parse_pax(CmTarReader *r, const char *b, size_t n, uint64_t off, char **path, int64_t *size) {
    size_t i = 0;
    while (i < n) {
        if (b[i] == 0) break;                          /* NUL padding after the records */
        size_t len = 0, j = i;
        while (j < n && b[j] >= '0' && b[j] <= '9' && len < (1u << 30)) len = len * 10 + (size_t)(b[j++] - '0');
        if (j == i || j >= n || b[j] != ' ' || len <= j - i + 1 || i + len > n || b[i + len - 1] != '\n') {
            r->fatal = true;
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: malformed PAX header record at byte %zu", r->path,
                            (unsigned long long)off, i);
        }
        const char *kv = b + j + 1, *end = b + i + len - 1;
        const char *eq = memchr(kv, '=', (size_t)(end - kv));
        if (!eq) {
            r->fatal = true;
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: PAX record without '='", r->path, (unsigned long long)off);
        }
        size_t kl = (size_t)(eq - kv), vl = (size_t)(end - eq - 1);
        if (kl == 4 && !memcmp(kv, "path", 4)) {
            free(*path);
            *path = dupn(eq + 1, vl);
            if (!*path) return cm_error(CM_ERR_OOM, "%s: out of memory", r->path);
        } else if (kl == 4 && !memcmp(kv, "size", 4)) {
            uint64_t v = 0;
            size_t k = 0;
            for (; k < vl && eq[1 + k] >= '0' && eq[1 + k] <= '9' && v < (UINT64_C(1) << 58); k++)
                v = v * 10 + (uint64_t)(eq[1 + k] - '0');
            if (k == 0 || k != vl) {
                r->fatal = true;
                return cm_error(CM_ERR_FORMAT, "%s: offset %llu: bad PAX size '%.*s'", r->path, (unsigned long long)off,
                                (int)(vl > 40 ? 40 : vl), eq + 1);
            }
            *size = (int64_t)v;
        }
        i += len;
    }
    return CM_OK;
}

// ----------------------------------------------------------------------------
// public

cm_status cm_tar_open(const char *path, bool load_data, uint64_t max_member, CmTarReader **out) {
    *out = NULL;
    CmTarReader *r = calloc(1, sizeof *r);
    if (!r) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    r->path = dupn(path, strlen(path));
    r->load_data = load_data;
    r->max_member = max_member ? max_member : CM_TAR_DEFAULT_MAX_MEMBER;
    r->pax_size = r->gpax_size = -1;
    if (!r->path) { free(r); return cm_error(CM_ERR_OOM, "%s: out of memory", path); }
    errno = 0;
    r->gz = gzopen(path, "rb");
    if (!r->gz) {
        cm_status st = cm_error(CM_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "zlib error");
        cm_tar_close(r);
        return st;
    }
    gzbuffer(r->gz, 1 << 17);
    *out = r;
    return CM_OK;
}

void cm_tar_close(CmTarReader *r) {
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    free(r->path); free(r->buf); free(r->meta); free(r->name);
    free(r->longname); free(r->pax_path); free(r->gpax_path);
    free(r);
}

bool cm_tar_fatal(const CmTarReader *r) { return r->fatal; }
bool cm_tar_is_gzip(const CmTarReader *r) { return r->gz && !gzdirect(r->gz); }
bool cm_tar_missing_end(const CmTarReader *r) { return r->missing_end; }
const char *cm_tar_path(const CmTarReader *r) { return r->path; }

static void clear_pending(CmTarReader *r) {
    free(r->longname); r->longname = NULL;
    free(r->pax_path); r->pax_path = NULL;
    r->pax_size = -1;
}

int cm_tar_next(CmTarReader *r, CmTarEntry *e) {
    memset(e, 0, sizeof *e);
    if (r->fatal) return cm_error(CM_ERR_FORMAT, "%s: reader stopped after an earlier error", r->path);
    if (r->done) return CM_TAR_END;
    uint8_t h[CM_TAR_BLOCK];
    uint64_t first_off = r->pos;   /* first header of this member (meta headers included) */
    for (;;) {
        uint64_t off = r->pos;
        int64_t n = rd(r, h, CM_TAR_BLOCK);
        if (n < 0) return cm_last_status();
        if (n == 0) {
            if (r->longname || r->pax_path || r->pax_size >= 0) {
                r->fatal = true;
                return cm_error(CM_ERR_FORMAT, "%s: offset %llu: truncated: the stream ends after an extended header",
                                r->path, (unsigned long long)off);
            }
            r->done = r->missing_end = true;
            return CM_TAR_END;
        }
        if (n < CM_TAR_BLOCK) {
            r->fatal = true;
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: truncated header (%lld of 512 bytes)", r->path,
                            (unsigned long long)off, (long long)n);
        }
        bool zero = true;
        for (int i = 0; i < CM_TAR_BLOCK && zero; i++) zero = h[i] == 0;
        if (zero) { r->done = true; return CM_TAR_END; }
        if (!checksum_ok(h)) {
            r->fatal = true;
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: not a tar header (bad checksum; garbage or corrupt data)",
                            r->path, (unsigned long long)off);
        }
        uint64_t size;
        if (!parse_num(h + 124, 12, &size)) {
            r->fatal = true;
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: bad size field in tar header", r->path, (unsigned long long)off);
        }
        char type = (char)h[156];
        if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
            if (size > CM_TAR_MAX_META) {
                r->fatal = true;
                return cm_error(CM_ERR_FORMAT, "%s: offset %llu: extended header '%c' declares %llu bytes (limit %llu)",
                                r->path, (unsigned long long)off, type, (unsigned long long)size,
                                (unsigned long long)CM_TAR_MAX_META);
            }
            if (!grow((void **)&r->meta, &r->meta_cap, (size_t)size + 1))
                return cm_error(CM_ERR_OOM, "%s: out of memory", r->path);
            int64_t k = rd(r, r->meta, size);
            if (k < 0) return cm_last_status();
            if ((uint64_t)k < size) return truncated(r, "extended header", off, size, (uint64_t)k);
            r->meta[size] = 0;
            int64_t p = skip(r, pad512(size));
            if (p < 0) return cm_last_status();
            cm_status st = CM_OK;
            if (type == 'L') {
                free(r->longname);
                r->longname = dupn(r->meta, strlen(r->meta));
                if (!r->longname) return cm_error(CM_ERR_OOM, "%s: out of memory", r->path);
            } else if (type == 'x') {
                st = parse_pax(r, r->meta, (size_t)size, off, &r->pax_path, &r->pax_size);
            } else if (type == 'g') {
                st = parse_pax(r, r->meta, (size_t)size, off, &r->gpax_path, &r->gpax_size);
            }
            if (st) return st;
            continue;
        }
        /* name: PAX path > GNU long name > ustar prefix + name */
        const char *nm;
        size_t nl;
        char tmp[256 + 2];
        if (r->pax_path || r->gpax_path) {
            nm = r->pax_path ? r->pax_path : r->gpax_path;
            nl = strlen(nm);
        } else if (r->longname) {
            nm = r->longname;
            nl = strlen(nm);
        } else {
            size_t l0 = nts_len(h, 100);
            size_t lp = (!memcmp(h + 257, "ustar\0", 6)) ? nts_len(h + 345, 155) : 0;
            nl = 0;
            if (lp) { memcpy(tmp, h + 345, lp); tmp[lp] = '/'; nl = lp + 1; }
            memcpy(tmp + nl, h, l0);
            nl += l0;
            tmp[nl] = 0;
            nm = tmp;
        }
        if (!grow((void **)&r->name, &r->name_cap, nl + 1)) return cm_error(CM_ERR_OOM, "%s: out of memory", r->path);
        memcpy(r->name, nm, nl);
        r->name[nl] = 0;
        if (r->pax_size >= 0) size = (uint64_t)r->pax_size;
        else if (r->gpax_size >= 0) size = (uint64_t)r->gpax_size;
        clear_pending(r);

        bool regular = type == '0' || type == '7' || (type == 0 && !(nl && r->name[nl - 1] == '/'));
        bool has_data = regular || (type != 0 && !strchr("123456", type));
        if (!regular) {
            /* directories, links, devices, fifos (no data, as tarfile reads them); unknown types
               and GNU sparse/dumpdir carry `size` bytes of data: skip them */
            if (has_data) {
                uint64_t want = size + pad512(size);
                int64_t k = skip(r, want);
                if (k < 0) return cm_last_status();
                if ((uint64_t)k < want) return truncated(r, r->name, off, size, (uint64_t)k);
            }
            first_off = r->pos;
            continue;
        }
        e->name = r->name;
        e->size = size;
        e->offset = first_off;
        if (size > r->max_member) {
            uint64_t want = size + pad512(size);
            int64_t k = skip(r, want);
            if (k < 0) return cm_last_status();
            if ((uint64_t)k < size) {
                truncated(r, r->name, off, size, (uint64_t)k);
                return cm_error_prefix("member over the %llu-byte limit", (unsigned long long)r->max_member);
            }
            return cm_error(CM_ERR_FORMAT, "%s: offset %llu: member '%s' is %llu bytes, over the limit of %llu: skipped",
                            r->path, (unsigned long long)off, r->name, (unsigned long long)size,
                            (unsigned long long)r->max_member);
        }
        if (r->load_data) {
            if (!grow((void **)&r->buf, &r->cap, (size_t)size + 1))
                return cm_error(CM_ERR_OOM, "%s: member '%s': cannot allocate %llu bytes", r->path, r->name,
                                (unsigned long long)size);
            int64_t k = rd(r, r->buf, size);
            if (k < 0) return cm_last_status();
            if ((uint64_t)k < size) return truncated(r, r->name, off, size, (uint64_t)k);
            r->buf[size] = 0;
            e->data = r->buf;
            int64_t p = skip(r, pad512(size));
            if (p < 0) return cm_last_status();
        } else {
            uint64_t want = size + pad512(size);
            int64_t k = skip(r, want);
            if (k < 0) return cm_last_status();
            if ((uint64_t)k < size) return truncated(r, r->name, off, size, (uint64_t)k);
        }
        /* a missing final padding after the last member is tolerated (as tarfile does) */
        return CM_TAR_MEMBER;
    }
}
