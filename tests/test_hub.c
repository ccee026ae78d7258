/*
 * test_hub.c — --pretrained resolution and hub downloads against a loopback HTTP server started here
 * (a thread on 127.0.0.1, ephemeral port; never any external network). The server speaks enough of
 * the hub's protocol: HEAD/GET /<repo>/resolve/main/<file> with X-Repo-Commit and an ETag (or a 302 to
 * /cdn/<file> with X-Linked-Etag / X-Linked-Size, as the real hub does for LFS files), Range requests
 * (206), and connections cut after a chosen byte.
 * Cases: full download + cache layout (blobs/<sha>, snapshots/<commit>/<file> symlink, refs/main);
 * a second resolve served from the cache; safetensors -> .bin fallback; HF_ENDPOINT; resume after a
 * cut-off (automatic retry, and across calls from the .incomplete file); a cut-off that never
 * completes -> clear error; checksum mismatch -> clear error and nothing placed; offline; git-sha1 ETag.
 */
#include "testlib.h"
#include "io/hub.h"
#include "io/tensorfile.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#define REPO "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
#define COMMIT "0123456789abcdef0123456789abcdef01234567"

typedef struct {
    int lfd, port;
    pthread_t th;
    volatile int stop;
    const uint8_t *body;
    size_t len;
    char etag[80];             /* advertised */
    const char *file;          /* the only file served; others 404 */
    long cut_at;               /* close the connection after this absolute byte (-1: never) */
    int cut_times;             /* how many GETs are cut (-1: all) */
    bool redirect;             /* resolve -> 302 /cdn/<file> with X-Linked-* headers */
    int n_get, n_head, n_range;
} Srv;

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        c += k;
        n -= (size_t)k;
    }
}

static void handle(Srv *s, int fd) {
    char req[4096];
    size_t n = 0;
    while (n < sizeof req - 1) {
        ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
        if (k <= 0) return;
        n += (size_t)k;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    char method[16], path[1024];
    if (sscanf(req, "%15s %1023s", method, path) != 2) return;
    bool head = !strcmp(method, "HEAD");
    long start = 0;
    const char *rg = strcasestr(req, "\r\nRange: bytes=");
    if (rg) start = strtol(rg + 15, NULL, 10);
    char want_resolve[1200], want_cdn[1200], hdr[2048];
    snprintf(want_resolve, sizeof want_resolve, "/%s/resolve/main/%s", REPO, s->file);
    snprintf(want_cdn, sizeof want_cdn, "/cdn/%s", s->file);
    bool is_resolve = !strcmp(path, want_resolve), is_cdn = s->redirect && !strcmp(path, want_cdn);
    if (!is_resolve && !is_cdn) {
        snprintf(hdr, sizeof hdr, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    if (is_resolve && s->redirect) {
        snprintf(hdr, sizeof hdr, "HTTP/1.1 302 Found\r\nLocation: %s\r\nX-Repo-Commit: %s\r\nX-Linked-Etag: \"%s\"\r\n"
                 "X-Linked-Size: %zu\r\nETag: W/\"1234-abcd\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                 want_cdn, COMMIT, s->etag, s->len);
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    const char *et = is_cdn ? "cdn-object-etag" : s->etag;
    if (head) {
        s->n_head++;
        snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: \"%s\"\r\nX-Repo-Commit: %s\r\n"
                 "Connection: close\r\n\r\n", s->len, et, COMMIT);
        send_all(fd, hdr, strlen(hdr));
        return;
    }
    s->n_get++;
    if (start < 0 || (size_t)start > s->len) start = 0;
    if (rg) {
        s->n_range++;
        snprintf(hdr, sizeof hdr, "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: bytes %ld-%zu/%zu\r\n"
                 "ETag: \"%s\"\r\nConnection: close\r\n\r\n", s->len - (size_t)start, start, s->len - 1, s->len, et);
    } else {
        snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: \"%s\"\r\nX-Repo-Commit: %s\r\n"
                 "Connection: close\r\n\r\n", s->len, et, COMMIT);
    }
    send_all(fd, hdr, strlen(hdr));
    size_t end = s->len;
    if (s->cut_at >= 0 && s->cut_times != 0) {
        if ((size_t)s->cut_at < end) end = (size_t)s->cut_at > (size_t)start ? (size_t)s->cut_at : (size_t)start;
        if (s->cut_times > 0) s->cut_times--;
    }
    if (end > (size_t)start) send_all(fd, s->body + start, end - (size_t)start);
}

static void *serve(void *arg) {
    Srv *s = arg;
    while (!s->stop) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept4(s->lfd, NULL, NULL, 0);   /* the accepted socket is blocking */
        if (fd < 0) continue;
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        handle(s, fd);
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    return NULL;
}

static bool srv_start(Srv *s) {
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);   /* accept never blocks the stop check */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof a) || listen(s->lfd, 16) ||
        getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return false;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->th, NULL, serve, s) == 0;
}

