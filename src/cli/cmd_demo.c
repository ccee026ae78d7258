/*
 * cmd_demo.c — `clipmod demo [--data-dir DIR]` (DESIGN §7, `make demo`, docs/demo.md): writes the
 * synthetic 7-class image+text dataset of src/data/synth.h as WebDataset shards with the
 * project's shard writer, trains a small CLIP + head from scratch through exactly the code of
 * `clipmod train` (cm_train_main: same shard batch source, loop, loss, optimizer, checkpoints,
 * validation) with the byte-level tokenizer (src/data/textenc.h), and evaluates on the held-out
 * split. Prints the metrics table and confusion matrix; the last stdout line is the JSON of
 * DESIGN §7 with "top1", "top2" (and per-class metrics, confusion, timing, checkpoint path).
 * --ablate image|text trains and evaluates on one modality only (captions emptied / images
 * blanked) to show that the task needs both.
 * Every flag (the training options included) is checked before anything is written. Without
 * --data-dir the work happens in $TMPDIR/clipmod-demo-XXXXXX (default /tmp), in a child process:
 * the parent removes the folder whatever way the child ends (success, error, SIGINT/SIGTERM
 * forwarded to it, even SIGKILL) and exits with the child's status (128 + signal when killed).
 * --keep keeps the folder and prints the checkpoint and the eval / predict commands to try.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/train_flags.h"
#include "common/common.h"
#include "data/image.h"
#include "data/synth.h"
#include "eval/metrics.h"
#include "data/textenc.h"
#include "train/train_main.h"

/* The demo model: a small ViT (32 px, 8 px patches) and a byte-level text tower (48 tokens: the
   longest caption is 41 bytes + SOT + EOT), both 64 wide with 2 layers, embed 64, and the DESIGN
   §1.3 head at d = 64. OpenCLIP's config layout, so that `clipmod train --model FILE` takes it. */
static const char DEMO_MODEL_JSON[] =
    "{\"model_name\":\"clipmod-demo\",\"model_cfg\":{\"embed_dim\":64,\"quick_gelu\":false,"
    "\"vision_cfg\":{\"image_size\":32,\"layers\":2,\"width\":64,\"patch_size\":8,\"head_width\":32,\"mlp_ratio\":2.0},"
    "\"text_cfg\":{\"context_length\":48,\"vocab_size\":258,\"width\":64,\"heads\":2,\"layers\":2,\"mlp_ratio\":2.0}},"
    "\"head\":{\"d\":64,\"heads\":4,\"ff\":128,\"layers\":2,\"classes\":7,\"dropout_design\":0.1,\"classifier_dropout_design\":0.2}}\n";

static int bad(const char *flag, const char *msg) {
    fprintf(stderr, "clipmod demo: %s %s\n", flag, msg);
    return 2;
}

typedef struct {
    const char *dir, *report_to;
    int epochs, n_train, n_val, batch, warmup, ablate;
    long long seed;
    double lr;
    bool is_tmp, keep;
} DemoArgs;

static void demo_opts(const DemoArgs *a, CmTrainOpts *o, char *cfgpath, char *logs, char *train_urls, char *val_urls, char *name) {
    cm_train_opts_defaults(o);
    o->train_data = train_urls; o->val_data = val_urls;
    o->model = cfgpath; o->pretrained = ""; o->tokenizer = "bytes";
    o->batch_size = a->batch; o->epochs = a->epochs; o->lr = a->lr; o->wd = 0.1; o->warmup = a->warmup;
    o->beta1 = 0.9; o->beta2 = 0.98; o->eps = 1e-6; o->has_beta1 = o->has_beta2 = o->has_eps = o->has_lr = true;
    o->precision = "fp32"; o->workers = 1; o->logs = logs; o->seed = a->seed; o->report_to = a->report_to;
    /* an epoch = the full batches the shards hold (OpenCLIP's sizing rounds up: 7000 / 64 would
       ask for 110 batches of the 109 there are, and the epoch would end early with a warning) */
    o->train_num_samples = (long long)(a->n_train / a->batch) * a->batch; o->has_train_num_samples = true;
    o->log_every_n_steps = 50; o->save_frequency = 0; o->val_frequency = a->epochs > 4 ? a->epochs / 4 : 1;
    snprintf(name, 64, "demo%s%s", a->ablate ? "-" : "", a->ablate == CM_SYNTH_IMAGE_ONLY ? "image-only" : a->ablate ? "text-only" : "");
    o->name = name;
    o->resume = NULL;
}

/* A held-out sample as a JPEG next to the data, for the predict command printed with --keep. */
static void write_example(const char *dir, uint64_t seed, char *caption, size_t cap, char *path, size_t pcap) {
    CmSynthSample s;
    cm_synth_draw(seed, CM_SYNTH_VAL, 0, &s);
    CmImage im = {0};
    uint8_t *jpg = NULL;
    size_t n = 0;
    path[0] = 0;
    snprintf(path, pcap, "%s/example.jpg", dir);
    if (cm_synth_render(&s, 32, &im) || cm_jpeg_encode(&im, 95, &jpg, &n) || cm_write_file_atomic(path, jpg, n)) path[0] = 0;
    cm_image_free(&im);
    cm_free(jpg);
    snprintf(caption, cap, "%s", s.caption);
}

