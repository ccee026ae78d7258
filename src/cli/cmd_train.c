/*
 * cmd_train.c — `clipmod train` (DESIGN §3, §7): OpenCLIP's flags (src/cli/train_flags.c holds
 * the table, its rules, defaults and checks; mapped onto the library's CmTrainConfig), the model
 * from --model/--pretrained/--enable-lora (src/train/setup.c), WebDataset batches, the run
 * (src/train/train_main.c, run.c: out.log, params.txt, checkpoints, results.jsonl). The last
 * stdout line is one JSON object: the last validation's metrics (DESIGN §7 eval JSON) plus
 * "epochs", "steps", "loss", or the last training losses when there is no --val-data.
 * Exit status: 2 for anything wrong on the command line (parser rules, cross-flag checks), 1 for
 * every failure after that (docs/flags.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "cli/train_flags.h"
#include "data/wds.h"
#include "train/train_main.h"

int cmd_train(int argc, char **argv) {
    CmTrainOpts o;
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    cm_train_opts_defaults(&o);
    int n = cm_train_opts_specs(&o, specs);
    int rc = args_parse(argc, argv, specs, n, "train", "--train-data URLS [OpenCLIP flags] [--enable-lora]", NULL);
    if (rc < 0) return 0;
    if (rc) return rc;
    /* every error up to here is about the command line: usage (2); after it, a failure is 1 */
    cm_status st = cm_train_opts_finalize(&o);
    if (st) { fprintf(stderr, "clipmod train: %s\n", cm_last_error()); return 2; }
    CmTrainConfig cfg;
    char *params = NULL, *json = NULL;
    if (cm_train_opts_to_config(&o, &cfg, &params, &json)) return cli_fail("train");
    cm_debug("options: %s", json);   /* --debug (or CLIPMOD_LOG=debug) */
    CmRun r;
    st = cm_train_main(&cfg, &r, NULL, NULL);
    cm_free(params); cm_free(json);
    if (st) return cli_fail("train");
    char extra[512];
    snprintf(extra, sizeof extra, "\"epochs\":%d,\"steps\":%lld,\"loss\":%.6g,\"loss_con\":%.6g,\"loss_cls\":%.6g,\"train_seconds\":%.1f,"
             "\"train_skipped\":%lld,\"val_skipped\":%lld",
             o.epochs, (long long)r.steps_done, (double)r.last.loss, (double)r.last.loss_con, (double)r.last.loss_cls, r.train_seconds,
             (long long)r.train_skipped, (long long)r.val_skipped);
    if (r.train_skipped || r.val_skipped)   /* a partial failure: a warning with the counts */
        cm_warn("%lld training and %lld validation samples/shards were skipped as bad", (long long)r.train_skipped, (long long)r.val_skipped);
    if (r.have_val) {
        char *js = cm_metrics_json(&r.val_metrics, extra);
        if (js) { printf("%s\n", js); cm_free(js); }
    } else printf("{%s}\n", extra);
    return 0;
}
