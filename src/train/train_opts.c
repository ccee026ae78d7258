/*
 * train_opts.c — `clipmod train` options: the flag table (OpenCLIP names and defaults), model
 * defaults, validation, run name, params.txt, JSON dump, epoch sizing. See train_opts.h.
 */
#include "train/train_opts.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cm_train_opts_defaults(CmTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->dataset_type = "auto";
    o->train_num_samples = -1; o->val_num_samples = -1;
    o->csv_separator = "\t"; o->csv_img_key = "filepath"; o->csv_caption_key = "title";
    o->logs = "./logs/";
    o->report_to = ""; o->wandb_notes = ""; o->wandb_project_name = "open-clip";
    o->save_frequency = 1; o->val_frequency = 1; o->zeroshot_frequency = 2; o->log_every_n_steps = 100;
    o->workers = 4; o->batch_size = 64; o->epochs = 32; o->epochs_cooldown = -1; o->warmup = 10000;
    o->accum_freq = 1;
    o->lr = NAN; o->beta1 = NAN; o->beta2 = NAN; o->eps = NAN; o->wd = 0.2; o->momentum = NAN;
    o->grad_clip_norm = NAN;
    o->lr_cooldown_end = 0.0; o->lr_cooldown_power = 1.0;
    o->opt = "adamw"; o->lr_scheduler = "cosine"; o->precision = "amp";
    o->seed = 0;
    /* OpenCLIP's default is RN50, which clipmod does not implement; ViT-B-32 is the project's model */
    o->model = "ViT-B-32"; o->pretrained = "";
    o->device = "cpu";
    o->force_patch_dropout = NAN;
    o->loss_dist_impl = NULL;
    o->coca_caption_loss_weight = 2.0; o->coca_contrastive_loss_weight = 1.0;
    o->dist_url = "env://"; o->dist_backend = NULL;
    o->remote_sync_protocol = "s3"; o->remote_sync_frequency = 300;
    o->lora_rank = 4; o->lora_alpha = 32; o->contrastive_weight = 1.0; o->classification_weight = 1.0;
    o->threads = 0;
    o->tokenizer = "bpe";
}

#define S(nm, ty, field, mv, hp) specs[n++] = (ArgSpec){nm, ty, &o->field, mv, hp}

