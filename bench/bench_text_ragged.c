/*
 * bench_text_ragged.c — packed (ragged) vs padded text batches on ViT-B-32 formula weights, with
 * real caption lengths: the titles of the shared Fakeddit TSV (clean_title, tokenized with the CLIP
 * BPE), or, without ../shared, a fixed length histogram of those titles.
 *   - text encode at batch B (default 256): texts/s packed vs padded ([B, longest caption]), in
 *     the same run, alternating; the features of both (max abs difference: the numbers are equal);
 *   - one LoRA training step (forward with activations + loss + backward) at batch B_step (default
 *     256, the seed's shape: ~30-60 s per step on 2 cores) packed vs padded, alternating, after one
 *     untimed round of each; the loss and every gradient of both (max abs difference against the
 *     largest gradient: the numbers are equal).
 * Usage: build/bench/bench_text_ragged [B] [B_step] [iterations] [step iterations (default 1)].
 * Runs with OMP_WAIT_POLICY=passive unless the variable is set (see bench_model.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/common.h"
#include "common/rng.h"
#include "data/tokenizer.h"
#include "model/model.h"

#define CHK(x) do { if ((x) != CM_OK) { fprintf(stderr, "bench_text_ragged: %s failed: %s\n", #x, cm_last_error()); return 1; } } while (0)

/* Token lengths (incl. SOT/EOT) of the first 512 clean_title rows of the shared Fakeddit TSV
   (`clipmod tokenize`; mean 10.0, longest 28), binned by 4: counts for lengths 1-4, 5-8, ...,
   73-77. Used when ../shared is absent. */
