/*
 * test_train_golden.c — the training loop against ../shared/golden/tiny, through the real code
 * (cm_train_run: schedule, trainer step, AdamW, clamp; fed by the memory batch source, dropout
 * off):
 *   - the 10-step LoRA trajectory: per-step losses and final trainable tensors within 2e-5;
 *   - the 10-step full trajectory: losses within 1e-4, final tensors within 2e-4;
 *   - --accum-freq 2 over micro-batches [0:4],[4:8] gives the batch-8 gradient (grad_full.*)
 *     within 1e-4 x each tensor's largest |gradient| (the project's gradient bar), logit_scale
 *     included (the big-batch value, not OpenCLIP's grad_accum2_full); also with
 *     --grad-checkpointing;
 *   - resume: a 2-epoch run resumed from its epoch-1 checkpoint (dropout on, accum 2) ends
 *     bit-identical to the uninterrupted run, and its results.jsonl / params.txt / out.log exist.
 */
#include "testlib.h"
/* REQUIRE evaluates its condition twice: call once, then check */
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include <cjson/cJSON.h>
#include <float.h>
#include <unistd.h>
#include "io/tensorfile.h"
#include "model/model.h"
#include "data/batches.h"
#include "train/run.h"
#include "train/trainer.h"

static CmModelConfig g_cfg;
static CmTensorFile *g_in, *g_exp;
static const float *g_images;
static int32_t g_tokens[8 * 77], g_labels[8];
static char tmpdir[256];

static int setup(void) {
    if (g_in) return 1;
    if (cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &g_cfg)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/inputs.safetensors"), &g_in)) return 0;
    if (cm_tensorfile_open(tl_shared("golden/tiny/expected.safetensors"), &g_exp)) return 0;
    g_images = (const float *)cm_tensorfile_find(g_in, "images")->data;
    int64_t tok[8 * 77], lab[8];
    if (cm_tensor_to_i64(cm_tensorfile_find(g_in, "tokens"), tok)) return 0;
    if (cm_tensor_to_i64(cm_tensorfile_find(g_in, "labels"), lab)) return 0;
    for (int i = 0; i < 8 * 77; i++) g_tokens[i] = (int32_t)tok[i];
    for (int i = 0; i < 8; i++) g_labels[i] = (int32_t)lab[i];
    return 1;
}

static CmModel *tiny(CmTrainMode mode) {
    CmModel *m = NULL;
    CmModelConfig c = g_cfg;
    if (cm_model_create(&c, &m)) return NULL;
    if (cm_model_load_file(m, tl_shared("golden/tiny/model.safetensors"), CM_LOAD_STRICT, 0) ||
        cm_model_set_mode(m, mode, false, false)) {
        fprintf(stderr, "  %s\n", cm_last_error());
        cm_model_free(m);
        return NULL;
    }
    return m;
}

static cJSON *read_json(const char *path) {
    uint8_t *buf; size_t len;
    if (cm_read_file(path, 1 << 24, &buf, &len)) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    cm_free(buf);
    return j;
}

typedef struct { int n; float loss[32], con[32], cls[32]; double lr[32]; } Traj;
static void on_step(void *ctx, int64_t step, const CmStepStats *s) {
    Traj *t = ctx;
    if (t->n < 32) { t->loss[t->n] = s->loss; t->con[t->n] = s->loss_con; t->cls[t->n] = s->loss_cls; t->lr[t->n] = s->lr; t->n++; }
    (void)step;
}

static void base_opts(CmTrainConfig *o) {
    cm_train_config_defaults(o);
    o->train_data = "memory";
    o->model = "tiny";
    o->batch_size = 8; o->epochs = 10; o->warmup = 2; o->lr = 1e-3; o->wd = 0.1;
    o->prec = CM_PREC_FP32; o->logs = "none"; o->name = "golden"; o->log_every_n_steps = 1000;
    o->workers = 0; o->beta1 = 0.9; o->beta2 = 0.98; o->eps = 1e-6;   /* the golden settings */
    o->params_txt = "name: golden\n";
    CM_ASSERT(cm_train_config_check(o) == CM_OK);
}