/* The demo itself (the child process when the folder is temporary). */
static int demo_body(const DemoArgs *a) {
    const char *dir = a->dir;
    if (!a->is_tmp && cm_mkdir_p(dir)) return cli_fail("demo");
    double t0 = cm_now();
    CmSynthOpts so;
    cm_synth_opts_default(&so);
    so.seed = (uint64_t)a->seed;
    so.n_train = a->n_train;
    so.n_val = a->n_val;
    so.image_size = 32;
    so.ablate = a->ablate;
    if (cm_synth_write(dir, &so)) return cli_fail("demo");
    double t_data = cm_now() - t0;
    fprintf(stderr, "clipmod demo: wrote %d training and %d held-out samples to %s (%.1f s)\n", a->n_train, a->n_val, dir, t_data);
    char cfgpath[1200], logs[1200], train_urls[1300], val_urls[1300], name[64];
    snprintf(cfgpath, sizeof cfgpath, "%s/demo_model.json", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    cm_synth_urls(dir, CM_SYNTH_TRAIN, a->n_train, so.shard_size, train_urls, sizeof train_urls);
    cm_synth_urls(dir, CM_SYNTH_VAL, a->n_val, so.shard_size, val_urls, sizeof val_urls);
    if (cm_write_file_atomic(cfgpath, DEMO_MODEL_JSON, sizeof DEMO_MODEL_JSON - 1)) return cli_fail("demo");

    CmTrainOpts o;
    demo_opts(a, &o, cfgpath, logs, train_urls, val_urls, name);
    if (!a->is_tmp) {   /* a rerun into the same --data-dir replaces the demo's previous run folder */
        char old[1400];
        snprintf(old, sizeof old, "%s/%s", logs, name);
        if (cm_remove_tree(old)) fprintf(stderr, "clipmod demo: could not remove %s: %s\n", old, cm_last_error());
    }
    if (cm_train_opts_finalize(&o)) return cli_fail("demo");
    CmTrainConfig cfg;
    char *params = NULL, *ojson = NULL;
    if (cm_train_opts_to_config(&o, &cfg, &params, &ojson)) return cli_fail("demo");
    CmRun r;
    cm_status tst = cm_train_main(&cfg, &r, NULL, NULL);
    cm_free(params); cm_free(ojson);
    if (tst) return cli_fail("demo");
    if (!r.have_val) { fprintf(stderr, "clipmod demo: no validation ran\n"); return 1; }
    double total = cm_now() - t0;
    const int ablate = a->ablate, epochs = a->epochs;
    const char *mode = ablate == CM_SYNTH_BOTH ? "image+text" : ablate == CM_SYNTH_IMAGE_ONLY ? "image-only" : "text-only";
    printf("clipmod demo (%s): held-out split, %lld samples, %d epochs, %.1f s training, %.1f s in all\n\n", mode,
           (long long)r.val_metrics.n, epochs, r.train_seconds, total);
    cm_metrics_print(&r.val_metrics, stdout);
    char ckpt[1400];
    snprintf(ckpt, sizeof ckpt, "%s/%s/checkpoints/epoch_%d.safetensors", logs, name, epochs);
    bool kept = !a->is_tmp || a->keep;
    char extra[1800];
    snprintf(extra, sizeof extra, "\"demo\":\"%s\",\"epochs\":%d,\"train_samples\":%d,\"seed\":%lld,\"threads\":%d,"
             "\"train_seconds\":%.1f,\"total_seconds\":%.1f,\"checkpoint\":",
             mode, epochs, a->n_train, a->seed, cm_threads_get(), r.train_seconds, total);
    size_t el = strlen(extra);
    if (!kept) snprintf(extra + el, sizeof extra - el, "null");
    else snprintf(extra + el, sizeof extra - el, "\"%s\"", ckpt);
    char *js = cm_metrics_json(&r.val_metrics, extra);
    if (!js) return cli_fail("demo");
    printf("\n%s\n", js);
    cm_free(js);
    if (kept) {
        char caption[CM_SYNTH_MAX_CAPTION + 8], example[1300];
        write_example(dir, (uint64_t)a->seed, caption, sizeof caption, example, sizeof example);
        fprintf(stderr, "clipmod demo: data, logs and checkpoint are in %s\nclipmod demo: checkpoint %s\n"
                "clipmod demo: try next:\n  clipmod eval --model '%s' --val-data '%s'\n", dir, ckpt, ckpt, val_urls);
        if (example[0]) fprintf(stderr, "  clipmod predict --model '%s' --image '%s' --text '%s'\n", ckpt, example, caption);
    }
    fflush(NULL);
    return 0;
}

static volatile sig_atomic_t g_sig;
static volatile pid_t g_child;

static void forward_signal(int sig) {
    g_sig = sig;
    if (g_child > 0) kill(g_child, sig);
}

int cmd_demo(int argc, char **argv) {
    const char *dir = NULL, *ablate_s = "none", *report_to = "";
    int epochs = 25, n_train = 7000, n_val = 1400, threads = 0, batch = 64, warmup = 50;
    long long seed = 0;
    double lr = 1e-3;
    bool keep = false;
    ArgSpec specs[] = {
        ARG("--data-dir", ARG_STR, &dir, "DIR", "where the shards, logs and checkpoint go (default: a temporary folder under $TMPDIR or /tmp, removed)"),
        ARG("--epochs", ARG_INT, &epochs, "N", "training epochs (default 25)"),
        ARG("--train-samples", ARG_INT, &n_train, "N", "training samples (default 7000)"),
        ARG("--val-samples", ARG_INT, &n_val, "N", "held-out samples (default 1400)"),
        ARG("--batch-size", ARG_INT, &batch, "N", "batch size (default 64)"),
        ARG("--lr", ARG_FLOAT, &lr, "LR", "peak learning rate, cosine schedule (default 1e-3)"),
        ARG("--warmup", ARG_INT, &warmup, "N", "warmup steps (default 50)"),
        ARG("--seed", ARG_I64, &seed, "N", "seed of the data and the training (default 0)"),
        ARG("--threads", ARG_INT, &threads, "N", "compute threads (default 1: the demo model is tiny)"),
        ARG("--ablate", ARG_STR, &ablate_s, "none|image|text", "train on one modality: image (captions emptied) or text (images blanked)"),
        ARG("--keep", ARG_FLAG, &keep, NULL, "keep the temporary folder; print the checkpoint and the eval/predict commands to try"),
        ARG("--report-to", ARG_STR, &report_to, "html", "html: the run folder gets report.html (with --data-dir or --keep)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "demo",
                        "[--data-dir DIR] [--epochs N] [--ablate none|image|text] [--keep] ...", NULL);
    if (rc) return rc < 0 ? 0 : rc;
    int ablate = !strcmp(ablate_s, "none") ? CM_SYNTH_BOTH : !strcmp(ablate_s, "image") ? CM_SYNTH_IMAGE_ONLY
               : !strcmp(ablate_s, "text") ? CM_SYNTH_TEXT_ONLY : -1;
    if (ablate < 0) return bad("--ablate", "must be none, image or text");
    if (epochs < 1 || epochs > 10000) return bad("--epochs", "must be in 1..10000");
    if (n_train < 1 || n_train > 10000000) return bad("--train-samples", "must be in 1..10000000");
    if (n_val < 1 || n_val > 10000000) return bad("--val-samples", "must be in 1..10000000");
    if (batch < 1 || batch > n_train) return bad("--batch-size", "must be in 1..--train-samples");
    if (!(lr > 0 && lr < 1e3)) return bad("--lr", "must be a number in (0, 1000)");
    if (warmup < 0) return bad("--warmup", "must be >= 0");
    if (threads < 0) return bad("--threads", "must be >= 0");
    if (seed < 0) return bad("--seed", "must be >= 0");
    if (dir && !*dir) return bad("--data-dir", "is empty");
    DemoArgs a = {dir, report_to, epochs, n_train, n_val, batch, warmup, ablate, seed, lr, !dir, keep};
    {   /* the training options as the run will see them, checked before anything is written */
        CmTrainOpts o;
        char cfgpath[] = "demo_model.json", logs[] = "logs", tu[] = "train.tar", vu[] = "val.tar", name[64];
        demo_opts(&a, &o, cfgpath, logs, tu, vu, name);
        if (cm_train_opts_finalize(&o)) { fprintf(stderr, "clipmod demo: %s\n", cm_last_error()); return 2; }
    }
    /* the demo's matrices are tiny: one thread beats OpenMP's fork/join (and spinning on a busy
       machine: 10-25x slower measured with 2 threads under load) */
    cm_threads_set(threads > 0 ? threads : 1);
    if (!a.is_tmp) return demo_body(&a);

    /* temporary folder: the work runs in a child; this process only waits and cleans up */
    const char *td = getenv("TMPDIR");
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/clipmod-demo-XXXXXX", td && *td ? td : "/tmp");
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (!mkdtemp(tmp)) { fprintf(stderr, "clipmod demo: cannot create a folder %s: %s\n", tmp, strerror(errno)); return 1; }
    a.dir = tmp;
    fflush(NULL);
    pid_t pid = g_sig ? -2 : fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        int code = demo_body(&a);
        fflush(NULL);
        _exit(code);
    }
    int status = 0, code = 1;
    if (pid == -1) fprintf(stderr, "clipmod demo: fork: %s\n", strerror(errno));
    if (pid > 0) {
        g_child = pid;
        if (g_sig) kill(pid, g_sig);   /* arrived between fork and here */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
    }
    if (g_sig) code = 128 + g_sig;
    if (keep) {
        if (code) fprintf(stderr, "clipmod demo: stopped (exit %d); kept %s\n", code, tmp);
    } else if (cm_remove_tree(tmp)) fprintf(stderr, "clipmod demo: could not remove %s: %s\n", tmp, cm_last_error());
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return code;
}
