/*
 * test_data_split.c — how the one shard->batch pipeline (src/data/loader.c, opened through
 * cm_batches_open) divides the shards between processes (ranks) and loader workers, docs/data.md:
 *   - without --dataset-resampled every sample is delivered exactly once per epoch across all
 *     ranks and workers, with enough shards (split by shard: 3 shards x 2 workers) and with fewer
 *     shards than workers x ranks (split by sample: 1 shard x 2 workers x 2 ranks, 3 shards x
 *     2 workers x 2 ranks, unequal shards 5 + 7 samples x 5 workers), in two epochs; no worker is
 *     empty; the split is announced by one warning, on rank 0 only;
 *   - validation is split the same way across ranks (1 shard, 2 ranks: each sample once, in order);
 *   - --dataset-resampled is unaffected (no split, no warning: each worker draws whole shards);
 *   - a single-shard dataset (one train tar, one val tar) trains and validates through the CLI with
 *     the default --workers (the demo's byte-level model: no ../shared needed), and `clipmod eval`
 *     reads the same val tar; the same under `mpirun -np 2` (1 shard for 4 workers x 2 ranks), and
 *     `mpirun -np 2 clipmod eval --scores-out` on the one val tar lists the rows in the one-process order.
 * Captions go through the byte-level text encoder, so no vocabulary is needed.
 */
#include "testlib.h"
#include <fcntl.h>
#include "data/image.h"
#include "data/loader.h"
#include "data/loader_source.h"
#include "data/synth.h"
#include "data/tar.h"
#include "data/textenc.h"
#include "data/wds.h"
#include "eval/scores.h"

#define MAXS 256   /* samples in all shards of one case */

/* Shard `name` with samples first..first+n-1 (key "s%05d", an 8x8 JPEG, a caption, a label). */
static int write_shard(const char *path, int first, int n) {
    CmTarWriter *w;
    if (cm_tar_writer_open(path, 0, &w)) return -1;
    for (int k = 0; k < n; k++) {
        int i = first + k;
        uint8_t rgb[8 * 8 * 3];
        for (int p = 0; p < 64; p++) { rgb[3 * p] = (uint8_t)(i * 37); rgb[3 * p + 1] = (uint8_t)(p * 3); rgb[3 * p + 2] = (uint8_t)i; }
        CmImage im = {8, 8, rgb};
        uint8_t *jpg = NULL;
        size_t jn = 0;
        if (cm_jpeg_encode(&im, 90, &jpg, &jn)) { cm_tar_writer_close(w); return -1; }
        char key[16], txt[48], js[64];
        snprintf(key, sizeof key, "s%05d", i);
        int tl = snprintf(txt, sizeof txt, "sample %d", i);
        int jl = snprintf(js, sizeof js, "{\"label\": %d, \"dataset\": \"test\"}", i % 7);
        CmWdsOut f[3] = {{"jpg", jpg, jn}, {"txt", txt, (size_t)tl}, {"json", js, (size_t)jl}};
        cm_status st = cm_wds_write_sample(w, key, f, 3);
        cm_free(jpg);
        if (st) { cm_tar_writer_close(w); return -1; }
    }
    return cm_tar_writer_close(w) ? -1 : 0;
}

/* Shards part-<tag>-<k>.tar with sizes[k] samples, numbered consecutively; their brace URL. */
static int make_shards(const char *tag, const int *sizes, int n, char *urls, size_t cap) {
    int first = 0;
    for (int k = 0; k < n; k++) {
        char name[64];
        snprintf(name, sizeof name, "part-%s-%d.tar", tag, k);
        if (write_shard(tl_tmp(name), first, sizes[k])) return -1;
        first += sizes[k];
    }
    snprintf(urls, cap, "%s/part-%s-{0..%d}.tar", tl_tmpdir, tag, n - 1);
    return first;
}

static CmTextEnc te_bytes = {.bytes = true};

static CmBatchesConfig cfg(const char *urls, bool train, int batch, int workers, int world) {
    CmBatchesConfig c = {0};
    c.urls = urls; c.train = train; c.batch_size = batch; c.workers = workers; c.world_size = world;
    c.seed = 7; c.image_size = 16; c.context_len = 16; c.te = &te_bytes;
    return c;
}

