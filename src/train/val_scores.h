/*
 * val_scores.h — per-sample scores from validation (`clipmod eval --scores-out`, `--report-to
 * html`): a CmValBatchFn for cm_validate_ex (train/trainer.h) that adds each sample's softmax
 * probabilities, label, WebDataset key and shard URL (cm_batches_sample_key) to a CmScores
 * (src/eval/scores.h). src/eval sits below src/train, so the bridge lives here.
 * defines: cm_val_scores_collect
 */
#ifndef CM_TRAIN_VAL_SCORES_H
#define CM_TRAIN_VAL_SCORES_H

#include "eval/scores.h"
#include "train/batches.h"

/* ctx: a CmScores (k 0 = take the model's class count). */
cm_status cm_val_scores_collect(void *ctx, CmBatchSource *src, const float *logits, const int32_t *labels, int n,
                                int n_classes);

#endif
