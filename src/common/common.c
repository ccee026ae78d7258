/*
 * common.c — error state, logging, allocation, file helpers, timers, threads.
 */
#include "common/common.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <omp.h>
#include <openssl/evp.h>

// ----------------------------------------------------------------------------
// errors

#define CM_ERRMSG_MAX 1024
static _Thread_local char tl_msg[CM_ERRMSG_MAX];
static _Thread_local cm_status tl_status;

cm_status cm_error(cm_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    tl_status = st;
    return st;
}

cm_status cm_error_prefix(const char *fmt, ...) {
    char ctx[512], old[CM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, tl_msg, sizeof old);
    /* "ctx: old", cut at the buffer's end (a long message loses its tail, never the context) */
    size_t n = strlen(ctx);
    if (n > sizeof tl_msg - 3) n = sizeof tl_msg - 3;
    memcpy(tl_msg, ctx, n);
    memcpy(tl_msg + n, ": ", 2);
    size_t room = sizeof tl_msg - n - 3, k = strnlen(old, room);
    memcpy(tl_msg + n + 2, old, k);
    tl_msg[n + 2 + k] = 0;
    return tl_status;
}

const char *cm_last_error(void) { return tl_msg[0] ? tl_msg : "no error"; }
cm_status cm_last_status(void) { return tl_status; }
void cm_clear_error(void) { tl_msg[0] = 0; tl_status = CM_OK; }

const char *clipmod_last_error(void) { return cm_last_error(); }

const char *clipmod_status_str(clipmod_status st) {
    switch (st) {
    case CLIPMOD_OK: return "ok";
    case CLIPMOD_ERR_IO: return "I/O error";
    case CLIPMOD_ERR_FORMAT: return "bad file format";
    case CLIPMOD_ERR_OOM: return "out of memory";
    case CLIPMOD_ERR_ARG: return "bad argument";
    case CLIPMOD_ERR_DECODE: return "decode error";
    case CLIPMOD_ERR_SHAPE: return "shape mismatch";
    case CLIPMOD_ERR_NET: return "network error";
    case CLIPMOD_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

void cm_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "clipmod: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
    abort();
}

// ----------------------------------------------------------------------------
// logging

static int log_level = -1;

static int log_level_get(void) {
    if (log_level < 0) {
        const char *e = getenv("CLIPMOD_LOG");
        log_level = CM_LOG_INFO;
        if (e) {
            if (!strcmp(e, "debug")) log_level = CM_LOG_DEBUG;
            else if (!strcmp(e, "warn")) log_level = CM_LOG_WARN;
            else if (!strcmp(e, "error")) log_level = CM_LOG_ERROR;
        }
    }
    return log_level;
}

void cm_log_set_level(int level) { log_level = level < CM_LOG_ERROR ? CM_LOG_ERROR : level > CM_LOG_DEBUG ? CM_LOG_DEBUG : level; }
int cm_log_level(void) { return log_level_get(); }

static cm_log_sink_fn log_sink;
static void *log_sink_ctx;
void cm_log_set_sink(cm_log_sink_fn fn, void *ctx) { log_sink = fn; log_sink_ctx = ctx; }

void cm_log(int level, const char *fmt, ...) {
    if (level > log_level_get()) return;
    static const char *tag[] = {"error", "warning", "info", "debug"};
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "clipmod %s: %s\n", tag[level], buf);
    if (log_sink) log_sink(level, buf, log_sink_ctx);
}

// ----------------------------------------------------------------------------
// memory

static cm_alloc_hook_fn g_alloc_hook;
static void *g_alloc_hook_ctx;

void cm_set_alloc_hook(cm_alloc_hook_fn fn, void *ctx) {
    g_alloc_hook_ctx = ctx;
    __atomic_store_n(&g_alloc_hook, fn, __ATOMIC_RELEASE);
}

void *cm_malloc(size_t n, const char *what) {
    cm_alloc_hook_fn hook = __atomic_load_n(&g_alloc_hook, __ATOMIC_ACQUIRE);
    if (hook && !hook(n, what, g_alloc_hook_ctx)) {
        cm_error(CM_ERR_OOM, "%s: cannot allocate %zu bytes (allocation hook)", what, n);
        return NULL;
    }
    if (n == 0) n = 1;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n) { cm_error(CM_ERR_OOM, "%s: size overflow", what); return NULL; }
    void *p = aligned_alloc(64, rounded);
    if (!p) cm_error(CM_ERR_OOM, "%s: cannot allocate %zu bytes", what, n);
    return p;
}

void *cm_calloc(size_t count, size_t size, const char *what) {
    size_t n;
    if (!cm_mul_ok(count, size, &n)) { cm_error(CM_ERR_OOM, "%s: size overflow (%zu x %zu)", what, count, size); return NULL; }
    void *p = cm_malloc(n, what);
    if (p) memset(p, 0, n);
    return p;
}

