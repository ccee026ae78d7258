/*
 * bench_int8_agree.c — `--precision int8` against fp32 on a trained checkpoint with a head:
 * every sample of the given shards through both (the fp32 model as opened; the int8 one as the
 * commands build it: cm_model_set_int8 on the model as opened, LoRA kept in fp32), and per sample the cosine of the
 * image and text embeddings and whether the head's top-1 class agrees. Prints the set size, the
 * worst and mean cosines, how many samples fall below the 0.995 bar, the top-1
 * agreement and both models' top-1 accuracy against the labels.
 * Usage: build/bench/bench_int8_agree [CKPT SHARDS [batch (default 64)]]; without arguments (as
 *   `make bench` runs it) the checkpoint and shards bench/int8_agree.sh leaves in
 *   /tmp/clipmod-int8-agree, or a line saying how to make them.
 *   e.g. after `clipmod demo --data-dir /tmp/d --val-samples 4000` (a model trained from scratch):
 *   build/bench/bench_int8_agree /tmp/d/logs/demo/checkpoints/epoch_25.safetensors '/tmp/d/val/00000.tar'
 *   (bench/int8_agree.sh does both). Exit 0 when the bars hold (cosine >= 0.995 for every sample,
 *   agreement >= 99.5%), 1 when not, 2 on bad arguments or unreadable inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/common.h"
#include "data/batches.h"
#include "data/loader_source.h"
#include "data/textenc.h"
#include "model/model.h"
#include "model/open.h"

static int argmax(const float *x, int K) {
    int a = 0;
    for (int k = 1; k < K; k++) if (x[k] > x[a]) a = k;
    return a;
}

static double cosine(const float *a, const float *b, int E) {
    double d = 0, na = 0, nb = 0;
    for (int e = 0; e < E; e++) { d += (double)a[e] * b[e]; na += (double)a[e] * a[e]; nb += (double)b[e] * b[e]; }
    return d / sqrt(na * nb + 1e-300);
}

int main(int argc, char **argv) {
    static char *dflt[3] = {NULL, "/tmp/clipmod-int8-agree/logs/demo/checkpoints/epoch_25.safetensors",
                            "/tmp/clipmod-int8-agree/val/{00000..00001}.tar"};
    if (argc == 1) {
        if (access(dflt[1], R_OK)) {
            printf("int8 agreement on a trained checkpoint: SKIPPED (no %s; `sh bench/int8_agree.sh` trains the demo "
                   "model there, ~7 min, and runs this)\n", dflt[1]);
            return 0;
        }
        dflt[0] = argv[0];
        argv = dflt;
        argc = 3;
    }
    if (argc < 3 || argc > 4) { fprintf(stderr, "usage: bench_int8_agree [CKPT SHARDS [batch]]\n"); return 2; }
    int B = argc > 3 ? atoi(argv[3]) : 64;
    if (B < 1 || B > 4096) { fprintf(stderr, "bench_int8_agree: batch %s outside 1..4096\n", argv[3]); return 2; }
    cm_threads_set(0);
    CmModel *m = NULL, *q = NULL;
    CmModelInfo info;
    CmOpenOptions oo = {0};
    CmTextEnc te = {0};
    CmBatchSource *src = NULL;
    if (cm_model_open(argv[1], &oo, &m, &info) || cm_model_open(argv[1], &oo, &q, NULL)) goto fail;
    if (!m->cfg.has_head) { cm_error(CM_ERR_ARG, "%s has no classification head", argv[1]); goto fail; }
    if (cm_model_set_int8(q, true)) goto fail;
    if (cm_textenc_open(&te, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", NULL, info.weights)) goto fail;
    CmBatchesConfig sc = {.urls = argv[2], .train = false, .batch_size = B, .workers = 1,
                          .image_size = m->cfg.vision.image_size, .context_len = m->cfg.text.context_length, .te = &te};
    if (cm_batches_open(&sc, &src) || src->start_epoch(src, 0)) goto fail;
    int S = m->cfg.vision.image_size, ctx = m->cfg.text.context_length, E = m->cfg.embed_dim, K = m->cfg.head.n_classes;
    float *img = cm_malloc((size_t)B * 3 * S * S * 4, "images"), *U = cm_malloc((size_t)B * E * 4, "U"),
          *V = cm_malloc((size_t)B * E * 4, "V"), *U8 = cm_malloc((size_t)B * E * 4, "U"),
          *V8 = cm_malloc((size_t)B * E * 4, "V"), *l = cm_malloc((size_t)B * K * 4, "logits"),
          *l8 = cm_malloc((size_t)B * K * 4, "logits");
    int32_t *tok = cm_malloc((size_t)B * ctx * 4, "tokens"), *lab = cm_malloc((size_t)B * 4, "labels");
    if (!img || !U || !V || !U8 || !V8 || !l || !l8 || !tok || !lab) goto fail;
    long n = 0, agree = 0, right = 0, right8 = 0, below = 0;
    double ci_min = 1, ct_min = 1, ci_sum = 0, ct_sum = 0;
    char worst[256] = "";
    for (;;) {
        int got = 0;
        if (src->next(src, img, tok, lab, &got)) goto fail;
        if (got == 0) break;
        if (cm_model_forward(m, NULL, img, tok, got, false, U, V, l) ||
            cm_model_forward(q, NULL, img, tok, got, false, U8, V8, l8)) goto fail;
        for (int i = 0; i < got; i++) {
            double ci = cosine(U + (size_t)i * E, U8 + (size_t)i * E, E), ct = cosine(V + (size_t)i * E, V8 + (size_t)i * E, E);
            int a = argmax(l + (size_t)i * K, K), b = argmax(l8 + (size_t)i * K, K);
            agree += a == b;
            right += a == lab[i];
            right8 += b == lab[i];
            below += ci < 0.995 || ct < 0.995;
            ci_sum += ci;
            ct_sum += ct;
            if (ci < ci_min || ct < ct_min) {
                const char *key = cm_batches_sample_key(src, i, NULL);
                snprintf(worst, sizeof worst, "%s", key ? key : "?");
            }
            if (ci < ci_min) ci_min = ci;
            if (ct < ct_min) ct_min = ct;
        }
        n += got;
    }
    if (n == 0) { cm_error(CM_ERR_IO, "%s: no sample could be read", argv[2]); goto fail; }
    printf("int8 vs fp32 on %ld samples of %s (checkpoint %s):\n", n, argv[2], argv[1]);
    printf("  image embedding cosine min %.5f mean %.5f; text min %.5f mean %.5f (worst sample %s); "
           "%ld samples below 0.995\n", ci_min, ci_sum / n, ct_min, ct_sum / n, worst, below);
    printf("  head top-1 agreement %ld/%ld (%.2f%%, bar 99.5%%); top-1 accuracy fp32 %.4f, int8 %.4f\n", agree, n,
           100.0 * agree / n, (double)right / n, (double)right8 / n);
    int ok = below == 0 && agree * 1000 >= n * 995;
    printf("  %s\n", ok ? "bars met" : "BARS NOT MET");
    cm_batches_close(src);
    cm_textenc_close(&te);
    cm_model_free(m);
    cm_model_free(q);
    return ok ? 0 : 1;
fail:
    fprintf(stderr, "bench_int8_agree: %s\n", cm_last_error());
    return 2;
}
