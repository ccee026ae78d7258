/*
 * bench_int8.c — `--precision int8` on ViT-B-32 formula weights (no files needed for the speed
 * part): image and text encode rates, fp32 vs int8, alternating in one run (ratios from the same
 * run), and the agreement with fp32 on real data: the shared Fakeddit + COCO images (eval
 * transform) and their captions — per-sample embedding cosine (minimum reported; the bar is
 * >= 0.995) and top-1 agreement of the classification head on the (image, caption) pairs.
 * A third line: packed text encode on the first `batch` Fakeddit titles (the real length mix:
 * fewer, varying rows per call), fp32 vs int8 in the same run.
 * Usage: build/bench/bench_int8 [batch (default 32)] [iterations (default 2)]. Runs with
 * OMP_WAIT_POLICY=passive unless the variable is set (see bench_model.c).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/common.h"
#include "common/rng.h"
#include "data/image.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "model/infer.h"

#define CHK(x) do { if ((x) != CM_OK) { fprintf(stderr, "bench_int8: %s failed: %s\n", #x, cm_last_error()); return 1; } } while (0)

static double min_cos(const float *a, const float *b, int n, int E, double *mean) {
    double worst = 1, sum = 0;
    for (int i = 0; i < n; i++) {
        double d = 0;
        for (int e = 0; e < E; e++) d += (double)a[(size_t)i * E + e] * b[(size_t)i * E + e];   /* unit vectors */
        if (d < worst) worst = d;
        sum += d;
    }
    if (mean) *mean = n ? sum / n : 0;
    return worst;
}

/* images of <shared>/data/fakeddit/images (+ the captions of their TSV rows) and COCO */
enum { MAXN = 128 };
static int load_real(CmTokenizer *tk, float *img, int32_t *tok, int *n_out) {
    const char *root = getenv("CLIPMOD_SHARED");
    if (!root || !*root) root = "../shared";
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/data/fakeddit/multimodal_train.tsv", root);
    FILE *f = fopen(path, "r");
    if (!f || !tk) { if (f) fclose(f); return 0; }
    int n = 0;
    if (!fgets(line, sizeof line, f)) { fclose(f); return 0; }
    while (n < MAXN && fgets(line, sizeof line, f)) {
        /* columns: author clean_title created_utc domain hasImage id ... */
        char *col[7] = {line};
        int k = 1;
        for (char *p = line; *p && k < 7; p++) if (*p == '\t') { *p = 0; col[k++] = p + 1; }
        if (k < 7) continue;
        char ip[1200];
        snprintf(ip, sizeof ip, "%s/data/fakeddit/images/%s.jpg", root, col[5]);
        if (access(ip, R_OK)) continue;
        CmImage im;
        if (cm_image_load(ip, 0, &im)) continue;
        cm_status st = cm_transform_eval(&im, 224, &CM_CLIP_NORMALIZE, img + (size_t)n * 3 * 224 * 224);
        cm_image_free(&im);
        if (st || cm_tokenize(tk, col[1], strlen(col[1]), tok + (size_t)n * 77, 77)) continue;
        n++;
    }
    fclose(f);
    *n_out = n;
    return n > 0;
}

/* the first n titles of the shared Fakeddit TSV (the real caption-length mix), 0 when absent */
static int load_titles(CmTokenizer *tk, int32_t *tok, int n) {
    const char *root = getenv("CLIPMOD_SHARED");
    if (!root || !*root) root = "../shared";
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/data/fakeddit/multimodal_train.tsv", root);
    FILE *f = tk ? fopen(path, "r") : NULL;
    if (!f) return 0;
    int k = 0;
    if (fgets(line, sizeof line, f))
        while (k < n && fgets(line, sizeof line, f)) {
            char *a = strchr(line, '\t'), *b = a ? strchr(a + 1, '\t') : NULL;   /* column 2: clean_title */
            if (!b || b == a + 1) continue;
            if (cm_tokenize(tk, a + 1, (size_t)(b - a - 1), tok + (size_t)k * 77, 77)) continue;
            k++;
        }
    fclose(f);
    return k == n ? n : 0;
}

