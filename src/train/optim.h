/*
 * optim.h — the optimizer side of OpenCLIP's training loop (OpenCLIP v2.30 open_clip_train/train.py and main.py), independent of the
 * model: a parameter is just a named float buffer with a gradient buffer.
 *
 *   - cm_param_decays: OpenCLIP v2.30's parameter-group rule (main.py): weight decay applies
 *     unless ndim < 2 or the name contains "bn", "ln", "bias" or "logit_scale" (substrings).
 *   - CmAdamW: torch 1.13 single-tensor AdamW (decoupled weight decay), per-parameter step
 *     counts, fp32 state exactly as torch keeps it:
 *         p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *         p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
 *     A parameter whose grad is NULL is skipped (torch: .grad is None).
 *   - cm_clip_grad_norm: torch.nn.utils.clip_grad_norm_(norm_type=2): total = ||(||g_i||)||,
 *     coef = min(1, max_norm / (total + 1e-6)), every grad *= coef.
 *   - CmLrSchedule: OpenCLIP scheduler.py (cosine / const / const-cooldown, linear warmup
 *     lr*(step+1)/warmup); stateless: a pure function of the optimizer-step index.
 *   - cm_logit_scale_clamp: clamp to [0, ln 100] after every optimizer step.
 * Everything here is deterministic and independent of the thread count.
 * defines: CmOptParam, CmAdamW, cm_adamw_*, cm_clip_grad_norm, CmLrSchedule, cm_lr_*, ...
 */
#ifndef CM_TRAIN_OPTIM_H
#define CM_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

#define CM_LOGIT_SCALE_MAX 4.605170185988092   /* math.log(100) */

typedef struct {
    const char *name;   /* OpenCLIP state-dict name (not owned) */
    float *data;        /* [numel] parameter values, updated in place */
    float *grad;        /* [numel] gradient, or NULL: skipped like a torch param with .grad None */
    size_t numel;
    int ndim;
    bool decay;         /* in the weight-decay group (see cm_param_decays) */
} CmOptParam;

/* OpenCLIP v2.30 exclusion rule: false when ndim < 2 or name contains bn/ln/bias/logit_scale. */
bool cm_param_decays(const char *name, int ndim);

typedef struct {
    double beta1, beta2, eps, wd;   /* wd applies to params with decay set; others 0 */
    double lr;                      /* last lr used by cm_adamw_step (for logging / checkpoints) */
    int n;
    CmOptParam *p;                  /* [n] copy of the table given at init */
    float **m, **v;                 /* [n][numel] exp_avg, exp_avg_sq */
    int64_t *step;                  /* [n] torch's per-parameter `step` */
    const struct CmBackend *be;     /* computes the update (cm_backend_cpu() when NULL) */
} CmAdamW;

/* Allocates zero state for the n params (copied; names must outlive the optimizer). */
cm_status cm_adamw_init(CmAdamW *o, const CmOptParam *params, int n, double beta1, double beta2,
                        double eps, double wd);
/* One optimizer step at learning rate lr (same lr for both groups, as OpenCLIP). */
void cm_adamw_step(CmAdamW *o, double lr);
void cm_adamw_free(CmAdamW *o);
/* Index of a parameter by name, or -1. */
int cm_adamw_find(const CmAdamW *o, const char *name);

/* clip_grad_norm_ over the params with a grad; returns the total norm before clipping.
   max_norm <= 0 only computes the norm. A non-finite norm is returned as is (grads untouched
   then would be torch's behaviour too: coef becomes nan; we leave them and the caller warns). */
double cm_clip_grad_norm(CmOptParam *p, int n, double max_norm);
/* Sum of squares of all grads (for logging), deterministic. */
double cm_grad_norm(const CmOptParam *p, int n);

/* logit_scale.clamp_(0, ln 100) */
static inline float cm_logit_scale_clamp(float x) {
    const float hi = (float)CM_LOGIT_SCALE_MAX;
    return x < 0.0f ? 0.0f : (x > hi ? hi : x);
}

typedef enum { CM_LR_COSINE = 0, CM_LR_CONST, CM_LR_CONST_COOLDOWN } CmLrKind;
typedef struct {
    CmLrKind kind;
    double base_lr;
    int64_t warmup;          /* optimizer steps */
    int64_t total_steps;     /* (batches per epoch // accum_freq) * epochs */
    int64_t cooldown_steps;  /* const-cooldown: (batches per epoch // accum_freq) * epochs_cooldown */
    double cooldown_power;   /* --lr-cooldown-power (1.0) */
    double cooldown_end_lr;  /* --lr-cooldown-end (0.0) */
} CmLrSchedule;

/* "cosine" | "const" | "const-cooldown" -> kind; error names the flag value otherwise. */
cm_status cm_lr_kind_parse(const char *s, CmLrKind *out);
const char *cm_lr_kind_name(CmLrKind k);
double cm_lr_at(const CmLrSchedule *s, int64_t step);
/* True (and a message in buf) when the run never leaves warmup: warmup >= total_steps. */
bool cm_lr_warmup_too_long(const CmLrSchedule *s, char *buf, size_t buflen);

#endif
