/*
 * scores.h — per-sample classifier scores, as `clipmod eval --scores-out` writes them and
 * `clipmod report --eval` reads them (docs/report.md). One JSON object per line:
 *   {"key":"000123","url":"shards/val-000.tar","label":3,"pred":3,"probs":[p0,..,p6]}
 * key/url name the WebDataset sample (so the report can re-read its image and caption; "" when
 * the source does not know them); probs are the softmax of the head logits; pred is their
 * argmax (ties -> lower class). Reading checks every line (label in range, same number of
 * probabilities everywhere, finite values in [0,1]) and names file:line at fault; "pred" is
 * recomputed, not trusted.
 * defines: CmScores, cm_scores_*
 */
#ifndef CM_EVAL_SCORES_H
#define CM_EVAL_SCORES_H

#include <stdint.h>
#include "common/common.h"
#include "train/batches.h"
#include "train/metrics.h"

typedef struct {
    int k;                     /* classes (0 until the first row) */
    int64_t n, cap;
    int32_t *label;            /* [n] */
    float *prob;               /* [n*k] */
    char **key;                /* [n] (malloc'd, "" when unknown) */
    int32_t *url;              /* [n] index into urls */
    char **urls;               /* distinct shard URLs */
    int n_urls, cap_urls;
    char *last_raw, *last_abs;   /* cm_scores_collect: the last source URL and its absolute path */
} CmScores;

void cm_scores_init(CmScores *s, int n_classes);
void cm_scores_free(CmScores *s);
/* Append one sample (probs: k values). key/url NULL: "". */
cm_status cm_scores_add(CmScores *s, const char *key, const char *url, int label, const float *probs);
static inline const float *cm_scores_probs(const CmScores *s, int64_t i) { return s->prob + (size_t)i * s->k; }
static inline const char *cm_scores_url(const CmScores *s, int64_t i) { return s->urls[s->url[i]]; }
/* Argmax of sample i's probabilities (ties -> lower class, as cm_topk). */
int cm_scores_pred(const CmScores *s, int64_t i);
/* Write atomically as JSON lines. */
cm_status cm_scores_write(const CmScores *s, const char *path);
cm_status cm_scores_read(const char *path, CmScores *out);
/* Top-1/top-2/confusion of the scores as CmMetrics (the eval table's numbers). */
cm_status cm_scores_metrics(const CmScores *s, CmMetrics *out);

/* A CmValBatchFn (train/trainer.h) for cm_validate_ex: ctx is a CmScores; softmax of each
   row of logits, keys and URLs from the source (cm_batches_sample_key); a URL that is a local
   file is recorded as its absolute path (the report re-reads it from anywhere). */
cm_status cm_scores_collect(void *ctx, CmBatchSource *src, const float *logits, const int32_t *labels, int n,
                            int n_classes);

#endif