void cm_free(void *p) { free(p); }

// ----------------------------------------------------------------------------
// files

cm_status cm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len) {
    *out = NULL; *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return cm_error(CM_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return cm_error(CM_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %zu", path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = cm_malloc(n + 1, path);
    if (!buf) { fclose(f); return CM_ERR_OOM; }
    if (n && fread(buf, 1, n, f) != n) {
        fclose(f); cm_free(buf);
        return cm_error(CM_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf; *len = n;
    return CM_OK;
}

static char *cm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

cm_status cm_atomic_open(CmAtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = cm_strdup(path);
    af->tmp_path = malloc(n);
    if (!af->path || !af->tmp_path) {   /* nothing created yet: free, don't unlink */
        free(af->path); free(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        cm_status st = cm_error(CM_ERR_IO, "%s: cannot create: %s", af->tmp_path, strerror(errno));
        cm_atomic_abort(af);
        return st;
    }
    return CM_OK;
}

cm_status cm_atomic_write(CmAtomicFile *af, const void *data, size_t len) {
    if (len && fwrite(data, 1, len, af->f) != len)
        return cm_error(CM_ERR_IO, "%s: write failed: %s", af->tmp_path, strerror(errno));
    return CM_OK;
}

static void fsync_dir_of(const char *path) {
    char *copy = cm_strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

cm_status cm_atomic_commit(CmAtomicFile *af) {
    cm_status st = CM_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        st = cm_error(CM_ERR_IO, "%s: flush/fsync failed: %s", af->tmp_path, strerror(errno));
    if (fclose(af->f) != 0 && st == CM_OK)
        st = cm_error(CM_ERR_IO, "%s: close failed: %s", af->tmp_path, strerror(errno));
    af->f = NULL;
    if (st == CM_OK && rename(af->tmp_path, af->path) != 0)
        st = cm_error(CM_ERR_IO, "%s: rename from %s failed: %s", af->path, af->tmp_path, strerror(errno));
    if (st == CM_OK) fsync_dir_of(af->path);
    else unlink(af->tmp_path);
    free(af->path); free(af->tmp_path);
    af->path = af->tmp_path = NULL;
    return st;
}

void cm_atomic_abort(CmAtomicFile *af) {
    if (af->f) { fclose(af->f); af->f = NULL; }
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path); free(af->tmp_path);
    af->path = af->tmp_path = NULL;
}

cm_status cm_write_file_atomic(const char *path, const void *data, size_t len) {
    CmAtomicFile af = {0};
    cm_status st = cm_atomic_open(&af, path);
    if (st) return st;
    st = cm_atomic_write(&af, data, len);
    if (st) { cm_atomic_abort(&af); return st; }
    return cm_atomic_commit(&af);
}

cm_status cm_mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return cm_error(CM_ERR_ARG, "%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return cm_error(CM_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return CM_OK;
}

bool cm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)ftw;
    int r = type == FTW_DP ? rmdir(p) : unlink(p);
    return r && errno != ENOENT ? -1 : 0;
}

cm_status cm_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? CM_OK : cm_error(CM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) && errno != ENOENT) return cm_error(CM_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return CM_OK;
    }
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return cm_error(CM_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return CM_OK;
}

/* "<x>.tmp.<digits>" -> pid, else 0 */
static long tmp_pid(const char *name, const char *stem) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    while (strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
    if (stem && ((size_t)(t - name) != strlen(stem) || strncmp(name, stem, strlen(stem)))) return 0;
    if (t == name) return 0;
    const char *d = t + 5;
    if (!*d || strlen(d) > 9) return 0;
    for (const char *q = d; *q; q++) if (*q < '0' || *q > '9') return 0;
    return atol(d);
}

int cm_remove_stale_tmp(const char *dir, const char *stem) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        long pid = tmp_pid(e->d_name, stem);
        if (pid <= 0) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive (or not ours to judge) */
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        if (cm_remove_tree(path) == CM_OK) {
            removed++;
            cm_info("removed %s (left by process %ld, which no longer runs)", path, pid);
        } else cm_warn("could not remove the leftover %s: %s", path, cm_last_error());
    }
    closedir(d);
    return removed;
}

// ----------------------------------------------------------------------------
// time, threads, hashing

double cm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

extern void openblas_set_num_threads(int);

void cm_threads_set(int n) {
    if (n <= 0) {
        const char *e = getenv("CLIPMOD_THREADS");
        n = e ? atoi(e) : 0;
        if (n <= 0) n = omp_get_num_procs();
    }
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int cm_threads_get(void) { return omp_get_max_threads(); }

void cm_sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = 0;
}
