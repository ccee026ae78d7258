/*
 * test_int8.c — int8 inference linears (--precision int8) and the int8 model path.
 *   - the int8 linear against fp32 on Gaussian data: relative L2 error within the quantisation
 *     bound (255 levels per row over [min, max] / 127 per output channel: each factor carries
 *     ~ step/sqrt(12) relative RMS error, ~1% for Gaussian rows; bound 3%), bias and residual
 *     terms exact; one-sided rows (GELU outputs) clearly better than symmetric per-row s8 (the
 *     zero point is used and compensated right);
 *   - injected outlier channels (4 of 256 columns x 50, as real CLIP residual streams have): the
 *     fp32 decomposition keeps the error within the same bound, while plain per-row quantisation
 *     (emulated here) is several times worse — the test fails if the decomposition stops working;
 *   - the model: image and text features of a small random model in int8 vs fp32 (cosine >= 0.995
 *     per sample, the bar), with LoRA unmerged and merged, and packed text; and with
 *     outlier channels injected through the LayerNorm gains of every block.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "testlib.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "kernels/kernels_internal.h"
#include "model/model.h"

static double rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - ref[i]; num += d * d; den += (double)ref[i] * ref[i]; }
    return sqrt(num / (den > 0 ? den : 1));
}

enum { M = 64, C = 256, OC = 96 };

static void fill(float *x, size_t n, double sd, uint64_t seed) {
    CmRng r;
    cm_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)(sd * cm_rng_normal(&r));
}

/* plain per-row int8 quantisation of x and per-channel of W, no outlier handling (the emulated
   naive scheme) */
static void naive_int8(float *out, const float *x, const float *W) {
    for (int i = 0; i < M; i++) {
        float mx = 0;
        for (int c = 0; c < C; c++) mx = fmaxf(mx, fabsf(x[i * C + c]));
        float sx = mx / 127.0f;
        for (int n = 0; n < OC; n++) {
            float mw = 0;
            for (int c = 0; c < C; c++) mw = fmaxf(mw, fabsf(W[n * C + c]));
            float sw = mw / 127.0f;
            double acc = 0;
            for (int c = 0; c < C; c++) acc += nearbyint(x[i * C + c] / sx) * nearbyint(W[n * C + c] / sw);
            out[i * OC + n] = (float)(acc * sx * sw);
        }
    }
}

static void test_linear_int8(void) {
    static float x[M * C], W[OC * C], b[OC], res[M * OC], ref[M * OC], got[M * OC], naive[M * OC];
    fill(x, M * C, 1.0, 1);
    fill(W, OC * C, 0.05, 2);
    fill(b, OC, 0.1, 3);
    fill(res, M * OC, 1.0, 4);
    CmInt8Weights q;
    REQ_OK(cm_int8_weights_init(&q, W, OC, C, cm_malloc(cm_int8_weights_bytes(OC, C), "int8 weights")));
    size_t wsb = cm_linear_int8_plan(M, C, OC);
    void *ws = cm_malloc(wsb, "ws");
    REQUIRE(ws, "alloc");
    for (int outliers = 0; outliers <= 1; outliers++) {
        if (outliers)
            for (int i = 0; i < M; i++)
                for (int c = 7; c < C; c += 61) x[i * C + c] *= 50.0f;   /* columns 7, 68, 129, 190 */
        cm_linear_forward(ref, x, W, NULL, M, C, OC);
        cm_linear_forward_int8(got, x, &q, NULL, NULL, M, ws, wsb);
        double e = rel_l2(got, ref, M * OC);
        naive_int8(naive, x, W);
        double en = rel_l2(naive, ref, M * OC);
        fprintf(stderr, "    %s: int8 relative L2 error %.4f (plain per-row quantisation %.4f)\n",
                outliers ? "4 outlier columns x50" : "Gaussian", e, en);
        CHECK(e <= 0.03, "int8 linear relative L2 error %.4f > 0.03", e);
        if (outliers) CHECK(en >= 4 * e, "outliers: plain quantisation %.4f is not clearly worse than ours %.4f", en, e);
        /* bias and residual are added exactly: out(b, res) - out() == b + res up to the fp32 rounding
           of the three additions and of the comparison (8 ulp of the terms' magnitude) */
        static float with[M * OC];
        memcpy(with, res, sizeof with);
        cm_linear_forward_int8(with, x, &q, b, with, M, ws, wsb);   /* res == out is allowed */
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int n = 0; n < OC; n++) {
                double d = fabs((double)with[i * OC + n] - got[i * OC + n] - b[n] - res[i * OC + n]);
                double sc = fabs(got[i * OC + n]) + fabs(b[n]) + fabs(res[i * OC + n]);
                if (d / (sc + 1e-30) > worst) worst = d / (sc + 1e-30);
            }
        CHECK(worst <= 8 * FLT_EPSILON, "bias/residual terms: relative error %.3g", worst);
    }
    /* one-sided rows (GELU outputs: >= -0.17): the per-row zero point spends all 255 steps on
       [min, max], about half the step of symmetric s8 over [-max, max]. The weights are put on
       their int8 grid first (W = q * scale exactly), so only the activations' error remains and
       the expected ratio is ~0.5 */
    fill(x, M * C, 1.0, 11);
    for (int i = 0; i < M * C; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678f));
    for (int n = 0; n < OC; n++)
        for (int c = 0; c < C; c++) W[n * C + c] = q.w[n * C + c] * q.w_scale[n];
    cm_linear_forward(ref, x, W, b, M, C, OC);
    cm_linear_forward_int8(got, x, &q, b, NULL, M, ws, wsb);
    naive_int8(naive, x, W);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < OC; n++) naive[i * OC + n] += b[n];
    double e = rel_l2(got, ref, M * OC), en = rel_l2(naive, ref, M * OC);
    fprintf(stderr, "    one-sided (GELU) rows: int8 relative L2 error %.4f (symmetric per-row %.4f)\n", e, en);
    CHECK(e <= 0.7 * en, "one-sided rows: %.4f is not clearly below symmetric quantisation's %.4f", e, en);
    cm_free(ws);
    cm_free(q.w);   /* the block given to cm_int8_weights_init */
}

