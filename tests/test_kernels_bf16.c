/*
 * test_kernels_bf16.c — the bf16 matrix products of linear_bf16.c (oneDNN matmul):
 *   - fp32 -> bf16 rounding (nearest even, NaN/inf kept);
 *   - fast vs the bf16 reference (inputs rounded, products in double): equal up to fp32
 *     summation order;
 *   - fast vs the fp32 path within bf16's tolerance (~1e-2 relative to the largest |value|);
 *   - backward accumulates, NULL gradients skipped, cached primitives reused across calls.
 */
#include "testlib.h"
#include "kernels/ops.h"
#include "kernels/kernels_internal.h"
#include "kernel_lab/ref_ops.h"
#include "common/common.h"
#include "common/rng.h"

static CmRng rng;
static float *randv(size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)(cm_rng_normal(&rng) * scale);
    return x;
}
static float *filled(size_t n, float v) { float *x = malloc(sizeof(float) * (n ? n : 1)); for (size_t i = 0; i < n; i++) x[i] = v; return x; }
#define CHECK_REL(got, want, n, rtol, label) do { double s_ = tl_max_abs(want, n); \
    CHECK_CLOSE(got, want, n, (rtol) * (s_ > 1e-30 ? s_ : 1), label); } while (0)

static void test_bf16_round(void) {
    float one = 1.0f, half_ulp = 1.0f + 0x1p-8f, three_half = 1.0f + 3 * 0x1p-8f;
    CHECK(cm_bf16_round(one) == 1.0f, "1");
    CHECK(cm_bf16_round(half_ulp) == 1.0f, "tie to even (down): %a", cm_bf16_round(half_ulp));
    CHECK(cm_bf16_round(three_half) == 1.0f + 0x1p-6f, "tie to even (up): %a", cm_bf16_round(three_half));
    CHECK(cm_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f, "above the tie rounds up");
    CHECK(cm_bf16_round(-2.5f) == -2.5f, "exact");
    CHECK(isnan(cm_bf16_round(NAN)), "NaN stays NaN");
    CHECK(isinf(cm_bf16_round(INFINITY)) && cm_bf16_round(-INFINITY) < 0, "inf");
    float x = 0.1f, r = cm_bf16_round(x);
    CHECK(fabsf(r - x) <= x * 0x1p-8f && r != x, "0.1 -> %a", r);
}

/* planned for Mplan >= M rows (a packed text batch or a short last batch uses fewer rows than
   planned): the products run on power-of-two row chunks whose primitives planning created, so
   no call creates one */
