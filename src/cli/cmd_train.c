/*
 * cmd_train.c — `clipmod train` (DESIGN §3, §7): OpenCLIP's flags (src/cli/train_flags.c holds
 * the table, its rules, defaults and checks; mapped onto the library's CmTrainConfig), the model
 * from --model/--pretrained/--enable-lora (src/train/setup.c), WebDataset batches, the run
 * (src/train/train_main.c, run.c: out.log, params.txt, checkpoints, results.jsonl). The last
 * stdout line is one JSON object: the last validation's metrics (DESIGN §7 eval JSON) plus
 * "epochs", "steps", "loss", or the last training losses when there is no --val-data.
 * Exit status: 2 for anything wrong on the command line (parser rules, cross-flag checks), 1 for
 * every failure after that (docs/flags.md).
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
#include "dist/dist.h"
#include "common/common.h"
#include "cli/train_flags.h"
#include "data/wds.h"
#include "train/train_main.h"

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

/* rank 0's report at the end of a run: the interruption message or the summary JSON line; the exit status */
static int report(const CmTrainOpts *o, const CmRun *r) {
    if (r->stopped) {
        const char *nm = r->stopped == SIGINT ? "SIGINT" : r->stopped == SIGTERM ? "SIGTERM" : "a signal";
        if (r->stop_checkpoint[0])
            fprintf(stderr, "clipmod train: interrupted by %s after step %lld; saved %s\n"
                    "clipmod train: to continue exactly where it stopped, run the same command with --resume latest\n",
                    nm, (long long)r->steps_done, r->stop_checkpoint);
        else fprintf(stderr, "clipmod train: interrupted by %s at step %lld; no new checkpoint (nothing trained yet in this run, or --logs none)\n",
                     nm, (long long)r->steps_done);
        return 128 + r->stopped;
    }
    char extra[512];
    snprintf(extra, sizeof extra, "\"epochs\":%d,\"steps\":%lld,\"loss\":%.6g,\"loss_con\":%.6g,\"loss_cls\":%.6g,\"train_seconds\":%.1f,"
             "\"train_skipped\":%lld,\"val_skipped\":%lld",
             o->epochs, (long long)r->steps_done, (double)r->last.loss, (double)r->last.loss_con, (double)r->last.loss_cls, r->train_seconds,
             (long long)r->train_skipped, (long long)r->val_skipped);
    if (r->train_skipped || r->val_skipped)   /* a partial failure: a warning with the counts */
        cm_warn("%lld training and %lld validation samples/shards were skipped as bad", (long long)r->train_skipped, (long long)r->val_skipped);
    if (r->have_val) {
        char *js = cm_metrics_json(&r->val_metrics, extra);
        if (js) { printf("%s\n", js); cm_free(js); }
    } else printf("{%s}\n", extra);
    return 0;
}

int cmd_train(int argc, char **argv) {
    CmTrainOpts o;
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    cm_train_opts_defaults(&o);
    int n = cm_train_opts_specs(&o, specs);
    /* under mpirun / srun: one rank of a data-parallel group (docs/distributed.md); rank 0 alone
       logs at info level and writes the run folder; any failure ends the whole job. Initialised
       first: the command line's warnings ("--horovod has no effect here", ...) come once, from
       rank 0 (every rank runs the same command: checked at start), and params.txt and the
       checkpoints' "args" say world_size / rank. */
    if (cm_dist_init()) return cli_fail("train");
    int level = cm_log_level();
    if (cm_dist_rank() != 0) cm_log_set_level(CM_LOG_ERROR);
    int rc = args_parse(argc, argv, specs, n, "train", "--train-data URLS [OpenCLIP flags] [--enable-lora]", NULL);
    if (rc < 0) return 0;
    if (rc) return rc;
    /* every error up to here is about the command line: usage (2); after it, a failure is 1 */
    cm_status st = cm_train_opts_finalize(&o);
    if (st) { fprintf(stderr, "clipmod train: %s\n", cm_last_error()); return 2; }
    if (cm_dist_rank() != 0) cm_log_set_level(level > CM_LOG_WARN ? CM_LOG_WARN : level);
    CmTrainConfig cfg;
    char *params = NULL, *json = NULL;
    if (cm_train_opts_to_config(&o, &cfg, &params, &json)) return cli_fail("train");
    cfg.world = cm_dist_size();
    cfg.rank = cm_dist_rank();
    if (cfg.world > 1) {
        cm_info("data-parallel: %d ranks (MPI), global batch %d x %d x accum %d, %s gradient", cfg.world, cfg.world,
                cfg.batch_size, cfg.accum_freq, cfg.openclip_grad ? "OpenCLIP DDP's" : "the exact global-batch");
    }
    /* OpenCLIP's two loss-distribution flags choose how torch spends memory to get a gradient;
       clipmod computes it one way (docs/distributed.md): say what they do here, once */
    if (o.local_loss || o.gather_with_grad) {
        const char *fl = o.local_loss && o.gather_with_grad ? "--local-loss --gather-with-grad" : o.local_loss ? "--local-loss" : "--gather-with-grad";
        if (cfg.world <= 1) cm_info("%s: one process, nothing is gathered: no effect", fl);
        else if (!strcmp(o.dist_grad, "openclip"))
            cm_info("%s under --dist-grad openclip: %s", fl, cfg.openclip_grad ? "OpenCLIP's default gradient (contrastive part / ranks)"
                                                                                : "OpenCLIP's gathered-with-gradient result: the exact global-batch gradient");
        else cm_info("%s: clipmod computes the exact global-batch gradient whatever these say (docs/distributed.md)", fl);
    }
    cm_debug("options: %s", json);   /* --debug (or CLIPMOD_LOG=debug) */
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
    st = cm_train_main_stop(&cfg, &r, hook[0] > 0 ? test_hook : NULL, hook, &g_stop);
    cm_free(params); cm_free(json);
    if (st && cm_dist_active()) {   /* never leave the other ranks waiting in a collective */
        char msg[1200];
        snprintf(msg, sizeof msg, "train: %s", cm_last_error());
        cm_dist_abort(1, msg);
    }
    if (st) return cli_fail("train");   /* after the flags: every failure is 1 (docs/flags.md) */
    int code = cfg.rank == 0 ? report(&o, &r) : (r.stopped ? 128 + r.stopped : 0);   /* rank 0 alone reports */
    /* every rank waits for rank 0's report: under mpirun a rank that ends first with a non-zero
       status (128 + signal) makes the launcher kill the others, cutting rank 0's last lines */
    if (cfg.world > 1) {
        fflush(stdout);
        fflush(stderr);
        cm_dist_barrier();
    }
    cm_dist_finalize();
    return code;
}