/* M runs as power-of-two row chunks of a multiple of 16 rows (primitives planned ahead), the
   padding rows zero: the chunking and the extra rows must not change anything. Without outlier
   columns each row's result depends on that row only, so the first 64 of 100 rows equal the
   64-row call bit for bit. Planned for 100 rows, neither call creates a primitive. */
static void test_row_buckets(void) {
    enum { M2 = 100 };
    static float x[M2 * C], W[OC * C], out64[64 * OC], out100[M2 * OC];
    fill(x, M2 * C, 1.0, 21);
    fill(W, OC * C, 0.05, 22);
    CmInt8Weights q;
    REQ_OK(cm_int8_weights_init(&q, W, OC, C, cm_malloc(cm_int8_weights_bytes(OC, C), "int8 weights")));
    size_t wsb = cm_linear_int8_plan(M2, C, OC);
    void *ws = cm_malloc(wsb, "ws");
    REQUIRE(ws, "alloc");
    memset(ws, 0xff, wsb);   /* stale bytes in the padding rows */
    size_t created = cm_mm_created_at_run();
    cm_linear_forward_int8(out100, x, &q, NULL, NULL, M2, ws, wsb);
    cm_linear_forward_int8(out64, x, &q, NULL, NULL, 64, ws, wsb);
    CHECK(cm_mm_created_at_run() == created, "int8: %zu primitives created at run time after planning",
          cm_mm_created_at_run() - created);
    CHECK(memcmp(out64, out100, sizeof out64) == 0, "rows 0..63 differ between M = 64 and M = 100");
    static float ref[M2 * OC];
    cm_linear_forward(ref, x, W, NULL, M2, C, OC);
    CHECK(rel_l2(out100 + 64 * OC, ref + 64 * OC, (M2 - 64) * OC) <= 0.03, "rows 64..99");
    cm_free(ws);
    cm_free(q.w);
}

/* per-channel weight quantisation: every |q| <= 127, the largest of each row is +-127, and
   q * scale reproduces W within half a step */
static void test_weights(void) {
    static float W[OC * C];
    fill(W, OC * C, 0.05, 9);
    memset(W + 5 * C, 0, C * sizeof(float));   /* an all-zero channel must not divide by 0 */
    CmInt8Weights q;
    REQ_OK(cm_int8_weights_init(&q, W, OC, C, cm_malloc(cm_int8_weights_bytes(OC, C), "int8 weights")));
    for (int n = 0; n < OC; n++) {
        int big = 0;
        for (int c = 0; c < C; c++) {
            int v = q.w[n * C + c];
            big = abs(v) > big ? abs(v) : big;
            CHECK(fabs(v * (double)q.w_scale[n] - W[n * C + c]) <= 0.5001 * q.w_scale[n], "channel %d col %d", n, c);
        }
        CHECK(n == 5 ? big == 0 : big == 127, "channel %d: largest |q| %d", n, big);
    }
    cm_free(q.w);
}

