/*
 * safetensors.c — the safetensors format: reader (over the mmap made by tensorfile.c) and an atomic
 * writer whose bytes equal the reference implementation's.
 *
 * Layout: u64 little-endian N, then N bytes of JSON header, then the data buffer.
 *   header = {"__metadata__":{"k":"v",...},"<name>":{"dtype":"F32","shape":[a,b],"data_offsets":[s,e]},...}
 * The reader checks everything (N against the file size and a 100 MB cap, the JSON, every entry's
 * dtype/shape/offsets, that the byte ranges tile the data buffer exactly: no gaps, no overlaps, no
 * tail, and that names are unique) and names the file and tensor at fault.
 * The writer emits compact JSON (no spaces; keys "dtype","shape","data_offsets"; "__metadata__"
 * first when given), escaping strings as serde_json does (", \, \b \f \n \r \t, other control bytes as
 * \u00XX, UTF-8 kept as is), padded with spaces to a multiple of 8; tensors in the given order with
 * contiguous offsets. golden/tiny/model.safetensors is re-written byte for byte by the tests.
 */
#include "io/tensorfile_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)   /* as the reference implementation */

// ----------------------------------------------------------------------------
// reader

/* A JSON number that is a non-negative integer <= 2^53 (exactly representable). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

typedef struct { uint64_t begin, end; int view; } Range;
static int cmp_range(const void *a, const void *b) {
    const Range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static cm_status parse_entry(CmTensorFile *f, const cJSON *e, const uint8_t *data, uint64_t data_len,
                             Range *r) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", f->path, name);
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = !strcmp(c->string, "dtype") ? &jd : !strcmp(c->string, "shape") ? &js
                             : !strcmp(c->string, "data_offsets") ? &jo : NULL;
        if (!slot) continue;   /* unknown keys are ignored, as the reference reader does */
        if (*slot) return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': key \"%s\" appears twice", f->path, name, c->string);
        *slot = c;
    }
    if (!jd || !js || !jo)
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", f->path, name,
                        !jd ? "dtype" : !js ? "shape" : "data_offsets");
    CmTensorView *v = cm_tf_add(f, false);
    if (!v) return cm_last_status();
    v->name = cm_tf_strdup(f, name, strlen(name));
    if (!v->name) return cm_last_status();
    if (!cJSON_IsString(jd))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", f->path, name);
    if (!cm_dtype_parse(jd->valuestring, &v->dtype))
        return cm_error(CM_ERR_UNSUPPORTED, "%s: tensor '%s': unknown or unsupported dtype \"%s\"", f->path,
                        name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': shape is not an array", f->path, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > CM_MAX_DIMS)
        return cm_error(CM_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d supported)", f->path,
                        name, nd, CM_MAX_DIMS);
    v->ndim = 0;
    for (const cJSON *d = js->child; d; d = d->next) {
        uint64_t x;
        if (!json_uint(d, &x) || x > (uint64_t)INT64_MAX)
            return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer",
                            f->path, name, v->ndim);
        v->shape[v->ndim++] = (int64_t)x;
    }
    if (!cm_tf_sizes(v))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': shape too large (byte size overflows)", f->path, name);
    uint64_t b, en;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &en))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end] of integers",
                        f->path, name);
    if (b > en)
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", f->path,
                        name, (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] out of range (data is %llu "
                        "bytes; file truncated?)", f->path, name, (unsigned long long)b, (unsigned long long)en,
                        (unsigned long long)data_len);
    if (en - b != v->nbytes)
        return cm_error(CM_ERR_SHAPE, "%s: tensor '%s': %s shape needs %zu bytes but data_offsets [%llu, %llu] "
                        "hold %llu", f->path, name, cm_dtype_name(v->dtype), v->nbytes, (unsigned long long)b,
                        (unsigned long long)en, (unsigned long long)(en - b));
    v->data = data + b;
    r->begin = b;
    r->end = en;
    r->view = f->n - 1;
    return CM_OK;
}

static cm_status parse_metadata(CmTensorFile *f, const cJSON *m) {
    if (!cJSON_IsObject(m))
        return cm_error(CM_ERR_FORMAT, "%s: __metadata__ is not a JSON object", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_vals) return cm_error(CM_ERR_OOM, "%s: out of memory", f->path);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c))
            return cm_error(CM_ERR_FORMAT, "%s: __metadata__ value of \"%s\" is not a string", f->path, c->string);
        for (int i = 0; i < f->n_meta; i++)
            if (!strcmp(f->meta_keys[i], c->string))
                return cm_error(CM_ERR_FORMAT, "%s: __metadata__ key \"%s\" appears twice", f->path, c->string);
        f->meta_keys[f->n_meta] = cm_tf_strdup(f, c->string, strlen(c->string));
        f->meta_vals[f->n_meta] = cm_tf_strdup(f, c->valuestring, strlen(c->valuestring));
        if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) return cm_last_status();
        f->n_meta++;
    }
    return CM_OK;
}

