/*
 * cmd_demo.c — `clipmod demo [--data-dir DIR]` (DESIGN §7, `make demo`): writes the synthetic
 * 7-class image+text shards of src/train/demo.h with the project's shard writer, trains a small
 * CLIP + head from scratch through exactly the code of `clipmod train` (cm_train_main: same
 * loop, loss, optimizer, checkpoints, validation), with the byte-level tokenizer, and evaluates
 * on the held-out split. Prints the metrics table and confusion matrix; the last stdout line is
 * the JSON of DESIGN §7 with "top1", "top2" (and per-class metrics, confusion, timing, paths).
 * --ablate image|text trains and evaluates on one modality only (captions emptied / images
 * blanked) to show that the task needs both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "train/demo.h"
#include "train/metrics.h"
#include "train/train_main.h"

int cmd_demo(int argc, char **argv) {
    const char *dir = NULL, *ablate_s = "none";
    int epochs = 10, n_train = 7000, n_val = 1400, threads = 0, batch = 64;
    long long seed = 0;
    double lr = 1e-3;
    bool keep = false;
    ArgSpec specs[] = {
        {"--data-dir", ARG_STR, &dir, "DIR", "where the shards, logs and checkpoint go (default: a temporary folder, removed)"},
        {"--epochs", ARG_INT, &epochs, "N", "training epochs (default 10)"},
        {"--train-samples", ARG_INT, &n_train, "N", "training samples (default 7000)"},
        {"--val-samples", ARG_INT, &n_val, "N", "held-out samples (default 1400)"},
        {"--batch-size", ARG_INT, &batch, "N", "batch size (default 64)"},
        {"--lr", ARG_FLOAT, &lr, "LR", "peak learning rate (default 1e-3)"},
        {"--seed", ARG_I64, &seed, "N", "seed of the data and the training (default 0)"},
        {"--threads", ARG_INT, &threads, "N", "compute threads (default 1: the demo model is tiny)"},
        {"--ablate", ARG_STR, &ablate_s, "none|image|text", "train on one modality: image (captions emptied) or text (images blanked)"},
        {"--keep", ARG_FLAG, &keep, NULL, "keep the temporary folder"},
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "demo", "[--data-dir DIR]", NULL);
    if (rc) return rc < 0 ? 0 : rc;
    int ablate = !strcmp(ablate_s, "none") ? 0 : !strcmp(ablate_s, "image") ? 2 : !strcmp(ablate_s, "text") ? 1 : -1;
    /* --ablate image keeps only images (captions emptied) = writer mode 1; text keeps captions = 2 */
    if (ablate == 2) ablate = 1; else if (ablate == 1) ablate = 2;
    if (ablate < 0) { fprintf(stderr, "clipmod demo: --ablate must be none, image or text\n"); return 2; }
    if (epochs < 1 || batch < 1 || n_train < batch || n_val < 7) { fprintf(stderr, "clipmod demo: bad sizes\n"); return 2; }
    /* the demo's matrices are tiny: one thread beats OpenMP's fork/join (and spinning on a busy
       machine: 10x slower measured with 2 threads under load) */
    cm_threads_set(threads > 0 ? threads : 1);

    char tmp[] = "/tmp/clipmod-demo-XXXXXX";
    bool is_tmp = !dir;
    if (is_tmp) {
        if (!mkdtemp(tmp)) { perror("clipmod demo: mkdtemp"); return 1; }
        dir = tmp;
    } else if (cm_mkdir_p(dir)) return cli_fail("demo");
    double t0 = cm_now();
    CmDemoData dd;
    if (cm_demo_write(dir, n_train, n_val, 32, (uint64_t)seed, ablate, &dd)) return cli_fail("demo");
    double t_data = cm_now() - t0;
    fprintf(stderr, "clipmod demo: wrote %lld training and %lld held-out samples to %s (%.1f s)\n", (long long)dd.n_train,
            (long long)dd.n_val, dir, t_data);
    char cfgpath[1200], logs[1200];
    snprintf(cfgpath, sizeof cfgpath, "%s/demo_model.json", dir);
    snprintf(logs, sizeof logs, "%s/logs", dir);
    const char *cj = cm_demo_model_json();
    if (cm_write_file_atomic(cfgpath, cj, strlen(cj))) return cli_fail("demo");

    CmTrainOpts o;
    cm_train_opts_defaults(&o);
    o.train_data = dd.train_urls; o.val_data = dd.val_urls;
    o.model = cfgpath; o.pretrained = ""; o.tokenizer = "bytes";
    o.batch_size = batch; o.epochs = epochs; o.lr = lr; o.wd = 0.1; o.warmup = 50;
    o.beta1 = 0.9; o.beta2 = 0.98; o.eps = 1e-6;
    o.precision = "fp32"; o.workers = 1; o.logs = logs; o.seed = seed;
    o.log_every_n_steps = 50; o.save_frequency = 0; o.val_frequency = epochs > 4 ? epochs / 4 : 1;
    char name[64];
    snprintf(name, sizeof name, "demo%s%s", ablate ? "-" : "", ablate == 1 ? "image-only" : ablate == 2 ? "text-only" : "");
    o.name = name;
    o.resume = NULL;
    if (!is_tmp) {   /* a rerun into the same --data-dir replaces the demo's previous run folder */
        char old[1400], cmd[1500];
        snprintf(old, sizeof old, "%s/%s", logs, name);
        if (access(old, F_OK) == 0 && !strchr(old, '\'')) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", old);
            if (system(cmd)) fprintf(stderr, "clipmod demo: could not remove %s\n", old);
        }
    }
    if (cm_train_opts_finalize(&o)) return cli_fail("demo");
    CmRun r;
    if (cm_train_main(&o, &r, NULL, NULL)) return cli_fail("demo");
    if (!r.have_val) { fprintf(stderr, "clipmod demo: no validation ran\n"); return 1; }
    double total = cm_now() - t0;
    printf("clipmod demo (%s): held-out split, %lld samples, %d epochs, %.1f s training, %.1f s in all\n\n",
           ablate == 0 ? "image + text" : ablate == 1 ? "image only" : "text only", (long long)r.val_metrics.n, epochs,
           r.train_seconds, total);
    cm_metrics_print(&r.val_metrics, stdout);
    char extra[1800];
    snprintf(extra, sizeof extra, "\"demo\":\"%s\",\"epochs\":%d,\"train_samples\":%lld,\"train_seconds\":%.1f,\"total_seconds\":%.1f,"
             "\"checkpoint\":",
             ablate == 0 ? "image+text" : ablate == 1 ? "image-only" : "text-only", epochs, (long long)dd.n_train, r.train_seconds, total);
    size_t el = strlen(extra);
    if (is_tmp && !keep) snprintf(extra + el, sizeof extra - el, "null");
    else snprintf(extra + el, sizeof extra - el, "\"%s/%s/checkpoints/epoch_%d.safetensors\"", logs, name, epochs);
    char *js = cm_metrics_json(&r.val_metrics, extra);
    if (!js) return cli_fail("demo");
    printf("\n%s\n", js);
    cm_free(js);
    if (is_tmp && !keep) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd)) fprintf(stderr, "clipmod demo: could not remove %s\n", tmp);
    } else fprintf(stderr, "clipmod demo: data, logs and checkpoint are in %s\n", dir);
    return 0;
}