// ---------------------------------------------------------------------------------------------
// model

static const char *TINY =
    "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {\"image_size\": 64, \"layers\": 2, \"width\": 64, "
    "\"patch_size\": 16, \"head_width\": 32}, \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, "
    "\"width\": 64, \"heads\": 2, \"layers\": 2}}, \"lora\": {\"r\": 4, \"alpha\": 32}, "
    "\"head\": {\"d\": 32, \"heads\": 4, \"ff\": 128, \"layers\": 2, \"classes\": 7}}";
enum { NB = 8 };

static double min_cos(const float *a, const float *b, int n, int E) {
    double worst = 1;
    for (int i = 0; i < n; i++) {
        double d = 0, na = 0, nb = 0;
        for (int e = 0; e < E; e++) { d += (double)a[i * E + e] * b[i * E + e]; na += (double)a[i * E + e] * a[i * E + e]; nb += (double)b[i * E + e] * b[i * E + e]; }
        double c = d / sqrt(na * nb);
        if (c < worst) worst = c;
    }
    return worst;
}

static void test_model_int8(void) {
    CmModelConfig c;
    REQ_OK(cm_config_from_json(TINY, strlen(TINY), "tiny", &c));
    c.has_lora = true;
    c.has_head = true;
    CmModel *m = NULL, *merged = NULL;
    REQ_OK(cm_model_create(&c, &m));
    cm_model_init(m, 3);
    cm_model_init_lora_head(m, 4);
    CmRng r;
    cm_rng_seed(&r, 5);
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < (size_t)m->params[i].numel; k++) m->params[i].data[k] = (float)(0.05 * cm_rng_normal(&r));
    static float img[NB * 3 * 64 * 64];
    fill(img, NB * 3 * 64 * 64, 1.0, 6);
    int32_t tok[NB * 77] = {0};
    for (int b = 0; b < NB; b++) {
        int L = 2 + 9 * b;
        tok[b * 77] = 49406;
        for (int t = 1; t < L - 1; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok[b * 77 + L - 1] = 49407;
    }
    float fi[NB * 32], ft[NB * 32], qi[NB * 32], qt[NB * 32], hl[NB * 7], hq[NB * 7];
    REQ_OK(cm_model_merge_lora(m, &merged));
    CmModel *models[2] = {m, merged};
    for (int k = 0; k < 2; k++) {
        CmModel *x = models[k];
        REQ_OK(cm_model_set_int8(x, false));
        REQ_OK(cm_encode_image(x, img, NB, NULL, fi));
        REQ_OK(cm_encode_text(x, tok, NB, NULL, ft));
        REQ_OK(cm_model_forward(x, NULL, img, tok, NB, false, fi, ft, hl));
        REQ_OK(cm_model_set_int8(x, true));
        REQ_OK(cm_encode_image(x, img, NB, NULL, qi));
        REQ_OK(cm_encode_text(x, tok, NB, NULL, qt));
        double ci = min_cos(qi, fi, NB, 32), ct = min_cos(qt, ft, NB, 32);
        REQ_OK(cm_model_forward(x, NULL, img, tok, NB, false, qi, qt, hq));
        fprintf(stderr, "    %s: int8 vs fp32 worst cosine image %.5f text %.5f; head logits max |diff| %.3g\n",
                k ? "LoRA merged" : "LoRA unmerged", ci, ct, tl_max_abs_diff(hq, hl, NB * 7));
        CHECK(ci >= 0.995 && ct >= 0.995, "cosine image %.5f text %.5f < 0.995", ci, ct);
        CHECK(tl_max_abs_diff(qi, fi, NB * 32) > 0, "int8 path did not run (bit-identical to fp32)");
        REQ_OK(cm_model_set_int8(x, false));
        float back[NB * 32];
        REQ_OK(cm_encode_image(x, img, NB, NULL, back));
        CHECK(memcmp(back, fi, sizeof back) == 0, "switching int8 off restores the fp32 numbers");
    }
    cm_model_free(merged);
    cm_model_free(m);
}

/* outlier channels at model level: a few LayerNorm gain channels x40 in every block of both
   towers make the in_proj and c_fc inputs carry columns tens of times larger than the rest (as
   real CLIP checkpoints do); int8 must still keep every sample's embedding at cosine >= 0.995 */
