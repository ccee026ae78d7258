/*
 * test_dist.c — data-parallel training over MPI gives the single-process global-batch result.
 *
 * The test runs itself under `mpirun -np 2 --oversubscribe` on loopback (as root with
 * --allow-run-as-root): each rank trains a small random model for 10 steps on its share of every
 * global micro-batch (rank r takes rows [r*B, (r+1)*B) of each micro-batch of W*B samples), rank 0
 * writes the trainable tensors; the parent trains one process on the same global sample order
 * (batch W*B, same accum) and compares: within 1e-5 of each tensor's largest value (fp32: the runs
 * differ only in GEMM row blocking and the order of the gradient sum; + lr x 1e-4 absolute for
 * the zero-gradient key biases, see below), with head dropout ON
 * (counter-based masks keyed by the global sample index) — for accum 1, accum 2, and accum 2 with
 * gradient checkpointing. Also: the process group is a no-op without a launcher.
 * Skips (with a message) when mpirun is missing; under CI a missing mpirun is a failure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"
#include "common/rng.h"
#include "dist/dist.h"
#include "model/model.h"
#include "train/trainer.h"

static const char *TINY =
    "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {\"image_size\": 32, \"layers\": 2, \"width\": 64, "
    "\"patch_size\": 16, \"head_width\": 32}, \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, "
    "\"width\": 64, \"heads\": 2, \"layers\": 2}}, \"lora\": {\"r\": 4, \"alpha\": 32}, "
    "\"head\": {\"d\": 32, \"heads\": 4, \"ff\": 128, \"layers\": 2, \"classes\": 7, \"dropout_design\": 0.1, "
    "\"classifier_dropout_design\": 0.2}}";
enum { GB = 8, STEPS = 10, S = 32, IMG = 3 * S * S, CTX = 77 };

static void sample(int i, float *img, int32_t *tok, int32_t *lab);

typedef struct { int accum; bool ckpt; } Case;
static const Case CASES[] = {{1, false}, {2, false}, {2, true}};

/* the small random LoRA + head model every run of this test starts from (same seeds) */
static CmModel *tiny_lora_model(void) {
    CmModelConfig cfg;
    if (cm_config_from_json(TINY, strlen(TINY), "tiny", &cfg)) return NULL;
    cfg.has_lora = true;
    cfg.has_head = true;
    CmModel *m = NULL;
    if (cm_model_create(&cfg, &m)) return NULL;
    cm_model_init(m, 3);
    cm_model_init_lora_head(m, 4);
    return m;
}

/* one gradient (no step) of the contrastive loss alone (w_cls = 0), exact or OpenCLIP's DDP
   default (openclip_grad); written as the model's gradient buffers */
static CmModel *con_grads(int W, int R, bool openclip) {
    CmModel *m = tiny_lora_model();
    if (!m) return NULL;
    for (int i = 0; i < m->n_params; i++)   /* LoRA B != 0: the A gradients are not trivially 0 */
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < (size_t)m->params[i].numel; k++) m->params[i].data[k] = 0.01f * (float)((k * 7) % 13) - 0.06f;
    if (cm_model_set_mode(m, CM_TRAIN_LORA, false, false)) { cm_model_free(m); return NULL; }
    int B = GB / W;
    CmTrainerCfg tc = {0};
    tc.micro_batch = B; tc.accum_freq = 1; tc.dropout = false;
    tc.beta1 = 0.9; tc.beta2 = 0.98; tc.eps = 1e-6; tc.w_con = 1; tc.w_cls = 0;
    tc.sched = (CmLrSchedule){CM_LR_COSINE, 1e-3, 2, STEPS, 0, 1, 0};
    tc.world = W; tc.rank = R; tc.openclip_grad = openclip;
    CmTrainer t;
    if (cm_trainer_init(&t, m, &tc)) { cm_model_free(m); return NULL; }
    static float img[GB * IMG];
    static int32_t tok[GB * CTX], lab[GB];
    for (int b = 0; b < B; b++) sample(R * B + b, img + (size_t)b * IMG, tok + (size_t)b * CTX, lab + b);
    CmStepStats ss;
    cm_status st = cm_trainer_grads(&t, img, tok, lab, B, &ss);
    cm_trainer_free(&t);
    if (st) { fprintf(stderr, "  rank %d: %s\n", R, cm_last_error()); cm_model_free(m); return NULL; }
    return m;
}

/* sample i of the whole run (deterministic) */
static void sample(int i, float *img, int32_t *tok, int32_t *lab) {
    CmRng r;
    cm_rng_seed(&r, 1000 + (uint64_t)i);
    for (int k = 0; k < IMG; k++) img[k] = (float)cm_rng_normal(&r);
    memset(tok, 0, CTX * sizeof(int32_t));
    int L = 3 + (int)cm_rng_below(&r, 20);
    tok[0] = 49406;
    for (int t = 1; t < L - 1; t++) tok[t] = (int32_t)cm_rng_below(&r, 49000);
    tok[L - 1] = 49407;
    *lab = i % 3 == 0 ? 0 : (int32_t)cm_rng_below(&r, 7);
}

