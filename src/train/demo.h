/*
 * demo.h — the synthetic 7-class image+text dataset of `clipmod demo`, written as WebDataset
 * shards with the project's shard writer (src/data/wds.h). Each sample is a small JPEG of one
 * coloured shape (red/green/blue x disc/stripe/column, jittered) and a caption naming a
 * colour and a shape; the class needs both modalities:
 *   0 True                 caption matches the image, no marker word, clean image
 *   1 Satire/Parody        caption matches + a joke marker ("lol", "haha", "just kidding")
 *   2 Misleading Content   the caption's colour is wrong (shape right)
 *   3 Imposter Content     the caption's shape is wrong (colour right)
 *   4 False Connection     colour and shape both wrong
 *   5 Manipulated Content  caption matches, but the image carries a black diagonal stroke
 *   6 Hate                 a hateful marker word ("vile", "scum", "vermin"), caption random
 * Classes 2-4 are told apart from 0 only by comparing the picture with the words, so neither
 * modality alone suffices: text alone separates {1}, {6} and the rest, the image alone only {5}.
 * ablate: 0 both modalities; 1 keep images, empty captions ("image-only"); 2 keep captions,
 * blank white images ("text-only") — to measure what one modality reaches.
 * defines: CmDemoData, cm_demo_write, cm_demo_model_json
 */
#ifndef CM_TRAIN_DEMO_H
#define CM_TRAIN_DEMO_H

#include <stdint.h>
#include "common/common.h"

typedef struct {
    char train_urls[1200], val_urls[1200];   /* brace patterns of the written shards */
    int64_t n_train, n_val;
} CmDemoData;

/* Writes dir/train/NNNNN.tar (+ sizes.json) and dir/val/NNNNN.tar; classes balanced. */
cm_status cm_demo_write(const char *dir, int n_train, int n_val, int image_size, uint64_t seed, int ablate,
                        CmDemoData *out);
/* The demo model's OpenCLIP-style config JSON (byte-level text: vocab 258). */
const char *cm_demo_model_json(void);

#endif
