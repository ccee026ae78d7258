/*
 * test_train_optim.c — AdamW (torch 1.13 formula, against a double-precision transcription),
 * parameter groups (against golden/tiny's decayed_tensors lists), LR schedules (against the
 * golden trajectory's per-step lr and OpenCLIP's formulas), the warmup warning, grad clipping,
 * the logit_scale clamp and OpenCLIP's epoch sizing.
 */
#include "testlib.h"
/* REQUIRE evaluates its condition twice: call once, then check */
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include "train/optim.h"
#include "kernels/ops.h"
#include "common/rng.h"
#include "data/wds.h"
#include <cjson/cJSON.h>
#include <stdint.h>

static cJSON *read_json(const char *path) {
    uint8_t *buf; size_t len;
    if (cm_read_file(path, 1 << 26, &buf, &len)) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    cm_free(buf);
    return j;
}

/* torch 1.13 single-tensor AdamW, in double, for one element sequence */
static void adamw_double(double *p, const double *g, int steps, double lr, double wd, double b1, double b2, double eps) {
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        *p *= 1 - lr * wd;
        m = b1 * m + (1 - b1) * g[t - 1];
        v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        *p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps);
    }
}

static void test_adamw_matches_formula(void) {
    enum { N = 1000, STEPS = 12 };
    float *p = malloc(N * 4), *g = malloc(N * 4), *q = malloc(N * 4);
    double *gd = malloc(sizeof(double) * N * STEPS);
    CmRng r; cm_rng_seed(&r, 7);
    for (int i = 0; i < N; i++) p[i] = q[i] = (float)(cm_rng_normal(&r) * 0.5);
    for (int i = 0; i < N * STEPS; i++) gd[i] = (float)(cm_rng_normal(&r) * (i % 3 ? 1e-3 : 1.0));
    CmOptParam par[2] = {{"w.weight", p, g, N, 2, true}, {"w.bias", q, NULL, N, 1, false}};
    CmAdamW o;
    REQUIRE_OK(cm_adamw_init(&o, par, 2, 0.9, 0.98, 1e-6, 0.1), "%s", cm_last_error());
    double worst = 0;
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < N; i++) g[i] = (float)gd[(size_t)i * STEPS + t];
        cm_adamw_step(&o, 1e-3 * (t + 1) / STEPS);
    }
    /* recompute from scratch with a known initial value per element */
    CmRng r2; cm_rng_seed(&r2, 7);
    for (int i = 0; i < N; i++) {
        double init = (float)(cm_rng_normal(&r2) * 0.5);
        double x = init, m = 0, v = 0;
        for (int t = 1; t <= STEPS; t++) {
            double lr = 1e-3 * t / STEPS, gg = gd[(size_t)i * STEPS + t - 1];
            x *= 1 - lr * 0.1;
            m = 0.9 * m + 0.1 * gg; v = 0.98 * v + 0.02 * gg * gg;
            x -= lr / (1 - pow(0.9, t)) * m / (sqrt(v) / sqrt(1 - pow(0.98, t)) + 1e-6);
        }
        double d = fabs(x - p[i]);
        if (d > worst) worst = d;
        CHECK(q[i] == (float)init, "param with grad NULL changed at %d", i);
    }
    CHECK(worst < 1e-6, "AdamW vs double formula: max abs diff %.3g", worst);
    CHECK(o.step[0] == STEPS && o.step[1] == 0, "steps %lld %lld", (long long)o.step[0], (long long)o.step[1]);
    /* first step with wd 0 moves every element by ~lr*sign(g) (|g| >> eps) */
    float a[3] = {1, 1, 1}, ga[3] = {0.5f, -2.0f, 1e-3f}, m[3] = {0}, v[3] = {0};
    cm_adamw(a, ga, m, v, 3, &(CmAdamWArgs){1, 1e-2, 0.0, 0.9, 0.98, 1e-6});
    CHECK(fabsf(a[0] - 0.99f) < 1e-6f && fabsf(a[1] - 1.01f) < 1e-6f && fabsf(a[2] - (1 - 1e-2f * 1e-3f / (1e-3f + 1e-6f))) < 1e-6f,
          "first step %.8g %.8g %.8g", a[0], a[1], a[2]);
    /* decoupled decay with zero grad: p *= 1 - lr*wd exactly */
    float z = 2.0f, gz = 0, mz = 0, vz = 0;
    cm_adamw(&z, &gz, &mz, &vz, 1, &(CmAdamWArgs){1, 0.5, 0.1, 0.9, 0.98, 1e-6});
    CHECK(z == 2.0f * (float)(1 - 0.05), "zero-grad decay %.9g", z);
    double pdbl = 1.0, gdbl[2] = {0.3, -0.1};
    adamw_double(&pdbl, gdbl, 2, 1e-3, 0.0, 0.9, 0.98, 1e-6);
    float pf = 1.0f, gf, mf = 0, vf = 0;
    gf = 0.3f; cm_adamw(&pf, &gf, &mf, &vf, 1, &(CmAdamWArgs){1, 1e-3, 0.0, 0.9, 0.98, 1e-6});
    gf = -0.1f; cm_adamw(&pf, &gf, &mf, &vf, 1, &(CmAdamWArgs){2, 1e-3, 0.0, 0.9, 0.98, 1e-6});
    CHECK(fabs(pf - pdbl) < 1e-7, "two steps %.9g vs %.9g", pf, pdbl);
    CHECK(cm_adamw_find(&o, "w.bias") == 1 && cm_adamw_find(&o, "nope") == -1, "find");
    cm_adamw_free(&o);
    CmAdamW bad;
    CHECK(cm_adamw_init(&bad, par, 2, 1.0, 0.98, 1e-6, 0.1) == CM_ERR_ARG, "beta1 = 1 accepted");
    CHECK(strstr(cm_last_error(), "--beta1") != NULL, "message: %s", cm_last_error());
    free(p); free(g); free(q); free(gd);
}

