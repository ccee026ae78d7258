/*
 * bytetok.h — a byte-level tokenizer the project can ship without any vocabulary file (the
 * demo's tokenizer, docs/demo.md): id = byte + 1 for every byte of the UTF-8 caption (1..256),
 * SOT = 257, EOT = 258 (the largest id, so OpenCLIP's argmax pooling picks the EOT position),
 * pad 0, vocabulary size 259. Framing as OpenCLIP's tokenizer: SOT, ids, EOT, zero padding; a
 * caption longer than context_len - 2 bytes is cut and EOT stays last. No cleaning, no case
 * folding: the bytes are the tokens.
 *
 * A model whose text tower has vocab_size == CM_BYTETOK_VOCAB takes byte-level ids
 * (cm_bytetok_for_vocab); the OpenCLIP BPE (49408) is used otherwise.
 * defines: CM_BYTETOK_*, cm_bytetok_encode, cm_bytetok_decode, cm_bytetok_for_vocab
 */
#ifndef CM_BYTETOK_H
#define CM_BYTETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

#define CM_BYTETOK_PAD 0
#define CM_BYTETOK_SOT 257
#define CM_BYTETOK_EOT 258
#define CM_BYTETOK_VOCAB 259

/* ids[context_len] = SOT, bytes+1, EOT, 0... (cut with EOT last). context_len >= 2, else
   CM_ERR_ARG. text may hold any bytes (len of them; NUL included). */
cm_status cm_bytetok_encode(const char *text, size_t len, int32_t *ids, int context_len);
/* The inverse for ids in 1..256 between SOT and EOT: writes at most cap-1 bytes and a NUL;
   returns the byte count (ids outside 1..256 before EOT are an error: -1). */
int cm_bytetok_decode(const int32_t *ids, int n, char *out, size_t cap);
/* Whether a text tower of this vocabulary size takes byte-level ids. */
static inline bool cm_bytetok_for_vocab(int vocab_size) { return vocab_size == CM_BYTETOK_VOCAB; }

#endif
