/*
 * tokenizer.h — OpenCLIP's SimpleTokenizer in C (DESIGN §5, facts §5): byte-level BPE with the
 * 48,894 merges of bpe_simple_vocab_16e6.txt.gz (or HF vocab.json + merges.txt), html unescape
 * twice, whitespace clean, lowercase, the pre-tokenisation pattern with Unicode classes from
 * utf8proc, SOT 49406 / EOT 49407, context 77, truncation keeps EOT last, pad 0.
 * A loaded tokenizer is read-only except for its BPE cache, which is guarded, so one tokenizer may
 * be shared by loader threads.
 * defines: CmTokenizer, cm_tokenizer_load, cm_tokenizer_free, cm_tokenize, CM_CONTEXT_LEN
 */
#ifndef CM_TOKENIZER_H
#define CM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

#define CM_CONTEXT_LEN 77
#define CM_SOT 49406
#define CM_EOT 49407
#define CM_VOCAB_SIZE 49408

typedef struct CmTokenizer CmTokenizer;

/* path: a bpe_simple_vocab_16e6.txt.gz file, a merges .txt, or a folder holding either that file
   or vocab.json + merges.txt. NULL: $CLIPMOD_VOCAB, then ../shared/vocab/ and the install
   location (docs/tokenizer.md says which). */
cm_status cm_tokenizer_load(const char *path, CmTokenizer **out);
void cm_tokenizer_free(CmTokenizer *tok);
/* Tokenize one caption of len bytes into ids[context_len] (SOT ... EOT, zero padded). */
cm_status cm_tokenize(CmTokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len);

#endif
