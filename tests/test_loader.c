/*
 * test_loader.c — the data loader (src/data/loader.c) on shards generated here (small JPEGs,
 * captions, metadata): validation order and the last partial batch, batch contents against the
 * eval transform and tokenizer called directly, labels (ours and the seed's), OpenCLIP epoch
 * sizing, determinism for a seed whatever the thread timing, every sample once per epoch
 * without resampling (also with one shard for two workers: split by sample), and robustness:
 * truncated shard, garbage bytes, a member declaring 2 GB, a missing shard, a corrupt image, a
 * missing caption, broken JSON, an unknown label — each skipped, counted and logged with shard
 * and key while the data keeps flowing; a data set with nothing readable fails instead of hanging.
 */
#include "testlib.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/tar.h"
#include "data/tokenizer.h"
#include "data/wds.h"

#include <fcntl.h>
#include <unistd.h>


static CmTokenizer *tok;

/* A small JPEG whose colour encodes i. */
static void make_jpeg(int i, uint8_t **jpg, size_t *n) {
    CmImage im = {40 + i % 7, 30 + i % 5, NULL};
    im.rgb = malloc((size_t)im.w * im.h * 3);
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            uint8_t *p = im.rgb + ((size_t)y * im.w + x) * 3;
            p[0] = (uint8_t)(i * 37); p[1] = (uint8_t)(x * 5 + i); p[2] = (uint8_t)(y * 7);
        }
    if (cm_jpeg_encode(&im, 90, jpg, n)) { *jpg = NULL; *n = 0; }
    free(im.rgb);
}

typedef enum { S_OK, S_BADIMG, S_NOTXT, S_BADJSON, S_BADLABEL, S_SEED_FAKEDDIT, S_NOJSON } Kind;

/* Writes shard `name` with samples first..first+n-1; kinds[i] (or S_OK) says what is wrong. */
static void write_shard(const char *path, int first, int n, const Kind *kinds) {
    CmTarWriter *w;
    if (cm_tar_writer_open(path, 0, &w)) { fprintf(stderr, "%s\n", cm_last_error()); return; }
    for (int k = 0; k < n; k++) {
        int i = first + k;
        Kind kind = kinds ? kinds[k] : S_OK;
        char key[32], txt[64], js[128];
        snprintf(key, sizeof key, "%s%05d", kind == S_OK ? "s" : "x", i);
        int tl = snprintf(txt, sizeof txt, "a photo of sample number %d", i);
        int jl = snprintf(js, sizeof js, "{\"label\": %d, \"dataset\": \"test\", \"id\": %d}", i % 7, i);
        if (kind == S_BADJSON) jl = snprintf(js, sizeof js, "{\"label\": %d,,", i % 7);
        if (kind == S_BADLABEL) jl = snprintf(js, sizeof js, "{\"label\": 42}");
        if (kind == S_SEED_FAKEDDIT) jl = snprintf(js, sizeof js, "{\"dataset\": \"fakeedit\", \"6_way_label\": 2}");
        uint8_t *jpg;
        size_t jn;
        make_jpeg(i, &jpg, &jn);
        if (kind == S_BADIMG) memset(jpg + 20, 0x5a, jn - 40);   /* keeps the magic, breaks the data */
        CmWdsOut f[3] = {{"jpg", jpg, jn}, {"txt", txt, (size_t)tl}, {"json", js, (size_t)jl}};
        int nf = 3;
        if (kind == S_NOTXT) { f[1] = f[2]; nf = 2; }
        if (kind == S_NOJSON) nf = 2;
        cm_wds_write_sample(w, key, f, nf);
        free(jpg);
    }
    cm_tar_writer_close(w);
}