static void trajectory_p(CmTrainMode mode, const char *json, const char *final, double tol_loss, double tol_param, bool amp) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup: %s", cm_last_error());
    CmModel *m = tiny(mode);
    REQUIRE(m, "model");
    cm_model_set_amp(m, amp);
    CmBatchSource *src;
    REQUIRE_OK(cm_batches_memory(g_images, g_tokens, g_labels, 8, 64, 77, 8, true, 1, &src), "source");
    CmTrainConfig o;
    base_opts(&o);
    Traj tr = {0};
    CmRun r = {0};
    r.o = &o; r.m = m; r.train = src; r.dropout = false; r.on_step = on_step; r.cb_ctx = &tr;
    REQUIRE_OK(cm_train_run(&r), "run: %s", cm_last_error());
    cJSON *tj = read_json(tl_shared(json));
    REQUIRE(tj, "%s", json);
    cJSON *steps = cJSON_GetObjectItem(tj, "steps"), *st;
    CHECK(tr.n == 10 && cJSON_GetArraySize(steps) == 10, "%d steps", tr.n);
    int k = 0;
    double worst = 0;
    cJSON_ArrayForEach(st, steps) {
        if (k >= tr.n) break;
        double L = cJSON_GetObjectItem(st, "loss")->valuedouble, lr = cJSON_GetObjectItem(st, "lr")->valuedouble;
        double lc = cJSON_GetObjectItem(st, "loss_con")->valuedouble, lk = cJSON_GetObjectItem(st, "loss_cls")->valuedouble;
        double d = fabs(tr.loss[k] - L);
        if (d > worst) worst = d;
        CHECK(d <= tol_loss && fabs(tr.con[k] - lc) <= tol_loss && fabs(tr.cls[k] - lk) <= tol_loss,
              "step %d: loss %.7f/%.7f/%.7f, golden %.7f/%.7f/%.7f", k, tr.loss[k], tr.con[k], tr.cls[k], L, lc, lk);
        CHECK(fabs(tr.lr[k] - lr) <= 1e-12, "step %d lr %.9g golden %.9g", k, tr.lr[k], lr);
        k++;
    }
    fprintf(stderr, "    %s: worst step-loss difference %.2e (tol %.0e)\n", json, worst, tol_loss);
    cJSON_Delete(tj);
    CmTensorFile *ff;
    REQUIRE_OK(cm_tensorfile_open(tl_shared(final), &ff), "final: %s", cm_last_error());
    int nt = 0;
    double pworst = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        if (!p->trainable) continue;
        const CmTensorView *v = cm_tensorfile_find(ff, p->name);
        CHECK(v != NULL, "%s missing from %s", p->name, final);
        if (!v) continue;
        nt++;
        double d = tl_max_abs_diff(p->data, (const float *)v->data, p->numel);
        if (d > pworst) pworst = d;
        CHECK(d <= tol_param, "%s: max abs diff %.3g > %.0e", p->name, d, tol_param);
    }
    CHECK(nt == cm_tensorfile_count(ff), "%d trainable tensors, golden file has %d", nt, cm_tensorfile_count(ff));
    fprintf(stderr, "    %s: worst final-param difference %.2e (tol %.0e) over %d tensors\n", final, pworst, tol_param, nt);
    cm_tensorfile_close(ff);
    cm_batches_close(src);
    cm_model_free(m);
}

static void trajectory(CmTrainMode mode, const char *json, const char *final, double tol_loss, double tol_param) {
    trajectory_p(mode, json, final, tol_loss, tol_param, false);
}
static void test_trajectory_lora(void) { trajectory(CM_TRAIN_LORA, "golden/tiny/trajectory.json", "golden/tiny/trajectory_final.safetensors", 2e-5, 2e-5); }
static void test_trajectory_full(void) { trajectory(CM_TRAIN_FULL, "golden/tiny/trajectory_full.json", "golden/tiny/trajectory_full_final.safetensors", 1e-4, 2e-4); }

