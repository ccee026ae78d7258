/*
 * test_exit_codes.c — one exit-code policy for every command (docs/flags.md), tested from the
 * outside as users call build/clipmod: 0 ok, 1 a runtime or data failure, 2 usage (the command
 * line alone is wrong). A table of (command line, expected status, text that stderr/stdout must
 * hold) covers every command; the repro commands of issue 13 (items 1, 2, 7, 8, 9) are rows of it
 * or small tests below. Needs nothing from ../shared: the fixture is the demo's synthetic data and
 * a one-epoch demo checkpoint (bytes tokenizer), made in a temporary folder in ~1 s.
 */
#include "testlib.h"
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>
#include "model/model.h"
#include "train/checkpoint.h"

static char tmpdir[256], clipmod[1024];
static char out_buf[1 << 20], err_buf[1 << 18];
static size_t out_len;

/* Run "clipmod ARGS" in tmpdir with stdout/stderr captured; returns the exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char args[4096], full[6000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    /* bounded: a regression to the old behaviour (--workers 100000 made a 6.4 M-sample epoch) fails, never hangs */
    snprintf(full, sizeof full, "cd '%s' && timeout -k 5 120 %s %s </dev/null >out.txt 2>err.txt", tmpdir, clipmod, args);
    int rc = system(full);
    char p[400];
    uint8_t *b; size_t n;
    out_buf[0] = err_buf[0] = 0;
    out_len = 0;
    snprintf(p, sizeof p, "%s/out.txt", tmpdir);
    if (!cm_read_file(p, 1 << 26, &b, &n)) {
        out_len = n;
        size_t k = n < sizeof out_buf - 1 ? n : sizeof out_buf - 1;
        memcpy(out_buf, b, k); out_buf[k] = 0; cm_free(b);
    }
    snprintf(p, sizeof p, "%s/err.txt", tmpdir);
    if (!cm_read_file(p, 1 << 26, &b, &n)) {
        size_t k = n < sizeof err_buf - 1 ? n : sizeof err_buf - 1;
        memcpy(err_buf, b, k); err_buf[k] = 0; cm_free(b);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int lines(const char *s) { return count(s, "\n"); }

static bool write_text(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return cm_write_file_atomic(p, text, strlen(text)) == CM_OK;
}

#define CK "d/logs/demo/checkpoints/epoch_1.safetensors"
#define TR "train --model d/demo_model.json --tokenizer bytes --train-data d/train/00000.tar --logs none --epochs 1 " \
           "--batch-size 8 --precision fp32 --warmup 1 --threads 1"
#define VAL "d/val/00000.tar"

/* The demo's data and checkpoint; a checkpoint without a classification head; an image; inputs. */
static bool fixture(void) {
    if (run("demo --data-dir d --epochs 1 --train-samples 16 --val-samples 16 --batch-size 8") != 0) {
        fprintf(stderr, "demo fixture failed: %s\n", err_buf);
        return false;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cd '%s' && tar xf " VAL " val-0000000.jpg && mv val-0000000.jpg img.jpg && mkdir -p imgs && "
             "cp img.jpg imgs/a1.jpg", tmpdir);
    if (system(cmd)) return false;
    char p[512];
    snprintf(p, sizeof p, "%s/d/demo_model.json", tmpdir);
    CmModelConfig cfg;
    if (cm_config_load(p, &cfg)) return false;
    cfg.has_head = false;
    CmModel *m;
    if (cm_model_create(&cfg, &m)) return false;
    cm_model_init(m, 1);
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.name, sizeof meta.name, "nohead");
    snprintf(meta.tokenizer, sizeof meta.tokenizer, "bytes");
    meta.mode = CM_TRAIN_NONE;
    snprintf(p, sizeof p, "%s/nohead.safetensors", tmpdir);
    cm_status st = cm_checkpoint_save(p, m, NULL, &meta);
    cm_model_free(m);
    if (st) { fprintf(stderr, "nohead: %s\n", cm_last_error()); return false; }
    return write_text("empty.jsonl", "\n\n") && write_text("bad.jsonl", "{\"image\": 3}\n") &&
           write_text("t.tsv", "id\tclean_title\t6_way_label\na1\tbad \xff title\t1\nb2\tno image here\t2\n");
}

typedef struct {
    const char *args;   /* after "clipmod " */
    int want;
    const char *err;    /* stderr must hold this (NULL: anything) */
    const char *out;    /* stdout must hold this (NULL: anything) */
} Case;

