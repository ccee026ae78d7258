/*
 * test_dropout_rng.c — counter-based dropout (Philox4x32-10):
 *   - the generator against Random123's published known answers (philox4x32 10);
 *   - a mask does not depend on how the batch is split: 8 samples at once == 3 + 5 samples with
 *     the second call's sample_base 3, and on the thread count (1 vs 2 threads);
 *   - masks differ between steps, sites and seeds; the kept fraction is 1-p (binomial bound);
 *   - the trainer: --accum-freq 2 with dropout ON gives the batch gradient of accum 1 with dropout
 *     ON (within 1e-5 of each tensor's largest |gradient|: only GEMM blocking differs) — with a
 *     sequential RNG the two would draw different masks.
 * No ../shared needed.
 */
#include <math.h>
#include <string.h>
#include "testlib.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "train/trainer.h"

static void test_philox_known_answers(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        cm_philox4x32_10(kat[i], kat[i] + 4, out);
        CHECK(!memcmp(out, kat[i] + 6, sizeof out), "vector %d: %08x %08x %08x %08x", i, out[0], out[1], out[2], out[3]);
    }
}

static void test_split_invariance(void) {
    enum { B = 8, N = 37 };   /* N not a multiple of 4: the last Philox block is partial */
    float x[B * N], o8[B * N], m8[B * N], o35[B * N], m35[B * N], o1t[B * N], m1t[B * N];
    for (int i = 0; i < B * N; i++) x[i] = 1.0f + (float)i;
    CmDropoutKey k = {123456789ULL, 17, 40};   /* samples 40..47 of the step's global batch */
    cm_dropout_forward(o8, m8, x, 0.4f, N, B, &k, 3);
    CmDropoutKey a = k, b = k;
    b.sample_base = k.sample_base + 3;
    cm_dropout_forward(o35, m35, x, 0.4f, N, 3, &a, 3);
    cm_dropout_forward(o35 + 3 * N, m35 + 3 * N, x + 3 * N, 0.4f, N, 5, &b, 3);
    CHECK(!memcmp(m8, m35, sizeof m8) && !memcmp(o8, o35, sizeof o8), "3 + 5 split draws other masks than 8 at once");
    int nt = cm_threads_get();
    cm_threads_set(1);
    cm_dropout_forward(o1t, m1t, x, 0.4f, N, B, &k, 3);
    cm_threads_set(nt);
    CHECK(!memcmp(m8, m1t, sizeof m8), "thread count changes the masks");
    /* other step / site / seed / sample: other masks */
    float m2[B * N], o2[B * N];
    CmDropoutKey v[3] = {{k.seed, k.step + 1, k.sample_base}, {k.seed + 1, k.step, k.sample_base}, {k.seed, k.step, 0}};
    for (int i = 0; i < 3; i++) {
        cm_dropout_forward(o2, m2, x, 0.4f, N, B, &v[i], 3);
        CHECK(memcmp(m8, m2, sizeof m8) != 0, "variant %d draws the same mask", i);
    }
    cm_dropout_forward(o2, m2, x, 0.4f, N, B, &k, 4);
    CHECK(memcmp(m8, m2, sizeof m8) != 0, "another site draws the same mask");
}

static void test_kept_fraction(void) {
    enum { B = 64, N = 4096 };
    static float x[B * N], o[B * N], m[B * N];
    for (int i = 0; i < B * N; i++) x[i] = 1.0f;
    CmDropoutKey k = {7, 0, 0};
    for (int pi = 1; pi <= 3; pi++) {
        float p = 0.1f * pi;
        cm_dropout_forward(o, m, x, p, N, B, &k, 0);
        double kept = 0;
        for (int i = 0; i < B * N; i++) kept += m[i] != 0.0f;
        double n = (double)B * N, sd = sqrt(p * (1 - p) / n);
        CHECK(fabs(kept / n - (1 - p)) <= 6 * sd, "p=%.1f: kept fraction %.5f (sd %.5f)", p, kept / n, sd);
    }
}

// ---------------------------------------------------------------------------------------------
// trainer: accum 2 == accum 1 with dropout on

