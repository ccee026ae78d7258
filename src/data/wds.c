/*
 * wds.c — WebDataset samples: grouping tar members by key (webdataset tariterators.py,
 * open_clip's group_by_keys_nothrow), labels from metadata JSON (DESIGN §4.2), and the sample
 * and rolling shard writers. URLs, sampling and epoch sizing are in wds_urls.c.
 */
#include "data/wds.h"
#include "data/tar.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

struct CmWdsReader {
    CmTarReader *tar;
    CmWdsSample *cur;        /* sample being assembled */
    bool load_data;
    bool ended;
    cm_status pending;       /* fatal error to report after the current sample is handed out */
    char *pending_msg;
};

// ----------------------------------------------------------------------------
// names

bool cm_split_key(const char *path, size_t *key_len) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strchr(base, '.');
    if (!dot) return false;
    if (dot > base) { *key_len = (size_t)(dot - path); return true; }
    /* basename starts with '.': the regex can still match with a shorter directory prefix when
       the last directory component has no dot (e.g. "dir/.jpg" -> key "dir/") */
    if (!slash) return false;
    const char *p = slash;
    while (p > path && p[-1] != '/') { p--; if (*p == '.') return false; }
    *key_len = (size_t)(dot - path);
    return true;
}

bool cm_wds_meta_name(const char *path) {
    size_t n = strlen(path);
    if (!strchr(path, '/') && n >= 4 && !strncmp(path, "__", 2) && !strcmp(path + n - 2, "__")) return true;
    /* re.match(r"__[^/]*__($|/)", path) */
    if (strncmp(path, "__", 2)) return false;
    const char *end = strchr(path + 2, '/');
    size_t seg = end ? (size_t)(end - path) : n;
    return seg >= 4 && path[seg - 1] == '_' && path[seg - 2] == '_';
}

// ----------------------------------------------------------------------------
// reader

cm_status cm_wds_open(const char *path, bool load_data, uint64_t max_member, CmWdsReader **out) {
    *out = NULL;
    CmWdsReader *r = calloc(1, sizeof *r);
    if (!r) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    cm_status st = cm_tar_open(path, load_data, max_member, &r->tar);
    if (st) { free(r); return st; }
    r->load_data = load_data;
    *out = r;
    return CM_OK;
}

const char *cm_wds_path(const CmWdsReader *r) { return cm_tar_path(r->tar); }

void cm_wds_sample_free(CmWdsSample *s) {
    if (!s) return;
    for (int i = 0; i < s->nfields; i++) { free(s->fields[i].ext); free(s->fields[i].data); }
    free(s->key); free(s->error); free(s->url);
    free(s);
}

void cm_wds_close(CmWdsReader *r) {
    if (!r) return;
    cm_wds_sample_free(r->cur);
    cm_tar_close(r->tar);
    free(r->pending_msg);
    free(r);
}

const CmWdsField *cm_wds_field(const CmWdsSample *s, const char *ext) {
    for (int i = 0; i < s->nfields; i++)
        if (!strcmp(s->fields[i].ext, ext)) return &s->fields[i];
    return NULL;
}

const CmWdsField *cm_wds_image(const CmWdsSample *s) {
    static const char *const exts[] = {"jpg", "png", "jpeg", "webp"};
    for (int i = 0; i < 4; i++) {
        const CmWdsField *f = cm_wds_field(s, exts[i]);
        if (f) return f;
    }
    return NULL;
}

static CmWdsSample *new_sample(CmWdsReader *r, const char *name, size_t kl, uint64_t off) {
    CmWdsSample *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->key = malloc(kl + 1);
    if (!s->key) { free(s); return NULL; }
    memcpy(s->key, name, kl);
    s->key[kl] = 0;
    s->url = strdup(cm_tar_path(r->tar));
    if (!s->url) { free(s->key); free(s); return NULL; }
    s->offset = off;
    return s;
}

static void set_error(CmWdsSample *s, const char *msg) {
    if (s->error) return;   /* keep the first reason */
    s->error = strdup(msg);
}