static const Case cases[] = {
    /* dispatch */
    {"", 2, "usage", NULL},
    {"bogus", 2, "unknown command", NULL},
    {"--version", 0, NULL, "clipmod"},
    /* info */
    {"info --model-name bogus", 2, "--model-name bogus", NULL},
    {"info --lora-rank 0", 2, "--lora-rank", NULL},
    {"info --lora-rank nan", 2, "--lora-rank", NULL},
    {"info --model-name d/demo_model.json", 0, NULL, "\"clip_total\""},
    {"info --model /nonexistent.safetensors", 1, "/nonexistent.safetensors", NULL},
    /* tokenize */
    {"tokenize", 2, "no TEXT", NULL},
    {"tokenize --vocab /nonexistent/vocab.txt.gz hello", 1, "/nonexistent", NULL},
    /* preprocess */
    {"preprocess --out x.bin", 2, "--image", NULL},
    {"preprocess --image img.jpg --out x.bin --size nan", 2, "--size", NULL},
    {"preprocess --image img.jpg --out x.bin --size 0", 2, "--size", NULL},
    {"preprocess --image img.jpg --out x.bin --max-pixels -5", 2, "--max-pixels", NULL},
    {"preprocess --image /nonexistent.jpg --out x.bin", 1, "/nonexistent.jpg", NULL},
    {"preprocess --image img.jpg --out x.bin --size 8", 0, NULL, NULL},
    /* embed */
    {"embed --model " CK, 2, "nothing to embed", NULL},
    {"embed --model " CK " --model-name bogus --text a", 2, "--model-name bogus", NULL},
    {"embed --text a", 2, "--model", NULL},
    {"embed --model /nonexistent.safetensors --text a", 1, "/nonexistent.safetensors", NULL},
    /* inspect */
    {"inspect", 2, "give a shard", NULL},
    {"inspect --max-member -1 " VAL, 2, "--max-member", NULL},
    {"inspect nope.tar", 1, "nope.tar", NULL},
    {"inspect 'd/val/0000{0..0}.tar'", 0, NULL, "val-0000000"},   /* braces as --val-data reads them */
    /* prepare */
    {"prepare", 2, "which dataset", NULL},
    {"prepare fakeddit --tsv t.tsv --images imgs --out p0 --jpeg-quality 0", 2, "--jpeg-quality", NULL},
    {"prepare fakeddit --tsv t.tsv --images imgs --out p0 --image-size -1", 2, "--image-size", NULL},
    {"prepare mmhs150k --root r --split bogus --out p0", 2, "--split", NULL},
    {"prepare fakeddit --tsv t.tsv --images /nonexistent --out p1", 1, "no sample written", "\"written\":0"},
    {"prepare fakeddit --tsv /nonexistent.tsv --images imgs --out p2", 1, "/nonexistent.tsv", NULL},
    /* train: values refused by the parser, naming the flag (issue 13 item 2) */
    {"train --epochs 1", 2, "--train-data", NULL},
    {TR " --lr nan", 2, "--lr", NULL},
    {TR " --lr inf", 2, "--lr", NULL},
    {TR " --lr -1", 2, "--lr", NULL},
    {TR " --beta1 nan", 2, "--beta1", NULL},
    {TR " --beta2 nan", 2, "--beta2", NULL},
    {TR " --beta2 1", 2, "--beta2", NULL},
    {TR " --eps nan", 2, "--eps", NULL},
    {TR " --grad-clip-norm nan", 2, "--grad-clip-norm", NULL},
    {TR " --grad-clip-norm 0", 2, "--grad-clip-norm", NULL},
    {TR " --contrastive-weight -1", 2, "--contrastive-weight", NULL},
    {TR " --epochs-cooldown -1", 2, "--epochs-cooldown", NULL},
    {TR " --threads -2", 2, "--threads", NULL},
    {TR " --workers -1", 2, "--workers", NULL},
    {TR " --workers 100000", 2, "--workers", NULL},
    {TR " --seed -1", 2, "--seed", NULL},
    {TR " --model bogus", 2, "--model bogus", NULL},
    {TR " --tokenizer words", 2, "--tokenizer", NULL},
    /* train: refused flags are usage errors too, --opt sgd like the others (item 7) */
    {TR " --opt sgd", 2, "--opt", NULL},
    {TR " --siglip", 2, "--siglip", NULL},
    {TR " --distill-model ViT-B-32", 2, "--distill-model", NULL},
    {TR " --distill-pretrained openai", 2, "--distill-pretrained", NULL},
    {TR " --precision bf16", 2, "--precision", NULL},
    {TR " --image-mean 0.5 0.5 0.5", 2, "--image-mean", NULL},
    {TR " --remote-sync s3://x", 2, "--remote-sync", NULL},
    {TR " --lock-image-unlocked-groups 2", 2, "--lock-image-unlocked-groups: partial unlocking is not implemented", NULL},
    {TR " --force-patch-dropout 0.5", 2, "--force-patch-dropout: patch dropout is not implemented", NULL},
    {TR " --force-patch-dropout 0", 0, NULL, NULL},
    {TR " --dataset-type csv", 2, "--dataset-type", NULL},
    /* train: runtime and data failures (items 1, 7) */
    {TR " --val-data typo.tar", 1, "no sample could be read from --val-data", NULL},
    {TR " --lr 1e30", 1, "diverged", NULL},
    {"train --model d/demo_model.json --tokenizer bytes --train-data nope.tar --train-num-samples 16 --logs none "
     "--epochs 1 --batch-size 8 --threads 1", 1, "--train-data", NULL},
    {TR, 0, NULL, "\"steps\":2"},
    {TR " --val-data '" VAL "::nope{0..2}.tar'", 0, "0 training and 3 validation samples/shards were skipped", "\"train_skipped\":0,\"val_skipped\":3"},
    /* eval */
    {"eval --model " CK, 2, "--val-data", NULL},
    {"eval --model " CK " --val-data " VAL " --batch-size 0", 2, "--batch-size", NULL},
    {"eval --model " CK " --val-data " VAL " --workers -1", 2, "--workers", NULL},
    {"eval --model " CK " --val-data " VAL " --model-name bogus", 2, "--model-name bogus", NULL},
    {"eval --model " CK " --val-data typo.tar --json", 1, "typo.tar", NULL},
    {"eval --model nohead.safetensors --val-data " VAL, 1, "no classification head", NULL},
    {"eval --model /nonexistent.safetensors --val-data " VAL, 1, "/nonexistent.safetensors", NULL},
    {"eval --model " CK " --val-data " VAL " --json", 0, NULL, "\"skipped\":0,\"n\":16"},
    /* predict */
    {"predict --model " CK, 2, "nothing to predict", NULL},
    {"predict --model " CK " --image img.jpg", 2, "pairs", NULL},
    {"predict --model " CK " --model-name bogus --image img.jpg --text a", 2, "--model-name bogus", NULL},
    {"predict --model " CK " --batch-size 0 --image img.jpg --text a", 2, "--batch-size", NULL},
    {"predict --model " CK " --jsonl empty.jsonl", 1, "holds no pair", NULL},
    {"predict --model " CK " --jsonl bad.jsonl", 1, "bad.jsonl line 1", NULL},
    {"predict --model " CK " --jsonl /nonexistent.jsonl", 1, "/nonexistent.jsonl", NULL},
    {"predict --model nohead.safetensors --image img.jpg --text a", 1, "no classification head", NULL},
    {"predict --model " CK " --image /nonexistent.jpg --text a", 1, "1 of 1 pairs failed", "\"error\""},
    {"predict --model " CK " --image img.jpg --text a", 0, NULL, "\"probs\""},
    /* report */
    {"report", 2, "RUN_DIR", NULL},
    {"report d/logs/demo --mistakes -1", 2, "--mistakes", NULL},
    {"report d/logs/demo --out -", 2, "--out -", NULL},
    {"eval --model " CK " --val-data " VAL " --html -", 2, "--html -", NULL},
    /* demo (flags only: a bad flag must fail before anything is written) */
    {"demo --epochs 0", 2, "--epochs", NULL},
    {"demo --lr nan", 2, "--lr", NULL},
    {"demo --ablate colour", 2, "--ablate", NULL},
};

