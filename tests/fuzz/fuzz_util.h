/*
 * fuzz_util.h — helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c, docs/fuzzing.md).
 *
 *   fz_file(data, n)   the input as a file: an anonymous memfd rewritten each call, returned as
 *                      "/proc/self/fd/N" for APIs that take a path (tar/gzip, checkpoint metadata).
 *                      Reads of it end exactly at n bytes, as with a real file.
 *   fz_quiet()         logging at error level only (the fuzz runs discard stdout/stderr anyway).
 *   FZ(call)           the call's cm_status; with FUZZ_DEBUG=1 in the environment a failure prints
 *                      cm_last_error() (to check that seeds get past the parsers:
 *                      FUZZ_DEBUG=1 build-fuzz/fuzz_x FILES...).
 *
 * Every target includes this once; nothing here is linked into the library.
 */
#ifndef CM_FUZZ_UTIL_H
#define CM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"

static inline const char *fz_file(const uint8_t *data, size_t n) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("clipmod-fuzz", MFD_CLOEXEC);
        if (fd < 0) { perror("memfd_create"); abort(); }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, data, n, 0) != (ssize_t)n)) { perror("memfd write"); abort(); }
    return path;
}

static inline void fz_quiet(void) { setenv("CLIPMOD_LOG", "error", 1); }

static int fz_debug = -1;
static inline cm_status fz_check(cm_status st, const char *what) {
    if (fz_debug < 0) fz_debug = getenv("FUZZ_DEBUG") != NULL;
    if (st && fz_debug) fprintf(stderr, "[fuzz] %s: %s\n", what, cm_last_error());
    if (!st && fz_debug) fprintf(stderr, "[fuzz] %s: ok\n", what);
    return st;
}
#define FZ(call) fz_check((call), #call)

/* Little-endian reads of the input (for targets that take parameters from its first bytes). */
static inline uint32_t fz_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

#endif
