/*
 * test_train_opts.c — `clipmod train` options: the seed's example command parses with OpenCLIP's
 * names and defaults, params.txt is written as OpenCLIP writes it (sorted, Python str() values),
 * Python float formatting, bad values name the flag. The CLI's table-driven parser and the train
 * flag table are compiled in from src/cli/ (they are not part of libclipmod.a).
 */
#include "testlib.h"
/* REQUIRE evaluates its condition twice: call once, then check */
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include "cli/train_flags.h"
#include "../src/cli/args.c"
#include "../src/cli/train_flags.c"
#include <unistd.h>

static int parse(CmTrainOpts *o, int argc, const char **argv) {
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    cm_train_opts_defaults(o);
    int n = cm_train_opts_specs(o, specs);
    return args_parse(argc, (char **)argv, specs, n, "train", NULL, NULL);
}

static void test_py_float(void) {
    struct { double x; const char *s; } cases[] = {
        {0.001, "0.001"}, {5e-4, "0.0005"}, {1e-6, "1e-06"}, {0.2, "0.2"}, {1.0, "1.0"}, {0.98, "0.98"},
        {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {0.1 + 0.2, "0.30000000000000004"}, {1e-4, "0.0001"},
        {1.5e-5, "1.5e-05"}, {-2.5, "-2.5"}, {0.0, "0.0"}, {123456.789, "123456.789"}, {32.0, "32.0"},
        {1e-300, "1e-300"}, {2.5e20, "2.5e+20"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[64];
        cm_py_float(cases[i].x, b, sizeof b);
        CHECK(!strcmp(b, cases[i].s), "%.17g -> '%s', Python gives '%s'", cases[i].x, b, cases[i].s);
    }
}

static void test_seed_command(void) {
    const char *argv[] = {"--save-frequency", "5", "--warmup", "10000", "--batch-size=2048", "--lr=1e-3", "--wd=0.1",
                          "--epochs=600", "--workers=8", "--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k",
                          "--train-num-samples", "128000", "--dataset-resampled", "--dataset-type", "webdataset",
                          "--precision", "amp", "--train-data", "/d/class_{0..6}/{00000..00001}.tar",
                          "--train-data-upsampling-factors", "3::3::3::20::9::90::6", "--grad-checkpointing",
                          "--accum-freq", "4", "--cache-dir", "../../pretrained_models_weights", "--enable-lora",
                          "--val-data", "/d/val/{00000..00003}.tar", "--report-to", "tensorboard",
                          "--zeroshot-frequency", "1", "--local-loss", "--gather-with-grad", "--name", "run1", "--logs", "/tmp/x"};
    CmTrainOpts o;
    REQUIRE_OK(parse(&o, (int)(sizeof argv / sizeof argv[0]), argv), "seed command rejected");
    CHECK(!o.has_beta2 && !o.has_grad_clip_norm && o.has_train_num_samples, "given flags recorded explicitly");
    REQUIRE_OK(cm_train_opts_finalize(&o), "%s", cm_last_error());
    CHECK(o.save_frequency == 5 && o.warmup == 10000 && o.batch_size == 2048 && o.lr == 1e-3 && o.wd == 0.1 &&
          o.epochs == 600 && o.workers == 8 && o.train_num_samples == 128000 && o.dataset_resampled &&
          o.grad_checkpointing && o.accum_freq == 4 && o.enable_lora && o.prec == CM_PREC_AMP_BF16, "values");
    CHECK(o.beta1 == 0.9 && o.beta2 == 0.98 && o.eps == 1e-6, "ViT defaults %g %g %g", o.beta1, o.beta2, o.eps);
    CHECK(o.lora_rank == 4 && o.lora_alpha == 32 && o.contrastive_weight == 1 && o.classification_weight == 1, "seed defaults");
    CHECK(o.log_every_n_steps == 100 && o.val_frequency == 1 && o.seed == 0 && !o.has_grad_clip_norm, "OpenCLIP defaults");

    char path[] = "/tmp/cm_test_params_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    REQUIRE_OK(cm_train_opts_write_params(&o, path), "%s", cm_last_error());
    uint8_t *buf; size_t len;
    REQUIRE_OK(cm_read_file(path, 1 << 20, &buf, &len), "read");
    const char *want[] = {"accum_freq: 4\n", "batch_size: 2048\n", "lr: 0.001\n", "wd: 0.1\n", "beta2: 0.98\n",
                          "eps: 1e-06\n", "enable_lora: True\n", "lock_image: False\n", "grad_clip_norm: None\n",
                          "precision: amp\n", "name: run1\n", "model: ViT-B-32\n", "train_num_samples: 128000\n",
                          "val_num_samples: None\n", "seed: 0\n", "world_size: 1\n", "distributed: False\n",
                          "checkpoint_path: /tmp/x/run1/checkpoints\n", "aug_cfg: {}\n", "image_mean: None\n",
                          "epochs_cooldown: None\n", "lora_alpha: 32.0\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr((char *)buf, want[i]) != NULL, "params.txt lacks '%.*s'", (int)strlen(want[i]) - 1, want[i]);
    /* sorted by name, one "name: value" per line */
    char prev[128] = "";
    int lines = 0;
    for (char *l = (char *)buf; *l; ) {
        char *nl = strchr(l, '\n');
        REQUIRE(nl, "last line unterminated");
        char *colon = strstr(l, ": ");
        REQUIRE(colon && colon < nl, "line %d has no ': '", lines);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(colon - l), l);
        CHECK(strcmp(prev, key) < 0, "not sorted: '%s' after '%s'", key, prev);
        snprintf(prev, sizeof prev, "%s", key);
        lines++;
        l = nl + 1;
    }
    CHECK(lines > 90, "only %d lines", lines);
    cm_free(buf);
    unlink(path);
    char *js = cm_train_opts_json(&o);
    CHECK(js && strstr(js, "\"accum_freq\":\"4\"") && strstr(js, "\"csv_separator\":\"\\u0009\""), "json: %.200s", js ? js : "(null)");
    cm_free(js);
}

/* a config whose name has no "vit" in it (OpenCLIP's rule for the non-ViT defaults); --model is
   checked by the parser, so it must exist */
static const char SMALL_JSON[] =
    "{\"model_cfg\":{\"embed_dim\":64,\"vision_cfg\":{\"image_size\":32,\"layers\":2,\"width\":64,\"patch_size\":8,"
    "\"head_width\":32},\"text_cfg\":{\"context_length\":77,\"vocab_size\":49408,\"width\":64,\"heads\":2,\"layers\":2}}}";

static void test_defaults_and_name(void) {
    char cfg[64];
    snprintf(cfg, sizeof cfg, "/tmp/cm_opts_%d.json", (int)getpid());
    REQUIRE_OK(cm_write_file_atomic(cfg, SMALL_JSON, strlen(SMALL_JSON)), "%s", cm_last_error());
    const char *argv[] = {"--train-data", "x.tar", "--model", cfg};
    CmTrainOpts o;
    REQUIRE_OK(parse(&o, 4, argv), "parse");
    REQUIRE_OK(cm_train_opts_finalize(&o), "%s", cm_last_error());
    CHECK(o.lr == 5e-4 && o.beta2 == 0.999 && o.eps == 1e-8, "non-ViT defaults");
    CHECK(o.batch_size == 64 && o.epochs == 32 && o.workers == 4 && o.warmup == 10000 && o.wd == 0.2, "OpenCLIP defaults");
    char want[96];
    snprintf(want, sizeof want, "-model_-tmp-cm_opts_%d.json-lr_0.0005-b_64-j_4-p_amp", (int)getpid());
    CHECK(strstr(o.name, want) != NULL && o.name[4] == '_', "auto name '%s'", o.name);
    const char *bad_model[] = {"--train-data", "x.tar", "--model", "RN50"};
    CHECK(parse(&o, 4, bad_model) == 2, "unknown --model accepted by the parser");
    unlink(cfg);
}

static void expect_error(const char *what, int argc, const char **argv, const char *flag) {
    CmTrainOpts o;
    int rc = parse(&o, argc, argv);
    if (rc) { CHECK(rc == 2, "%s: parser rc %d", what, rc); return; }
    cm_status st = cm_train_opts_finalize(&o);
    CHECK(st != CM_OK, "%s accepted", what);
    CHECK(strstr(cm_last_error(), flag) != NULL, "%s: message '%s' does not name %s", what, cm_last_error(), flag);
}

static void test_bad_values(void) {
    const char *a1[] = {"--train-data", "x.tar", "--accum-freq", "0"};
    expect_error("accum 0", 4, a1, "--accum-freq");
    const char *a2[] = {"--train-data", "x.tar", "--lr-scheduler", "const-cooldown"};
    expect_error("cooldown without epochs", 4, a2, "--epochs-cooldown");
    const char *a3[] = {"--train-data", "x.tar", "--train-data-upsampling-factors", "1::2"};
    expect_error("factors without resampled", 4, a3, "--dataset-resampled");
    const char *a4[] = {"--train-data", "x.tar", "--precision", "fp64"};
    expect_error("precision", 4, a4, "--precision");
    const char *a5[] = {"--model", "ViT-B-32"};
    expect_error("no train data", 2, a5, "--train-data");
    const char *a6[] = {"--train-data", "x.tar", "--batch-size", "12x"};
    expect_error("non-integer", 4, a6, "--batch-size");
    const char *a7[] = {"--train-data", "x.tar", "--no-such-flag"};
    expect_error("unknown flag", 3, a7, "");
    const char *a8[] = {"--train-data", "x.tar", "--lora-rank", "0"};
    expect_error("lora rank", 4, a8, "--lora-rank");
    const char *a9[] = {"--train-data", "x.tar", "--siglip"};
    expect_error("siglip", 3, a9, "--siglip");
    const char *a10[] = {"--train-data", "x.tar", "--grad-clip-norm", "-1"};
    expect_error("clip", 4, a10, "--grad-clip-norm");
    const char *a11[] = {"--train-data", "x.tar", "--name", "a/b"};
    expect_error("name", 4, a11, "--name");
}

/* docs/flags.md lists every flag with what it does here: works / no effect / refused, as the table */
static void test_docs_table(void) {
    uint8_t *doc; size_t len;
    REQUIRE_OK(cm_read_file("docs/flags.md", 1 << 20, &doc, &len), "docs/flags.md (run from the repository root)");
    CmTrainOpts o;
    cm_train_opts_defaults(&o);
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    int n = cm_train_opts_specs(&o, specs);
    int refused = 0, noeffect = 0;
    for (int i = 0; i < n; i++) {
        char key[96];
        snprintf(key, sizeof key, "| `%s%s", specs[i].name, specs[i].metavar ? " " : "`");
        const char *row = strstr((char *)doc, key);
        CHECK(row, "docs/flags.md does not list %s", specs[i].name);
        if (!row) continue;
        const char *end = strchr(row, '\n');
        int rl = end ? (int)(end - row) : (int)strlen(row);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", rl, row);
        bool says_refused = strstr(line, "**refused**") != NULL, says_noeffect = strstr(line, "no effect (warns once)") != NULL;
        CHECK(says_refused == (specs[i].refuse != NULL), "%s: docs say refused=%d, the table %d", specs[i].name, says_refused, specs[i].refuse != NULL);
        CHECK(says_noeffect == (specs[i].noeffect != NULL), "%s: docs say no-effect=%d, the table %d", specs[i].name, says_noeffect, specs[i].noeffect != NULL);
        refused += specs[i].refuse != NULL;
        noeffect += specs[i].noeffect != NULL;
    }
    CHECK(refused >= 8 && noeffect >= 25, "only %d refused / %d no-effect flags", refused, noeffect);
    cm_free(doc);
}

/* one rule set: NaN / inf / negative values never pass the parser, for any numeric train flag */
static void test_every_numeric_flag_refuses_nan(void) {
    CmTrainOpts o;
    cm_train_opts_defaults(&o);
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    int n = cm_train_opts_specs(&o, specs);
    const char *vals[] = {"nan", "inf", "-inf", "-1", "1e400"};
    for (int i = 0; i < n; i++) {
        if (specs[i].type != ARG_INT && specs[i].type != ARG_I64 && specs[i].type != ARG_FLOAT) continue;
        for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
            const char *argv[] = {"--train-data", "x.tar", specs[i].name, vals[k]};
            CHECK(parse(&o, 4, argv) == 2, "%s %s accepted", specs[i].name, vals[k]);
        }
    }
}

int main(void) {
    RUN(test_py_float);
    RUN(test_seed_command);
    RUN(test_defaults_and_name);
    RUN(test_bad_values);
    RUN(test_docs_table);
    RUN(test_every_numeric_flag_refuses_nan);
    return tl_summary("test_train_opts");
}
