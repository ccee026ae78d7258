/*
 * demo.c — the synthetic dataset of `clipmod demo` (see demo.h): drawing, captions, shards.
 */
#include "train/demo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/rng.h"
#include "data/image.h"
#include "data/wds.h"

static const char *const COLORS[3] = {"red", "green", "blue"};
static const uint8_t RGB[3][3] = {{215, 35, 35}, {35, 170, 50}, {40, 70, 215}};
static const char *const SHAPES[3] = {"disc", "stripe", "column"};

const char *cm_demo_model_json(void) {
    return "{\"model_name\":\"clipmod-demo\",\"model_cfg\":{\"embed_dim\":64,\"quick_gelu\":false,"
           "\"vision_cfg\":{\"image_size\":32,\"layers\":2,\"width\":64,\"patch_size\":8,\"head_width\":32,\"mlp_ratio\":2.0},"
           "\"text_cfg\":{\"context_length\":40,\"vocab_size\":258,\"width\":64,\"heads\":2,\"layers\":2,\"mlp_ratio\":2.0}},"
           "\"head\":{\"d\":64,\"heads\":4,\"ff\":128,\"layers\":2,\"classes\":7,\"dropout_design\":0.1,\"classifier_dropout_design\":0.2}}";
}

static int irand(CmRng *r, int lo, int hi) { return lo + (int)cm_rng_below(r, (uint64_t)(hi - lo + 1)); }

/* Inside test: a disc of radius s, a horizontal band (stripe) or a vertical band (column) of
   half-width s/2 through (cx, cy). Shapes that differ at the 8-px patch scale of the demo's
   ViT, so that a small model learns them from scratch in a minute or two. */
static bool inside(int shape, double x, double y, double cx, double cy, double s) {
    double dx = x - cx, dy = y - cy;
    if (shape == 0) return dx * dx + dy * dy <= s * s;
    if (shape == 1) return fabs(dy) <= s * 0.45 && fabs(dx) <= s * 1.9;
    return fabs(dx) <= s * 0.45 && fabs(dy) <= s * 1.9;
}

static void draw(uint8_t *rgb, int S, int shape, int color, bool mark, CmRng *r) {
    for (int i = 0; i < S * S * 3; i++) rgb[i] = (uint8_t)irand(r, 238, 255);
    double s = S * (0.2 + 0.08 * cm_rng_uniform(r));
    double cx = S * (0.35 + 0.3 * cm_rng_uniform(r)), cy = S * (0.35 + 0.3 * cm_rng_uniform(r));
    int col[3];
    for (int c = 0; c < 3; c++) { int v = RGB[color][c] + irand(r, -25, 25); col[c] = v < 0 ? 0 : v > 255 ? 255 : v; }
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            if (inside(shape, x + 0.5, y + 0.5, cx, cy, s))
                for (int c = 0; c < 3; c++) rgb[(y * S + x) * 3 + c] = (uint8_t)col[c];
    if (mark) {   /* a black diagonal stroke, 2 px, in one of the two directions */
        bool flip = cm_rng_below(r, 2);
        for (int y = 0; y < S; y++)
            for (int d = -1; d <= 0; d++) {
                int x = (flip ? S - 1 - y : y) + d;
                if (x >= 0 && x < S) for (int c = 0; c < 3; c++) rgb[(y * S + x) * 3 + c] = 20;
            }
    }
}

static void caption(char *buf, size_t n, int color, int shape, const char *marker, CmRng *r) {
    static const char *pre[] = {"a ", "the ", "one ", "a photo of a ", "look, a ", "here is a "};
    static const char *post[] = {"", " here", " on white", "!", " today"};
    const char *p = pre[cm_rng_below(r, 6)], *q = post[cm_rng_below(r, 5)];
    if (marker) {
        if (cm_rng_below(r, 2)) snprintf(buf, n, "%s%s %s%s %s", p, COLORS[color], SHAPES[shape], q, marker);
        else snprintf(buf, n, "%s %s%s %s%s", marker, p, COLORS[color], SHAPES[shape], q);
    } else snprintf(buf, n, "%s%s %s%s", p, COLORS[color], SHAPES[shape], q);
}