/* --precision amp (bf16 products, fp32 accumulation and master weights): the LoRA trajectory
   stays within 2e-2 of the fp32 golden (losses and final parameters) */
static void test_trajectory_lora_amp(void) {
    trajectory_p(CM_TRAIN_LORA, "golden/tiny/trajectory.json", "golden/tiny/trajectory_final.safetensors", 2e-2, 2e-2, true);
}

/* Gradients of one trainer "step" (no update) with accum K over micro-batches of 8/K. */
static CmModel *grads(int K, bool ckpt, float *loss) {
    CmModel *m = tiny(CM_TRAIN_FULL);
    if (!m) return NULL;
    CmTrainer t;
    CmTrainerCfg c = {0};
    c.micro_batch = 8 / K; c.accum_freq = K; c.grad_checkpointing = ckpt; c.dropout = false;
    c.beta1 = 0.9; c.beta2 = 0.98; c.eps = 1e-6; c.wd = 0.1; c.w_con = 1; c.w_cls = 1;
    c.sched = (CmLrSchedule){CM_LR_COSINE, 1e-3, 2, 10, 0, 1, 0};
    CmStepStats s;
    if (cm_trainer_init(&t, m, &c) || cm_trainer_grads(&t, g_images, g_tokens, g_labels, 8, &s)) {
        fprintf(stderr, "  %s\n", cm_last_error());
        cm_model_free(m);
        return NULL;
    }
    *loss = s.loss;
    cm_trainer_free(&t);
    return m;
}

/* Rounding scale of d L / d logit_scale. With s = exp(logit_scale) and G = dL/dlogits of the
   masked contrastive loss, d L / d logit_scale = sum_ij G_ij * (s u_i . v_j): a sum of terms each
   bounded by s |G_ij| (u, v unit vectors). Every CE row's gradient has L1 norm <= 2 and the rows
   are weighted 1 / (2 * masked count), so sum |G| <= 2 and every term, and every rounding of a
   logit, is bounded by S = 2 s. The two computations below differ only in fp32 rounding (other
   GEMM blockings, other summation orders on another CPU or BLAS kernel), and the logits are
   D-term dot products of features that went through a depth-L network: a few tens of ulps each.
   The bound is 32 ulp x S (about 1.6e-3 of the gradient here: still 600x tighter than OpenCLIP's
   K-times over-count, which is what the check exists to catch). */
static double logit_scale_grad_tol(const CmModel *m) {
    double s = exp((double)m->logit_scale.data[0]);
    return 32.0 * (double)FLT_EPSILON * 2.0 * s;
}

/* accum K x 8/K (feature cache) == batch 8:
   (a) against our own batch-8 gradients (same code, dropout off): within 1e-5 x each tensor's
       largest |gradient| (logit_scale: logit_scale_grad_tol) — the algorithm is exact, only
       the GEMM blocking of the micro-batches differs;
   (b) against the golden grad_full.* (PyTorch on another CPU): within the project's gradient bar,
       1e-4 x each tensor's largest |gradient| (logit_scale: logit_scale_grad_tol — and it is the
       big-batch value; OpenCLIP's K-times value grad_accum2_full is 2x). */
