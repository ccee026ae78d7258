/*
 * synth.h — the synthetic 7-class image+text dataset of `clipmod demo` (docs/demo.md).
 *
 * Each sample is a small RGB image of one drawn shape (circle, horizontal bar, vertical pillar)
 * in one colour (red, green, blue) on a light, noisy background, with random position, size,
 * small rotation, colour jitter and pixel noise, plus a caption that names a colour and a shape
 * — those of the image, or not — and may carry the marker word "lol". The class needs both:
 *
 *   relation = caption colour wrong? (1) | caption shape wrong? (2)   (0 = caption matches)
 *                     no marker            marker "lol"
 *   matches (0)       0 True / Neutral     1 Satire/Parody
 *   colour wrong (1)  2 Misleading         5 Manipulated
 *   shape wrong (2)   3 Imposter           6 Hate
 *   both wrong (3)    4 False Connection   6 Hate
 *
 * Classes are drawn uniformly; within a class the image attributes are uniform and a wrong
 * caption attribute is uniform over the other values, so the caption's words alone say nothing
 * about the relation and the image alone says nothing about the class (docs/demo.md has the
 * best accuracies a single modality can reach).
 *
 * Everything is a pure function of (seed, split, index): the same seed writes the same shards
 * byte for byte.
 * defines: CmSynthSample, CmSynthOpts, cm_synth_*, CM_SYNTH_*
 */
#ifndef CM_SYNTH_H
#define CM_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"
#include "data/image.h"

#define CM_SYNTH_N_SHAPES 3
#define CM_SYNTH_N_COLOURS 3
#define CM_SYNTH_MARKER "lol"
#define CM_SYNTH_MAX_CAPTION 64          /* longest caption is 38 bytes */
extern const char *const CM_SYNTH_SHAPES[CM_SYNTH_N_SHAPES];    /* circle, bar, pillar */
extern const char *const CM_SYNTH_COLOURS[CM_SYNTH_N_COLOURS];  /* red, green, blue */

typedef enum { CM_SYNTH_TRAIN = 0, CM_SYNTH_VAL = 1 } CmSynthSplit;

typedef struct {
    int64_t index;
    int label;                 /* = cm_synth_label(shape, colour, cap_shape, cap_colour, marker) */
    int shape, colour;         /* what the image shows */
    int cap_shape, cap_colour; /* what the caption names */
    bool marker;               /* the caption carries CM_SYNTH_MARKER */
    int tmpl;                  /* caption template */
    float cx, cy, radius, angle;   /* geometry, in units of the image side (angle in radians) */
    uint8_t fg[3], bg[3];      /* shape and background colours (after jitter) */
    uint64_t noise_seed;       /* pixel noise */
    char caption[CM_SYNTH_MAX_CAPTION];
} CmSynthSample;

/* The labelling rule (table above). Arguments out of range: -1. */
int cm_synth_label(int shape, int colour, int cap_shape, int cap_colour, bool marker);
/* The relation code 0..3 of the table. */
static inline int cm_synth_relation(int shape, int colour, int cap_shape, int cap_colour) {
    return (cap_colour != colour ? 1 : 0) | (cap_shape != shape ? 2 : 0);
}
/* Draw sample `index` of a split (deterministic in seed, split, index). */
void cm_synth_draw(uint64_t seed, CmSynthSplit split, int64_t index, CmSynthSample *s);
/* Render it as size x size RGB (out->rgb is cm_malloc'd: free with cm_image_free). */
cm_status cm_synth_render(const CmSynthSample *s, int size, CmImage *out);
/* The sample's metadata JSON (one line, cm_malloc'd): {"label":..,"dataset":"synth",
   "source_label":"<class name>","shape":..,"colour":..,"caption_shape":..,"caption_colour":..,
   "marker":..,"relation":..,"index":..}. */
char *cm_synth_json(const CmSynthSample *s);
/* Parse the attribute fields back from such a JSON (label in s->label as written); for tests
   and tools that check the rule. Malformed or missing fields: CM_ERR_FORMAT naming the field. */
cm_status cm_synth_parse_json(const char *json, size_t len, CmSynthSample *s);

typedef struct {
    uint64_t seed;
    int n_train, n_val;        /* samples per split */
    int image_size;            /* rendered side in pixels (the demo model's input size) */
    int shard_size;            /* samples per shard */
    int jpeg_quality;          /* 0: CM_JPEG_QUALITY_DEFAULT */
    int ablate;                /* 0: both modalities; CM_SYNTH_IMAGE_ONLY: empty captions;
                                  CM_SYNTH_TEXT_ONLY: blank white images (labels unchanged) */
} CmSynthOpts;
enum { CM_SYNTH_BOTH = 0, CM_SYNTH_IMAGE_ONLY = 1, CM_SYNTH_TEXT_ONLY = 2 };

/* Defaults of the demo: seed 0, 8400 train, 1400 val, 32 px, 2000 per shard, quality 95. */
void cm_synth_opts_default(CmSynthOpts *o);
/* Write dir/train/NNNNN.tar and dir/val/NNNNN.tar (each with sizes.json) through the project's
   shard writer: key "<split>-<index:07>", members .jpg (cm_jpeg_encode), .txt, .json.
   Creates dir. Existing shards of the same names are replaced (atomic renames). */
cm_status cm_synth_write(const char *dir, const CmSynthOpts *o);
/* The brace pattern of a split's shards: "<dir>/<split>/{00000..0000N}.tar" (or one name). */
void cm_synth_urls(const char *dir, CmSynthSplit split, int n, int shard_size, char *buf, size_t cap);

#endif
