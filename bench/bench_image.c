/*
 * bench_image.c — image pipeline throughput on one core (`make bench`), all figures same-run:
 *   - decode + eval transform of 256x256 JPEGs (the shard layout: letterboxed, quality 95, made
 *     with cm_letterbox + cm_jpeg_encode from the shared COCO photos, or from a synthetic image
 *     when ../shared is absent): images/s, target >= 900;
 *   - decode only, transform only (from decoded RGB), and the transform with the plain reference
 *     resampler (cm_resample_rgb_ref) as the baseline of the fast path;
 *   - the train transform and a 640x480 eval transform.
 * BENCH_QUICK=1 runs each case briefly (smoke test).
 */
#include "data/image.h"
#include "common/common.h"
#include "common/rng.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NIMG 32

static double min_time;

/* CPU time of this thread: the machine is shared, and a rate per CPU-second of one thread is what
   "images/s on one core" means; wall-clock rates are printed beside it. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double wall_rate;   /* wall-clock rate of the last RATE() */

/* images per CPU-second of the statement applied to image i = 0..NIMG-1 round robin, best of 3
   runs (wall_rate: the wall-clock rate of the same runs, best of 3). */
#define RATE(...) ({ double best_ = 0; wall_rate = 0; for (int run_ = 0; run_ < 3; run_++) { long n_ = 0; \
    double t0_ = cpu_now(), w0_ = cm_now(), t_; do { for (int i = 0; i < NIMG; i++) { __VA_ARGS__; } n_ += NIMG; } \
    while ((t_ = cpu_now() - t0_) < min_time); if (n_ / t_ > best_) best_ = n_ / t_; \
    if (n_ / (cm_now() - w0_) > wall_rate) wall_rate = n_ / (cm_now() - w0_); } best_; })

static void die(void) { fprintf(stderr, "bench_image: %s\n", cm_last_error()); exit(1); }

/* A synthetic 640x480 photo-like image: smooth gradients plus noise. */
static void synthetic(CmImage *img, CmRng *r) {
    img->w = 640; img->h = 480;
    img->rgb = cm_malloc(640 * 480 * 3, "synthetic");
    if (!img->rgb) die();
    for (int y = 0; y < 480; y++)
        for (int x = 0; x < 640; x++)
            for (int c = 0; c < 3; c++) {
                int v = (x * (c + 1) / 4 + y / 3 + (int)cm_rng_below(r, 24)) & 255;
                img->rgb[((size_t)y * 640 + x) * 3 + c] = (uint8_t)v;
            }
}

