/*
 * prepare.c — see prepare.h: the CSV reader, the shared prepare pipeline (items queued in
 * chunks, images loaded + letterboxed + JPEG-encoded in parallel, samples written in input
 * order to per-class rolling shard writers, report.json), and Fakeddit. MMHS150K and COCO are
 * in prepare_datasets.c.
 */
#include "data/prepare.h"
#include "data/prepare_internal.h"
#include "data/image.h"
#include "data/wds.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#define CHUNK 256
#define MAX_LOGGED 20

// ----------------------------------------------------------------------------
// CSV (the dialect of Python's csv module: doubled quotes, quoted delimiters and newlines,
// text after a closing quote kept, blank lines skipped)

void cm_csv_init(CmCsv *c, const char *data, size_t len, char delim) {
    memset(c, 0, sizeof *c);
    c->p = data;
    c->end = data + len;
    c->delim = delim;
    c->line = 1;
    /* UTF-8 byte order mark */
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) c->p += 3;
}

static int csv_putc(CmCsv *c, char ch) {
    if (c->buf_len + 1 >= c->buf_cap) {
        size_t nc = c->buf_cap ? c->buf_cap * 2 : 1024;
        char *nb = realloc(c->buf, nc);
        if (!nb) return -1;
        c->buf = nb; c->buf_cap = nc;
    }
    c->buf[c->buf_len++] = ch;
    return 0;
}

static int csv_end_field(CmCsv *c) {
    if (c->nfields == c->cap) {
        int nc = c->cap ? c->cap * 2 : 32;
        char **nf = realloc(c->fields, sizeof *nf * (size_t)nc);
        if (!nf) return -1;
        c->fields = nf; c->cap = nc;
    }
    char *f = malloc(c->buf_len + 1);
    if (!f) return -1;
    memcpy(f, c->buf, c->buf_len);
    f[c->buf_len] = 0;
    c->fields[c->nfields++] = f;
    c->buf_len = 0;
    return 0;
}

static void csv_clear(CmCsv *c) {
    for (int i = 0; i < c->nfields; i++) free(c->fields[i]);
    c->nfields = 0;
    c->buf_len = 0;
}

int cm_csv_next(CmCsv *c) {
    if (!c->pos_line) c->pos_line = 1;
    for (;;) {
        csv_clear(c);
        if (c->p >= c->end) return 0;
        c->line = c->pos_line;
        bool quoted = false, any = false;
        while (c->p < c->end) {
            char ch = *c->p++;
            if (quoted) {
                if (ch == '"') {
                    if (c->p < c->end && *c->p == '"') { c->p++; if (csv_putc(c, '"')) return CM_ERR_OOM; }
                    else quoted = false;
                } else {
                    if (ch == '\n') c->pos_line++;
                    if (csv_putc(c, ch)) return CM_ERR_OOM;
                }
                continue;
            }
            if (ch == '"' && c->buf_len == 0) { quoted = true; any = true; continue; }
            if (ch == c->delim) { if (csv_end_field(c)) return CM_ERR_OOM; any = true; continue; }
            if (ch == '\r' && c->p < c->end && *c->p == '\n') continue;
            if (ch == '\n') { c->pos_line++; break; }
            if (csv_putc(c, ch)) return CM_ERR_OOM;
            any = true;
        }
        if (quoted) return cm_error(CM_ERR_FORMAT, "line %lld: a quoted field is never closed", (long long)c->line);
        if (!any && c->buf_len == 0) continue;   /* blank line */
        if (csv_end_field(c)) return CM_ERR_OOM;
        return 1;
    }
}

void cm_csv_free(CmCsv *c) {
    csv_clear(c);
    free(c->fields);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

// ----------------------------------------------------------------------------
// the pipeline

char *cm_prep_strdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) cm_error(CM_ERR_OOM, "out of memory");
    return d;
}

char *cm_prep_trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && isspace((unsigned char)s[a])) a++;
    while (n > a && isspace((unsigned char)s[n - 1])) n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
    return s;
}

bool cm_prep_key_ok(const char *k) {
    size_t n = strlen(k);
    if (n == 0 || n > 200) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-') return false;
    return true;
}