typedef struct { int nb, ns, sizes[256]; int32_t labels[4096]; uint64_t hash; uint64_t tokhash[4096]; } Run;

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static int run_epoch(CmLoader *l, int epoch, Run *r) {
    memset(r, 0, sizeof *r);
    r->hash = 1469598103934665603ULL;
    if (cm_loader_start_epoch(l, epoch)) return -1;
    CmBatch *b;
    int rc;
    while ((rc = cm_loader_next(l, &b)) == 1) {
        if (r->nb < 256) r->sizes[r->nb] = b->n;
        r->nb++;
        for (int i = 0; i < b->n && r->ns < 4096; i++) {
            r->labels[r->ns] = b->labels[i];
            r->tokhash[r->ns] = fnv(b->tokens + (size_t)i * 77, 77 * 4, 1469598103934665603ULL);
            r->ns++;
        }
        r->hash = fnv(b->images, sizeof(float) * (size_t)b->n * 3 * 224 * 224, r->hash);
        r->hash = fnv(b->tokens, sizeof(int32_t) * (size_t)b->n * 77, r->hash);
        r->hash = fnv(b->labels, sizeof(int32_t) * (size_t)b->n, r->hash);
        cm_batch_free(b);
    }
    return rc;
}

static void setup_shards(void) {
    /* clean: 4 shards x 10 samples (0..39) */
    for (int s = 0; s < 4; s++) {
        char name[32];
        snprintf(name, sizeof name, "clean-%d.tar", s);
        write_shard(tl_tmp(name), s * 10, 10, NULL);
    }
}

static CmLoaderConfig base_cfg(const char *urls, bool train) {
    CmLoaderConfig c = {0};
    c.urls = urls;
    c.train = train;
    c.batch_size = 8;
    c.workers = 2;
    c.seed = 1;
    c.world_size = 1;
    c.tok = tok;
    return c;
}

static void test_validation_order(void) {
    char urls[600];
    snprintf(urls, sizeof urls, "%s/clean-{0..1}.tar::%s/clean-2.tar", tl_tmpdir, tl_tmpdir);
    CmLoaderConfig c = base_cfg(urls, false);
    c.batch_size = 7;
    CmLoader *l;
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    CHECK(cm_loader_num_batches(l) == -1, "validation has no fixed size");
    CmBatch *b;
    int rc, nb = 0, ns = 0, ok_labels = 1, last_n = 0, ok_keys = 1;
    int first_checked = 0;
    while ((rc = cm_loader_next(l, &b)) == 1) {
        for (int i = 0; i < b->n; i++) ok_labels &= b->labels[i] == (ns + i) % 7;
        /* each sample's WebDataset key and shard travel with the batch (for eval --scores-out) */
        for (int i = 0; i < b->n; i++) {
            const char *url = NULL, *key = cm_batch_key(b, i, &url);
            char want_key[16], want_url[600];
            snprintf(want_key, sizeof want_key, "s%05d", ns + i);
            snprintf(want_url, sizeof want_url, "%s/clean-%d.tar", tl_tmpdir, (ns + i) / 10);
            ok_keys &= key && url && !strcmp(key, want_key) && !strcmp(url, want_url);
        }
        CHECK(cm_batch_key(b, b->n, NULL) == NULL, "no key past the batch");
        if (!first_checked) {
            /* sample 0 against the eval transform and tokenizer called directly */
            uint8_t *jpg; size_t jn;
            make_jpeg(0, &jpg, &jn);
            CmImage im;
            float *want = malloc(sizeof(float) * 3 * 224 * 224);
            int32_t ids[77];
            REQUIRE(cm_image_decode(jpg, jn, "direct", 0, &im) == 0 && cm_transform_eval(&im, 224, &CM_CLIP_NORMALIZE, want) == 0, "direct");
            const char *cap = "a photo of sample number 0";
            REQUIRE(cm_tokenize(tok, cap, strlen(cap), ids, 77) == 0, "tokenize");
            CHECK_CLOSE(b->images, want, 3 * 224 * 224, 0.0, "sample 0 image == eval transform");
            CHECK(!memcmp(b->tokens, ids, sizeof ids), "sample 0 tokens");
            cm_image_free(&im);
            free(want); free(jpg);
            first_checked = 1;
        }
        ns += b->n; nb++; last_n = b->n;
        cm_batch_free(b);
    }
    CHECK(rc == 0, "ends cleanly: %d %s", rc, rc ? cm_last_error() : "");
    CHECK(ns == 30 && nb == 5 && last_n == 2, "30 samples in 5 batches, last partial of 2: %d %d %d", ns, nb, last_n);
    CHECK(ok_labels, "shard order kept, labels follow the metadata");
    CHECK(ok_keys, "keys and shard URLs of every sample");
    CmLoaderStats st = cm_loader_stats(l);
    CHECK(st.samples == 30 && st.bad_samples == 0 && st.shards == 3, "stats %lld %lld %lld", (long long)st.samples,
          (long long)st.bad_samples, (long long)st.shards);
    /* a second pass gives the same */
    Run r;
    CHECK(run_epoch(l, 1, &r) == 0 && r.ns == 30, "second epoch %d", r.ns);
    cm_loader_close(l);
}

