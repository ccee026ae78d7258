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

/* The version, in this one place: the Makefile reads it for the soname (libclipmod.so.MAJOR) and
   clipmod.pc; `clipmod --version` prints it. clipmod_version() gives the library's own at run time. */
#define CLIPMOD_VERSION "0.1.0"

/* Marks the functions exported from libclipmod.so (built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define CLIPMOD_API __attribute__((visibility("default")))
#else
#define CLIPMOD_API
#endif

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

/* CLIPMOD_VERSION of the library actually linked (e.g. "0.1.0"). */
CLIPMOD_API const char *clipmod_version(void);

/* The message of the last failure on this thread. */
CLIPMOD_API const char *clipmod_last_error(void);
CLIPMOD_API const char *clipmod_status_str(clipmod_status st);

/* ---- model (src/model) -------------------------------------------------------------------- */
/* An OpenCLIP ViT CLIP (+ LoRA + classification head) in fp32; read-only once loaded, so one
   model may be shared by threads (each call allocates its own scratch). */
typedef struct CmModel clipmod_model;
/* path: OpenCLIP safetensors, open_clip_pytorch_model.bin, epoch_N.pt, or a safetensors written by
   clipmod (config in its metadata). model_name: "ViT-B-32", "ViT-B-16", "ViT-L-14", "*-quickgelu"
   or a JSON config file; NULL takes the config from the file (metadata, else its shapes).
   Loading is strict (a missing, unexpected or mis-shaped tensor is an error naming it), except
   that a plain CLIP file may lack the LoRA and head tensors (LoRA B = 0, head initialised). */
CLIPMOD_API clipmod_status clipmod_model_load(const char *path, const char *model_name, clipmod_model **out);
CLIPMOD_API void clipmod_model_free(clipmod_model *m);
CLIPMOD_API int clipmod_model_embed_dim(const clipmod_model *m);     /* 512 for ViT-B-32 */
CLIPMOD_API int clipmod_model_image_size(const clipmod_model *m);    /* 224 */
CLIPMOD_API int clipmod_model_num_classes(const clipmod_model *m);   /* 7; 0 without a head */
/* images[n,3,S,S] (preprocessed) -> out[n,E]; L2-normalised when normalize, else the raw
   projection output. tokens[n,77] (ids < 49408). */
CLIPMOD_API clipmod_status clipmod_encode_image(const clipmod_model *m, const float *images, int n, bool normalize, float *out);
CLIPMOD_API clipmod_status clipmod_encode_text(const clipmod_model *m, const int32_t *tokens, int n, bool normalize, float *out);
/* The classification head on image+text pairs: probs[n,7] (softmax of the head logits) and, when
   logits != NULL, the logits. */
CLIPMOD_API clipmod_status clipmod_classify(const clipmod_model *m, const float *images, const int32_t *tokens, int n,
                                float *probs, float *logits);

/* ---- tokenizer (src/data/tokenizer.c) ----------------------------------------------------- */
/* OpenCLIP's SimpleTokenizer (docs/tokenizer.md). A loaded tokenizer may be shared by threads. */
typedef struct CmTokenizer clipmod_tokenizer;
#define CLIPMOD_CONTEXT_LEN 77
/* path: bpe_simple_vocab_16e6.txt.gz, a merges file, a vocab.json (merges.txt beside it) or a folder
   holding them; NULL searches $CLIPMOD_VOCAB, then <prefix>/share/clipmod/ beside this library or the
   executable, then the source tree's assets/ (docs/tokenizer.md). */
CLIPMOD_API clipmod_status clipmod_tokenizer_load(const char *path, clipmod_tokenizer **out);
CLIPMOD_API void clipmod_tokenizer_free(clipmod_tokenizer *tok);
/* One UTF-8 caption of len bytes -> ids[context_len] (49406 ... 49407, zero padded). */
CLIPMOD_API clipmod_status clipmod_tokenize(clipmod_tokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len);
/* n NUL-terminated captions -> ids[n][77]. */
CLIPMOD_API clipmod_status clipmod_tokenize_batch(clipmod_tokenizer *tok, const char *const *texts, size_t n, int32_t *ids);

/* ---- images (src/data/image.c, src/data/transform.c) -------------------------------------- */

/* 8-bit RGB, interleaved, row-major: rgb[(y*width + x)*3 + c]. */
typedef struct { int width, height; uint8_t *rgb; } clipmod_image;

/* Decode a JPEG, PNG or WebP (chosen by the magic bytes, not the name) to RGB as PIL's
   Image.open(f).convert('RGB') does (EXIF orientation not applied; > 64 megapixels refused).
   `name` is used in error messages. Free with clipmod_image_free. */
CLIPMOD_API clipmod_status clipmod_image_load(const char *path, clipmod_image *out);
CLIPMOD_API clipmod_status clipmod_image_decode(const uint8_t *bytes, size_t len, const char *name, clipmod_image *out);
CLIPMOD_API void clipmod_image_free(clipmod_image *img);

/* OpenCLIP's ViT-B-32 eval transform: out[3,224,224] float32 (shortest side to 224 with Pillow's
   bicubic, centre crop, /255, CLIP mean/std normalisation); bit-identical to Pillow 9.4 + torchvision. */
CLIPMOD_API clipmod_status clipmod_preprocess(const clipmod_image *img, float *out);
CLIPMOD_API clipmod_status clipmod_preprocess_file(const char *path, float *out);

/* ---- data (src/data) --------------------------------------------------------------------- */

/* ---- training (src/train) ------------------------------------------------------------------ */

#ifdef __cplusplus
}
#endif
#endif