int main(int argc, char **argv) {
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    int B = argc > 1 ? atoi(argv[1]) : 32, iters = argc > 2 ? atoi(argv[2]) : 2;
    if (B < 1 || B > 1024 || iters < 1) { fprintf(stderr, "usage: bench_int8 [batch 1..1024] [iterations >= 1]\n"); return 2; }
    cm_threads_set(0);
    CmModelConfig c;
    CHK(cm_config_from_name("ViT-B-32", &c));
    c.has_head = true;
    CmModel *m = NULL;
    CHK(cm_model_create(&c, &m));
    cm_model_init_formula(m, 1);
    size_t isz = 3 * 224 * 224;
    float *img = cm_malloc((size_t)B * isz * 4, "images"), *fa = cm_malloc((size_t)MAXN * 512 * 4, "f"),
          *fb = cm_malloc((size_t)MAXN * 512 * 4, "f");
    int32_t *tok = cm_malloc((size_t)B * 77 * 4, "tokens");
    CmRng r;
    cm_rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)B * isz; i++) img[i] = (float)cm_rng_normal(&r);
    for (int b = 0; b < B; b++) {   /* 77-token captions: the same work as PyTorch's padded tower */
        tok[b * 77] = 49406;
        for (int t = 1; t < 76; t++) tok[b * 77 + t] = (int32_t)cm_rng_below(&r, 49000);
        tok[b * 77 + 76] = 49407;
    }
    /* one inference session (activations allocated once, as embed/eval/predict/serve run), made
       with int8 on so that it holds the int8 workspace; with int8 off the same towers run fp32 */
    CHK(cm_model_set_int8(m, true));
    CmInfer *ses = NULL;
    CHK(cm_infer_create(m, B, &ses));
    CHK(cm_infer_encode_image(ses, img, B, NULL, fa));   /* warm-up: primitives, first touch */
    CHK(cm_infer_encode_text(ses, tok, B, NULL, fa));
    CHK(cm_model_set_int8(m, false));
    CHK(cm_infer_encode_image(ses, img, B, NULL, fa));
    CHK(cm_infer_encode_text(ses, tok, B, NULL, fa));
    double t[2][2] = {{0, 0}, {0, 0}};   /* [int8][image/text] */
    for (int i = 0; i < iters; i++)
        for (int q0 = 0; q0 <= 1; q0++) {
            int q = (i & 1) ? 1 - q0 : q0;   /* ABBA order: drifts of a shared machine cancel */
            CHK(cm_model_set_int8(m, q));
            double t0 = cm_now();
            CHK(cm_infer_encode_image(ses, img, B, NULL, fa));
            double t1 = cm_now();
            CHK(cm_infer_encode_text(ses, tok, B, NULL, fa));
            t[q][0] += t1 - t0;
            t[q][1] += cm_now() - t1;
        }
    /* packed text with the real caption-length mix: the first B Fakeddit titles */
    CmTokenizer *tk0 = NULL;
    if (cm_tokenizer_load(NULL, &tk0)) tk0 = NULL;
    int32_t *ftok = cm_malloc((size_t)B * 77 * 4, "titles");
    int have_titles = ftok && load_titles(tk0, ftok, B);
    double tr[2] = {0, 0};
    if (have_titles) {
        for (int q = 1; q >= 0; q--) { CHK(cm_model_set_int8(m, q)); CHK(cm_infer_encode_text(ses, ftok, B, NULL, fa)); }
        for (int i = 0; i < iters; i++)
            for (int q0 = 0; q0 <= 1; q0++) {
                int q = (i & 1) ? 1 - q0 : q0;
                CHK(cm_model_set_int8(m, q));
                double t0 = cm_now();
                for (int r = 0; r < 4; r++) CHK(cm_infer_encode_text(ses, ftok, B, NULL, fa));
                tr[q] += cm_now() - t0;
            }
    }
    cm_infer_free(ses);
    printf("OMP_WAIT_POLICY=%s threads %d; ViT-B-32 formula weights, batch %d, %d iterations\n", getenv("OMP_WAIT_POLICY"),
           cm_threads_get(), B, iters);
    printf("image encode: fp32 %7.2f images/s, int8 %7.2f images/s: %.2fx (target >= 2x)\n", B * iters / t[0][0],
           B * iters / t[1][0], t[0][0] / t[1][0]);
    printf("text encode (77 tokens): fp32 %7.2f texts/s, int8 %7.2f texts/s: %.2fx (target >= 1.8x)\n", B * iters / t[0][1],
           B * iters / t[1][1], t[0][1] / t[1][1]);

    if (have_titles) {
        long ntok = 0;
        for (int b = 0; b < B; b++) {
            int L = 0;
            for (int t = 0; t < 77; t++) if (ftok[b * 77 + t] == 49407) { L = t + 1; break; }
            ntok += L;
        }
        printf("text encode (first %d Fakeddit titles, packed, mean %.1f tokens): fp32 %7.2f texts/s, int8 %7.2f texts/s: "
               "%.2fx\n", B, (double)ntok / B, 4.0 * B * iters / tr[0], 4.0 * B * iters / tr[1], tr[0] / tr[1]);
    } else {
        printf("text encode (Fakeddit titles): SKIPPED (no ../shared TSV or vocabulary: set CLIPMOD_SHARED)\n");
    }
    if (tk0) cm_tokenizer_free(tk0);
    cm_free(ftok);

    /* agreement on real images and captions */
    CmTokenizer *tk = NULL;
    if (cm_tokenizer_load(NULL, &tk)) tk = NULL;
    float *rimg = cm_malloc((size_t)MAXN * isz * 4, "real images");
    int32_t *rtok = cm_malloc((size_t)MAXN * 77 * 4, "real tokens");
    int n = 0;
    if (!load_real(tk, rimg, rtok, &n)) {
        printf("agreement: SKIPPED (no ../shared data or vocabulary: set CLIPMOD_SHARED)\n");
    } else {
        float *ga = cm_malloc((size_t)n * 512 * 4, "f"), *gb = cm_malloc((size_t)n * 512 * 4, "f");
        float *la = cm_malloc((size_t)n * 7 * 4, "logits"), *lb = cm_malloc((size_t)n * 7 * 4, "logits");
        CHK(cm_model_set_int8(m, false));
        CHK(cm_model_forward(m, NULL, rimg, rtok, n, false, fa, ga, la));
        CHK(cm_model_set_int8(m, true));
        CHK(cm_model_forward(m, NULL, rimg, rtok, n, false, fb, gb, lb));
        double mi, mt, ci = min_cos(fa, fb, n, 512, &mi), ct = min_cos(ga, gb, n, 512, &mt);
        int agree = 0;
        for (int i = 0; i < n; i++) {
            int a = 0, b = 0;
            for (int k = 1; k < 7; k++) { if (la[i * 7 + k] > la[i * 7 + a]) a = k; if (lb[i * 7 + k] > lb[i * 7 + b]) b = k; }
            agree += a == b;
        }
        printf("agreement on %d real Fakeddit images + titles: image cosine min %.5f mean %.5f; text cosine min %.5f mean %.5f; "
               "head top-1 agreement %d/%d (%.1f%%)%s\n", n, ci, mi, ct, mt, agree, n, 100.0 * agree / n,
               ci >= 0.995 && ct >= 0.995 ? "" : "  BELOW the 0.995 bar");
        cm_free(ga); cm_free(gb); cm_free(la); cm_free(lb);
    }
    if (tk) cm_tokenizer_free(tk);
    cm_free(rimg); cm_free(rtok);
    cm_free(img); cm_free(fa); cm_free(fb); cm_free(tok);
    cm_model_free(m);
    return 0;
}
