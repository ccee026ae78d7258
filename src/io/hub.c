/*
 * hub.c — `--pretrained` resolution and Hugging Face hub downloads (see hub.h).
 *
 * Cache layout (as huggingface_hub writes it):
 *   <cache>/models--<org>--<name>/blobs/<etag>                 the file (etag = its sha256 for LFS files)
 *   <cache>/models--<org>--<name>/snapshots/<commit>/<file>    symlink -> ../../blobs/<etag>
 *   <cache>/models--<org>--<name>/refs/<revision>              the commit hash (no newline)
 * Download: HEAD <endpoint>/<repo>/resolve/<rev>/<file> (redirects followed) for X-Repo-Commit,
 * X-Linked-Etag / ETag, X-Linked-Size / Content-Length; then GET into blobs/<etag>.incomplete, resuming
 * with "Range: bytes=N-" from what is already there, retrying cut-off transfers while they make
 * progress; then size + SHA-256 check (a 40-hex ETag, a non-LFS file, is checked as a git blob SHA-1),
 * fsync, rename to blobs/<etag>, symlink placed by rename, refs written atomically. A failed checksum
 * deletes the partial file and places nothing.
 */
#include "io/hub.h"

#include <ctype.h>
#include <stdarg.h>
#include <strings.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const CmPretrainedTag k_tags[] = {
    {"ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", false},
};

const CmPretrainedTag *cm_pretrained_lookup(const char *model, const char *tag) {
    for (size_t i = 0; i < sizeof k_tags / sizeof k_tags[0]; i++)
        if (!strcmp(k_tags[i].tag, tag) && (!model || !strcmp(model, k_tags[i].model))) return &k_tags[i];
    return NULL;
}

CmHubOptions cm_hub_default_options(void) {
    CmHubOptions o = {.allow_download = true, .progress = -1};
    const char *off = getenv("HF_HUB_OFFLINE");
    if (off && *off && strcmp(off, "0") && strcasecmp(off, "false")) o.allow_download = false;
    return o;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    if (!s) cm_error(CM_ERR_OOM, "out of memory");
    return s;
}

char *cm_hub_cache_dir(const CmHubOptions *o) {
    const char *e;
    if (o && o->cache_dir && *o->cache_dir) return xprintf("%s", o->cache_dir);
    if ((e = getenv("HF_HUB_CACHE")) && *e) return xprintf("%s", e);
    if ((e = getenv("HF_HOME")) && *e) return xprintf("%s/hub", e);
    if ((e = getenv("XDG_CACHE_HOME")) && *e) return xprintf("%s/huggingface/hub", e);
    e = getenv("HOME");
    return xprintf("%s/.cache/huggingface/hub", e && *e ? e : ".");
}

static char *repo_dir(const char *cache, const char *repo) {   /* "org/name" -> models--org--name */
    size_t cl = strlen(cache), rl = strlen(repo);
    char *d = malloc(cl + 9 + 2 * rl + 1);
    if (!d) { cm_error(CM_ERR_OOM, "out of memory"); return NULL; }
    char *p = d + sprintf(d, "%s/models--", cache);
    for (const char *r = repo; *r; r++) {
        if (*r == '/') { *p++ = '-'; *p++ = '-'; }
        else *p++ = *r;
    }
    *p = 0;
    return d;
}

static bool is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++) if (!isxdigit((unsigned char)s[i])) return false;
    return true;
}

static bool regular_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool valid_rel(const char *s) {   /* no "..", no absolute path, no empty component */
    if (!*s || *s == '/' || strstr(s, "..") || strstr(s, "//") || s[strlen(s) - 1] == '/') return false;
    return true;
}