int main(void) {
    const char *q = getenv("BENCH_QUICK");
    min_time = q && *q && strcmp(q, "0") ? 0.05 : 0.5;
    const char *root = getenv("CLIPMOD_SHARED") ? getenv("CLIPMOD_SHARED") : "../shared";
    CmRng r;
    cm_rng_seed(&r, 1);

    /* Source photos: the two COCO images (letterboxed differently by cropping), else synthetic. */
    CmImage src[2];
    int nsrc = 0;
    const char *files[2] = {"data/coco/000000039769.png", "data/coco/000000086220.jpg"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, files[i]);
        if (cm_image_load(path, 0, &src[nsrc]) == CM_OK) nsrc++;
    }
    const char *origin = nsrc ? "COCO photos" : "synthetic image";
    if (!nsrc) { synthetic(&src[0], &r); nsrc = 1; }

    /* NIMG shard JPEGs: random crops of the sources, letterboxed to 256x256, quality 95. */
    uint8_t *jpg[NIMG];
    size_t jlen[NIMG], total = 0;
    for (int i = 0; i < NIMG; i++) {
        const CmImage *s = &src[i % nsrc];
        int cw = s->w / 2 + (int)cm_rng_below(&r, (uint64_t)(s->w / 2)), ch = s->h / 2 + (int)cm_rng_below(&r, (uint64_t)(s->h / 2));
        int x0 = (int)cm_rng_below(&r, (uint64_t)(s->w - cw + 1)), y0 = (int)cm_rng_below(&r, (uint64_t)(s->h - ch + 1));
        CmImage crop = {cw, ch, cm_malloc((size_t)cw * ch * 3, "crop")}, box;
        if (!crop.rgb) die();
        for (int y = 0; y < ch; y++) memcpy(crop.rgb + (size_t)y * cw * 3, s->rgb + ((size_t)(y + y0) * s->w + x0) * 3, (size_t)cw * 3);
        if (cm_letterbox(&crop, CM_LETTERBOX_SIZE, &box) != CM_OK) die();
        if (cm_jpeg_encode(&box, CM_JPEG_QUALITY_DEFAULT, &jpg[i], &jlen[i]) != CM_OK) die();
        total += jlen[i];
        cm_image_free(&crop);
        cm_image_free(&box);
    }
    CmImage dec[NIMG];
    for (int i = 0; i < NIMG; i++)
        if (cm_image_decode(jpg[i], jlen[i], "bench", 0, &dec[i]) != CM_OK) die();

    float *out = cm_malloc(3 * 224 * 224 * sizeof(float), "bench out");
    uint8_t *u8 = cm_malloc(224 * 224 * 3, "bench u8");
    if (!out || !u8) die();
    printf("image pipeline, one thread, %d JPEGs 256x256 q%d from %s (mean %zu bytes):\n", NIMG,
           CM_JPEG_QUALITY_DEFAULT, origin, total / NIMG);

    double wall[8];
    double full = RATE({
        CmImage im;
        if (cm_image_decode(jpg[i], jlen[i], "bench", 0, &im) != CM_OK) die();
        if (cm_transform_eval(&im, 224, &CM_CLIP_NORMALIZE, out) != CM_OK) die();
        cm_image_free(&im);
    });
    wall[0] = wall_rate;
    double dec_only = RATE({
        CmImage im;
        if (cm_image_decode(jpg[i], jlen[i], "bench", 0, &im) != CM_OK) die();
        cm_image_free(&im);
    });
    wall[1] = wall_rate;
    double tr_only = RATE({ if (cm_transform_eval(&dec[i], 224, &CM_CLIP_NORMALIZE, out) != CM_OK) die(); });
    wall[2] = wall_rate;
    double tr_ref = RATE({
        int nw, nh, l, t;
        cm_eval_geometry(dec[i].w, dec[i].h, 224, &nw, &nh, &l, &t);
        if (cm_resample_rgb_ref(dec[i].rgb, dec[i].w, dec[i].h, (size_t)dec[i].w * 3, nw, nh, CM_FILTER_BICUBIC, l, t, 224, 224, u8) != CM_OK) die();
        cm_normalize_u8(u8, 224 * 224, &CM_CLIP_NORMALIZE, out);
    });
    CmRng tr;
    cm_rng_seed(&tr, 2);
    double train = RATE({ if (cm_transform_train(&dec[i], 224, &CM_CLIP_NORMALIZE, &tr, out) != CM_OK) die(); });
    printf("  (rates per CPU-second of this thread; wall-clock rates in brackets, lower when the machine is shared)\n");
    printf("  decode + eval transform   %8.0f images/s [%5.0f]  (target >= 900)   %.3f ms/image\n", full, wall[0], 1e3 / full);
    printf("  decode only               %8.0f images/s [%5.0f]                    %.3f ms/image\n", dec_only, wall[1], 1e3 / dec_only);
    printf("  eval transform only       %8.0f images/s [%5.0f]                    %.3f ms/image\n", tr_only, wall[2], 1e3 / tr_only);
    printf("  eval, reference resampler %8.0f images/s   fast path %.2fx faster\n", tr_ref, tr_only / tr_ref);
    printf("  train transform only      %8.0f images/s\n", train);

    /* A larger photo: 640x480 -> 298x224 -> crop (only the crop window is computed). */
    CmImage big;
    if (nsrc && src[0].w >= 640) big = src[0]; else synthetic(&big, &r);
    double bigr = RATE({ (void)i; if (cm_transform_eval(&big, 224, &CM_CLIP_NORMALIZE, out) != CM_OK) die(); });
    double bigref = RATE({
        (void)i;
        int nw, nh, l, t;
        cm_eval_geometry(big.w, big.h, 224, &nw, &nh, &l, &t);
        if (cm_resample_rgb_ref(big.rgb, big.w, big.h, (size_t)big.w * 3, nw, nh, CM_FILTER_BICUBIC, l, t, 224, 224, u8) != CM_OK) die();
        cm_normalize_u8(u8, 224 * 224, &CM_CLIP_NORMALIZE, out);
    });
    printf("  eval transform %dx%d    %8.0f images/s   reference %.0f/s, fast %.2fx\n", big.w, big.h, bigr, bigref, bigr / bigref);

    if (big.rgb != src[0].rgb) cm_image_free(&big);
    for (int i = 0; i < NIMG; i++) { free(jpg[i]); cm_image_free(&dec[i]); }
    for (int i = 0; i < nsrc; i++) cm_image_free(&src[i]);
    cm_free(out);
    cm_free(u8);
    return 0;
}
