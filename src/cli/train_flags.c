/*
 * train_flags.c — `clipmod train` flags: the table (OpenCLIP names, defaults and the rules every
 * value obeys), model defaults, cross-flag checks, run name, params.txt, JSON dump, and the
 * mapping onto the library's CmTrainConfig. See train_flags.h and docs/flags.md.
 */
#include "cli/train_flags.h"
#include "dist/dist.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

void cm_train_opts_defaults(CmTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->dataset_type = "auto";
    o->csv_separator = "\t"; o->csv_img_key = "filepath"; o->csv_caption_key = "title";
    o->logs = "./logs/";
    o->report_to = ""; o->wandb_notes = ""; o->wandb_project_name = "open-clip";
    o->save_frequency = 1; o->val_frequency = 1; o->zeroshot_frequency = 2; o->log_every_n_steps = 100;
    o->workers = 4; o->batch_size = 64; o->epochs = 32; o->warmup = 10000;
    o->accum_freq = 1;
    o->wd = 0.2;
    o->lr_cooldown_end = 0.0; o->lr_cooldown_power = 1.0;
    o->opt = "adamw"; o->lr_scheduler = "cosine"; o->precision = "amp";
    o->seed = 0;
    /* OpenCLIP's default is RN50, which clipmod does not implement; ViT-B-32 is the project's model */
    o->model = "ViT-B-32"; o->pretrained = "";
    o->device = "cpu";
    o->loss_dist_impl = NULL;
    o->coca_caption_loss_weight = 2.0; o->coca_contrastive_loss_weight = 1.0;
    o->dist_url = "env://"; o->dist_backend = NULL;
    o->remote_sync_protocol = "s3"; o->remote_sync_frequency = 300;
    o->lora_rank = 4; o->lora_alpha = 32; o->contrastive_weight = 1.0; o->classification_weight = 1.0;
    o->threads = 0;
    o->tokenizer = "bpe";
    o->dist_grad = "exact";
}

/* S(name, type, field, metavar, help, rules...): one flag and its rules (args.h) */
#define S(nm, ty, field, mv, hp, ...) specs[n++] = (ArgSpec)ARG(nm, ty, &o->field, mv, hp, ##__VA_ARGS__)
#define GIVEN(f) .given = &o->f, .optional = true
#define MPI_NOEFFECT "clipmod is data-parallel over MPI when launched by mpirun/srun (docs/distributed.md); this flag is not needed there"
#define INTMAX 2147483647.0