/* the decay rule against golden/tiny: decayed_tensors of both trajectories */
static void test_param_groups_golden(void) {
    SHARED_OR_SKIP();
    uint8_t *buf; size_t len;
    REQUIRE_OK(cm_read_file(tl_shared("golden/tiny/model.safetensors"), 1 << 26, &buf, &len), "%s", cm_last_error());
    uint64_t hl; memcpy(&hl, buf, 8);
    REQUIRE(hl < len, "header length");
    cJSON *hdr = cJSON_ParseWithLength((const char *)buf + 8, hl);
    cm_free(buf);
    REQUIRE(hdr, "header JSON");
    const char *files[2] = {"golden/tiny/trajectory.json", "golden/tiny/trajectory_full.json"};
    for (int f = 0; f < 2; f++) {
        cJSON *tj = read_json(tl_shared(files[f]));
        REQUIRE(tj, "%s", files[f]);
        cJSON *dec = cJSON_GetObjectItem(tj, "decayed_tensors");
        int n_dec = 0, n_match = 0;
        cJSON *t;
        cJSON_ArrayForEach(t, hdr) {
            if (!strcmp(t->string, "__metadata__")) continue;
            int ndim = cJSON_GetArraySize(cJSON_GetObjectItem(t, "shape"));
            bool lora = strstr(t->string, "lora_") != NULL, head = !strncmp(t->string, "classifier_head.", 16);
            if (f == 0 && !lora && !head) continue;   /* LoRA mode: only LoRA + head trainable */
            bool want = false;
            cJSON *d;
            cJSON_ArrayForEach(d, dec) want |= !strcmp(d->valuestring, t->string);
            bool got = cm_param_decays(t->string, ndim);
            CHECK(got == want, "%s (ndim %d): decay %d, golden %d", t->string, ndim, got, want);
            n_dec += got; n_match++;
        }
        CHECK(n_dec == cJSON_GetArraySize(dec), "%s: %d decayed, golden lists %d", files[f], n_dec, cJSON_GetArraySize(dec));
        CHECK(n_match == (f == 0 ? 36 : 98), "%s: %d tensors", files[f], n_match);
        cJSON_Delete(tj);
    }
    cJSON_Delete(hdr);
    CHECK(!cm_param_decays("visual.class_embedding", 1), "1-D");
    CHECK(cm_param_decays("positional_embedding", 2) && cm_param_decays("visual.proj", 2), "2-D decays");
    CHECK(!cm_param_decays("visual.ln_pre.weight", 2) && !cm_param_decays("x.bn.w", 2), "ln/bn");
}

static void test_schedule_golden(void) {
    SHARED_OR_SKIP();
    cJSON *tj = read_json(tl_shared("golden/tiny/trajectory.json"));
    REQUIRE(tj, "trajectory.json");
    CmLrSchedule s = {CM_LR_COSINE, 1e-3, 2, 10, 0, 1.0, 0.0};
    cJSON *st, *steps = cJSON_GetObjectItem(tj, "steps");
    int k = 0;
    cJSON_ArrayForEach(st, steps) {
        double want = cJSON_GetObjectItem(st, "lr")->valuedouble;
        int step = cJSON_GetObjectItem(st, "step")->valueint;
        CHECK(fabs(cm_lr_at(&s, step) - want) <= 1e-18 + 1e-15 * want, "step %d: lr %.17g, golden %.17g", step, cm_lr_at(&s, step), want);
        k++;
    }
    CHECK(k == 10, "%d steps", k);
    cJSON_Delete(tj);
}

