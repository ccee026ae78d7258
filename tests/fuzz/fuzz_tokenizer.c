/*
 * fuzz_tokenizer.c — libFuzzer target for caption text (arbitrary bytes, invalid UTF-8 included):
 * cm_tokenizer_encode and cm_tokenize with the real BPE vocabulary, checking that the framed ids
 * are SOT + the first encoded tokens + EOT (EOT last when cut), zero padded, every id below
 * CM_VOCAB_SIZE, and that a second encode of the same text (now through the BPE cache, kept small
 * so that eviction runs too) gives the same ids.
 * The vocabulary: $CLIPMOD_VOCAB, else assets/bpe_simple_vocab_16e6.txt.gz (run from the
 * repository root, as `make fuzz` does), else ../shared/vocab/, else the library's own search.
 * Without one the target exits 1: it would test nothing.
 * Seeds: tests/fuzz/corpus/tokenizer/ (hand-written captions).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/tokenizer.h"
#include "fuzz_util.h"

static CmTokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fz_quiet();
    const char *cands[] = {getenv("CLIPMOD_VOCAB"), "assets/bpe_simple_vocab_16e6.txt.gz",
                           "../shared/vocab/bpe_simple_vocab_16e6.txt.gz"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0] && !g_tok; i++)
        if (cands[i] && cands[i][0] && access(cands[i], R_OK) == 0 && cm_tokenizer_load(cands[i], &g_tok) != CM_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", cm_last_error());
            exit(1);
        }
    if (!g_tok && cm_tokenizer_load(NULL, &g_tok) != CM_OK) {
        fprintf(stderr, "fuzz_tokenizer: no BPE vocabulary (set CLIPMOD_VOCAB): %s\n", cm_last_error());
        exit(1);
    }
    cm_tokenizer_set_cache(g_tok, 4096);   /* 256 per shard: full shards are cleared often (a clear walks
                                              all 4096 buckets of a shard, so a tinier cache is slow) */
    return 0;
}

#define CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int32_t enc[CAP], enc2[CAP], ids[CM_CONTEXT_LEN];
    size_t n = 0, n2 = 0;
    if (cm_tokenizer_encode(g_tok, (const char *)data, size, enc, CAP, &n) != CM_OK) abort();
    size_t k = n < CAP ? n : CAP;
    for (size_t i = 0; i < k; i++) if (enc[i] < 0 || enc[i] >= CM_SOT) abort();
    if (cm_tokenizer_encode(g_tok, (const char *)data, size, enc2, CAP, &n2) != CM_OK || n2 != n ||
        memcmp(enc, enc2, k * sizeof *enc))
        abort();                                               /* cache hit == cache miss */
    if (cm_tokenize(g_tok, (const char *)data, size, ids, CM_CONTEXT_LEN) != CM_OK) abort();
    if (ids[0] != CM_SOT) abort();
    size_t body = CM_CONTEXT_LEN - 2, m = n < body ? n : body;
    for (size_t i = 0; i < m && i < k; i++) if (ids[1 + i] != enc[i]) abort();
    if (n <= body) {
        if (ids[1 + n] != CM_EOT) abort();
        for (size_t i = n + 2; i < CM_CONTEXT_LEN; i++) if (ids[i] != 0) abort();
    } else if (ids[CM_CONTEXT_LEN - 1] != CM_EOT) abort();
    return 0;
}
