/*
 * bytetok.c — the byte-level tokenizer of bytetok.h (ids = bytes + 1, SOT 257, EOT 258, pad 0).
 */
#include "data/bytetok.h"

#include <string.h>

cm_status cm_bytetok_encode(const char *text, size_t len, int32_t *ids, int context_len) {
    if (context_len < 2) return cm_error(CM_ERR_ARG, "byte tokenizer: context length %d < 2", context_len);
    memset(ids, 0, sizeof *ids * (size_t)context_len);
    if (!text && len) return cm_error(CM_ERR_ARG, "byte tokenizer: NULL text");
    size_t room = (size_t)context_len - 2, n = len < room ? len : room;
    ids[0] = CM_BYTETOK_SOT;
    for (size_t i = 0; i < n; i++) ids[1 + i] = (int32_t)(uint8_t)text[i] + 1;
    ids[1 + n] = CM_BYTETOK_EOT;
    return CM_OK;
}

int cm_bytetok_decode(const int32_t *ids, int n, char *out, size_t cap) {
    if (!cap) return -1;
    size_t k = 0;
    int i = (n > 0 && ids[0] == CM_BYTETOK_SOT) ? 1 : 0;
    for (; i < n && ids[i] != CM_BYTETOK_EOT && ids[i] != CM_BYTETOK_PAD; i++) {
        if (ids[i] < 1 || ids[i] > 256) { out[0] = 0; return -1; }
        if (k + 1 < cap) out[k++] = (char)(ids[i] - 1);
    }
    out[k] = 0;
    return (int)k;
}
