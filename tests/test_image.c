/*
 * test_image.c — image decoding, the eval/train transforms, letterbox and JPEG encoding:
 *   - the 17 goldens of shared/golden/preprocess (every format/mode PIL distinguishes) through the
 *     library and through `clipmod preprocess`, against <name>.pilrgb.f32 (else <name>.f32);
 *   - the fast windowed resampler against the plain reference on random sizes, both filters;
 *   - PIL's conversion rules on PNGs written here (16-bit gray clipping, 16-bit high byte,
 *     2-bit scaling, palette indices beyond PLTE, interlacing);
 *   - bad input: truncated and corrupted files of each format, zero bytes, non-image bytes,
 *     absurd dimensions (refused before allocating), the pixel limit;
 *   - train transform determinism, range and crop statistics; letterbox geometry and the golden
 *     letterbox JPEG (byte-identical); JPEG round trip.
 * Files written by the tests go to a mkdtemp folder under /tmp.
 */
#include "testlib.h"
#include "common/common.h"
#include "data/image.h"
#include "io/tensorfile.h"

#include <png.h>
#include <unistd.h>
#include <zlib.h>


/* ---- goldens ---------------------------------------------------------------------------------- */

static const char *GOLDEN[17][2] = {  /* file, reference tensor */
    {"000000086220.jpg", "000000086220.jpg.f32"}, {"000000039769.png", "000000039769.png.f32"},
    {"gray.jpg", "gray.jpg.f32"}, {"rgba_alpha.png", "rgba_alpha.png.pilrgb.f32"},
    {"gray_alpha.png", "gray_alpha.png.pilrgb.f32"}, {"palette.png", "palette.png.pilrgb.f32"},
    {"bilevel.png", "bilevel.png.pilrgb.f32"}, {"cmyk.jpg", "cmyk.jpg.pilrgb.f32"},
    {"progressive.jpg", "progressive.jpg.f32"}, {"wide_1000x120.png", "wide_1000x120.png.f32"},
    {"tall_90x700.png", "tall_90x700.png.f32"}, {"tiny_17x11.png", "tiny_17x11.png.f32"},
    {"exact_224.png", "exact_224.png.f32"}, {"letterbox_256.jpg", "letterbox_256.jpg.f32"},
    {"lossy.webp", "lossy.webp.f32"}, {"png_named.jpg", "png_named.jpg.f32"},
    {"exif_orientation6.jpg", "exif_orientation6.jpg.f32"},
};
#define NT (3 * 224 * 224)

static void compare_golden(const float *got, const float *want, const char *name, size_t *ident) {
    double mx = 0, sum = 0;
    size_t same = 0;
    for (size_t i = 0; i < NT; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > mx || d != d) mx = d != d ? INFINITY : d;
        sum += d;
        same += got[i] == want[i];
    }
    CHECK(mx <= 0.0151, "%s: max |diff| %.4g > 0.0151", name, mx);
    CHECK(sum / NT <= 1e-3, "%s: mean |diff| %.4g > 1e-3", name, sum / NT);
    /* Pillow's arithmetic is reproduced exactly: expect bit-identical tensors. */
    CHECK(mx <= 1e-6, "%s: not bit-exact (max |diff| %.4g, %.3f%% identical)", name, mx, 100.0 * same / NT);
    if (ident) *ident += same;
}

static void test_goldens(void) {
    SHARED_OR_SKIP();
    float *t = malloc(NT * sizeof(float));
    size_t ident = 0;
    for (int i = 0; i < 17; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/preprocess/images/%s", GOLDEN[i][0]);
        CmImage img;
        cm_status st = cm_image_load(tl_shared(rel), 0, &img);
        CHECK(st == CM_OK, "%s: %s", GOLDEN[i][0], cm_last_error());
        if (st != CM_OK) continue;
        snprintf(rel, sizeof rel, "golden/preprocess/%s", GOLDEN[i][1]);
        size_t len;
        uint8_t *want = tl_read_golden(rel, &len);
        CHECK(want && len == NT * sizeof(float), "%s missing or wrong size", rel);
        if (want && len == NT * sizeof(float)) {
            CHECK(cm_transform_eval(&img, 224, &CM_CLIP_NORMALIZE, t) == CM_OK, "%s", cm_last_error());
            compare_golden(t, (const float *)want, GOLDEN[i][0], &ident);
        }
        cm_free(want);
        cm_image_free(&img);
    }
    fprintf(stderr, "    goldens: %.4f%% of %d values bit-identical\n", 100.0 * ident / (17.0 * NT), 17 * NT);
    free(t);
}