static void accum_check(int K, bool ckpt) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    float L1, LK;
    CmModel *ref = grads(1, false, &L1), *m = grads(K, ckpt, &LK);
    REQUIRE(ref && m, "gradients");
    float L = *(const float *)cm_tensorfile_find(g_exp, "loss")->data;
    CHECK(fabsf(LK - L) <= 1e-5f && fabsf(L1 - L) <= 1e-5f, "loss %.7f / %.7f, golden %.7f", LK, L1, L);
    int n = 0;
    double worst_self = 0, worst_golden = 0, ls_tol = logit_scale_grad_tol(m);
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        char nm[160];
        snprintf(nm, sizeof nm, "grad_full.%s", p->name);
        const CmTensorView *v = cm_tensorfile_find(g_exp, nm);
        REQUIRE(v && p->grad, "%s", nm);
        const float *want = (const float *)v->data, *mine = ref->params[i].grad;
        bool is_ls = i == m->logit_scale.idx;
        double mx = tl_max_abs(mine, p->numel), d = tl_max_abs_diff(p->grad, mine, p->numel);
        if (mx > 0 && d / mx > worst_self) worst_self = d / mx;
        double tol_self = is_ls ? ls_tol : 1e-5 * mx + 1e-12;
        CHECK(d <= tol_self, "K=%d %s vs batch 8: max abs diff %.3g > %.3g (max %.3g)", K, p->name, d, tol_self, mx);
        double gmx = tl_max_abs(want, p->numel), gd = tl_max_abs_diff(p->grad, want, p->numel);
        if (gmx > 0 && gd / gmx > worst_golden) worst_golden = gd / gmx;
        double gtol = is_ls ? ls_tol : 1e-4 * gmx + 1e-12;
        CHECK(gd <= gtol, "K=%d %s vs golden: max abs diff %.3g > %.3g (max %.3g)", K, p->name, gd, gtol, gmx);
        n++;
    }
    CHECK(n == 98, "%d tensors", n);
    int ls = m->logit_scale.idx;
    float want_ls = *(const float *)cm_tensorfile_find(g_exp, "grad_full.logit_scale")->data;
    float openclip_ls = *(const float *)cm_tensorfile_find(g_exp, "grad_accum2_full.logit_scale")->data;
    float got = m->params[ls].grad[0];
    CHECK(fabs((double)got - want_ls) <= ls_tol && fabs((double)got - openclip_ls) > 100 * ls_tol,
          "logit_scale grad %.8g, big-batch golden %.8g (OpenCLIP K=2: %.8g), tol %.3g", got, want_ls, openclip_ls, ls_tol);
    fprintf(stderr, "    K=%d%s: vs batch 8 worst |diff|/max %.2e; vs golden worst %.2e; logit_scale %.8g (batch 8: %.8g, golden %.8g, OpenCLIP %.8g)\n",
            K, ckpt ? " ckpt" : "", worst_self, worst_golden, got, ref->params[ls].grad[0], want_ls, openclip_ls);
    cm_model_free(m);
    cm_model_free(ref);
}
static void test_accum2_grads(void) { accum_check(2, false); }
static void test_accum2_grads_ckpt(void) { accum_check(2, true); }
static void test_accum4_grads(void) { accum_check(4, false); }

/* --grad-checkpointing (block inputs kept, blocks recomputed in backward) gives the same
   gradients, bit for bit, in full mode (every tensor) */
static void test_grad_checkpointing_same_grads(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    float l1, l2;
    CmModel *a = grads(1, false, &l1), *b = grads(1, true, &l2);
    REQUIRE(a && b, "gradients");
    int diff = 0;
    for (int i = 0; i < a->n_params; i++)
        if (memcmp(a->params[i].grad, b->params[i].grad, a->params[i].numel * 4)) {
            if (diff++ < 3) fprintf(stderr, "    differs: %s (max %.3g)\n", a->params[i].name,
                                    tl_max_abs_diff(a->params[i].grad, b->params[i].grad, a->params[i].numel));
        }
    CHECK(diff == 0 && l1 == l2, "%d gradient tensors differ with --grad-checkpointing", diff);
    cm_model_free(a);
    cm_model_free(b);
}

/* resume: 2 epochs straight vs 1 epoch + resume from epoch_1 — bit-identical */
static CmModel *run_resume(const char *name, int epochs, const char *resume, int *rc) {
    CmModel *m = tiny(CM_TRAIN_LORA);
    if (!m) { *rc = -1; return NULL; }
    CmBatchSource *src, *val;
    cm_batches_memory(g_images, g_tokens, g_labels, 8, 64, 77, 4, true, 4, &src);
    cm_batches_memory(g_images, g_tokens, g_labels, 8, 64, 77, 3, false, 0, &val);
    CmTrainConfig o;
    base_opts(&o);
    o.batch_size = 4; o.accum_freq = 2; o.epochs = epochs; o.warmup = 1; o.logs = tmpdir; o.name = name;
    o.resume = resume; o.save_most_recent = true;
    CmRun r = {0};
    r.o = &o; r.m = m; r.train = src; r.val = val; r.dropout = true;
    r.base_model = tl_shared("golden/tiny/model.safetensors");
    *rc = cm_train_run(&r);
    if (*rc) fprintf(stderr, "  run %s: %s\n", name, cm_last_error());
    cm_batches_close(src); cm_batches_close(val);
    return m;
}

