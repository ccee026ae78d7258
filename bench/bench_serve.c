/*
 * bench_serve.c — the offline side of the `clipmod serve` load test (bench/serve_load.sh), and
 * the weights it serves:
 *   bench_serve                         offline pairs/s of ViT-B-32 formula weights (with a head),
 *                                       batch 32, fp32, decode + transform + tokenize + forward
 *                                       (what `make bench` runs; no files needed)
 *   bench_serve --write PATH            write those weights (ViT-B-32 + head, seed 1) as safetensors
 *   bench_serve --offline IMAGE VOCAB [BATCH [SECONDS]]
 *                                       pairs/s on IMAGE with the BPE vocabulary, same pipeline
 * The serve figures come from wrk against `clipmod serve` in the same run (serve_load.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"
#include "data/image.h"
#include "model/model.h"
#include "data/textenc.h"

#define CHK(x) do { if ((x) != CM_OK) { fprintf(stderr, "bench_serve: %s failed: %s\n", #x, cm_last_error()); return 1; } } while (0)

static cm_status formula_model(CmModel **m) {
    CmModelConfig c;
    cm_status st = cm_config_from_name("ViT-B-32", &c);
    if (st) return st;
    c.has_lora = false;
    c.has_head = true;
    if ((st = cm_model_create(&c, m))) return st;
    cm_model_init_formula(*m, 1);
    return CM_OK;
}

/* pairs/s over `seconds` (at least 2 batches) of batch B: decode + eval transform + tokenize + forward. */
static int offline(const char *image, const char *vocab, int B, double seconds) {
    cm_threads_set(0);
    CmModel *m = NULL;
    CHK(formula_model(&m));
    CmTextEnc te;
    const bool bytes = !vocab;
    CHK(cm_textenc_open(&te, bytes ? "bytes" : "bpe", vocab, NULL));
    uint8_t *jpg = NULL;
    size_t n = 0;
    CmImage im0 = {224, 224, malloc(224 * 224 * 3)};
    for (int i = 0; i < 224 * 224 * 3; i++) im0.rgb[i] = (uint8_t)(i * 13);
    if (image) CHK(cm_read_file(image, (size_t)1 << 28, &jpg, &n));
    else CHK(cm_jpeg_encode(&im0, 90, &jpg, &n));
    const int S = 224, ctx = 77, E = m->cfg.embed_dim, C = m->cfg.head.n_classes;
    float *img = cm_malloc((size_t)B * 3 * S * S * 4, "img"), *U = cm_malloc((size_t)B * E * 4, "U"), *V = cm_malloc((size_t)B * E * 4, "V"),
          *H = cm_malloc((size_t)B * C * 4, "H");
    int32_t *tok = cm_malloc((size_t)B * ctx * 4, "tok");
    if (!img || !U || !V || !H || !tok) return 1;
    const char *cap = "A car and a public transit vehicle on a road.";
    int batches = 0;
    double t0 = cm_now(), dt = 0;
    while (batches < 2 || dt < seconds) {
        for (int i = 0; i < B; i++) {
            CmImage im = {0};
            CHK(cm_image_decode(jpg, n, "bench image", 0, &im));
            CHK(cm_transform_eval(&im, S, &CM_CLIP_NORMALIZE, img + (size_t)i * 3 * S * S));
            cm_image_free(&im);
            CHK(cm_textenc_encode(&te, cap, strlen(cap), tok + (size_t)i * ctx, ctx));
        }
        CHK(cm_model_forward(m, NULL, img, tok, B, false, U, V, H));
        batches++;
        dt = cm_now() - t0;
    }
    printf("offline: %.2f pairs/s (batch %d, %d batches, %.1f s, fp32, %d threads)\n", batches * B / dt, B, batches, dt, cm_threads_get());
    if (image) cm_free(jpg); else free(jpg);
    free(im0.rgb);
    cm_free(img); cm_free(U); cm_free(V); cm_free(H); cm_free(tok);
    cm_textenc_close(&te);
    cm_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        CmModel *m = NULL;
        CHK(formula_model(&m));
        CHK(cm_model_save(m, argv[2], false, NULL, 0));
        cm_model_free(m);
        printf("wrote %s\n", argv[2]);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "--offline"))
        return offline(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 32, argc > 5 ? atof(argv[5]) : 20);
    if (argc != 1) {
        fprintf(stderr, "usage: bench_serve | bench_serve --write PATH | bench_serve --offline IMAGE VOCAB [BATCH [SECONDS]]\n");
        return 2;
    }
    /* make bench: no files (a synthetic 224x224 JPEG, the byte-level tokenizer), 2 batches */
    return offline(NULL, NULL, 32, 0);
}