static void test_model_outliers(void) {
    CmModelConfig c;
    REQ_OK(cm_config_from_json(TINY, strlen(TINY), "tiny", &c));
    c.has_lora = false;
    c.has_head = false;
    CmModel *m = NULL;
    REQ_OK(cm_model_create(&c, &m));
    cm_model_init(m, 13);
    int scaled = 0;
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "ln_1.weight") || strstr(m->params[i].name, "ln_2.weight")) {
            m->params[i].data[5] *= 40.0f;
            m->params[i].data[17] *= -40.0f;
            m->params[i].data[40] *= 40.0f;
            scaled++;
        }
    REQUIRE(scaled == 8, "%d LayerNorm gains found (2 per block, 2 blocks per tower)", scaled);
    static float img[NB * 3 * 64 * 64];
    fill(img, NB * 3 * 64 * 64, 1.0, 14);
    int32_t tok[NB * 77] = {0};
    CmRng r;
    cm_rng_seed(&r, 15);
    for (int b = 0; b < NB; b++) {
        int L = 3 + 9 * b;
        tok[b * 77] = 49406;
        for (int t = 1; t < L - 1; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok[b * 77 + L - 1] = 49407;
    }
    float fi[NB * 32], ft[NB * 32], qi[NB * 32], qt[NB * 32];
    REQ_OK(cm_encode_image(m, img, NB, NULL, fi));
    REQ_OK(cm_encode_text(m, tok, NB, NULL, ft));
    REQ_OK(cm_model_set_int8(m, true));
    REQ_OK(cm_encode_image(m, img, NB, NULL, qi));
    REQ_OK(cm_encode_text(m, tok, NB, NULL, qt));
    double ci = min_cos(qi, fi, NB, 32), ct = min_cos(qt, ft, NB, 32);
    fprintf(stderr, "    LayerNorm outlier channels x40: int8 vs fp32 worst cosine image %.5f text %.5f\n", ci, ct);
    CHECK(ci >= 0.995 && ct >= 0.995, "outlier channels: cosine image %.5f text %.5f < 0.995", ci, ct);
    cm_model_free(m);
}

/* the commands: --precision int8 for embed and predict (eval and serve share cli_apply_precision;
   serve's is tested in test_serve): near fp32, not bit-identical, bad values are usage errors */
static void probs_of(const char *out, double *p) {
    const char *q = strstr(out, "\"probs\":[");
    for (int c = 0; c < 7; c++) p[c] = -1;
    if (!q) return;
    q += 9;
    for (int c = 0; c < 7 && q; c++) { p[c] = strtod(q, NULL); q = strchr(q, ','); if (q) q++; }
}
static void test_cli_precision(void) {
    CLIPMOD_BIN_OR_SKIP();
    SHARED_OR_SKIP();
    char args[2048], out[8192], err[4096];
    double p32[7], p8[7];
    const char *fmt = "predict --model %s --model-name %s --vocab %s --image %s --text 'a cat on a sofa' --precision %s";
    snprintf(args, sizeof args, fmt, tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"),
             tl_shared("vocab"), tl_shared("data/coco/000000086220.jpg"), "fp32");
    CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0, "fp32 predict: %s", err);
    probs_of(out, p32);
    snprintf(args, sizeof args, fmt, tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"),
             tl_shared("vocab"), tl_shared("data/coco/000000086220.jpg"), "int8");
    CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0, "int8 predict: %s", err);
    probs_of(out, p8);
    double d = 0;
    for (int c = 0; c < 7; c++) d = fmax(d, fabs(p8[c] - p32[c]));
    CHECK(p8[0] >= 0 && d > 0 && d < 2e-2, "int8 vs fp32 probabilities: max diff %.3g", d);
    snprintf(args, sizeof args, fmt, tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"),
             tl_shared("vocab"), tl_shared("data/coco/000000086220.jpg"), "int4");
    CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 2 && strstr(err, "int4"), "bad --precision: %s", err);
    snprintf(args, sizeof args, "embed --model %s --model-name %s --vocab %s --text 'a cat' --precision int8",
             tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"), tl_shared("vocab"));
    CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0 && strstr(out, "\"embedding\""), "int8 embed: %s", err);
}

int main(void) {
    RUN(test_weights);
    RUN(test_row_buckets);
    RUN(test_linear_int8);
    RUN(test_model_int8);
    RUN(test_model_outliers);
    RUN(test_cli_precision);
    return tl_summary("test_int8");
}