static void test_schedules(void) {
    CmLrSchedule c = {CM_LR_CONST, 0.1, 4, 20, 0, 1.0, 0.0};
    CHECK(cm_lr_at(&c, 0) == 0.1 * 1 / 4 && cm_lr_at(&c, 3) == 0.1 && cm_lr_at(&c, 19) == 0.1, "const");
    CmLrSchedule cc = {CM_LR_CONST_COOLDOWN, 0.1, 2, 20, 5, 1.0, 0.01};
    /* cooldown starts at 15: lr = (1 - e/5)^1 * (0.1-0.01) + 0.01 */
    CHECK(cm_lr_at(&cc, 14) == 0.1, "before cooldown");
    CHECK(fabs(cm_lr_at(&cc, 15) - 0.1) < 1e-15, "cooldown start %.17g", cm_lr_at(&cc, 15));
    CHECK(fabs(cm_lr_at(&cc, 17) - (0.6 * 0.09 + 0.01)) < 1e-15, "cooldown 17: %.17g", cm_lr_at(&cc, 17));
    cc.cooldown_power = 2.0;
    CHECK(fabs(cm_lr_at(&cc, 17) - (0.36 * 0.09 + 0.01)) < 1e-15, "cooldown power 2");
    CmLrSchedule cos = {CM_LR_COSINE, 1.0, 0, 8, 0, 1, 0};
    CHECK(cm_lr_at(&cos, 0) == 1.0 && fabs(cm_lr_at(&cos, 4) - 0.5) < 1e-15, "cosine without warmup");
    CmLrKind k;
    CHECK(cm_lr_kind_parse("const-cooldown", &k) == CM_OK && k == CM_LR_CONST_COOLDOWN, "parse");
    CHECK(cm_lr_kind_parse("linear", &k) == CM_ERR_ARG && strstr(cm_last_error(), "--lr-scheduler"), "bad kind");
    /* the seed's command: 16 steps/epoch * 600 = 9600 < warmup 10000 */
    char msg[512];
    CmLrSchedule seed = {CM_LR_COSINE, 1e-3, 10000, 9600, 0, 1, 0};
    CHECK(cm_lr_warmup_too_long(&seed, msg, sizeof msg), "warning expected");
    CHECK(strstr(msg, "10000") && strstr(msg, "9600") && strstr(msg, "0.00096"), "message: %s", msg);
    seed.warmup = 100;
    CHECK(!cm_lr_warmup_too_long(&seed, msg, sizeof msg), "no warning for warmup 100");
}

static void test_clip_and_clamp(void) {
    float g1[3] = {3, 0, 0}, g2[1] = {4}, g3[1] = {100};
    CmOptParam p[3] = {{"a", NULL, g1, 3, 1, false}, {"b", NULL, g2, 1, 1, false}, {"c", NULL, NULL, 1, 1, false}};
    double n = cm_clip_grad_norm(p, 3, 10.0);
    CHECK(fabs(n - 5.0) < 1e-6 && g1[0] == 3 && g2[0] == 4, "no clip below max: %g", n);
    n = cm_clip_grad_norm(p, 3, 1.0);
    CHECK(fabs(n - 5.0) < 1e-6, "norm %g", n);
    float coef = 1.0f / (5.0f + 1e-6f);
    CHECK(g1[0] == 3 * coef && g2[0] == 4 * coef, "clipped to %g %g", g1[0], g2[0]);
    CHECK(fabs(cm_grad_norm(p, 3) - 1.0) < 1e-6, "norm after clip %g", cm_grad_norm(p, 3));
    (void)g3;
    CHECK(cm_logit_scale_clamp(-0.5f) == 0.0f && cm_logit_scale_clamp(5.0f) == (float)log(100.0) &&
          cm_logit_scale_clamp(2.5f) == 2.5f, "clamp");
}

static void test_epoch_sizing(void) {
    long long nb, ns, per;
    CmEpochSize e;
#define SIZING(n, b, w) do { REQ_OK(cm_epoch_size((n), (b), 1, (w), &e)); \
        nb = e.num_batches; ns = e.num_samples; per = e.num_worker_batches; } while (0)
    SIZING(128000, 2048, 8);
    CHECK(nb == 64 && ns == 131072 && per == 8, "seed example: %lld %lld %lld", nb, ns, per);
    CHECK(nb / 4 * 600 == 9600, "total steps");
    SIZING(100, 8, 0);
    CHECK(nb == 13 && ns == 104 && per == 13, "workers 0: %lld %lld %lld", nb, ns, per);
    SIZING(100, 8, 3);
    CHECK(nb == 15 && ns == 120 && per == 5, "workers 3: %lld %lld %lld", nb, ns, per);
}

int main(void) {
    RUN(test_adamw_matches_formula);
    RUN(test_param_groups_golden);
    RUN(test_schedule_golden);
    RUN(test_schedules);
    RUN(test_clip_and_clamp);
    RUN(test_epoch_sizing);
    return tl_summary("test_train_optim");
}