static const char *const commands[] = {"info", "tokenize", "preprocess", "embed", "inspect", "prepare", "train",
                                       "eval", "predict", "demo", "report"};

static void test_table(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        int rc = run("%s", c->args);
        CHECK(rc == c->want, "clipmod %s: exit %d, want %d; stderr: %.400s", c->args, rc, c->want, err_buf);
        if (c->err) CHECK(strstr(err_buf, c->err), "clipmod %s: stderr lacks '%s': %.400s", c->args, c->err, err_buf);
        if (c->out) CHECK(strstr(out_buf, c->out), "clipmod %s: stdout lacks '%s': %.300s", c->args, c->out, out_buf);
    }
}

/* every command: an unknown flag is usage (2) naming it, --help is 0 and lists the flags */
static void test_every_command_usage(void) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        int rc = run("%s --no-such-flag", commands[i]);
        CHECK(rc == 2 && strstr(err_buf, "--no-such-flag"), "%s --no-such-flag: exit %d: %s", commands[i], rc, err_buf);
        rc = run("%s --help", commands[i]);
        CHECK(rc == 0 && strstr(out_buf, "usage: clipmod"), "%s --help: exit %d", commands[i], rc);
    }
}

/* item 8: no-effect flags warn once each (even when repeated) and say why; --debug logs at debug level */
static void test_noeffect_and_debug(void) {
    int rc = run(TR " --horovod --horovod --dist-url tcp://x --zeroshot-frequency 1 --torchscript --copy-codebase");
    CHECK(rc == 0, "no-effect flags: exit %d: %s", rc, err_buf);
    CHECK(count(err_buf, "--horovod has no effect here: clipmod is data-parallel over MPI") == 1, "--horovod warned %d times",
          count(err_buf, "--horovod has no effect here"));
    CHECK(strstr(err_buf, "--dist-url has no effect here") && strstr(err_buf, "--zeroshot-frequency has no effect here") &&
          strstr(err_buf, "--torchscript has no effect here") && strstr(err_buf, "--copy-codebase has no effect here"),
          "missing no-effect warnings: %s", err_buf);
    rc = run(TR);
    CHECK(rc == 0 && !strstr(err_buf, "debug:"), "debug lines without --debug");
    rc = run(TR " --debug");
    CHECK(rc == 0 && strstr(err_buf, "clipmod debug: options: {"), "--debug: exit %d, no debug line: %.300s", rc, err_buf);
    /* --help marks what is refused and what has no effect */
    rc = run("train --help");
    CHECK(rc == 0 && strstr(out_buf, "[refused: distillation is not implemented]") &&
          strstr(out_buf, "[no effect here: clipmod is data-parallel over MPI"), "train --help lacks the markers");
}