int cm_wds_next(CmWdsReader *r, CmWdsSample **out) {
    *out = NULL;
    for (;;) {
        if (r->pending) {
            /* the shard is damaged: hand out the sample in progress (flagged), then the error */
            if (r->cur) { *out = r->cur; r->cur = NULL; return 1; }
            cm_error(r->pending, "%s", r->pending_msg ? r->pending_msg : "shard damaged");
            return r->pending;
        }
        if (r->ended) return 0;
        CmTarEntry e;
        int rc = cm_tar_next(r->tar, &e);
        if (rc == CM_TAR_END) {
            r->ended = true;
            *out = r->cur;
            r->cur = NULL;
            return *out ? 1 : 0;
        }
        bool fatal = rc < 0 && cm_tar_fatal(r->tar);
        if (fatal) {
            r->pending = (cm_status)rc;
            r->pending_msg = strdup(cm_last_error());
            if (!r->pending_msg) return cm_error(CM_ERR_OOM, "out of memory");
        }
        size_t kl;
        if (!e.name || cm_wds_meta_name(e.name) || !cm_split_key(e.name, &kl)) {
            /* damage before a member name was known: the sample in progress may be incomplete */
            if (fatal && r->cur) set_error(r->cur, r->pending_msg);
            if (rc < 0 && !fatal && !e.name) return rc;
            continue;
        }
        /* a member (possibly damaged: over the size limit or cut short) */
        const char *ext = e.name + kl + 1;
        bool same = r->cur && strlen(r->cur->key) == kl && !memcmp(r->cur->key, e.name, kl);
        if (same) {
            for (int i = 0; i < r->cur->nfields; i++) {
                const char *a = r->cur->fields[i].ext, *b = ext;
                while (*a && *b && *a == (char)tolower((unsigned char)*b)) { a++; b++; }
                if (!*a && !*b) { same = false; break; }   /* repeated extension: new sample */
            }
        }
        CmWdsSample *done = NULL;
        if (!same) {
            done = r->cur;
            r->cur = new_sample(r, e.name, kl, e.offset);
            if (!r->cur) { cm_wds_sample_free(done); return cm_error(CM_ERR_OOM, "%s: out of memory", cm_tar_path(r->tar)); }
        }
        CmWdsSample *s = r->cur;
        if (rc < 0) {
            set_error(s, fatal ? r->pending_msg : cm_last_error());
        } else if (s->nfields >= CM_WDS_MAX_FIELDS) {
            char msg[256];
            snprintf(msg, sizeof msg, "more than %d fields", CM_WDS_MAX_FIELDS);
            set_error(s, msg);
        } else {
            CmWdsField *f = &s->fields[s->nfields];
            f->ext = strdup(ext);
            if (!f->ext) { cm_wds_sample_free(done); return cm_error(CM_ERR_OOM, "out of memory"); }
            for (char *c = f->ext; *c; c++) *c = (char)tolower((unsigned char)*c);
            f->size = (size_t)e.size;
            if (r->load_data) {
                f->data = malloc(f->size + 1);
                if (!f->data) { free(f->ext); cm_wds_sample_free(done); return cm_error(CM_ERR_OOM, "%s: out of memory", e.name); }
                memcpy(f->data, e.data, f->size);
                f->data[f->size] = 0;
            }
            s->nfields++;
        }
        if (done) { *out = done; return 1; }
    }
}

// ----------------------------------------------------------------------------
// labels (DESIGN §4.2)

const char *const CM_CLASS_NAMES[CM_NUM_CLASSES] = {
    "True", "Satire/Parody", "Misleading Content", "Imposter Content", "False Connection", "Manipulated Content", "Hate"};

int cm_fakeddit_class(int six_way) {
    static const int map[6] = {0, 1, 4, 3, 5, 2};
    return six_way >= 0 && six_way <= 5 ? map[six_way] : -1;
}

/* An integer from a JSON number or a decimal string (img2dataset stores extra columns as
   strings or numbers). */
static bool json_int(const cJSON *v, int *out) {
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != (double)(int)d) return false;
        *out = (int)d;
        return true;
    }
    if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {
        char *end;
        double d = strtod(v->valuestring, &end);
        if (*end || d != (double)(int)d) return false;
        *out = (int)d;
        return true;
    }
    return false;
}

cm_status cm_sample_label(const CmWdsSample *s, int *label, bool *no_json) {
    const CmWdsField *js = cm_wds_field(s, "json");
    *label = 0;
    *no_json = js == NULL;
    return js ? cm_label_from_json((const char *)js->data, js->size, label) : CM_OK;
}

cm_status cm_label_from_json(const char *json, size_t len, int *label) {
    *label = -1;
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!j) return cm_error(CM_ERR_FORMAT, "malformed JSON metadata");
    if (!cJSON_IsObject(j)) { cJSON_Delete(j); return cm_error(CM_ERR_FORMAT, "metadata JSON is not an object"); }
    cm_status st = CM_OK;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(j, "dataset");
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(j, "label");
    const char *dsn = cJSON_IsString(ds) ? ds->valuestring : NULL;
    int v;
    if (dsn && !strcmp(dsn, "fakeedit")) {
        /* seed project's Fakeddit shards: 6_way_label in Fakeddit's own ids */
        const cJSON *six = cJSON_GetObjectItemCaseSensitive(j, "6_way_label");
        if (!json_int(six, &v) || cm_fakeddit_class(v) < 0) st = cm_error(CM_ERR_FORMAT, "unknown label: bad or missing 6_way_label");
        else *label = cm_fakeddit_class(v);
    } else if (!dsn && cJSON_GetObjectItemCaseSensitive(j, "tweet_id")) {
        /* seed project's MMHS150K shards: "label" is an annotator class 0..5 */
        if (!lab) *label = 0;
        else if (!json_int(lab, &v) || v < 0 || v > 5) st = cm_error(CM_ERR_FORMAT, "unknown label: MMHS label not in 0..5");
        else *label = v == 0 ? 0 : 6;
    } else if (lab) {
        if (!json_int(lab, &v) || v < 0 || v >= CM_NUM_CLASSES) st = cm_error(CM_ERR_FORMAT, "unknown label: \"label\" not in 0..6");
        else *label = v;
    } else {
        *label = 0;   /* seed rule: anything else (MSCOCO) -> 0 */
    }
    cJSON_Delete(j);
    return st;
}