/* trains STEPS steps as rank R of W with micro-batch B = GB / (W * accum); returns the model */
static CmModel *train(const Case *c, int W, int R) {
    CmModel *m = tiny_lora_model();
    if (!m) return NULL;
    if (cm_model_set_mode(m, CM_TRAIN_LORA, false, false)) { cm_model_free(m); return NULL; }
    int K = c->accum, B = GB / (W * K);
    CmTrainerCfg tc = {0};
    tc.micro_batch = B; tc.accum_freq = K; tc.dropout = true; tc.grad_checkpointing = c->ckpt;
    tc.beta1 = 0.9; tc.beta2 = 0.98; tc.eps = 1e-6; tc.wd = 0.1; tc.w_con = 1; tc.w_cls = 1;
    tc.grad_clip_norm = 1.0;
    tc.sched = (CmLrSchedule){CM_LR_COSINE, 1e-3, 2, STEPS, 0, 1, 0};
    tc.world = W; tc.rank = R;
    CmTrainer t;
    if (cm_trainer_init(&t, m, &tc)) { cm_model_free(m); return NULL; }
    cm_acts_seed(t.acts, 77);
    float *img = cm_malloc((size_t)K * B * IMG * 4, "images");
    int32_t *tok = cm_malloc((size_t)K * B * CTX * 4, "tokens"), *lab = cm_malloc((size_t)K * B * 4, "labels");
    cm_status st = img && tok && lab ? CM_OK : CM_ERR_OOM;
    for (int s = 0; s < STEPS && !st; s++) {
        /* step s: global samples s*GB ..; micro-batch j holds W*B of them; this rank's slice */
        for (int j = 0; j < K; j++)
            for (int b = 0; b < B; b++) {
                int i = s * GB + j * W * B + R * B + b, row = j * B + b;
                sample(i, img + (size_t)row * IMG, tok + (size_t)row * CTX, lab + row);
            }
        CmStepStats ss;
        st = cm_trainer_step(&t, img, tok, lab, K * B, &ss);
    }
    if (st) fprintf(stderr, "  rank %d: %s\n", R, cm_last_error());
    cm_free(img); cm_free(tok); cm_free(lab);
    cm_trainer_free(&t);
    if (st) { cm_model_free(m); return NULL; }
    return m;
}

/* the child: one rank of `mpirun -np 2`; rank 0 writes the trainable tensors to argv path */
static int child(const char *path) {
    if (cm_dist_init()) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
    int W = cm_dist_size(), R = cm_dist_rank(), rc = 0;
    FILE *f = R == 0 ? fopen(path, "wb") : NULL;
    if (R == 0 && !f) rc = 1;
    for (size_t k = 0; k < sizeof CASES / sizeof *CASES && !rc; k++) {
        CmModel *m = train(&CASES[k], W, R);
        if (!m) { rc = 1; break; }
        if (f)
            for (int i = 0; i < m->n_params; i++)
                if (m->params[i].trainable) fwrite(m->params[i].data, 4, m->params[i].numel, f);
        cm_model_free(m);
    }
    for (int oc = 0; oc <= 1 && !rc; oc++) {   /* exact, then OpenCLIP's default gradient */
        CmModel *m = con_grads(W, R, oc);
        if (!m) { rc = 1; break; }
        if (f) fwrite(m->grad_arena, 4, m->n_grad_floats, f);
        cm_model_free(m);
    }
    if (f && fclose(f)) rc = 1;
    if (rc) cm_dist_abort(1, "test_dist child failed");
    cm_dist_finalize();
    return 0;
}

static void test_single_process_group(void) {
    CHECK(cm_dist_launched() == false, "this test must not itself be run under mpirun");
    REQ_OK(cm_dist_init());
    CHECK(cm_dist_size() == 1 && cm_dist_rank() == 0, "without a launcher: one process of rank 0");
    float x[3] = {1, 2, 3}, y[3];
    REQ_OK(cm_dist_allreduce_f32(x, 3));
    REQ_OK(cm_dist_allgather_f32(x, 3, y));
    CHECK(x[0] == 1 && x[2] == 3 && y[1] == 2, "collectives of a group of 1 are identities");
}

