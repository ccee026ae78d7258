/*
 * synth.c — the synthetic demo dataset of synth.h: drawing a sample's attributes from
 * (seed, split, index), rendering the image (4x4 supersampled coverage, colour jitter, Gaussian
 * pixel noise; shapes that differ at the 8-px patch scale of the demo's ViT, on a light background
 * so that coverage is close to linear in the pixels — docs/demo.md says what did not learn), the caption templates, the metadata JSON and the shard writing through the
 * project's WebDataset writer (JPEG via cm_jpeg_encode).
 */
#include "data/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "common/rng.h"
#include "data/wds.h"

const char *const CM_SYNTH_SHAPES[CM_SYNTH_N_SHAPES] = {"circle", "bar", "pillar"};
const char *const CM_SYNTH_COLOURS[CM_SYNTH_N_COLOURS] = {"red", "green", "blue"};
static const char *const REL_NAMES[4] = {"match", "wrong_colour", "wrong_shape", "wrong_both"};
static const uint8_t BASE_RGB[CM_SYNTH_N_COLOURS][3] = {
    {205, 40, 40}, {40, 165, 60}, {45, 75, 215}};

/* Caption templates: %1$s colour, %2$s shape. */
#define N_TMPL 6
static const char *const TMPL[N_TMPL] = {
    "a %s %s", "a photo of a %s %s", "this %2$s is %1$s", "there is a %s %s here",
    "%s %s on a plain background", "look at the %s %s"};

int cm_synth_label(int shape, int colour, int cap_shape, int cap_colour, bool marker) {
    if (shape < 0 || shape >= CM_SYNTH_N_SHAPES || cap_shape < 0 || cap_shape >= CM_SYNTH_N_SHAPES ||
        colour < 0 || colour >= CM_SYNTH_N_COLOURS || cap_colour < 0 || cap_colour >= CM_SYNTH_N_COLOURS)
        return -1;
    static const int no_marker[4] = {0, 2, 3, 4}, with_marker[4] = {1, 5, 6, 6};
    int rel = cm_synth_relation(shape, colour, cap_shape, cap_colour);
    return marker ? with_marker[rel] : no_marker[rel];
}

/* A value uniform over [0,n) other than `not`. */
static int other(CmRng *r, int n, int not) {
    int v = (int)cm_rng_below(r, (uint64_t)(n - 1));
    return v >= not ? v + 1 : v;
}
static float unif(CmRng *r, float lo, float hi) { return lo + (hi - lo) * cm_rng_uniform(r); }
static uint8_t clamp_u8(float v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)lrintf(v); }

void cm_synth_draw(uint64_t seed, CmSynthSplit split, int64_t index, CmSynthSample *s) {
    memset(s, 0, sizeof *s);
    uint64_t x = seed ^ 0x73796e7468ULL;   /* "synth" */
    uint64_t k = cm_splitmix64(&x) ^ ((uint64_t)split << 62) ^ (uint64_t)index * 0xd1b54a32d192ed03ULL;
    CmRng r;
    cm_rng_seed(&r, k);
    s->index = index;
    int cls = (int)cm_rng_below(&r, 7);
    /* class -> (relation, marker); class 6 takes either wrong shape or both wrong */
    static const int rel_of[7] = {0, 0, 1, 2, 3, 1, 2};
    int rel = rel_of[cls];
    if (cls == 6 && cm_rng_below(&r, 2)) rel = 3;
    s->marker = cls == 1 || cls == 5 || cls == 6;
    s->shape = (int)cm_rng_below(&r, CM_SYNTH_N_SHAPES);
    s->colour = (int)cm_rng_below(&r, CM_SYNTH_N_COLOURS);
    s->cap_colour = (rel & 1) ? other(&r, CM_SYNTH_N_COLOURS, s->colour) : s->colour;
    s->cap_shape = (rel & 2) ? other(&r, CM_SYNTH_N_SHAPES, s->shape) : s->shape;
    s->label = cm_synth_label(s->shape, s->colour, s->cap_shape, s->cap_colour, s->marker);
    CM_ASSERT(s->label == cls);
    /* geometry and colours */
    s->radius = unif(&r, 0.20f, 0.28f);
    s->cx = unif(&r, 0.35f, 0.65f);
    s->cy = unif(&r, 0.35f, 0.65f);
    s->angle = unif(&r, -0.15f, 0.15f);
    for (int c = 0; c < 3; c++) s->fg[c] = clamp_u8(BASE_RGB[s->colour][c] + unif(&r, -30, 30));
    float grey = unif(&r, 222, 250);
    for (int c = 0; c < 3; c++) s->bg[c] = clamp_u8(grey + unif(&r, -5, 5));
    s->noise_seed = cm_rng_u64(&r);
    /* caption */
    s->tmpl = (int)cm_rng_below(&r, N_TMPL);
    char body[CM_SYNTH_MAX_CAPTION];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(body, sizeof body, TMPL[s->tmpl], CM_SYNTH_COLOURS[s->cap_colour], CM_SYNTH_SHAPES[s->cap_shape]);
#pragma GCC diagnostic pop
    /* the marker goes first or last; captions are at most 41 bytes, far below the buffer */
    size_t bl = strlen(body), ml = strlen(CM_SYNTH_MARKER);
    CM_ASSERT(bl + ml + 2 <= sizeof s->caption);
    if (!s->marker) {
        memcpy(s->caption, body, bl + 1);
    } else if (cm_rng_below(&r, 2)) {
        memcpy(s->caption, CM_SYNTH_MARKER " ", ml + 1);
        memcpy(s->caption + ml + 1, body, bl + 1);
    } else {
        memcpy(s->caption, body, bl);
        s->caption[bl] = ' ';
        memcpy(s->caption + bl + 1, CM_SYNTH_MARKER, ml + 1);
    }
}

