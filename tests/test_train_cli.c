/*
 * test_train_cli.c — `clipmod train`, `eval`, `predict` from the outside, as users call them:
 * shards written at test time (the project's shard writer; the images and captions of
 * golden/tiny's inputs, read from ../shared) feed a LoRA run of the tiny model with OpenCLIP's
 * flags (accum 2, grad checkpointing, resampled, 2 workers, the seed command's no-op flags);
 * the run folder holds out.log, params.txt, results.jsonl and trainable-only checkpoints;
 * `eval --json` on the final checkpoint reproduces the run's last validation exactly; `predict`
 * answers per pair; --resume latest after the end is a no-op; bad usage exits 2 naming the flag.
 */
#include "testlib.h"
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>
#include "data/wds.h"
#include "io/tensorfile.h"

static char tmpdir[256];
static char out_buf[1 << 20], err_buf[1 << 16];

/* Run a shell command; capture stdout / stderr; return the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char cmd[8192], full[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    /* "clipmod ..." runs $BUILD/clipmod (build/ or build-asan/) */
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(full, sizeof full, "%s/%s >%s/out.txt 2>%s/err.txt", bd, cmd, tmpdir, tmpdir);
    int rc = system(full);
    char p[400];
    uint8_t *b; size_t n;
    out_buf[0] = err_buf[0] = 0;
    snprintf(p, sizeof p, "%s/out.txt", tmpdir);
    if (!cm_read_file(p, sizeof out_buf - 1, &b, &n)) { memcpy(out_buf, b, n); out_buf[n] = 0; cm_free(b); }
    snprintf(p, sizeof p, "%s/err.txt", tmpdir);
    if (!cm_read_file(p, 1 << 24, &b, &n)) { size_t k = n < sizeof err_buf - 1 ? n : sizeof err_buf - 1; memcpy(err_buf, b + n - k, k); err_buf[k] = 0; cm_free(b); }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static cJSON *last_json_line(void) {
    char *s = out_buf, *last = NULL;
    for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n")) last = l;
    return last ? cJSON_Parse(last) : NULL;
}

static const struct { const char *img, *cap; int label; } samples[8] = {
    {"data/coco/000000086220.jpg", "A car and a public transit vehicle on a road.", 0},
    {"data/fakeddit/images/177jpd.jpg", "Humorous Soviet-style propaganda commercial by adult swim", 6},
    {"data/fakeddit/images/16pfs3.jpg", "thumbs up but i dont think it will fit", 1},
    {"data/coco/000000039769.png", "A couple of cats laying on top of a pink blanket.", 0},
    {"data/fakeddit/images/2426x5.jpg", "a title with a word", 4},
    {"data/fakeddit/images/26mjyb.jpg", "orthodox priest blesses rocket before liftoff", 2},
    {"data/fakeddit/images/1qz4mt.jpg", "Google to remove image of dead teenager from Maps", 0},
    {"data/fakeddit/images/2vjjnd.jpg", "a long clean title", 5},
};

static int write_shards(void) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/shards", tmpdir);
    CmShardWriter *w;
    if (cm_mkdir_p(dir) || cm_shard_writer_open(dir, 4, &w)) return 0;
    for (int i = 0; i < 8; i++) {
        uint8_t *img; size_t n;
        if (cm_read_file(tl_shared(samples[i].img), 1 << 26, &img, &n)) { cm_shard_writer_close(w); return 0; }
        char js[64], key[16];
        snprintf(js, sizeof js, "{\"label\":%d,\"dataset\":\"test\"}", samples[i].label);
        snprintf(key, sizeof key, "s%02d", i);
        const char *ext = strstr(samples[i].img, ".png") ? "png" : "jpg";
        CmWdsOut f[3] = {{ext, img, n}, {"txt", samples[i].cap, strlen(samples[i].cap)}, {"json", js, strlen(js)}};
        cm_status st = cm_shard_writer_write(w, key, f, 3);
        cm_free(img);
        if (st) { cm_shard_writer_close(w); return 0; }
    }
    return cm_shard_writer_close(w) == CM_OK;
}

