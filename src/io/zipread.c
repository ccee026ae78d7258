/*
 * zipread.c — a small, strict zip reader over a memory image (the mmap of a torch.save file).
 *
 * Why not libzip: torch.save stores every entry uncompressed and 64-byte aligned, so tensors can be
 * served as zero-copy views into the mmap; libzip only reads entries into caller buffers (a second
 * copy of a 605 MB checkpoint) and its errors cannot name the entry and offset at fault. This reader
 * handles what zip writers produce for such files: the end-of-central-directory record (with zip64
 * records and extra fields), stored entries (zero-copy) and deflated ones (inflated with zlib, size
 * capped), CRC-32 checked for every entry. Encrypted entries, other methods, multi-disk archives and
 * anything out of bounds are errors naming the file and entry.
 */
#include "io/tensorfile_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIP_MAX_ENTRIES 1000000
#define ZIP_MAX_INFLATE ((uint64_t)1 << 36)      /* 64 GiB: refuse absurd declared sizes */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static cm_status zerr(const char *path, const char *what) {
    return cm_error(CM_ERR_FORMAT, "%s: corrupt or truncated zip archive: %s", path, what);
}

static uint32_t crc32_big(const uint8_t *p, uint64_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static cm_status inflate_entry(const uint8_t *src, uint64_t csize, uint64_t usize, uint8_t **out,
                               const char *path, const char *name) {
    /* deflate cannot expand more than ~1032:1, so a larger declared size is a lie */
    if (usize > ZIP_MAX_INFLATE || usize > csize * 1100 + 65536)
        return cm_error(CM_ERR_FORMAT, "%s: zip entry '%s' declares an absurd size (%llu bytes)", path, name,
                        (unsigned long long)usize);
    uint8_t *buf = malloc(usize ? usize : 1);
    if (!buf) return cm_error(CM_ERR_OOM, "%s: zip entry '%s': cannot allocate %llu bytes", path, name,
                              (unsigned long long)usize);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) { free(buf); return cm_error(CM_ERR_OOM, "%s: zlib init failed", path); }
    uint64_t in_done = 0, out_done = 0;
    int rc = Z_OK;
    while (rc == Z_OK) {
        uInt in_chunk = (uInt)((csize - in_done) > (1u << 30) ? (1u << 30) : (csize - in_done));
        uInt out_chunk = (uInt)((usize - out_done) > (1u << 30) ? (1u << 30) : (usize - out_done));
        zs.next_in = (Bytef *)(src + in_done);
        zs.avail_in = in_chunk;
        zs.next_out = buf + out_done;
        zs.avail_out = out_chunk;
        rc = inflate(&zs, Z_NO_FLUSH);
        in_done += in_chunk - zs.avail_in;
        out_done += out_chunk - zs.avail_out;
        if (rc == Z_OK && zs.avail_in == in_chunk && zs.avail_out == out_chunk) break;   /* no progress */
        if (rc == Z_BUF_ERROR) break;
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_done != usize) {
        free(buf);
        return cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': deflate data corrupt or truncated", path, name);
    }
    *out = buf;
    return CM_OK;
}