/* Whether the point (px, py) (image units) lies inside the sample's shape (ca, sa: cos, sin of its angle). */
static bool inside(const CmSynthSample *s, float ca, float sa, float px, float py) {
    float dx = px - s->cx, dy = py - s->cy;
    float u = ca * dx + sa * dy, v = -sa * dx + ca * dy;   /* rotated into the shape's frame */
    float r = s->radius;
    switch (s->shape) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return fabsf(v) <= 0.45f * r && fabsf(u) <= 1.8f * r;   /* horizontal bar */
    default: return fabsf(u) <= 0.45f * r && fabsf(v) <= 1.8f * r;  /* vertical pillar */
    }
}

cm_status cm_synth_render(const CmSynthSample *s, int size, CmImage *out) {
    out->rgb = NULL;
    out->w = out->h = 0;
    if (size < 8 || size > 1024) return cm_error(CM_ERR_ARG, "synthetic image size %d out of range [8, 1024]", size);
    uint8_t *px = cm_malloc((size_t)size * size * 3, "synthetic image");
    if (!px) return CM_ERR_OOM;
    CmRng r;
    cm_rng_seed(&r, s->noise_seed);
    const int SS = 4;
    const float ca = cosf(s->angle), sa = sinf(s->angle);
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            int hit = 0;
            for (int j = 0; j < SS; j++)
                for (int i = 0; i < SS; i++)
                    hit += inside(s, ca, sa, (x + (i + 0.5f) / SS) / size, (y + (j + 0.5f) / SS) / size);
            float a = (float)hit / (SS * SS);
            float noise = 4.0f * (float)cm_rng_normal(&r);
            for (int c = 0; c < 3; c++)
                px[((size_t)y * size + x) * 3 + c] = clamp_u8(a * s->fg[c] + (1 - a) * s->bg[c] + noise);
        }
    }
    out->rgb = px;
    out->w = out->h = size;
    return CM_OK;
}

char *cm_synth_json(const CmSynthSample *s) {
    static const char *const names[7] = {"True / Neutral", "Satire/Parody", "Misleading Content", "Imposter Content",
                                         "False Connection", "Manipulated Content", "Hate"};
    int rel = cm_synth_relation(s->shape, s->colour, s->cap_shape, s->cap_colour);
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"label\":%d,\"dataset\":\"synth\",\"source_label\":\"%s\",\"shape\":\"%s\",\"colour\":\"%s\","
                     "\"caption_shape\":\"%s\",\"caption_colour\":\"%s\",\"marker\":%s,\"relation\":\"%s\",\"index\":%lld}",
                     s->label, s->label >= 0 && s->label < 7 ? names[s->label] : "?", CM_SYNTH_SHAPES[s->shape],
                     CM_SYNTH_COLOURS[s->colour], CM_SYNTH_SHAPES[s->cap_shape], CM_SYNTH_COLOURS[s->cap_colour],
                     s->marker ? "true" : "false", REL_NAMES[rel], (long long)s->index);
    char *o = cm_malloc((size_t)n + 1, "synthetic metadata");
    if (o) memcpy(o, buf, (size_t)n + 1);
    return o;
}

static cm_status name_field(const cJSON *j, const char *key, const char *const *names, int n, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v)) return cm_error(CM_ERR_FORMAT, "synthetic metadata: \"%s\" missing or not a string", key);
    for (int i = 0; i < n; i++)
        if (!strcmp(v->valuestring, names[i])) { *out = i; return CM_OK; }
    return cm_error(CM_ERR_FORMAT, "synthetic metadata: unknown %s \"%.40s\"", key, v->valuestring);
}

