/*
 * eval.h — evaluation of a model over a batch source (no gradients, dropout off): what
 * `clipmod eval`, training's validation and the demo report (metrics in eval/metrics.h).
 * defines: cm_validate, cm_validate_ex, CmValBatchFn, cm_clip_val_loss
 */
#ifndef CM_EVAL_EVAL_H
#define CM_EVAL_EVAL_H

#include <stdint.h>
#include "common/common.h"
#include "eval/metrics.h"
#include "model/model.h"

/* OpenCLIP's (unmasked) CLIP loss of one batch: (CE(sUV^T, i) + CE(sVU^T, i)) / 2, mean over
   rows; in double. */
double cm_clip_val_loss(const float *U, const float *V, int N, int E, float scale);

/* Validation / evaluation over a whole source (no gradients, dropout off): head top-1/top-2,
   per-class metrics and confusion into *out (initialised here), OpenCLIP's clip_val_loss
   (per-batch unmasked CLIP loss, weighted by batch size) and the objective's loss. */
struct CmBatchSource;
cm_status cm_validate(const CmModel *m, struct CmBatchSource *val, int64_t epoch, float w_con, float w_cls,
                      CmMetrics *out);
/* The same, calling on_batch (when not NULL) after each batch with the head logits [n, C] and
   labels (per-sample scores: src/eval/scores.h, eval/val_scores.h); an error from it ends the
   validation. */
typedef cm_status (*CmValBatchFn)(void *ctx, struct CmBatchSource *src, const float *logits, const int32_t *labels,
                                  int n, int n_classes);
cm_status cm_validate_ex(const CmModel *m, struct CmBatchSource *val, int64_t epoch, float w_con, float w_cls,
                         CmMetrics *out, CmValBatchFn on_batch, void *ctx);

#endif