/* PIL-reported sizes of the goldens: the decoders give the stored size (no EXIF rotation). */
static void test_golden_sizes(void) {
    SHARED_OR_SKIP();
    static const struct { const char *f; int w, h; } S[] = {
        {"000000086220.jpg", 640, 428}, {"wide_1000x120.png", 1000, 120}, {"tall_90x700.png", 90, 700},
        {"tiny_17x11.png", 17, 11}, {"exif_orientation6.jpg", 640, 480}, {"png_named.jpg", 320, 240},
        {"lossy.webp", 640, 480}, {"cmyk.jpg", 640, 480}};
    for (size_t i = 0; i < sizeof S / sizeof S[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/preprocess/images/%s", S[i].f);
        CmImage img;
        REQ_OK(cm_image_load(tl_shared(rel), 0, &img));
        CHECK(img.w == S[i].w && img.h == S[i].h, "%s: %dx%d", S[i].f, img.w, img.h);
        cm_image_free(&img);
    }
}

/* Bonus: the tiny config's 64x64 eval transform of its 8 real inputs (golden/tiny/inputs.safetensors). */
static void test_tiny_inputs(void) {
    SHARED_OR_SKIP();
    static const char *P[8] = {"data/coco/000000086220.jpg", "data/fakeddit/images/177jpd.jpg",
                               "data/fakeddit/images/16pfs3.jpg", "data/coco/000000039769.png",
                               "data/fakeddit/images/2426x5.jpg", "data/fakeddit/images/26mjyb.jpg",
                               "data/fakeddit/images/1qz4mt.jpg", "data/fakeddit/images/2vjjnd.jpg"};
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/inputs.safetensors"), &f));
    const CmTensorView *t = cm_tensorfile_find(f, "images");
    const int n = 3 * 64 * 64;
    if (!t || t->numel != (size_t)8 * n) {
        CHECK(0, "images tensor missing or mis-shaped");
        cm_tensorfile_close(f);
        return;
    }
    float *want = malloc(t->numel * sizeof(float)), got[3 * 64 * 64];
    CHECK(cm_tensor_to_f32(t, want) == CM_OK, "%s", cm_last_error());
    for (int i = 0; i < 8; i++) {
        CmImage img;
        cm_status st = cm_image_load(tl_shared(P[i]), 0, &img);
        CHECK(st == CM_OK, "%s", cm_last_error());
        if (st != CM_OK) continue;
        CHECK(cm_transform_eval(&img, 64, &CM_CLIP_NORMALIZE, got) == CM_OK, "%s", cm_last_error());
        double d = tl_max_abs_diff(got, want + (size_t)i * n, (size_t)n);
        CHECK(d <= 1e-6, "%s: max |diff| %.3g (expected bit-exact)", P[i], d);
        cm_image_free(&img);
    }
    free(want);
    cm_tensorfile_close(f);
}

/* Every shared Fakeddit image decodes to the size its INDEX.tsv gives. */
static void test_fakeddit_images(void) {
    SHARED_OR_SKIP();
    FILE *idx = fopen(tl_shared("data/fakeddit/images/INDEX.tsv"), "r");
    REQUIRE(idx, "INDEX.tsv");
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, idx)) {
        char file[256], id[64], fmt[64];
        int w, h;
        if (sscanf(line, "%255[^\t]\t%63[^\t]\t%63[^\t]\t%d\t%d", file, id, fmt, &w, &h) != 5) continue;
        char rel[400];
        snprintf(rel, sizeof rel, "data/fakeddit/images/%s", file);
        CmImage img;
        cm_status st = cm_image_load(tl_shared(rel), 0, &img);
        CHECK(st == CM_OK, "%s", cm_last_error());
        if (st != CM_OK) continue;
        CHECK(img.w == w && img.h == h, "%s: %dx%d, index says %dx%d", file, img.w, img.h, w, h);
        cm_image_free(&img);
        n++;
    }
    fclose(idx);
    CHECK(n >= 50, "only %d images listed", n);
}

