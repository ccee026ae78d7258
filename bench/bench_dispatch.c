/*
 * bench_dispatch.c — the hot loops that carry an AVX-512 clone (CM_HOT, src/kernels/vecmath.h) and
 * the attention around them, on ViT-B-32 shapes at batch 32: best-of process CPU time and wall time
 * per call, one line per kernel ("kernel NAME CPU_SECONDS WALL_SECONDS"); then whole ViT-B-32 work at batch 4 (formula weights): image
 * encode, text encode, and one LoRA training step (forward + loss + backward), where OpenBLAS /
 * oneDNN do most of the work and dispatch themselves. scripts/bench-native.sh runs this binary from
 * the default build and from a NATIVE=1 build, interleaved, and prints the ratios.
 * BENCH_QUICK=1: one pass.
 */
#include "kernels/ops.h"
#include "common/common.h"
#include "common/rng.h"
#include "model/model.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static float *randv(size_t n, float scale, CmRng *r) {
    float *x = cm_malloc(sizeof(float) * n, "bench buffer");
    if (!x) { fprintf(stderr, "%s\n", cm_last_error()); exit(1); }
    for (size_t i = 0; i < n; i++) x[i] = (float)((cm_rng_uniform(r) * 2 - 1) * scale);
    return x;
}

/* process CPU seconds: on a machine shared with other busy processes, the CPU time of a
   single-threaded run (CLIPMOD_THREADS=1) is far steadier than wall time, which also counts the
   time the scheduler gives to others */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int reps;
/* best-of over reps after one warm-up: "kernel NAME CPU_SECONDS WALL_SECONDS" */
#define REPORT(name, stmt) do { double bc_ = 1e30, bw_ = 1e30; stmt; \
    for (int r_ = 0; r_ < reps; r_++) { double c0_ = cpu_now(), w0_ = cm_now(); stmt; \
        double c_ = cpu_now() - c0_, w_ = cm_now() - w0_; if (c_ < bc_) bc_ = c_; if (w_ < bw_) bw_ = w_; } \
    printf("kernel %-22s %.6e %.6e\n", name, bc_, bw_); } while (0)

#define CHK(x) do { if ((x) != CM_OK) { fprintf(stderr, "bench_dispatch: %s: %s\n", #x, cm_last_error()); return 1; } } while (0)

static int model_work(CmRng *r) {
    const int B = 4;
    int keep = reps;
    reps = reps > 2 ? 2 : reps;
    CmModelConfig c;
    CHK(cm_config_from_name("ViT-B-32", &c));
    c.has_head = true;
    c.has_lora = true;
    CmModel *m = NULL;
    CHK(cm_model_create(&c, &m));
    cm_model_init_formula(m, 1);
    cm_model_init_lora_head(m, 2);
    size_t isz = 3 * 224 * 224;
    float *img = randv(B * isz, 1, r), *u = randv((size_t)B * 512, 0, r), *v = randv((size_t)B * 512, 0, r);
    int32_t tok[4 * 77] = {0}, lab[4];
    for (int b = 0; b < B; b++) {
        tok[b * 77] = 49406;
        for (int t = 1; t < 30; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(r, 49000);
        tok[b * 77 + 30] = 49407;
        lab[b] = b % 7;
    }
    cm_status st = CM_OK;
    REPORT("model_image_encode_b4", st |= cm_encode_image(m, img, B, NULL, u));
    REPORT("model_text_encode_b4", st |= cm_encode_text(m, tok, B, NULL, v));
    CHK(st);
    CHK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmActs *a = NULL;
    CHK(cm_acts_create(m, B, false, &a));
    float *dU = randv((size_t)B * 512, 0, r), *dV = randv((size_t)B * 512, 0, r), hl[4 * 7], dh[4 * 7];
    CmLossValues lv;
    REPORT("model_lora_step_b4", (cm_model_zero_grad(m), st |= cm_model_forward(m, a, img, tok, B, true, u, v, hl),
           st |= cm_loss(u, v, hl, lab, B, 512, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, NULL),
           st |= cm_model_backward(m, a, dU, dV, dh)));
    CHK(st);
    cm_acts_free(a);
    cm_model_free(m);
    cm_free(img); cm_free(u); cm_free(v); cm_free(dU); cm_free(dV);
    cm_bf16_release();
    reps = keep;
    return 0;
}

int main(void) {
    const char *q = getenv("BENCH_QUICK");
    reps = q && *q && strcmp(q, "0") ? 1 : 10;
    cm_threads_set(0);
    printf("bench_dispatch: %d threads\n", cm_threads_get());
    CmRng r;
    cm_rng_seed(&r, 11);
    size_t n = (size_t)32 * 50 * 3072;                      /* the fc1 activation at batch 32 */
    float *x = randv(n, 4, &r), *y = randv(n, 0, &r), *dy = randv(n, 1, &r), *dx = randv(n, 0, &r);
    REPORT("gelu_forward", cm_gelu_forward(y, x, n));
    REPORT("gelu_backward", cm_gelu_backward(dx, x, dy, n));
    REPORT("quickgelu_forward", cm_quickgelu_forward(y, x, n));
    REPORT("quickgelu_backward", cm_quickgelu_backward(dx, x, dy, n));
    int M = 32 * 50, C = 768;
    float *w = randv(C, 1, &r), *b = randv(C, 1, &r), *dw = randv(C, 0, &r), *db = randv(C, 0, &r);
    float *mu = randv(M, 0, &r), *rs = randv(M, 0, &r);
    REPORT("layernorm_forward", cm_layernorm_forward(y, mu, rs, x, w, b, M, C));
    REPORT("layernorm_backward", cm_layernorm_backward(dx, dw, db, dy, x, w, mu, rs, M, C));
    int Ms = 32 * 12 * 50, N = 50;
    REPORT("softmax_forward", cm_softmax_forward(y, x, Ms, N));
    REPORT("softmax_backward", cm_softmax_backward(dx, y, dy, Ms, N));
    int B = 32, T = 50, NH = 12;
    size_t nq = (size_t)B * T * 3 * C;
    float *qkv = randv(nq, 1, &r), *att = randv((size_t)B * NH * T * T, 0, &r), *dq = randv(nq, 0, &r);
    size_t awb = cm_attention_plan(B, T, C, NH, true);
    void *aws = cm_malloc(awb, "attention workspace");
    REPORT("attention_forward", cm_attention_forward(y, att, qkv, B, T, C, NH, false, aws, awb));
    REPORT("attention_backward", cm_attention_backward(dq, dy, qkv, att, B, T, C, NH, false, aws, awb));
    cm_free(aws);
    cm_free(x); cm_free(y); cm_free(dy); cm_free(dx); cm_free(w); cm_free(b); cm_free(dw); cm_free(db);
    cm_free(mu); cm_free(rs); cm_free(qkv); cm_free(att); cm_free(dq);
    return model_work(&r) ? 1 : 0;
}