static const char *TINY =
    "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {\"image_size\": 64, \"layers\": 2, \"width\": 64, "
    "\"patch_size\": 16, \"head_width\": 32}, \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, "
    "\"width\": 64, \"heads\": 2, \"layers\": 2}}, \"lora\": {\"r\": 4, \"alpha\": 32}, "
    "\"head\": {\"d\": 32, \"heads\": 4, \"ff\": 128, \"layers\": 2, \"classes\": 7, \"dropout_design\": 0.3, "
    "\"classifier_dropout_design\": 0.4}}";
enum { NB = 8 };

static CmModel *grads(int K, const float *img, const int32_t *tok, const int32_t *lab) {
    CmModelConfig c;
    if (cm_config_from_json(TINY, strlen(TINY), "tiny", &c)) return NULL;
    c.has_lora = true;
    c.has_head = true;
    CmModel *m = NULL;
    if (cm_model_create(&c, &m)) return NULL;
    cm_model_init(m, 3);
    cm_model_init_lora_head(m, 4);
    if (cm_model_set_mode(m, CM_TRAIN_LORA, false, false)) { cm_model_free(m); return NULL; }
    CmTrainer t;
    CmTrainerCfg cfg = {0};
    cfg.micro_batch = NB / K; cfg.accum_freq = K; cfg.dropout = true;
    cfg.beta1 = 0.9; cfg.beta2 = 0.98; cfg.eps = 1e-6; cfg.wd = 0.1; cfg.w_con = 1; cfg.w_cls = 1;
    cfg.sched = (CmLrSchedule){CM_LR_COSINE, 1e-3, 2, 10, 0, 1, 0};
    CmStepStats s;
    if (cm_trainer_init(&t, m, &cfg)) { cm_model_free(m); return NULL; }
    cm_acts_seed(t.acts, 99);
    t.step = 5;
    cm_status st = cm_trainer_grads(&t, img, tok, lab, NB, &s);
    cm_trainer_free(&t);
    if (st) { fprintf(stderr, "  %s\n", cm_last_error()); cm_model_free(m); return NULL; }
    return m;
}

static void test_accum_with_dropout(void) {
    static float img[NB * 3 * 64 * 64];
    int32_t tok[NB * 77] = {0}, lab[NB] = {0, 6, 1, 0, 4, 2, 0, 5};
    CmRng r;
    cm_rng_seed(&r, 1);
    for (int i = 0; i < NB * 3 * 64 * 64; i++) img[i] = (float)cm_rng_normal(&r);
    for (int b = 0; b < NB; b++) {
        int L = 3 + 5 * b;
        tok[b * 77] = 49406;
        for (int t = 1; t < L - 1; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok[b * 77 + L - 1] = 49407;
    }
    CmModel *m1 = grads(1, img, tok, lab), *m2 = grads(2, img, tok, lab);
    REQUIRE(m1 && m2, "gradients");
    int n = 0;
    double worst = 0;
    for (int i = 0; i < m1->n_params; i++) {
        const CmParam *p = &m1->params[i];
        if (!p->grad || i == m1->logit_scale.idx) continue;
        double mx = tl_max_abs(p->grad, p->numel), d = tl_max_abs_diff(p->grad, m2->params[i].grad, p->numel);
        CHECK(d <= 1e-5 * mx + 1e-30, "%s: accum 2 vs 1 with dropout: max diff %.3g > 1e-5 x %.3g", p->name, d, mx);
        if (mx > 0 && d / mx > worst) worst = d / mx;
        n += mx > 0;
    }
    CHECK(n > 20, "only %d non-zero gradients compared", n);
    fprintf(stderr, "    %d gradients, accum 2 vs 1 with dropout on: worst %.2e of max\n", n, worst);
    cm_model_free(m1);
    cm_model_free(m2);
}

int main(void) {
    RUN(test_philox_known_answers);
    RUN(test_split_invariance);
    RUN(test_kept_fraction);
    RUN(test_accum_with_dropout);
    return tl_summary("test_dropout_rng");
}