int cm_train_opts_specs(CmTrainOpts *o, ArgSpec *specs) {
    int n = 0;
    /* data */
    S("--train-data", ARG_STR, train_data, "URLS", "training shards: brace patterns joined by '::' (required)");
    S("--val-data", ARG_STR, val_data, "URLS", "validation shards (brace patterns, '::'); none: no validation");
    S("--train-data-upsampling-factors", ARG_STR, train_data_upsampling_factors, "W1::W2", "per-source shard weights (needs --dataset-resampled)");
    S("--train-num-samples", ARG_I64, train_num_samples, "N", "samples per epoch (default: sizes.json next to the shards)",
      ARG_RANGE(1, 1e15), GIVEN(has_train_num_samples));
    S("--val-num-samples", ARG_I64, val_num_samples, "N", "validation samples", ARG_RANGE(1, 1e15), GIVEN(has_val_num_samples),
      .noeffect = "the validation set is always read to its end (OpenCLIP uses it only for progress display)");
    S("--dataset-type", ARG_STR, dataset_type, "TYPE", "webdataset | auto (default auto: .tar -> webdataset)",
      .choices = "auto|webdataset");
    S("--dataset-resampled", ARG_FLAG, dataset_resampled, NULL, "sample shards with replacement (ResampledShards2)");
    S("--csv-separator", ARG_STR, csv_separator, "SEP", "csv datasets", .noeffect = "csv datasets are not supported (webdataset only)");
    S("--csv-img-key", ARG_STR, csv_img_key, "KEY", "csv datasets", .noeffect = "csv datasets are not supported (webdataset only)");
    S("--csv-caption-key", ARG_STR, csv_caption_key, "KEY", "csv datasets", .noeffect = "csv datasets are not supported (webdataset only)");
    S("--imagenet-val", ARG_STR, imagenet_val, "PATH", "zero-shot ImageNet eval", .noeffect = "there is no zero-shot ImageNet evaluation in clipmod");
    S("--imagenet-v2", ARG_STR, imagenet_v2, "PATH", "zero-shot ImageNet-v2 eval", .noeffect = "there is no zero-shot ImageNet evaluation in clipmod");
    S("--cache-dir", ARG_STR, cache_dir, "DIR", "Hugging Face cache folder for --pretrained tags");
    /* run and logging */
    S("--logs", ARG_STR, logs, "DIR", "where run folders go (default ./logs/); 'none' disables logs and checkpoints");
    S("--log-local", ARG_FLAG, log_local, NULL, "log on every rank", .noeffect = "one process logs everything; under mpirun ranks other than 0 log warnings and errors only");
    S("--name", ARG_STR, name, "NAME", "run folder name (default: date-model_M-lr_LR-b_BS-j_W-p_PREC)");
    S("--resume", ARG_STR, resume, "PATH|latest", "continue from a checkpoint (latest: newest in this run)");
    S("--save-frequency", ARG_INT, save_frequency, "N", "write epoch_N every N epochs and at the end (0: only at the end)");
    S("--save-most-recent", ARG_FLAG, save_most_recent, NULL, "also keep epoch_latest.safetensors");
    S("--delete-previous-checkpoint", ARG_FLAG, delete_previous_checkpoint, NULL, "remove epoch_{N-1} after writing epoch_N");
    S("--val-frequency", ARG_INT, val_frequency, "N", "validate every N epochs (default 1; 0: never)");
    S("--zeroshot-frequency", ARG_INT, zeroshot_frequency, "N", "zero-shot eval every N epochs",
      .noeffect = "there is no zero-shot ImageNet evaluation in clipmod");
    S("--log-every-n-steps", ARG_INT, log_every_n_steps, "N", "progress line every N optimizer steps (default 100)", ARG_RANGE(1, INTMAX));
    S("--report-to", ARG_STR, report_to, "WHERE", "comma list: html writes <run>/report.html at the end (docs/report.md); wandb/tensorboard: no effect here (one warning)");
    S("--wandb-notes", ARG_STR, wandb_notes, "TEXT", "wandb notes", .noeffect = "wandb is not available");
    S("--wandb-project-name", ARG_STR, wandb_project_name, "NAME", "wandb project", .noeffect = "wandb is not available");
    S("--debug", ARG_FLAG, debug, NULL, "debug-level logging (as CLIPMOD_LOG=debug)");
    S("--copy-codebase", ARG_FLAG, copy_codebase, NULL, "copy the sources into the run folder",
      .noeffect = "clipmod is one compiled program; there is no Python code base to copy");
    /* optimisation */
    S("--workers", ARG_INT, workers, "N", "decode threads (default 4); also enters epoch sizing as in OpenCLIP (at most the batches of an epoch)",
      ARG_RANGE(0, 1024));
    S("--batch-size", ARG_INT, batch_size, "N", "micro-batch size (default 64)", ARG_RANGE(1, 1048576));
    S("--epochs", ARG_INT, epochs, "N", "epochs (default 32)", ARG_RANGE(1, 1000000));
    S("--epochs-cooldown", ARG_INT, epochs_cooldown, "N", "const-cooldown: epochs of cooldown at the end", ARG_RANGE(0, 1000000),
      GIVEN(has_epochs_cooldown));
    S("--lr", ARG_FLOAT, lr, "LR", "base learning rate (default 5e-4)", .given = &o->has_lr);
    S("--beta1", ARG_FLOAT, beta1, "B1", "AdamW beta1 in [0, 1) (default 0.9)", ARG_RANGE(0, 1), .given = &o->has_beta1);
    S("--beta2", ARG_FLOAT, beta2, "B2", "AdamW beta2 in [0, 1) (default 0.98 for ViT models, else 0.999)", ARG_RANGE(0, 1), .given = &o->has_beta2);
    S("--eps", ARG_FLOAT, eps, "EPS", "AdamW eps (default 1e-6 for ViT models, else 1e-8)", .given = &o->has_eps);
    S("--wd", ARG_FLOAT, wd, "WD", "weight decay for 2-D weights (default 0.2)");
    S("--momentum", ARG_FLOAT, momentum, "M", "momentum of timm optimizers", GIVEN(has_momentum),
      .noeffect = "only timm optimizers use it; clipmod's optimizer is AdamW");
    S("--warmup", ARG_INT, warmup, "STEPS", "linear warmup in optimizer steps (default 10000)");
    S("--opt", ARG_STR, opt, "NAME", "optimizer: adamw only (default)", .choices = "adamw");
    S("--use-bn-sync", ARG_FLAG, use_bn_sync, NULL, "synchronised batch norm", .noeffect = "the ViT towers have no batch norm");
    S("--skip-scheduler", ARG_FLAG, skip_scheduler, NULL, "keep the learning rate constant at --lr (no warmup)");
    S("--lr-scheduler", ARG_STR, lr_scheduler, "KIND", "cosine (default) | const | const-cooldown", .choices = "cosine|const|const-cooldown");
    S("--lr-cooldown-end", ARG_FLOAT, lr_cooldown_end, "LR", "const-cooldown: final lr (default 0)");
    S("--lr-cooldown-power", ARG_FLOAT, lr_cooldown_power, "P", "const-cooldown: polynomial power > 0 (default 1, linear)");
    S("--accum-freq", ARG_INT, accum_freq, "K", "optimizer step every K micro-batches (feature cache, exact big-batch gradient)", ARG_RANGE(1, 65536));
    S("--grad-clip-norm", ARG_FLOAT, grad_clip_norm, "NORM", "clip the global gradient norm, > 0 (default off)", GIVEN(has_grad_clip_norm));
    S("--grad-checkpointing", ARG_FLAG, grad_checkpointing, NULL, "keep block inputs only; recompute blocks in backward");
    S("--precision", ARG_STR, precision, "P", "fp32 | amp | amp_bf16 | amp_bfloat16 (default amp: bf16 matmuls, fp32 master weights); pure bf16/fp16 refused",
      .choices = "amp|amp_bf16|amp_bfloat16|bf16|fp16|pure_bf16|pure_fp16|fp32");
    S("--seed", ARG_I64, seed, "N", "random seed (default 0)");
    /* model */
    S("--model", ARG_STR, model, "NAME|JSON", "model config name (ViT-B-32 ...) or an OpenCLIP JSON config file",
      .check = args_check_model_name);
    S("--pretrained", ARG_STR, pretrained, "TAG|FILE", "pretrained tag (laion2b_s34b_b79k) or weights file");
    S("--pretrained-image", ARG_FLAG, pretrained_image, NULL, "ImageNet weights for timm towers", .noeffect = "only timm image towers use it");
    S("--lock-image", ARG_FLAG, lock_image, NULL, "freeze the vision tower");
    S("--lock-image-unlocked-groups", ARG_INT, lock_image_unlocked_groups, "N", "must be 0 (partial unlocking is not implemented)");
    S("--lock-image-freeze-bn-stats", ARG_FLAG, lock_image_freeze_bn_stats, NULL, "freeze batch-norm statistics", .noeffect = "the ViT towers have no batch norm");
    S("--lock-text", ARG_FLAG, lock_text, NULL, "freeze the text tower (embeddings, blocks, ln_final, text_projection)");
    S("--lock-text-unlocked-layers", ARG_INT, lock_text_unlocked_layers, "N", "must be 0 (partial unlocking is not implemented)");
    S("--lock-text-freeze-layer-norm", ARG_FLAG, lock_text_freeze_layer_norm, NULL, "freeze LayerNorms of unlocked layers",
      .noeffect = "no layer is unlocked (partial unlocking is refused), so the locked tower's LayerNorms are frozen anyway");
    S("--image-mean", ARG_LIST, image_mean, "M...", "image normalisation mean", .refuse = "custom normalisation is not implemented (the model's OpenAI mean is used)");
    S("--image-std", ARG_LIST, image_std, "S...", "image normalisation std", .refuse = "custom normalisation is not implemented (the model's OpenAI std is used)");
    S("--image-interpolation", ARG_STR, image_interpolation, "NAME", "bicubic only", .choices = "bicubic");
    S("--image-resize-mode", ARG_STR, image_resize_mode, "MODE", "shortest only", .choices = "shortest");
    S("--aug-cfg", ARG_LIST, aug_cfg, "K=V...", "augmentation settings", .refuse = "custom augmentation is not implemented (default: RandomResizedCrop 0.9-1.0)");
    S("--force-image-size", ARG_LIST, force_image_size, "N", "override the image size", .refuse = "not implemented (use a JSON --model config)");
    S("--force-quick-gelu", ARG_FLAG, force_quick_gelu, NULL, "use QuickGELU in the towers");
    S("--force-patch-dropout", ARG_FLOAT, force_patch_dropout, "P", "must be 0 (patch dropout is not implemented)",
      GIVEN(has_force_patch_dropout));
    S("--force-custom-text", ARG_FLAG, force_custom_text, NULL, "CustomTextCLIP layout",
      .noeffect = "the layout differs from CLIP's only in state-dict names; clipmod reads and writes CLIP's names");
    S("--torchscript", ARG_FLAG, torchscript, NULL, "TorchScript the model", .noeffect = "clipmod is compiled C; there is no TorchScript");
    S("--torchcompile", ARG_FLAG, torchcompile, NULL, "torch.compile the model", .noeffect = "clipmod is compiled C; there is no torch.compile");
    S("--trace", ARG_FLAG, trace, NULL, "trace the model (inference only)", .noeffect = "clipmod is compiled C; there is no TorchScript tracing");
    S("--use-bnb-linear", ARG_STR, use_bnb_linear, "NAME", "bitsandbytes linear layers", .refuse = "bitsandbytes layers are not available");
    S("--siglip", ARG_FLAG, siglip, NULL, "SigLIP loss", .refuse = "the SigLIP loss is not implemented");
    S("--loss-dist-impl", ARG_STR, loss_dist_impl, "NAME", "distributed SigLIP loss implementation", .noeffect = MPI_NOEFFECT);
    S("--distill-model", ARG_STR, distill_model, "NAME", "distillation teacher", .refuse = "distillation is not implemented");
    S("--distill-pretrained", ARG_STR, distill_pretrained, "TAG", "distillation teacher weights", .refuse = "distillation is not implemented");
    S("--coca-caption-loss-weight", ARG_FLOAT, coca_caption_loss_weight, "W", "CoCa caption loss weight", .noeffect = "clipmod trains CLIP models, not CoCa");
    S("--coca-contrastive-loss-weight", ARG_FLOAT, coca_contrastive_loss_weight, "W", "CoCa contrastive loss weight", .noeffect = "clipmod trains CLIP models, not CoCa");
    S("--device", ARG_STR, device, "DEV", "cpu (cuda falls back to cpu with a warning, as OpenCLIP without a GPU)");
    /* distributed: one process here */
    S("--dist-url", ARG_STR, dist_url, "URL", "distributed init URL", .noeffect = MPI_NOEFFECT);
    S("--dist-backend", ARG_STR, dist_backend, "NAME", "distributed backend", .noeffect = MPI_NOEFFECT);
    S("--local-loss", ARG_FLAG, local_loss, NULL, "OpenCLIP: loss on the local rows (clipmod: the exact global gradient either way; refused with --dist-grad openclip without --gather-with-grad)");
    S("--gather-with-grad", ARG_FLAG, gather_with_grad, NULL, "OpenCLIP: all-gather with gradients (clipmod: exact either way; with --dist-grad openclip it selects OpenCLIP's exact gradient)");
    S("--dist-grad", ARG_STR, dist_grad, "KIND", "under mpirun: exact (default: the single-process global-batch gradient) or openclip (OpenCLIP DDP's gradient for --gather-with-grad; docs/distributed.md)",
      .choices = "exact|openclip");
    S("--horovod", ARG_FLAG, horovod, NULL, "Horovod", .noeffect = MPI_NOEFFECT);
    S("--ddp-static-graph", ARG_FLAG, ddp_static_graph, NULL, "DDP static graph", .noeffect = MPI_NOEFFECT);
    S("--no-set-device-rank", ARG_FLAG, no_set_device_rank, NULL, "do not pin the device to the rank", .noeffect = MPI_NOEFFECT);
    S("--remote-sync", ARG_STR, remote_sync, "URL", "sync the run folder to a remote", .refuse = "remote sync is not available");
    S("--remote-sync-frequency", ARG_INT, remote_sync_frequency, "S", "remote sync period", .noeffect = "--remote-sync is not available");
    S("--remote-sync-protocol", ARG_STR, remote_sync_protocol, "P", "remote sync protocol", .noeffect = "--remote-sync is not available");
    /* seed project and clipmod */
    S("--enable-lora", ARG_FLAG, enable_lora, NULL, "LoRA on attn.out_proj of every block; train LoRA + head only");
    S("--lora-rank", ARG_INT, lora_rank, "R", "LoRA rank (default 4)", ARG_RANGE(1, 4096));
    S("--lora-alpha", ARG_FLOAT, lora_alpha, "A", "LoRA alpha > 0, scaling alpha/rank (default 32)");
    S("--contrastive-weight", ARG_FLOAT, contrastive_weight, "W", "weight of the masked contrastive loss (default 1)");
    S("--classification-weight", ARG_FLOAT, classification_weight, "W", "weight of the classification loss (default 1)");
    S("--threads", ARG_INT, threads, "N", "compute threads (default: CLIPMOD_THREADS or all cores; more than 4x the cores: clamped)",
      ARG_RANGE(0, 65536));
    S("--offline", ARG_FLAG, offline, NULL, "never download --pretrained weights");
    S("--vocab", ARG_STR, vocab, "PATH", "BPE vocabulary (default: next to the weights, $CLIPMOD_VOCAB, <prefix>/share/clipmod/)");
    S("--tokenizer", ARG_STR, tokenizer, "KIND", "bpe (OpenCLIP's, default) | bytes (byte-level, vocab 258: the demo's)", .choices = "bpe|bytes");
    CM_ASSERT(n <= CM_TRAIN_MAX_SPECS);
    return n;
}
#undef S
#undef GIVEN

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

