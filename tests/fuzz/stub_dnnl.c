/*
 * stub_dnnl.c — linked into the fuzz binaries instead of src/kernels/dnnl_matmul.c (Makefile,
 * docs/fuzzing.md). Debian's oneDNN is built against gcc's libgomp, which the fuzz builds must not
 * load; the model code that the config targets pull in references the matmul entry points, but no
 * target runs a forward pass. Reaching one of them is a harness bug and aborts loudly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels_internal.h"

void cm_mm_key_init(CmMatmulKey *k, int nd) {
    memset(k, 0, sizeof *k);
    k->nd = nd;
    k->scale = 1.0f;
}

static void no_dnnl(void) {
    fprintf(stderr, "fuzz build: a target reached a oneDNN matrix product (not linked: it needs libgomp)\n");
    abort();
}

bool cm_mm_run(const CmMatmulKey *k, const void *src, const void *wei, const float *bias, void *dst, void *scratch,
               size_t scratch_bytes) {
    no_dnnl();
    return false;
}

bool cm_mm_prepare(const CmMatmulKey *k, size_t *scratch) {
    no_dnnl();
    return false;
}

bool cm_mm_ready(const CmMatmulKey *k, size_t scratch_bytes) {
    no_dnnl();
    return false;
}

size_t cm_mm_created_at_run(void) { return 0; }

void cm_mm_release(void) {}