/* `clipmod preprocess` as outside tests call it. */
static void test_cli(void) {
    SHARED_OR_SKIP();
    char args[1024], err[4096];
    const char *out = tl_tmp("cli.f32");
    snprintf(args, sizeof args, "preprocess --image %s --out %s", tl_shared("golden/preprocess/images/cmyk.jpg"), out);
    int rc = tl_run_clipmod(args, NULL, 0, NULL, 0);
    REQUIRE(rc == 0, "%s %s", tl_clipmod_bin(), args);
    uint8_t *got, *want;
    size_t gl, wl;
    REQ_OK(cm_read_file(out, 1 << 24, &got, &gl));
    want = tl_read_golden("golden/preprocess/cmyk.jpg.pilrgb.f32", &wl);
    CHECK(want && gl == wl && gl == NT * 4 && !memcmp(got, want, gl), "CLI output differs from the golden");
    cm_free(got);
    cm_free(want);
    snprintf(args, sizeof args, "preprocess --out %s", out);
    CHECK(tl_run_clipmod(args, NULL, 0, NULL, 0) == 2, "missing --image is a usage error");
    CHECK(tl_run_clipmod("preprocess --help", NULL, 0, NULL, 0) == 0, "--help exits 0");
    snprintf(args, sizeof args, "preprocess --image %s --out %s", tl_tmp("nonexistent.jpg"), out);
    CHECK(tl_run_clipmod(args, NULL, 0, err, sizeof err) == 1, "missing file exits 1");
    CHECK(strstr(err, "nonexistent.jpg") != NULL, "message names the file: %s", err);
}

/* ---- resampler: fast vs reference -------------------------------------------------------------- */

static void fill_random(uint8_t *p, size_t n, CmRng *r) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)cm_rng_below(r, 256);
}

static void test_resample_fast_vs_ref(void) {
    CmRng r;
    cm_rng_seed(&r, 7);
    for (int it = 0; it < 60; it++) {
        int sw = 1 + (int)cm_rng_below(&r, 300), sh = 1 + (int)cm_rng_below(&r, 300);
        int ow = 1 + (int)cm_rng_below(&r, 260), oh = 1 + (int)cm_rng_below(&r, 260);
        if (it % 5 == 0) ow = sw;            /* one pass skipped */
        if (it % 7 == 0) oh = sh;
        int ww = 1 + (int)cm_rng_below(&r, (uint64_t)ow), wh = 1 + (int)cm_rng_below(&r, (uint64_t)oh);
        int x0 = (int)cm_rng_below(&r, (uint64_t)(ow - ww + 1)), y0 = (int)cm_rng_below(&r, (uint64_t)(oh - wh + 1));
        int pad = (int)cm_rng_below(&r, 8);
        size_t stride = (size_t)sw * 3 + pad;
        uint8_t *src = malloc(stride * sh), *a = malloc((size_t)ww * wh * 3), *b = malloc((size_t)ww * wh * 3);
        fill_random(src, stride * sh, &r);
        CmFilter f = it % 2 ? CM_FILTER_BICUBIC : CM_FILTER_BILINEAR;
        CHECK(cm_resample_rgb(src, sw, sh, stride, ow, oh, f, x0, y0, ww, wh, a) == CM_OK, "%s", cm_last_error());
        CHECK(cm_resample_rgb_ref(src, sw, sh, stride, ow, oh, f, x0, y0, ww, wh, b) == CM_OK, "%s", cm_last_error());
        CHECK(!memcmp(a, b, (size_t)ww * wh * 3), "fast != ref: %dx%d -> %dx%d window %dx%d at %d,%d filter %d", sw, sh,
              ow, oh, ww, wh, x0, y0, f);
        free(src);
        free(a);
        free(b);
    }
    uint8_t px[3] = {1, 2, 3}, o[3];
    CHECK(cm_resample_rgb(px, 1, 1, 3, 2, 2, CM_FILTER_BICUBIC, 1, 1, 2, 2, o) == CM_ERR_ARG, "window outside refused");
}

/* A constant image stays constant through both filters (coefficients sum to 1 in fixed point). */
static void test_resample_constant(void) {
    uint8_t *src = malloc(97 * 61 * 3), *dst = malloc(224 * 224 * 3);
    memset(src, 200, 97 * 61 * 3);
    REQ_OK(cm_resample_rgb(src, 97, 61, 97 * 3, 224, 141, CM_FILTER_BICUBIC, 0, 0, 224, 141, dst));
    int bad = 0;
    for (int i = 0; i < 224 * 141 * 3; i++) bad += dst[i] != 200;
    CHECK(bad == 0, "%d pixels changed", bad);
    free(src);
    free(dst);
}

/* ---- PNG conversion rules (PNGs written with libpng) ------------------------------------------- */

typedef struct { uint8_t *p; size_t n, cap; } Mem;
static void mem_write(png_structp png, png_bytep d, png_size_t n) {
    Mem *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}
static void mem_flush(png_structp png) { (void)png; }

/* rows: h rows of raw PNG sample bytes. */
static Mem png_make(int w, int h, int depth, int ctype, int interlace, const uint8_t *raw, size_t rowbytes,
                    const png_color *plte, int nplte) {
    Mem m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.p);
        Mem z = {0};
        return z;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, ctype, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (plte) png_set_PLTE(png, info, plte, nplte);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)raw + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    return m;
}

