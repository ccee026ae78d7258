/*
 * cmd_demo.c — `clipmod demo` (DESIGN §7, docs/demo.md): writes the synthetic 7-class dataset
 * (src/data/synth.h) as WebDataset shards, trains a small CLIP + head from scratch through the
 * training loop of `clipmod train` (cm_train_run: same options structure, trainer, schedule,
 * validation, logging, checkpoints), evaluates on the held-out split and prints top-1, top-2,
 * per-class figures and the confusion matrix; the last stdout line is the eval JSON of DESIGN §7
 * with a few demo fields added.
 *
 * The shards are read back through the project's WebDataset reader, decoded, put through the
 * eval transform and tokenised with the byte-level tokenizer (src/data/bytetok.h) into memory;
 * a small in-memory batch source reshuffles the training samples every epoch (from --seed and
 * the epoch, as cm_epoch_seed does for the loop's own streams).
 * --modality image|text blanks the caption (the empty caption: SOT, EOT) or the image (all
 * zeros after normalisation) in both splits, to show what one modality alone reaches.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "common/rng.h"
#include "data/bytetok.h"
#include "data/image.h"
#include "data/synth.h"
#include "data/wds.h"
#include "model/model.h"
#include "train/batches.h"
#include "train/metrics.h"
#include "train/run.h"
#include "train/train_opts.h"

/* The demo model: a small ViT (32 px, 8 px patches) and text tower (byte ids, 48 tokens), both
   width 64 with 2 layers, embed 64, the DESIGN §1.3 head at d = 64. OpenCLIP config layout. */
static const char DEMO_MODEL_JSON[] =
    "{\n"
    "  \"model_name\": \"clipmod-demo\",\n"
    "  \"model_cfg\": {\n"
    "    \"embed_dim\": 64,\n"
    "    \"quick_gelu\": false,\n"
    "    \"vision_cfg\": {\"image_size\": 32, \"patch_size\": 8, \"width\": 64, \"layers\": 2, \"head_width\": 32, \"mlp_ratio\": 4.0},\n"
    "    \"text_cfg\": {\"context_length\": 48, \"vocab_size\": 259, \"width\": 64, \"heads\": 2, \"layers\": 2, \"mlp_ratio\": 4.0}\n"
    "  },\n"
    "  \"head\": {\"d\": 64, \"heads\": 4, \"ff\": 256, \"layers\": 2, \"classes\": 7, \"dropout_design\": 0.1, \"classifier_dropout_design\": 0.2}\n"
    "}\n";

enum { MOD_BOTH = 0, MOD_IMAGE, MOD_TEXT };

typedef struct {
    float *img;
    int32_t *tok, *lab;
    int n;
} Split;

static void split_free(Split *s) { cm_free(s->img); cm_free(s->tok); cm_free(s->lab); memset(s, 0, sizeof *s); }