/* The sample number of key "s%05d" (-1 if not such a key). */
static int sample_no(const char *key) {
    int i = -1;
    return key && sscanf(key, "s%d", &i) == 1 ? i : -1;
}

typedef struct {
    int seen[MAXS];          /* times each sample was delivered */
    int order[MAXS], n;      /* delivery order (validation checks it) */
    int batches, bad;        /* batches, and deliveries with an unknown key or a wrong token row */
    int per_batch[64];       /* samples of each batch */
} Tally;

/* One epoch of source s into t (keys from cm_batches_sample_key; tokens checked against the key). */
static cm_status tally_epoch(CmBatchSource *s, int epoch, Tally *t) {
    cm_status st = s->start_epoch(s, epoch);
    if (st) return st;
    size_t isz = (size_t)3 * s->image_size * s->image_size;
    float *img = malloc(sizeof(float) * isz * (size_t)s->batch);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)s->ctx * (size_t)s->batch), lab[64];
    for (;;) {
        int got = 0;
        if ((st = s->next(s, img, tok, lab, &got)) || got == 0) break;
        if (t->batches < 64) t->per_batch[t->batches] = got;
        t->batches++;
        for (int i = 0; i < got; i++) {
            int k = sample_no(cm_batches_sample_key(s, i, NULL));
            if (k < 0 || k >= MAXS) { t->bad++; continue; }
            char want[48];
            snprintf(want, sizeof want, "sample %d", k);
            int32_t ids[16];
            cm_byte_tokenize(want, strlen(want), ids, 16);
            if (memcmp(ids, tok + (size_t)i * s->ctx, sizeof ids) || lab[i] != k % 7) t->bad++;
            t->seen[k]++;
            if (t->n < MAXS) t->order[t->n++] = k;
        }
    }
    free(img);
    free(tok);
    return st;
}

/* Capture stderr (where cm_log writes) into buf while the loaders of a case open. */
static int saved_fd = -1;
static void capture_begin(void) {
    fflush(stderr);
    saved_fd = dup(2);
    int fd = open(tl_tmp("stderr.txt"), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 2);
    close(fd);
}
static void capture_end(char *buf, size_t cap) {
    fflush(stderr);
    dup2(saved_fd, 2);
    close(saved_fd);
    tl_slurp_(tl_tmp("stderr.txt"), buf, cap);
}