/* Flag values were checked one by one by the parser (args.h rules); here: model defaults,
   checks that involve several flags or a value the parser cannot judge, --debug, --threads. Every
   error is a usage error. */
cm_status cm_train_opts_finalize(CmTrainOpts *o) {
    bool vit = has_vit(o->model ? o->model : "");
    if (!o->has_lr) o->lr = 5e-4;
    if (!o->has_beta1) o->beta1 = 0.9;
    if (!o->has_beta2) o->beta2 = vit ? 0.98 : 0.999;
    if (!o->has_eps) o->eps = vit ? 1e-6 : 1e-8;
    if (o->debug) cm_log_set_level(CM_LOG_DEBUG);

    if (!o->train_data || !*o->train_data) return bad("--train-data", "is required");
    if (!o->model || !*o->model) return bad("--model", "must name a config or a JSON file");
    /* the parser's rules hold for values from the command line; a caller filling o directly
       (the demo) gets the same checks here */
    if (o->batch_size < 1) return bad("--batch-size", "must be >= 1");
    if (o->epochs < 1) return bad("--epochs", "must be >= 1");
    if (o->accum_freq < 1) return bad("--accum-freq", "must be >= 1");
    if (o->workers < 0) return bad("--workers", "must be >= 0");
    if (o->threads < 0) return bad("--threads", "must be >= 0");
    if (o->warmup < 0) return bad("--warmup", "must be >= 0");
    if (o->save_frequency < 0) return bad("--save-frequency", "must be >= 0");
    if (o->val_frequency < 0) return bad("--val-frequency", "must be >= 0");
    if (o->log_every_n_steps < 1) return bad("--log-every-n-steps", "must be >= 1");
    if (o->seed < 0) return bad("--seed", "must be >= 0");
    if (o->has_train_num_samples && o->train_num_samples < 1) return bad("--train-num-samples", "must be >= 1");
    if (!(o->lr >= 0) || !isfinite(o->lr)) return bad("--lr", "must be a finite number >= 0");
    if (!(o->beta1 >= 0 && o->beta1 < 1)) return bad("--beta1", "must be in [0, 1)");
    if (!(o->beta2 >= 0 && o->beta2 < 1)) return bad("--beta2", "must be in [0, 1)");
    if (!(o->eps >= 0) || !isfinite(o->eps)) return bad("--eps", "must be a finite number >= 0");
    if (!(o->wd >= 0) || !isfinite(o->wd)) return bad("--wd", "must be a finite number >= 0");
    if (o->has_grad_clip_norm && !(o->grad_clip_norm > 0 && isfinite(o->grad_clip_norm)))
        return bad("--grad-clip-norm", "must be a finite number > 0");
    if (!(o->contrastive_weight >= 0) || !isfinite(o->contrastive_weight)) return bad("--contrastive-weight", "must be a finite number >= 0");
    if (!(o->classification_weight >= 0) || !isfinite(o->classification_weight))
        return bad("--classification-weight", "must be a finite number >= 0");
    if (o->contrastive_weight == 0 && o->classification_weight == 0)
        return bad("--contrastive-weight/--classification-weight", "cannot both be 0 (nothing to train)");
    if (o->lora_rank < 1 || o->lora_rank > 4096) return bad("--lora-rank", "must be in 1..4096");
    if (!(o->lora_alpha > 0) || !isfinite(o->lora_alpha)) return bad("--lora-alpha", "must be a finite number > 0");
    if (strcmp(o->tokenizer, "bpe") && strcmp(o->tokenizer, "bytes")) return bad("--tokenizer", "must be bpe or bytes");
    if (strcmp(o->opt, "adamw")) return bad("--opt", "must be adamw (the only optimizer here)");
    if (strcmp(o->lr_scheduler, "cosine") && strcmp(o->lr_scheduler, "const") && strcmp(o->lr_scheduler, "const-cooldown"))
        return bad("--lr-scheduler", "must be cosine, const or const-cooldown");
    if (!strcmp(o->lr_scheduler, "const-cooldown") && !o->has_epochs_cooldown)
        return bad("--epochs-cooldown", "is required with --lr-scheduler const-cooldown");
    if (o->has_epochs_cooldown && (o->epochs_cooldown < 0 || o->epochs_cooldown > o->epochs))
        return bad("--epochs-cooldown", "must be in 0..--epochs");
    if (!(o->lr_cooldown_power > 0) || !isfinite(o->lr_cooldown_power)) return bad("--lr-cooldown-power", "must be a finite number > 0");
    if (!isfinite(o->lr_cooldown_end) || o->lr_cooldown_end < 0) return bad("--lr-cooldown-end", "must be a finite number >= 0");

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
    if (o->lock_image_unlocked_groups) return cm_error(CM_ERR_UNSUPPORTED, "--lock-image-unlocked-groups: partial unlocking is not implemented");
    if (o->lock_text_unlocked_layers) return cm_error(CM_ERR_UNSUPPORTED, "--lock-text-unlocked-layers: partial unlocking is not implemented");
    if (o->has_force_patch_dropout && o->force_patch_dropout != 0)
        return cm_error(CM_ERR_UNSUPPORTED, "--force-patch-dropout: patch dropout is not implemented");
    if (o->image_interpolation && strcmp(o->image_interpolation, "bicubic"))
        return cm_error(CM_ERR_UNSUPPORTED, "--image-interpolation %s: only bicubic", o->image_interpolation);
    if (o->image_resize_mode && strcmp(o->image_resize_mode, "shortest"))
        return cm_error(CM_ERR_UNSUPPORTED, "--image-resize-mode %s: only shortest", o->image_resize_mode);

    /* --report-to works for html; the integrations in the same list have no effect here: say so once */
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
    if (strcmp(o->device, "cpu")) {
        cm_warn("--device %s: not available, using cpu (as OpenCLIP falls back without a GPU)", o->device);
        o->device = "cpu";
    }
    /* more threads than 4x the cores cannot be meant (each OpenMP barrier would time-slice):
       clamp with a warning rather than refuse, the run is still correct */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && o->threads > 4 * cores) {
        cm_warn("--threads %d is more than 4x the %ld cores of this machine: using %ld", o->threads, cores, 4 * cores);
        o->threads = (int)(4 * cores);
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
    if (!strcmp(o->dist_grad, "openclip") && o->local_loss && !o->gather_with_grad)
        return bad("--local-loss", "without --gather-with-grad under --dist-grad openclip: that gradient drops the terms where a "
                                  "rank's samples are other ranks' negatives, and is not reproduced (docs/distributed.md)");
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
        if (s->optional && !(s->given && *s->given)) { snprintf(e->val, sizeof e->val, "None"); continue; }
        switch (s->type) {
        case ARG_FLAG: snprintf(e->val, sizeof e->val, "%s", *(bool *)s->dst ? "True" : "False"); break;
        case ARG_INT: snprintf(e->val, sizeof e->val, "%d", *(int *)s->dst); break;
        case ARG_I64: snprintf(e->val, sizeof e->val, "%lld", *(long long *)s->dst); break;
        case ARG_FLOAT: cm_py_float(*(double *)s->dst, e->val, sizeof e->val); break;
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
    char path[512], ws[16], rk[16], lrk[16];
    /* under mpirun / srun (cm_dist_init ran first): OpenCLIP's values of a distributed run */
    const char *lr_env = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    snprintf(ws, sizeof ws, "%d", cm_dist_size());
    snprintf(rk, sizeof rk, "%d", cm_dist_rank());
    snprintf(lrk, sizeof lrk, "%d", cm_dist_active() && lr_env ? atoi(lr_env) : 0);
    struct { const char *k; const char *v; } extra[] = {
        {"distributed", cm_dist_active() ? "True" : "False"}, {"world_size", ws}, {"rank", rk}, {"local_rank", lrk},
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

char *cm_train_opts_params_text(const CmTrainOpts *o) {
    KV *kv = cm_calloc(CM_TRAIN_MAX_SPECS + 16, sizeof *kv, "params.txt");
    if (!kv) return NULL;
    int n = collect(o, kv, CM_TRAIN_MAX_SPECS + 16);
    size_t cap = (size_t)n * (sizeof kv->key + sizeof kv->val + 4) + 1, len = 0;
    char *buf = cm_malloc(cap, "params.txt");
    if (buf) {
        buf[0] = 0;
        for (int i = 0; i < n; i++) len += snprintf(buf + len, cap - len, "%s: %s\n", kv[i].key, kv[i].val);
    }
    cm_free(kv);
    return buf;
}

cm_status cm_train_opts_write_params(const CmTrainOpts *o, const char *path) {
    char *buf = cm_train_opts_params_text(o);
    if (!buf) return CM_ERR_OOM;
    cm_status st = cm_write_file_atomic(path, buf, strlen(buf));
    cm_free(buf);
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

cm_status cm_train_opts_to_config(const CmTrainOpts *o, CmTrainConfig *c, char **params, char **json) {
    *params = NULL; *json = NULL;
    cm_train_config_defaults(c);
    c->train_data = o->train_data; c->val_data = o->val_data;
    c->train_data_upsampling_factors = o->train_data_upsampling_factors;
    c->dataset_resampled = o->dataset_resampled;
    c->train_num_samples = o->has_train_num_samples ? o->train_num_samples : 0;
    c->workers = o->workers;
    c->model = o->model; c->pretrained = o->pretrained; c->cache_dir = o->cache_dir; c->offline = o->offline;
    c->force_quick_gelu = o->force_quick_gelu;
    c->enable_lora = o->enable_lora; c->lora_rank = o->lora_rank; c->lora_alpha = o->lora_alpha;
    c->lock_image = o->lock_image; c->lock_text = o->lock_text;
    c->tokenizer = o->tokenizer; c->vocab = o->vocab; c->prec = o->prec; c->threads = o->threads;
    c->batch_size = o->batch_size; c->accum_freq = o->accum_freq; c->epochs = o->epochs; c->warmup = o->warmup;
    c->epochs_cooldown = o->has_epochs_cooldown ? o->epochs_cooldown : 0;
    c->lr = o->lr; c->beta1 = o->beta1; c->beta2 = o->beta2; c->eps = o->eps; c->wd = o->wd;
    c->grad_clip_norm = o->has_grad_clip_norm ? o->grad_clip_norm : 0;
    c->lr_scheduler = o->lr_scheduler; c->lr_cooldown_end = o->lr_cooldown_end; c->lr_cooldown_power = o->lr_cooldown_power;
    c->skip_scheduler = o->skip_scheduler; c->grad_checkpointing = o->grad_checkpointing;
    c->contrastive_weight = o->contrastive_weight; c->classification_weight = o->classification_weight;
    c->seed = o->seed;
    c->logs = o->logs; c->name = o->name; c->resume = o->resume;
    c->save_frequency = o->save_frequency; c->val_frequency = o->val_frequency; c->log_every_n_steps = o->log_every_n_steps;
    c->save_most_recent = o->save_most_recent; c->delete_previous_checkpoint = o->delete_previous_checkpoint;
    c->report_html = cm_train_opts_report_html(o);
    c->openclip_grad = !strcmp(o->dist_grad, "openclip") && !o->gather_with_grad;
    *params = cm_train_opts_params_text(o);
    *json = cm_train_opts_json(o);
    if (!*params || !*json) { cm_free(*params); cm_free(*json); *params = *json = NULL; return CM_ERR_OOM; }
    c->params_txt = *params; c->args_json = *json;
    return CM_OK;
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
