/*
 * clipmod.h — the public C API of clipmod, an OpenCLIP-exact CLIP image+text classifier.
 *
 * Conventions
 *   - Every function that can fail returns clipmod_status (CLIPMOD_OK == 0); on failure
 *     clipmod_last_error() gives a thread-local message naming the file, tensor, flag or sample at
 *     fault. The library never exits the process.
 *   - Tensors are float32, C order; shapes are given in comments, [B,3,H,W] images, [B,77] tokens.
 *   - A loaded model is read-only and may be shared by threads.
 *
 * Sections below are owned by the part of src/ that implements them.
 */
#ifndef CLIPMOD_H
#define CLIPMOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CLIPMOD_VERSION "0.1.0"

typedef enum {
    CLIPMOD_OK = 0,
    CLIPMOD_ERR_IO = -1,          /* a file could not be opened/read/written */
    CLIPMOD_ERR_FORMAT = -2,      /* malformed file, header, JSON, tar, pickle ... */
    CLIPMOD_ERR_OOM = -3,         /* allocation failed or absurd size */
    CLIPMOD_ERR_ARG = -4,         /* bad argument or flag */
    CLIPMOD_ERR_DECODE = -5,      /* image/text could not be decoded */
    CLIPMOD_ERR_SHAPE = -6,       /* tensor missing, unexpected or mis-shaped */
    CLIPMOD_ERR_NET = -7,         /* download failed */
    CLIPMOD_ERR_UNSUPPORTED = -8  /* valid input that this build does not handle */
} clipmod_status;

/* The message of the last failure on this thread. */
const char *clipmod_last_error(void);
const char *clipmod_status_str(clipmod_status st);

/* ---- model (src/model) -------------------------------------------------------------------- */

/* ---- tokenizer (src/data/tokenizer.c) ----------------------------------------------------- */
/* OpenCLIP's SimpleTokenizer (docs/tokenizer.md). A loaded tokenizer may be shared by threads. */
typedef struct CmTokenizer clipmod_tokenizer;
#define CLIPMOD_CONTEXT_LEN 77
/* path: bpe_simple_vocab_16e6.txt.gz, a merges file, a vocab.json (merges.txt beside it) or a folder
   holding them; NULL searches $CLIPMOD_VOCAB, then ../shared/vocab/ (docs/tokenizer.md). */
clipmod_status clipmod_tokenizer_load(const char *path, clipmod_tokenizer **out);
void clipmod_tokenizer_free(clipmod_tokenizer *tok);
/* One UTF-8 caption of len bytes -> ids[context_len] (49406 ... 49407, zero padded). */
clipmod_status clipmod_tokenize(clipmod_tokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len);
/* n NUL-terminated captions -> ids[n][77]. */
clipmod_status clipmod_tokenize_batch(clipmod_tokenizer *tok, const char *const *texts, size_t n, int32_t *ids);

/* ---- images (src/data/image.c, src/data/transform.c) -------------------------------------- */

/* 8-bit RGB, interleaved, row-major: rgb[(y*width + x)*3 + c]. */
typedef struct { int width, height; uint8_t *rgb; } clipmod_image;

/* Decode a JPEG, PNG or WebP (chosen by the magic bytes, not the name) to RGB as PIL's
   Image.open(f).convert('RGB') does (EXIF orientation not applied; > 64 megapixels refused).
   `name` is used in error messages. Free with clipmod_image_free. */
clipmod_status clipmod_image_load(const char *path, clipmod_image *out);
clipmod_status clipmod_image_decode(const uint8_t *bytes, size_t len, const char *name, clipmod_image *out);
void clipmod_image_free(clipmod_image *img);

/* OpenCLIP's ViT-B-32 eval transform: out[3,224,224] float32 (shortest side to 224 with Pillow's
   bicubic, centre crop, /255, CLIP mean/std normalisation); bit-identical to Pillow 9.4 + torchvision. */
clipmod_status clipmod_preprocess(const clipmod_image *img, float *out);
clipmod_status clipmod_preprocess_file(const char *path, float *out);

/* ---- data (src/data) --------------------------------------------------------------------- */

/* ---- training (src/train) ------------------------------------------------------------------ */

#ifdef __cplusplus
}
#endif
#endif
