/*
 * request.c — JSON / multipart / base64 request bodies for `clipmod serve` (see request.h).
 */
#include "serve/request.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>

// ---------------------------------------------------------------------------------------------
// base64

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

cm_status cm_base64_decode(const char *in, size_t len, uint8_t **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    uint8_t *buf = malloc(len / 4 * 3 + 4);
    if (!buf) return cm_error(CM_ERR_OOM, "base64: out of memory for %zu bytes", len);
    size_t k = 0, n = 0, pad_at = (size_t)-1;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') { if (pad_at == (size_t)-1) pad_at = n; continue; }
        int v = b64_value(c);
        if (v < 0 || pad_at != (size_t)-1) {
            free(buf);
            if (v < 0) return cm_error(CM_ERR_FORMAT, "base64: invalid character 0x%02x at offset %zu", c, i);
            return cm_error(CM_ERR_FORMAT, "base64: data after '=' padding at offset %zu", i);
        }
        acc = acc << 6 | (uint32_t)v;
        if (++n % 4 == 0) {
            buf[k++] = (uint8_t)(acc >> 16);
            buf[k++] = (uint8_t)(acc >> 8);
            buf[k++] = (uint8_t)acc;
            acc = 0;
        }
    }
    switch (n % 4) {
    case 1: free(buf); return cm_error(CM_ERR_FORMAT, "base64: truncated (%zu symbols: one too many or missing)", n);
    case 2: buf[k++] = (uint8_t)(acc >> 4); break;
    case 3: buf[k++] = (uint8_t)(acc >> 10); buf[k++] = (uint8_t)(acc >> 2); break;
    }
    buf[k] = 0;
    *out = buf;
    *out_len = k;
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// JSON answer buffer

void cm_jbuf_printf(CmJBuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) { b->oom = true; return; }
        if (b->s && b->len + (size_t)w < b->cap) { b->len += (size_t)w; return; }
        size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)w;
        char *s = realloc(b->s, cap);
        if (!s) { free(b->s); b->s = NULL; b->len = b->cap = 0; b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
}

void cm_jbuf_str(CmJBuf *b, const char *s) {
    cm_jbuf_printf(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p && !b->oom) {
        const unsigned char *q = p;
        while (*q && *q != '"' && *q != '\\' && *q >= 0x20) q++;
        if (q > p) cm_jbuf_printf(b, "%.*s", (int)(q - p), (const char *)p);
        if (!*q) break;
        if (*q == '"' || *q == '\\') cm_jbuf_printf(b, "\\%c", *q);
        else cm_jbuf_printf(b, "\\u%04x", *q);
        p = q + 1;
    }
    cm_jbuf_printf(b, "\"");
}

void cm_jbuf_free(CmJBuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

// ---------------------------------------------------------------------------------------------
// items

void cm_req_batch_free(CmReqBatch *b) {
    for (int i = 0; b->items && i < b->n; i++) { free(b->items[i].image); free(b->items[i].text); }
    free(b->items);
    memset(b, 0, sizeof *b);
}

static cm_status fail(int *http, int code, cm_status st) {
    *http = code;
    return st;
}

static cm_status set_text(CmReqItem *it, const char *s, size_t len, const CmReqLimits *lim, const char *where, int *http) {
    if (lim && lim->max_caption_bytes && len > lim->max_caption_bytes)
        return fail(http, 413, cm_error(CM_ERR_ARG, "%s\"text\" is %zu bytes, over the limit of %zu bytes", where, len,
                                        lim->max_caption_bytes));
    if (memchr(s, 0, len)) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"text\" contains a NUL byte", where));
    it->text = malloc(len + 1);
    if (!it->text) return fail(http, 500, cm_error(CM_ERR_OOM, "out of memory for a caption of %zu bytes", len));
    memcpy(it->text, s, len);
    it->text[len] = 0;
    it->text_len = len;
    return CM_OK;
}

/* "data:<mime>;base64,<data>" or plain base64. */
static cm_status set_image_b64(CmReqItem *it, const char *s, size_t len, const char *where, int *http) {
    if (len >= 5 && !strncmp(s, "data:", 5)) {
        const char *comma = memchr(s, ',', len);
        if (!comma || comma - s < 12 || strncmp(comma - 7, ";base64", 7))
            return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"image\": a data URL must be data:<type>;base64,<data>", where));
        len -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    if (cm_base64_decode(s, len, &it->image, &it->image_len))
        return fail(http, 400, cm_error_prefix("%s\"image\"", where));
    if (it->image_len == 0) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"image\" is empty", where));
    return CM_OK;
}