#define COMMON "--model %s --pretrained %s --vocab %s --enable-lora --batch-size 4 --accum-freq 2 --epochs 2 " \
               "--train-num-samples 8 --warmup 1 --lr 1e-3 --wd 0.1 --precision fp32 --workers 2 --seed 3 " \
               "--dataset-resampled --dataset-type webdataset --grad-checkpointing --save-frequency 1 --save-most-recent " \
               "--report-to tensorboard --zeroshot-frequency 1 --local-loss --gather-with-grad --log-every-n-steps 1 " \
               "--train-data '%s/shards/{00000..00001}.tar' --val-data '%s/shards/{00000..00001}.tar' --logs %s --threads 2"

static void test_train_eval_predict(void) {
    SHARED_OR_SKIP();
    REQUIRE(write_shards(), "shards: %s", cm_last_error());
    const char *cfg = tl_shared("golden/tiny/config.json"), *w = tl_shared("golden/tiny/model.safetensors"),
               *vocab = tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz");
    int rc = run("clipmod train " COMMON " --name cli", cfg, w, vocab, tmpdir, tmpdir, tmpdir);
    REQUIRE(rc == 0, "train exit %d: %s", rc, err_buf);
    cJSON *j = last_json_line();
    REQUIRE(j, "last stdout line is not JSON: %s", out_buf);
    CHECK(cJSON_GetObjectItem(j, "n") && cJSON_GetObjectItem(j, "n")->valueint == 8 && cJSON_GetObjectItem(j, "top1") &&
          cJSON_GetObjectItem(j, "steps")->valueint == 2, "train JSON");
    double top1 = cJSON_GetObjectItem(j, "top1")->valuedouble, clip = cJSON_GetObjectItem(j, "clip_val_loss")->valuedouble;
    cJSON_Delete(j);
    CHECK(strstr(err_buf, "Train Epoch: 1") && strstr(err_buf, "Logit Scale") && strstr(err_buf, "ETA"), "progress lines: %s", err_buf);
    char p[600];
    const char *files[] = {"out.log", "params.txt", "results.jsonl", "checkpoints/epoch_1.safetensors",
                           "checkpoints/epoch_2.safetensors", "checkpoints/epoch_latest.safetensors"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/cli/%s", tmpdir, files[i]);
        CHECK(cm_file_exists(p), "%s missing", files[i]);
    }
    snprintf(p, sizeof p, "%s/cli/checkpoints/epoch_2.safetensors", tmpdir);
    CmTensorFile *f;
    REQUIRE_OK(cm_tensorfile_open(p, &f), "checkpoint: %s", cm_last_error());
    CHECK(cm_tensorfile_count(f) == 36 * 3, "LoRA checkpoint holds %d tensors (36 trainable + their AdamW state)", cm_tensorfile_count(f));
    CHECK(!strcmp(cm_tensorfile_metadata(f, "epoch"), "2") && !strcmp(cm_tensorfile_metadata(f, "step"), "2"), "epoch/step");
    cm_tensorfile_close(f);
    snprintf(p, sizeof p, "%s/cli/params.txt", tmpdir);
    uint8_t *b; size_t n;
    if (!cm_read_file(p, 1 << 20, &b, &n)) {
        CHECK(strstr((char *)b, "accum_freq: 2\n") && strstr((char *)b, "enable_lora: True\n") && strstr((char *)b, "lr: 0.001\n"), "params.txt");
        cm_free(b);
    }
    snprintf(p, sizeof p, "%s/cli/out.log", tmpdir);
    if (!cm_read_file(p, 1 << 24, &b, &n)) {
        CHECK(strstr((char *)b, " | INFO | Train Epoch: 0") && strstr((char *)b, " | INFO | Eval Epoch: 2"), "out.log lines");
        cm_free(b);
    }

    /* eval on the final checkpoint == the run's last validation */
    rc = run("clipmod eval --model %s/cli/checkpoints/epoch_2.safetensors --val-data '%s/shards/{00000..00001}.tar' --json --vocab %s --batch-size 4",
             tmpdir, tmpdir, vocab);
    REQUIRE(rc == 0, "eval exit %d: %s", rc, err_buf);
    j = last_json_line();
    REQUIRE(j, "eval output: %s", out_buf);
    CHECK(cJSON_GetObjectItem(j, "n")->valueint == 8 && cJSON_GetObjectItem(j, "top1")->valuedouble == top1 &&
          fabs(cJSON_GetObjectItem(j, "clip_val_loss")->valuedouble - clip) < 1e-9, "eval differs from the run's validation: %s", out_buf);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_class")) == 7 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "confusion")) == 7, "eval JSON shape");
    cJSON_Delete(j);
    rc = run("clipmod eval --model %s/cli/checkpoints/epoch_2.safetensors --val-data '%s/shards/{00000..00001}.tar' --vocab %s "
             "--scores-out %s/scores.jsonl", tmpdir, tmpdir, vocab, tmpdir);
    CHECK(rc == 0 && strstr(out_buf, "confusion") && strstr(out_buf, "Hate"), "eval table: %s", out_buf);
    /* --scores-out through the threaded loader: every sample's key and shard, in order */
    snprintf(p, sizeof p, "%s/scores.jsonl", tmpdir);
    if (!cm_read_file(p, 1 << 20, &b, &n)) {
        int lines = 0, good = 0;
        for (char *l = strtok((char *)b, "\n"); l; l = strtok(NULL, "\n"), lines++) {
            cJSON *sj = cJSON_Parse(l);
            char want_key[16], want_url[32];
            snprintf(want_key, sizeof want_key, "s%02d", lines);
            snprintf(want_url, sizeof want_url, "/shards/%05d.tar", lines / 4);
            const cJSON *k = sj ? cJSON_GetObjectItem(sj, "key") : NULL, *u = sj ? cJSON_GetObjectItem(sj, "url") : NULL;
            good += lines < 8 && cJSON_IsString(k) && !strcmp(k->valuestring, want_key) && cJSON_IsString(u) &&
                    strlen(u->valuestring) > strlen(want_url) && !strcmp(u->valuestring + strlen(u->valuestring) - strlen(want_url), want_url) &&
                    cJSON_GetObjectItem(sj, "label")->valueint == samples[lines].label;
            cJSON_Delete(sj);
        }
        CHECK(lines == 8 && good == 8, "scores: %d lines, %d with the right key, shard and label", lines, good);
        cm_free(b);
    } else CHECK(0, "eval --scores-out wrote nothing: %s", cm_last_error());

    /* predict */
    rc = run("clipmod predict --model %s/cli/checkpoints/epoch_2.safetensors --vocab %s --image %s --text 'A car.' --image %s --text 'cats'",
             tmpdir, vocab, tl_shared(samples[0].img), tl_shared(samples[3].img));
    REQUIRE(rc == 0, "predict exit %d: %s", rc, err_buf);
    int lines = 0;
    for (char *l = strtok(out_buf, "\n"); l; l = strtok(NULL, "\n")) {
        cJSON *x = cJSON_Parse(l);
        cJSON *pr = x ? cJSON_GetObjectItem(x, "probs") : NULL;
        double s = 0;
        for (int c = 0; pr && c < cJSON_GetArraySize(pr); c++) s += cJSON_GetArrayItem(pr, c)->valuedouble;
        CHECK(x && cJSON_IsString(cJSON_GetObjectItem(x, "label")) && cJSON_GetArraySize(pr) == 7 && fabs(s - 1) < 1e-5, "predict line %s", l);
        cJSON_Delete(x);
        lines++;
    }
    CHECK(lines == 2, "%d predict lines", lines);
    /* --jsonl: pairs from a file, one answer per line in order; a malformed line is bad usage */
    char jl[600];
    snprintf(jl, sizeof jl, "%s/pairs.jsonl", tmpdir);
    FILE *jf = fopen(jl, "w");
    REQUIRE(jf, "jsonl");
    fprintf(jf, "{\"image\": \"%s\", \"text\": \"a car\"}\n\n{\"image\": \"%s\", \"text\": \"cats\"}\n", tl_shared(samples[0].img), tl_shared(samples[3].img));
    fclose(jf);
    rc = run("clipmod predict --model %s/cli/checkpoints/epoch_2.safetensors --vocab %s --jsonl %s", tmpdir, vocab, jl);
    CHECK(rc == 0 && strstr(out_buf, "\"probs\"") && strchr(strchr(out_buf, '\n') + 1, '\n'), "jsonl predict %d: %s %s", rc, out_buf, err_buf);
    jf = fopen(jl, "a");
    fprintf(jf, "{\"image\": 3}\n");
    fclose(jf);
    rc = run("clipmod predict --model %s/cli/checkpoints/epoch_2.safetensors --vocab %s --jsonl %s", tmpdir, vocab, jl);
    CHECK(rc == 1 && strstr(err_buf, "line 4"), "malformed jsonl %d: %s", rc, err_buf);   /* a data error (docs/flags.md) */

    /* resume through the CLI and the threaded loader (2 workers, resampled, dropout on): a run
       resumed from epoch_1 of "cli" ends bit-identical to "cli" (tensors and AdamW state) */
    rc = run("clipmod train " COMMON " --name resumed --resume %s/cli/checkpoints/epoch_1.safetensors", cfg, w, vocab, tmpdir, tmpdir,
             tmpdir, tmpdir);
    REQUIRE(rc == 0, "resumed run exit %d: %s", rc, err_buf);
    {
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/cli/checkpoints/epoch_2.safetensors", tmpdir);
        snprintf(pb, sizeof pb, "%s/resumed/checkpoints/epoch_2.safetensors", tmpdir);
        CmTensorFile *fa, *fb;
        REQUIRE_OK(cm_tensorfile_open(pa, &fa), "a");
        REQUIRE_OK(cm_tensorfile_open(pb, &fb), "b");
        int same = 0, total = cm_tensorfile_count(fa);
        for (int i = 0; i < total; i++) {
            const CmTensorView *a = cm_tensorfile_at(fa, i), *b = cm_tensorfile_find(fb, a->name);
            same += b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
        }
        CHECK(total == 108 && same == total && cm_tensorfile_count(fb) == total, "resumed run: %d of %d tensors bit-identical", same, total);
        cm_tensorfile_close(fa);
        cm_tensorfile_close(fb);
    }

    /* --resume latest after the last epoch: nothing to do, exits 0 */
    rc = run("clipmod train " COMMON " --name cli --resume latest", cfg, w, vocab, tmpdir, tmpdir, tmpdir);
    CHECK(rc == 0 && strstr(err_buf, "resuming checkpoint"), "resume latest exit %d: %s", rc, err_buf);
    /* the same name without --resume is refused */
    rc = run("clipmod train " COMMON " --name cli", cfg, w, vocab, tmpdir, tmpdir, tmpdir);
    CHECK(rc == 1 && strstr(err_buf, "already exists"), "reuse exit %d: %s", rc, err_buf);   /* docs/flags.md: the state on disk, not the command line */
    /* the seed project's warmup bug is flagged loudly */
    rc = run("clipmod train " COMMON " --name warm --epochs 1 --warmup 10000 --val-frequency 0", cfg, w, vocab, tmpdir, tmpdir, tmpdir);
    CHECK(rc == 0 && strstr(err_buf, "--warmup 10000 >= total optimizer steps"), "warmup warning missing: %s", err_buf);
}

