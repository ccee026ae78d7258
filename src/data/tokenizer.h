/*
 * tokenizer.h — OpenCLIP's SimpleTokenizer in C (DESIGN §5, open_clip/tokenizer.py): byte-level BPE with the
 * 48,894 merges of bpe_simple_vocab_16e6.txt.gz (or HF vocab.json + merges.txt), html unescape
 * twice, whitespace clean, lowercase, the pre-tokenisation pattern with Unicode classes from
 * utf8proc, SOT 49406 / EOT 49407, context 77, truncation keeps EOT last, pad 0.
 * A loaded tokenizer is read-only except for its BPE cache, which is guarded, so one tokenizer may
 * be shared by loader threads.
 * Behaviour, the vocabulary search order and the handling of invalid UTF-8: docs/tokenizer.md.
 * defines: CmTokenizer, cm_tokenizer_load, cm_tokenizer_load_near, cm_tokenizer_free, cm_tokenize,
 *          cm_tokenizer_encode, cm_tokenizer_set_cache, CM_CONTEXT_LEN
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
#define CM_TOKENIZER_MAX_TEXT (64u << 20)   /* longer captions are refused with CM_ERR_ARG */

typedef struct CmTokenizer CmTokenizer;

/* path: a bpe_simple_vocab_16e6.txt.gz file, a merges .txt, or a folder holding either that file
   or vocab.json + merges.txt. NULL: $CLIPMOD_VOCAB, then <prefix>/share/clipmod/ found
   from libclipmod.so or the executable, then the source tree's assets/ (docs/tokenizer.md). */
cm_status cm_tokenizer_load(const char *path, CmTokenizer **out);
/* The same search, with the folder of the model weights (model_path: a file or folder; may be NULL)
   tried first (before $CLIPMOD_VOCAB) when vocab_path is NULL. */
cm_status cm_tokenizer_load_near(const char *vocab_path, const char *model_path, CmTokenizer **out);
void cm_tokenizer_free(CmTokenizer *tok);
/* Tokenize one caption of len bytes (UTF-8; invalid bytes become U+FFFD) into ids[context_len]:
   SOT, tokens, EOT, zero padded; cut to context_len with EOT last. Thread-safe: loader threads may
   share one tokenizer. On error ids is all zeros. */
cm_status cm_tokenize(CmTokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len);
/* The untruncated token ids (no SOT/EOT): writes min(total, cap) ids, *n_out = total. */
cm_status cm_tokenizer_encode(CmTokenizer *tok, const char *text, size_t len, int32_t *ids, size_t cap, size_t *n_out);
/* Resize (and empty) the BPE cache: max_entries pre-tokens, 0 = no cache (default 131072). Not to be
   called while other threads tokenize with tok. */
void cm_tokenizer_set_cache(CmTokenizer *tok, size_t max_entries);

#endif