static cm_status json_item(const cJSON *o, int idx, bool array, const CmReqLimits *lim, CmReqItem *it, int *http) {
    char where[48] = "";
    if (array) snprintf(where, sizeof where, "item %d: ", idx);
    if (!cJSON_IsObject(o))
        return fail(http, 400, cm_error(CM_ERR_FORMAT, "%sexpected an object {\"image\": \"<base64>\", \"text\": \"...\"}", where));
    for (const cJSON *c = o->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        if (!strcmp(k, "image")) {
            if (cJSON_IsNull(c)) continue;
            if (!cJSON_IsString(c)) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"image\" must be a base64 string", where));
            if (it->image) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"image\" given twice", where));
            cm_status st = set_image_b64(it, c->valuestring, strlen(c->valuestring), where, http);
            if (st) return st;
        } else if (!strcmp(k, "text")) {
            if (cJSON_IsNull(c)) continue;
            if (!cJSON_IsString(c)) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"text\" must be a string", where));
            if (it->text) return fail(http, 400, cm_error(CM_ERR_FORMAT, "%s\"text\" given twice", where));
            cm_status st = set_text(it, c->valuestring, strlen(c->valuestring), lim, where, http);
            if (st) return st;
        } else {
            char key[64];
            snprintf(key, sizeof key, "%s", k);
            for (char *p = key; *p; p++) if ((unsigned char)*p < 0x20 || *p == '"') *p = '?';
            return fail(http, 400, cm_error(CM_ERR_FORMAT, "%sunknown member \"%s\" (expected \"image\" and \"text\")", where, key));
        }
    }
    return CM_OK;
}

cm_status cm_req_parse_json(const uint8_t *body, size_t len, const CmReqLimits *lim, CmReqBatch *out, int *http) {
    memset(out, 0, sizeof *out);
    *http = 200;
    if (len == 0) return fail(http, 400, cm_error(CM_ERR_FORMAT, "empty request body (expected JSON)"));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)body, len, &end, false);
    if (!j) {
        size_t off = end ? (size_t)(end - (const char *)body) : 0;
        return fail(http, 400, cm_error(CM_ERR_FORMAT, "invalid JSON near byte %zu of %zu", off, len));
    }
    /* only whitespace may follow the value */
    for (const char *p = end; p && p < (const char *)body + len; p++)
        if (!isspace((unsigned char)*p) && *p) {
            cJSON_Delete(j);
            return fail(http, 400, cm_error(CM_ERR_FORMAT, "invalid JSON: data after the value at byte %zu", (size_t)(p - (const char *)body)));
        }
    cm_status st = CM_OK;
    bool array = cJSON_IsArray(j);
    int n = array ? cJSON_GetArraySize(j) : 1;
    if (array && n == 0) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "empty JSON array: nothing to do")); goto done; }
    if (lim && lim->max_items && n > lim->max_items) {
        st = fail(http, 413, cm_error(CM_ERR_ARG, "%d items in one request, over the limit of %d", n, lim->max_items));
        goto done;
    }
    out->items = calloc((size_t)n, sizeof *out->items);
    if (!out->items) { st = fail(http, 500, cm_error(CM_ERR_OOM, "out of memory for %d items", n)); goto done; }
    out->n = n;
    out->array = array;
    int i = 0;
    for (const cJSON *o = array ? j->child : j; o && i < n; o = array ? o->next : NULL, i++)
        if ((st = json_item(o, i, array, lim, &out->items[i], http))) break;
done:
    cJSON_Delete(j);
    if (st) cm_req_batch_free(out);
    return st;
}

// ---------------------------------------------------------------------------------------------
// multipart/form-data (RFC 7578)

/* The value of parameter `name` in a header value like `form-data; name="x"; filename="y"`,
   copied into buf (quotes removed). false when absent. */
static bool header_param(const char *v, size_t vlen, const char *name, char *buf, size_t cap) {
    size_t nl = strlen(name);
    const char *p = v, *e = v + vlen;
    while (p < e) {
        const char *semi = memchr(p, ';', (size_t)(e - p));
        if (!semi) break;
        p = semi + 1;
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        if ((size_t)(e - p) > nl && !strncasecmp(p, name, nl) && p[nl] == '=') {
            const char *s = p + nl + 1, *t;
            if (s < e && *s == '"') {
                s++;
                t = memchr(s, '"', (size_t)(e - s));
                if (!t) return false;
            } else {
                t = s;
                while (t < e && *t != ';' && *t != ' ' && *t != '\t') t++;
            }
            size_t n = (size_t)(t - s);
            if (n >= cap) n = cap - 1;
            memcpy(buf, s, n);
            buf[n] = 0;
            return true;
        }
    }
    return false;
}