int cm_train_opts_specs(CmTrainOpts *o, ArgSpec *specs) {
    int n = 0;
    /* data */
    S("--train-data", ARG_STR, train_data, "URLS", "training shards: brace patterns joined by '::' (required)");
    S("--val-data", ARG_STR, val_data, "URLS", "validation shards (brace patterns, '::'); none: no validation");
    S("--train-data-upsampling-factors", ARG_STR, train_data_upsampling_factors, "W1::W2", "per-source shard weights (needs --dataset-resampled)");
    S("--train-num-samples", ARG_I64, train_num_samples, "N", "samples per epoch (default: sizes.json next to the shards)");
    S("--val-num-samples", ARG_I64, val_num_samples, "N", "validation samples (informational; the val set is read to its end)");
    S("--dataset-type", ARG_STR, dataset_type, "TYPE", "webdataset | auto (default auto: .tar -> webdataset); csv/synthetic unsupported");
    S("--dataset-resampled", ARG_FLAG, dataset_resampled, NULL, "sample shards with replacement (ResampledShards2)");
    S("--csv-separator", ARG_STR, csv_separator, "SEP", "accepted for compatibility (csv datasets are not supported)");
    S("--csv-img-key", ARG_STR, csv_img_key, "KEY", "accepted for compatibility (csv)");
    S("--csv-caption-key", ARG_STR, csv_caption_key, "KEY", "accepted for compatibility (csv)");
    S("--imagenet-val", ARG_STR, imagenet_val, "PATH", "ignored with a warning (no zero-shot ImageNet eval here)");
    S("--imagenet-v2", ARG_STR, imagenet_v2, "PATH", "ignored with a warning (no zero-shot ImageNet eval here)");
    S("--cache-dir", ARG_STR, cache_dir, "DIR", "Hugging Face cache folder for --pretrained tags");
    /* run and logging */
    S("--logs", ARG_STR, logs, "DIR", "where run folders go (default ./logs/); 'none' disables logs and checkpoints");
    S("--log-local", ARG_FLAG, log_local, NULL, "accepted (single process: every log is local)");
    S("--name", ARG_STR, name, "NAME", "run folder name (default: date-model_M-lr_LR-b_BS-j_W-p_PREC)");
    S("--resume", ARG_STR, resume, "PATH|latest", "continue from a checkpoint (latest: newest in this run)");
    S("--save-frequency", ARG_INT, save_frequency, "N", "write epoch_N every N epochs and at the end (0: only at the end)");
    S("--save-most-recent", ARG_FLAG, save_most_recent, NULL, "also keep epoch_latest.safetensors");
    S("--delete-previous-checkpoint", ARG_FLAG, delete_previous_checkpoint, NULL, "remove epoch_{N-1} after writing epoch_N");
    S("--val-frequency", ARG_INT, val_frequency, "N", "validate every N epochs (default 1)");
    S("--zeroshot-frequency", ARG_INT, zeroshot_frequency, "N", "accepted; zero-shot ImageNet eval does not exist here");
    S("--log-every-n-steps", ARG_INT, log_every_n_steps, "N", "progress line every N optimizer steps (default 100)");
    S("--report-to", ARG_STR, report_to, "WHERE", "comma list: html writes <run>/report.html at the end (docs/report.md); wandb/tensorboard are not available (warning)");
    S("--wandb-notes", ARG_STR, wandb_notes, "TEXT", "accepted, unused");
    S("--wandb-project-name", ARG_STR, wandb_project_name, "NAME", "accepted, unused");
    S("--debug", ARG_FLAG, debug, NULL, "debug-level logging");
    S("--copy-codebase", ARG_FLAG, copy_codebase, NULL, "accepted, no effect");
    /* optimisation */
    S("--workers", ARG_INT, workers, "N", "decode threads (default 4); also enters epoch sizing as in OpenCLIP");
    S("--batch-size", ARG_INT, batch_size, "N", "micro-batch size (default 64)");
    S("--epochs", ARG_INT, epochs, "N", "epochs (default 32)");
    S("--epochs-cooldown", ARG_INT, epochs_cooldown, "N", "const-cooldown: epochs of cooldown at the end");
    S("--lr", ARG_FLOAT, lr, "LR", "base learning rate (default 5e-4)");
    S("--beta1", ARG_FLOAT, beta1, "B1", "AdamW beta1 (default 0.9)");
    S("--beta2", ARG_FLOAT, beta2, "B2", "AdamW beta2 (default 0.98 for ViT models, else 0.999)");
    S("--eps", ARG_FLOAT, eps, "EPS", "AdamW eps (default 1e-6 for ViT models, else 1e-8)");
    S("--wd", ARG_FLOAT, wd, "WD", "weight decay for 2-D weights (default 0.2)");
    S("--momentum", ARG_FLOAT, momentum, "M", "accepted (only used by timm optimizers; ignored)");
    S("--warmup", ARG_INT, warmup, "STEPS", "linear warmup in optimizer steps (default 10000)");
    S("--opt", ARG_STR, opt, "NAME", "optimizer: adamw only (default)");
    S("--use-bn-sync", ARG_FLAG, use_bn_sync, NULL, "accepted, no effect (no batch norm)");
    S("--skip-scheduler", ARG_FLAG, skip_scheduler, NULL, "keep the learning rate constant at --lr (no warmup)");
    S("--lr-scheduler", ARG_STR, lr_scheduler, "KIND", "cosine (default) | const | const-cooldown");
    S("--lr-cooldown-end", ARG_FLOAT, lr_cooldown_end, "LR", "const-cooldown: final lr (default 0)");
    S("--lr-cooldown-power", ARG_FLOAT, lr_cooldown_power, "P", "const-cooldown: polynomial power (default 1, linear)");
    S("--accum-freq", ARG_INT, accum_freq, "K", "optimizer step every K micro-batches (feature cache, exact big-batch gradient)");
    S("--grad-clip-norm", ARG_FLOAT, grad_clip_norm, "NORM", "clip the global gradient norm (default off)");
    S("--grad-checkpointing", ARG_FLAG, grad_checkpointing, NULL, "keep block inputs only; recompute blocks in backward");
    S("--precision", ARG_STR, precision, "P", "fp32 | amp | amp_bf16 (default amp: bf16 matmuls, fp32 master weights)");
    S("--seed", ARG_I64, seed, "N", "random seed (default 0)");
    /* model */
    S("--model", ARG_STR, model, "NAME|JSON", "model config name (ViT-B-32 ...) or an OpenCLIP JSON config file");
    S("--pretrained", ARG_STR, pretrained, "TAG|FILE", "pretrained tag (laion2b_s34b_b79k) or weights file");
    S("--pretrained-image", ARG_FLAG, pretrained_image, NULL, "accepted, no effect (timm towers only)");
    S("--lock-image", ARG_FLAG, lock_image, NULL, "freeze the vision tower");
    S("--lock-image-unlocked-groups", ARG_INT, lock_image_unlocked_groups, "N", "must be 0 (partial unlocking unsupported)");
    S("--lock-image-freeze-bn-stats", ARG_FLAG, lock_image_freeze_bn_stats, NULL, "accepted, no effect (no batch norm)");
    S("--lock-text", ARG_FLAG, lock_text, NULL, "freeze the text tower (embeddings, blocks, ln_final, text_projection)");
    S("--lock-text-unlocked-layers", ARG_INT, lock_text_unlocked_layers, "N", "must be 0 (partial unlocking unsupported)");
    S("--lock-text-freeze-layer-norm", ARG_FLAG, lock_text_freeze_layer_norm, NULL, "accepted, no effect with a fully locked tower");
    S("--image-mean", ARG_LIST, image_mean, "M...", "must be absent (OpenAI mean is fixed by the model config)");
    S("--image-std", ARG_LIST, image_std, "S...", "must be absent (OpenAI std is fixed by the model config)");
    S("--image-interpolation", ARG_STR, image_interpolation, "NAME", "must be absent or bicubic");
    S("--image-resize-mode", ARG_STR, image_resize_mode, "MODE", "must be absent or shortest");
    S("--aug-cfg", ARG_LIST, aug_cfg, "K=V...", "must be absent (default augmentation: RandomResizedCrop 0.9-1.0)");
    S("--force-image-size", ARG_LIST, force_image_size, "N", "must be absent");
    S("--force-quick-gelu", ARG_FLAG, force_quick_gelu, NULL, "use QuickGELU in the towers");
    S("--force-patch-dropout", ARG_FLOAT, force_patch_dropout, "P", "must be absent or 0");
    S("--force-custom-text", ARG_FLAG, force_custom_text, NULL, "accepted, no effect");
    S("--torchscript", ARG_FLAG, torchscript, NULL, "accepted, no effect");
    S("--torchcompile", ARG_FLAG, torchcompile, NULL, "accepted, no effect");
    S("--trace", ARG_FLAG, trace, NULL, "accepted, no effect");
    S("--use-bnb-linear", ARG_STR, use_bnb_linear, "NAME", "unsupported (error)");
    S("--siglip", ARG_FLAG, siglip, NULL, "unsupported (error)");
    S("--loss-dist-impl", ARG_STR, loss_dist_impl, "NAME", "accepted, no effect (single process)");
    S("--distill-model", ARG_STR, distill_model, "NAME", "unsupported (error)");
    S("--distill-pretrained", ARG_STR, distill_pretrained, "TAG", "unsupported (error)");
    S("--coca-caption-loss-weight", ARG_FLOAT, coca_caption_loss_weight, "W", "accepted, no effect (not a CoCa model)");
    S("--coca-contrastive-loss-weight", ARG_FLOAT, coca_contrastive_loss_weight, "W", "accepted, no effect");
    S("--device", ARG_STR, device, "DEV", "cpu (cuda falls back to cpu with a warning, as OpenCLIP without a GPU)");
    /* distributed: one process here; these change nothing at world size 1 */
    S("--dist-url", ARG_STR, dist_url, "URL", "accepted, no effect (single process)");
    S("--dist-backend", ARG_STR, dist_backend, "NAME", "accepted, no effect (single process)");
    S("--local-loss", ARG_FLAG, local_loss, NULL, "accepted: at world size 1 local and global loss are the same");
    S("--gather-with-grad", ARG_FLAG, gather_with_grad, NULL, "accepted: at world size 1 there is nothing to gather");
    S("--horovod", ARG_FLAG, horovod, NULL, "accepted, no effect (single process)");
    S("--ddp-static-graph", ARG_FLAG, ddp_static_graph, NULL, "accepted, no effect (single process)");
    S("--no-set-device-rank", ARG_FLAG, no_set_device_rank, NULL, "accepted, no effect");
    S("--remote-sync", ARG_STR, remote_sync, "URL", "unsupported (error)");
    S("--remote-sync-frequency", ARG_INT, remote_sync_frequency, "S", "accepted, no effect");
    S("--remote-sync-protocol", ARG_STR, remote_sync_protocol, "P", "accepted, no effect");
    /* seed project and clipmod */
    S("--enable-lora", ARG_FLAG, enable_lora, NULL, "LoRA on attn.out_proj of every block; train LoRA + head only");
    S("--lora-rank", ARG_INT, lora_rank, "R", "LoRA rank (default 4)");
    S("--lora-alpha", ARG_FLOAT, lora_alpha, "A", "LoRA alpha, scaling alpha/rank (default 32)");
    S("--contrastive-weight", ARG_FLOAT, contrastive_weight, "W", "weight of the masked contrastive loss (default 1)");
    S("--classification-weight", ARG_FLOAT, classification_weight, "W", "weight of the classification loss (default 1)");
    S("--threads", ARG_INT, threads, "N", "compute threads (default: CLIPMOD_THREADS or all cores)");
    S("--offline", ARG_FLAG, offline, NULL, "never download --pretrained weights");
    S("--vocab", ARG_STR, vocab, "PATH", "BPE vocabulary (default: next to the weights, $CLIPMOD_VOCAB, <prefix>/share/clipmod/)");
    S("--tokenizer", ARG_STR, tokenizer, "KIND", "bpe (OpenCLIP's, default) | bytes (byte-level, vocab 258: the demo's)");
    CM_ASSERT(n <= CM_TRAIN_MAX_SPECS);
    return n;
}
#undef S