static void srv_stop(Srv *s) {
    s->stop = 1;
    pthread_join(s->th, NULL);
    close(s->lfd);
}

// ---- fixtures -----------------------------------------------------------------------------------

static uint8_t *g_body;
static size_t g_len;
static char g_sha[65];

static void make_body(void) {
    /* a real (small) safetensors file, so a resolved path can be opened */
    static float w[50000];
    for (int i = 0; i < 50000; i++) w[i] = (float)i;
    CmTensorOut t = {.name = "w", .dtype = CM_F32, .ndim = 1, .shape = {50000}, .data = w};
    const char *p = tl_tmp("body.safetensors");
    if (cm_safetensors_write(p, &t, 1, NULL, 0) || cm_read_file(p, 1 << 24, &g_body, &g_len)) abort();
    unlink(p);
    cm_sha256_hex(g_body, g_len, g_sha);
}

static CmHubOptions opts(const char *cache, const Srv *s) {
    static char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", s->port);
    CmHubOptions o = cm_hub_default_options();
    o.cache_dir = cache;
    o.endpoint = ep;
    o.allow_download = true;
    o.progress = 0;
    o.max_retries = 2;
    o.stall_timeout_s = 10;
    return o;
}

static char *fresh_cache(const char *name) {
    return strdup(tl_tmp(name));
}

static bool exists(const char *fmt, const char *a, const char *b) {
    char p[1024];
    snprintf(p, sizeof p, fmt, a, b);
    return access(p, F_OK) == 0;
}

static void srv_init(Srv *s, const char *file) {
    memset(s, 0, sizeof *s);
    s->body = g_body;
    s->len = g_len;
    snprintf(s->etag, sizeof s->etag, "%s", g_sha);
    s->file = file;
    s->cut_at = -1;
}

// ---- cases --------------------------------------------------------------------------------------

static void test_full_download_and_cache(void) {
    for (int redirect = 0; redirect < 2; redirect++) {
        Srv s;
        srv_init(&s, CM_HF_SAFE_WEIGHTS_NAME);
        s.redirect = redirect;
        bool started = srv_start(&s);
    REQUIRE(started, "server");
        char *cache = fresh_cache(redirect ? "c_full_redirect" : "c_full");
        CmHubOptions o = opts(cache, &s);
        o.progress = 1;   /* plain progress lines on stderr (not a terminal here) */
        char *path = NULL;
        cm_status st = cm_pretrained_resolve("ViT-B-32", "laion2b_s34b_b79k", &o, &path);
        CHECK(st == CM_OK, "%s", cm_last_error());
        char want[512];
        snprintf(want, sizeof want, "%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/" COMMIT "/%s", cache,
                 CM_HF_SAFE_WEIGHTS_NAME);
        CHECK(path && !strcmp(path, want), "path %s", path ? path : "(null)");
        char lnk[256] = "";
        ssize_t ln = path ? readlink(path, lnk, sizeof lnk - 1) : -1;
        if (ln > 0) lnk[ln] = 0;
        CHECK(!strncmp(lnk, "../../blobs/", 12) && !strcmp(lnk + 12, g_sha), "symlink -> %s", lnk);
        char ref[512];
        snprintf(ref, sizeof ref, "%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/refs/main", cache);
        uint8_t *rb; size_t rn;
        CHECK(cm_read_file(ref, 100, &rb, &rn) == CM_OK && rn == 40 && !memcmp(rb, COMMIT, 40), "refs/main");
        if (rn == 40) cm_free(rb);
        CmTensorFile *f = NULL;
        CHECK(path && cm_tensorfile_open(path, &f) == CM_OK && cm_tensorfile_count(f) == 1, "open: %s", cm_last_error());
        cm_tensorfile_close(f);
        CHECK(s.n_get == 1 && s.n_range == 0, "one plain GET (got %d, %d ranged)", s.n_get, s.n_range);
        /* second resolve: from the cache, no request */
        int gets = s.n_get, heads = s.n_head;
        free(path);
        path = NULL;
        st = cm_pretrained_resolve("ViT-B-32", "laion2b_s34b_b79k", &o, &path);
        CHECK(st == CM_OK && path && !strcmp(path, want) && s.n_get == gets && s.n_head == heads, "cached: %s", cm_last_error());
        free(path);
        srv_stop(&s);
        free(cache);
    }
}