int cm_prep_default_shard_size(const char *hint) {
    return hint && strstr(hint, "train") ? 10000 : 1000;
}

/* An earlier prepare's output: only report.json, class_<digit>/ (and nothing else). *odd = the
   first other name. */
static bool looks_prepared(const char *dir, char *odd, size_t n) {
    DIR *d = opendir(dir);
    if (!d) { snprintf(odd, n, "(unreadable: %s)", strerror(errno)); return false; }
    struct dirent *e;
    bool ok = true;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, "report.json")) continue;
        if (!strncmp(nm, "class_", 6) && nm[6] >= '0' && nm[6] <= '9' && !nm[7]) continue;
        snprintf(odd, n, "%s", nm);
        ok = false;
        break;
    }
    closedir(d);
    return ok;
}

static bool dir_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d))) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

/* Check --out and open this run's temporary sibling folder. */
static cm_status out_begin(Prep *p) {
    const char *out = p->o.out_dir;
    size_t L = strlen(out);
    while (L > 1 && out[L - 1] == '/') L--;
    if (L >= sizeof p->out_final) return cm_error(CM_ERR_ARG, "--out %s: path too long", out);
    memcpy(p->out_final, out, L);
    p->out_final[L] = 0;
    const char *base = strrchr(p->out_final, '/');
    base = base ? base + 1 : p->out_final;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return cm_error(CM_ERR_ARG, "--out %s: name the output folder itself (not '.', '..' or '/')", out);
    struct stat sb;
    if (stat(p->out_final, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return cm_error(CM_ERR_ARG, "--out %s exists and is not a folder", out);
        if (!dir_empty(p->out_final)) {
            char odd[300] = "";
            if (!p->o.overwrite)
                return cm_error(CM_ERR_ARG, "--out %s is not empty; give a new folder, or --overwrite to replace an earlier prepare's output", out);
            if (!looks_prepared(p->out_final, odd, sizeof odd))
                return cm_error(CM_ERR_ARG, "--out %s holds '%s', which clipmod prepare does not write; not replacing it (--overwrite only replaces "
                                "report.json and class_<id>/ folders)", out, odd);
        }
    } else if (errno != ENOENT) return cm_error(CM_ERR_IO, "--out %s: %s", out, strerror(errno));
    /* leftovers of killed runs of this command (their PID no longer exists) */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", p->out_final);
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) parent[1] = 0;
    else *slash = 0;
    cm_remove_stale_tmp(parent, base);
    snprintf(p->out_tmp, sizeof p->out_tmp, "%s.tmp.%ld", p->out_final, (long)getpid());
    cm_status st = cm_remove_tree(p->out_tmp);   /* a stale one of this very PID */
    if (!st) st = cm_mkdir_p(p->out_tmp);
    if (st) { p->out_tmp[0] = 0; return st; }
    p->o.out_dir = p->out_tmp;
    return CM_OK;
}

/* Move the finished temp folder to --out (replacing an empty or, with --overwrite, old one). */
static cm_status out_commit(Prep *p) {
    const char *fin = p->out_final, *tmp = p->out_tmp;
    struct stat sb;
    if (stat(fin, &sb) != 0) {
        if (rename(tmp, fin) != 0) return cm_error(CM_ERR_IO, "--out %s: cannot rename %s to it: %s", fin, tmp, strerror(errno));
        return CM_OK;
    }
    /* re-check: another process may have written there meanwhile */
    char odd[300] = "";
    if (!dir_empty(fin) && (!p->o.overwrite || !looks_prepared(fin, odd, sizeof odd)))
        return cm_error(CM_ERR_ARG, "--out %s changed while preparing (it now holds '%s'); not replacing it", fin, odd);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, fin, RENAME_EXCHANGE) == 0) {
        cm_status st = cm_remove_tree(tmp);   /* now the old output */
        if (st) cm_warn("prepare: the old output is left in %s: %s", tmp, cm_last_error());
        return CM_OK;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return cm_error(CM_ERR_IO, "--out %s: cannot swap in %s: %s", fin, tmp, strerror(errno));
    /* a file system without RENAME_EXCHANGE: two renames (a short window without --out) */
    char old[4300];
    snprintf(old, sizeof old, "%s.old.tmp.%ld", fin, (long)getpid());
    if (rename(fin, old) != 0) return cm_error(CM_ERR_IO, "--out %s: cannot move it aside: %s", fin, strerror(errno));
    if (rename(tmp, fin) != 0) {
        cm_status st = cm_error(CM_ERR_IO, "--out %s: cannot rename %s to it: %s (the old output is back)", fin, tmp, strerror(errno));
        rename(old, fin);
        return st;
    }
    if (cm_remove_tree(old)) cm_warn("prepare: the old output is left in %s: %s", old, cm_last_error());
    return CM_OK;
}

