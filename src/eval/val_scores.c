/*
 * val_scores.c — validation batches -> per-sample scores. See val_scores.h.
 */
#include "eval/val_scores.h"
#include "model/infer.h"

#include <math.h>

cm_status cm_val_scores_collect(void *ctx, CmBatchSource *src, const float *logits, const int32_t *labels, int n,
                                int n_classes) {
    CmScores *s = ctx;
    if (s->k == 0) s->k = n_classes;
    if (s->k != n_classes || n_classes > CM_EVAL_MAX_CLASSES)
        return cm_error(CM_ERR_ARG, "scores: %d classes, the model has %d", s->k, n_classes);
    float p[CM_EVAL_MAX_CLASSES];
    for (int i = 0; i < n; i++) {
        cm_class_probs(logits + (size_t)i * n_classes, n_classes, NULL, p);
        const char *url = NULL, *key = cm_batches_sample_key(src, i, &url);
        cm_status st = cm_scores_add_abs(s, key, url, labels[i], p);
        if (st) return st;
    }
    return CM_OK;
}