/* commit hash for revision (itself when it is one, else refs/<rev>), or NULL */
static char *read_ref(const char *dir, const char *rev) {
    if (is_hex(rev, 40)) return xprintf("%s", rev);
    char *p = xprintf("%s/refs/%s", dir, rev);
    uint8_t *b = NULL;
    size_t n = 0;
    char *out = NULL;
    if (p && cm_read_file(p, 4096, &b, &n) == CM_OK) {
        while (n && isspace(b[n - 1])) b[--n] = 0;
        if (is_hex((char *)b, 40)) out = xprintf("%s", (char *)b);
        cm_free(b);
    }
    free(p);
    cm_clear_error();
    return out;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

char *cm_hub_cached_path(const char *cache, const char *repo, const char *file, const char *revision) {
    const char *rev = revision ? revision : "main";
    char *dir = repo_dir(cache, repo), *out = NULL;
    if (!dir || !valid_rel(file)) { free(dir); return NULL; }
    char *commit = read_ref(dir, rev);
    if (commit) {
        out = xprintf("%s/snapshots/%s/%s", dir, commit, file);
        if (out && !regular_file(out)) { free(out); out = NULL; }
    }
    if (!out && !is_hex(rev, 40)) {   /* any snapshot holding the file, in name order */
        char *sd = xprintf("%s/snapshots", dir);
        DIR *d = sd ? opendir(sd) : NULL;
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            if (n == cap) { cap = cap ? 2 * cap : 16; char **nn = realloc(names, cap * sizeof *nn); if (!nn) break; names = nn; }
            if (!(names[n] = strdup(de->d_name))) break;
            n++;
        }
        if (d) closedir(d);
        if (n) qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n && !out; i++) {
            out = xprintf("%s/%s/%s", sd, names[i], file);
            if (out && !regular_file(out)) { free(out); out = NULL; }
        }
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        free(sd);
    }
    free(commit);
    free(dir);
    cm_clear_error();
    return out;
}

// ----------------------------------------------------------------------------
// HTTP

typedef struct {
    long status;               /* of the response being received */
    long first_status;
    int n_responses;
    char commit[160], linked_etag[160], etag[160];
    long long linked_size, content_length;
    FILE *out;                 /* GET: body sink */
    long long offset;          /* bytes already in the file before this request */
    long long written;
    bool restarted;
    /* progress */
    const char *label;
    long long total;
    int progress;
    bool tty;
    double t0, last_print;
    long long last_bytes;
    int last_decile;
} Xfer;

static void trim_value(const char *v, size_t n, char *out, size_t cap) {
    while (n && isspace((unsigned char)*v)) { v++; n--; }
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (n >= 2 && v[0] == 'W' && v[1] == '/') { v += 2; n -= 2; }
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') { v++; n -= 2; }
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    Xfer *x = ud;
    size_t n = size * nitems;
    if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
        const char *sp = memchr(buf, ' ', n);
        x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        if (!x->n_responses++) x->first_status = x->status;
        x->content_length = -1;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n;
    size_t kl = (size_t)(colon - buf), vl = n - kl - 1;
    char val[160];
    trim_value(colon + 1, vl, val, sizeof val);
#define HDR(name) (kl == strlen(name) && !strncasecmp(buf, name, kl))
    if (HDR("X-Repo-Commit") && !x->commit[0]) snprintf(x->commit, sizeof x->commit, "%s", val);
    else if (HDR("X-Linked-Etag") && !x->linked_etag[0]) snprintf(x->linked_etag, sizeof x->linked_etag, "%s", val);
    else if (HDR("ETag") && x->n_responses == 1) snprintf(x->etag, sizeof x->etag, "%s", val);
    else if (HDR("X-Linked-Size") && x->linked_size < 0) x->linked_size = strtoll(val, NULL, 10);
    else if (HDR("Content-Length")) x->content_length = strtoll(val, NULL, 10);
#undef HDR
    return n;
}