static void test_resume_bit_identical(void) {
    SHARED_OR_SKIP();
    REQUIRE(setup(), "setup");
    int rc;
    CmModel *a = run_resume("a", 2, NULL, &rc);
    REQUIRE(a && rc == 0, "run a");
    char ck[600], path[700];
    snprintf(ck, sizeof ck, "%s/a/checkpoints/epoch_1.safetensors", tmpdir);
    CmModel *b = run_resume("b", 2, ck, &rc);
    REQUIRE(b && rc == 0, "run b");
    int diff = 0;
    for (int i = 0; i < a->n_params; i++)
        if (memcmp(a->params[i].data, b->params[i].data, a->params[i].numel * 4)) {
            if (diff++ < 3) fprintf(stderr, "    differs: %s\n", a->params[i].name);
        }
    CHECK(diff == 0, "%d tensors differ between the straight and the resumed run", diff);
    /* the trained LoRA/head moved (the check is not vacuous) */
    CmModel *base = tiny(CM_TRAIN_LORA);
    int moved = 0;
    for (int i = 0; base && i < a->n_params; i++) moved += memcmp(a->params[i].data, base->params[i].data, a->params[i].numel * 4) != 0;
    CHECK(moved == 36, "%d tensors changed by training (want the 36 trainable)", moved);
    cm_model_free(base);
    /* --resume latest in the same run folder after the end: nothing left to do, same weights */
    CmModel *c = run_resume("a", 2, "latest", &rc);
    CHECK(c && rc == 0, "resume latest");
    for (int i = 0; c && i < a->n_params; i++) CHECK(!memcmp(a->params[i].data, c->params[i].data, a->params[i].numel * 4), "latest %s", a->params[i].name);
    const char *files[] = {"a/out.log", "a/params.txt", "a/results.jsonl", "a/checkpoints/epoch_2.safetensors", "a/checkpoints/epoch_latest.safetensors"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        CHECK(cm_file_exists(path), "%s missing", files[i]);
    }
    snprintf(path, sizeof path, "%s/a/results.jsonl", tmpdir);
    uint8_t *buf; size_t len;
    if (!cm_read_file(path, 1 << 20, &buf, &len)) {
        int lines = 0;
        for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
        CHECK(lines == 2, "results.jsonl has %d lines", lines);
        cJSON *j = cJSON_Parse((char *)buf);   /* first line */
        CHECK(j && cJSON_GetObjectItem(j, "epoch") && cJSON_GetObjectItem(j, "top1") && cJSON_GetObjectItem(j, "confusion") &&
              cJSON_GetObjectItem(j, "n")->valueint == 8, "results line: %.200s", buf);
        cJSON_Delete(j);
        cm_free(buf);
    }
    /* a second run with the same name and no --resume is refused */
    CmModel *d = run_resume("a", 2, NULL, &rc);
    CHECK(rc == CM_ERR_ARG && strstr(cm_last_error(), "already exists"), "reuse: %s", cm_last_error());
    cm_model_free(a); cm_model_free(b); cm_model_free(c); cm_model_free(d);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_golden_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_trajectory_lora);
    RUN(test_trajectory_full);
    RUN(test_trajectory_lora_amp);
    RUN(test_accum2_grads);
    RUN(test_accum2_grads_ckpt);
    RUN(test_accum4_grads);
    RUN(test_grad_checkpointing_same_grads);
    RUN(test_resume_bit_identical);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    if (g_in) cm_tensorfile_close(g_in);
    if (g_exp) cm_tensorfile_close(g_exp);
    return tl_summary("test_train_golden");
}
