/*
 * cmd_train.c — `clipmod train` (DESIGN §3, §7): OpenCLIP's flags (src/train/train_opts.c holds
 * the table, defaults and checks), the model from --model/--pretrained/--enable-lora
 * (src/train/setup.c), WebDataset batches, the run (src/train/train_main.c, run.c: out.log,
 * params.txt, checkpoints, results.jsonl). The last stdout line is
 * one JSON object: the last validation's metrics (DESIGN §7 eval JSON) plus "epochs", "steps",
 * "loss", or the last training losses when there is no --val-data.
 * SIGINT / SIGTERM: the handler only sets a flag; the run finishes the optimizer step in
 * progress, writes checkpoints/step_<N>.safetensors (resumable mid-epoch, see run.h), says where
 * it is and how to resume, and the command exits 128 + signal (130 / 143). A second signal
 * exits at once (128 + signal; a half-written temp file is removed by the next start).
 * Test hook: CLIPMOD_TEST_SIGNAL_AT_STEP=N[:COUNT] raises SIGINT COUNT times (default 1) in the
 * process right after optimizer step N, so that tests hit an exact step through the real handler.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "data/wds.h"
#include "train/train_main.h"
#include "train/train_opts.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    if (g_stop) _exit(128 + sig);   /* the second signal: at once */
    g_stop = sig;
}

static void test_hook(void *ctx, int64_t step, const CmStepStats *s) {
    (void)s;
    const int *at = ctx;
    if (step + 1 == at[0])
        for (int k = 0; k < at[1]; k++) raise(SIGINT);
}

int cmd_train(int argc, char **argv) {
    CmTrainOpts o;
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    cm_train_opts_defaults(&o);
    int n = cm_train_opts_specs(&o, specs);
    int rc = args_parse(argc, argv, specs, n, "train", "--train-data URLS [OpenCLIP flags] [--enable-lora]", NULL);
    if (rc < 0) return 0;
    if (rc) return rc;
    cm_status st = cm_train_opts_finalize(&o);
    if (st == CM_ERR_ARG) { fprintf(stderr, "clipmod train: %s\n", cm_last_error()); return 2; }
    if (st) return cli_fail("train");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int hook[2] = {0, 1};
    const char *hk = getenv("CLIPMOD_TEST_SIGNAL_AT_STEP");
    if (hk && *hk && sscanf(hk, "%d:%d", &hook[0], &hook[1]) < 1) hook[0] = 0;
    CmRun r;
    st = cm_train_main_stop(&o, &r, hook[0] > 0 ? test_hook : NULL, hook, &g_stop);
    if (st) {
        fprintf(stderr, "clipmod train: %s\n", cm_last_error());
        return st == CM_ERR_ARG ? 2 : 1;
    }
    if (r.stopped) {
        const char *nm = r.stopped == SIGINT ? "SIGINT" : r.stopped == SIGTERM ? "SIGTERM" : "a signal";
        if (r.stop_checkpoint[0])
            fprintf(stderr, "clipmod train: interrupted by %s after step %lld; saved %s\n"
                    "clipmod train: to continue exactly where it stopped, run the same command with --resume latest\n",
                    nm, (long long)r.steps_done, r.stop_checkpoint);
        else fprintf(stderr, "clipmod train: interrupted by %s at step %lld; no new checkpoint (nothing trained yet in this run, or --logs none)\n",
                     nm, (long long)r.steps_done);
        return 128 + r.stopped;
    }
    char extra[512];
    snprintf(extra, sizeof extra, "\"epochs\":%d,\"steps\":%lld,\"loss\":%.6g,\"loss_con\":%.6g,\"loss_cls\":%.6g,\"train_seconds\":%.1f",
             o.epochs, (long long)r.steps_done, (double)r.last.loss, (double)r.last.loss_con, (double)r.last.loss_cls, r.train_seconds);
    if (r.have_val) {
        char *js = cm_metrics_json(&r.val_metrics, extra);
        if (js) { printf("%s\n", js); cm_free(js); }
    } else printf("{%s}\n", extra);
    return 0;
}