cm_status cm_safetensors_parse(CmTensorFile *f) {
    uint64_t hlen;
    memcpy(&hlen, f->map, 8);
    if (hlen > ST_MAX_HEADER)
        return cm_error(CM_ERR_FORMAT, "%s: safetensors header length %llu is absurd (limit %llu): not a "
                        "safetensors file or corrupt", f->path, (unsigned long long)hlen,
                        (unsigned long long)ST_MAX_HEADER);
    if (hlen > f->map_len - 8)
        return cm_error(CM_ERR_FORMAT, "%s: safetensors header length %llu exceeds the file size %zu "
                        "(truncated or not a safetensors file)", f->path, (unsigned long long)hlen, f->map_len);
    if (hlen < 2)
        return cm_error(CM_ERR_FORMAT, "%s: safetensors header length %llu is too small", f->path,
                        (unsigned long long)hlen);
    const char *h = (const char *)f->map + 8;
    if (h[0] != '{')
        return cm_error(CM_ERR_FORMAT, "%s: safetensors header does not start with '{'", f->path);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &end, false);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end ? (size_t)(end - h) : cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - h) : 0;
        cJSON_Delete(root);
        return cm_error(CM_ERR_FORMAT, "%s: safetensors header is not valid JSON (error near byte %zu of %llu)",
                        f->path, at, (unsigned long long)hlen);
    }
    for (const char *p = end; p < h + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return cm_error(CM_ERR_FORMAT, "%s: safetensors header has trailing bytes after the JSON (byte %zu)",
                            f->path, (size_t)(p - h));
        }
    const uint8_t *data = f->map + 8 + hlen;
    uint64_t data_len = f->map_len - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    Range *rs = malloc((size_t)(n ? n : 1) * sizeof *rs);
    cm_status st = CM_OK;
    if (!rs) { cJSON_Delete(root); return cm_error(CM_ERR_OOM, "%s: out of memory", f->path); }
    int nr = 0;
    bool seen_meta = false;
    for (const cJSON *e = root->child; e && !st; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_meta) st = cm_error(CM_ERR_FORMAT, "%s: __metadata__ appears twice", f->path);
            else st = parse_metadata(f, e);
            seen_meta = true;
            continue;
        }
        st = parse_entry(f, e, data, data_len, &rs[nr]);
        if (!st) nr++;
    }
    cJSON_Delete(root);
    if (!st) {
        /* the byte ranges must tile [0, data_len) exactly */
        qsort(rs, (size_t)nr, sizeof *rs, cmp_range);
        uint64_t pos = 0;
        for (int i = 0; i < nr && !st; i++) {
            if (rs[i].begin < pos)
                st = cm_error(CM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap the previous "
                              "tensor '%s' (ends at %llu)", f->path, f->views[rs[i].view].name,
                              (unsigned long long)rs[i].begin, (unsigned long long)rs[i].end,
                              f->views[rs[i - 1].view].name, (unsigned long long)pos);
            else if (rs[i].begin > pos)
                st = cm_error(CM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap after byte %llu "
                              "(offsets not contiguous)", f->path, f->views[rs[i].view].name,
                              (unsigned long long)rs[i].begin, (unsigned long long)rs[i].end,
                              (unsigned long long)pos);
            pos = rs[i].end;
        }
        if (!st && pos != data_len)
            st = cm_error(CM_ERR_FORMAT, "%s: %llu bytes after the last tensor's data (data is %llu bytes, "
                          "tensors cover %llu)", f->path, (unsigned long long)(data_len - pos),
                          (unsigned long long)data_len, (unsigned long long)pos);
    }
    free(rs);
    return st;
}

// ----------------------------------------------------------------------------
// writer

typedef struct { char *p; size_t n, cap; bool oom; } Buf;

static void buf_put(Buf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = true; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool utf8_valid(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        int k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (k < 0 || (k == 1 && c < 0xc2) || (k == 3 && c > 0xf4)) return false;
        uint32_t cp = k == 0 ? c : k == 1 ? (c & 0x1f) : k == 2 ? (c & 0x0f) : (c & 0x07);
        for (int i = 1; i <= k; i++) {
            if ((s[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        s += k + 1;
    }
    return true;
}

/* A JSON string as serde_json writes it. */
static void buf_json_str(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': buf_put(b, "\\\"", 2); break;
        case '\\': buf_put(b, "\\\\", 2); break;
        case '\b': buf_put(b, "\\b", 2); break;
        case '\f': buf_put(b, "\\f", 2); break;
        case '\n': buf_put(b, "\\n", 2); break;
        case '\r': buf_put(b, "\\r", 2); break;
        case '\t': buf_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); buf_put(b, esc, 6); }
            else buf_put(b, p, 1);
        }
    }
    buf_put(b, "\"", 1);
}

