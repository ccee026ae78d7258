/*
 * fuzz_http.c — libFuzzer target for the request path of `clipmod serve` (src/serve/request.h):
 * the JSON bodies, base64 and multipart/form-data, called without a socket.
 *
 * Input: byte 0 picks the parser, the rest is split at the first '\n' into a Content-Type line
 * (modes 1 and 3) and the body:
 *   0: cm_req_parse_json(body)           1: cm_req_parse_multipart(ctype, body)
 *   2: cm_base64_decode(body)            3: cm_req_parse(ctype, body) (the server's dispatch)
 * Properties beyond "no crash/leak/UB": a failure has an HTTP status of 400/413/415 and a message;
 * a success has 1..max_items items, each with an image or a text, text NUL-terminated with
 * text_len == strlen, caption within the limit; each caption escaped by cm_jbuf_str parses back
 * (cJSON) to the same string; base64 output re-encoded decodes to the same bytes.
 * Seeds: tests/fuzz/corpus/http/seed-* (one per mode: JSON single/array/bad, multipart plain and with a
 * quoted boundary + preamble, base64 standard/URL-safe, dispatch JSON/other).
 * Self-contained: links only against the library (no libmicrohttpd needed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "serve/request.h"

#define FAIL(...) do { fprintf(stderr, "fuzz_http: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

static char *b64enc(const uint8_t *d, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *p = o;
    if (!o) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = A[v >> 18]; *p++ = A[(v >> 12) & 63]; *p++ = A[(v >> 6) & 63]; *p++ = A[v & 63];
    }
    if (n - i == 1) { uint32_t v = (uint32_t)d[i] << 16; *p++ = A[v >> 18]; *p++ = A[(v >> 12) & 63]; }
    if (n - i == 2) { uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8; *p++ = A[v >> 18]; *p++ = A[(v >> 12) & 63]; *p++ = A[(v >> 6) & 63]; }
    *p = 0;
    return o;
}

static void check_batch(cm_status st, int http, const CmReqBatch *b, const CmReqLimits *lim) {
    if (st) {
        if (http != 400 && http != 413 && http != 415 && http != 500) FAIL("failure with HTTP status %d", http);
        if (!cm_last_error()[0]) FAIL("failure without a message");
        if (b->items || b->n) FAIL("failure left items behind");
        return;
    }
    if (b->n < 1 || (lim->max_items && b->n > lim->max_items)) FAIL("%d items", b->n);
    for (int i = 0; i < b->n; i++) {
        const CmReqItem *it = &b->items[i];
        if (it->image && it->image_len == 0) FAIL("empty image accepted");
        if (it->text) {
            if (strlen(it->text) != it->text_len) FAIL("text_len %zu != strlen %zu", it->text_len, strlen(it->text));
            if (it->text_len > lim->max_caption_bytes) FAIL("caption of %zu bytes over the limit", it->text_len);
            CmJBuf jb = {0};
            cm_jbuf_str(&jb, it->text);
            if (jb.oom) { cm_jbuf_free(&jb); continue; }
            cJSON *j = cJSON_ParseWithLength(jb.s, jb.len);
            /* cJSON refuses invalid UTF-8 only in some builds; compare when it parsed */
            if (!j) FAIL("escaped caption is not JSON: %s", jb.s);
            if (!cJSON_IsString(j) || strcmp(j->valuestring, it->text)) FAIL("caption escape does not round-trip");
            cJSON_Delete(j);
            cm_jbuf_free(&jb);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 3;
    data++;
    size--;
    char ctype[256] = "";
    if (mode == 1 || mode == 3) {
        const uint8_t *nl = memchr(data, '\n', size < 255 ? size : 255);
        if (!nl) return 0;
        size_t cl = (size_t)(nl - data);
        memcpy(ctype, data, cl);
        ctype[cl] = 0;
        if (strlen(ctype) != cl) return 0;  /* a header value has no NUL */
        data = nl + 1;
        size -= cl + 1;
    }
    /* an exact-size copy, so that any read past the body is an ASan error */
    uint8_t *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    CmReqLimits lim = {200, 8};
    CmReqBatch b;
    int http = 0;
    cm_status st;
    switch (mode) {
    case 0: st = cm_req_parse_json(body, size, &lim, &b, &http); check_batch(st, http, &b, &lim); cm_req_batch_free(&b); break;
    case 1: st = cm_req_parse_multipart(ctype, body, size, &lim, &b, &http); check_batch(st, http, &b, &lim); cm_req_batch_free(&b); break;
    case 3: st = cm_req_parse(ctype, body, size, &lim, &b, &http); check_batch(st, http, &b, &lim); cm_req_batch_free(&b); break;
    default: {
        uint8_t *out = NULL, *again = NULL;
        size_t n = 0, n2 = 0;
        if (cm_base64_decode((const char *)body, size, &out, &n) == CM_OK) {
            if (out[n] != 0) FAIL("decoded data not NUL-terminated");
            char *enc = b64enc(out, n);
            if (enc) {
                if (cm_base64_decode(enc, strlen(enc), &again, &n2) != CM_OK) FAIL("re-encoded base64 refused: %s", cm_last_error());
                if (n2 != n || memcmp(out, again, n)) FAIL("base64 round trip differs");
                free(again);
                free(enc);
            }
            free(out);
        } else if (out) FAIL("failure returned data");
    }
    }
    free(body);
    return 0;
}
