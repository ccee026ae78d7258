/*
 * image.h — image decoding (by magic bytes: JPEG, PNG, WebP) to 8-bit RGB as PIL's
 * convert('RGB') gives it, and the transforms of DESIGN §5: OpenCLIP's eval transform (shortest
 * side to `size` with Pillow's fixed-point antialiased bicubic, centre crop, /255, normalise), the
 * train transform (RandomResizedCrop scale 0.9-1.0, ratio 3/4-4/3, bicubic), and the 256x256 white
 * letterbox used by dataset preparation, plus JPEG encoding for shard writing.
 * defines: CmImage, cm_image_*, cm_transform_*, cm_letterbox, cm_jpeg_encode, CM_CLIP_MEAN/STD
 */
#ifndef CM_IMAGE_H
#define CM_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "common/common.h"
#include "common/rng.h"

#define CM_DEFAULT_MAX_PIXELS (64u * 1024u * 1024u)   /* 64 MP decompression-bomb limit */

typedef struct {
    int w, h;
    uint8_t *rgb;   /* h*w*3 bytes, interleaved RGB, row-major */
} CmImage;

/* Normalisation constants (OpenAI CLIP; OpenCLIP default for ViT-B-32). */
typedef struct { float mean[3], std[3]; } CmNormalize;
extern const CmNormalize CM_CLIP_NORMALIZE;

/* Decode from memory; `what` names the input in error messages (file name or shard/key).
   max_pixels == 0 means CM_DEFAULT_MAX_PIXELS; larger images are refused before decoding. */
cm_status cm_image_decode(const uint8_t *bytes, size_t len, const char *what, size_t max_pixels, CmImage *out);
cm_status cm_image_load(const char *path, size_t max_pixels, CmImage *out);
void cm_image_free(CmImage *img);

/* Eval transform: out[3,size,size] float32 (CHW). */
cm_status cm_transform_eval(const CmImage *img, int size, const CmNormalize *norm, float *out);
/* Train transform: RandomResizedCrop(size, scale (0.9,1.0), ratio (3/4,4/3), bicubic) + normalise. */
cm_status cm_transform_train(const CmImage *img, int size, const CmNormalize *norm, CmRng *rng, float *out);
/* Letterbox onto a white size x size canvas (aspect kept, centred). */
cm_status cm_letterbox(const CmImage *img, int size, CmImage *out);
/* JPEG-encode RGB (libjpeg-turbo). *out is malloc'd (free with free()). */
cm_status cm_jpeg_encode(const CmImage *img, int quality, uint8_t **out, size_t *len);

#endif
