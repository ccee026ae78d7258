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

/* 8-bit RGB, interleaved, row-major: rgb[(y*width + x)*3 + c]. */
typedef struct { int width, height; uint8_t *rgb; } clipmod_image;

/* CLIPMOD_VERSION of the library actually linked (e.g. "0.1.0"). */
CLIPMOD_API const char *clipmod_version(void);

/* The message of the last failure on this thread. */
CLIPMOD_API const char *clipmod_last_error(void);
CLIPMOD_API const char *clipmod_status_str(clipmod_status st);

/* ---- model (src/api/api_model.c over src/model) ----------------------------------------- */
/* A model: an OpenCLIP ViT CLIP (+ LoRA + classification head) in fp32, read-only once loaded, so
   one model may be shared by threads. Per-thread work goes through a clipmod_session (below). */
typedef struct clipmod_model clipmod_model;

/* How to open a model (whisper.h style: take the defaults, change fields, pass by value). */
typedef struct {
    const char *model_name;   /* config of a plain weights file: "ViT-B-32", ..., or a JSON file;
                                 NULL: from the file (metadata, open_clip_config.json beside it,
                                 else its shapes). Ignored for clipmod checkpoints. */
    const char *base_model;   /* base weights of a LoRA checkpoint; NULL: found by SHA-256 (the
                                 recorded path, next to the checkpoint, the HF cache) */
    const char *cache_dir;    /* Hugging Face cache searched for a base or a pretrained tag;
                                 NULL: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub */
    const char *vocab_path;   /* BPE vocabulary for clipmod_model_tokenize; NULL: next to the
                                 model, $CLIPMOD_VOCAB, ../shared/vocab (docs/tokenizer.md) */
    int n_threads;            /* compute threads for the whole process; 0: leave as is */
} clipmod_model_params;

CLIPMOD_API clipmod_model_params clipmod_model_default_params(void);
/* path: any file clipmod reads or writes — OpenCLIP safetensors / open_clip_pytorch_model.bin /
   epoch_N.pt, a folder holding open_clip_model.safetensors, a `clipmod train` checkpoint (full, or
   LoRA / head-only over its base), a safetensors saved by clipmod. Plain CLIP files may lack the
   LoRA and head tensors (LoRA B = 0, head initialised). Errors name the file / tensor at fault. */
CLIPMOD_API clipmod_status clipmod_model_load_with_params(const char *path, clipmod_model_params params,
                                                          clipmod_model **out);
/* = clipmod_model_load_with_params with the defaults and params.model_name = model_name. */
CLIPMOD_API clipmod_status clipmod_model_load(const char *path, const char *model_name, clipmod_model **out);
CLIPMOD_API void clipmod_model_free(clipmod_model *m);
CLIPMOD_API int clipmod_model_embed_dim(const clipmod_model *m);     /* 512 for ViT-B-32 */
CLIPMOD_API int clipmod_model_image_size(const clipmod_model *m);    /* 224 */
CLIPMOD_API int clipmod_model_num_classes(const clipmod_model *m);   /* 7; 0 without a head */
CLIPMOD_API int clipmod_model_context_length(const clipmod_model *m);   /* 77 */
/* Name of class c ("True" .. "Hate" for the 7 moderation classes), NULL outside 0..6. */
CLIPMOD_API const char *clipmod_class_name(int c);

/* Which tokenizer the model's text tower was trained with. */
typedef enum {
    CLIPMOD_TOKENIZER_BPE = 0,    /* OpenCLIP's BPE (needs the vocabulary file) */
    CLIPMOD_TOKENIZER_BYTES = 1   /* byte level: SOT 256, UTF-8 bytes, EOT 257 (the demo's) */
} clipmod_tokenizer_kind;
CLIPMOD_API clipmod_tokenizer_kind clipmod_model_tokenizer(const clipmod_model *m);
/* One UTF-8 caption -> ids[clipmod_model_context_length(m)] with the model's tokenizer (the BPE
   vocabulary is loaded on first use; thread-safe). */
CLIPMOD_API clipmod_status clipmod_model_tokenize(const clipmod_model *m, const char *text, size_t len, int32_t *ids);
/* The eval transform at the model's image size: out[3,S,S] (S = clipmod_model_image_size). */
CLIPMOD_API clipmod_status clipmod_model_preprocess(const clipmod_model *m, const clipmod_image *img, float *out);

/* Model-level calls (allocate their scratch per call; any thread). images[n,3,S,S] preprocessed
   -> out[n,E]; L2-normalised when normalize, else the raw projection output. tokens[n,ctx]. */
CLIPMOD_API clipmod_status clipmod_encode_image(const clipmod_model *m, const float *images, int n, bool normalize, float *out);
CLIPMOD_API clipmod_status clipmod_encode_text(const clipmod_model *m, const int32_t *tokens, int n, bool normalize, float *out);
/* The classification head on image+text pairs: probs[n,K] (softmax of the head logits) and, when
   logits != NULL, the logits. */
