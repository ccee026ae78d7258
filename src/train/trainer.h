/*
 * trainer.h — one optimizer step of OpenCLIP's training loop (OpenCLIP v2.30 open_clip_train/train.py and main.py) on a clipmod model,
 * and validation. Data come in as host batches; where they come from is the caller's business
 * (src/data/batches.h: shards, or memory for tests).
 *
 * cm_trainer_step(t, images, tokens, labels, K*B samples):
 *   accum_freq K == 1: zero grads; forward (train mode); loss (DESIGN §2); backward; logit_scale
 *     grad; [clip_grad_norm]; lr = schedule(step); AdamW; logit_scale clamp to [0, ln 100].
 *   K > 1, OpenCLIP's feature cache: forward the K micro-batches of B without gradients and
 *     cache U, V and head logits; then for each micro-batch j: forward it again with gradients,
 *     put its fresh outputs into the cache at rows j, compute the loss over all K*B rows and
 *     backpropagate rows j only. The parameter gradients sum to the K*B big-batch gradient (no
 *     division by K). logit_scale's gradient (a direct input of the loss) is taken once, from the
 *     first sub-step — the big-batch value; OpenCLIP adds it K times (DESIGN §3).
 * Memory: the activations are sized for one micro-batch (B); the cache holds K*B feature rows.
 * Determinism: for a given seed the step is bit-reproducible (dropout masks are counter-based:
 * a function of seed, step and each sample's index in the K*B batch, so every micro-batch split
 * draws the big batch's masks; cm_acts_set_step).
 * defines: CmTrainerCfg, CmTrainer, CmStepStats, cm_trainer_*, cm_clip_val_loss, cm_validate
 */
#ifndef CM_TRAIN_TRAINER_H
#define CM_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"
#include "model/model.h"
#include "eval/eval.h"
#include "eval/metrics.h"
#include "train/optim.h"

typedef struct {
    int micro_batch;         /* B */
    int accum_freq;          /* K */
    bool grad_checkpointing;
    bool dropout;            /* head dropout on in training (off for the golden checks) */
    double beta1, beta2, eps, wd;
    double grad_clip_norm;   /* <= 0 or NaN: off */
    float w_con, w_cls;
    CmLrSchedule sched;
    int world, rank;         /* data-parallel group (src/dist); 0/0 = a single process */
    bool openclip_grad;      /* reproduce OpenCLIP DDP's default gradient (no --gather-with-grad):
                                the contrastive part of the tensors' gradients / world
                                (docs/distributed.md); default: the exact global-batch gradient */
} CmTrainerCfg;

typedef struct {
    CmModel *m;
    CmActs *acts;
    CmTrainerCfg cfg;
    CmAdamW opt;
    CmOptParam *pp;
    int np;
    int64_t step;            /* optimizer steps done (the schedule index of the next step) */
    int E, K, n_cls;         /* feature dim, accum, classes */
    int W, R;                /* ranks, this rank */
    float *U, *V, *H;        /* [G, E], [G, E], [G, n_cls] cache / batch outputs of the global batch:
                                G = W*K*B rows, rank r's K*B rows at r*K*B */
    int32_t *Lg;             /* [G] labels of the global batch */
    float *Uj, *Vj, *Hj;     /* fresh outputs of one micro-batch */
    float *dU, *dV, *dH;     /* loss gradients over the G rows */
    float *keep;             /* [B*(2E+n_cls)] cached rows of micro-batch j while swapped out */
} CmTrainer;

typedef struct {
    float loss, loss_con, loss_cls;
    double lr;
    float logit_scale;       /* exp(logit_scale) after the step's clamp, as OpenCLIP logs it */
    double grad_norm;        /* before clipping; NaN when not computed */
} CmStepStats;

/* m: mode already set (cm_model_set_mode). Builds the optimizer over its trainable tensors. */
cm_status cm_trainer_init(CmTrainer *t, CmModel *m, const CmTrainerCfg *cfg);
void cm_trainer_free(CmTrainer *t);
/* One optimizer step on n = K*B samples: images [n,3,S,S], tokens [n,ctx], labels [n]. */
cm_status cm_trainer_step(CmTrainer *t, const float *images, const int32_t *tokens, const int32_t *labels,
                          int n, CmStepStats *st);
/* Only the gradient part of a step (zero grads, forward(s), backward(s), logit_scale grad), no
   optimizer update: for gradient checks. Loss values in *st. */
cm_status cm_trainer_grads(CmTrainer *t, const float *images, const int32_t *tokens, const int32_t *labels,
                           int n, CmStepStats *st);

#endif
