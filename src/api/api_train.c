/*
 * api_train.c — training through the public API (include/clipmod.h): clipmod_train_params mapped
 * onto the library's training config (train/train_config.h: what `clipmod train`'s flags map
 * onto too), then the same entry point (cm_train_main), so that a call and the command give the
 * same run. The one file of src/api that includes src/train.
 */
#include "clipmod.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/common.h"
#include "train/checkpoint.h"
#include "train/train_main.h"
#include "train/train_config.h"

/* `clipmod train`'s defaults where they differ from the library config's (src/cli/train_flags.c) */
#define CLI_LOGS "./logs/"
#define CLI_WORKERS 4

clipmod_train_params clipmod_train_default_params(void) {
    CmTrainConfig c;
    cm_train_config_defaults(&c);
    clipmod_train_params p;
    memset(&p, 0, sizeof p);
    p.model = c.model;
    p.tokenizer = c.tokenizer;
    p.logs_dir = CLI_LOGS;
    p.lora_rank = c.lora_rank;
    p.lora_alpha = (float)c.lora_alpha;
    p.epochs = c.epochs;
    p.batch_size = c.batch_size;
    p.accum_freq = c.accum_freq;
    p.workers = CLI_WORKERS;
    p.threads = c.threads;
    p.lr = 0;   /* OpenCLIP's default for the model */
    p.wd = c.wd;
    p.warmup = c.warmup;
    p.precision = c.prec == CM_PREC_FP32 ? "fp32" : "amp";
    p.seed = c.seed;
    return p;
}

typedef struct {
    const clipmod_train_params *p;
} Ctx;

/* run.c passes the 0-based index of the step just done */
static void on_step(void *ctx, int64_t step, const CmStepStats *s) {
    const clipmod_train_params *p = ((Ctx *)ctx)->p;
    clipmod_train_progress pr = {step + 1, s->loss, s->loss_con, s->loss_cls, s->lr, s->logit_scale};
    p->progress(p->progress_user, &pr);
}

clipmod_status clipmod_train(clipmod_train_params p, clipmod_train_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!p.train_data || !*p.train_data) return cm_error(CM_ERR_ARG, "clipmod_train: train_data (--train-data) is required");
    CmTrainConfig o;
    cm_train_config_defaults(&o);
    o.train_data = p.train_data;
    o.val_data = p.val_data;
    if (p.model) o.model = p.model;
    o.pretrained = p.pretrained ? p.pretrained : "";
    o.cache_dir = p.cache_dir;
    o.offline = p.offline;
    o.vocab = p.vocab_path;
    if (p.tokenizer) o.tokenizer = p.tokenizer;
    o.logs = p.logs_dir ? p.logs_dir : CLI_LOGS;
    o.enable_lora = p.enable_lora;
    o.lora_rank = p.lora_rank;
    o.lora_alpha = p.lora_alpha;
    o.epochs = p.epochs;
    o.batch_size = p.batch_size;
    o.accum_freq = p.accum_freq;
    o.workers = p.workers;
    o.threads = p.threads;
    if (p.train_num_samples > 0) o.train_num_samples = p.train_num_samples;
    if (p.lr > 0) o.lr = p.lr;
    /* OpenCLIP's optimizer defaults by model family, as `clipmod train` applies them: ViT models
       beta2 0.98 / eps 1e-6, others 0.999 / 1e-8 */
    bool vit = false;
    for (const char *c = o.model; *c && !vit; c++)
        vit = (c[0] == 'v' || c[0] == 'V') && (c[1] == 'i' || c[1] == 'I') && (c[2] == 't' || c[2] == 'T');
    o.beta2 = vit ? 0.98 : 0.999;
    o.eps = vit ? 1e-6 : 1e-8;
    o.wd = p.wd;
    o.warmup = p.warmup;
    if (p.precision) {
        if (!strcmp(p.precision, "fp32")) o.prec = CM_PREC_FP32;
        else if (!strcmp(p.precision, "amp") || !strcmp(p.precision, "amp_bf16")) o.prec = CM_PREC_AMP_BF16;
        else return cm_error(CM_ERR_ARG, "clipmod_train: precision '%s' (fp32, amp or amp_bf16)", p.precision);
    }
    o.grad_checkpointing = p.grad_checkpointing;
    o.dataset_resampled = p.dataset_resampled;
    o.seed = p.seed;
    /* a run name as `clipmod train` makes one when none is given */
    char name[512];
    o.name = p.name;
    if (!o.name && o.logs && strcasecmp(o.logs, "none")) {
        char date[64], model[128];
        time_t t = time(NULL);
        struct tm tmv;
        localtime_r(&t, &tmv);
        strftime(date, sizeof date, "%Y_%m_%d-%H_%M_%S", &tmv);
        snprintf(model, sizeof model, "%s", o.model);
        for (char *c = model; *c; c++) if (*c == '/') *c = '-';
        snprintf(name, sizeof name, "%s-model_%s-lr_%g-b_%d-j_%d-p_%s", date, model, o.lr, o.batch_size, o.workers,
                 o.prec == CM_PREC_FP32 ? "fp32" : "amp");
        o.name = name;
    }
    /* the command's flag names in messages: the API's fields are its flags */
    if (o.batch_size < 1) return cm_error(CM_ERR_ARG, "clipmod_train: batch_size (--batch-size) must be >= 1");
    if (o.epochs < 1) return cm_error(CM_ERR_ARG, "clipmod_train: epochs (--epochs) must be >= 1");
    if (o.accum_freq < 1) return cm_error(CM_ERR_ARG, "clipmod_train: accum_freq (--accum-freq) must be >= 1");
    cm_status st = cm_train_config_check(&o);
    if (st) return st;
    CmRun r;
    Ctx ctx = {&p};
    if ((st = cm_train_main(&o, &r, p.progress ? on_step : NULL, &ctx))) return st;
    if (out) {
        snprintf(out->run_dir, sizeof out->run_dir, "%s", r.run_dir);
        if (r.run_dir[0]) {
            char dir[1100];
            snprintf(dir, sizeof dir, "%s/checkpoints", r.run_dir);
            cm_checkpoint_path(out->checkpoint, sizeof out->checkpoint, dir, o.epochs);
            if (!cm_file_exists(out->checkpoint)) out->checkpoint[0] = 0;
        }
        out->steps = r.steps_done;
        out->have_val = r.have_val;
        if (r.have_val) {
            out->val_n = r.val_metrics.n;
            out->val_top1 = cm_metrics_top1(&r.val_metrics);
            out->val_top2 = cm_metrics_top2(&r.val_metrics);
        }
    }
    return CM_OK;
}