static const int FALLBACK_HIST[20] = {66, 173, 140, 71, 40, 15, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static int read_titles(CmTokenizer *tk, int32_t *tok, int B, int *n_read) {
    const char *root = getenv("CLIPMOD_SHARED");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/fakeddit/multimodal_train.tsv", root && *root ? root : "../shared");
    FILE *f = fopen(path, "r");
    *n_read = 0;
    if (!f || !tk) { if (f) fclose(f); return 0; }
    char line[8192];
    if (!fgets(line, sizeof line, f)) { fclose(f); return 0; }   /* header */
    while (*n_read < B && fgets(line, sizeof line, f)) {
        char *t1 = strchr(line, '\t');
        if (!t1) continue;
        char *t2 = strchr(t1 + 1, '\t');
        if (!t2 || t2 == t1 + 1) continue;
        if (cm_tokenize(tk, t1 + 1, (size_t)(t2 - t1 - 1), tok + (size_t)*n_read * 77, 77)) continue;
        (*n_read)++;
    }
    fclose(f);
    return *n_read == B;
}

static void synth_titles(int32_t *tok, int B) {
    CmRng r;
    cm_rng_seed(&r, 3);
    int total = 0;
    for (int i = 0; i < 20; i++) total += FALLBACK_HIST[i];
    memset(tok, 0, (size_t)B * 77 * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        int u = (int)cm_rng_below(&r, (uint64_t)total), bin = 0;
        while (u >= FALLBACK_HIST[bin]) u -= FALLBACK_HIST[bin++];
        int L = bin * 4 + 1 + (int)cm_rng_below(&r, 4);
        if (L < 2) L = 2;
        if (L > 77) L = 77;
        int32_t *t = tok + (size_t)b * 77;
        t[0] = 49406;
        for (int i = 1; i < L - 1; i++) t[i] = (int32_t)cm_rng_below(&r, 49000);
        t[L - 1] = 49407;
    }
}

static double time_encode(CmModel *m, const int32_t *tok, int B, float *feat, int iters) {
    double t0 = cm_now();
    for (int i = 0; i < iters; i++)
        if (cm_encode_text(m, tok, B, NULL, feat)) return -1;
    return (cm_now() - t0) / iters;
}

int main(int argc, char **argv) {
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    int B = argc > 1 ? atoi(argv[1]) : 256, Bs = argc > 2 ? atoi(argv[2]) : 256, iters = argc > 3 ? atoi(argv[3]) : 2;
    int step_iters = argc > 4 ? atoi(argv[4]) : 1;
    if (B < 1 || B > 4096 || Bs < 1 || Bs > B || iters < 1 || step_iters < 1) {
        fprintf(stderr, "usage: bench_text_ragged [B 1..4096] [B_step 1..B] [iterations >= 1] [step iterations >= 1]\n");
        return 2;
    }
    cm_threads_set(0);
    int32_t *tok = cm_malloc((size_t)B * 77 * sizeof(int32_t), "tokens");
    CmTokenizer *tk = NULL;
    if (cm_tokenizer_load(NULL, &tk)) tk = NULL;
    int n_read = 0;
    const char *src = "shared Fakeddit clean_title";
    if (!read_titles(tk, tok, B, &n_read)) { synth_titles(tok, B); src = "fallback histogram of Fakeddit titles"; }
    if (tk) cm_tokenizer_free(tk);
    long sum = 0;
    int mx = 0;
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int t = 1; t < 77; t++) if (tok[(size_t)b * 77 + t] > tok[(size_t)b * 77 + best]) best = t;
        sum += best + 1;
        if (best + 1 > mx) mx = best + 1;
    }
    printf("OMP_WAIT_POLICY=%s threads %d; captions: %s, batch %d: mean %.1f tokens, longest %d "
           "(padded rows %d x %d = %d, packed rows %ld: %.2fx fewer)\n",
           getenv("OMP_WAIT_POLICY"), cm_threads_get(), src, B, (double)sum / B, mx, B, mx, B * mx, sum, (double)B * mx / sum);

    CmModelConfig c;
    CHK(cm_config_from_name("ViT-B-32", &c));
    c.has_head = true;
    c.has_lora = true;
    CmModel *m = NULL;
    CHK(cm_model_create(&c, &m));
    cm_model_init_formula(m, 1);
    cm_model_init_lora_head(m, 2);
    float *fp = cm_malloc((size_t)B * 512 * 4, "features"), *fq = cm_malloc((size_t)B * 512 * 4, "features");
    for (int amp = 0; amp <= 1; amp++) {
        cm_model_set_amp(m, amp);
        cm_model_set_text_padding(m, false);
        CHK(cm_encode_text(m, tok, B, NULL, fp));    /* warm-up */
        cm_model_set_text_padding(m, true);
        CHK(cm_encode_text(m, tok, B, NULL, fq));
        double tp = 0, tq = 0;
        for (int i = 0; i < iters; i++) {           /* alternate, so load changes hit both */
            cm_model_set_text_padding(m, false);
            tp += time_encode(m, tok, B, fp, 1);
            cm_model_set_text_padding(m, true);
            tq += time_encode(m, tok, B, fq, 1);
        }
        double d = 0;
        for (size_t i = 0; i < (size_t)B * 512; i++) { double e = fabs((double)fp[i] - fq[i]); if (e > d) d = e; }
        printf("text encode b%d %s: packed %7.1f texts/s, padded %7.1f texts/s: %.2fx; features max |diff| %.2e\n", B,
               amp ? "amp " : "fp32", B * iters / tp, B * iters / tq, tq / tp, d);
    }
    cm_model_set_amp(m, false);

    /* LoRA training step at batch Bs on the first Bs captions */
    CHK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmActs *a = NULL;
    CHK(cm_acts_create(m, Bs, false, &a));
    float *img = cm_malloc((size_t)Bs * 3 * 224 * 224 * 4, "images");
    float *dU = cm_malloc((size_t)Bs * 512 * 4, "dU"), *dV = cm_malloc((size_t)Bs * 512 * 4, "dV");
    float *hl = cm_malloc((size_t)Bs * 7 * 4, "logits"), *dh = cm_malloc((size_t)Bs * 7 * 4, "dlogits");
    int32_t *lab = cm_malloc((size_t)Bs * 4, "labels");
    CmRng r;
    cm_rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)Bs * 3 * 224 * 224; i++) img[i] = (float)cm_rng_normal(&r);
    for (int b = 0; b < Bs; b++) lab[b] = b % 7;
    double ts[2] = {0, 0}, loss[2] = {0, 0};
    size_t ng = m->n_grad_floats;
    float *g0 = cm_malloc(ng * sizeof(float), "packed grads");
    if (!g0) return 1;
    for (int i = 0; i <= step_iters; i++)
        for (int padded = 0; padded <= 1; padded++) {
            cm_model_set_text_padding(m, padded);
            double s0 = cm_now();
            cm_model_zero_grad(m);
            CHK(cm_model_forward(m, a, img, tok, Bs, false, fp, fq, hl));
            CmLossValues lv;
            CHK(cm_loss(fp, fq, hl, lab, Bs, 512, 7, m->logit_scale.data[0], 1, 1, &lv, dU, dV, dh, NULL));
            CHK(cm_model_backward(m, a, dU, dV, dh));
            if (i) ts[padded] += cm_now() - s0;   /* the first round warms up */
            loss[padded] = lv.loss;
            if (!padded) memcpy(g0, m->grad_arena, ng * sizeof(float));
        }
    double gd = 0, gmax = 0;   /* padded grads are in grad_arena now */
    for (size_t i = 0; i < ng; i++) {
        double e = fabs((double)g0[i] - m->grad_arena[i]);
        if (e > gd) gd = e;
        if (fabs((double)g0[i]) > gmax) gmax = fabs((double)g0[i]);
    }
    printf("LoRA train step b%d fp32: packed %.2f samples/s, padded %.2f samples/s: %.2fx; loss %.7g vs %.7g, "
           "%zu gradient values max |diff| %.2e (largest |grad| %.2e: %.1e relative)\n", Bs, Bs * step_iters / ts[0],
           Bs * step_iters / ts[1], ts[1] / ts[0], loss[0], loss[1], ng, gd, gmax, gmax > 0 ? gd / gmax : 0.0);
    cm_free(g0);
    cm_acts_free(a);
    cm_free(img); cm_free(dU); cm_free(dV); cm_free(hl); cm_free(dh); cm_free(lab);
    cm_free(tok); cm_free(fp); cm_free(fq);
    cm_model_free(m);
    return 0;
}