/* Read dir/<name>/NNNNN.tar through the WebDataset reader into memory (eval transform, byte ids). */
static cm_status load_split(const char *dir, const char *name, int S, int ctx, int modality, Split *out) {
    memset(out, 0, sizeof *out);
    size_t isz = (size_t)3 * S * S;
    int cap = 0, skipped = 0;
    cm_status st = CM_OK;
    for (int sh = 0; !st; sh++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/%05d.tar", dir, name, sh);
        if (!cm_file_exists(path)) break;
        CmWdsReader *r = NULL;
        if ((st = cm_wds_open(path, true, 0, &r))) break;
        CmWdsSample *s = NULL;
        int rc;
        while (!st && (rc = cm_wds_next(r, &s)) == 1) {
            const CmWdsField *im = cm_wds_image(s), *tx = cm_wds_field(s, "txt"), *js = cm_wds_field(s, "json");
            int label = -1;
            CmImage img = {0};
            if (s->error || !im || !tx || !js || cm_label_from_json((const char *)js->data, js->size, &label) ||
                cm_image_decode(im->data, im->size, s->key, 0, &img)) {
                cm_warn("%s: sample %s skipped (%s)", path, s->key, s->error ? s->error : cm_last_error());
                skipped++;
                cm_wds_sample_free(s);
                continue;
            }
            if (out->n == cap) {
                cap = cap ? cap * 2 : 1024;
                float *ni = realloc(out->img, isz * cap * sizeof(float));
                if (ni) out->img = ni;
                int32_t *nt = realloc(out->tok, (size_t)ctx * cap * sizeof(int32_t));
                if (nt) out->tok = nt;
                int32_t *nl = realloc(out->lab, (size_t)cap * sizeof(int32_t));
                if (nl) out->lab = nl;
                if (!ni || !nt || !nl) st = cm_error(CM_ERR_OOM, "%s: out of memory loading the demo data", path);
            }
            if (!st) {
                float *dst = out->img + isz * out->n;
                if (modality == MOD_TEXT) memset(dst, 0, isz * sizeof(float));
                else st = cm_transform_eval(&img, S, &CM_CLIP_NORMALIZE, dst);
            }
            if (!st) st = cm_bytetok_encode((const char *)tx->data, modality == MOD_IMAGE ? 0 : tx->size,
                                            out->tok + (size_t)ctx * out->n, ctx);
            if (!st) out->lab[out->n++] = label;
            cm_image_free(&img);
            cm_wds_sample_free(s);
        }
        if (!st && rc < 0) st = cm_last_status();
        cm_wds_close(r);
    }
    if (!st && out->n == 0) st = cm_error(CM_ERR_IO, "%s/%s: no readable samples", dir, name);
    if (st) { split_free(out); return st; }
    if (skipped) cm_warn("%s/%s: %d bad samples skipped", dir, name, skipped);
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// in-memory batch source with a per-epoch shuffle (training) or in order (validation)

typedef struct {
    CmBatchSource base;
    const Split *d;
    int *perm;
    int64_t pos, served;
    bool train;
    uint64_t seed;
} DemoSource;

static cm_status demo_start(CmBatchSource *b, int64_t epoch) {
    DemoSource *s = (DemoSource *)b;
    for (int i = 0; i < s->d->n; i++) s->perm[i] = i;
    if (s->train) {
        CmRng r;
        cm_rng_seed(&r, cm_epoch_seed(s->seed, epoch, 7));
        cm_shuffle_ints(s->perm, s->d->n, &r);
    }
    s->pos = s->served = 0;
    return CM_OK;
}

static cm_status demo_next(CmBatchSource *b, float *images, int32_t *tokens, int32_t *labels, int *got) {
    DemoSource *s = (DemoSource *)b;
    size_t isz = (size_t)3 * b->image_size * b->image_size;
    *got = 0;
    if (s->train && s->served >= b->num_batches) return CM_OK;
    int k = 0;
    while (k < b->batch && s->pos < s->d->n) {
        int i = s->perm[s->pos++];
        memcpy(images + isz * k, s->d->img + isz * i, isz * sizeof(float));
        memcpy(tokens + (size_t)b->ctx * k, s->d->tok + (size_t)b->ctx * i, (size_t)b->ctx * sizeof(int32_t));
        labels[k++] = s->d->lab[i];
    }
    s->served++;
    *got = k;
    return CM_OK;
}

static void demo_close(CmBatchSource *b) {
    DemoSource *s = (DemoSource *)b;
    cm_free(s->perm);
    cm_free(s);
}

static cm_status demo_source(const Split *d, int S, int ctx, int batch, bool train, uint64_t seed, CmBatchSource **out) {
    *out = NULL;
    if (train && d->n < batch)
        return cm_error(CM_ERR_ARG, "--train-samples %d: fewer than one batch of --batch-size %d", d->n, batch);
    DemoSource *s = cm_calloc(1, sizeof *s, "demo batches");
    if (!s) return CM_ERR_OOM;
    s->perm = cm_malloc(sizeof(int) * (size_t)d->n, "demo batches");
    if (!s->perm) { cm_free(s); return CM_ERR_OOM; }
    s->d = d;
    s->train = train;
    s->seed = seed;
    s->base.start_epoch = demo_start;
    s->base.next = demo_next;
    s->base.close = demo_close;
    s->base.batch = batch;
    s->base.image_size = S;
    s->base.ctx = ctx;
    s->base.num_batches = train ? d->n / batch : 0;   /* OpenCLIP drops the partial last batch */
    s->base.num_samples = train ? s->base.num_batches * batch : d->n;
    *out = &s->base;
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------

static int usage_error(const char *flag, const char *msg) {
    fprintf(stderr, "clipmod demo: %s %s\n", flag, msg);
    return 2;
}

static void remove_tree(const char *dir) {
    /* only what the demo wrote: train/, val/, the config */
    const char *sub[] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        char p[4200];
        for (int i = 0;; i++) {
            snprintf(p, sizeof p, "%s/%s/%05d.tar", dir, sub[k], i);
            if (unlink(p)) break;
        }
        snprintf(p, sizeof p, "%s/%s/sizes.json", dir, sub[k]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", dir, sub[k]);
        rmdir(p);
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/demo_model.json", dir);
    unlink(p);
    rmdir(dir);
}

int cmd_demo(int argc, char **argv) {
    const char *data_dir = NULL, *modality_s = "both", *logs = NULL, *model_json = NULL;
    long long seed = 0;
    int epochs = 10, n_train = 8400, n_val = 1400, batch = 64, warmup = 100, threads = 0, log_every = 20;
    double lr = 2e-3, wd = 0.1;
    bool keep = false;
    ArgSpec specs[] = {
        {"--data-dir", ARG_STR, &data_dir, "DIR", "write the shards here (default: a temporary folder, removed afterwards)"},
        {"--seed", ARG_I64, &seed, "N", "seed of the data, the initialisation and the training (default 0)"},
        {"--epochs", ARG_INT, &epochs, "N", "training epochs (default 10)"},
        {"--train-samples", ARG_INT, &n_train, "N", "training samples (default 8400)"},
        {"--val-samples", ARG_INT, &n_val, "N", "held-out samples (default 1400)"},
        {"--batch-size", ARG_INT, &batch, "N", "batch size (default 64)"},
        {"--lr", ARG_FLOAT, &lr, "LR", "peak learning rate, cosine schedule (default 2e-3)"},
        {"--warmup", ARG_INT, &warmup, "N", "warmup steps (default 100)"},
        {"--wd", ARG_FLOAT, &wd, "WD", "weight decay (default 0.1)"},
        {"--threads", ARG_INT, &threads, "N", "compute threads (default: CLIPMOD_THREADS or all cores)"},
        {"--modality", ARG_STR, &modality_s, "both|image|text", "train and evaluate on both inputs, or blank the caption (image) or the image (text)"},
        {"--logs", ARG_STR, &logs, "DIR", "also write the run folder (out.log, params.txt, checkpoints, results.jsonl) under DIR/demo-<modality>"},
        {"--log-every-n-steps", ARG_INT, &log_every, "N", "progress line every N steps (default 20)"},
        {"--model", ARG_STR, &model_json, "FILE", "a model config JSON instead of the built-in demo config (its text tower must take byte ids: vocab_size 259)"},
        {"--keep-data", ARG_FLAG, &keep, NULL, "keep the temporary data folder"},
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "demo",
                        "[--data-dir DIR] [--seed N] [--epochs N] [--modality both|image|text] ...", NULL);
    if (rc < 0) return 0;
    if (rc) return rc;
    int modality = !strcmp(modality_s, "both") ? MOD_BOTH : !strcmp(modality_s, "image") ? MOD_IMAGE
                 : !strcmp(modality_s, "text") ? MOD_TEXT : -1;
    if (modality < 0) return usage_error("--modality", "must be both, image or text");
    if (epochs < 1 || epochs > 10000) return usage_error("--epochs", "must be in 1..10000");
    if (n_train < 1 || n_train > 10000000) return usage_error("--train-samples", "must be in 1..10000000");
    if (n_val < 1 || n_val > 10000000) return usage_error("--val-samples", "must be in 1..10000000");
    if (batch < 1 || batch > 65536) return usage_error("--batch-size", "must be in 1..65536");
    if (batch > n_train) return usage_error("--batch-size", "is larger than --train-samples");
    if (!(lr > 0) || !isfinite(lr)) return usage_error("--lr", "must be a finite number > 0");
    if (!(wd >= 0) || !isfinite(wd)) return usage_error("--wd", "must be a finite number >= 0");
    if (warmup < 0) return usage_error("--warmup", "must be >= 0");
    if (log_every < 1) return usage_error("--log-every-n-steps", "must be >= 1");
    if (threads < 0) return usage_error("--threads", "must be >= 0");
    if (threads > 0) cm_threads_set(threads);

    double t0 = cm_now();
    char tmp[64] = "", dir[4096];
    if (data_dir) {
        snprintf(dir, sizeof dir, "%s", data_dir);
    } else {
        const char *td = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%.40s/clipmod-demo.XXXXXX", td && *td && strlen(td) < 40 ? td : "/tmp");
        if (!mkdtemp(tmp)) { fprintf(stderr, "clipmod demo: cannot create a temporary folder %s: %s\n", tmp, strerror(errno)); return 1; }
        snprintf(dir, sizeof dir, "%s", tmp);
    }

    int ret = 1;
    CmModel *m = NULL;
    CmBatchSource *src_train = NULL, *src_val = NULL;
    Split tr = {0}, va = {0};
    char *js = NULL;
    cm_status st;

    /* 1. model: the config file in OpenCLIP's layout, as --model FILE would take it */
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/demo_model.json", dir);
    if ((st = cm_mkdir_p(dir))) goto fail;
    if (model_json) snprintf(cfg_path, sizeof cfg_path, "%s", model_json);
    else if ((st = cm_write_file_atomic(cfg_path, DEMO_MODEL_JSON, sizeof DEMO_MODEL_JSON - 1))) goto fail;
    CmModelConfig cfg;
    if ((st = cm_config_from_json_file(cfg_path, &cfg))) goto fail;
    if (!cm_bytetok_for_vocab(cfg.text.vocab_size)) {
        st = cm_error(CM_ERR_ARG, "--model %s: text_cfg.vocab_size is %d; the demo's byte-level tokenizer needs %d",
                      cfg_path, cfg.text.vocab_size, CM_BYTETOK_VOCAB);
        goto fail;
    }
    if (!cfg.has_head || cfg.head.n_classes != 7) {
        st = cm_error(CM_ERR_ARG, "--model %s: the demo needs a head with 7 classes", cfg_path);
        goto fail;
    }
    cfg.has_lora = false;                       /* trained from scratch: all of it, no adapters */

    /* 2. data, rendered at the model's input size */
    CmSynthOpts so;
    cm_synth_opts_default(&so);
    so.seed = (uint64_t)seed;
    so.n_train = n_train;
    so.n_val = n_val;
    so.image_size = cfg.vision.image_size;
    cm_info("demo: writing %d training and %d held-out samples to %s", n_train, n_val, dir);
    if ((st = cm_synth_write(dir, &so))) goto fail;
    double t_data = cm_now() - t0;

    if ((st = cm_model_create(&cfg, &m))) goto fail;
    cm_model_init(m, (uint64_t)seed);
    if ((st = cm_model_set_mode(m, CM_TRAIN_FULL, false, false))) goto fail;
    const int S = cfg.vision.image_size, ctx = cfg.text.context_length;

    /* 3. the shards back through the reader */
    if ((st = load_split(dir, "train", S, ctx, modality, &tr))) goto fail;
    if ((st = load_split(dir, "val", S, ctx, modality, &va))) goto fail;
    if ((st = demo_source(&tr, S, ctx, batch, true, (uint64_t)seed, &src_train))) goto fail;
    if ((st = demo_source(&va, S, ctx, batch, false, (uint64_t)seed, &src_val))) goto fail;

    /* 4. the training loop of `clipmod train` */
    CmTrainOpts o;
    cm_train_opts_defaults(&o);
    char train_urls[4300], val_urls[4300], name[64], logdir[4096];
    cm_synth_urls(dir, CM_SYNTH_TRAIN, n_train, so.shard_size, train_urls, sizeof train_urls);
    cm_synth_urls(dir, CM_SYNTH_VAL, n_val, so.shard_size, val_urls, sizeof val_urls);
    snprintf(name, sizeof name, "demo-%s", modality_s);
    snprintf(logdir, sizeof logdir, "%s", logs ? logs : "none");
    o.train_data = train_urls;
    o.val_data = val_urls;
    o.train_num_samples = tr.n;
    o.val_num_samples = va.n;
    o.dataset_type = "webdataset";
    o.model = cfg_path;
    o.logs = logdir;
    o.name = name;
    o.batch_size = batch;
    o.epochs = epochs;
    o.warmup = warmup;
    o.lr = lr;
    o.wd = wd;
    o.seed = seed;
    o.precision = "fp32";
    o.workers = 1;
    o.val_frequency = epochs;                   /* evaluate once, at the end */
    o.log_every_n_steps = log_every;
    o.save_frequency = logs ? epochs : 0;
    o.threads = threads;
    if ((st = cm_train_opts_finalize(&o))) goto fail;

    CmRun run;
    memset(&run, 0, sizeof run);
    run.o = &o;
    run.m = m;
    run.train = src_train;
    run.val = src_val;
    run.dropout = true;
    cm_info("demo: data ready in %.1f s; training %s (%lld parameters) for %d epochs of %lld steps, modality %s",
            cm_now() - t0, cfg.name, (long long)cm_model_trainable_count(m), epochs,
            (long long)src_train->num_batches, modality_s);
    if ((st = cm_train_run(&run))) goto fail;
    if (!run.have_val) { st = cm_error(CM_ERR_ARG, "demo: no validation ran"); goto fail; }

    /* 5. report: the human table, then the JSON line last */
    double secs = cm_now() - t0;
    printf("clipmod demo: %d held-out samples, modality %s, %d epochs (%lld steps), %.1f s (data %.1f s, training %.1f s)\n",
           va.n, modality_s, epochs, (long long)run.steps_done, secs, t_data, run.train_seconds);
    cm_metrics_print(&run.val_metrics, stdout);
    char extra[512];
    snprintf(extra, sizeof extra,
             "\"demo\":true,\"modality\":\"%s\",\"seed\":%lld,\"epochs\":%d,\"steps\":%lld,\"train_samples\":%d,"
             "\"seconds\":%.1f,\"threads\":%d",
             modality_s, seed, epochs, (long long)run.steps_done, tr.n, secs, cm_threads_get());
    js = cm_metrics_json(&run.val_metrics, extra);
    if (!js) { st = CM_ERR_OOM; goto fail; }
    printf("%s\n", js);
    fflush(stdout);
    ret = 0;
    goto done;

fail:
    ret = cli_fail("demo");
done:
    cm_free(js);
    cm_batches_close(src_train);
    cm_batches_close(src_val);
    split_free(&tr);
    split_free(&va);
    cm_model_free(m);
    if (tmp[0]) {
        if (keep) cm_info("demo: data kept in %s", tmp);
        else remove_tree(tmp);
    }
    return ret;
}