static void test_fallback_to_bin_and_hf_endpoint(void) {
    Srv s;
    srv_init(&s, CM_HF_WEIGHTS_NAME);   /* only the .bin exists: safetensors is a 404 */
    bool started = srv_start(&s);
    REQUIRE(started, "server");
    char *cache = fresh_cache("c_bin");
    CmHubOptions o = opts(cache, &s);
    char ep[200];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s.port);
    setenv("HF_ENDPOINT", ep, 1);
    o.endpoint = NULL;
    char *path = NULL;
    cm_status st = cm_pretrained_resolve("ViT-B-32", "laion2b_s34b_b79k", &o, &path);
    unsetenv("HF_ENDPOINT");
    CHECK(st == CM_OK && path && strstr(path, "/snapshots/" COMMIT "/" CM_HF_WEIGHTS_NAME), "%s %s", cm_last_error(), path);
    free(path);
    /* a file path is taken as is; an unknown tag is a clear error */
    path = NULL;
    const char *xbin = tl_tmp("x.bin");
    cm_write_file_atomic(xbin, "x", 1);
    CHECK(cm_pretrained_resolve("ViT-B-32", xbin, &o, &path) == CM_OK && path && !strcmp(path, xbin), "file path");
    free(path);
    unlink(xbin);
    CHECK(cm_pretrained_resolve("ViT-B-32", "nonsense_tag", &o, &path) == CM_ERR_ARG &&
          strstr(cm_last_error(), "unknown pretrained tag"), "%s", cm_last_error());
    CHECK(cm_pretrained_resolve("ViT-B-32", "/no/such/file.bin", &o, &path) == CM_ERR_IO &&
          strstr(cm_last_error(), "no such file"), "%s", cm_last_error());
    srv_stop(&s);
    free(cache);
}

static void test_resume_after_cut(void) {
    Srv s;
    srv_init(&s, CM_HF_SAFE_WEIGHTS_NAME);
    s.redirect = true;
    s.cut_at = (long)g_len / 3;
    s.cut_times = 1;
    bool started = srv_start(&s);
    REQUIRE(started, "server");
    char *cache = fresh_cache("c_resume");
    CmHubOptions o = opts(cache, &s);
    char *path = NULL;
    cm_status st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_OK, "%s", cm_last_error());
    CHECK(s.n_get == 2 && s.n_range == 1, "cut once then resumed with Range: %d GETs, %d ranged", s.n_get, s.n_range);
    uint8_t *b; size_t n;
    CHECK(path && cm_read_file(path, 1 << 24, &b, &n) == CM_OK && n == g_len && !memcmp(b, g_body, n), "content");
    if (path && n == g_len) cm_free(b);
    free(path);
    srv_stop(&s);
    free(cache);

    /* across calls: the first call gives up (cut at the same byte twice: no progress, 1 retry allowed),
       the .incomplete stays; the next call resumes from it */
    srv_init(&s, CM_HF_SAFE_WEIGHTS_NAME);
    s.cut_at = (long)g_len / 2;
    s.cut_times = 2;
    started = srv_start(&s);
    REQUIRE(started, "server");
    cache = fresh_cache("c_resume2");
    o = opts(cache, &s);
    o.max_retries = 1;
    path = NULL;
    st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_ERR_NET && strstr(cm_last_error(), "cut off") && strstr(cm_last_error(), "rerun to resume"), "%s", cm_last_error());
    CHECK(exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/blobs/%s.incomplete", cache, g_sha), "partial kept");
    st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_OK && s.n_get == 3 && s.n_range == 2, "resumed: %s (%d GETs, %d ranged)", cm_last_error(), s.n_get, s.n_range);
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/blobs/%s.incomplete", cache, g_sha), "partial gone");
    CHECK(path && cm_read_file(path, 1 << 24, &b, &n) == CM_OK && n == g_len && !memcmp(b, g_body, n), "content");
    if (path && n == g_len) cm_free(b);
    free(path);
    srv_stop(&s);
    free(cache);
}