/* item 2: sizes that cannot be meant are clamped with a warning */
static void test_clamps(void) {
    int rc = run(TR " --workers 8");
    CHECK(rc == 0 && strstr(err_buf, "--workers 8 is more than the 2 batches of an epoch") && strstr(out_buf, "\"steps\":2"),
          "--workers 8 on 16 samples: exit %d: %.300s / %.200s", rc, err_buf, out_buf);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    rc = run(TR " --threads %ld", 4 * cores + 1);
    CHECK(rc == 0 && strstr(err_buf, "more than 4x the"), "--threads %ld: exit %d: %.300s", 4 * cores + 1, rc, err_buf);
}

/* item 1: partial failure = warning with counts, and the counts in the JSON */
static void test_partial_counts(void) {
    int rc = run("eval --model " CK " --val-data '" VAL "::nope{0..99}.tar' --json");
    CHECK(rc == 0 && strstr(out_buf, "\"skipped\":100,\"n\":16"), "partial eval: exit %d: %.200s", rc, out_buf);
    CHECK(strstr(err_buf, "16 samples evaluated, 100 bad samples or shards skipped"), "no warning with counts: %.300s", err_buf);
    /* item 9: the flood is capped (50 named, one line for the rest, the summary) */
    CHECK(lines(err_buf) <= 55, "%d stderr lines for 100 missing shards", lines(err_buf));
    rc = run("eval --model " CK " --val-data 'nope{0..199}.tar' --json");
    CHECK(rc == 1 && lines(err_buf) <= 55 && strstr(err_buf, "200 bad samples or shards skipped"),
          "200 missing shards: exit %d, %d lines", rc, lines(err_buf));
    rc = run("inspect 'nope{0..199}.tar'");
    CHECK(rc == 1 && lines(err_buf) <= 52 && strstr(err_buf, "150 more problems not shown"), "inspect flood: %d lines", lines(err_buf));
}