static void test_png_modes(void) {
    CmImage im;
    /* 16-bit gray: PIL mode "I"; convert('RGB') clips to 0..255 (not the high byte). */
    uint8_t g16[4 * 2] = {0x00, 0x00, 0x00, 0x7f, 0x00, 0xff, 0x12, 0x34};
    Mem m = png_make(4, 1, 16, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g16, 8, NULL, 0);
    REQUIRE(m.p, "png_make");
    REQ_OK(cm_image_decode(m.p, m.n, "g16.png", 0, &im));
    CHECK(im.rgb[0] == 0 && im.rgb[3] == 127 && im.rgb[6] == 255 && im.rgb[9] == 255 && im.rgb[10] == 255,
          "gray16 -> %d %d %d %d", im.rgb[0], im.rgb[3], im.rgb[6], im.rgb[9]);
    cm_image_free(&im);
    free(m.p);
    /* 16-bit RGB: the high byte of each sample. */
    uint8_t c16[6] = {0x12, 0xff, 0xab, 0x01, 0x00, 0x80};
    m = png_make(1, 1, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, c16, 6, NULL, 0);
    REQUIRE(m.p, "png_make");
    REQ_OK(cm_image_decode(m.p, m.n, "c16.png", 0, &im));
    CHECK(im.rgb[0] == 0x12 && im.rgb[1] == 0xab && im.rgb[2] == 0x00, "rgb16 -> %d %d %d", im.rgb[0], im.rgb[1], im.rgb[2]);
    cm_image_free(&im);
    free(m.p);
    /* 2-bit gray: 0..3 -> 0, 85, 170, 255. */
    uint8_t g2[1] = {0x1b}; /* 00 01 10 11 */
    m = png_make(4, 1, 2, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, g2, 1, NULL, 0);
    REQUIRE(m.p, "png_make");
    REQ_OK(cm_image_decode(m.p, m.n, "g2.png", 0, &im));
    CHECK(im.rgb[0] == 0 && im.rgb[3] == 85 && im.rgb[6] == 170 && im.rgb[9] == 255, "gray2 scaling");
    cm_image_free(&im);
    free(m.p);
    /* 4-bit palette with 2 PLTE entries; index 5 is beyond PLTE -> Pillow's grey ramp (5,5,5). */
    png_color pl[2] = {{10, 20, 30}, {40, 50, 60}};
    uint8_t p4[1] = {0x15}; /* 1, 5 */
    m = png_make(2, 1, 4, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, p4, 1, pl, 2);
    REQUIRE(m.p, "png_make");
    REQ_OK(cm_image_decode(m.p, m.n, "p4.png", 0, &im));
    CHECK(im.rgb[0] == 40 && im.rgb[1] == 50 && im.rgb[2] == 60, "palette index 1");
    CHECK(im.rgb[3] == 5 && im.rgb[4] == 5 && im.rgb[5] == 5, "index beyond PLTE -> %d %d %d", im.rgb[3], im.rgb[4], im.rgb[5]);
    cm_image_free(&im);
    free(m.p);
    /* RGBA 16-bit and interlaced RGB: alpha dropped, de-interlaced rows identical. */
    CmRng r;
    cm_rng_seed(&r, 3);
    uint8_t rgb[37 * 23 * 3];
    fill_random(rgb, sizeof rgb, &r);
    Mem a = png_make(37, 23, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rgb, 37 * 3, NULL, 0);
    Mem b = png_make(37, 23, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, rgb, 37 * 3, NULL, 0);
    CmImage ia, ib;
    REQ_OK(cm_image_decode(a.p, a.n, "a.png", 0, &ia));
    REQ_OK(cm_image_decode(b.p, b.n, "b.png", 0, &ib));
    CHECK(!memcmp(ia.rgb, rgb, sizeof rgb) && !memcmp(ib.rgb, rgb, sizeof rgb), "interlaced or plain RGB differs");
    cm_image_free(&ia);
    cm_image_free(&ib);
    free(a.p);
    free(b.p);
    uint8_t rgba16[8] = {0xaa, 0x01, 0xbb, 0x02, 0xcc, 0x03, 0x00, 0x00};
    m = png_make(1, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE, rgba16, 8, NULL, 0);
    REQUIRE(m.p, "png_make");
    REQ_OK(cm_image_decode(m.p, m.n, "rgba16.png", 0, &im));
    CHECK(im.rgb[0] == 0xaa && im.rgb[1] == 0xbb && im.rgb[2] == 0xcc, "rgba16, alpha 0 not premultiplied");
    cm_image_free(&im);
    free(m.p);
}

