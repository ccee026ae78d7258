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

/* ---- additions (image engineer); the declarations above are the original contract ---------- */

/* Default JPEG quality for shard writing (img2dataset's default; the golden letterbox uses it). */
#define CM_JPEG_QUALITY_DEFAULT 95
/* Letterbox side used by `clipmod prepare` (DESIGN §4.3). */
#define CM_LETTERBOX_SIZE 256

/* The format recognised from the first bytes: "jpeg", "png", "webp", or for formats that are
   recognised but not decoded "gif", "bmp", "tiff"; NULL when unknown. */
const char *cm_image_sniff(const uint8_t *bytes, size_t len);

/* Pillow's resampling filters (Resample.c semantics: separable, antialiased on downscale,
   fixed point with 22 fractional bits, horizontal pass first, uint8 rounding after each pass). */
typedef enum { CM_FILTER_BILINEAR = 2, CM_FILTER_BICUBIC = 3 } CmFilter;

/* Resize the src_w x src_h RGB image at `src` (row stride `stride` bytes) to out_w x out_h exactly as
   Pillow's Image.resize((out_w, out_h), filter) does, but compute only the window
   [ox, ox+ow) x [oy, oy+oh) of the result (= resize then crop; the pixels are identical).
   dst: oh*ow*3 bytes. Fast path (what the transforms use). */
cm_status cm_resample_rgb(const uint8_t *src, int src_w, int src_h, size_t stride, int out_w, int out_h,
                          CmFilter filter, int ox, int oy, int ow, int oh, uint8_t *dst);
/* The plain reference of the same: full two-pass resize into temporaries, then the crop. */
cm_status cm_resample_rgb_ref(const uint8_t *src, int src_w, int src_h, size_t stride, int out_w, int out_h,
                              CmFilter filter, int ox, int oy, int ow, int oh, uint8_t *dst);

/* The uint8 stage of the eval transform: out[size*size*3] (HWC RGB) before ToTensor/Normalize. */
cm_status cm_transform_eval_u8(const CmImage *img, int size, uint8_t *out);
/* torchvision's geometry: Resize(size) target for the shortest side, CenterCrop offsets. */
void cm_eval_geometry(int w, int h, int size, int *new_w, int *new_h, int *left, int *top);
/* RandomResizedCrop.get_params (scale 0.9-1.0, ratio 3/4-4/3): the crop box in the source. */
void cm_train_crop_params(int w, int h, CmRng *rng, int *top, int *left, int *crop_h, int *crop_w);
/* ToTensor + Normalize: HWC uint8 RGB [n pixels] -> CHW float32 planes of n: ((u/255) - m) / s. */
void cm_normalize_u8(const uint8_t *rgb, size_t n, const CmNormalize *norm, float *out);
/* Letterbox geometry: the fitted size and where it is pasted on the size x size canvas. */
void cm_letterbox_geometry(int w, int h, int size, int *fit_w, int *fit_h, int *x0, int *y0);

#endif