static void test_cut_never_completes(void) {
    Srv s;
    srv_init(&s, CM_HF_SAFE_WEIGHTS_NAME);
    s.cut_at = 1000;
    s.cut_times = -1;
    bool started = srv_start(&s);
    REQUIRE(started, "server");
    char *cache = fresh_cache("c_cut");
    CmHubOptions o = opts(cache, &s);
    char *path = NULL;
    cm_status st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_ERR_NET && path == NULL, "status %d", st);
    CHECK(strstr(cm_last_error(), "cut off at byte 1000 of") && strstr(cm_last_error(), "attempts"), "%s", cm_last_error());
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/blobs/%s", cache, g_sha), "no blob placed");
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/%s", cache, COMMIT), "no snapshot");
    CHECK(s.n_get <= 4, "bounded retries: %d GETs", s.n_get);
    srv_stop(&s);
    free(cache);
}

static void test_checksum_mismatch(void) {
    Srv s;
    srv_init(&s, CM_HF_SAFE_WEIGHTS_NAME);
    snprintf(s.etag, sizeof s.etag, "%064d", 7);   /* a sha256 that is not the content's */
    bool started = srv_start(&s);
    REQUIRE(started, "server");
    char *cache = fresh_cache("c_sha");
    CmHubOptions o = opts(cache, &s);
    char *path = NULL;
    cm_status st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_ERR_NET && path == NULL && strstr(cm_last_error(), "verification failed") &&
          strstr(cm_last_error(), g_sha) && strstr(cm_last_error(), "nothing was placed"), "%s", cm_last_error());
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/blobs/%s", cache, s.etag), "no blob");
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/blobs/%s.incomplete", cache, s.etag), "no partial");
    CHECK(!exists("%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/%s", cache, COMMIT), "no snapshot");
    /* a server without any usable checksum is refused too */
    snprintf(s.etag, sizeof s.etag, "not-a-hash");
    st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_ERR_NET && strstr(cm_last_error(), "no SHA-256"), "%s", cm_last_error());
    /* a 40-hex ETag (non-LFS file) is checked as a git blob SHA-1 */
    unsigned char md[20];
    unsigned ml;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char pre[64];
    int pl = snprintf(pre, sizeof pre, "blob %zu", g_len);
    EVP_DigestInit_ex(c, EVP_sha1(), NULL);
    EVP_DigestUpdate(c, pre, (size_t)pl + 1);
    EVP_DigestUpdate(c, g_body, g_len);
    EVP_DigestFinal_ex(c, md, &ml);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 20; i++) sprintf(s.etag + 2 * i, "%02x", md[i]);
    st = cm_hub_download(REPO, CM_HF_SAFE_WEIGHTS_NAME, &o, &path);
    CHECK(st == CM_OK && path, "git sha1: %s", cm_last_error());
    free(path);
    srv_stop(&s);
    free(cache);
}

static void test_offline_and_cache_scan(void) {
    char *cache = fresh_cache("c_off");
    CmHubOptions o = cm_hub_default_options();
    o.cache_dir = cache;
    o.allow_download = false;
    char *path = NULL;
    cm_status st = cm_pretrained_resolve("ViT-B-32", "laion2b_s34b_b79k", &o, &path);
    CHECK(st == CM_ERR_IO && strstr(cm_last_error(), "downloads are disabled") && strstr(cm_last_error(), cache),
          "%s", cm_last_error());
    /* a snapshot without refs/main is still found (snapshots/<any>/file); .bin when no safetensors */
    char d[512], f[600];
    snprintf(d, sizeof d, "%s/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/abc", cache);
    cm_mkdir_p(d);
    snprintf(f, sizeof f, "%s/%s", d, CM_HF_WEIGHTS_NAME);
    cm_write_file_atomic(f, "x", 1);
    st = cm_pretrained_resolve("ViT-B-32", "laion2b_s34b_b79k", &o, &path);
    CHECK(st == CM_OK && path && !strcmp(path, f), "scan: %s", cm_last_error());
    free(path);
    CHECK(cm_pretrained_lookup(NULL, "laion2b_s34b_b79k") != NULL && cm_pretrained_lookup("ViT-L-14", "laion2b_s34b_b79k") == NULL,
          "tag table");
    free(cache);
}

int main(void) {
    if (!tl_tmpdir_make("hub")) { perror("mkdtemp"); return 1; }
    make_body();
    RUN(test_full_download_and_cache);
    RUN(test_fallback_to_bin_and_hf_endpoint);
    RUN(test_resume_after_cut);
    RUN(test_cut_never_completes);
    RUN(test_checksum_mismatch);
    RUN(test_offline_and_cache_scan);
    cm_free(g_body);
    tl_tmpdir_remove();
    return tl_summary("test_hub");
}