cm_status cm_prep_init(Prep *p, const CmPrepareOpts *o, CmPrepareReport *rep, const char *dataset, const char *split_hint) {
    memset(p, 0, sizeof *p);
    memset(rep, 0, sizeof *rep);
    p->o = *o;
    if (!p->o.out_dir || !*p->o.out_dir) return cm_error(CM_ERR_ARG, "--out: no output folder given");
    if (p->o.shard_size < 0) return cm_error(CM_ERR_ARG, "--shard-size must be positive (got %d)", p->o.shard_size);
    if (!p->o.shard_size) p->o.shard_size = cm_prep_default_shard_size(split_hint);
    if (!p->o.image_size) p->o.image_size = 256;
    if (!p->o.jpeg_quality) p->o.jpeg_quality = 95;
    p->rep = rep;
    p->dataset = dataset;
    p->items = calloc(CHUNK, sizeof *p->items);
    if (!p->items) return cm_error(CM_ERR_OOM, "out of memory");
    p->t0 = p->last_progress = cm_now();
    return out_begin(p);
}

static void item_free(PrepItem *it) {
    free(it->key); free(it->caption); free(it->meta); free(it->image_path); free(it->jpg);
    memset(it, 0, sizeof *it);
}

static void process_item(const Prep *p, PrepItem *it) {
    if (!cm_file_exists(it->image_path)) {
        it->status = 1;
        snprintf(it->err, sizeof it->err, "%s: image not found", it->image_path);
        return;
    }
    CmImage im = {0}, lb = {0};
    cm_status st = cm_image_load(it->image_path, 0, &im);
    if (!st) st = cm_letterbox(&im, p->o.image_size, &lb);
    if (!st) st = cm_jpeg_encode(&lb, p->o.jpeg_quality, &it->jpg, &it->jpg_len);
    if (st) { it->status = 2; snprintf(it->err, sizeof it->err, "%s", cm_last_error()); }
    cm_image_free(&im);
    cm_image_free(&lb);
}