/* item 9: eval shows progress (non-terminal: a line every --progress-seconds; terminal: \r updates) */
static void test_eval_progress(void) {
    int rc = run("eval --model " CK " --val-data " VAL " --json --progress-seconds 0.000001 --batch-size 4");
    CHECK(rc == 0 && strstr(err_buf, "clipmod eval: 4/16 samples") && strstr(err_buf, "samples/s") && strstr(err_buf, "ETA"),
          "no progress lines: %.300s", err_buf);
    rc = run("eval --model " CK " --val-data " VAL " --json --batch-size 4");
    CHECK(rc == 0 && !strstr(err_buf, "samples/s"), "progress on a short run with the default period");
    /* on a terminal: one line rewritten with \r, rate and ETA (util-linux `script` gives a pty) */
    if (access("/usr/bin/script", X_OK) == 0) {
        char cmd[3000];
        snprintf(cmd, sizeof cmd, "cd '%s' && timeout 120 script -qec \"%s eval --model " CK " --val-data " VAL
                 " --json --batch-size 4 --progress-seconds 0.000001\" /dev/null > tty.txt 2>&1", tmpdir, clipmod);
        CHECK(system(cmd) == 0, "eval under script failed");
        char p[512];
        uint8_t *b; size_t n;
        snprintf(p, sizeof p, "%s/tty.txt", tmpdir);
        REQUIRE(cm_read_file(p, 1 << 20, &b, &n) == CM_OK, "tty.txt");
        const char *t = (const char *)b;
#define HAS(lit) (memmem(t, n, lit, strlen(lit)) != NULL)
        CHECK(HAS("\rclipmod eval: 4/16 samples, ") && HAS("\rclipmod eval: 16/16 samples, ") && HAS("ETA ") &&
              !HAS("samples/s, 0 s"), "terminal progress: %.*s", (int)n, t);
#undef HAS
        cm_free(b);
    }
}

/* item 9: --out - is standard output; invalid UTF-8 in a Fakeddit title is repaired and counted */
static void test_stdout_and_utf8(void) {
    int rc = run("preprocess --image img.jpg --out - --size 8");
    CHECK(rc == 0 && out_len == 3 * 8 * 8 * 4, "--out -: exit %d, %zu bytes on stdout", rc, out_len);
    char p[512];
    snprintf(p, sizeof p, "%s/-", tmpdir);
    CHECK(access(p, F_OK) != 0, "--out - wrote a file named '-'");
    rc = run("prepare fakeddit --tsv t.tsv --images imgs --out p3");
    CHECK(rc == 0 && strstr(out_buf, "\"written\":1") && strstr(out_buf, "\"repaired_text\":1") && strstr(out_buf, "\"missing_images\":1"),
          "prepare: exit %d: %s", rc, out_buf);
    CHECK(strstr(err_buf, "warning: 1 written, 1 missing images"), "partial prepare without a warning: %s", err_buf);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cd '%s' && tar xOf p3/class_1/00000.tar a1.txt > a1.txt", tmpdir);
    REQUIRE(system(cmd) == 0, "a1.txt not in the shard");
    snprintf(p, sizeof p, "%s/a1.txt", tmpdir);
    uint8_t *b; size_t n;
    REQUIRE(cm_read_file(p, 1 << 20, &b, &n) == CM_OK, "read a1.txt");
    CHECK(n == 13 && !memcmp(b, "bad \xEF\xBF\xBD title", 13), "caption not repaired: '%.*s'", (int)n, (char *)b);
    cm_free(b);
    snprintf(p, sizeof p, "%s/p3/report.json", tmpdir);
    REQUIRE(cm_read_file(p, 1 << 20, &b, &n) == CM_OK, "report.json");
    CHECK(strstr((char *)b, "\"repaired_text\": 1"), "report.json lacks the count");
    cm_free(b);
}

int main(void) {
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char rel[512];
    snprintf(rel, sizeof rel, "%s/clipmod", bd);
    if (!realpath(rel, clipmod)) { fprintf(stderr, "no %s (run from the repository root)\n", rel); return 1; }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_exit_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    if (!fixture()) { CHECK(0, "fixture"); return tl_summary("test_exit_codes"); }
    RUN(test_table);
    RUN(test_every_command_usage);
    RUN(test_noeffect_and_debug);
    RUN(test_clamps);
    RUN(test_partial_counts);
    RUN(test_eval_progress);
    RUN(test_stdout_and_utf8);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    return tl_summary("test_exit_codes");
}
