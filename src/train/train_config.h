/*
 * train_config.h — what the library's trainer needs to run: data, model, optimisation and run
 * folder settings, already validated and with every default filled in. It knows nothing of
 * command-line flags: `clipmod train` maps OpenCLIP's flags onto it (src/cli/train_flags.c), the
 * demo and the tests fill it directly. Numbers are plain values; "off" has an explicit meaning
 * per field (documented below), never NaN.
 * defines: CmTrainConfig, CmPrecision, cm_train_config_defaults, cm_train_config_check
 */
#ifndef CM_TRAIN_CONFIG_H
#define CM_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"

typedef enum { CM_PREC_FP32 = 0, CM_PREC_AMP_BF16 } CmPrecision;

typedef struct {
    /* data */
    const char *train_data;                   /* brace patterns joined by '::' (required) */
    const char *val_data;                     /* NULL or "": no validation */
    const char *train_data_upsampling_factors;/* "w1::w2" (resampled only) or NULL */
    bool dataset_resampled;
    long long train_num_samples;              /* samples per epoch; 0: from sizes.json */
    int workers;                              /* loader threads (>= 0) */
    /* model */
    const char *model;                        /* config name or JSON file */
    const char *pretrained;                   /* NULL/"": random init from seed; tag or file */
    const char *cache_dir;                    /* NULL: the default Hugging Face cache */
    bool offline;
    bool force_quick_gelu;
    bool enable_lora;
    int lora_rank;
    double lora_alpha;
    bool lock_image, lock_text;
    const char *tokenizer;                    /* "bpe" | "bytes" */
    const char *vocab;                        /* NULL: default search */
    CmPrecision prec;
    int threads;                              /* 0: keep the current thread count */
    /* optimisation */
    int batch_size, accum_freq, epochs, warmup;
    int epochs_cooldown;                      /* const-cooldown epochs; 0: none */
    double lr, beta1, beta2, eps, wd;
    double grad_clip_norm;                    /* 0: no clipping */
    const char *lr_scheduler;                 /* "cosine" | "const" | "const-cooldown" */
    double lr_cooldown_end, lr_cooldown_power;
    bool skip_scheduler, grad_checkpointing;
    double contrastive_weight, classification_weight;
    long long seed;
    /* run folder */
    const char *logs;                         /* NULL, "" or "none": no folder, no checkpoints */
    const char *name;                         /* run name (required when logs are kept) */
    const char *resume;                       /* NULL: fresh; "latest" or a checkpoint path */
    int save_frequency, val_frequency, log_every_n_steps;
    bool save_most_recent, delete_previous_checkpoint;
    bool report_html;                         /* <run>/report.html at the end (docs/report.md) */
    const char *params_txt;                   /* written as <run>/params.txt when not NULL */
    const char *args_json;                    /* checkpoint "args" metadata (may be NULL) */
    /* data-parallel group (src/dist; docs/distributed.md): 0/0 = one process */
    int world, rank;
    bool openclip_grad;                       /* OpenCLIP DDP's default gradient (contrastive / world) */
} CmTrainConfig;

/* OpenCLIP's defaults for a ViT (lr 5e-4, betas 0.9/0.98, eps 1e-6, wd 0.2, batch 64, 32 epochs,
   warmup 10000, cosine, amp) with --model ViT-B-32, no data, logs "none". */
void cm_train_config_defaults(CmTrainConfig *c);
/* Every field in range (CM_ERR_ARG naming the field otherwise). cm_train_run calls it first. */
cm_status cm_train_config_check(const CmTrainConfig *c);

#endif