/* cm_batches_open with its stderr (the split warning) captured into err */
static cm_status open_captured(const CmBatchesConfig *c, CmBatchSource **s, char *err, size_t cap) {
    capture_begin();
    cm_status st = cm_batches_open(c, s);
    capture_end(err, cap);
    return st;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Train epochs 0 and 1 of every rank (batch size 1 and a generous --train-num-samples, so that
   neither dropped partial batches nor OpenCLIP's epoch cap hide a sample): every sample exactly
   once per epoch across ranks; then no worker empty. */
static void check_exactly_once(const char *tag, const int *sizes, int nshards, int workers, int world, bool expect_warning) {
    char urls[600], err[8192];
    int total = make_shards(tag, sizes, nshards, urls, sizeof urls);
    REQUIRE(total > 0 && total <= MAXS, "%s: shards not written", tag);
    for (int epoch = 0; epoch < 2; epoch++) {
        Tally all = {0};
        for (int r = 0; r < world; r++) {
            CmBatchesConfig c = cfg(urls, true, 1, workers, world);
            c.rank = r;
            c.num_samples = 10 * total;
            CmBatchSource *s = NULL;
            cm_status st = open_captured(&c, &s, err, sizeof err);
            REQUIRE(st == CM_OK, "%s rank %d: open: %s", tag, r, cm_last_error());
            int w = count_of(err, "split by sample");
            CHECK(w == (r == 0 && expect_warning), "%s rank %d: %d split warnings: %s", tag, r, w, err);
            Tally t = {0};
            st = tally_epoch(s, epoch, &t);
            cm_batches_close(s);
            REQUIRE(st == CM_OK, "%s rank %d epoch %d: %s", tag, r, epoch, cm_last_error());
            CHECK(t.bad == 0, "%s rank %d: %d samples with a wrong key, caption or label", tag, r, t.bad);
            for (int k = 0; k < total; k++) all.seen[k] += t.seen[k];
            all.n += t.n;
        }
        int once = 0;
        for (int k = 0; k < total; k++) once += all.seen[k] == 1;
        CHECK(once == total && all.n == total, "%s epoch %d: %d of %d samples seen exactly once (%d delivered)", tag, epoch, once,
              total, all.n);
    }
    /* no worker is empty: with --train-num-samples = workers x ranks each worker yields one
       batch of 1, so a rank delivers `workers` batches only when every one of its workers has a sample */
    for (int r = 0; r < world; r++) {
        CmBatchesConfig c = cfg(urls, true, 1, workers, world);
        c.rank = r;
        c.num_samples = workers * world;
        CmBatchSource *s = NULL;
        cm_status st = open_captured(&c, &s, err, sizeof err);
        REQUIRE(st == CM_OK, "%s rank %d: open: %s", tag, r, cm_last_error());
        Tally t = {0};
        st = tally_epoch(s, 0, &t);
        cm_batches_close(s);
        CHECK(st == CM_OK && t.batches == workers, "%s rank %d: %d batches for %d workers (an empty worker): %s", tag, r, t.batches,
              workers, st ? cm_last_error() : "");
    }
}

static void test_split_by_shard_3x2(void) {
    int sizes[] = {8, 8, 8};
    check_exactly_once("s3w2", sizes, 3, 2, 1, false);
}

static void test_split_by_sample_1x2x2(void) {
    int sizes[] = {16};
    check_exactly_once("s1w2r2", sizes, 1, 2, 2, true);
}

static void test_split_by_sample_3x2x2(void) {
    int sizes[] = {9, 8, 7};
    check_exactly_once("s3w2r2", sizes, 3, 2, 2, true);
}

static void test_split_by_sample_uneven(void) {
    int sizes[] = {5, 7};
    check_exactly_once("s2w5", sizes, 2, 5, 1, true);
}

/* The realistic setting: 1 shard of 16, batch 4, 2 workers x 2 ranks, OpenCLIP's sizing
   (--train-num-samples 16: 2 batches per rank, one per worker): full batches, every sample once. */
static void test_single_shard_batches(void) {
    int sizes[] = {16};
    char urls[600];
    REQUIRE(make_shards("one", sizes, 1, urls, sizeof urls) == 16, "shard");
    Tally all = {0};
    for (int r = 0; r < 2; r++) {
        CmBatchesConfig c = cfg(urls, true, 4, 2, 2);
        c.rank = r;
        c.num_samples = 16;
        CmBatchSource *s = NULL;
        char err[4096];
        cm_status st = open_captured(&c, &s, err, sizeof err);
        REQUIRE(st == CM_OK, "open: %s", cm_last_error());
        CHECK(s->num_batches == 2 && s->ctx == 16 && s->image_size == 16, "rank %d: %lld batches per epoch, ctx %d", r,
              (long long)s->num_batches, s->ctx);
        Tally t = {0};
        st = tally_epoch(s, 0, &t);
        cm_batches_close(s);
        REQUIRE(st == CM_OK, "%s", cm_last_error());
        CHECK(t.batches == 2 && t.per_batch[0] == 4 && t.per_batch[1] == 4, "rank %d: %d batches of %d, %d", r, t.batches,
              t.per_batch[0], t.per_batch[1]);
        for (int k = 0; k < 16; k++) all.seen[k] += t.seen[k];
    }
    int once = 0;
    for (int k = 0; k < 16; k++) once += all.seen[k] == 1;
    CHECK(once == 16, "%d of 16 samples seen exactly once", once);
}

/* Validation: 1 val shard, 2 ranks: each rank takes every other sample, in shard order. */
static void test_validation_split(void) {
    int sizes[] = {11};
    char urls[600];
    REQUIRE(make_shards("val", sizes, 1, urls, sizeof urls) == 11, "shard");
    Tally all = {0};
    for (int r = 0; r < 2; r++) {
        CmBatchesConfig c = cfg(urls, false, 4, 3, 2);
        c.rank = r;
        CmBatchSource *s = NULL;
        char err[4096];
        cm_status st = open_captured(&c, &s, err, sizeof err);
        REQUIRE(st == CM_OK, "open: %s", cm_last_error());
        CHECK(count_of(err, "split by sample") == (r == 0), "rank %d: warning: %s", r, err);
        Tally t = {0};
        st = tally_epoch(s, 0, &t);
        cm_batches_close(s);
        REQUIRE(st == CM_OK, "%s", cm_last_error());
        int in_order = t.n == (r == 0 ? 6 : 5);
        for (int i = 0; i < t.n; i++) in_order &= t.order[i] == r + 2 * i;
        CHECK(in_order && t.bad == 0, "rank %d: %d samples, not every other one in order", r, t.n);
        for (int k = 0; k < 11; k++) all.seen[k] += t.seen[k];
    }
    int once = 0;
    for (int k = 0; k < 11; k++) once += all.seen[k] == 1;
    CHECK(once == 11, "%d of 11 validation samples seen exactly once", once);
}

/* --dataset-resampled: no split (each worker draws whole shards with replacement), no warning.
   One shard of 8, 2 workers x 2 ranks, no sample shuffle: each worker's first 8 samples are the
   whole shard (a split by sample would give it 2 or 4 distinct samples). */
static cm_status byte_encode(void *ctx, const char *text, size_t len, int32_t *ids, int n) {
    return cm_textenc_encode(ctx, text, len, ids, n);
}

static void test_resampled_unaffected(void) {
    int sizes[] = {8};
    char urls[600];
    REQUIRE(make_shards("res", sizes, 1, urls, sizeof urls) == 8, "shard");
    for (int r = 0; r < 2; r++) {
        /* through the one entry point: no refusal, no warning, OpenCLIP's sizing */
        CmBatchesConfig bc = cfg(urls, true, 4, 2, 2);
        bc.rank = r; bc.resampled = true; bc.num_samples = 64;
        CmBatchSource *s = NULL;
        char err[4096];
        cm_status st = open_captured(&bc, &s, err, sizeof err);
        REQUIRE(st == CM_OK, "open: %s", cm_last_error());
        CHECK(count_of(err, "split by sample") == 0, "resampled: split warning: %s", err);
        CHECK(s->num_batches == 8, "resampled: %lld batches per rank", (long long)s->num_batches);
        Tally t = {0};
        st = tally_epoch(s, 0, &t);
        cm_batches_close(s);
        REQUIRE(st == CM_OK && t.batches == 8 && t.bad == 0, "resampled: %d batches: %s", t.batches, cm_last_error());
        /* the loader itself without a sample shuffle: batches 0 and 2 (worker 0) and 1 and 3
           (worker 1) hold each worker's first 8 samples: the whole shard */
        CmLoaderConfig c = {0};
        c.urls = urls; c.train = true; c.resampled = true; c.batch_size = 4; c.workers = 2; c.world_size = 2; c.rank = r;
        c.num_samples = 64; c.seed = 3; c.image_size = 16; c.shuffle_bufsize = 1; c.shuffle_initial = 1;
        c.encode = byte_encode; c.encode_ctx = &te_bytes; c.context_len = 16;
        CmLoader *l = NULL;
        REQUIRE(cm_loader_open(&c, &l) == CM_OK, "%s", cm_last_error());
        int seen[2][8] = {{0}};
        for (int b = 0; b < 4; b++) {
            CmBatch *bt = NULL;
            if (cm_loader_next(l, &bt) != 1) { CHECK(0, "batch %d: %s", b, cm_last_error()); break; }
            for (int i = 0; i < bt->n; i++) {
                int k = sample_no(cm_batch_key(bt, i, NULL));
                if (k >= 0 && k < 8) seen[b % 2][k]++;
            }
            cm_batch_free(bt);
        }
        cm_loader_close(l);
        for (int w = 0; w < 2; w++) {
            int distinct = 0;
            for (int k = 0; k < 8; k++) distinct += seen[w][k] > 0;
            CHECK(distinct == 8, "resampled rank %d worker %d: %d distinct samples in its first 8 (split?)", r, w, distinct);
        }
    }
}

/* A single-shard dataset (one train tar, one val tar) trains with the default --workers (4)
   through the CLI, with the byte-level demo model; eval reads the val tar. */
static const char MODEL_JSON[] =
    "{\"model_name\":\"split-test\",\"model_cfg\":{\"embed_dim\":32,\"quick_gelu\":false,"
    "\"vision_cfg\":{\"image_size\":32,\"layers\":1,\"width\":32,\"patch_size\":8,\"head_width\":16,\"mlp_ratio\":2.0},"
    "\"text_cfg\":{\"context_length\":48,\"vocab_size\":258,\"width\":32,\"heads\":2,\"layers\":1,\"mlp_ratio\":2.0}},"
    "\"head\":{\"d\":32,\"heads\":4,\"ff\":64,\"layers\":1,\"classes\":7}}\n";

static void test_cli_single_shard_default_workers(void) {
    CLIPMOD_BIN_OR_SKIP();
    CmSynthOpts o;
    cm_synth_opts_default(&o);
    o.n_train = 64; o.n_val = 24; o.image_size = 32; o.shard_size = 1000;
    REQ_OK(cm_synth_write(tl_tmp("synth"), &o));
    REQUIRE(tl_write_text(tl_tmp("model.json"), MODEL_JSON) == 0, "model.json");
    static char out[1 << 14], err[1 << 16];
    char args[3000];
    snprintf(args, sizeof args,
             "train --train-data %s/synth/train/00000.tar --val-data %s/synth/val/00000.tar --model %s/model.json --tokenizer bytes "
             "--batch-size 8 --epochs 1 --warmup 1 --lr 1e-3 --logs %s/logs --name one --precision fp32 --threads 1",
             tl_tmpdir, tl_tmpdir, tl_tmpdir, tl_tmpdir);
    int rc = tl_run_clipmod(args, out, sizeof out, err, sizeof err);
    REQUIRE(rc == 0, "train on one shard with the default --workers: exit %d: %s", rc, err);
    CHECK(count_of(err, "split by sample") == 1 && strstr(err, "1 shard for 4 workers"), "one split warning expected: %s", err);
    CHECK(!strstr(err, "ran out"), "the epoch should be complete (4 workers x 2 batches): %s", err);
    cJSON *j = cJSON_Parse(out);
    cJSON *n = cJSON_GetObjectItem(j, "n"), *steps = cJSON_GetObjectItem(j, "steps");
    CHECK(cJSON_IsNumber(n) && n->valueint == 24, "validation n %d, want 24", cJSON_IsNumber(n) ? n->valueint : -1);
    CHECK(cJSON_IsNumber(steps) && steps->valueint == 8, "steps %d, want 8 (64 samples / 8)", cJSON_IsNumber(steps) ? steps->valueint : -1);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "eval --model %s/logs/one/checkpoints/epoch_1.safetensors --val-data %s/synth/val/00000.tar --json --workers 3",
             tl_tmpdir, tl_tmpdir);
    rc = tl_run_clipmod(args, out, sizeof out, err, sizeof err);
    REQUIRE(rc == 0, "eval: exit %d: %s", rc, err);
    j = cJSON_Parse(out);
    n = cJSON_GetObjectItem(j, "n");
    CHECK(cJSON_IsNumber(n) && n->valueint == 24, "eval n %d, want 24", cJSON_IsNumber(n) ? n->valueint : -1);
    cJSON_Delete(j);
}

/* The same single-shard dataset under `mpirun -np 2` (the byte tokenizer is no longer refused
   under MPI): 1 shard for 4 workers x 2 ranks, split by sample; 64 samples / (8 x 2) = 4 steps;
   validation (1 val tar, split by sample across the ranks, counts summed) sees all 24. */
static void test_mpi_single_shard(void) {
    CLIPMOD_BIN_OR_SKIP();
    const char *san = getenv("CLIPMOD_SANITIZED");
    if (san && *san) {   /* Open MPI's own allocations are reported by LeakSanitizer */
        fprintf(stderr, "  SKIPPED %s: mpirun under the sanitizer build\n", tl_case);
        tl_skip++;
        return;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        const char *ci = getenv("CI");
        if (ci && *ci && strcmp(ci, "false")) { CHECK(0, "mpirun is missing (scripts/install-deps.sh installs openmpi-bin)"); return; }
        fprintf(stderr, "  SKIPPED %s: mpirun not installed (openmpi-bin)\n", tl_case);
        tl_skip++;
        return;
    }
    REQUIRE(cm_file_exists(tl_tmp("synth/train/00000.tar")), "the previous case writes the shards");
    static char out[1 << 14], err[1 << 16];
    char cmd[4000], ef[600];
    snprintf(ef, sizeof ef, "%s/mpi.err", tl_tmpdir);
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 "
             "timeout 120 mpirun -np 2 --oversubscribe --bind-to none -x CLIPMOD_THREADS=1 %s train "
             "--train-data %s/synth/train/00000.tar --val-data %s/synth/val/00000.tar --model %s/model.json --tokenizer bytes "
             "--batch-size 8 --epochs 1 --warmup 1 --lr 1e-3 --logs %s/logs --name mpi --precision fp32 2>%s",
             tl_clipmod_bin(), tl_tmpdir, tl_tmpdir, tl_tmpdir, tl_tmpdir, ef);
    FILE *p = popen(cmd, "r");
    REQUIRE(p, "popen");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    tl_slurp_(ef, err, sizeof err);
    REQUIRE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "mpirun -np 2 train on one shard: status %d: %s", rc, err);
    CHECK(strstr(err, "data-parallel: 2 ranks"), "not data-parallel: %s", err);
    CHECK(count_of(err, "1 shard for 4 workers x 2 processes") == 1, "one split warning (rank 0) expected: %s", err);
    CHECK(!strstr(err, "ran out"), "a rank ran out of data: %s", err);
    cJSON *j = cJSON_Parse(out);
    cJSON *nn = cJSON_GetObjectItem(j, "n"), *steps = cJSON_GetObjectItem(j, "steps");
    CHECK(cJSON_IsNumber(nn) && nn->valueint == 24, "validation n %d, want 24 (summed over ranks)", cJSON_IsNumber(nn) ? nn->valueint : -1);
    CHECK(cJSON_IsNumber(steps) && steps->valueint == 4, "steps %d, want 4", cJSON_IsNumber(steps) ? steps->valueint : -1);
    cJSON_Delete(j);
    /* `mpirun -np 2 clipmod eval --scores-out` on the one val tar (each rank every other sample):
       the rows come back in the one-process order */
    char ck[600], one[600], two[600];
    snprintf(ck, sizeof ck, "%s/logs/mpi/checkpoints/epoch_1.safetensors", tl_tmpdir);
    snprintf(one, sizeof one, "%s/scores1.jsonl", tl_tmpdir);
    snprintf(two, sizeof two, "%s/scores2.jsonl", tl_tmpdir);
    snprintf(cmd, sizeof cmd, "eval --model %s --val-data %s/synth/val/00000.tar --json --batch-size 5 --scores-out %s", ck, tl_tmpdir, one);
    rc = tl_run_clipmod(cmd, out, sizeof out, err, sizeof err);
    REQUIRE(rc == 0, "eval: exit %d: %s", rc, err);
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1 "
             "timeout 120 mpirun -np 2 --oversubscribe --bind-to none -x CLIPMOD_THREADS=1 %s eval --model %s "
             "--val-data %s/synth/val/00000.tar --json --batch-size 5 --scores-out %s >/dev/null 2>%s",
             tl_clipmod_bin(), ck, tl_tmpdir, two, ef);
    rc = system(cmd);
    tl_slurp_(ef, err, sizeof err);
    REQUIRE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "mpirun -np 2 eval: status %d: %s", rc, err);
    CmScores a, b;
    cm_scores_init(&a, 0);
    cm_scores_init(&b, 0);
    REQUIRE(cm_scores_read(one, &a) == CM_OK && cm_scores_read(two, &b) == CM_OK, "%s", cm_last_error());
    int same = a.n == 24 && b.n == a.n;
    for (int64_t i = 0; same && i < a.n; i++) same = !strcmp(a.key[i], b.key[i]) && a.label[i] == b.label[i];
    CHECK(same, "2-rank scores (%lld rows) not in the one-process order (%lld rows)", (long long)b.n, (long long)a.n);
    cm_scores_free(&a);
    cm_scores_free(&b);
}

int main(void) {
    if (!tl_tmpdir_make("split")) { perror("mkdtemp"); return 1; }
    RUN(test_split_by_shard_3x2);
    RUN(test_split_by_sample_1x2x2);
    RUN(test_split_by_sample_3x2x2);
    RUN(test_split_by_sample_uneven);
    RUN(test_single_shard_batches);
    RUN(test_validation_split);
    RUN(test_resampled_unaffected);
    RUN(test_cli_single_shard_default_workers);
    RUN(test_mpi_single_shard);
    tl_tmpdir_remove();
    return tl_summary("test_data_split");
}