static void fmt_bytes(double b, char *out, size_t cap) {
    if (b >= 1e9) snprintf(out, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(out, cap, "%.1f MB", b / 1e6);
    else snprintf(out, cap, "%.0f kB", b / 1e3);
}

static void show_progress(Xfer *x, bool final) {
    if (!x->progress) return;
    double now = cm_now();
    long long have = x->offset + x->written;
    if (x->tty) {
        if (!final && now - x->last_print < 0.2) return;
        double rate = (x->written) / (now - x->t0 > 1e-3 ? now - x->t0 : 1e-3);
        char h[32], t[32], r[32];
        fmt_bytes((double)have, h, sizeof h);
        fmt_bytes((double)x->total, t, sizeof t);
        fmt_bytes(rate, r, sizeof r);
        long eta = rate > 0 && x->total > have ? (long)((double)(x->total - have) / rate) : 0;
        fprintf(stderr, "\r%s: %s / %s (%3.0f%%) %s/s ETA %ld:%02ld   ", x->label, h, t,
                x->total > 0 ? 100.0 * (double)have / (double)x->total : 0.0, r, eta / 60, eta % 60);
        if (final) fputc('\n', stderr);
    } else {
        int dec = x->total > 0 ? (int)(10 * have / x->total) : 0;
        if (dec == x->last_decile && (final || now - x->last_print < 30)) return;
        x->last_decile = dec;
        fprintf(stderr, "%s: %lld / %lld bytes (%d%%)\n", x->label, have, x->total,
                x->total > 0 ? (int)(100 * have / x->total) : 0);
    }
    x->last_print = now;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud) {
    Xfer *x = ud;
    size_t n = size * nmemb;
    if (x->status != 200 && x->status != 206) return n;      /* error page or redirect body: dropped */
    if (x->status == 200 && x->offset > 0 && !x->restarted) {  /* server ignored Range: start over */
        if (fflush(x->out) || ftruncate(fileno(x->out), 0) || fseek(x->out, 0, SEEK_SET)) return 0;
        x->offset = 0;
        x->restarted = true;
    }
    if (fwrite(buf, 1, n, x->out) != n) return 0;
    x->written += (long long)n;
    show_progress(x, false);
    return n;
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static CURL *curl_setup(const char *url, Xfer *x, const CmHubOptions *o, struct curl_slist **hdrs) {
    pthread_once(&g_curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c) { cm_error(CM_ERR_NET, "%s: curl init failed", url); return NULL; }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "clipmod/" CLIPMOD_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, o->stall_timeout_s > 0 ? o->stall_timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    const char *tok = getenv("HF_TOKEN");
    *hdrs = NULL;
    if (tok && *tok) {
        char *h = xprintf("Authorization: Bearer %s", tok);
        if (h) { *hdrs = curl_slist_append(NULL, h); free(h); }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

static cm_status http_status_error(const char *url, long status) {
    if (status == 404) return cm_error(CM_ERR_NET, "%s: not found (HTTP 404)", url);
    if (status == 401 || status == 403)
        return cm_error(CM_ERR_NET, "%s: access denied (HTTP %ld; gated or private repo? set HF_TOKEN)", url, status);
    return cm_error(CM_ERR_NET, "%s: HTTP %ld", url, status);
}

/* HEAD: commit, etag, size */
static cm_status http_head(const char *url, const CmHubOptions *o, Xfer *x) {
    struct curl_slist *h;
    CURL *c = curl_setup(url, x, o, &h);
    if (!c) return cm_last_status();
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) return cm_error(CM_ERR_NET, "%s: %s", url, curl_easy_strerror(rc));
    if (code != 200) return http_status_error(url, code);
    return CM_OK;
}

// ----------------------------------------------------------------------------
// verification and placement

/* sha256 (64 hex) or git blob sha1 (40 hex: sha1("blob <size>\0" + data)) of a file */
static cm_status file_digest(const char *path, bool git_sha1, char *out, long long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    fstat(fileno(f), &st);
    *size = (long long)st.st_size;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, git_sha1 ? EVP_sha1() : EVP_sha256(), NULL);
    if (git_sha1) {
        char pre[64];
        int n = snprintf(pre, sizeof pre, "blob %lld", *size);
        EVP_DigestUpdate(ctx, pre, (size_t)n + 1);
    }
    static _Thread_local unsigned char buf[1 << 20];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    bool err = ferror(f);
    fclose(f);
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_DigestFinal_ex(ctx, md, &ml);
    EVP_MD_CTX_free(ctx);
    if (err) return cm_error(CM_ERR_IO, "%s: read error", path);
    for (unsigned i = 0; i < ml; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[2 * ml] = 0;
    return CM_OK;
}

static cm_status place_symlink(const char *target, const char *link) {
    char *tmp = xprintf("%s.tmp.%ld", link, (long)getpid());
    if (!tmp) return cm_last_status();
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
        cm_status st = cm_error(CM_ERR_IO, "%s: cannot place symlink: %s", link, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    return CM_OK;
}

/* GET url into part (appending from its current size), retrying while progress is made. */
static cm_status fetch_to(const char *url, const char *part, long long total, const char *label,
                          const CmHubOptions *o) {
    int max_fail = o->max_retries > 0 ? o->max_retries : 3, fails = 0;
    for (int attempt = 0; attempt < 1000; attempt++) {
        FILE *f = fopen(part, "ab");
        if (!f) return cm_error(CM_ERR_IO, "%s: cannot open for writing: %s", part, strerror(errno));
        long long have = ftell(f);
        if (total >= 0 && have > total) {   /* longer than the file: start over */
            fclose(f);
            if (!(f = fopen(part, "wb"))) return cm_error(CM_ERR_IO, "%s: %s", part, strerror(errno));
            have = 0;
        }
        if (total >= 0 && have == total) { fclose(f); return CM_OK; }
        Xfer x = {.out = f, .offset = have, .label = label, .total = total, .linked_size = -1, .t0 = cm_now(),
                  .last_decile = -1};
        x.progress = o->progress < 0 ? 1 : o->progress;
        x.tty = isatty(2);
        struct curl_slist *h;
        CURL *c = curl_setup(url, &x, o, &h);
        if (!c) { fclose(f); return cm_last_status(); }
        char range[64];
        if (have > 0) {
            snprintf(range, sizeof range, "%lld-", have);
            curl_easy_setopt(c, CURLOPT_RANGE, range);
            if (x.progress) fprintf(stderr, "%s: resuming at byte %lld\n", label, have);
        }
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        bool wr_err = fflush(f) != 0;
        long long now_have = x.offset + x.written;
        fclose(f);
        if (wr_err) return cm_error(CM_ERR_IO, "%s: write failed: %s", part, strerror(errno));
        if (code == 416 && have > 0 && total < 0) return CM_OK;                 /* nothing more to get */
        if (code != 200 && code != 206 && code != 0) return http_status_error(url, code);
        if (rc == CURLE_WRITE_ERROR) return cm_error(CM_ERR_IO, "%s: write failed", part);
        if (rc == CURLE_OK && (total < 0 || now_have == total)) { show_progress(&x, true); return CM_OK; }
        /* cut off (or stalled, or a short body): retry from where we are while that makes progress */
        if (now_have > have) fails = 0;
        else fails++;
        if (x.progress) fprintf(stderr, "%s%s: transfer interrupted at byte %lld of %lld (%s)\n", x.tty ? "\n" : "",
                                label, now_have, total, rc == CURLE_OK ? "short body" : curl_easy_strerror(rc));
        if (fails >= max_fail)
            return cm_error(CM_ERR_NET, "%s: download cut off at byte %lld of %lld (%d attempts in a row without "
                            "progress: %s); the partial file %s is kept, rerun to resume", url, now_have, total,
                            fails, rc == CURLE_OK ? "short body" : curl_easy_strerror(rc), part);
        usleep(fails ? 200000u * (unsigned)fails : 0);
    }
    return cm_error(CM_ERR_NET, "%s: download did not complete after 1000 attempts", url);
}

cm_status cm_hub_download(const char *repo, const char *file, const CmHubOptions *opt, char **out_path) {
    *out_path = NULL;
    CmHubOptions o = opt ? *opt : cm_hub_default_options();
    const char *rev = o.revision ? o.revision : "main";
    if (!valid_rel(repo) || !strchr(repo, '/') || !valid_rel(file) || !valid_rel(rev))
        return cm_error(CM_ERR_ARG, "hub: bad repo '%s', file '%s' or revision '%s'", repo, file, rev);
    char *cache = cm_hub_cache_dir(&o), *dir = NULL, *url = NULL, *blob = NULL, *part = NULL, *snap = NULL;
    char *link = NULL, *target = NULL, *p;
    cm_status st = CM_OK;
    if (!cache || !(dir = repo_dir(cache, repo))) { st = cm_last_status(); goto out; }
    if ((p = cm_hub_cached_path(cache, repo, file, rev))) { *out_path = p; goto out; }
    if (!o.allow_download) {
        st = cm_error(CM_ERR_IO, "%s/%s is not in the cache (%s) and downloads are disabled (offline)", repo, file, dir);
        goto out;
    }
    const char *ep = o.endpoint ? o.endpoint : getenv("HF_ENDPOINT");
    if (!ep || !*ep) ep = "https://huggingface.co";
    size_t el = strlen(ep);
    while (el && ep[el - 1] == '/') el--;
    if (!(url = xprintf("%.*s/%s/resolve/%s/%s", (int)el, ep, repo, rev, file))) { st = cm_last_status(); goto out; }
    Xfer meta = {.linked_size = -1, .content_length = -1};
    if ((st = http_head(url, &o, &meta))) goto out;
    const char *etag = meta.linked_etag[0] ? meta.linked_etag : meta.etag;
    long long size = meta.linked_size >= 0 ? meta.linked_size : meta.content_length;
    char want[65];
    bool git = false;
    if (is_hex(etag, 64)) memcpy(want, etag, 65);
    else if (is_hex(etag, 40)) { memcpy(want, etag, 41); git = true; }
    else {
        st = cm_error(CM_ERR_NET, "%s: the server sent no SHA-256 ETag (got '%s'); refusing an unverifiable download",
                      url, etag);
        goto out;
    }
    for (char *q = want; *q; q++) *q = (char)tolower((unsigned char)*q);
    const char *commit = meta.commit[0] && is_hex(meta.commit, 40) ? meta.commit : rev;
    if (!(blob = xprintf("%s/blobs/%s", dir, want)) || !(part = xprintf("%s.incomplete", blob)) ||
        !(snap = xprintf("%s/snapshots/%s", dir, commit)) || !(link = xprintf("%s/%s", snap, file))) {
        st = cm_last_status();
        goto out;
    }
    char *bd = xprintf("%s/blobs", dir);
    st = bd ? cm_mkdir_p(bd) : cm_last_status();
    free(bd);
    if (st) goto out;
    if (!regular_file(blob)) {
        char label[300];
        snprintf(label, sizeof label, "%s/%s", repo, file);
        if ((st = fetch_to(url, part, size, label, &o))) goto out;
        char got[65];
        long long got_size = -1;
        if ((st = file_digest(part, git, got, &got_size))) goto out;
        if ((size >= 0 && got_size != size) || strcmp(got, want)) {
            unlink(part);
            st = cm_error(CM_ERR_NET, "%s: verification failed: got %lld bytes with %s %s, expected %lld bytes with %s; "
                          "the download was deleted and nothing was placed", url, got_size, git ? "git-sha1" : "sha256",
                          got, size, want);
            goto out;
        }
        FILE *f = fopen(part, "rb+");
        if (f) { fsync(fileno(f)); fclose(f); }
        if (rename(part, blob) != 0) { st = cm_error(CM_ERR_IO, "%s: rename failed: %s", blob, strerror(errno)); goto out; }
    }
    /* snapshots/<commit>/<file> -> ../../blobs/<sha> (one more ../ per folder inside file) */
    char *ldir = xprintf("%s", link);
    if (!ldir) { st = cm_last_status(); goto out; }
    *strrchr(ldir, '/') = 0;
    st = cm_mkdir_p(ldir);
    free(ldir);
    if (st) goto out;
    size_t depth = 2;
    for (const char *q = file; *q; q++) depth += *q == '/';
    size_t tl = depth * 3 + strlen("blobs/") + 64 + 1;
    if (!(target = malloc(tl))) { st = cm_error(CM_ERR_OOM, "out of memory"); goto out; }
    target[0] = 0;
    for (size_t i = 0; i < depth; i++) strcat(target, "../");
    strcat(target, "blobs/");
    strcat(target, want);
    if ((st = place_symlink(target, link))) goto out;
    if (strcmp(commit, rev) && !is_hex(rev, 40)) {
        char *refs = xprintf("%s/refs", dir), *ref = xprintf("%s/refs/%s", dir, rev);
        if (refs && ref) {
            char *rd = xprintf("%s", ref);
            if (rd) { *strrchr(rd, '/') = 0; st = cm_mkdir_p(rd); free(rd); }
            if (!st) st = cm_write_file_atomic(ref, commit, strlen(commit));
        } else st = cm_last_status();
        free(refs);
        free(ref);
        if (st) goto out;
    }
    *out_path = link;
    link = NULL;
out:
    free(cache); free(dir); free(url); free(blob); free(part); free(snap); free(link); free(target);
    return st;
}

cm_status cm_pretrained_resolve(const char *model_name, const char *pretrained, const CmHubOptions *opt,
                                char **out_path) {
    *out_path = NULL;
    if (!pretrained || !*pretrained) return cm_error(CM_ERR_ARG, "--pretrained: empty value");
    if (regular_file(pretrained)) return (*out_path = xprintf("%s", pretrained)) ? CM_OK : cm_last_status();
    const CmPretrainedTag *t = cm_pretrained_lookup(model_name, pretrained);
    if (!t) {
        if (strchr(pretrained, '/') || strchr(pretrained, '.'))
            return cm_error(CM_ERR_IO, "--pretrained %s: no such file", pretrained);
        return cm_error(CM_ERR_ARG, "--pretrained %s: unknown pretrained tag for model %s (known: %s for %s), and no "
                        "such file", pretrained, model_name ? model_name : "(any)", k_tags[0].tag, k_tags[0].model);
    }
    CmHubOptions o = opt ? *opt : cm_hub_default_options();
    char *cache = cm_hub_cache_dir(&o);
    if (!cache) return cm_last_status();
    const char *files[2] = {CM_HF_SAFE_WEIGHTS_NAME, CM_HF_WEIGHTS_NAME};
    for (int i = 0; i < 2; i++)
        if ((*out_path = cm_hub_cached_path(cache, t->repo, files[i], o.revision))) { free(cache); return CM_OK; }
    if (!o.allow_download) {
        cm_status st = cm_error(CM_ERR_IO, "--pretrained %s: neither %s nor %s of %s is in the cache %s, and downloads "
                                "are disabled", pretrained, files[0], files[1], t->repo, cache);
        free(cache);
        return st;
    }
    free(cache);
    char first[600];
    cm_status st = cm_hub_download(t->repo, files[0], &o, out_path);
    if (!st) return CM_OK;
    snprintf(first, sizeof first, "%s", cm_last_error());
    st = cm_hub_download(t->repo, files[1], &o, out_path);
    if (!st) return CM_OK;
    char second[600];
    snprintf(second, sizeof second, "%s", cm_last_error());
    return cm_error(st, "--pretrained %s: %s; then %s", pretrained, first, second);
}
