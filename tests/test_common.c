/*
 * test_common.c — error messages, atomic writes, the option parser's building blocks, the RNG.
 */
#include "testlib.h"
#include "common/common.h"
#include "common/rng.h"
#include <unistd.h>

static void test_error_message(void) {
    cm_clear_error();
    cm_status st = cm_error(CM_ERR_FORMAT, "%s: header length %d", "x.safetensors", 7);
    CHECK(st == CM_ERR_FORMAT, "status %d", st);
    cm_error_prefix("loading %s", "model");
    CHECK(!strcmp(cm_last_error(), "loading model: x.safetensors: header length 7"), "got '%s'", cm_last_error());
    CHECK(cm_last_status() == CM_ERR_FORMAT, "status");
}

static void test_atomic_write(void) {
    char dir[] = "/tmp/cmtestXXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/a/b/file.bin", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    CHECK(cm_mkdir_p(sub) == CM_OK, "%s", cm_last_error());
    CHECK(cm_write_file_atomic(path, "hello", 5) == CM_OK, "%s", cm_last_error());
    uint8_t *buf; size_t n;
    CHECK(cm_read_file(path, 100, &buf, &n) == CM_OK && n == 5 && !memcmp(buf, "hello", 5), "read back");
    cm_free(buf);
    CHECK(cm_read_file(path, 3, &buf, &n) == CM_ERR_FORMAT, "size limit refused");
    CHECK(strstr(cm_last_error(), "file.bin") != NULL, "names the file: %s", cm_last_error());
    /* an aborted write leaves the old file intact and no temp file */
    CmAtomicFile af;
    REQUIRE(cm_atomic_open(&af, path) == CM_OK, "open");
    cm_atomic_write(&af, "XX", 2);
    cm_atomic_abort(&af);
    CHECK(cm_read_file(path, 100, &buf, &n) == CM_OK && n == 5 && !memcmp(buf, "hello", 5), "old content kept");
    cm_free(buf);
    CHECK(tl_rm_rf(dir) == 0, "cleanup");
}

static void test_sha256(void) {
    char hex[65];
    cm_sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "%s", hex);
}

static void test_rng(void) {
    CmRng a, b;
    cm_rng_seed(&a, 42); cm_rng_seed(&b, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= cm_rng_u64(&a) == cm_rng_u64(&b);
    CHECK(same, "same seed, same stream");
    double mean = 0; int n = 100000, inrange = 1;
    for (int i = 0; i < n; i++) { float u = cm_rng_uniform(&a); inrange &= u >= 0 && u < 1; mean += u; }
    CHECK(inrange, "uniform in [0,1)");
    CHECK(fabs(mean / n - 0.5) < 0.01, "uniform mean %f", mean / n);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[cm_rng_below(&a, 7)]++;
    for (int k = 0; k < 7; k++) CHECK(abs(counts[k] - 10000) < 500, "below(7) bucket %d: %d", k, counts[k]);
}

int main(void) {
    RUN(test_error_message);
    RUN(test_atomic_write);
    RUN(test_sha256);
    RUN(test_rng);
    return tl_summary("test_common");
}