void cm_prep_bad_row(Prep *p, const char *fmt, ...) {
    p->rep->bad_rows++;
    if (p->logged++ < MAX_LOGGED) {
        char buf[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        cm_warn("prepare %s: bad row: %s (skipped)", p->dataset, buf);
    }
}

static cm_status flush(Prep *p) {
    int n = p->n;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++)
        if (p->items[i].dup_of < 0) process_item(p, &p->items[i]);
    cm_status st = CM_OK;
    for (int i = 0; i < n; i++) {
        PrepItem *it = &p->items[i];
        if (it->dup_of >= 0) {   /* same image as an earlier item (COCO: one sample per caption) */
            const PrepItem *src = &p->items[it->dup_of];
            it->status = src->status;
            memcpy(it->err, src->err, sizeof it->err);
            if (src->status == 0) {
                it->jpg = malloc(src->jpg_len);
                if (!it->jpg) { st = cm_error(CM_ERR_OOM, "out of memory"); it->status = 2; }
                else { memcpy(it->jpg, src->jpg, src->jpg_len); it->jpg_len = src->jpg_len; }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        PrepItem *it = &p->items[i];
        if (!st && it->status == 0) {
            if (!p->w[it->cls]) {
                char dir[4200];
                snprintf(dir, sizeof dir, "%s/class_%d", p->o.out_dir, it->cls);
                st = cm_shard_writer_open(dir, p->o.shard_size, &p->w[it->cls]);
            }
            if (!st) {
                CmWdsOut f[3] = {{"jpg", it->jpg, it->jpg_len}, {"txt", it->caption, strlen(it->caption)},
                                 {"json", it->meta, strlen(it->meta)}};
                st = cm_shard_writer_write(p->w[it->cls], it->key, f, 3);
            }
            if (!st) { p->rep->written++; p->rep->per_class[it->cls]++; }
        } else if (!st) {
            if (it->status == 1) p->rep->missing_images++; else p->rep->bad_images++;
            if (p->logged++ < MAX_LOGGED) cm_warn("prepare %s: %s: %s (skipped)", p->dataset, it->key, it->err);
            else if (p->logged == MAX_LOGGED + 1) cm_warn("prepare %s: further problems are counted in report.json only", p->dataset);
        }
        item_free(it);
    }
    p->n = 0;
    double now = cm_now();
    if (!p->o.quiet && now - p->last_progress > 10) {
        p->last_progress = now;
        cm_info("prepare %s: %lld rows, %lld written, %lld missing images, %lld bad rows (%.0f rows/s)", p->dataset,
                (long long)p->rows, (long long)p->rep->written, (long long)p->rep->missing_images,
                (long long)p->rep->bad_rows, p->rows / (now - p->t0));
    }
    return st;
}

cm_status cm_prep_add(Prep *p, char *key, char *caption, char *meta, int cls, char *image_path) {
    PrepItem *it = &p->items[p->n++];
    it->key = key; it->caption = caption; it->meta = meta; it->image_path = image_path; it->cls = cls;
    it->dup_of = -1;
    if (!key || !caption || !meta || !image_path) return cm_error(CM_ERR_OOM, "out of memory");
    bool fixed = false;
    char *c2 = cm_prep_utf8_repair(caption, &fixed);
    if (!c2) return cm_error(CM_ERR_OOM, "out of memory");
    if (fixed) { free(caption); it->caption = c2; p->rep->repaired_text++; }
    if (p->n > 1) {
        const PrepItem *prev = &p->items[p->n - 2];
        if (!strcmp(prev->image_path, image_path)) it->dup_of = prev->dup_of >= 0 ? prev->dup_of : p->n - 2;
    }
    if (cls < 0 || cls > 6) return cm_error(CM_ERR_ARG, "internal: class %d", cls);
    return p->n == CHUNK ? flush(p) : CM_OK;
}

cm_status cm_prep_finish(Prep *p, cm_status st) {
    if (!st) st = flush(p);
    for (int i = 0; i < p->n; i++) item_free(&p->items[i]);
    free(p->items);
    p->items = NULL;
    for (int c = 0; c < 7; c++) {
        cm_status s2 = cm_shard_writer_close(p->w[c]);
        if (!st) st = s2;
        p->w[c] = NULL;
    }
    if (st) {
        if (p->out_tmp[0] && cm_remove_tree(p->out_tmp)) cm_warn("prepare: could not remove %s", p->out_tmp);
        return st;
    }
    char js[1024], path[4200];
    const CmPrepareReport *r = p->rep;
    int k = snprintf(js, sizeof js,
                     "{\"dataset\": \"%s\", \"written\": %lld, \"missing_images\": %lld, \"bad_rows\": %lld, \"bad_images\": %lld, "
                     "\"repaired_text\": %lld, \"per_class\": {",
                     p->dataset, (long long)r->written, (long long)r->missing_images, (long long)r->bad_rows,
                     (long long)r->bad_images, (long long)r->repaired_text);
    for (int c = 0; c < 7; c++) k += snprintf(js + k, sizeof js - (size_t)k, "%s\"%d\": %lld", c ? ", " : "", c, (long long)r->per_class[c]);
    k += snprintf(js + k, sizeof js - (size_t)k, "}, \"shard_size\": %d, \"image_size\": %d}\n", p->o.shard_size, p->o.image_size);
    snprintf(path, sizeof path, "%s/report.json", p->o.out_dir);
    if (!st) st = cm_write_file_atomic(path, js, (size_t)k);
    if (!st) st = out_commit(p);
    if (st && p->out_tmp[0] && cm_remove_tree(p->out_tmp)) cm_warn("prepare: could not remove %s", p->out_tmp);
    return st;
}

// ----------------------------------------------------------------------------
// Fakeddit

static int col(const CmCsv *c, const char *name) {
    for (int i = 0; i < c->nfields; i++) if (!strcmp(c->fields[i], name)) return i;
    return -1;
}

/* "3", "3.0" -> 3; anything else -> -1 */
static int parse_small_int(const char *s) {
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end || !(d >= 0 && d <= 1000) || d != (double)(int)d) return -1;   /* range before the cast */
    return (int)d;
}

static char *meta_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) cm_error(CM_ERR_OOM, "out of memory");
    return s;
}