static int other(int v, CmRng *r) { return (v + 1 + (int)cm_rng_below(r, 2)) % 3; }

static cm_status write_split(const char *dir, int n, int S, CmRng *r, int ablate, int64_t *count) {
    CmShardWriter *w;
    cm_status st = cm_shard_writer_open(dir, 1000, &w);
    if (st) return st;
    uint8_t *rgb = cm_malloc((size_t)S * S * 3, "demo image");
    if (!rgb) { cm_shard_writer_close(w); return CM_ERR_OOM; }
    static const char *joke[] = {"lol", "haha", "just kidding"}, *hate[] = {"vile", "scum", "vermin"};
    for (int i = 0; i < n && !st; i++) {
        int label = i % 7;
        int color = irand(r, 0, 2), shape = irand(r, 0, 2), tc = color, ts = shape;
        const char *marker = NULL;
        bool mark = false;
        switch (label) {
        case 1: marker = joke[cm_rng_below(r, 3)]; break;
        case 2: tc = other(color, r); break;
        case 3: ts = other(shape, r); break;
        case 4: tc = other(color, r); ts = other(shape, r); break;
        case 5: mark = true; break;
        case 6: marker = hate[cm_rng_below(r, 3)]; if (cm_rng_below(r, 2)) { tc = irand(r, 0, 2); ts = irand(r, 0, 2); } break;
        default: break;
        }
        draw(rgb, S, shape, color, mark, r);
        if (ablate == 2) memset(rgb, 255, (size_t)S * S * 3);
        char cap[128], js[96], key[32];
        caption(cap, sizeof cap, tc, ts, marker, r);
        if (ablate == 1) cap[0] = 0;
        snprintf(js, sizeof js, "{\"label\":%d,\"dataset\":\"clipmod-demo\"}", label);
        snprintf(key, sizeof key, "demo%07d", i);
        CmImage im = {S, S, rgb};
        uint8_t *jpg = NULL;
        size_t jl = 0;
        if ((st = cm_jpeg_encode(&im, 95, &jpg, &jl))) break;
        CmWdsOut f[3] = {{"jpg", jpg, jl}, {"txt", cap, strlen(cap)}, {"json", js, strlen(js)}};
        st = cm_shard_writer_write(w, key, f, 3);
        free(jpg);
    }
    cm_free(rgb);
    *count = cm_shard_writer_count(w);
    cm_status st2 = cm_shard_writer_close(w);
    return st ? st : st2;
}

cm_status cm_demo_write(const char *dir, int n_train, int n_val, int image_size, uint64_t seed, int ablate, CmDemoData *out) {
    memset(out, 0, sizeof *out);
    if (n_train < 7 || n_val < 7 || image_size < 8) return cm_error(CM_ERR_ARG, "demo: too few samples or too small images");
    CmRng r;
    cm_rng_seed(&r, seed);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/train", dir);
    cm_status st = cm_mkdir_p(sub);
    if (!st) st = write_split(sub, n_train, image_size, &r, ablate, &out->n_train);
    if (st) return cm_error_prefix("demo data %s", sub);
    snprintf(out->train_urls, sizeof out->train_urls, "%s/{00000..%05d}.tar", sub, (int)((out->n_train - 1) / 1000));
    snprintf(sub, sizeof sub, "%s/val", dir);
    cm_rng_seed(&r, seed ^ 0xabcdef1234567ULL);
    st = cm_mkdir_p(sub);
    if (!st) st = write_split(sub, n_val, image_size, &r, ablate, &out->n_val);
    if (st) return cm_error_prefix("demo data %s", sub);
    snprintf(out->val_urls, sizeof out->val_urls, "%s/{00000..%05d}.tar", sub, (int)((out->n_val - 1) / 1000));
    return CM_OK;
}
