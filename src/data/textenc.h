/*
 * textenc.h — captions to token ids for training, eval and predict: OpenCLIP's BPE tokenizer
 * (src/data/tokenizer.h) for real models, or the byte-level tokenizer the demo ships (no vocab
 * file needed): ids = SOT 256, the caption's UTF-8 bytes (1..255), EOT 257, zero padded, cut to
 * the context length with EOT last; vocab_size 258 so that the text tower's argmax pooling
 * finds EOT. A checkpoint records which one it was trained with ("tokenizer" metadata).
 * defines: CmTextEnc, cm_textenc_*, CM_BYTE_SOT, CM_BYTE_EOT, CM_BYTE_VOCAB
 */
#ifndef CM_DATA_TEXTENC_H
#define CM_DATA_TEXTENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"
#include "data/tokenizer.h"

#define CM_BYTE_SOT 256
#define CM_BYTE_EOT 257
#define CM_BYTE_VOCAB 258

typedef struct {
    bool bytes;          /* byte-level (demo) instead of BPE */
    CmTokenizer *bpe;    /* owned when bytes is false */
} CmTextEnc;

/* kind: "bytes" or "bpe"/NULL (then vocab_path / model_path as cm_tokenizer_load_near). */
cm_status cm_textenc_open(CmTextEnc *t, const char *kind, const char *vocab_path, const char *model_path);
void cm_textenc_close(CmTextEnc *t);
cm_status cm_textenc_encode(CmTextEnc *t, const char *text, size_t len, int32_t *ids, int ctx);
/* The byte-level encoding alone. */
void cm_byte_tokenize(const char *text, size_t len, int32_t *ids, int ctx);

#endif