static cm_status byte_encode(void *ctx, const char *text, size_t len, int32_t *ids, int n) {
    __atomic_fetch_add((int *)ctx, 1, __ATOMIC_RELAXED);   /* called from several decode threads */
    memset(ids, 0, sizeof(int32_t) * (size_t)n);
    ids[0] = 256;
    size_t k = len < (size_t)n - 2 ? len : (size_t)n - 2;
    for (size_t i = 0; i < k; i++) ids[i + 1] = (unsigned char)text[i];
    ids[k + 1] = 257;
    return CM_OK;
}

static void test_custom_encoder(void) {
    char urls[600];
    snprintf(urls, sizeof urls, "%s/clean-0.tar", tl_tmpdir);
    CmLoaderConfig c = base_cfg(urls, false);
    int calls = 0;
    c.tok = NULL;
    c.encode = byte_encode;
    c.encode_ctx = &calls;
    c.context_len = 32;
    CmLoader *l;
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    CmBatch *b;
    REQUIRE(cm_loader_next(l, &b) == 1, "batch");
    CHECK(b->context_len == 32 && b->tokens[0] == 256 && b->tokens[1] == 'a' && b->tokens[32 + 1] == 'a', "byte tokens %d %d",
          b->tokens[0], b->tokens[1]);
    const char *cap = "a photo of sample number 1";
    CHECK(b->tokens[32 + 1 + (int)strlen(cap)] == 257 && b->tokens[32 + 2 + (int)strlen(cap)] == 0, "EOT then padding");
    cm_batch_free(b);
    cm_loader_close(l);
    CHECK(__atomic_load_n(&calls, __ATOMIC_RELAXED) > 0, "encoder called");
}

static void test_epoch_sizing_and_determinism(void) {
    char urls[600];
    snprintf(urls, sizeof urls, "%s/clean-{0..3}.tar", tl_tmpdir);
    CmLoaderConfig c = base_cfg(urls, true);
    c.resampled = true;
    c.num_samples = 50;
    c.shuffle_bufsize = 20;
    c.shuffle_initial = 5;
    CmLoader *l;
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    /* ceil(50/8) = 7 batches -> ceil(7/2) = 4 per worker -> 8 batches, 64 samples */
    CHECK(cm_loader_num_batches(l) == 8 && cm_loader_num_samples(l) == 64, "sizing %lld %lld",
          (long long)cm_loader_num_batches(l), (long long)cm_loader_num_samples(l));
    Run a0, a1, b0, b1;
    CHECK(run_epoch(l, 0, &a0) == 0 && a0.nb == 8 && a0.ns == 64, "epoch 0: %d batches %d samples", a0.nb, a0.ns);
    CHECK(run_epoch(l, 1, &a1) == 0 && a1.nb == 8, "epoch 1: %d", a1.nb);
    CHECK(a0.hash != a1.hash, "epochs differ");
    cm_loader_close(l);
    /* same seed, fresh loader: identical batches (augmentation included) */
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    run_epoch(l, 0, &b0);
    run_epoch(l, 1, &b1);
    cm_loader_close(l);
    CHECK(a0.hash == b0.hash && a1.hash == b1.hash, "same seed -> same batches");
    c.seed = 2;
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    run_epoch(l, 0, &b0);
    cm_loader_close(l);
    CHECK(a0.hash != b0.hash, "another seed -> other batches");
    /* a consumer that stops mid-epoch and closes: no hang, no leak */
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    CmBatch *b, *b2;
    CHECK(cm_loader_next(l, &b) == 1, "first batch");
    cm_batch_free(b);
    CHECK(cm_loader_next(l, &b2) == 1, "second batch (recycled memory)");
    cm_loader_close(l);
    cm_batch_free(b2);   /* a batch may outlive its loader */
}