static void bf16_case(int M, int C, int OC, int Mplan) {
    size_t nx = (size_t)M * C, nw = (size_t)OC * C, ny = (size_t)M * OC;
    size_t wsb = cm_linear_bf16_plan(Mplan, C, OC, true, true), w2 = cm_linear_bf16_plan(Mplan, C, OC, false, false);
    if (w2 > wsb) wsb = w2;
    size_t created = cm_mm_created_at_run();
    void *ws = cm_malloc(wsb, "bf16 workspace");
    float *x = randv(nx, 1), *W = randv(nw, 0.2f), *b = randv(OC, 1), *g = randv(ny, 1);
    float *y = filled(ny, 0), *yr = filled(ny, 0), *y32 = filled(ny, 0);
    char lab[96];
    for (int rep = 0; rep < 2; rep++) {  // the second call reuses the cached primitive
        cm_linear_forward_bf16(y, x, W, rep ? NULL : b, M, C, OC, ws, wsb);
        cm_linear_forward_bf16_ref(yr, x, W, rep ? NULL : b, M, C, OC);
        cm_linear_forward(y32, x, W, rep ? NULL : b, M, C, OC);
        snprintf(lab, sizeof lab, "forward M%d C%d OC%d %s: bf16 vs bf16 ref", M, C, OC, rep ? "no bias" : "bias");
        CHECK_REL(y, yr, ny, 1e-5, lab);
        snprintf(lab, sizeof lab, "forward M%d C%d OC%d %s: bf16 vs fp32", M, C, OC, rep ? "no bias" : "bias");
        CHECK_REL(y, y32, ny, 1e-2, lab);
    }
    // backward into buffers pre-filled with 0.5 (accumulation)
    float *dx = filled(nx, 0.5f), *dW = filled(nw, 0.5f), *db = filled(OC, 0.5f);
    float *dxr = filled(nx, 0.5f), *dWr = filled(nw, 0.5f), *dbr = filled(OC, 0.5f);
    float *dx32 = filled(nx, 0.5f), *dW32 = filled(nw, 0.5f), *db32 = filled(OC, 0.5f);
    cm_linear_backward_bf16(dx, dW, db, g, x, W, M, C, OC, ws, wsb);
    cm_linear_backward_bf16_ref(dxr, dWr, dbr, g, x, W, M, C, OC);
    cm_linear_backward(dx32, dW32, db32, g, x, W, M, C, OC);
    snprintf(lab, sizeof lab, "backward M%d C%d OC%d", M, C, OC);
    CHECK_REL(dx, dxr, nx, 1e-5, lab);
    CHECK_REL(dW, dWr, nw, 1e-5, lab);
    CHECK_REL(db, dbr, OC, 1e-5, lab);
    CHECK_REL(dx, dx32, nx, 1e-2, lab);
    CHECK_REL(dW, dW32, nw, 1e-2, lab);
    CHECK_REL(db, db32, OC, 1e-5, lab);
    // NULL weight gradients: dinp alone matches, dW untouched when NULL
    float *dx2 = filled(nx, 0.5f);
    cm_linear_backward_bf16(dx2, NULL, NULL, g, x, W, M, C, OC, ws, wsb);
    CHECK_CLOSE(dx2, dx, nx, 1e-6 * (1 + tl_max_abs(dx, nx)), "dinp alone");
    float *dW2 = filled(nw, 0.5f);
    cm_linear_backward_bf16(NULL, dW2, NULL, g, x, W, M, C, OC, ws, wsb);
    CHECK_CLOSE(dW2, dW, nw, 1e-6 * (1 + tl_max_abs(dW, nw)), "dW alone");
    free(x); free(W); free(b); free(g); free(y); free(yr); free(y32);
    free(dx); free(dW); free(db); free(dxr); free(dWr); free(dbr); free(dx32); free(dW32); free(db32);
    free(dx2); free(dW2);
    cm_free(ws);
    CHECK(cm_mm_created_at_run() == created, "M%d (planned %d) C%d OC%d: %zu primitives created at run time", M, Mplan, C,
          OC, cm_mm_created_at_run() - created);
}

static void test_bf16_linear(void) {
    fprintf(stderr, "  (oneDNN bf16 matmul %s)\n", cm_bf16_native() ? "available" : "NOT available: fp32 fallback");
    bf16_case(7, 13, 5, 7);
    bf16_case(64, 96, 80, 64);
    bf16_case(50, 768, 33, 50);    /* chunks 32 + 16 + a staged tail of 2 rows */
    bf16_case(1, 1, 1, 1);
    /* fewer rows than planned (packed text, a short last batch): 1, a tail only, chunks + tail */
    bf16_case(1, 96, 80, 200);
    bf16_case(13, 96, 80, 200);
    bf16_case(117, 96, 80, 200);
    bf16_case(200, 96, 80, 200);
}

// The tolerance is tight enough to notice a missing rounding step or a wrong operand.
static void test_bf16_detects_errors(void) {
    int M = 16, C = 64, OC = 24;
    float *x = randv((size_t)M * C, 1), *W = randv((size_t)OC * C, 1), *y = filled((size_t)M * OC, 0);
    float *yr = filled((size_t)M * OC, 0), *y32 = filled((size_t)M * OC, 0);
    size_t wsb = cm_linear_bf16_plan(M, C, OC, false, false);
    void *ws = cm_malloc(wsb, "bf16 workspace");
    cm_linear_forward_bf16(y, x, W, NULL, M, C, OC, ws, wsb);
    cm_free(ws);
    cm_linear_forward_ref(y32, x, W, NULL, M, C, OC);  // unrounded inputs differ by ~bf16 eps
    cm_linear_forward_bf16_ref(yr, x, W, NULL, M, C, OC);
    double d_unrounded = tl_max_abs_diff(y, y32, (size_t)M * OC), d_ref = tl_max_abs_diff(y, yr, (size_t)M * OC);
    CHECK(d_unrounded > 100 * d_ref, "rounding is visible: |bf16-fp32| %g vs |bf16-ref| %g", d_unrounded, d_ref);
    free(x); free(W); free(y); free(yr); free(y32);
}

int main(void) {
    cm_rng_seed(&rng, 99);
    RUN(test_bf16_round);
    RUN(test_bf16_linear);
    RUN(test_bf16_detects_errors);
    cm_bf16_release();
    return tl_summary("test_kernels_bf16");
}
