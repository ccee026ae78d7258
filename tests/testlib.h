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
 */
#ifndef CM_TESTLIB_H
#define CM_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#endif