cm_status cm_prepare_fakeddit(const char *tsv, const char *images_dir, const CmPrepareOpts *o, CmPrepareReport *rep) {
    Prep p;
    cm_status st = cm_prep_init(&p, o, rep, "fakeddit", tsv);
    if (st) { free(p.items); return st; }
    uint8_t *data;
    size_t len;
    if ((st = cm_read_file(tsv, (size_t)16 << 30, &data, &len))) return cm_prep_finish(&p, st);
    CmCsv c;
    cm_csv_init(&c, (const char *)data, len, '\t');
    int rc = cm_csv_next(&c);
    int c_id = -1, c_clean = -1, c_title = -1, c_six = -1, c_has = -1, nh = 0;
    if (rc == 1) {
        c_id = col(&c, "id"); c_clean = col(&c, "clean_title"); c_title = col(&c, "title");
        c_six = col(&c, "6_way_label"); c_has = col(&c, "hasImage");
        nh = c.nfields;
    }
    if (rc != 1 || c_id < 0 || c_six < 0 || (c_clean < 0 && c_title < 0)) {
        st = cm_error(CM_ERR_FORMAT, "%s: not a Fakeddit TSV (needs a header with id, 6_way_label and clean_title or title)", tsv);
        goto done;
    }
    for (;;) {
        if (o->limit && p.rows >= o->limit) break;
        rc = cm_csv_next(&c);
        if (rc == 0) break;
        if (rc < 0) {
            if (rc == CM_ERR_OOM) { st = cm_error(CM_ERR_OOM, "%s: out of memory", tsv); break; }
            cm_prep_bad_row(&p, "%s: %s", tsv, cm_last_error());
            break;   /* an unclosed quote swallows the rest of the file */
        }
        p.rows++;
        if (c.nfields != nh) { cm_prep_bad_row(&p, "%s line %lld: %d fields, header has %d", tsv, (long long)c.line, c.nfields, nh); continue; }
        const char *id = c.fields[c_id];
        int six = parse_small_int(c.fields[c_six]);
        int cls = cm_fakeddit_class(six);
        if (!cm_prep_key_ok(id)) { cm_prep_bad_row(&p, "%s line %lld: bad id '%.40s'", tsv, (long long)c.line, id); continue; }
        if (cls < 0) { cm_prep_bad_row(&p, "%s line %lld (id %s): bad 6_way_label '%.20s'", tsv, (long long)c.line, id, c.fields[c_six]); continue; }
        char *caption = cm_prep_strdup(c_clean >= 0 ? c.fields[c_clean] : "");
        if (caption && !*cm_prep_trim(caption) && c_title >= 0) { free(caption); caption = cm_prep_strdup(c.fields[c_title]); if (caption) cm_prep_trim(caption); }
        if (caption && !*caption) { free(caption); cm_prep_bad_row(&p, "%s line %lld (id %s): empty title", tsv, (long long)c.line, id); continue; }
        if (c_has >= 0 && !strcmp(c.fields[c_has], "False")) {
            free(caption);
            rep->missing_images++;
            continue;
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "label", cls);
        cJSON_AddStringToObject(m, "dataset", "fakeddit");
        cJSON_AddNumberToObject(m, "source_label", six);
        cJSON_AddStringToObject(m, "id", id);
        size_t pl = strlen(images_dir) + strlen(id) + 8;
        char *path = malloc(pl);
        if (path) snprintf(path, pl, "%s/%s.jpg", images_dir, id);
        if ((st = cm_prep_add(&p, cm_prep_strdup(id), caption, meta_json(m), cls, path))) break;
    }
done:
    cm_csv_free(&c);
    cm_free(data);
    return cm_prep_finish(&p, st);
}
