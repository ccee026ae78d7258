/*
 * cmd_eval.c — `clipmod eval --model CKPT --val-data URLS [--json]` (DESIGN §7): the validation
 * code of training (src/eval/eval.c cm_validate) over WebDataset shards, in order, eval
 * transform, last batch partial. Prints a human table (top-1/top-2, per-class precision /
 * recall / F1 / support, confusion matrix), or with --json one JSON object:
 *   {"n":..,"top1":..,"top2":..,"clip_val_loss":..,"val_loss":..,"macro_f1":..,
 *    "per_class":[{"class":..,"name":..,"precision":..,"recall":..,"f1":..,"support":..}],
 *    "confusion":[[..]]}
 * The checkpoint is a clipmod checkpoint (LoRA ones over their base) or a weights file with a
 * head (--model-name gives its config). Captions use the tokenizer the checkpoint was trained
 * with (BPE: --vocab or the default search; the demo's byte level).
 * --scores-out FILE writes the per-sample scores (key, shard URL, label, probabilities; JSON lines,
 * src/eval/scores.h) and --html FILE the HTML report of them (`clipmod report --eval`).
 * Under mpirun / srun (docs/distributed.md): each rank evaluates its share of the shards (split by
 * rank, as training's validation), the counts are summed, per-sample scores are gathered by rank 0
 * in the one-process order; rank 0 alone prints and writes; a failing rank ends the job.
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/precision.h"
#include "common/common.h"
#include "data/loader_source.h"
#include "data/textenc.h"
#include "eval/eval.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "eval/scores.h"
#include "eval/val_scores.h"
#include "model/model.h"
#include "model/open.h"
#include "data/wds.h"
#include "dist/dist.h"
#include "eval/scores_dist.h"

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *val = NULL, *vocab = NULL, *model_name = NULL, *base_model = NULL, *cache_dir = NULL;
    const char *scores_out = NULL, *html = NULL, *precision = "fp32";
    bool json = false;
    int batch = 64, workers = 1, threads = 0;
    double w_con = 1.0, w_cls = 1.0, progress = 10;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model, "CKPT", "clipmod checkpoint or weights file with a head (required)"),
        ARG("--val-data", ARG_STR, &val, "URLS", "shards: brace patterns joined by '::' (required)"),
        ARG("--json", ARG_FLAG, &json, NULL, "one JSON object instead of the table"),
        ARG("--scores-out", ARG_STR, &scores_out, "FILE", "per-sample scores as JSON lines: key, shard url, label, pred, probs"),
        ARG("--html", ARG_STR, &html, "FILE", "also write the HTML report of the scores (as clipmod report --eval)"),
        ARG("--model-name", ARG_STR, &model_name, "NAME|JSON", "config of a plain weights file", .check = args_check_model_name),
        ARG("--vocab", ARG_STR, &vocab, "PATH", "BPE vocabulary (default: next to the model, $CLIPMOD_VOCAB, <prefix>/share/clipmod/)"),
        ARG("--batch-size", ARG_INT, &batch, "N", "batch size (default 64)", ARG_RANGE(1, 65536)),
        ARG("--workers", ARG_INT, &workers, "N", "decode threads (default 1)", ARG_RANGE(0, 1024)),
        ARG("--threads", ARG_INT, &threads, "N", "compute threads (more than 4x the cores: clamped)", ARG_RANGE(0, 65536)),
        ARG("--contrastive-weight", ARG_FLOAT, &w_con, "W", "weight of the contrastive loss in val_loss (default 1)"),
        ARG("--classification-weight", ARG_FLOAT, &w_cls, "W", "weight of the classification loss in val_loss (default 1)"),
        ARG("--progress-seconds", ARG_FLOAT, &progress, "S", "progress line on stderr every S seconds when not a terminal (default 10; 0: none)",
            ARG_RANGE(0, 86400)),
        ARG("--precision", ARG_STR, &precision, "P", CLI_PRECISION_HELP),
        ARG("--base-model", ARG_STR, &base_model, "PATH", "base weights of a LoRA checkpoint (default: found by SHA-256, docs/open.md)"),
        ARG("--cache-dir", ARG_STR, &cache_dir, "DIR", "Hugging Face cache searched for the base (default $HF_HOME/hub, ...)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "eval", "--model CKPT --val-data URLS [--json] [--scores-out FILE] [--html FILE]", NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model || !val) { fprintf(stderr, "clipmod eval: --model and --val-data are required\n"); return 2; }
    if ((scores_out && !strcmp(scores_out, "-")) || (html && !strcmp(html, "-"))) {
        fprintf(stderr, "clipmod eval: %s -: written atomically to a file; give a path (stdout carries the metrics)\n",
                scores_out && !strcmp(scores_out, "-") ? "--scores-out" : "--html");
        return 2;
    }
    if (threads > 0) cm_threads_set(cli_threads("eval", threads));
    /* under mpirun / srun: this rank's share of the shards; rank 0 reports */
    if (cm_dist_init()) { fprintf(stderr, "clipmod eval: %s\n", cm_last_error()); return 1; }
    const int world = cm_dist_size(), rank = cm_dist_rank();
    if (rank != 0 && cm_log_level() > CM_LOG_WARN) cm_log_set_level(CM_LOG_WARN);
    CmShardList vsl = {0};
    CmScoresOrder so = {0};
    /* from here on every failure is about files or data: exit 1 */
    if (cli_precision_check("eval", precision)) return 2;
    CmModel *m = NULL;
    CmModelInfo info;
    CmOpenOptions oo = {model_name, base_model, cache_dir};
    CmTextEnc te = {0};
    CmBatchSource *src = NULL;
    CmScores sc;
    cm_scores_init(&sc, 0);
    bool want_scores = scores_out || html;
    int status = 1;
    if (cm_model_open(model, &oo, &m, &info)) goto fail;
    if (!m->cfg.has_head) { cm_error(CM_ERR_ARG, "%s has no classification head", model); goto fail; }
    if (cli_apply_precision("eval", precision, &m)) goto fail;
    if (cm_textenc_open(&te, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", vocab, info.weights)) goto fail;
    CmBatchesConfig dc = {.urls = val, .train = false, .batch_size = batch, .workers = workers, .rank = rank, .world_size = world,
                          .image_size = m->cfg.vision.image_size, .context_len = m->cfg.text.context_length, .te = &te};
    if (cm_batches_open(&dc, &src)) goto fail;
    if (progress > 0 && rank == 0) {
        /* the total for the ETA: sizes.json next to the shards when there is one */
        long long total = 0;
        CmShardList sl = {0};
        int64_t t = 0;
        if (!cm_shardlist_init(&sl, val, NULL, "--val-data") && !cm_dataset_size(&sl.urls, &t)) total = t;
        cm_shardlist_free(&sl);
        cm_clear_error();
        src = cli_progress_source(src, "eval", total, progress);
    }
    CmMetrics mt;
    double t0 = cm_now();
    CmValBatchFn collect = want_scores ? cm_val_scores_collect : NULL;
    void *collect_ctx = &sc;
    if (want_scores && world > 1) {   /* rows carry their shard's index: rank 0 orders them */
        if (cm_shardlist_init(&vsl, val, NULL, "--val-data")) goto fail;
        so.s = &sc; so.urls = vsl.urls.v; so.n_urls = vsl.urls.n; so.last = -1;
        collect = cm_val_scores_collect_ordered;
        collect_ctx = &so;
    }
    if (cm_validate_ex(m, src, 0, (float)w_con, (float)w_cls, &mt, collect, collect_ctx)) {
        cli_progress_end(src);
        goto fail;
    }
    cli_progress_end(src);
    int64_t counts[2] = {src->skipped, src->no_json};
    if (world > 1 && (cm_metrics_allreduce(&mt) || cm_dist_allreduce_i64(counts, 2) || (want_scores && cm_scores_gather_ordered(&so))))
        goto fail;
    long long skipped = (long long)counts[0];
    if (rank != 0) { status = 0; goto out; }   /* rank 0 alone reports (the job's total) */
    if (mt.n == 0) {
        cm_error(CM_ERR_IO, "--val-data %s: no sample could be read (%lld bad samples or shards skipped)", val, skipped);
        goto fail;
    }
    if (scores_out && cm_scores_write(&sc, scores_out)) goto fail;
    if (html) {
        CmReportOpts ro = cm_report_opts_default();
        ro.scores = &sc;
        char label[1400];
        snprintf(label, sizeof label, "clipmod eval --model %s --val-data %s", model, val);
        ro.scores_label = label;
        if (cm_report_html(&ro, html)) goto fail;
        fprintf(stderr, "clipmod eval: report written to %s\n", html);
    }
    if (skipped) cm_warn("--val-data %s: %lld samples evaluated, %lld bad samples or shards skipped", val, (long long)mt.n, skipped);
    if (counts[1]) cm_warn("%lld samples had no .json metadata and were given label 0 (DESIGN §4.2)", (long long)counts[1]);
    if (json) {
        char extra[64];
        snprintf(extra, sizeof extra, "\"skipped\":%lld", skipped);
        char *js = cm_metrics_json(&mt, extra);
        if (!js) goto fail;
        printf("%s\n", js);
        cm_free(js);
    } else {
        printf("model: %s\nval-data: %s\n", model, val);
        if (skipped) printf("skipped: %lld bad samples or shards\n", skipped);
        cm_metrics_print(&mt, stdout);
        printf("\n%.1f s, %.1f samples/s\n", cm_now() - t0, mt.n / (cm_now() - t0 + 1e-9));
    }
    status = fflush(stdout) == 0 ? 0 : 1;
    goto out;
fail:
    status = 1;
    if (cm_dist_active()) {   /* never leave the other ranks waiting in a collective */
        char msg[1200];
        snprintf(msg, sizeof msg, "eval: %s", cm_last_error());
        cm_dist_abort(1, msg);
    }
    fprintf(stderr, "clipmod eval: %s\n", cm_last_error());
out:
    cm_scores_order_free(&so);
    cm_shardlist_free(&vsl);
    cm_scores_free(&sc);
    cm_batches_close(src);
    cm_textenc_close(&te);
    if (m) cm_model_free(m);
    if (status == 0) cm_dist_finalize();
    return status;
}
