/*
 * tar.h — a streaming tar reader and an atomic tar writer for WebDataset shards (DESIGN §4.1).
 *
 * Reader: ustar and GNU magic, the ustar `prefix` field, GNU `L`/`K` long names, PAX `x`
 * (per member) and `g` (global) headers with `path` and `size`, regular typeflags '0', '\0', '7',
 * everything else (directories, links, devices, sparse, unknown) skipped; octal or base-256
 * numbers; header checksums verified; whole-stream gzip detected by its magic bytes (zlib).
 * Members larger than a limit are skipped without being allocated. Every error names the shard
 * and the byte offset (in the uncompressed tar stream) of the header at fault.
 *
 * Writer: POSIX ustar headers ("ustar\0" "00", mode 0444, uid/gid 0, uname/gname "bigdata", a
 * fixed mtime), a PAX `x` header only when a name does not fit ustar (too long or not ASCII) or a
 * size needs it, end-of-archive blocks padded to a 10240-byte record, written to a temp file
 * and renamed into place (atomic). Python's tarfile and webdataset read what it writes.
 * defines: CmTarReader, CmTarEntry, cm_tar_open/next/close, CmTarWriter, cm_tar_writer_*
 */
#ifndef CM_TAR_H
#define CM_TAR_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "common/common.h"

#define CM_TAR_BLOCK 512
#define CM_TAR_DEFAULT_MAX_MEMBER ((uint64_t)256 << 20)   /* 256 MiB: larger members are skipped */
#define CM_TAR_MAX_META ((uint64_t)1 << 20)               /* PAX / GNU long-name bodies: 1 MiB */

typedef struct CmTarReader CmTarReader;

typedef struct {
    const char *name;      /* full member path (PAX path > GNU long name > prefix/name); valid until next call */
    uint64_t size;         /* data size in bytes */
    uint64_t offset;       /* offset of the member's first header block in the uncompressed stream */
    const uint8_t *data;   /* size bytes (NUL-terminated) when the reader loads data; else NULL */
} CmTarEntry;

/* Results of cm_tar_next (negative values are cm_status errors). */
enum { CM_TAR_END = 0, CM_TAR_MEMBER = 1 };

/* Open a shard (plain or gzip-compressed tar). load_data: read member bytes into entry->data
   (one buffer reused across members); otherwise data is skipped. max_member == 0 means
   CM_TAR_DEFAULT_MAX_MEMBER. */
cm_status cm_tar_open(const char *path, bool load_data, uint64_t max_member, CmTarReader **out);
/* Next regular member. Returns CM_TAR_MEMBER, CM_TAR_END, or a negative cm_status with the error
   message set (naming shard and offset). After an error, cm_tar_fatal() says whether the stream
   can go on: an over-limit member is skipped and reading may continue (the entry's name and size
   are still filled in); a truncated stream, a bad checksum or garbage stops the reader. */
int cm_tar_next(CmTarReader *r, CmTarEntry *e);
bool cm_tar_fatal(const CmTarReader *r);
bool cm_tar_is_gzip(const CmTarReader *r);
/* Whether the stream ended without the two zero blocks (accepted, as Python's tarfile does). */
bool cm_tar_missing_end(const CmTarReader *r);
const char *cm_tar_path(const CmTarReader *r);
void cm_tar_close(CmTarReader *r);

/* ---- writer ---- */
typedef struct CmTarWriter CmTarWriter;
/* mtime: the timestamp written in every header (deterministic output). */
cm_status cm_tar_writer_open(const char *path, int64_t mtime, CmTarWriter **out);
cm_status cm_tar_writer_add(CmTarWriter *w, const char *name, const void *data, size_t len);
/* Writes the end-of-archive blocks and atomically renames the file into place; frees w. */
cm_status cm_tar_writer_close(CmTarWriter *w);
/* Discards the temp file; frees w. */
void cm_tar_writer_abort(CmTarWriter *w);
/* Bytes written so far (payload + headers). */
uint64_t cm_tar_writer_bytes(const CmTarWriter *w);

#endif
