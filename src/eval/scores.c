/*
 * scores.c — per-sample scores: collect from validation, write / read JSON lines. See scores.h.
 */
#include "eval/scores.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cm_scores_init(CmScores *s, int n_classes) {
    memset(s, 0, sizeof *s);
    s->k = n_classes;
}

void cm_scores_free(CmScores *s) {
    for (int64_t i = 0; i < s->n; i++) free(s->key[i]);
    for (int i = 0; i < s->n_urls; i++) free(s->urls[i]);
    free(s->label); free(s->prob); free(s->key); free(s->url); free(s->urls);
    free(s->last_raw); free(s->last_abs);
    memset(s, 0, sizeof *s);
}

static int url_index(CmScores *s, const char *url) {
    /* consecutive samples share their shard: look at the last one first */
    if (s->n > 0 && !strcmp(s->urls[s->url[s->n - 1]], url)) return s->url[s->n - 1];
    for (int i = s->n_urls - 1; i >= 0; i--)
        if (!strcmp(s->urls[i], url)) return i;
    if (s->n_urls == s->cap_urls) {
        int nc = s->cap_urls ? s->cap_urls * 2 : 16;
        char **nu = realloc(s->urls, sizeof *nu * (size_t)nc);
        if (!nu) return -1;
        s->urls = nu; s->cap_urls = nc;
    }
    if (!(s->urls[s->n_urls] = strdup(url))) return -1;
    return s->n_urls++;
}

cm_status cm_scores_add(CmScores *s, const char *key, const char *url, int label, const float *probs) {
    if (s->k < 1 || s->k > CM_EVAL_MAX_CLASSES) return cm_error(CM_ERR_ARG, "scores: %d classes (1..%d)", s->k, CM_EVAL_MAX_CLASSES);
    if (label < 0 || label >= s->k)
        return cm_error(CM_ERR_ARG, "scores: label %d of sample %s is outside 0..%d", label, key ? key : "?", s->k - 1);
    if (s->n == s->cap) {
        int64_t nc = s->cap ? s->cap * 2 : 1024;
        int32_t *nl = realloc(s->label, sizeof *nl * (size_t)nc);
        if (nl) s->label = nl;
        float *np = realloc(s->prob, sizeof *np * (size_t)nc * s->k);
        if (np) s->prob = np;
        char **nk = realloc(s->key, sizeof *nk * (size_t)nc);
        if (nk) s->key = nk;
        int32_t *nu = realloc(s->url, sizeof *nu * (size_t)nc);
        if (nu) s->url = nu;
        if (!nl || !np || !nk || !nu) return cm_error(CM_ERR_OOM, "scores: out of memory at %lld samples", (long long)s->n);
        s->cap = nc;
    }
    int u = url_index(s, url ? url : "");
    char *kd = strdup(key ? key : "");
    if (u < 0 || !kd) { free(kd); return cm_error(CM_ERR_OOM, "scores: out of memory"); }
    s->label[s->n] = label;
    memcpy(s->prob + (size_t)s->n * s->k, probs, sizeof(float) * (size_t)s->k);
    s->key[s->n] = kd;
    s->url[s->n] = u;
    s->n++;
    return CM_OK;
}

int cm_scores_pred(const CmScores *s, int64_t i) {
    int top = 0;
    cm_topk_first(cm_scores_probs(s, i), s->k, 1, &top);
    return top;
}

cm_status cm_scores_add_abs(CmScores *s, const char *key, const char *url, int label, const float *probs) {
    if (url && *url && (!s->last_raw || strcmp(s->last_raw, url))) {
        free(s->last_raw); free(s->last_abs);
        s->last_raw = strdup(url);
        s->last_abs = realpath(url, NULL);   /* NULL: not a local file (kept as given) */
        if (!s->last_raw) return cm_error(CM_ERR_OOM, "scores: out of memory");
    }
    if (url && s->last_abs && s->last_raw && !strcmp(s->last_raw, url)) url = s->last_abs;
    return cm_scores_add(s, key, url, label, probs);
}

