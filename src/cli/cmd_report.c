/*
 * cmd_report.c — `clipmod report RUN_DIR [--eval SCORES] [--out FILE]`: one self-contained
 * HTML file about a training run (RUN_DIR/steps.jsonl, results.jsonl, params.txt) and/or an
 * evaluation's per-sample scores (`clipmod eval --scores-out`). See src/eval/report.h and
 * docs/report.md. RUN_DIR may be left out when --eval is given.
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "eval/report.h"

int cmd_report(int argc, char **argv) {
    const char *eval = NULL, *out = NULL, *title = NULL;
    int mistakes = 12, thumb = 112;
    ArgList pos = {0};
    ArgSpec specs[] = {
        ARG("--eval", ARG_STR, &eval, "SCORES", "per-sample scores of `clipmod eval --scores-out` (PR/ROC, calibration, mistakes)"),
        ARG("--out", ARG_STR, &out, "FILE", "the HTML file (default: RUN_DIR/report.html)"),
        ARG("--title", ARG_STR, &title, "TEXT", "page title (default: clipmod report)"),
        ARG("--mistakes", ARG_INT, &mistakes, "N", "most confident mistakes shown with thumbnails (default 12)", ARG_RANGE(0, 1000)),
        ARG("--thumb-size", ARG_INT, &thumb, "PX", "thumbnail side in pixels (default 112)", ARG_RANGE(16, 512)),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "report",
                        "RUN_DIR [--eval SCORES] [--out report.html]", &pos);
    if (rc) { args_free(&pos); return rc < 0 ? 0 : rc; }
    const char *run = pos.n ? pos.v[0] : NULL;
    int status = 2;
    char def_out[1200];
    if (pos.n > 1) { fprintf(stderr, "clipmod report: one RUN_DIR expected, got %d arguments\n", pos.n); goto out; }
    if (!run && !eval) { fprintf(stderr, "clipmod report: give a RUN_DIR, --eval SCORES, or both\n"); goto out; }
    if (mistakes < 0 || mistakes > 1000) { fprintf(stderr, "clipmod report: --mistakes must be in 0..1000\n"); goto out; }
    if (thumb < 16 || thumb > 512) { fprintf(stderr, "clipmod report: --thumb-size must be in 16..512\n"); goto out; }
    if (out && !strcmp(out, "-")) {   /* docs/flags.md: '-' is refused where stdout cannot be written */
        fprintf(stderr, "clipmod report: --out -: the report is a file (written atomically); give a path\n");
        goto out;
    }
    if (!out) {
        if (!run) { fprintf(stderr, "clipmod report: --out is required without a RUN_DIR\n"); goto out; }
        snprintf(def_out, sizeof def_out, "%s/report.html", run);
        out = def_out;
    }
    CmReportOpts o = cm_report_opts_default();
    o.run_dir = run;
    o.scores_path = eval;
    o.mistakes = mistakes;
    o.thumb_px = thumb;
    if (title) o.title = title;
    if (cm_report_html(&o, out)) {
        status = cm_last_status() == CM_ERR_ARG ? 2 : 1;
        fprintf(stderr, "clipmod report: %s\n", cm_last_error());
        goto out;
    }
    fprintf(stderr, "clipmod report: wrote %s\n", out);
    status = 0;
out:
    args_free(&pos);
    return status;
}