static void test_no_resampling_covers_once(void) {
    char urls[600];
    snprintf(urls, sizeof urls, "%s/clean-{0..3}.tar", tl_tmpdir);
    CmLoaderConfig c = base_cfg(urls, true);
    c.batch_size = 4;
    c.num_samples = 40;
    c.shuffle_bufsize = 8;
    c.shuffle_initial = 2;
    CmLoader *l;
    REQUIRE(cm_loader_open(&c, &l) == 0, "%s", cm_last_error());
    Run r0, r1;
    REQUIRE(run_epoch(l, 0, &r0) == 0, "epoch 0");
    REQUIRE(run_epoch(l, 1, &r1) == 0, "epoch 1");
    CHECK(r0.ns == 40 && r0.nb == 10 && r1.ns == 40, "40 samples per epoch: %d %d", r0.ns, r1.ns);
    int distinct = 0;
    for (int i = 0; i < r0.ns; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= r0.tokhash[j] == r0.tokhash[i];
        distinct += !seen;
    }
    CHECK(distinct == 40, "every sample exactly once: %d distinct", distinct);
    int same_order = 1;
    for (int i = 0; i < 40; i++) same_order &= r0.tokhash[i] == r1.tokhash[i];
    CHECK(!same_order, "the shuffle changes with the epoch");
    cm_loader_close(l);
    /* fewer shards than workers: split by sample (OpenCLIP refuses; tests/test_data_split.c) */
    snprintf(urls, sizeof urls, "%s/clean-0.tar", tl_tmpdir);
    CmLoaderConfig c2 = base_cfg(urls, true);
    c2.num_samples = 10;
    c2.batch_size = 5;
    REQUIRE(cm_loader_open(&c2, &l) == 0, "%s", cm_last_error());
    Run r2;
    CHECK(run_epoch(l, 0, &r2) == 0 && r2.nb == 2 && r2.ns == 10, "1 shard x 2 workers: %d batches, %d samples", r2.nb, r2.ns);
    cm_loader_close(l);
    /* factors without resampling refused */
    c2.upsampling = "1";
    c2.resampled = false;
    CHECK(cm_loader_open(&c2, &l) != 0 && strstr(cm_last_error(), "--dataset-resampled"), "%s", cm_last_error());
}

/* Capture our stderr (where cm_log writes) while fn runs. */
static char *capture_stderr(void (*fn)(void *), void *arg) {
    fflush(stderr);
    int saved = dup(2);
    int fd = open(tl_tmp("stderr.txt"), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 2);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    uint8_t *buf; size_t n;
    if (cm_read_file(tl_tmp("stderr.txt"), 1 << 24, &buf, &n)) return NULL;
    return (char *)buf;
}

typedef struct { CmLoaderConfig c; Run r; int rc; CmLoaderStats st; double secs; char err[1024]; } RobustRun;