/* ---- bad input ------------------------------------------------------------------------------- */

/* Decoding path must fail with a message naming the file. */
static void expect_fail(const char *path, const char *why) {
    CmImage im;
    cm_status st = cm_image_load(path, 0, &im);
    CHECK(st != CM_OK, "%s: %s decoded (%dx%d)", path, why, im.w, im.h);
    if (st != CM_OK) {
        CHECK(strstr(cm_last_error(), path) != NULL, "%s: message does not name the file: %s", why, cm_last_error());
        CHECK(im.rgb == NULL, "%s: output left allocated", why);
    } else {
        cm_image_free(&im);
    }
}

static void write_variant(const char *name, const void *p, size_t n) {
    CM_ASSERT(tl_write_file(tl_tmp(name), p, n) == 0);
}

static void test_truncated(void) {
    SHARED_OR_SKIP();
    const char *files[] = {"000000086220.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "000000039769.png",
                           "palette.png", "bilevel.png", "lossy.webp"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/preprocess/images/%s", files[i]);
        size_t len;
        uint8_t *b = tl_read_golden(rel, &len);
        REQUIRE(b, "%s", rel);
        const double fr[] = {0.9, 0.5, 0.1};
        for (int k = 0; k < 3; k++) {
            char name[128];
            snprintf(name, sizeof name, "trunc%d_%s", k, files[i]);
            write_variant(name, b, (size_t)(len * fr[k]));
            expect_fail(tl_tmp(name), "truncated");
        }
        char name[128];
        snprintf(name, sizeof name, "head_%s", files[i]);
        write_variant(name, b, 20);                       /* only the first bytes of the header */
        expect_fail(tl_tmp(name), "header only");
        cm_free(b);
    }
}

static void test_corrupt(void) {
    SHARED_OR_SKIP();
    size_t len;
    /* JPEG: a destroyed SOF / Huffman tables area. */
    uint8_t *b = tl_read_golden("golden/preprocess/images/000000086220.jpg", &len);
    REQUIRE(b, "jpg");
    for (size_t i = 2; i < 600 && i < len; i++) b[i] = (uint8_t)(i * 37);
    write_variant("corrupt_header.jpg", b, len);
    expect_fail(tl_tmp("corrupt_header.jpg"), "corrupt JPEG header");
    cm_free(b);
    /* PNG: a flipped byte in IHDR and one in IDAT (CRC mismatch in a critical chunk). */
    b = tl_read_golden("golden/preprocess/images/000000039769.png", &len);
    REQUIRE(b, "png");
    b[18] ^= 0x40;
    write_variant("corrupt_ihdr.png", b, len);
    expect_fail(tl_tmp("corrupt_ihdr.png"), "corrupt IHDR");
    b[18] ^= 0x40;
    b[len / 2] ^= 0xff;
    write_variant("corrupt_idat.png", b, len);
    expect_fail(tl_tmp("corrupt_idat.png"), "corrupt IDAT");
    cm_free(b);
    /* WebP: a destroyed VP8 frame header. */
    b = tl_read_golden("golden/preprocess/images/lossy.webp", &len);
    REQUIRE(b, "webp");
    for (size_t i = 20; i < 40; i++) b[i] = 0xee;
    write_variant("corrupt.webp", b, len);
    expect_fail(tl_tmp("corrupt.webp"), "corrupt WebP");
    cm_free(b);
    /* Flipped bytes in entropy-coded data: PIL decodes what libjpeg/libwebp recover (or fails);
       either way no crash, and a success has the right size. */
    const char *files[] = {"000000086220.jpg", "progressive.jpg", "lossy.webp", "palette.png"};
    CmRng r;
    cm_rng_seed(&r, 11);
    for (int f = 0; f < 4; f++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/preprocess/images/%s", files[f]);
        b = tl_read_golden(rel, &len);
        REQUIRE(b, "%s", rel);
        for (int rep = 0; rep < 6; rep++) {
            uint8_t *c = malloc(len);
            memcpy(c, b, len);
            for (int k = 0; k < 16; k++) c[len / 4 + cm_rng_below(&r, len / 2)] ^= (uint8_t)(1 + cm_rng_below(&r, 255));
            CmImage im;
            cm_status st = cm_image_decode(c, len, files[f], 0, &im);
            if (st == CM_OK) {
                CHECK(im.w > 0 && im.h > 0 && im.rgb, "%s: bogus success", files[f]);
                cm_image_free(&im);
            } else {
                CHECK(strstr(cm_last_error(), files[f]) != NULL, "message: %s", cm_last_error());
            }
            free(c);
        }
        cm_free(b);
    }
}