static bool has_vit(const char *model) {
    for (const char *p = model; *p; p++)
        if (tolower((unsigned char)p[0]) == 'v' && tolower((unsigned char)p[1]) == 'i' && tolower((unsigned char)p[2]) == 't')
            return true;
    return false;
}

void cm_py_float(double x, char *buf, size_t n) {
    if (isnan(x)) { snprintf(buf, n, "nan"); return; }
    if (isinf(x)) { snprintf(buf, n, x < 0 ? "-inf" : "inf"); return; }
    if (x == 0) { snprintf(buf, n, signbit(x) ? "-0.0" : "0.0"); return; }
    char tmp[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);
        if (strtod(tmp, NULL) == x) break;
    }
    /* tmp = [-]d[.ddd]e[+-]XX */
    const char *s = tmp;
    bool neg = *s == '-';
    if (neg) s++;
    char digits[32];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (isdigit((unsigned char)*s)) digits[nd++] = *s;
    int e10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = e10 + 1;
    char out[96];
    int k = 0;
    if (neg) out[k++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[k++] = '0'; out[k++] = '.';
            for (int i = 0; i < -decpt; i++) out[k++] = '0';
            for (int i = 0; i < nd; i++) out[k++] = digits[i];
        } else {
            for (int i = 0; i < decpt; i++) out[k++] = i < nd ? digits[i] : '0';
            out[k++] = '.';
            if (nd > decpt) for (int i = decpt; i < nd; i++) out[k++] = digits[i];
            else out[k++] = '0';
        }
        out[k] = 0;
    } else {
        out[k++] = digits[0];
        if (nd > 1) { out[k++] = '.'; for (int i = 1; i < nd; i++) out[k++] = digits[i]; }
        k += snprintf(out + k, sizeof out - k, "e%c%02d", e10 < 0 ? '-' : '+', abs(e10));
    }
    snprintf(buf, n, "%s", out);
}