cm_status cm_zip_open(CmZip *z, const uint8_t *img, size_t len, const char *path) {
    memset(z, 0, sizeof *z);
    if (len < 22) return zerr(path, "no end-of-central-directory record");
    /* find the end-of-central-directory record: last "PK\5\6" within the final 64 KiB + 22 */
    size_t lo = len > 65557 ? len - 65557 : 0;
    const uint8_t *eocd = NULL;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (img[i] == 'P' && img[i + 1] == 'K' && img[i + 2] == 5 && img[i + 3] == 6 &&
            i + 22 + rd16(img + i + 20) == len) { eocd = img + i; break; }
    if (!eocd) return zerr(path, "no end-of-central-directory record (file truncated?)");
    if (rd16(eocd + 4) != 0 || rd16(eocd + 6) != 0) return cm_error(CM_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported", path);
    uint64_t n = rd16(eocd + 10), cd_size = rd32(eocd + 12), cd_off = rd32(eocd + 16);
    if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        size_t eo = (size_t)(eocd - img);
        if (eo < 20 || rd32(eocd - 20) != 0x07064b50) return zerr(path, "zip64 locator missing");
        uint64_t z64 = rd64(eocd - 20 + 8);
        if (z64 > eo - 20 || eo - 20 - z64 < 56 || rd32(img + z64) != 0x06064b50) return zerr(path, "zip64 end record out of range");
        n = rd64(img + z64 + 32);
        cd_size = rd64(img + z64 + 40);
        cd_off = rd64(img + z64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) return zerr(path, "central directory out of range");
    if (n > ZIP_MAX_ENTRIES || n * 46 > cd_size) return zerr(path, "entry count does not fit the central directory");
    z->e = calloc(n ? n : 1, sizeof *z->e);
    if (!z->e) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    const uint8_t *p = img + cd_off, *end = img + cd_off + cd_size;
    cm_status st = CM_OK;
    for (uint64_t k = 0; k < n && !st; k++) {
        if (end - p < 46 || rd32(p) != 0x02014b50) { st = zerr(path, "bad central directory entry"); break; }
        uint16_t flags = rd16(p + 8), method = rd16(p + 10);
        uint32_t crc = rd32(p + 16);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), loff = rd32(p + 42);
        size_t nl = rd16(p + 28), xl = rd16(p + 30), cl = rd16(p + 32);
        if ((size_t)(end - p) < 46 + nl + xl + cl) { st = zerr(path, "central directory entry overruns"); break; }
        CmZipEntry *e = &z->e[z->n];
        e->name = malloc(nl + 1);
        if (!e->name) { st = cm_error(CM_ERR_OOM, "%s: out of memory", path); break; }
        memcpy(e->name, p + 46, nl);
        e->name[nl] = 0;
        z->n++;
        if (memchr(e->name, 0, nl)) { st = cm_error(CM_ERR_FORMAT, "%s: zip entry name contains a NUL byte", path); break; }
        /* zip64 extra field: the 0xffffffff fields, in the order usize, csize, offset */
        for (const uint8_t *x = p + 46 + nl, *xe = x + xl; xe - x >= 4;) {
            uint16_t id = rd16(x), sz = rd16(x + 2);
            if (xe - x - 4 < sz) { st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': extra field overruns", path, e->name); break; }
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = q + sz;
                if (usize == 0xffffffffu) { if (qe - q < 8) goto bad64; usize = rd64(q); q += 8; }
                if (csize == 0xffffffffu) { if (qe - q < 8) goto bad64; csize = rd64(q); q += 8; }
                if (loff == 0xffffffffu) { if (qe - q < 8) goto bad64; loff = rd64(q); q += 8; }
            }
            x += 4 + sz;
            continue;
        bad64:
            st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': zip64 extra field too short", path, e->name);
            break;
        }
        if (st) break;
        p += 46 + nl + xl + cl;
        if (flags & 1) { st = cm_error(CM_ERR_UNSUPPORTED, "%s: zip entry '%s' is encrypted", path, e->name); break; }
        if (method != 0 && method != 8) {
            st = cm_error(CM_ERR_UNSUPPORTED, "%s: zip entry '%s' uses compression method %u (only stored and deflate)",
                          path, e->name, method);
            break;
        }
        if (loff > len || len - loff < 30 || rd32(img + loff) != 0x04034b50) {
            st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': local header out of range or corrupt", path, e->name);
            break;
        }
        uint64_t doff = loff + 30 + rd16(img + loff + 26) + rd16(img + loff + 28);
        if (doff > len || csize > len - doff) {
            st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': data [%llu, +%llu) beyond the end of the file (%zu bytes; "
                          "truncated?)", path, e->name, (unsigned long long)doff, (unsigned long long)csize, len);
            break;
        }
        if (method == 0) {
            if (csize != usize) { st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': stored sizes differ", path, e->name); break; }
            e->data = img + doff;
            e->size = (size_t)usize;
        } else {
            uint8_t *buf = NULL;
            if ((st = inflate_entry(img + doff, csize, usize, &buf, path, e->name))) break;
            e->data = buf;
            e->size = (size_t)usize;
            e->inflated = true;
        }
        if (crc32_big(e->data, e->size) != crc) {
            st = cm_error(CM_ERR_FORMAT, "%s: zip entry '%s': CRC-32 mismatch (corrupt file)", path, e->name);
            break;
        }
    }
    if (st) cm_zip_close(z);
    return st;
}

int cm_zip_find(const CmZip *z, const char *name) {
    for (int i = 0; i < z->n; i++) if (!strcmp(z->e[i].name, name)) return i;
    return -1;
}

void cm_zip_close(CmZip *z) {
    for (int i = 0; i < z->n; i++) {
        free(z->e[i].name);
        if (z->e[i].inflated) free((void *)z->e[i].data);
    }
    free(z->e);
    memset(z, 0, sizeof *z);
}
