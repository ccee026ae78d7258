/*
 * common.h — status codes, the thread-local error message, logging, checked allocation,
 * file helpers (whole-file read, atomic write), timers and thread setup.
 *
 * Error convention (every library function):
 *   - returns CM_OK (0) on success, a negative cm_status on failure;
 *   - on failure it has called cm_error(status, fmt, ...) with a message that names the file,
 *     tensor, flag or sample at fault. The message is thread-local: read it with cm_last_error()
 *     (public: clipmod_last_error()). A caller that adds context uses cm_error_prefix().
 *   - library code never exits; only src/cli/ does.
 * defines: cm_status, cm_error, cm_last_error, cm_log*, cm_malloc/calloc, cm_set_alloc_hook, cm_read_file,
 *          cm_write_file_atomic, cm_now, cm_threads_*
 */
#ifndef CM_COMMON_H
#define CM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include "clipmod.h"

typedef clipmod_status cm_status;
#define CM_OK          CLIPMOD_OK
#define CM_ERR_IO      CLIPMOD_ERR_IO
#define CM_ERR_FORMAT  CLIPMOD_ERR_FORMAT
#define CM_ERR_OOM     CLIPMOD_ERR_OOM
#define CM_ERR_ARG     CLIPMOD_ERR_ARG
#define CM_ERR_DECODE  CLIPMOD_ERR_DECODE
#define CM_ERR_SHAPE   CLIPMOD_ERR_SHAPE
#define CM_ERR_NET     CLIPMOD_ERR_NET
#define CM_ERR_UNSUPPORTED CLIPMOD_ERR_UNSUPPORTED

/* Set the thread-local error message; returns `st` so that `return cm_error(...)` reads well. */
cm_status cm_error(cm_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend context to the current message: "ctx: <old message>"; returns the current status. */
cm_status cm_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *cm_last_error(void);
cm_status cm_last_status(void);
void cm_clear_error(void);

/* Logging: levels 0 error, 1 warn, 2 info, 3 debug. Default sink: stderr, level info.
   CLIPMOD_LOG=debug|info|warn|error in the environment changes the level. */
enum { CM_LOG_ERROR = 0, CM_LOG_WARN = 1, CM_LOG_INFO = 2, CM_LOG_DEBUG = 3 };
void cm_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set the level (CM_LOG_*; overrides CLIPMOD_LOG); cm_log_level() reads it. */
void cm_log_set_level(int level);
int cm_log_level(void);
/* Every message that passes the level also goes to the sink, when one is set (a training run
   tees its log into <logs>/<name>/out.log this way). NULL removes it. */
typedef void (*cm_log_sink_fn)(int level, const char *msg, void *ctx);
void cm_log_set_sink(cm_log_sink_fn fn, void *ctx);
#define cm_warn(...)  cm_log(CM_LOG_WARN, __VA_ARGS__)
#define cm_info(...)  cm_log(CM_LOG_INFO, __VA_ARGS__)
#define cm_debug(...) cm_log(CM_LOG_DEBUG, __VA_ARGS__)

/* Internal invariants (never input errors): print file:line and abort, in every build. */
#define CM_ASSERT(x) do { if (!(x)) cm_assert_fail(#x, __FILE__, __LINE__); } while (0)
void cm_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

/* Checked allocation: NULL + cm_error(CM_ERR_OOM, "<what>: ...") on failure or size overflow.
   Memory is 64-byte aligned (AVX-512 friendly); release with cm_free. */
void *cm_malloc(size_t n, const char *what);
void *cm_calloc(size_t count, size_t size, const char *what);
void cm_free(void *p);
/* Test hook (fault injection): when set, every cm_malloc/cm_calloc first calls fn(bytes, what,
   ctx); false makes that allocation fail as if the system were out of memory (NULL + CM_ERR_OOM).
   NULL removes the hook. Process-wide; set it while no other thread allocates. */
typedef bool (*cm_alloc_hook_fn)(size_t bytes, const char *what, void *ctx);
void cm_set_alloc_hook(cm_alloc_hook_fn fn, void *ctx);
/* a*b with overflow check; returns false on overflow. */
static inline bool cm_mul_ok(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* Read a whole file (max_bytes guards against absurd sizes); *out is cm_malloc'd, NUL-terminated. */
cm_status cm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len);
/* Write atomically: path.tmp.<pid>, fsync, rename, fsync of the directory. */
cm_status cm_write_file_atomic(const char *path, const void *data, size_t len);
/* Streaming form for large files: open a temp file, write through it, then commit or abort. */
typedef struct { FILE *f; char *path; char *tmp_path; } CmAtomicFile;
cm_status cm_atomic_open(CmAtomicFile *af, const char *path);
cm_status cm_atomic_write(CmAtomicFile *af, const void *data, size_t len);
cm_status cm_atomic_commit(CmAtomicFile *af);
void cm_atomic_abort(CmAtomicFile *af);
cm_status cm_mkdir_p(const char *path);
bool cm_file_exists(const char *path);
/* Remove a file or a folder with everything in it (no symlink is followed). A missing path is
   not an error. */
cm_status cm_remove_tree(const char *path);
/* Remove the leftovers of interrupted atomic writes in `dir`: entries named "<x>.tmp.<pid>" (the
   temp names of cm_atomic_* and of prepare's temporary output folder) whose process <pid> no
   longer exists. With `stem` only "<stem>.tmp.<pid>" is considered. Entries of live processes
   are kept. Returns how many were removed (a missing dir: 0). */
int cm_remove_stale_tmp(const char *dir, const char *stem);

/* Monotonic seconds. */
double cm_now(void);

/* Threads: one OpenMP runtime for everything (OpenBLAS-openmp, oneDNN, our loops).
   cm_threads_set(n<=0) uses CLIPMOD_THREADS or the core count. */
void cm_threads_set(int n);
int cm_threads_get(void);

/* SHA-256 (OpenSSL libcrypto) of a buffer, as 64 lowercase hex chars + NUL. */
void cm_sha256_hex(const void *data, size_t len, char out[65]);

#endif
