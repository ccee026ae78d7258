/*
 * textenc.c — BPE or byte-level caption encoding (see textenc.h).
 */
#include "data/textenc.h"

#include <string.h>

void cm_byte_tokenize(const char *text, size_t len, int32_t *ids, int ctx) {
    memset(ids, 0, (size_t)ctx * sizeof *ids);
    if (ctx < 2) { if (ctx == 1) ids[0] = CM_BYTE_EOT; return; }
    int k = 0;
    ids[k++] = CM_BYTE_SOT;
    for (size_t i = 0; i < len && k < ctx - 1; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c) ids[k++] = c;   /* a NUL byte would read as padding: dropped */
    }
    ids[k] = CM_BYTE_EOT;
}

cm_status cm_textenc_open(CmTextEnc *t, const char *kind, const char *vocab_path, const char *model_path) {
    memset(t, 0, sizeof *t);
    if (kind && !strcmp(kind, "bytes")) { t->bytes = true; return CM_OK; }
    if (kind && *kind && strcmp(kind, "bpe")) return cm_error(CM_ERR_FORMAT, "unknown tokenizer kind '%s' (bytes, bpe)", kind);
    return cm_tokenizer_load_near(vocab_path, model_path, &t->bpe);
}

void cm_textenc_close(CmTextEnc *t) {
    if (t->bpe) cm_tokenizer_free(t->bpe);
    memset(t, 0, sizeof *t);
}

cm_status cm_textenc_encode(CmTextEnc *t, const char *text, size_t len, int32_t *ids, int ctx) {
    if (t->bytes) { cm_byte_tokenize(text, len, ids, ctx); return CM_OK; }
    return cm_tokenize(t->bpe, text, len, ids, ctx);
}
