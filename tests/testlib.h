/*
 * testlib.h — the tiny test harness every tests/test_*.c uses (one executable per file).
 *
 *   static void test_something(void) { CHECK(x == 1, "x is %d", x); ... }
 *   int main(void) { RUN(test_something); return tl_summary("test_file"); }
 *
 * A test case passes when none of its CHECKs failed. tl_summary prints "<file>: N passed, N failed"
 * and returns the exit status; tests/run_tests.sh adds the counts up.
 * Tests that need ../shared (golden data, real datasets) call SHARED_OR_SKIP(): when the folder is
 * absent they print a clear "skipped" line, except under CI (CI=true), where it is a failure.
 *
 * Shared helpers (one copy here instead of one per test file):
 *   REQ_OK(call)            REQUIRE(call == CM_OK), evaluating call once; prints cm_last_error().
 *   tl_tmpdir_make(tag)     create a fresh /tmp/cm_test_<tag>_XXXXXX folder (mkdtemp) for this run;
 *   tl_tmp(name)            "<that folder>/<name>" (8 rotating buffers, so several may be live);
 *   tl_tmpdir_remove()      remove it recursively at the end (tl_rm_rf removes any path).
 *   tl_write_file(p, d, n)  write n bytes to p (0 on success, -1 on failure); tl_write_text(p, s);
 *   tl_read_golden(rel, &n) ../shared/<rel> read whole into a cm_malloc'd buffer (NULL if unreadable);
 *   tl_read_golden_json(rel)  the same parsed as JSON (cJSON_Delete it; NULL if unreadable/invalid).
 *   tl_clipmod_bin()        the CLI under test: $CLIPMOD_BIN, else $BUILD/clipmod (so `make asan`
 *                           runs the sanitised one), else build/clipmod.
 *   tl_run_clipmod(args, out, cap, err, ecap)  run "<bin> <args>" through the shell; stdout and
 *                           stderr land NUL-terminated in out / err (either may be NULL: discarded);
 *                           returns the exit status, -1 when it did not exit normally.
 *   CLIPMOD_BIN_OR_SKIP()   skip the current case when that binary is missing.
 *   tl_f32(file, name, &n)  a golden tensor of an open safetensors file as float data (NULL when it
 *                           is absent or not F32).
 */
#ifndef CM_TESTLIB_H
#define CM_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/common.h"
#include "io/tensorfile.h"

static int tl_pass, tl_fail, tl_skip, tl_case_failed;
static const char *tl_case;

#define CHECK(cond, ...) do { if (!(cond)) { \
    tl_case_failed = 1; \
    fprintf(stderr, "  FAIL %s (%s:%d): %s: ", tl_case, __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* CHECK that returns from the test case when it fails (for preconditions); evaluates cond once. */
#define REQUIRE(cond, ...) do { if (!(cond)) { \
    tl_case_failed = 1; \
    fprintf(stderr, "  FAIL %s (%s:%d): %s: ", tl_case, __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return; } } while (0)

#define RUN(fn) do { tl_case = #fn; tl_case_failed = 0; int tl_before_skip = tl_skip; fn(); \
    if (tl_skip > tl_before_skip) { fprintf(stderr, "  skip %s\n", #fn); } \
    else if (tl_case_failed) { tl_fail++; fprintf(stderr, "  fail %s\n", #fn); } \
    else { tl_pass++; fprintf(stderr, "  ok   %s\n", #fn); } } while (0)

static inline int tl_summary(const char *file) {
    printf("%s: %d passed, %d failed, %d skipped\n", file, tl_pass, tl_fail, tl_skip);
    return tl_fail ? 1 : 0;
}

/* Root of the shared data: $CLIPMOD_SHARED or ../shared (tests run from the repository root). */
static inline const char *tl_shared_root(void) {
    const char *e = getenv("CLIPMOD_SHARED");
    return e && *e ? e : "../shared";
}
static inline const char *tl_shared(const char *rel) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tl_shared_root(), rel);
    return buf[k];
}
static inline int tl_have_shared(void) {
    struct stat st;
    return stat(tl_shared("golden"), &st) == 0;
}
/* Skip the current case when ../shared is absent; under CI a missing ../shared is a failure. */
#define SHARED_OR_SKIP() do { if (!tl_have_shared()) { \
    const char *ci = getenv("CI"); \
    if (ci && *ci && strcmp(ci, "false")) { CHECK(0, "shared data %s missing under CI", tl_shared_root()); return; } \
    fprintf(stderr, "  SKIPPED %s: shared data not found at %s (set CLIPMOD_SHARED)\n", tl_case, tl_shared_root()); \
    tl_skip++; return; } } while (0)

/* Largest |a-b| over n floats. */
static inline double tl_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}
static inline double tl_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}
/* CHECK that max|got-want| <= tol, printing the worst difference and the first values. */
#define CHECK_CLOSE(got, want, n, tol, label) do { \
    double tl_d = tl_max_abs_diff((got), (want), (n)); \
    CHECK(tl_d <= (tol), "%s: max abs diff %.3g > tol %.3g (got[0]=%.7g want[0]=%.7g)", \
          (label), tl_d, (double)(tol), (double)(got)[0], (double)(want)[0]); } while (0)

