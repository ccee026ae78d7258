/*
 * test_data_nolabel.c — samples without .json (issue 13, item 4): DESIGN §4.2 / docs/data.md say
 * they get label 0 (plain CLIP shards). One rule (cm_sample_label) everywhere, counted and
 * reported: the threaded loader (BPE path), the simple shard source (`train`/`eval` with the
 * byte-level tokenizer), `clipmod train` + `--val-data`, `clipmod eval` (n > 0, not 0) and
 * `clipmod inspect` (prints the label and "no_json").
 */
#include "testlib.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>
#include "data/image.h"
#include "data/loader.h"
#include "data/synth.h"
#include "data/wds.h"
#include "train/textenc.h"

static char tmpdir[256];
static char out[1 << 18], err[1 << 16];

static const char MODEL_JSON[] =
    "{\"model_name\":\"nolabel-test\",\"model_cfg\":{\"embed_dim\":32,\"quick_gelu\":false,"
    "\"vision_cfg\":{\"image_size\":32,\"layers\":1,\"width\":32,\"patch_size\":8,\"head_width\":16,\"mlp_ratio\":2.0},"
    "\"text_cfg\":{\"context_length\":48,\"vocab_size\":258,\"width\":32,\"heads\":2,\"layers\":1,\"mlp_ratio\":2.0}},"
    "\"head\":{\"d\":32,\"heads\":4,\"ff\":64,\"layers\":1,\"classes\":7}}\n";

/* n samples: jpg + txt, and a .json with label 5 only for the indices in with_json (or none) */
static int write_shard(const char *name, int n, int json_every) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    CmShardWriter *w;
    if (cm_mkdir_p(dir) || cm_shard_writer_open(dir, 1000, &w)) return 0;
    for (int i = 0; i < n; i++) {
        CmSynthSample s;
        cm_synth_draw(1, CM_SYNTH_TRAIN, i, &s);
        CmImage im = {0};
        uint8_t *jpg = NULL;
        size_t len = 0;
        if (cm_synth_render(&s, 32, &im) || cm_jpeg_encode(&im, 90, &jpg, &len)) { cm_image_free(&im); cm_shard_writer_close(w); return 0; }
        cm_image_free(&im);
        char key[32];
        snprintf(key, sizeof key, "s%04d", i);
        const char *js = "{\"label\":5,\"dataset\":\"test\"}";
        CmWdsOut f[3] = {{"jpg", jpg, len}, {"txt", s.caption, strlen(s.caption)}, {"json", js, strlen(js)}};
        int nf = json_every > 0 && i % json_every == 0 ? 3 : 2;
        cm_status st = cm_shard_writer_write(w, key, f, nf);
        cm_free(jpg);
        if (st) { cm_shard_writer_close(w); return 0; }
    }
    return cm_shard_writer_close(w) == CM_OK;
}

static cm_status byte_encode(void *ctx, const char *text, size_t len, int32_t *ids, int ctx_len) {
    (void)ctx;
    cm_byte_tokenize(text, len, ids, ctx_len);
    return CM_OK;
}

static void test_sample_label_rule(void) {
    CmWdsSample s;
    memset(&s, 0, sizeof s);
    int label = -1;
    bool no_json = false;
    CHECK(cm_sample_label(&s, &label, &no_json) == CM_OK && label == 0 && no_json, "no json: label %d no_json %d", label, no_json);
}

/* the threaded loader (every BPE model trains and evaluates through it) */
static void test_loader_no_json(void) {
    char urls[400];
    snprintf(urls, sizeof urls, "%s/nojson/00000.tar", tmpdir);
    for (int train = 0; train < 2; train++) {
        CmLoaderConfig c = {0};
        c.urls = urls; c.train = train; c.batch_size = 8; c.workers = 1; c.world_size = 1; c.image_size = 32;
        c.num_samples = train ? 16 : 0; c.resampled = false;
        c.encode = byte_encode; c.context_len = 48;
        CmLoader *l = NULL;
        REQUIRE(cm_loader_open(&c, &l) == CM_OK, "open: %s", cm_last_error());
        REQUIRE(cm_loader_start_epoch(l, 0) == CM_OK, "epoch: %s", cm_last_error());
        CmBatch *b;
        int n = 0, nonzero = 0, r;
        while ((r = cm_loader_next(l, &b)) == 1) {
            for (int i = 0; i < b->n; i++) nonzero += b->labels[i] != 0;
            n += b->n;
            cm_batch_free(b);
        }
        CHECK(r == 0, "loader failed: %s", cm_last_error());
        CmLoaderStats st = cm_loader_stats(l);
        CHECK(n == 16 && nonzero == 0, "train=%d: %d samples (want 16), %d with a non-zero label", train, n, nonzero);
        CHECK(st.no_json == n && st.bad_samples == 0, "train=%d: no_json %lld, bad %lld", train, (long long)st.no_json,
              (long long)st.bad_samples);
        cm_loader_close(l);
    }
}