CLIPMOD_API clipmod_status clipmod_classify(const clipmod_model *m, const float *images, const int32_t *tokens, int n,
                                float *probs, float *logits);

/* ---- session (src/api/api_model.c over src/model/infer.c) --------------------------------- */
/* Per-thread state over a shared model: activations for batches up to max_batch, allocated once
   and reused by every call (larger calls run in chunks). One session per thread at a time. */
typedef struct clipmod_session clipmod_session;
typedef struct {
    int max_batch;            /* samples per forward pass held in memory; default 16 */
} clipmod_session_params;
CLIPMOD_API clipmod_session_params clipmod_session_default_params(void);
/* The session keeps a pointer to m: free it before the model. */
CLIPMOD_API clipmod_status clipmod_session_init_with_params(const clipmod_model *m, clipmod_session_params params,
                                                            clipmod_session **out);
CLIPMOD_API void clipmod_session_free(clipmod_session *s);
CLIPMOD_API clipmod_status clipmod_session_encode_image(clipmod_session *s, const float *images, int n, bool normalize,
                                                        float *out);
CLIPMOD_API clipmod_status clipmod_session_encode_text(clipmod_session *s, const int32_t *tokens, int n, bool normalize,
                                                       float *out);
/* probs[n,K] (softmax computed in double, as `clipmod predict`); logits may be NULL. */
CLIPMOD_API clipmod_status clipmod_session_classify(clipmod_session *s, const float *images, const int32_t *tokens, int n,
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

/* clipmod_image: 8-bit RGB, defined above the model section. */

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

/* ---- training (src/api/api_train.c over src/train) ---------------------------------------- */
/* `clipmod train` as a call: the same code, run folder, checkpoints and numbers (a run with the
   same settings and seed writes bit-identical tensors). Blocks until the run ends. */
typedef struct {
    int64_t step;             /* optimizer steps done (1 after the first) */
    float loss, loss_contrastive, loss_classification;
    double lr;
    float logit_scale;        /* exp(logit_scale) after the step */
} clipmod_train_progress;

typedef struct {
    const char *train_data;   /* WebDataset shards: brace patterns joined by "::" (required) */
    const char *val_data;     /* validation shards; NULL: none */
    const char *model;        /* "ViT-B-32" (default), a named config or a JSON config file */
    const char *pretrained;   /* weights file or OpenCLIP tag; NULL: initialise from seed */
    const char *cache_dir;    /* Hugging Face cache for pretrained tags (NULL: $HF_HOME/hub, ...) */
    bool offline;             /* never download */
    const char *vocab_path;   /* BPE vocabulary (NULL: the default search) */
    const char *tokenizer;    /* "bpe" (default) or "bytes" */
    const char *logs_dir;     /* run folders go here (default "./logs"); "none": no files */
    const char *name;         /* run folder name (NULL: OpenCLIP's date-model-lr-... name) */
    bool enable_lora;         /* LoRA on attn.out_proj + head, towers frozen */
    int lora_rank;            /* 4 */
    float lora_alpha;         /* 32 */
    int epochs;               /* 32 (OpenCLIP's default) */
    int batch_size;           /* 64 */
    int accum_freq;           /* 1 */
    int workers;              /* data threads, 4 */
    int threads;              /* compute threads (0: CLIPMOD_THREADS / all cores) */
    int64_t train_num_samples;/* samples per epoch; <= 0: sizes.json next to the shards */
    double lr;                /* <= 0: OpenCLIP's default for the model */
    double wd;                /* 0.2 */
    int warmup;               /* 10000 (as OpenCLIP) */
    const char *precision;    /* "amp" (default, bf16 products on CPU) or "fp32" */
    bool grad_checkpointing;
    bool dataset_resampled;
    int64_t seed;             /* 0 */
    /* called after every optimizer step (may be NULL), on the calling thread */
    void (*progress)(void *user, const clipmod_train_progress *p);
    void *progress_user;
} clipmod_train_params;

typedef struct {
    char run_dir[1024];       /* "" when logs_dir is "none" */
    char checkpoint[1100];    /* the final epoch's checkpoint, "" when none was written */
    int64_t steps;            /* optimizer steps done */
    bool have_val;            /* a validation ran: */
    int64_t val_n;
    double val_top1, val_top2;
} clipmod_train_result;

/* `clipmod train`'s defaults (OpenCLIP's). */
CLIPMOD_API clipmod_train_params clipmod_train_default_params(void);
/* Runs the whole training; out (may be NULL) gets the results. Bad settings: CLIPMOD_ERR_ARG naming
   the field as its `clipmod train` flag. */
CLIPMOD_API clipmod_status clipmod_train(clipmod_train_params params, clipmod_train_result *out);

#ifdef __cplusplus
}
#endif
#endif