cm_status cm_synth_parse_json(const char *json, size_t len, CmSynthSample *s) {
    memset(s, 0, sizeof *s);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return cm_error(CM_ERR_FORMAT, "synthetic metadata: malformed JSON");
    cm_status st = CM_OK;
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "label");
    const cJSON *mk = cJSON_GetObjectItemCaseSensitive(j, "marker");
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
    if (!cJSON_IsObject(j)) st = cm_error(CM_ERR_FORMAT, "synthetic metadata: not a JSON object");
    else if (!cJSON_IsNumber(lab) || !(lab->valuedouble >= 0 && lab->valuedouble < 1e9))
        st = cm_error(CM_ERR_FORMAT, "synthetic metadata: \"label\" missing or not a number");
    else if (!cJSON_IsBool(mk)) st = cm_error(CM_ERR_FORMAT, "synthetic metadata: \"marker\" missing or not a boolean");
    else if (!(st = name_field(j, "shape", CM_SYNTH_SHAPES, CM_SYNTH_N_SHAPES, &s->shape)) &&
             !(st = name_field(j, "colour", CM_SYNTH_COLOURS, CM_SYNTH_N_COLOURS, &s->colour)) &&
             !(st = name_field(j, "caption_shape", CM_SYNTH_SHAPES, CM_SYNTH_N_SHAPES, &s->cap_shape)) &&
             !(st = name_field(j, "caption_colour", CM_SYNTH_COLOURS, CM_SYNTH_N_COLOURS, &s->cap_colour))) {
        s->label = (int)lab->valuedouble;
        s->marker = cJSON_IsTrue(mk);
        s->index = cJSON_IsNumber(ix) && fabs(ix->valuedouble) < 9e18 ? (int64_t)ix->valuedouble : -1;
    }
    cJSON_Delete(j);
    return st;
}

void cm_synth_opts_default(CmSynthOpts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 0;
    o->n_train = 8400;
    o->n_val = 1400;
    o->image_size = 32;
    o->shard_size = 2000;
    o->jpeg_quality = CM_JPEG_QUALITY_DEFAULT;
}

void cm_synth_urls(const char *dir, CmSynthSplit split, int n, int shard_size, char *buf, size_t cap) {
    const char *sp = split == CM_SYNTH_TRAIN ? "train" : "val";
    int shards = shard_size > 0 ? (n + shard_size - 1) / shard_size : 1;
    if (shards <= 1) snprintf(buf, cap, "%s/%s/00000.tar", dir, sp);
    else snprintf(buf, cap, "%s/%s/{00000..%05d}.tar", dir, sp, shards - 1);
}

static cm_status write_split(const char *dir, const CmSynthOpts *o, CmSynthSplit split, int n) {
    const char *sp = split == CM_SYNTH_TRAIN ? "train" : "val";
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, sp) >= sizeof path)
        return cm_error(CM_ERR_ARG, "--data-dir %s: path too long", dir);
    CmShardWriter *sw = NULL;
    cm_status st = cm_shard_writer_open(path, o->shard_size, &sw);
    if (st) return st;
    for (int i = 0; i < n && !st; i++) {
        CmSynthSample s;
        cm_synth_draw(o->seed, split, i, &s);
        CmImage img = {0};
        uint8_t *jpg = NULL;
        size_t jlen = 0;
        char *meta = NULL;
        if (!(st = cm_synth_render(&s, o->image_size, &img)) && o->ablate == CM_SYNTH_TEXT_ONLY)
            memset(img.rgb, 255, (size_t)img.w * img.h * 3);
        if (!st &&
            !(st = cm_jpeg_encode(&img, o->jpeg_quality > 0 ? o->jpeg_quality : CM_JPEG_QUALITY_DEFAULT, &jpg, &jlen))) {
            meta = cm_synth_json(&s);
            if (!meta) st = CM_ERR_OOM;
        }
        if (!st) {
            char key[32];
            snprintf(key, sizeof key, "%s-%07d", sp, i);
            size_t tl = o->ablate == CM_SYNTH_IMAGE_ONLY ? 0 : strlen(s.caption);
            CmWdsOut f[3] = {{"jpg", jpg, jlen}, {"txt", s.caption, tl}, {"json", meta, strlen(meta)}};
            st = cm_shard_writer_write(sw, key, f, 3);
        }
        cm_image_free(&img);
        free(jpg);
        cm_free(meta);
    }
    cm_status st2 = cm_shard_writer_close(sw);
    if (st) return st;
    return st2;
}

cm_status cm_synth_write(const char *dir, const CmSynthOpts *o) {
    if (!dir || !*dir) return cm_error(CM_ERR_ARG, "synthetic data: no output folder");
    if (o->n_train < 1 || o->n_val < 1 || o->n_train > 10000000 || o->n_val > 10000000)
        return cm_error(CM_ERR_ARG, "synthetic data: sample counts %d / %d out of range [1, 10M]", o->n_train, o->n_val);
    if (o->ablate < 0 || o->ablate > 2) return cm_error(CM_ERR_ARG, "synthetic data: ablate %d not in 0..2", o->ablate);
    if (o->shard_size < 1) return cm_error(CM_ERR_ARG, "synthetic data: shard size %d must be positive", o->shard_size);
    cm_status st = cm_mkdir_p(dir);
    if (st) return st;
    if ((st = write_split(dir, o, CM_SYNTH_TRAIN, o->n_train))) return st;
    return write_split(dir, o, CM_SYNTH_VAL, o->n_val);
}