static int run(const char *args) {
    char cmd[4096], of[400], ef[400];
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(of, sizeof of, "%s/out.txt", tmpdir);
    snprintf(ef, sizeof ef, "%s/err.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s/clipmod %s >%s 2>%s", bd, args, of, ef);
    int st = system(cmd);
    tl_slurp_(of, out, sizeof out);
    tl_slurp_(ef, err, sizeof err);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *last_json(void) {
    char *last = NULL;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) last = l;
    return last ? cJSON_Parse(last) : NULL;
}

/* train (+ validation) and eval on shards without .json: they run, n > 0, a counted warning */
static void test_cli_train_eval_no_json(void) {
    CLIPMOD_BIN_OR_SKIP();
    char args[3000];
    snprintf(args, sizeof args,
             "train --train-data %s/nojson/00000.tar --val-data %s/nojson/00000.tar --train-num-samples 16 --model %s/model.json "
             "--tokenizer bytes --batch-size 8 --epochs 1 --logs %s/logs --name nj --precision fp32 --workers 1 --threads 1",
             tmpdir, tmpdir, tmpdir, tmpdir);
    int rc = run(args);
    REQUIRE(rc == 0, "train on shards without .json: exit %d: %s", rc, err);
    CHECK(strstr(err, "no .json metadata") && strstr(err, "label 0"), "no warning about the missing .json: %s", err);
    cJSON *j = last_json();
    cJSON *n = cJSON_GetObjectItem(j, "n");
    CHECK(cJSON_IsNumber(n) && n->valueint == 16, "train's validation n = %d, want 16", cJSON_IsNumber(n) ? n->valueint : -1);
    cJSON_Delete(j);
    snprintf(args, sizeof args, "eval --model %s/logs/nj/checkpoints/epoch_1.safetensors --val-data %s/nojson/00000.tar --json --batch-size 5",
             tmpdir, tmpdir);
    rc = run(args);
    REQUIRE(rc == 0, "eval: exit %d: %s", rc, err);
    j = last_json();
    n = cJSON_GetObjectItem(j, "n");
    CHECK(cJSON_IsNumber(n) && n->valueint == 16, "eval n = %d, want 16", cJSON_IsNumber(n) ? n->valueint : -1);
    cJSON *conf = cJSON_GetObjectItem(j, "confusion"), *row0 = cJSON_GetArrayItem(conf, 0);
    int row0sum = 0;
    for (int k = 0; k < cJSON_GetArraySize(row0); k++) row0sum += cJSON_GetArrayItem(row0, k)->valueint;
    CHECK(row0sum == 16, "all 16 samples should be true class 0 in the confusion matrix (row 0 holds %d)", row0sum);
    CHECK(strstr(err, "16 samples had no .json"), "eval: no counted warning: %s", err);
    cJSON_Delete(j);
}

static void test_cli_inspect_no_json(void) {
    CLIPMOD_BIN_OR_SKIP();
    char args[600];
    snprintf(args, sizeof args, "inspect %s/mixed/00000.tar", tmpdir);
    int rc = run(args);
    REQUIRE(rc == 0, "inspect: exit %d: %s", rc, err);
    int lines = 0, no_json = 0, five = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(l);
        lines++;
        cJSON *lab = cJSON_GetObjectItem(j, "label");
        bool nj = cJSON_IsTrue(cJSON_GetObjectItem(j, "no_json"));
        no_json += nj && cJSON_IsNumber(lab) && lab->valueint == 0;
        five += !nj && cJSON_IsNumber(lab) && lab->valueint == 5;
        cJSON_Delete(j);
    }
    CHECK(lines == 6 && no_json == 4 && five == 2, "inspect: %d lines, %d no_json with label 0, %d labelled 5: %s", lines, no_json, five, err);
    CHECK(strstr(err, "4 of 6 samples have no .json"), "inspect: no counted warning: %s", err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_nolabel_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    char p[400];
    snprintf(p, sizeof p, "%s/model.json", tmpdir);
    if (!write_shard("nojson", 16, 0) || !write_shard("mixed", 6, 3) || tl_write_text(p, MODEL_JSON)) {
        fprintf(stderr, "setup: %s\n", cm_last_error());
        return 1;
    }
    RUN(test_sample_label_rule);
    RUN(test_loader_no_json);
    RUN(test_cli_train_eval_no_json);
    RUN(test_cli_inspect_no_json);
    snprintf(tl_tmpdir, sizeof tl_tmpdir, "%s", tmpdir);
    tl_tmpdir_remove();
    return tl_summary("test_data_nolabel");
}