static void test_empty_and_garbage(void) {
    write_variant("empty.jpg", "", 0);
    expect_fail(tl_tmp("empty.jpg"), "zero bytes");
    const char *txt = "<!DOCTYPE html><html>404 not found</html>";
    write_variant("page.jpg", txt, strlen(txt));
    expect_fail(tl_tmp("page.jpg"), "HTML bytes");
    CHECK(strstr(cm_last_error(), "not a JPEG, PNG or WebP") != NULL, "%s", cm_last_error());
    write_variant("anim.gif", "GIF89a\x01\x00\x01\x00\x00\x00\x00;", 14);
    CmImage im;
    CHECK(cm_image_load(tl_tmp("anim.gif"), 0, &im) == CM_ERR_UNSUPPORTED, "GIF: %s", cm_last_error());
    write_variant("magic_only.png", "\x89PNG\r\n\x1a\n", 8);
    expect_fail(tl_tmp("magic_only.png"), "PNG magic only");
    write_variant("magic_only.jpg", "\xff\xd8\xff", 3);
    expect_fail(tl_tmp("magic_only.jpg"), "JPEG magic only");
    write_variant("riff.webp", "RIFF\x04\x00\x00\x00WEBP", 12);
    expect_fail(tl_tmp("riff.webp"), "WebP RIFF header only");
    CHECK(cm_image_load(tl_tmp("does_not_exist.png"), 0, &im) == CM_ERR_IO, "missing file");
    CHECK(cm_image_decode(NULL, 0, "x", 0, &im) != CM_OK, "NULL input");
}

static void put32be(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = (uint8_t)v; }

