/*
 * wds_urls.c — shard URLs and epoch arithmetic (webdataset's tar grouping; OpenCLIP v2.30 open_clip_train/data.py):
 *   braceexpand exactly as trendels/braceexpand 0.1.7 (integer and letter ranges with optional
 *   step, zero padding when an endpoint has a leading zero, `{a,b}` lists, nesting, `\` escapes,
 *   a brace group that is neither a range nor a list stays literal, unbalanced braces are an
 *   error); `::` sources with per-source upsampling factors (open_clip's expand_urls); weighted
 *   draws with replacement (random.choices: bisect on cumulative weights); OpenCLIP's epoch
 *   sizing; dataset size from sizes.json / __len__.
 */
#include "data/wds.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#define MAX_EXPANSION 1000000

cm_status cm_strlist_push(CmStrList *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, sizeof *nv * (size_t)nc);
        if (!nv) return cm_error(CM_ERR_OOM, "out of memory");
        l->v = nv; l->cap = nc;
    }
    char *d = malloc(n + 1);
    if (!d) return cm_error(CM_ERR_OOM, "out of memory");
    memcpy(d, s, n);
    d[n] = 0;
    l->v[l->n++] = d;
    return CM_OK;
}

void cm_strlist_free(CmStrList *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

// ----------------------------------------------------------------------------
// braceexpand

static cm_status parse_pattern(const char *s, size_t n, CmStrList *out);

/* out = out x item (string concatenation, out-major). */
static cm_status product(CmStrList *out, const CmStrList *item) {
    if ((long long)out->n * item->n > MAX_EXPANSION)
        return cm_error(CM_ERR_ARG, "brace expansion gives more than %d names", MAX_EXPANSION);
    CmStrList r = {0};
    for (int i = 0; i < out->n; i++)
        for (int j = 0; j < item->n; j++) {
            size_t a = strlen(out->v[i]), b = strlen(item->v[j]);
            char *tmp = malloc(a + b + 1);
            if (!tmp) { cm_strlist_free(&r); return cm_error(CM_ERR_OOM, "out of memory"); }
            memcpy(tmp, out->v[i], a);
            memcpy(tmp + a, item->v[j], b);
            cm_status st = cm_strlist_push(&r, tmp, a + b);
            free(tmp);
            if (st) { cm_strlist_free(&r); return st; }
        }
    cm_strlist_free(out);
    *out = r;
    return CM_OK;
}

static bool all_digits(const char *s, size_t n) {
    if (!n) return false;
    for (size_t i = 0; i < n; i++) if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* "-?\d+" */
static bool is_int(const char *s, size_t n) { return n && (s[0] == '-' ? all_digits(s + 1, n - 1) : all_digits(s, n)); }

static bool find_dotdot(const char *s, size_t n, size_t from, size_t *at) {
    for (size_t i = from; i + 1 < n; i++) if (s[i] == '.' && s[i + 1] == '.') { *at = i; return true; }
    return false;
}

/* Integer or letter range; returns 1 if expr is a range (out filled), 0 if not, <0 error. */
static int parse_range(const char *e, size_t n, CmStrList *out) {
    size_t d1, d2;
    if (!find_dotdot(e, n, 0, &d1)) return 0;
    const char *l = e, *r = e + d1 + 2;
    size_t ll = d1, rl;
    long long step = 1;
    if (find_dotdot(e, n, d1 + 2, &d2)) {
        rl = d2 - (d1 + 2);
        const char *inc = e + d2 + 2;
        size_t il = n - (d2 + 2);
        if (il && inc[0] == '-') { inc++; il--; }     /* "-?(\d+)": the sign is ignored */
        if (!all_digits(inc, il) || il > 9) return 0;
        step = strtoll(inc, NULL, 10);
        if (step == 0) step = 1;
    } else {
        rl = n - (d1 + 2);
    }
    bool ints = is_int(l, ll) && is_int(r, rl);
    bool chars = ll == 1 && rl == 1 && isalpha((unsigned char)l[0]) && isalpha((unsigned char)r[0]);
    if (!ints && !chars) return 0;
    long long a, b;
    int pad = 0;
    if (ints) {
        if (ll > 18 || rl > 18) return cm_error(CM_ERR_ARG, "brace range {%.*s}: numbers too large", (int)n, e);
        char tmp[24];
        memcpy(tmp, l, ll); tmp[ll] = 0; a = strtoll(tmp, NULL, 10);
        bool lz = (ll > 1 && l[0] == '0') || (ll > 2 && l[0] == '-' && l[1] == '0');
        memcpy(tmp, r, rl); tmp[rl] = 0; b = strtoll(tmp, NULL, 10);
        bool rz = (rl > 1 && r[0] == '0') || (rl > 2 && r[0] == '-' && r[1] == '0');
        if (lz || rz) pad = (int)(ll > rl ? ll : rl);
    } else {
        /* letters index braceexpand's alphabet "A..Za..z" ({Z..a} has no punctuation) */
        a = isupper((unsigned char)l[0]) ? l[0] - 'A' : 26 + l[0] - 'a';
        b = isupper((unsigned char)r[0]) ? r[0] - 'A' : 26 + r[0] - 'a';
    }
    long long count = (a < b ? b - a : a - b) / step + 1;
    if (count > MAX_EXPANSION) return cm_error(CM_ERR_ARG, "brace range {%.*s} gives more than %d names", (int)n, e, MAX_EXPANSION);
    for (long long i = 0; i < count; i++) {
        long long v = a < b ? a + i * step : a - i * step;
        char buf[48];
        int k = ints ? snprintf(buf, sizeof buf, "%0*lld", pad, v)
                     : snprintf(buf, sizeof buf, "%c", (char)(v < 26 ? 'A' + v : 'a' + v - 26));
        cm_status st = cm_strlist_push(out, buf, (size_t)k);
        if (st) return st;
    }
    return 1;
}

/* "{a,b,...}" contents; returns 1 if it is a list (out filled), 0 if it has no top-level comma. */
static int parse_sequence(const char *s, size_t n, CmStrList *out) {
    size_t start = 0;
    int depth = 0, items = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') { i++; continue; }
        if (s[i] == '{') depth++;
        else if (s[i] == '}') depth--;
        else if (s[i] == ',' && depth == 0) {
            CmStrList part = {0};
            cm_status st = parse_pattern(s + start, i - start, &part);
            for (int k = 0; !st && k < part.n; k++) st = cm_strlist_push(out, part.v[k], strlen(part.v[k]));
            cm_strlist_free(&part);
            if (st) return st;
            if (out->n > MAX_EXPANSION) return cm_error(CM_ERR_ARG, "brace expansion gives more than %d names", MAX_EXPANSION);
            start = i + 1;
            items++;
        }
    }
    if (depth != 0) return cm_error(CM_ERR_ARG, "unbalanced braces in '%.*s'", (int)n, s);
    if (!items) return 0;
    CmStrList part = {0};
    cm_status st = parse_pattern(s + start, n - start, &part);
    for (int k = 0; !st && k < part.n; k++) st = cm_strlist_push(out, part.v[k], strlen(part.v[k]));
    cm_strlist_free(&part);
    return st ? st : 1;
}

static cm_status literal_item(const char *s, size_t n, CmStrList *out) {
    CmStrList it = {0};
    cm_status st = cm_strlist_push(&it, s, n);
    if (!st) st = product(out, &it);
    cm_strlist_free(&it);
    return st;
}

static cm_status parse_pattern(const char *s, size_t n, CmStrList *out) {
    cm_status st = cm_strlist_push(out, "", 0);
    if (st) return st;
    size_t start = 0, pos = 0;
    int depth = 0;
    while (pos < n) {
        if (s[pos] == '\\') { pos += 2; continue; }
        if (s[pos] == '{') {
            if (depth == 0 && pos > start) {
                if ((st = literal_item(s + start, pos - start, out))) return st;
                start = pos;
            }
            depth++;
        } else if (s[pos] == '}') {
            depth--;
            if (depth == 0) {
                const char *ex = s + start + 1;
                size_t el = pos - start - 1;
                CmStrList item = {0};
                int rc = parse_range(ex, el, &item);
                if (rc == 0) rc = parse_sequence(ex, el, &item);
                if (rc < 0) { cm_strlist_free(&item); return rc; }
                if (rc == 0) {
                    /* not a range or a list: "{" + expanded contents + "}" */
                    if ((st = literal_item("{", 1, out))) { cm_strlist_free(&item); return st; }
                    if ((st = parse_pattern(ex, el, &item))) { cm_strlist_free(&item); return st; }
                    st = product(out, &item);
                    if (!st) st = literal_item("}", 1, out);
                } else {
                    st = product(out, &item);
                }
                cm_strlist_free(&item);
                if (st) return st;
                start = pos + 1;
            }
        }
        pos++;
    }
    if (depth != 0) return cm_error(CM_ERR_ARG, "unbalanced braces in '%.*s'", (int)n, s);
    if (start < n) return literal_item(s + start, n - start, out);
    return CM_OK;
}

cm_status cm_brace_expand(const char *pattern, CmStrList *out) {
    CmStrList tmp = {0};
    cm_status st = parse_pattern(pattern, strlen(pattern), &tmp);
    for (int i = 0; !st && i < tmp.n; i++) {
        /* unescape: "\x" -> "x" */
        char *s = tmp.v[i], *d = s;
        for (char *p = s; *p; p++) {
            if (*p == '\\' && p[1] && p[1] != '\n') p++;
            *d++ = *p;
        }
        *d = 0;
        st = cm_strlist_push(out, s, (size_t)(d - s));
    }
    cm_strlist_free(&tmp);
    return st;
}

// ----------------------------------------------------------------------------
// shard lists

static int split_sources(const char *spec, CmStrList *parts) {
    const char *p = spec;
    for (;;) {
        const char *q = strstr(p, "::");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (cm_strlist_push(parts, p, n)) return -1;
        if (!q) return parts->n;
        p = q + 2;
    }
}

cm_status cm_shardlist_init(CmShardList *sl, const char *spec, const char *factors, const char *flag) {
    memset(sl, 0, sizeof *sl);
    if (!spec || !*spec) return cm_error(CM_ERR_ARG, "%s: no shard URLs given", flag);
    CmStrList src = {0}, fac = {0};
    cm_status st = CM_OK;
    if (split_sources(spec, &src) < 0) return cm_error(CM_ERR_OOM, "out of memory");
    bool weighted = factors && *factors;
    double *w = NULL;
    if (weighted) {
        if (split_sources(factors, &fac) < 0) { st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
        if (fac.n != src.n) {
            st = cm_error(CM_ERR_ARG, "--train-data-upsampling-factors has %d values but %s has %d '::' sources", fac.n, flag, src.n);
            goto done;
        }
        w = calloc((size_t)fac.n, sizeof *w);
        if (!w) { st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
        for (int i = 0; i < fac.n; i++) {
            char *end;
            errno = 0;
            w[i] = strtod(fac.v[i], &end);
            if (errno || end == fac.v[i] || *end || !isfinite(w[i]) || w[i] < 0) {
                st = cm_error(CM_ERR_ARG, "--train-data-upsampling-factors: '%s' is not a non-negative number", fac.v[i]);
                goto done;
            }
        }
    }
    sl->nsources = src.n;
    for (int k = 0; k < src.n; k++) {
        int before = sl->urls.n;
        if (!*src.v[k]) { st = cm_error(CM_ERR_ARG, "%s: empty source #%d in '%s'", flag, k + 1, spec); goto done; }
        if ((st = cm_brace_expand(src.v[k], &sl->urls))) { cm_error_prefix("%s", flag); goto done; }
        int *ns = realloc(sl->source, sizeof *ns * (size_t)sl->urls.n);
        double *nw = realloc(sl->weights, sizeof *nw * (size_t)sl->urls.n);
        if (ns) sl->source = ns;
        if (nw) sl->weights = nw;
        if (!ns || !nw) { st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
        for (int i = before; i < sl->urls.n; i++) { sl->source[i] = k; sl->weights[i] = weighted ? w[k] : 1.0; }
    }
    if (weighted) {
        sl->cum = malloc(sizeof *sl->cum * (size_t)sl->urls.n);
        if (!sl->cum) { st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
        double acc = 0;
        for (int i = 0; i < sl->urls.n; i++) { acc += sl->weights[i]; sl->cum[i] = acc; }
        if (!(acc > 0)) st = cm_error(CM_ERR_ARG, "--train-data-upsampling-factors: all weights are zero");
    } else {
        free(sl->weights);
        sl->weights = NULL;
    }
done:
    free(w);
    cm_strlist_free(&src);
    cm_strlist_free(&fac);
    if (st) cm_shardlist_free(sl);
    return st;
}

void cm_shardlist_free(CmShardList *sl) {
    cm_strlist_free(&sl->urls);
    free(sl->weights); free(sl->source); free(sl->cum);
    memset(sl, 0, sizeof *sl);
}

int cm_shardlist_draw(const CmShardList *sl, CmRng *rng) {
    int n = sl->urls.n;
    if (!sl->cum) return (int)cm_rng_below(rng, (uint64_t)n);
    /* random.choices: bisect_right(cum, random() * total, 0, n - 1) */
    double x = cm_rng_uniform_d(rng) * sl->cum[n - 1];
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x < sl->cum[mid]) hi = mid; else lo = mid + 1;
    }
    return lo;
}

void cm_shuffle_ints(int *idx, int n, CmRng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)cm_rng_below(rng, (uint64_t)i + 1);
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

// ----------------------------------------------------------------------------
// sizes

cm_status cm_epoch_size(int64_t n, int batch_size, int world_size, int workers, CmEpochSize *out) {
    if (n <= 0) return cm_error(CM_ERR_ARG, "--train-num-samples must be positive (got %lld)", (long long)n);
    if (batch_size <= 0) return cm_error(CM_ERR_ARG, "--batch-size must be positive (got %d)", batch_size);
    if (world_size <= 0) return cm_error(CM_ERR_ARG, "world size must be positive (got %d)", world_size);
    if (workers < 0) return cm_error(CM_ERR_ARG, "--workers must be >= 0 (got %d)", workers);
    int64_t gbs = (int64_t)batch_size * world_size;
    int64_t nb = (n + gbs - 1) / gbs;
    int64_t w = workers > 1 ? workers : 1;
    int64_t nwb = (nb + w - 1) / w;
    out->num_worker_batches = nwb;
    out->num_batches = nwb * w;
    out->num_samples = out->num_batches * gbs;
    return CM_OK;
}

static const char *basename_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

cm_status cm_dataset_size(const CmStrList *urls, int64_t *total) {
    *total = 0;
    char *dir = NULL;
    cJSON *sizes = NULL;
    int64_t len_total = -1;
    cm_status st = CM_OK;
    for (int i = 0; i < urls->n && !st; i++) {
        const char *u = urls->v[i], *b = basename_of(u);
        size_t dl = (size_t)(b - u);
        if (!dir || strlen(dir) != dl || memcmp(dir, u, dl)) {
            free(dir);
            cJSON_Delete(sizes);
            sizes = NULL;
            len_total = -1;
            dir = malloc(dl + 1);
            if (!dir) return cm_error(CM_ERR_OOM, "out of memory");
            memcpy(dir, u, dl);
            dir[dl] = 0;
            char path[4200];
            uint8_t *buf;
            size_t n;
            snprintf(path, sizeof path, "%ssizes.json", dir);
            if (cm_file_exists(path)) {
                if ((st = cm_read_file(path, 64u << 20, &buf, &n))) break;
                sizes = cJSON_ParseWithLength((const char *)buf, n);
                cm_free(buf);
                if (!cJSON_IsObject(sizes)) { st = cm_error(CM_ERR_FORMAT, "%s: not a JSON object", path); break; }
            } else {
                snprintf(path, sizeof path, "%s__len__", dir);
                if (!cm_file_exists(path)) {
                    st = cm_error(CM_ERR_ARG, "%s: no sizes.json or __len__ in '%s'; give --train-num-samples", u, *dir ? dir : ".");
                    break;
                }
                if ((st = cm_read_file(path, 4096, &buf, &n))) break;
                len_total = strtoll((const char *)buf, NULL, 10);
                cm_free(buf);
                *total += len_total;   /* __len__ counts the whole directory once */
            }
        }
        if (sizes) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(sizes, b);
            int iv;
            if (!v) st = cm_error(CM_ERR_FORMAT, "%ssizes.json has no entry for '%s'", dir, b);
            else if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) *total += (int64_t)v->valuedouble;
            else if (cJSON_IsString(v) && (iv = atoi(v->valuestring)) >= 0) *total += iv;
            else st = cm_error(CM_ERR_FORMAT, "%ssizes.json: bad entry for '%s'", dir, b);
        }
    }
    free(dir);
    cJSON_Delete(sizes);
    return st;
}