static cm_status bad(const char *flag, const char *why) { return cm_error(CM_ERR_ARG, "%s: %s", flag, why); }

cm_status cm_train_opts_finalize(CmTrainOpts *o) {
    bool vit = has_vit(o->model ? o->model : "");
    if (isnan(o->lr)) o->lr = 5e-4;
    if (isnan(o->beta1)) o->beta1 = 0.9;
    if (isnan(o->beta2)) o->beta2 = vit ? 0.98 : 0.999;
    if (isnan(o->eps)) o->eps = vit ? 1e-6 : 1e-8;

    if (!o->train_data || !*o->train_data) return bad("--train-data", "is required");
    if (!o->model || !*o->model) return bad("--model", "must name a config or a JSON file");
    if (o->batch_size < 1) return bad("--batch-size", "must be >= 1");
    if (o->epochs < 1) return bad("--epochs", "must be >= 1");
    if (o->accum_freq < 1) return bad("--accum-freq", "must be >= 1");
    if (o->workers < 0) return bad("--workers", "must be >= 0");
    if (o->warmup < 0) return bad("--warmup", "must be >= 0");
    if (o->save_frequency < 0) return bad("--save-frequency", "must be >= 0");
    if (o->val_frequency < 0) return bad("--val-frequency", "must be >= 0");
    if (o->log_every_n_steps < 1) return bad("--log-every-n-steps", "must be >= 1");
    if (o->train_num_samples != -1 && o->train_num_samples < 1) return bad("--train-num-samples", "must be >= 1");
    if (!(o->lr >= 0) || !isfinite(o->lr)) return bad("--lr", "must be a finite number >= 0");
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return bad("--beta1", "must be in [0, 1)");
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return bad("--beta2", "must be in [0, 1)");
    if (!(o->eps >= 0) || !isfinite(o->eps)) return bad("--eps", "must be a finite number >= 0");
    if (!(o->wd >= 0) || !isfinite(o->wd)) return bad("--wd", "must be a finite number >= 0");
    if (!isnan(o->grad_clip_norm) && !(o->grad_clip_norm > 0)) return bad("--grad-clip-norm", "must be > 0");
    if (!isfinite(o->contrastive_weight) || !isfinite(o->classification_weight))
        return bad("--contrastive-weight/--classification-weight", "must be finite");
    if (o->lora_rank < 1 || o->lora_rank > 4096) return bad("--lora-rank", "must be in 1..4096");
    if (!(o->lora_alpha > 0) || !isfinite(o->lora_alpha)) return bad("--lora-alpha", "must be > 0");
    if (strcmp(o->tokenizer, "bpe") && strcmp(o->tokenizer, "bytes")) return bad("--tokenizer", "must be bpe or bytes");
    if (strcmp(o->opt, "adamw")) return bad("--opt", "only adamw is available");
    if (strcmp(o->lr_scheduler, "cosine") && strcmp(o->lr_scheduler, "const") && strcmp(o->lr_scheduler, "const-cooldown"))
        return bad("--lr-scheduler", "must be cosine, const or const-cooldown");
    if (!strcmp(o->lr_scheduler, "const-cooldown") && o->epochs_cooldown < 0)
        return bad("--epochs-cooldown", "is required with --lr-scheduler const-cooldown");
    if (o->epochs_cooldown > o->epochs) return bad("--epochs-cooldown", "is larger than --epochs");
    if (!(o->lr_cooldown_power > 0) || !isfinite(o->lr_cooldown_power)) return bad("--lr-cooldown-power", "must be > 0");
    if (!isfinite(o->lr_cooldown_end) || o->lr_cooldown_end < 0) return bad("--lr-cooldown-end", "must be >= 0");

    const char *p = o->precision;
    if (!strcmp(p, "fp32")) o->prec = CM_PREC_FP32;
    else if (!strcmp(p, "amp") || !strcmp(p, "amp_bf16") || !strcmp(p, "amp_bfloat16")) o->prec = CM_PREC_AMP_BF16;
    else if (!strcmp(p, "bf16") || !strcmp(p, "pure_bf16") || !strcmp(p, "fp16") || !strcmp(p, "pure_fp16"))
        return cm_error(CM_ERR_UNSUPPORTED, "--precision %s: pure low-precision weights are not supported on CPU; use fp32 or amp", p);
    else return bad("--precision", "must be fp32, amp, amp_bf16 or amp_bfloat16");

    if (o->train_data_upsampling_factors && !o->dataset_resampled)
        return bad("--train-data-upsampling-factors", "requires --dataset-resampled (as in OpenCLIP)");
    if (strcmp(o->dataset_type, "auto") && strcmp(o->dataset_type, "webdataset"))
        return cm_error(CM_ERR_UNSUPPORTED, "--dataset-type %s: only webdataset shards are supported", o->dataset_type);
    if (o->siglip) return cm_error(CM_ERR_UNSUPPORTED, "--siglip: the SigLIP loss is not implemented");
    if (o->distill_model) return cm_error(CM_ERR_UNSUPPORTED, "--distill-model: distillation is not implemented");
    if (o->use_bnb_linear) return cm_error(CM_ERR_UNSUPPORTED, "--use-bnb-linear: bitsandbytes layers are not available");
    if (o->remote_sync) return cm_error(CM_ERR_UNSUPPORTED, "--remote-sync: not available");
    if (o->lock_image_unlocked_groups) return cm_error(CM_ERR_UNSUPPORTED, "--lock-image-unlocked-groups: partial unlocking is not implemented");
    if (o->lock_text_unlocked_layers) return cm_error(CM_ERR_UNSUPPORTED, "--lock-text-unlocked-layers: partial unlocking is not implemented");
    if (o->image_mean.n || o->image_std.n) return cm_error(CM_ERR_UNSUPPORTED, "--image-mean/--image-std: custom normalisation is not implemented");
    if (o->aug_cfg.n) return cm_error(CM_ERR_UNSUPPORTED, "--aug-cfg: custom augmentation is not implemented");
    if (o->force_image_size.n) return cm_error(CM_ERR_UNSUPPORTED, "--force-image-size: not implemented");
    if (!isnan(o->force_patch_dropout) && o->force_patch_dropout != 0)
        return cm_error(CM_ERR_UNSUPPORTED, "--force-patch-dropout: patch dropout is not implemented");
    if (o->image_interpolation && strcmp(o->image_interpolation, "bicubic"))
        return cm_error(CM_ERR_UNSUPPORTED, "--image-interpolation %s: only bicubic", o->image_interpolation);
    if (o->image_resize_mode && strcmp(o->image_resize_mode, "shortest"))
        return cm_error(CM_ERR_UNSUPPORTED, "--image-resize-mode %s: only shortest", o->image_resize_mode);

    /* accepted flags that change nothing here: say so once */
    if (o->report_to && *o->report_to) {
        /* OpenCLIP's comma list ("wandb,tensorboard"); html is ours, the rest is not available */
        char rest[512] = "";
        const char *p = o->report_to;
        while (*p) {
            size_t n = strcspn(p, ",");
            while (n && (*p == ' ')) { p++; n--; }
            size_t m = n;
            while (m && p[m - 1] == ' ') m--;
            if (m && !(m == 4 && !strncasecmp(p, "html", 4)))
                snprintf(rest + strlen(rest), sizeof rest - strlen(rest), "%s%.*s", *rest ? "," : "", (int)m, p);
            p += n;
            if (*p == ',') p++;
        }
        if (*rest)
            cm_warn("--report-to %s: %s not available in clipmod; metrics go to out.log, results.jsonl and steps.jsonl "
                    "(--report-to html writes report.html)", o->report_to, rest);
        if (cm_train_opts_report_html(o) && o->logs && (!*o->logs || !strcasecmp(o->logs, "none")))
            cm_warn("--report-to html: no run folder (--logs none), so no report.html");
    }
    if (o->imagenet_val || o->imagenet_v2)
        cm_warn("--imagenet-val/--imagenet-v2: zero-shot ImageNet evaluation is not implemented; ignored");
    if (strcmp(o->device, "cpu")) {
        cm_warn("--device %s: not available, using cpu (as OpenCLIP falls back without a GPU)", o->device);
        o->device = "cpu";
    }
    if (o->enable_lora && o->lock_text)
        cm_info("--lock-text with --enable-lora: the text tower is frozen anyway (its LoRA adapters are frozen too)");

    if (!o->name || !*o->name) {
        char date[64], lr[40];
        time_t t = time(NULL);
        struct tm tmv;
        localtime_r(&t, &tmv);
        strftime(date, sizeof date, "%Y_%m_%d-%H_%M_%S", &tmv);
        cm_py_float(o->lr, lr, sizeof lr);
        char model[128];
        snprintf(model, sizeof model, "%s", o->model);
        for (char *c = model; *c; c++) if (*c == '/') *c = '-';
        snprintf(o->name_buf, sizeof o->name_buf, "%s-model_%s-lr_%s-b_%d-j_%d-p_%s", date, model, lr,
                 o->batch_size, o->workers, o->precision);
        o->name = o->name_buf;
    }
    if (strchr(o->name, '/')) return bad("--name", "must not contain '/'");
    return CM_OK;
}

