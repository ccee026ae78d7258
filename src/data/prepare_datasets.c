/*
 * prepare_datasets.c — `clipmod prepare mmhs150k` and `clipmod prepare coco` (prepare.h),
 * on the pipeline of prepare.c.
 */
#include "data/prepare.h"
#include "data/prepare_internal.h"
#include "data/wds.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

static char *join_path(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s%s", a, b, c);
    else cm_error(CM_ERR_OOM, "out of memory");
    return s;
}

static char *fmt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_path(const char *fmt, ...) {
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int k = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (k < 0) { cm_error(CM_ERR_OOM, "out of memory"); return NULL; }
    return s;
}

static char *finish_meta(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) cm_error(CM_ERR_OOM, "out of memory");
    return s;
}

/* The seed's caption rule: re.sub(r"http[s]?://\S+", "", text), then trimmed. */
static char *strip_urls(const char *t) {
    size_t n = strlen(t), k = 0;
    char *o = malloc(n + 1);
    if (!o) { cm_error(CM_ERR_OOM, "out of memory"); return NULL; }
    for (size_t i = 0; i < n;) {
        size_t pre = !strncmp(t + i, "http://", 7) ? 7 : !strncmp(t + i, "https://", 8) ? 8 : 0;
        if (pre && i + pre < n && !isspace((unsigned char)t[i + pre])) {
            i += pre;
            while (i < n && !isspace((unsigned char)t[i])) i++;
            continue;
        }
        o[k++] = t[i++];
    }
    o[k] = 0;
    return cm_prep_trim(o);
}

// ----------------------------------------------------------------------------
// MMHS150K

/* MMHS150K_GT.json has ~150k entries: look them up through a sorted index, not cJSON's
   linear search. */
typedef struct { const char *key; const cJSON *v; } KeyNode;
static int cmp_keynode(const void *a, const void *b) { return strcmp(((const KeyNode *)a)->key, ((const KeyNode *)b)->key); }