cm_status cm_req_parse_multipart(const char *ctype, const uint8_t *body, size_t len, const CmReqLimits *lim,
                                 CmReqBatch *out, int *http) {
    memset(out, 0, sizeof *out);
    *http = 200;
    char bnd[80] = "--";
    if (!header_param(ctype, strlen(ctype), "boundary", bnd + 2, sizeof bnd - 2) || !bnd[2])
        return fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart/form-data without a boundary parameter"));
    size_t bl = strlen(bnd);
    if (bl > 72) return fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart boundary longer than 70 characters"));
    CmReqItem it = {0};
    cm_status st = CM_OK;
    const uint8_t *end = body + len;
    const uint8_t *p = memmem(body, len, bnd, bl);
    if (!p) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart body has no boundary line \"%s\"", bnd)); goto fail; }
    int parts = 0;
    for (;;) {
        p += bl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; /* closing delimiter */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart: boundary line not followed by CRLF")); goto fail; }
        p += 2;
        const uint8_t *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const uint8_t *hstart = p;
        if (p + 2 <= end && p[0] == '\r' && p[1] == '\n') hend = p - 2; /* no headers */
        if (!hend) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart part %d: headers not terminated by an empty line", parts)); goto fail; }
        char name[64] = "";
        bool have_name = false;
        for (const uint8_t *l = hstart; l < hend;) {
            const uint8_t *le = memmem(l, (size_t)(hend - l), "\r\n", 2);
            if (!le) le = hend;
            const char *colon = memchr(l, ':', (size_t)(le - l));
            if (colon && (size_t)(colon - (const char *)l) == 19 && !strncasecmp((const char *)l, "Content-Disposition", 19))
                have_name = header_param(colon + 1, (size_t)((const char *)le - colon - 1), "name", name, sizeof name);
            l = le + 2;
        }
        const uint8_t *data = hend + 4;
        if (data > end) data = end;
        /* the data runs to CRLF + boundary */
        char delim[84] = "\r\n";
        memcpy(delim + 2, bnd, bl + 1);
        const uint8_t *dend = memmem(data, (size_t)(end - data), delim, bl + 2);
        if (!dend) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart part %d: no closing boundary (truncated body?)", parts)); goto fail; }
        size_t dl = (size_t)(dend - data);
        if (!have_name) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart part %d: no Content-Disposition name", parts)); goto fail; }
        for (char *c = name; *c; c++) if ((unsigned char)*c < 0x20 || *c == '"') *c = '?';
        if (!strcmp(name, "image")) {
            if (it.image) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart: two \"image\" parts")); goto fail; }
            if (dl == 0) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart: the \"image\" part is empty")); goto fail; }
            it.image = malloc(dl + 1);
            if (!it.image) { st = fail(http, 500, cm_error(CM_ERR_OOM, "out of memory for an image of %zu bytes", dl)); goto fail; }
            memcpy(it.image, data, dl);
            it.image[dl] = 0;
            it.image_len = dl;
        } else if (!strcmp(name, "text")) {
            if (it.text) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart: two \"text\" parts")); goto fail; }
            if ((st = set_text(&it, (const char *)data, dl, lim, "multipart: ", http))) goto fail;
        } else {
            st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart: unknown part \"%s\" (expected \"image\" and \"text\")", name));
            goto fail;
        }
        parts++;
        p = dend + 2;
    }
    if (parts == 0) { st = fail(http, 400, cm_error(CM_ERR_FORMAT, "multipart body has no parts")); goto fail; }
    out->items = calloc(1, sizeof *out->items);
    if (!out->items) { st = fail(http, 500, cm_error(CM_ERR_OOM, "out of memory")); goto fail; }
    out->items[0] = it;
    out->n = 1;
    return CM_OK;
fail:
    free(it.image);
    free(it.text);
    return st;
}

// ---------------------------------------------------------------------------------------------

static bool ctype_is(const char *ct, const char *want) {
    size_t n = strlen(want);
    while (*ct == ' ' || *ct == '\t') ct++;
    return !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

cm_status cm_req_parse(const char *ctype, const uint8_t *body, size_t len, const CmReqLimits *lim, CmReqBatch *out,
                       int *http) {
    memset(out, 0, sizeof *out);
    if (!ctype || !*ctype)
        return fail(http, 415, cm_error(CM_ERR_UNSUPPORTED, "no Content-Type: send application/json or multipart/form-data"));
    if (ctype_is(ctype, "application/json")) return cm_req_parse_json(body, len, lim, out, http);
    if (ctype_is(ctype, "multipart/form-data")) return cm_req_parse_multipart(ctype, body, len, lim, out, http);
    char shown[64];
    snprintf(shown, sizeof shown, "%s", ctype);
    for (char *p = shown; *p; p++) if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') *p = '?';
    return fail(http, 415, cm_error(CM_ERR_UNSUPPORTED, "Content-Type %s is not supported: send application/json or multipart/form-data", shown));
}
