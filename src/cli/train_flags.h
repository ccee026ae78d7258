/*
 * train_flags.h — the flags of `clipmod train` (CLI only; the library's trainer takes a
 * CmTrainConfig, src/train/train_config.h): OpenCLIP v2.30's params.py flags with OpenCLIP's
 * names and defaults (OpenCLIP v2.30 open_clip_train/params.py), the seed's additions (--enable-lora, --lora-rank,
 * --lora-alpha, loss weights), defaults that depend on the model (ViT: lr 5e-4, betas 0.9/0.98,
 * eps 1e-6), validation, the run name, params.txt written as OpenCLIP writes it.
 *
 * One table (cm_train_opts_specs) declares every flag once with its rules (src/cli/args.h): the
 * parser checks every value and --help is generated from it. Every OpenCLIP flag either works,
 * or warns once that it has no effect here (and why), or is refused (docs/flags.md).
 * "Not set" is explicit: has_* fields, never a NaN marker.
 * defines: CmTrainOpts, cm_train_opts_*, cm_py_float
 */
#ifndef CM_TRAIN_FLAGS_H
#define CM_TRAIN_FLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include "cli/args.h"
#include "common/common.h"
#include "train/train_config.h"

typedef struct {
    /* data */
    const char *train_data, *val_data, *train_data_upsampling_factors, *dataset_type;
    long long train_num_samples, val_num_samples;
    bool has_train_num_samples, has_val_num_samples;
    bool dataset_resampled;
    const char *csv_separator, *csv_img_key, *csv_caption_key, *imagenet_val, *imagenet_v2;
    const char *cache_dir;
    /* run / logging */
    const char *logs, *name, *resume, *report_to, *wandb_notes, *wandb_project_name;
    bool log_local, save_most_recent, delete_previous_checkpoint, debug, copy_codebase;
    int save_frequency, val_frequency, zeroshot_frequency, log_every_n_steps;
    /* optimisation */
    int workers, batch_size, epochs, epochs_cooldown, warmup, accum_freq;
    double lr, beta1, beta2, eps, wd, momentum, grad_clip_norm;
    bool has_epochs_cooldown, has_lr, has_beta1, has_beta2, has_eps, has_momentum, has_grad_clip_norm;
    double lr_cooldown_end, lr_cooldown_power;
    const char *opt, *lr_scheduler, *precision;
    bool use_bn_sync, skip_scheduler, grad_checkpointing;
    long long seed;
    /* model */
    const char *model, *pretrained, *image_interpolation, *image_resize_mode, *device;
    bool pretrained_image, lock_image, lock_image_freeze_bn_stats, lock_text, lock_text_freeze_layer_norm;
    int lock_image_unlocked_groups, lock_text_unlocked_layers;
    ArgList image_mean, image_std, aug_cfg, force_image_size;
    bool force_quick_gelu, force_custom_text, torchscript, torchcompile, trace, siglip;
    double force_patch_dropout;
    bool has_force_patch_dropout;
    const char *distill_model, *distill_pretrained, *loss_dist_impl, *use_bnb_linear;
    double coca_caption_loss_weight, coca_contrastive_loss_weight;
    /* distributed (single process here) */
    const char *dist_url, *dist_backend;
    bool local_loss, gather_with_grad, horovod, ddp_static_graph, no_set_device_rank;
    const char *dist_grad;                    /* exact | openclip (docs/distributed.md) */
    bool remote_sync_flag; const char *remote_sync, *remote_sync_protocol; int remote_sync_frequency;
    /* seed project / clipmod */
    bool enable_lora;
    int lora_rank;
    double lora_alpha, contrastive_weight, classification_weight;
    int threads;
    bool offline;
    const char *vocab, *tokenizer;
    /* derived by cm_train_opts_finalize */
    CmPrecision prec;
    char name_buf[256];
} CmTrainOpts;

/* OpenCLIP defaults (lr/betas/eps are filled by finalize from the model when not given). */
void cm_train_opts_defaults(CmTrainOpts *o);
/* The flag table bound to o; returns the count. specs must hold CM_TRAIN_MAX_SPECS entries. */
#define CM_TRAIN_MAX_SPECS 128
int cm_train_opts_specs(CmTrainOpts *o, ArgSpec *specs);
/* Model defaults, cross-flag checks, --debug, run name. Errors name the flag; every error here is
   a usage error (CM_ERR_ARG or CM_ERR_UNSUPPORTED: exit 2). */
cm_status cm_train_opts_finalize(CmTrainOpts *o);
/* The library's configuration from finalised options (points into o; params.txt and the options
   JSON are cm_malloc'd into *params / *json, freed by the caller). */
cm_status cm_train_opts_to_config(const CmTrainOpts *o, CmTrainConfig *c, char **params, char **json);
/* params.txt's text. cm_malloc'd. */
char *cm_train_opts_params_text(const CmTrainOpts *o);
/* params.txt as OpenCLIP writes it: "name: value" lines sorted by name, Python str() values. */
cm_status cm_train_opts_write_params(const CmTrainOpts *o, const char *path);
/* The options as one JSON object (for checkpoint metadata); cm_malloc'd. */
char *cm_train_opts_json(const CmTrainOpts *o);
/* Whether --report-to's comma list names html (case-insensitive; spaces around names ignored). */
bool cm_train_opts_report_html(const CmTrainOpts *o);

/* Python str(float): shortest round-trip repr, fixed for 1e-4 <= |x| < 1e16 (always with a
   ".0" when integral), else d.ddde-XX; "inf", "nan". */
void cm_py_float(double x, char *buf, size_t n);

#endif
