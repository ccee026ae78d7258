/*
 * train_config.c — defaults of the library's training configuration (see train_config.h).
 */
#include "train/train_config.h"

#include <string.h>
#include <strings.h>

void cm_train_config_defaults(CmTrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->workers = 4;
    c->model = "ViT-B-32";
    c->lora_rank = 4; c->lora_alpha = 32;
    c->tokenizer = "bpe";
    c->prec = CM_PREC_AMP_BF16;
    c->batch_size = 64; c->accum_freq = 1; c->epochs = 32; c->warmup = 10000;
    c->lr = 5e-4; c->beta1 = 0.9; c->beta2 = 0.98; c->eps = 1e-6; c->wd = 0.2;
    c->lr_scheduler = "cosine"; c->lr_cooldown_end = 0; c->lr_cooldown_power = 1.0;
    c->contrastive_weight = 1.0; c->classification_weight = 1.0;
    c->logs = "none";
    c->save_frequency = 1; c->val_frequency = 1; c->log_every_n_steps = 100;
}

#include <math.h>
#include "common/common.h"

static cm_status bad(const char *field, const char *why) {
    return cm_error(CM_ERR_ARG, "training config: %s %s", field, why);
}

static bool fin_ge(double x, double lo) { return isfinite(x) && x >= lo; }

cm_status cm_train_config_check(const CmTrainConfig *c) {
    if (!c->train_data || !*c->train_data) return bad("train_data", "is required");
    if (!c->model || !*c->model) return bad("model", "is required");
    if (c->batch_size < 1) return bad("batch_size", "must be >= 1");
    if (c->accum_freq < 1) return bad("accum_freq", "must be >= 1");
    if (c->epochs < 1) return bad("epochs", "must be >= 1");
    if (c->warmup < 0) return bad("warmup", "must be >= 0");
    if (c->epochs_cooldown < 0 || c->epochs_cooldown > c->epochs) return bad("epochs_cooldown", "must be in 0..epochs");
    if (c->workers < 0) return bad("workers", "must be >= 0");
    if (c->threads < 0) return bad("threads", "must be >= 0");
    if (c->train_num_samples < 0) return bad("train_num_samples", "must be >= 0 (0: from sizes.json)");
    if (c->lora_rank < 1 || c->lora_rank > 4096) return bad("lora_rank", "must be in 1..4096");
    if (!(isfinite(c->lora_alpha) && c->lora_alpha > 0)) return bad("lora_alpha", "must be a finite number > 0");
    if (!fin_ge(c->lr, 0)) return bad("lr", "must be a finite number >= 0");
    if (!(fin_ge(c->beta1, 0) && c->beta1 < 1)) return bad("beta1", "must be in [0, 1)");
    if (!(fin_ge(c->beta2, 0) && c->beta2 < 1)) return bad("beta2", "must be in [0, 1)");
    if (!fin_ge(c->eps, 0)) return bad("eps", "must be a finite number >= 0");
    if (!fin_ge(c->wd, 0)) return bad("wd", "must be a finite number >= 0");
    if (!fin_ge(c->grad_clip_norm, 0)) return bad("grad_clip_norm", "must be a finite number >= 0 (0: off)");
    if (!fin_ge(c->lr_cooldown_end, 0)) return bad("lr_cooldown_end", "must be a finite number >= 0");
    if (!(isfinite(c->lr_cooldown_power) && c->lr_cooldown_power > 0)) return bad("lr_cooldown_power", "must be a finite number > 0");
    if (!fin_ge(c->contrastive_weight, 0)) return bad("contrastive_weight", "must be a finite number >= 0");
    if (!fin_ge(c->classification_weight, 0)) return bad("classification_weight", "must be a finite number >= 0");
    if (c->seed < 0) return bad("seed", "must be >= 0");
    if (c->save_frequency < 0 || c->val_frequency < 0) return bad("save_frequency/val_frequency", "must be >= 0");
    if (c->log_every_n_steps < 1) return bad("log_every_n_steps", "must be >= 1");
    if (!c->tokenizer || (strcmp(c->tokenizer, "bpe") && strcmp(c->tokenizer, "bytes"))) return bad("tokenizer", "must be bpe or bytes");
    if (!c->lr_scheduler || (strcmp(c->lr_scheduler, "cosine") && strcmp(c->lr_scheduler, "const") && strcmp(c->lr_scheduler, "const-cooldown")))
        return bad("lr_scheduler", "must be cosine, const or const-cooldown");
    if (c->prec != CM_PREC_FP32 && c->prec != CM_PREC_AMP_BF16) return bad("prec", "is not a precision");
    bool logs = c->logs && *c->logs && strcasecmp(c->logs, "none");
    if (logs && (!c->name || !*c->name || strchr(c->name, '/'))) return bad("name", "must be a non-empty folder name without '/'");
    return CM_OK;
}