static void test_two_ranks_equal_one(void) {
    const char *san = getenv("CLIPMOD_SANITIZED");
    if (san && *san) {   /* Open MPI's own allocations (hwloc, PMIx) are reported by LeakSanitizer */
        fprintf(stderr, "  SKIPPED %s: mpirun under the sanitizer build (Open MPI's internal leaks); make test runs it\n", tl_case);
        tl_skip++;
        return;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        if (getenv("CI")) { CHECK(0, "mpirun is missing (scripts/install-deps.sh installs openmpi-bin)"); return; }
        fprintf(stderr, "  SKIPPED %s: mpirun not installed (openmpi-bin)\n", tl_case);
        tl_skip++;
        return;
    }
    const char *dir = tl_tmpdir_make("dist");
    REQUIRE(dir, "temp dir");
    char self[1024], cmd[4096], out[1200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0, "own path");
    self[n] = 0;
    snprintf(out, sizeof out, "%s/rank0.bin", dir);
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 "
             "CLIPMOD_THREADS=1 timeout 300 mpirun -np 2 --oversubscribe --bind-to none '%s' --child '%s' > '%s/mpirun.log' 2>&1",
             self, out, dir);
    int rc = system(cmd);
    if (rc != 0) {
        char log[1300];
        snprintf(log, sizeof log, "%s/mpirun.log", dir);
        FILE *lf = fopen(log, "r");
        char line[512];
        while (lf && fgets(line, sizeof line, lf)) fprintf(stderr, "    | %s", line);
        if (lf) fclose(lf);
    }
    REQUIRE(rc == 0, "mpirun -np 2 failed (status %d)", rc);
    FILE *f = fopen(out, "rb");
    REQUIRE(f, "%s", out);
    for (size_t k = 0; k < sizeof CASES / sizeof *CASES; k++) {
        CmModel *m = train(&CASES[k], 1, 0);
        REQUIRE(m, "single-process run");
        int nt = 0;
        double worst = 0;
        for (int i = 0; i < m->n_params; i++) {
            const CmParam *p = &m->params[i];
            if (!p->trainable) continue;
            float *got = cm_malloc((size_t)p->numel * 4, "tensor");
            REQUIRE(got && fread(got, 4, p->numel, f) == (size_t)p->numel, "short file");
            double mx = tl_max_abs(p->data, p->numel), d = tl_max_abs_diff(got, p->data, p->numel);
            /* 1e-5 of the tensor's max, plus lr x 1e-4 absolute: the key third of every in_proj_bias
               has a mathematically zero gradient (softmax is shift-invariant), so what it gets is
               fp32 rounding noise of the summation order, which AdamW (eps 1e-6) turns into
               updates of up to lr x noise / eps per step */
            double tol = 1e-5 * mx + 1e-3 * 1e-4;
            CHECK(d <= tol, "accum %d%s: %s: 2 ranks vs 1 max diff %.3g > %.3g (max %.3g)", CASES[k].accum,
                  CASES[k].ckpt ? " ckpt" : "", p->name, d, tol, mx);
            if (mx > 0 && d / mx > worst) worst = d / mx;
            nt++;
            cm_free(got);
        }
        fprintf(stderr, "    accum %d%s: %d trainable tensors after %d steps, 2 ranks vs 1: worst %.2e of max\n",
                CASES[k].accum, CASES[k].ckpt ? " ckpt" : "", nt, STEPS, worst);
        cm_model_free(m);
    }
    /* gradients of the contrastive loss: 2 ranks exact == 1 process; OpenCLIP's default == half */
    CmModel *ref = con_grads(1, 0, false);
    REQUIRE(ref, "single-process gradient");
    size_t ng = ref->n_grad_floats;
    float *g = cm_malloc(ng * 4, "grads");
    REQUIRE(g, "alloc");
    for (int oc = 0; oc <= 1; oc++) {
        REQUIRE(fread(g, 4, ng, f) == ng, "short file (gradients)");
        double worst = 0;
        int nz = 0;
        for (int i = 0; i < ref->n_params; i++) {
            const CmParam *p = &ref->params[i];
            if (!p->grad) continue;
            const float *got = g + (p->grad - ref->grad_arena);
            double mx = tl_max_abs(p->grad, p->numel), d = 0;
            for (size_t k = 0; k < (size_t)p->numel; k++) {
                double e = fabs((double)got[k] * (oc ? 2.0 : 1.0) - p->grad[k]);
                if (e > d) d = e;
            }
            CHECK(d <= 1e-5 * mx + 1e-30, "%s gradient: %s: 2 ranks vs 1 max diff %.3g (max %.3g)", oc ? "OpenCLIP x2" : "exact",
                  p->name, d, mx);
            if (mx > 0) { nz++; if (d / mx > worst) worst = d / mx; }
        }
        CHECK(nz >= 8, "only %d non-zero gradients", nz);
        fprintf(stderr, "    contrastive gradient, %s: %d non-zero tensors, worst %.2e of max\n",
                oc ? "--dist-grad openclip (x2 = exact)" : "exact", nz, worst);
    }
    cm_free(g);
    cm_model_free(ref);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--child")) return child(argv[2]);
    cm_threads_set(1);
    RUN(test_single_process_group);
    RUN(test_two_ranks_equal_one);
    tl_tmpdir_remove();
    return tl_summary("test_dist");
}