static void test_bad_usage(void) {
    int rc = run("clipmod train --train-data x.tar --accum-freq 0");
    CHECK(rc == 2 && strstr(err_buf, "--accum-freq"), "accum 0: %d %s", rc, err_buf);
    rc = run("clipmod train --train-data x.tar --bogus-flag");
    CHECK(rc == 2 && strstr(err_buf, "--bogus-flag"), "unknown flag: %d %s", rc, err_buf);
    rc = run("clipmod eval --model x");
    CHECK(rc == 2 && strstr(err_buf, "--val-data"), "eval usage: %d %s", rc, err_buf);
    rc = run("clipmod predict --model /nonexistent/model.safetensors --image a --text b");
    CHECK(rc == 1 && strstr(err_buf, "/nonexistent/model.safetensors"), "predict missing model: %d %s", rc, err_buf);
    rc = run("clipmod predict --model m --image a");
    CHECK(rc == 2, "unpaired: %d %s", rc, err_buf);
    rc = run("clipmod train --help");
    CHECK(rc == 0 && strstr(out_buf, "--enable-lora") && strstr(out_buf, "--accum-freq"), "help");
    rc = run("clipmod train --train-data '/nonexistent/{0..1}.tar' --model %s --vocab %s --precision fp32 --logs none "
             "--train-num-samples 8 --workers 1 --batch-size 4", tl_shared("golden/tiny/config.json"), tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz"));
    CHECK(rc == 1 && strstr(err_buf, "clipmod train:"), "missing shards: %d %s", rc, err_buf);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_cli_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_train_eval_predict);
    RUN(test_bad_usage);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    return tl_summary("test_train_cli");
}