/* ---- params.txt --------------------------------------------------------------------------- */

typedef struct { char key[64]; char val[512]; } KV;

static void py_str_list(const ArgList *l, char *buf, size_t n, bool none_if_empty) {
    if (!l->n) { snprintf(buf, n, none_if_empty ? "None" : "[]"); return; }
    size_t k = 0;
    k += snprintf(buf + k, n - k, "[");
    for (int i = 0; i < l->n && k < n; i++) k += snprintf(buf + k, n - k, "%s'%s'", i ? ", " : "", l->v[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static int kv_cmp(const void *a, const void *b) { return strcmp(((const KV *)a)->key, ((const KV *)b)->key); }

/* Collect (python attribute name, str(value)) for every option plus OpenCLIP's runtime fields. */
static int collect(const CmTrainOpts *o0, KV *kv, int max) {
    CmTrainOpts copy = *o0;
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    int ns = cm_train_opts_specs(&copy, specs);
    int n = 0;
    for (int i = 0; i < ns && n < max; i++) {
        const ArgSpec *s = &specs[i];
        KV *e = &kv[n++];
        snprintf(e->key, sizeof e->key, "%s", s->name + 2);
        for (char *c = e->key; *c; c++) if (*c == '-') *c = '_';
        switch (s->type) {
        case ARG_FLAG: snprintf(e->val, sizeof e->val, "%s", *(bool *)s->dst ? "True" : "False"); break;
        case ARG_INT: {
            int v = *(int *)s->dst;
            if (v == -1 && !strcmp(e->key, "epochs_cooldown")) snprintf(e->val, sizeof e->val, "None");
            else snprintf(e->val, sizeof e->val, "%d", v);
            break;
        }
        case ARG_I64: {
            long long v = *(long long *)s->dst;
            if (v == -1 && strcmp(e->key, "seed")) snprintf(e->val, sizeof e->val, "None");
            else snprintf(e->val, sizeof e->val, "%lld", v);
            break;
        }
        case ARG_FLOAT: {
            double v = *(double *)s->dst;
            if (isnan(v)) snprintf(e->val, sizeof e->val, "None");
            else cm_py_float(v, e->val, sizeof e->val);
            break;
        }
        case ARG_STR: {
            const char *v = *(const char **)s->dst;
            snprintf(e->val, sizeof e->val, "%s", v ? v : "None");
            break;
        }
        case ARG_LIST:
            py_str_list((const ArgList *)s->dst, e->val, sizeof e->val, strcmp(e->key, "aug_cfg") != 0);
            if (!strcmp(e->key, "aug_cfg") && !((const ArgList *)s->dst)->n) snprintf(e->val, sizeof e->val, "{}");
            break;
        }
    }
    /* the attributes OpenCLIP's main() adds before writing params.txt */
    bool save_logs = o0->logs && strcasecmp(o0->logs, "none");
    char path[512];
    struct { const char *k; const char *v; } extra[] = {
        {"distributed", "False"}, {"world_size", "1"}, {"rank", "0"}, {"local_rank", "0"},
        {"log_level", o0->debug ? "10" : "20"}, {"wandb", "False"}, {"tensorboard", "False"},
        {"tensorboard_path", ""}, {"save_logs", save_logs ? "True" : "False"}, {"distill", "False"},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && n < max; i++) {
        snprintf(kv[n].key, sizeof kv[n].key, "%s", extra[i].k);
        snprintf(kv[n].val, sizeof kv[n].val, "%s", extra[i].v);
        n++;
    }
    if (n + 2 <= max) {
        snprintf(path, sizeof path, "%s/%s/out.log", o0->logs, o0->name ? o0->name : "");
        snprintf(kv[n].key, sizeof kv[n].key, "log_path"); snprintf(kv[n].val, sizeof kv[n].val, "%s", save_logs ? path : "None"); n++;
        snprintf(path, sizeof path, "%s/%s/checkpoints", o0->logs, o0->name ? o0->name : "");
        snprintf(kv[n].key, sizeof kv[n].key, "checkpoint_path"); snprintf(kv[n].val, sizeof kv[n].val, "%s", save_logs ? path : ""); n++;
    }
    qsort(kv, n, sizeof *kv, kv_cmp);
    return n;
}

cm_status cm_train_opts_write_params(const CmTrainOpts *o, const char *path) {
    KV *kv = cm_calloc(CM_TRAIN_MAX_SPECS + 16, sizeof *kv, "params.txt");
    if (!kv) return CM_ERR_OOM;
    int n = collect(o, kv, CM_TRAIN_MAX_SPECS + 16);
    size_t cap = (size_t)n * (sizeof kv->key + sizeof kv->val + 4) + 1, len = 0;
    char *buf = cm_malloc(cap, "params.txt");
    if (!buf) { cm_free(kv); return CM_ERR_OOM; }
    for (int i = 0; i < n; i++) len += snprintf(buf + len, cap - len, "%s: %s\n", kv[i].key, kv[i].val);
    cm_status st = cm_write_file_atomic(path, buf, len);
    cm_free(buf); cm_free(kv);
    return st;
}

static void json_str(char *dst, size_t n, const char *s) {
    size_t k = 0;
    if (k < n) dst[k++] = '"';
    for (; *s && k + 7 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { dst[k++] = '\\'; dst[k++] = c; }
        else if (c < 0x20) k += snprintf(dst + k, n - k, "\\u%04x", c);
        else dst[k++] = c;
    }
    if (k + 1 < n) dst[k++] = '"';
    dst[k < n ? k : n - 1] = 0;
}

char *cm_train_opts_json(const CmTrainOpts *o) {
    KV *kv = cm_calloc(CM_TRAIN_MAX_SPECS + 16, sizeof *kv, "options JSON");
    if (!kv) return NULL;
    int n = collect(o, kv, CM_TRAIN_MAX_SPECS + 16);
    size_t cap = (size_t)n * (sizeof kv->key + 2 * sizeof kv->val + 8) + 4, len = 0;
    char *buf = cm_malloc(cap, "options JSON");
    if (!buf) { cm_free(kv); return NULL; }
    len += snprintf(buf + len, cap - len, "{");
    for (int i = 0; i < n; i++) {
        char v[2 * sizeof kv->val + 8];
        json_str(v, sizeof v, kv[i].val);
        len += snprintf(buf + len, cap - len, "%s\"%s\":%s", i ? "," : "", kv[i].key, v);
    }
    snprintf(buf + len, cap - len, "}");
    cm_free(kv);
    return buf;
}

bool cm_train_opts_report_html(const CmTrainOpts *o) {
    const char *p = o->report_to;
    if (!p) return false;
    while (*p) {
        size_t n = strcspn(p, ",");
        size_t a = 0, b = n;
        while (a < b && p[a] == ' ') a++;
        while (b > a && p[b - 1] == ' ') b--;
        if (b - a == 4 && !strncasecmp(p + a, "html", 4)) return true;
        p += n;
        if (*p == ',') p++;
    }
    return false;
}
