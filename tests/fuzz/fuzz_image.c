/*
 * fuzz_image.c — libFuzzer target for image inputs: cm_image_decode (JPEG via libjpeg-turbo, PNG
 * via libpng, WebP via libwebp, chosen by magic bytes) with a 64 K-pixel limit (larger images are
 * refused by the same check that guards the 64 MP default; the pixel loops, instrumented for
 * coverage, dominate the time per input, so big images only slow the search), then what the
 * loader and `prepare` do with a decoded image: the eval transform, the train transform
 * (RandomResizedCrop, seeded from the input size), the letterbox, and a differential check that
 * the windowed resampler (the fast path the transforms use) gives exactly the bytes of the plain
 * two-pass reference for a window picked from the image's size (image.h promises identity).
 * Every output float must be finite. Seeds: tests/fuzz/corpus/image/ (tests/fuzz/make_corpus.py).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "data/image.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

#define SZ 24

static void finite_or_abort(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) if (!isfinite(x[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    CmImage img;
    if (FZ(cm_image_decode(data, size, "fuzz", (size_t)1 << 16, &img)) != CM_OK) return 0;
    if (img.w <= 0 || img.h <= 0 || (size_t)img.w * (size_t)img.h > ((size_t)1 << 16)) abort();
    volatile uint8_t sink = img.rgb[(size_t)img.w * img.h * 3 - 1];   /* the whole buffer exists */
    (void)sink;
    static float out[3 * SZ * SZ];
    if (cm_transform_eval(&img, SZ, &CM_CLIP_NORMALIZE, out) == CM_OK) finite_or_abort(out, 3 * SZ * SZ);
    else abort();   /* any decoded image can be transformed */
    CmRng rng;
    cm_rng_seed(&rng, size);
    if (cm_transform_train(&img, SZ, &CM_CLIP_NORMALIZE, &rng, out) == CM_OK) finite_or_abort(out, 3 * SZ * SZ);
    else abort();
    CmImage lb;
    if (cm_letterbox(&img, 32, &lb) != CM_OK) abort();
    if (lb.w != 32 || lb.h != 32) abort();
    cm_image_free(&lb);
    /* differential: a resize to (ow x oh) derived from the size, window inside it */
    int ow = 1 + (int)(size % 37), oh = 1 + (int)((size / 37) % 41);
    int wx = (int)(size % (unsigned)ow), wy = (int)(size % (unsigned)oh);
    int ww = ow - wx, wh = oh - wy;
    CmFilter flt = (size & 1) ? CM_FILTER_BICUBIC : CM_FILTER_BILINEAR;
    uint8_t *a = malloc((size_t)ww * wh * 3), *b = malloc((size_t)ww * wh * 3);
    if (!a || !b) abort();
    cm_status s1 = cm_resample_rgb(img.rgb, img.w, img.h, (size_t)img.w * 3, ow, oh, flt, wx, wy, ww, wh, a);
    cm_status s2 = cm_resample_rgb_ref(img.rgb, img.w, img.h, (size_t)img.w * 3, ow, oh, flt, wx, wy, ww, wh, b);
    if (s1 != CM_OK || s2 != CM_OK || memcmp(a, b, (size_t)ww * wh * 3)) abort();
    free(a);
    free(b);
    cm_image_free(&img);
    return 0;
}