static void robust_body(void *arg) {
    RobustRun *rr = arg;
    CmLoader *l;
    double t0 = cm_now();
    rr->rc = cm_loader_open(&rr->c, &l);
    if (rr->rc) { snprintf(rr->err, sizeof rr->err, "%s", cm_last_error()); return; }
    rr->rc = run_epoch(l, 0, &rr->r);
    if (rr->rc) snprintf(rr->err, sizeof rr->err, "%s", cm_last_error());
    rr->st = cm_loader_stats(l);
    cm_loader_close(l);
    rr->secs = cm_now() - t0;
}

static void test_robustness(void) {
    /* bad.tar: 10 samples, 6 bad in different ways */
    Kind kinds[10] = {S_OK, S_BADIMG, S_OK, S_NOTXT, S_BADJSON, S_OK, S_BADLABEL, S_SEED_FAKEDDIT, S_NOJSON, S_OK};
    write_shard(tl_tmp("bad.tar"), 100, 10, kinds);
    /* damaged shards built from a clean one */
    uint8_t *b; size_t n;
    write_shard(tl_tmp("base.tar"), 200, 10, NULL);
    REQUIRE(cm_read_file(tl_tmp("base.tar"), 1 << 24, &b, &n) == 0, "base");
    FILE *f = fopen(tl_tmp("trunc.tar"), "wb");
    fwrite(b, 1, n / 2 + 100, f);
    fclose(f);
    uint8_t *g = malloc(n);
    memcpy(g, b, n);
    for (size_t i = n / 3; i < n / 3 + 2000; i++) g[i] = (uint8_t)(i * 131 + 7);
    f = fopen(tl_tmp("garbage.tar"), "wb");
    fwrite(g, 1, n, f);
    fclose(f);
    /* a member declaring 2 GB: the first member header of the 4th sample */
    memcpy(g, b, n);
    size_t off = 0;
    {
        CmTarReader *t;
        REQUIRE(cm_tar_open(tl_tmp("base.tar"), false, 0, &t) == 0, "open");
        CmTarEntry e;
        for (int i = 0; i < 10 && cm_tar_next(t, &e) == CM_TAR_MEMBER; i++) off = e.offset;
        cm_tar_close(t);
    }
    char sz[13];
    snprintf(sz, sizeof sz, "%011llo", 2ULL << 30);
    memcpy(g + off + 124, sz, 12);
    memset(g + off + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += g[off + i];
    char ck[8];
    snprintf(ck, sizeof ck, "%06o", sum);
    memcpy(g + off + 148, ck, 7);
    f = fopen(tl_tmp("huge.tar"), "wb");
    fwrite(g, 1, n, f);
    fclose(f);
    free(g);
    cm_free(b);

    RobustRun rr = {0};
    char urls[1200];
    snprintf(urls, sizeof urls, "%s/{bad,trunc,garbage,huge,missing,clean-0}.tar", tl_tmpdir);
    rr.c = base_cfg(urls, false);
    rr.c.batch_size = 4;
    char *log = capture_stderr(robust_body, &rr);
    REQUIRE(log, "log captured");
    CHECK(rr.rc == 0, "data keeps flowing: %d %s", rr.rc, rr.err);
    /* good: bad.tar 4 (0,2,5,9) + seed json (7) + no json (8) = 6; trunc >= 4; garbage >= 2; huge: samples before the
       damage (>= 3); clean-0 10 */
    CHECK(rr.r.ns >= 6 + 4 + 2 + 3 + 10 && rr.r.ns < 6 + 30 + 10, "good samples delivered: %d", rr.r.ns);
    CHECK(rr.st.bad_samples >= 4, "bad samples counted: %lld", (long long)rr.st.bad_samples);
    CHECK(rr.st.bad_shards >= 4, "bad shards counted (trunc, garbage, huge, missing): %lld", (long long)rr.st.bad_shards);
    int has_seed_label = 0;
    for (int i = 0; i < rr.r.ns; i++) has_seed_label |= rr.r.labels[i] == 4;
    CHECK(has_seed_label, "seed-project Fakeddit 6_way_label 2 -> class 4");
    const char *want[] = {"bad.tar: key 'x00101': image", "key 'x00103': missing caption", "key 'x00104': metadata .json",
                          "key 'x00106': metadata .json: unknown label", "trunc.tar", "garbage.tar", "huge.tar", "2147483648",
                          "missing.tar"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) CHECK(strstr(log, want[i]), "log mentions '%s'", want[i]);
    if (tl_case_failed) fprintf(stderr, "---- log ----\n%s\n", log);
    cm_free(log);

    /* nothing readable, resampled: fails instead of spinning */
    RobustRun r2 = {0};
    snprintf(urls, sizeof urls, "%s/{trunc,missing}.tar", tl_tmpdir);
    r2.c = base_cfg(urls, true);
    r2.c.resampled = true;
    r2.c.num_samples = 100;
    r2.c.max_logged = 3;
    char *log2 = capture_stderr(robust_body, &r2);
    /* trunc.tar has good samples before the cut, so this run delivers data; only missing -> fail */
    CHECK(r2.rc == 0 && r2.r.ns > 0, "a partly readable shard keeps data flowing: %d %s", r2.rc, r2.err);
    cm_free(log2);
    RobustRun r3 = {0};
    snprintf(urls, sizeof urls, "%s/{missing,garbage2}.tar", tl_tmpdir);
    f = fopen(tl_tmp("garbage2.tar"), "wb");
    for (int i = 0; i < 5000; i++) fputc(i * 7, f);
    fclose(f);
    r3.c = base_cfg(urls, true);
    r3.c.resampled = true;
    r3.c.num_samples = 100;
    r3.c.max_logged = 3;
    char *log3 = capture_stderr(robust_body, &r3);
    CHECK(r3.rc < 0 && strstr(r3.err, "no readable sample"), "all bad: fails: %d %s", r3.rc, r3.err);
    cm_free(log3);
    /* every sample bad (no captions), resampled: fails after the bad-run limit, no hang */
    Kind nt[10];
    for (int i = 0; i < 10; i++) nt[i] = S_NOTXT;
    write_shard(tl_tmp("notxt.tar"), 300, 10, nt);
    RobustRun r4 = {0};
    snprintf(urls, sizeof urls, "%s/notxt.tar", tl_tmpdir);
    r4.c = base_cfg(urls, true);
    r4.c.resampled = true;
    r4.c.num_samples = 100;
    r4.c.max_logged = 2;
    r4.c.shuffle_bufsize = 10;
    char *log4 = capture_stderr(robust_body, &r4);
    CHECK(r4.rc < 0 && strstr(r4.err, "bad samples in a row"), "all samples bad: fails: %d %s", r4.rc, r4.err);
    cm_free(log4);
}

int main(void) {
    if (!tl_have_shared() || cm_tokenizer_load(NULL, &tok)) {
        const char *ci = getenv("CI");
        fprintf(stderr, "  SKIPPED test_loader: no tokenizer vocabulary (%s)\n", cm_last_error());
        printf("test_loader: 0 passed, %d failed, 1 skipped\n", ci && *ci && strcmp(ci, "false") ? 1 : 0);
        return ci && *ci && strcmp(ci, "false") ? 1 : 0;
    }
    if (!tl_tmpdir_make("loader")) { perror("mkdtemp"); cm_tokenizer_free(tok); return 1; }
    setup_shards();
    RUN(test_validation_order);
    RUN(test_custom_encoder);
    RUN(test_epoch_sizing_and_determinism);
    RUN(test_no_resampling_covers_once);
    RUN(test_robustness);
    cm_tokenizer_free(tok);
    tl_tmpdir_remove();
    return tl_summary("test_loader");
}
