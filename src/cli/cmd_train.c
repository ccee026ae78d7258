/*
 * cmd_train.c — `clipmod train` (DESIGN §3, §7): OpenCLIP's flags (src/train/train_opts.c holds
 * the table, defaults and checks), then the training loop (src/train/).
 */
#include <stdio.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "train/train_opts.h"

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
    fprintf(stderr, "clipmod train: the training loop is not in this build yet (options parsed and checked)\n");
    return 1;
}