// ----------------------------------------------------------------------------
// writing

static int cmp_out(const void *a, const void *b) {
    return strcmp(((const CmWdsOut *)a)->ext, ((const CmWdsOut *)b)->ext);
}

cm_status cm_wds_write_sample(CmTarWriter *w, const char *key, const CmWdsOut *fields, int n) {
    if (!key || !*key || strchr(key, '.'))
        return cm_error(CM_ERR_ARG, "sample key '%s': keys must be non-empty and contain no '.'", key ? key : "");
    if (n <= 0 || n > CM_WDS_MAX_FIELDS) return cm_error(CM_ERR_ARG, "sample '%s': %d fields", key, n);
    CmWdsOut sorted[CM_WDS_MAX_FIELDS];
    memcpy(sorted, fields, sizeof *fields * (size_t)n);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_out);
    for (int i = 0; i < n; i++) {
        if (i && !strcmp(sorted[i].ext, sorted[i - 1].ext))
            return cm_error(CM_ERR_ARG, "sample '%s': extension '%s' given twice", key, sorted[i].ext);
        char name[4096];
        int k = snprintf(name, sizeof name, "%s.%s", key, sorted[i].ext);
        if (k <= 0 || (size_t)k >= sizeof name) return cm_error(CM_ERR_ARG, "sample '%s': name too long", key);
        cm_status st = cm_tar_writer_add(w, name, sorted[i].data, sorted[i].size);
        if (st) return st;
    }
    return CM_OK;
}

struct CmShardWriter {
    char *dir;
    int shard_size;
    int shard_no;
    int in_shard;
    int64_t total;
    CmTarWriter *cur;
    int *counts; int ncounts;
};

cm_status cm_shard_writer_open(const char *dir, int shard_size, CmShardWriter **out) {
    *out = NULL;
    if (shard_size <= 0) return cm_error(CM_ERR_ARG, "shard size must be positive (got %d)", shard_size);
    cm_status st = cm_mkdir_p(dir);
    if (st) return st;
    CmShardWriter *sw = calloc(1, sizeof *sw);
    if (!sw || !(sw->dir = strdup(dir))) { free(sw); return cm_error(CM_ERR_OOM, "%s: out of memory", dir); }
    sw->shard_size = shard_size;
    sw->shard_no = -1;
    *out = sw;
    return CM_OK;
}

int64_t cm_shard_writer_count(const CmShardWriter *sw) { return sw->total; }

static cm_status finish_shard(CmShardWriter *sw) {
    if (!sw->cur) return CM_OK;
    cm_status st = cm_tar_writer_close(sw->cur);
    sw->cur = NULL;
    return st;
}

cm_status cm_shard_writer_write(CmShardWriter *sw, const char *key, const CmWdsOut *fields, int n) {
    cm_status st;
    if (!sw->cur || sw->in_shard >= sw->shard_size) {
        if ((st = finish_shard(sw))) return st;
        sw->shard_no++;
        int *nc = realloc(sw->counts, sizeof *nc * (size_t)(sw->shard_no + 1));
        if (!nc) return cm_error(CM_ERR_OOM, "%s: out of memory", sw->dir);
        sw->counts = nc;
        sw->counts[sw->shard_no] = 0;
        sw->ncounts = sw->shard_no + 1;
        sw->in_shard = 0;
        char path[4200];
        snprintf(path, sizeof path, "%s/%05d.tar", sw->dir, sw->shard_no);
        if ((st = cm_tar_writer_open(path, 0, &sw->cur))) return st;
    }
    if ((st = cm_wds_write_sample(sw->cur, key, fields, n))) return st;
    sw->in_shard++;
    sw->counts[sw->shard_no]++;
    sw->total++;
    return CM_OK;
}

cm_status cm_shard_writer_close(CmShardWriter *sw) {
    if (!sw) return CM_OK;
    cm_status st = finish_shard(sw);
    if (!st) {
        size_t cap = 64 + (size_t)sw->ncounts * 32, len = 0;
        char *js = malloc(cap);
        if (!js) st = cm_error(CM_ERR_OOM, "%s: out of memory", sw->dir);
        else {
            len += (size_t)snprintf(js + len, cap - len, "{");
            for (int i = 0; i < sw->ncounts; i++)
                len += (size_t)snprintf(js + len, cap - len, "%s\"%05d.tar\": %d", i ? ", " : "", i, sw->counts[i]);
            len += (size_t)snprintf(js + len, cap - len, "}\n");
            char path[4200];
            snprintf(path, sizeof path, "%s/sizes.json", sw->dir);
            st = cm_write_file_atomic(path, js, len);
            free(js);
        }
    }
    free(sw->dir); free(sw->counts);
    free(sw);
    return st;
}
