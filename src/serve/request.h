/*
 * request.h — the request bodies of `clipmod serve` turned into (image bytes, caption) items,
 * without a socket, so that tests and the fuzz target (tests/fuzz/fuzz_http.c) call them directly:
 *   - application/json: {"image": "<base64>", "text": "..."} or an array of such objects;
 *     "image" may carry a data-URL prefix ("data:image/png;base64,"); either member may be absent
 *     or null (the caller decides whether the endpoint needs both); other members are refused.
 *   - multipart/form-data: one item from a part named "image" (a file) and a part named "text".
 *   - base64: the standard and the URL-safe alphabets, padding optional, whitespace ignored.
 * Every failure returns a status with a message naming the problem (cm_last_error) and the HTTP
 * status the server answers with: 400 malformed, 413 over a limit, 415 unsupported content type.
 * Nothing here touches the file system or keeps state; all functions are thread-safe.
 * defines: CmReqItem, CmReqBatch, CmReqLimits, cm_req_*, cm_base64_decode, cm_jbuf_*
 */
#ifndef CM_SERVE_REQUEST_H
#define CM_SERVE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

typedef struct {
    uint8_t *image;      /* decoded image file bytes (malloc'd), NULL when absent */
    size_t image_len;
    char *text;          /* caption, NUL-terminated (malloc'd), NULL when absent */
    size_t text_len;
} CmReqItem;

typedef struct {
    CmReqItem *items;
    int n;
    bool array;          /* the body was a JSON array: answer with an array */
} CmReqBatch;

typedef struct {
    size_t max_caption_bytes;   /* 0: no limit */
    int max_items;              /* items of one JSON array (0: no limit) */
} CmReqLimits;

/* Dispatch on the Content-Type (NULL/absent: 415). */
cm_status cm_req_parse(const char *content_type, const uint8_t *body, size_t len, const CmReqLimits *lim,
                       CmReqBatch *out, int *http_status);
cm_status cm_req_parse_json(const uint8_t *body, size_t len, const CmReqLimits *lim, CmReqBatch *out, int *http_status);
cm_status cm_req_parse_multipart(const char *content_type, const uint8_t *body, size_t len, const CmReqLimits *lim,
                                 CmReqBatch *out, int *http_status);
void cm_req_batch_free(CmReqBatch *b);

/* Base64 (standard or URL-safe, optional padding, whitespace skipped) -> *out (malloc'd, *out_len
   bytes; a NUL follows the data). CM_ERR_FORMAT naming the offending character's offset. */
cm_status cm_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len);

/* A growable string for JSON answers (malloc'd; oom sticky: s == NULL after a failed growth). */
typedef struct { char *s; size_t len, cap; bool oom; } CmJBuf;
void cm_jbuf_printf(CmJBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cm_jbuf_str(CmJBuf *b, const char *s);          /* a JSON string literal, escaped */
void cm_jbuf_free(CmJBuf *b);

#endif