cm_status cm_prepare_mmhs150k(const char *root, const char *split, const CmPrepareOpts *o, CmPrepareReport *rep) {
    if (!split || (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")))
        return cm_error(CM_ERR_ARG, "--split must be train, val or test (got '%s')", split ? split : "");
    Prep p;
    cm_status st = cm_prep_init(&p, o, rep, "mmhs150k", split);
    if (st) { free(p.items); return st; }
    uint8_t *gtb = NULL, *idb = NULL;
    size_t gtn, idn;
    cJSON *gt = NULL;
    KeyNode *index = NULL;
    char *gt_path = fmt_path("%s/MMHS150K_GT.json", root), *ids_full = fmt_path("%s/splits/%s_ids.txt", root, split);
    if (!gt_path || !ids_full) { st = CM_ERR_OOM; goto done; }
    if ((st = cm_read_file(gt_path, (size_t)4 << 30, &gtb, &gtn))) goto done;
    gt = cJSON_ParseWithLength((const char *)gtb, gtn);
    cm_free(gtb);
    gtb = NULL;
    if (!cJSON_IsObject(gt)) { st = cm_error(CM_ERR_FORMAT, "%s: not a JSON object (malformed MMHS150K_GT.json)", gt_path); goto done; }
    int ngt = cJSON_GetArraySize(gt), kk = 0;
    index = malloc(sizeof *index * (size_t)(ngt + 1));
    if (!index) { st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
    for (const cJSON *e = gt->child; e; e = e->next)
        if (e->string) index[kk++] = (KeyNode){e->string, e};
    ngt = kk;
    qsort(index, (size_t)ngt, sizeof *index, cmp_keynode);
    if ((st = cm_read_file(ids_full, (size_t)1 << 30, &idb, &idn))) goto done;
    char *save = NULL;
    int64_t line = 0;
    for (char *ln = strtok_r((char *)idb, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        cm_prep_trim(ln);
        if (!*ln) continue;
        if (o->limit && p.rows >= o->limit) break;
        p.rows++;
        if (!cm_prep_key_ok(ln)) { cm_prep_bad_row(&p, "%s line %lld: bad tweet id '%.40s'", ids_full, (long long)line, ln); continue; }
        KeyNode want = {ln, NULL}, *hit = bsearch(&want, index, (size_t)ngt, sizeof *index, cmp_keynode);
        const cJSON *e = hit ? hit->v : NULL;
        if (!cJSON_IsObject(e)) { cm_prep_bad_row(&p, "tweet %s: no entry in MMHS150K_GT.json", ln); continue; }
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(e, "labels");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "tweet_text");
        int nl = cJSON_IsArray(labels) ? cJSON_GetArraySize(labels) : 0, nonzero = 0;
        bool ok = nl >= 1;
        for (int i = 0; ok && i < nl; i++) {
            const cJSON *v = cJSON_GetArrayItem(labels, i);
            ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 5 && v->valuedouble == (double)(int)v->valuedouble;
            if (ok && v->valueint != 0) nonzero++;
        }
        if (!ok) { cm_prep_bad_row(&p, "tweet %s: \"labels\" is not a non-empty list of 0..5", ln); continue; }
        if (!cJSON_IsString(text)) { cm_prep_bad_row(&p, "tweet %s: no \"tweet_text\"", ln); continue; }
        int cls = nonzero >= 2 ? 6 : 0;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "label", cls);
        cJSON_AddStringToObject(m, "dataset", "mmhs150k");
        cJSON_AddItemToObject(m, "source_label", cJSON_Duplicate(labels, 1));
        cJSON_AddStringToObject(m, "id", ln);
        /* OCR text (written only when longer than 4 characters; a missing file means none) */
        char *ocr_full = fmt_path("%s/img_txt/%s.json", root, ln);
        if (ocr_full && cm_file_exists(ocr_full)) {
            uint8_t *ob; size_t on;
            if (!cm_read_file(ocr_full, 1 << 20, &ob, &on)) {
                cJSON *oj = cJSON_ParseWithLength((const char *)ob, on);
                const cJSON *it = cJSON_GetObjectItemCaseSensitive(oj, "img_text");
                if (cJSON_IsString(it)) cJSON_AddStringToObject(m, "img_text", it->valuestring);
                cJSON_Delete(oj);
                cm_free(ob);
            }
        }
        free(ocr_full);
        char *img = fmt_path("%s/img_resized/%s.jpg", root, ln);
        if ((st = cm_prep_add(&p, cm_prep_strdup(ln), strip_urls(text->valuestring), finish_meta(m), cls, img))) break;
    }
done:
    cJSON_Delete(gt);
    free(index);
    cm_free(gtb); cm_free(idb);
    free(gt_path); free(ids_full);
    return cm_prep_finish(&p, st);
}

// ----------------------------------------------------------------------------
// COCO

typedef struct { double id; int idx; } IdIdx;
static int cmp_ididx(const void *a, const void *b) {
    double x = ((const IdIdx *)a)->id, y = ((const IdIdx *)b)->id;
    return x < y ? -1 : x > y;
}

/* IMAGES/file_name, else the same stem with another image extension (e.g. a PNG conversion). */
static char *find_image(const char *dir, const char *file) {
    char *p = join_path(dir, file, "");
    if (!p || cm_file_exists(p)) return p;
    const char *dot = strrchr(file, '.');
    size_t stem = dot ? (size_t)(dot - file) : strlen(file);
    static const char *const exts[] = {".jpg", ".png", ".jpeg", ".webp", ".JPG", ".PNG"};
    for (int i = 0; i < 6; i++) {
        size_t n = strlen(dir) + stem + 8;
        char *q = malloc(n);
        if (!q) break;
        snprintf(q, n, "%s/%.*s%s", dir, (int)stem, file, exts[i]);
        if (cm_file_exists(q)) { free(p); return q; }
        free(q);
    }
    return p;   /* reported as missing */
}

cm_status cm_prepare_coco(const char *captions, const char *images_dir, const CmPrepareOpts *o, CmPrepareReport *rep) {
    Prep p;
    cm_status st = cm_prep_init(&p, o, rep, "coco", captions);
    if (st) { free(p.items); return st; }
    uint8_t *b = NULL;
    size_t n;
    cJSON *j = NULL;
    IdIdx *ids = NULL;
    int *order = NULL, *start = NULL, *img_of = NULL;
    if ((st = cm_read_file(captions, (size_t)4 << 30, &b, &n))) goto done;
    j = cJSON_ParseWithLength((const char *)b, n);
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images"), *anns = cJSON_GetObjectItemCaseSensitive(j, "annotations");
    if (!cJSON_IsArray(images) || !cJSON_IsArray(anns)) {
        st = cm_error(CM_ERR_FORMAT, "%s: not a COCO captions file (needs \"images\" and \"annotations\" lists)", captions);
        goto done;
    }
    int ni = cJSON_GetArraySize(images), na = cJSON_GetArraySize(anns);
    const cJSON **imv = calloc((size_t)ni + 1, sizeof *imv), **anv = calloc((size_t)na + 1, sizeof *anv);
    ids = calloc((size_t)ni + 1, sizeof *ids);
    order = calloc((size_t)na + 1, sizeof *order);
    start = calloc((size_t)ni + 2, sizeof *start);
    img_of = calloc((size_t)na + 1, sizeof *img_of);
    if (!imv || !anv || !ids || !order || !start || !img_of) { free(imv); free(anv); st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
    int k = 0;
    for (const cJSON *e = images->child; e; e = e->next) imv[k++] = e;
    k = 0;
    for (const cJSON *e = anns->child; e; e = e->next) anv[k++] = e;
    for (int i = 0; i < ni; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(imv[i], "id");
        ids[i].id = cJSON_IsNumber(id) ? id->valuedouble : -1;
        ids[i].idx = i;
    }
    qsort(ids, (size_t)ni, sizeof *ids, cmp_ididx);
    /* group captions by image (images in file order, captions in file order) */
    for (int a = 0; a < na; a++) {
        const cJSON *iid = cJSON_GetObjectItemCaseSensitive(anv[a], "image_id");
        IdIdx key = {cJSON_IsNumber(iid) ? iid->valuedouble : -2, 0};
        IdIdx *hit = cJSON_IsNumber(iid) ? bsearch(&key, ids, (size_t)ni, sizeof *ids, cmp_ididx) : NULL;
        img_of[a] = hit ? hit->idx : -1;
        if (hit) start[hit->idx + 1]++;
    }
    for (int i = 0; i < ni; i++) start[i + 1] += start[i];
    {
        int *fill = calloc((size_t)ni + 1, sizeof *fill);
        if (!fill) { free(imv); free(anv); st = cm_error(CM_ERR_OOM, "out of memory"); goto done; }
        for (int a = 0; a < na; a++)
            if (img_of[a] >= 0) order[start[img_of[a]] + fill[img_of[a]]++] = a;
        free(fill);
    }
    for (int a = 0; a < na; a++)
        if (img_of[a] < 0) { p.rows++; cm_prep_bad_row(&p, "%s: annotation #%d refers to no listed image", captions, a); }
    for (int i = 0; i < ni && !st; i++) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(imv[i], "file_name");
        const cJSON *iid = cJSON_GetObjectItemCaseSensitive(imv[i], "id");
        char *path = NULL;
        for (int q = start[i]; q < start[i + 1] && !st; q++) {
            if (o->limit && p.rows >= o->limit) break;
            p.rows++;
            const cJSON *an = anv[order[q]];
            const cJSON *cap = cJSON_GetObjectItemCaseSensitive(an, "caption"), *aid = cJSON_GetObjectItemCaseSensitive(an, "id");
            if (!cJSON_IsString(fn) || !cJSON_IsNumber(iid) || strchr(fn->valuestring, '/')) { cm_prep_bad_row(&p, "%s: image #%d has no usable id/file_name", captions, i); continue; }
            if (!cJSON_IsString(cap) || !cJSON_IsNumber(aid)) { cm_prep_bad_row(&p, "%s: annotation #%d has no caption/id", captions, order[q]); continue; }
            char *c = cm_prep_strdup(cap->valuestring);
            if (c && !*cm_prep_trim(c)) { free(c); cm_prep_bad_row(&p, "%s: annotation %.0f: empty caption", captions, aid->valuedouble); continue; }
            if (!path && !(path = find_image(images_dir, fn->valuestring))) { free(c); st = CM_ERR_OOM; break; }
            char key[64];
            snprintf(key, sizeof key, "%012.0f_%.0f", iid->valuedouble, aid->valuedouble);
            cJSON *m = cJSON_CreateObject();
            cJSON_AddNumberToObject(m, "label", 0);
            cJSON_AddStringToObject(m, "dataset", "coco");
            cJSON_AddNullToObject(m, "source_label");
            cJSON_AddNumberToObject(m, "id", aid->valuedouble);
            cJSON_AddNumberToObject(m, "image_id", iid->valuedouble);
            st = cm_prep_add(&p, cm_prep_strdup(key), c, finish_meta(m), 0, cm_prep_strdup(path));
        }
        free(path);
    }
    free(imv); free(anv);
done:
    cJSON_Delete(j);
    cm_free(b);
    free(ids); free(order); free(start); free(img_of);
    return cm_prep_finish(&p, st);
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 when p does not start one. */
static int utf8_len(const unsigned char *p) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int n; unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

char *cm_prep_utf8_repair(char *s, bool *changed) {
    *changed = false;
    size_t bad = 0, len = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; ) {
        int n = utf8_len(p);
        if (!n) { bad++; p++; len++; } else { p += n; len += (size_t)n; }
    }
    if (!bad) return s;
    char *out = malloc(len + 2 * bad + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; ) {
        int n = utf8_len(p);
        if (!n) { memcpy(o, "\xEF\xBF\xBD", 3); o += 3; p++; }
        else { memcpy(o, p, (size_t)n); o += n; p += n; }
    }
    *o = 0;
    *changed = true;
    return out;
}