cm_status cm_safetensors_write(const char *path, const CmTensorOut *ts, int n,
                               const char *const *metadata, int n_meta) {
    if (n < 0 || n_meta < 0 || (n && !ts) || (n_meta && !metadata))
        return cm_error(CM_ERR_ARG, "%s: safetensors write: bad tensor or metadata list", path);
    /* validate names (non-empty UTF-8, unique), dtypes and shapes first: nothing is written on error */
    for (int i = 0; i < n_meta; i++) {
        const char *k = metadata[2 * i], *v = metadata[2 * i + 1];
        if (!k || !v || !utf8_valid((const unsigned char *)k) || !utf8_valid((const unsigned char *)v))
            return cm_error(CM_ERR_ARG, "%s: __metadata__ entry %d is NULL or not UTF-8", path, i);
        for (int j = 0; j < i; j++)
            if (!strcmp(metadata[2 * j], k)) return cm_error(CM_ERR_ARG, "%s: __metadata__ key \"%s\" given twice", path, k);
    }
    size_t *nbytes = calloc((size_t)(n ? n : 1), sizeof *nbytes);
    if (!nbytes) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    cm_status st = CM_OK;
    Buf b = {0};
    for (int i = 0; i < n && !st; i++) {
        const CmTensorOut *t = &ts[i];
        CmTensorView v = {.dtype = t->dtype, .ndim = t->ndim};
        if (!t->name || !utf8_valid((const unsigned char *)t->name) || !strcmp(t->name, "__metadata__"))
            st = cm_error(CM_ERR_ARG, "%s: tensor %d: name is NULL, not UTF-8 or reserved", path, i);
        else if (!cm_dtype_size(t->dtype))
            st = cm_error(CM_ERR_ARG, "%s: tensor '%s': bad dtype %d", path, t->name, (int)t->dtype);
        else if (t->ndim < 0 || t->ndim > CM_MAX_DIMS)
            st = cm_error(CM_ERR_ARG, "%s: tensor '%s': ndim %d out of range", path, t->name, t->ndim);
        else {
            memcpy(v.shape, t->shape, sizeof v.shape);
            if (!cm_tf_sizes(&v)) st = cm_error(CM_ERR_ARG, "%s: tensor '%s': bad shape", path, t->name);
            else if (v.nbytes && !t->data) st = cm_error(CM_ERR_ARG, "%s: tensor '%s': no data", path, t->name);
            nbytes[i] = v.nbytes;
        }
    }
    if (!st) {
        /* duplicate names: sort a copy of the pointers */
        const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
        if (!names) st = cm_error(CM_ERR_OOM, "%s: out of memory", path);
        else {
            for (int i = 0; i < n; i++) names[i] = ts[i].name;
            qsort(names, (size_t)n, sizeof *names, cmp_strp);
            for (int i = 1; i < n && !st; i++)
                if (!strcmp(names[i], names[i - 1]))
                    st = cm_error(CM_ERR_ARG, "%s: tensor name '%s' given twice", path, names[i]);
            free(names);
        }
    }
    if (st) { free(nbytes); return st; }

    /* header */
    char num[64];
    buf_put(&b, "{", 1);
    if (metadata) {
        buf_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) buf_put(&b, ",", 1);
            buf_json_str(&b, metadata[2 * i]);
            buf_put(&b, ":", 1);
            buf_json_str(&b, metadata[2 * i + 1]);
        }
        buf_str(&b, n ? "}," : "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const CmTensorOut *t = &ts[i];
        if (i) buf_put(&b, ",", 1);
        buf_json_str(&b, t->name);
        buf_str(&b, ":{\"dtype\":\"");
        buf_str(&b, cm_dtype_name(t->dtype));
        buf_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            buf_str(&b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + nbytes[i]));
        buf_str(&b, num);
        off += nbytes[i];
    }
    buf_put(&b, "}", 1);
    while (b.n % 8) buf_put(&b, " ", 1);
    if (b.oom) { free(b.p); free(nbytes); return cm_error(CM_ERR_OOM, "%s: out of memory building the header", path); }

    CmAtomicFile af;
    st = cm_atomic_open(&af, path);
    if (!st) {
        uint64_t hlen = b.n;
        uint8_t le[8];
        for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hlen >> (8 * k));
        st = cm_atomic_write(&af, le, 8);
        if (!st) st = cm_atomic_write(&af, b.p, b.n);
        for (int i = 0; i < n && !st; i++) st = cm_atomic_write(&af, ts[i].data, nbytes[i]);
        if (st) cm_atomic_abort(&af);
        else st = cm_atomic_commit(&af);
    }
    free(b.p);
    free(nbytes);
    return st;
}