/* JSON string (UTF-8 passed through; quotes, backslash and control characters escaped) */
static void put_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

cm_status cm_scores_write(const CmScores *s, const char *path) {
    CmAtomicFile af;
    cm_status st = cm_atomic_open(&af, path);
    if (st) return st;
    for (int64_t i = 0; i < s->n; i++) {
        fputs("{\"key\":", af.f);
        put_json_str(af.f, s->key[i]);
        fputs(",\"url\":", af.f);
        put_json_str(af.f, cm_scores_url(s, i));
        fprintf(af.f, ",\"label\":%d,\"pred\":%d,\"probs\":[", (int)s->label[i], cm_scores_pred(s, i));
        const float *p = cm_scores_probs(s, i);
        for (int c = 0; c < s->k; c++) fprintf(af.f, "%s%.9g", c ? "," : "", (double)p[c]);
        fputs("]}\n", af.f);
    }
    if (ferror(af.f)) { cm_atomic_abort(&af); return cm_error(CM_ERR_IO, "%s: write failed", path); }
    return cm_atomic_commit(&af);
}

cm_status cm_scores_read(const char *path, CmScores *out) {
    cm_scores_init(out, 0);
    FILE *f = fopen(path, "rb");
    if (!f) return cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    cm_status st = CM_OK;
    float p[CM_EVAL_MAX_CLASSES];
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = 0;
        if (len == 0) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!j || !cJSON_IsObject(j)) { cJSON_Delete(j); st = cm_error(CM_ERR_FORMAT, "%s:%lld: not a JSON object", path, (long long)lineno); break; }
        const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "label"), *pr = cJSON_GetObjectItemCaseSensitive(j, "probs");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key"), *url = cJSON_GetObjectItemCaseSensitive(j, "url");
        int k = cJSON_IsArray(pr) ? cJSON_GetArraySize(pr) : 0;
        if (!cJSON_IsNumber(lab) || lab->valuedouble != (int)lab->valuedouble) st = cm_error(CM_ERR_FORMAT, "%s:%lld: \"label\" must be an integer", path, (long long)lineno);
        else if (k < 2 || k > CM_EVAL_MAX_CLASSES) st = cm_error(CM_ERR_FORMAT, "%s:%lld: \"probs\" must be an array of 2..%d numbers", path, (long long)lineno, CM_EVAL_MAX_CLASSES);
        else if (out->k && k != out->k) st = cm_error(CM_ERR_FORMAT, "%s:%lld: %d probabilities, earlier lines have %d", path, (long long)lineno, k, out->k);
        else if ((key && !cJSON_IsString(key)) || (url && !cJSON_IsString(url))) st = cm_error(CM_ERR_FORMAT, "%s:%lld: \"key\" and \"url\" must be strings", path, (long long)lineno);
        for (int c = 0; !st && c < k; c++) {
            const cJSON *v = cJSON_GetArrayItem(pr, c);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
                st = cm_error(CM_ERR_FORMAT, "%s:%lld: probability %d is not a number in [0, 1]", path, (long long)lineno, c);
            else p[c] = (float)v->valuedouble;
        }
        if (!st) {
            out->k = k;
            st = cm_scores_add(out, key ? key->valuestring : "", url ? url->valuestring : "", (int)lab->valuedouble, p);
            if (st) cm_error_prefix("%s:%lld", path, (long long)lineno);
        }
        cJSON_Delete(j);
        if (st) break;
    }
    if (!st && ferror(f)) st = cm_error(CM_ERR_IO, "%s: read error", path);
    if (!st && out->n == 0) st = cm_error(CM_ERR_FORMAT, "%s: no scores in the file", path);
    free(line);
    fclose(f);
    if (st) cm_scores_free(out);
    return st;
}

cm_status cm_scores_confusion(const CmScores *s, CmConfusion *out) {
    cm_confusion_init(out, s->k);
    for (int64_t i = 0; i < s->n; i++) {
        cm_status st = cm_confusion_add(out, cm_scores_probs(s, i), s->label[i]);
        if (st) return st;
    }
    return CM_OK;
}
