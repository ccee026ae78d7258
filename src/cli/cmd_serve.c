/*
 * cmd_serve.c — `clipmod serve --model CKPT [--host 127.0.0.1] [--port 8080] ...` (DESIGN §7,
 * docs/serve.md): open the model once (LoRA merged into the towers), start the HTTP server of
 * src/serve/server.h, log the URL on stdout, and on SIGTERM/SIGINT stop accepting, finish the
 * accepted requests and exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/precision.h"
#include "common/common.h"
#include "infer/thresholds.h"
#include "model/model.h"
#include "serve/server.h"
#include "model/open.h"
#include "data/textenc.h"

/* The one place serve opens a model: the opening of every command (cm_model_open, model/open.h),
   then LoRA merged into attn.out_proj once so the batch worker runs plain towers (not for int8,
   which keeps LoRA as an fp32 term beside the int8 out_proj: src/cli/precision.c). */
static cm_status serve_open_model(const char *path, const CmOpenOptions *oo, bool merge, CmModel **out, CmModelInfo *info) {
    CmModel *m = NULL;
    cm_status st = cm_model_open(path, oo, &m, info);
    if (st) return st;
    if (merge && m->cfg.has_lora) {
        CmModel *merged = NULL;
        st = cm_model_merge_lora(m, &merged);
        cm_model_free(m);
        if (st) return cm_error_prefix("%s: merging LoRA", path);
        m = merged;
    }
    *out = m;
    return CM_OK;
}

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *model_name = NULL, *vocab = NULL, *precision = "fp32", *model_id = NULL, *base_model = NULL,
               *cache_dir = NULL;
    CmServeOpts o;
    cm_serve_opts_default(&o);
    long long max_body = (long long)o.max_body, max_caption = (long long)o.max_caption, max_pixels = 0;
    int drain_ms = 30000;
    ArgList thr = {0};
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model, "CKPT", "clipmod checkpoint or weights file with a head (required)"),
        ARG("--model-name", ARG_STR, &model_name, "NAME|JSON", "config of a plain weights file (as predict)"),
        ARG("--vocab", ARG_STR, &vocab, "PATH", "BPE vocabulary (default: next to the model, $CLIPMOD_VOCAB, ...)"),
        ARG("--host", ARG_STR, &o.host, "ADDR", "address to listen on (default 127.0.0.1)"),
        ARG("--port", ARG_INT, &o.port, "N", "port (default 8080; 0 = pick a free one and print it)"),
        ARG("--threads", ARG_INT, &o.threads, "N", "HTTP thread pool size (default 4)"),
        ARG("--max-connections", ARG_INT, &o.max_connections, "N", "open connections at most (default 256)"),
        ARG("--max-batch", ARG_INT, &o.max_batch, "N", "items per forward pass (default 16)"),
        ARG("--max-wait-ms", ARG_INT, &o.max_wait_ms, "MS", "longest wait for a batch to fill (default 5)"),
        ARG("--max-queue", ARG_INT, &o.max_queue, "N", "items waiting at most, then 429 (default 256)"),
        ARG("--max-items", ARG_INT, &o.max_items, "N", "items of one JSON array request (default 64)"),
        ARG("--max-body-bytes", ARG_I64, &max_body, "N", "request body limit, then 413 (default 16 MiB)"),
        ARG("--max-caption-bytes", ARG_I64, &max_caption, "N", "caption limit, then 413 (default 8192)"),
        ARG("--max-pixels", ARG_I64, &max_pixels, "N", "decoded image pixel limit, then 413 (default 64 Mpx)"),
        ARG("--timeout-ms", ARG_INT, &o.timeout_ms, "MS", "queue wait limit per request, then 503 (default 30000)"),
        ARG("--drain-ms", ARG_INT, &drain_ms, "MS", "on SIGTERM, wait this long for accepted requests (default 30000)"),
        ARG("--base-model", ARG_STR, &base_model, "PATH", "base weights of a LoRA checkpoint (default: found by SHA-256, docs/open.md)"),
        ARG("--cache-dir", ARG_STR, &cache_dir, "DIR", "Hugging Face cache searched for the base (default $HF_HOME/hub, ...)"),
        ARG("--precision", ARG_STR, &precision, "P", "fp32 (default; the numbers of predict), bf16 or amp (bf16 tower products), int8 (int8 tower linears)"),
        ARG("--threshold", ARG_LIST, &thr, "CLASS=P", "flag when P(CLASS) >= P (repeatable; e.g. Hate=0.5)"),
        ARG("--model-id", ARG_STR, &model_id, "STR", "\"model\" field of the answers (default: the file name)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "serve", "--model CKPT [--port N] [options]", NULL);
    if (rc) { args_free(&thr); return rc < 0 ? 0 : rc; }
    int status = 0;
    CmModel *m = NULL;
    CmTextEnc te = {0};
    bool te_open = false;
    CmThresholds rules = {0};
    if (!model) { fprintf(stderr, "clipmod serve: --model is required\n"); status = 2; goto out; }
    if (cli_precision_check("serve", precision)) { status = 2; goto out; }
    if (max_body < 1 || max_caption < 1 || max_pixels < 0) {
        fprintf(stderr, "clipmod serve: --max-body-bytes / --max-caption-bytes must be >= 1, --max-pixels >= 0\n");
        status = 2; goto out;
    }
    o.max_body = (size_t)max_body;
    o.max_caption = (size_t)max_caption;
    o.max_pixels = (size_t)max_pixels;
    if (drain_ms < 0) { fprintf(stderr, "clipmod serve: --drain-ms must be >= 0\n"); status = 2; goto out; }

    double t0 = cm_now();
    CmModelInfo info;
    CmOpenOptions oo = {model_name, base_model, cache_dir};
    if (serve_open_model(model, &oo, strcmp(precision, "int8") != 0, &m, &info)) { status = cli_fail("serve"); goto out; }
    int n_classes = m->cfg.has_head ? m->cfg.head.n_classes : 0;
    for (int i = 0; i < thr.n; i++)
        if (cm_thresholds_add(&rules, thr.v[i], n_classes)) { fprintf(stderr, "clipmod serve: %s\n", cm_last_error()); status = 2; goto out; }
    if (!m->cfg.has_head)
        fprintf(stderr, "clipmod serve: warning: %s has no classification head: /v1/classify answers 501, /v1/embed works\n", model);
    if (cm_textenc_open(&te, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", vocab, info.weights)) { status = cli_fail("serve"); goto out; }
    te_open = true;
    if ((status = cli_apply_precision("serve", precision, &m))) goto out;
    o.load_seconds = cm_now() - t0;
    const char *base = strrchr(model, '/');
    o.model_id = model_id ? model_id : base ? base + 1 : model;
    o.thresholds = &rules;
    o.compute_threads = cm_threads_get();

    /* SIGTERM/SIGINT go to sigwait below, not to the server threads (they inherit this mask) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    CmServer *srv = NULL;
    if (cm_serve_start(&o, m, &te, &srv)) { status = cm_last_status() == CM_ERR_ARG ? 2 : 1; cli_fail("serve"); goto out; }
    const char *host = o.host && *o.host ? o.host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    printf("clipmod serve: listening on http://%s%s%s:%d/ (model %s, %s, load %.3f s, max batch %d)\n", v6 ? "[" : "", host,
           v6 ? "]" : "", cm_serve_port(srv), o.model_id, precision, o.load_seconds, o.max_batch);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "clipmod serve: %s: finishing accepted requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    int left = cm_serve_shutdown(srv, drain_ms);
    if (left) { fprintf(stderr, "clipmod serve: %d requests unfinished after --drain-ms %d\n", left, drain_ms); status = 1; }
    else fprintf(stderr, "clipmod serve: stopped\n");
out:
    if (te_open) cm_textenc_close(&te);
    cm_model_free(m);
    args_free(&thr);
    return status;
}