static void test_absurd_dimensions(void) {
    /* PNG claiming 100000 x 100000 (valid IHDR CRC, then an IDAT chunk): refused after the header.
       Under `make asan` an attempt to allocate 30 GB would abort, so passing proves no allocation. */
    uint8_t png[8 + 25 + 12 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *ihdr = png + 8;
    put32be(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put32be(ihdr + 8, 100000);
    put32be(ihdr + 12, 100000);
    ihdr[16] = 8; ihdr[17] = 2; ihdr[18] = 0; ihdr[19] = 0; ihdr[20] = 0;
    put32be(ihdr + 21, (uint32_t)crc32(0, ihdr + 4, 17));
    uint8_t *idat = png + 33;
    put32be(idat, 0);
    memcpy(idat + 4, "IDAT", 4);
    put32be(idat + 8, (uint32_t)crc32(0, idat + 4, 4));
    uint8_t *iend = png + 45;
    put32be(iend, 0);
    memcpy(iend + 4, "IEND", 4);
    put32be(iend + 8, (uint32_t)crc32(0, iend + 4, 4));
    write_variant("bomb.png", png, sizeof png);
    CmImage im;
    CHECK(cm_image_load(tl_tmp("bomb.png"), 0, &im) == CM_ERR_OOM, "PNG bomb: %s", cm_last_error());
    CHECK(strstr(cm_last_error(), "exceeds the limit") && strstr(cm_last_error(), "bomb.png"), "%s", cm_last_error());
    /* JPEG whose SOF claims 65000 x 65000: our own 16x16 JPEG with the SOF0 size patched. */
    uint8_t px[16 * 16 * 3];
    memset(px, 90, sizeof px);
    CmImage small = {16, 16, px};
    uint8_t *j;
    size_t jl;
    REQ_OK(cm_jpeg_encode(&small, 90, &j, &jl));
    size_t sof = 0;
    for (size_t i = 2; i + 9 < jl; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC0) { sof = i; break; }
    REQUIRE(sof, "no SOF0 in our JPEG");
    j[sof + 5] = 65000 >> 8; j[sof + 6] = 65000 & 255;   /* height */
    j[sof + 7] = 65000 >> 8; j[sof + 8] = 65000 & 255;   /* width */
    write_variant("bomb.jpg", j, jl);
    free(j);
    CHECK(cm_image_load(tl_tmp("bomb.jpg"), 0, &im) == CM_ERR_OOM, "JPEG bomb: %s", cm_last_error());
    CHECK(strstr(cm_last_error(), "65000x65000") != NULL, "%s", cm_last_error());
    /* The limit is configurable: a 640x480 image refused at 1000 pixels, accepted at exactly 307200. */
    SHARED_OR_SKIP();
    size_t len;
    uint8_t *b = tl_read_golden("golden/preprocess/images/lossy.webp", &len);
    REQUIRE(b, "webp");
    CHECK(cm_image_decode(b, len, "lossy.webp", 1000, &im) == CM_ERR_OOM, "limit 1000");
    CHECK(cm_image_decode(b, len, "lossy.webp", 640 * 480, &im) == CM_OK, "limit exact: %s", cm_last_error());
    cm_image_free(&im);
    cm_free(b);
}

/* ---- train transform, letterbox, JPEG -------------------------------------------------------- */

static void test_train_transform(void) {
    CmRng r;
    cm_rng_seed(&r, 5);
    /* 260x240: random crops fit (a 3:2 image would always take the fallback: h > 200). */
    CmImage img = {260, 240, malloc(260 * 240 * 3)};
    fill_random(img.rgb, 260 * 240 * 3, &r);
    float *a = malloc(NT * 4), *b = malloc(NT * 4), *c = malloc(NT * 4);
    CmRng r1, r2, r3;
    cm_rng_seed(&r1, 42);
    cm_rng_seed(&r2, 42);
    cm_rng_seed(&r3, 43);
    REQ_OK(cm_transform_train(&img, 224, &CM_CLIP_NORMALIZE, &r1, a));
    REQ_OK(cm_transform_train(&img, 224, &CM_CLIP_NORMALIZE, &r2, b));
    REQ_OK(cm_transform_train(&img, 224, &CM_CLIP_NORMALIZE, &r3, c));
    CHECK(!memcmp(a, b, NT * 4), "same seed, different output");
    CHECK(memcmp(a, c, NT * 4) != 0, "different seeds, same output");
    int bad = 0;
    for (int ch = 0; ch < 3; ch++) {
        float lo = (0.0f - CM_CLIP_NORMALIZE.mean[ch]) / CM_CLIP_NORMALIZE.std[ch];
        float hi = (1.0f - CM_CLIP_NORMALIZE.mean[ch]) / CM_CLIP_NORMALIZE.std[ch];
        for (int i = 0; i < 224 * 224; i++) bad += !(a[ch * 224 * 224 + i] >= lo && a[ch * 224 * 224 + i] <= hi);
    }
    CHECK(bad == 0, "%d values out of range", bad);
    /* crop statistics: inside the image, area 0.9..1 (up to rounding), ratio 3/4..4/3 */
    int top, left, chh, cw;
    for (int i = 0; i < 2000; i++) {
        cm_train_crop_params(260, 240, &r, &top, &left, &chh, &cw);
        CHECK(top >= 0 && left >= 0 && top + chh <= 240 && left + cw <= 260, "crop outside");
        double area = (double)chh * cw / (260.0 * 240.0), ratio = (double)cw / chh;
        CHECK(area > 0.88 && area <= 1.0 && ratio > 0.74 && ratio < 1.35, "area %.3f ratio %.3f", area, ratio);
        if (tl_case_failed) break;
    }
    /* 3:2 never fits (h would exceed 200): always the central fallback, 267x200 */
    cm_train_crop_params(300, 200, &r, &top, &left, &chh, &cw);
    CHECK(cw == 267 && chh == 200 && left == 16 && top == 0, "3:2 fallback %d %d %d %d", top, left, chh, cw);
    /* fallback: a 10x1000 strip never fits -> central crop 10 x round(10/(3/4)) = 13 */
    cm_train_crop_params(10, 1000, &r, &top, &left, &chh, &cw);
    CHECK(cw == 10 && chh == 13 && top == (1000 - 13) / 2 && left == 0, "fallback %d %d %d %d", top, left, chh, cw);
    CHECK(cm_transform_train(&img, 224, &CM_CLIP_NORMALIZE, NULL, a) == CM_ERR_ARG, "NULL rng refused");
    free(img.rgb);
    free(a);
    free(b);
    free(c);
}

static void test_eval_geometry(void) {
    int nw, nh, l, t;
    cm_eval_geometry(17, 11, 224, &nw, &nh, &l, &t);
    CHECK(nw == 346 && nh == 224 && l == 61 && t == 0, "17x11 -> %dx%d crop %d,%d", nw, nh, l, t);
    cm_eval_geometry(90, 700, 224, &nw, &nh, &l, &t);
    CHECK(nw == 224 && nh == 1742 && t == 759, "90x700 -> %dx%d top %d", nw, nh, t);
    cm_eval_geometry(225, 227, 224, &nw, &nh, &l, &t);   /* (225-224)/2 = 0.5 -> round half to even = 0 */
    CHECK(nh == 225 && t == 0, "half to even: %d %d", nh, t);
    cm_eval_geometry(224, 231, 224, &nw, &nh, &l, &t);   /* 3.5 -> 4 */
    CHECK(nh == 231 && t == 4, "half to even: %d %d", nh, t);
}

static void test_letterbox(void) {
    int fw, fh, x0, y0;
    cm_letterbox_geometry(640, 480, 256, &fw, &fh, &x0, &y0);
    CHECK(fw == 256 && fh == 192 && x0 == 0 && y0 == 32, "640x480: %dx%d at %d,%d", fw, fh, x0, y0);
    cm_letterbox_geometry(90, 700, 256, &fw, &fh, &x0, &y0);
    CHECK(fw == 33 && fh == 256 && x0 == 111 && y0 == 0, "90x700: %dx%d at %d,%d", fw, fh, x0, y0);
    cm_letterbox_geometry(5000, 1, 256, &fw, &fh, &x0, &y0);
    CHECK(fw == 256 && fh == 1 && y0 == 127, "5000x1: %dx%d at %d,%d", fw, fh, x0, y0);
    /* white border, image inside */
    CmImage img = {90, 700, malloc(90 * 700 * 3)}, out;
    memset(img.rgb, 7, 90 * 700 * 3);
    REQ_OK(cm_letterbox(&img, 256, &out));
    CHECK(out.w == 256 && out.h == 256, "size");
    CHECK(out.rgb[(100 * 256 + 110) * 3] == 255 && out.rgb[(100 * 256 + 144) * 3] == 255, "border is white");
    CHECK(out.rgb[(100 * 256 + 111) * 3] == 7 && out.rgb[(100 * 256 + 143) * 3 + 2] == 7, "image inside");
    cm_image_free(&out);
    free(img.rgb);
    /* The golden letterbox (PIL: fit with BILINEAR, paste on white, JPEG quality 95) is reproduced
       byte for byte by cm_letterbox + cm_jpeg_encode. */
    SHARED_OR_SKIP();
    CmImage src;
    REQ_OK(cm_image_load(tl_shared("golden/preprocess/images/000000039769.png"), 0, &src));
    REQ_OK(cm_letterbox(&src, CM_LETTERBOX_SIZE, &out));
    uint8_t *j;
    size_t jl, gl;
    REQ_OK(cm_jpeg_encode(&out, 0, &j, &jl));
    uint8_t *g = tl_read_golden("golden/preprocess/images/letterbox_256.jpg", &gl);
    CHECK(g && gl == jl && !memcmp(g, j, jl), "letterbox JPEG differs from the golden (%zu vs %zu bytes)", jl, gl);
    free(j);
    cm_free(g);
    cm_image_free(&out);
    cm_image_free(&src);
}

static void test_jpeg_roundtrip(void) {
    int w = 123, h = 77;
    CmImage img = {w, h, malloc((size_t)w * h * 3)}, back;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(2 * x); p[1] = (uint8_t)(3 * y); p[2] = (uint8_t)(x + y);
        }
    uint8_t *j;
    size_t jl;
    REQ_OK(cm_jpeg_encode(&img, 95, &j, &jl));
    REQ_OK(cm_image_decode(j, jl, "roundtrip", 0, &back));
    CHECK(back.w == w && back.h == h, "size %dx%d", back.w, back.h);
    double s = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) s += abs(back.rgb[i] - img.rgb[i]);
    CHECK(s / (w * h * 3) < 1.5, "mean abs error %.3f", s / (w * h * 3));
    free(j);
    cm_image_free(&back);
    CHECK(cm_jpeg_encode(&img, 101, &j, &jl) == CM_ERR_ARG, "quality 101 refused");
    CmImage none = {0, 0, NULL};
    CHECK(cm_jpeg_encode(&none, 90, &j, &jl) == CM_ERR_ARG, "empty image refused");
    free(img.rgb);
}

int main(void) {
    if (!tl_tmpdir_make("image")) { perror("mkdtemp"); return 1; }
    RUN(test_goldens);
    RUN(test_golden_sizes);
    RUN(test_tiny_inputs);
    RUN(test_fakeddit_images);
    RUN(test_cli);
    RUN(test_resample_fast_vs_ref);
    RUN(test_resample_constant);
    RUN(test_png_modes);
    RUN(test_truncated);
    RUN(test_corrupt);
    RUN(test_empty_and_garbage);
    RUN(test_absurd_dimensions);
    RUN(test_train_transform);
    RUN(test_eval_geometry);
    RUN(test_letterbox);
    RUN(test_jpeg_roundtrip);
    tl_tmpdir_remove();
    return tl_summary("test_image");
}