/* ---- shared helpers (see the top of the file) ------------------------------------------------- */

#define REQ_OK(call) do { cm_status tl_st_ = (call); \
    REQUIRE(tl_st_ == CM_OK, "%s: %s", #call, cm_last_error()); } while (0)

static char tl_tmpdir[256];

/* Create /tmp/cm_test_<tag>_XXXXXX; returns its path or NULL (with errno). */
static inline const char *tl_tmpdir_make(const char *tag) {
    snprintf(tl_tmpdir, sizeof tl_tmpdir, "/tmp/cm_test_%s_XXXXXX", tag);
    return mkdtemp(tl_tmpdir);
}
static inline const char *tl_tmp(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tl_tmpdir, name);
    return buf[k];
}
static inline int tl_rm_one_(const char *p, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)type; (void)ftw;
    return remove(p);
}
/* Remove a file or folder tree; 0 on success. */
static inline int tl_rm_rf(const char *path) {
    return nftw(path, tl_rm_one_, 16, FTW_DEPTH | FTW_PHYS);
}
static inline void tl_tmpdir_remove(void) {
    if (tl_tmpdir[0] && tl_rm_rf(tl_tmpdir)) fprintf(stderr, "could not remove %s\n", tl_tmpdir);
}

static inline int tl_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}
static inline int tl_write_text(const char *path, const char *s) { return tl_write_file(path, s, strlen(s)); }
static inline uint8_t *tl_read_golden(const char *rel, size_t *len) {
    uint8_t *b = NULL;
    if (cm_read_file(tl_shared(rel), (size_t)1 << 26, &b, len) != CM_OK) return NULL;
    return b;
}
static inline cJSON *tl_read_golden_json(const char *rel) {
    size_t n = 0;
    uint8_t *b = tl_read_golden(rel, &n);
    if (!b) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    cm_free(b);
    return j;
}

static inline const char *tl_clipmod_bin(void) {
    static char b[512];
    const char *e = getenv("CLIPMOD_BIN");
    if (e && *e) return e;
    const char *d = getenv("BUILD");
    snprintf(b, sizeof b, "%s/clipmod", d && *d ? d : "build");
    return b;
}
#define CLIPMOD_BIN_OR_SKIP() do { if (access(tl_clipmod_bin(), X_OK)) { \
    fprintf(stderr, "  SKIPPED: %s missing\n", tl_clipmod_bin()); tl_skip++; return; } } while (0)

static inline void tl_slurp_(const char *path, char *buf, size_t cap) {
    if (!buf || !cap) return;
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t k = fread(buf, 1, cap - 1, f);
    buf[k] = 0;
    fclose(f);
}
static inline int tl_run_clipmod(const char *args, char *out, size_t cap, char *err, size_t ecap) {
    static int seq;
    char of[128], ef[128], cmd[8192];
    snprintf(of, sizeof of, "/tmp/cm_test_run_%d_%d.out", (int)getpid(), ++seq);
    snprintf(ef, sizeof ef, "/tmp/cm_test_run_%d_%d.err", (int)getpid(), seq);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", tl_clipmod_bin(), args, out ? of : "/dev/null", err ? ef : "/dev/null");
    int st = system(cmd);
    if (out) { tl_slurp_(of, out, cap); unlink(of); }
    if (err) { tl_slurp_(ef, err, ecap); unlink(ef); }
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline const float *tl_f32(CmTensorFile *f, const char *name, size_t *n) {
    const CmTensorView *v = cm_tensorfile_find(f, name);
    if (!v || v->dtype != CM_F32) return NULL;
    if (n) *n = v->numel;
    return (const float *)v->data;
}

#endif
