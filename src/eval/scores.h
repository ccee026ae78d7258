/*
 * scores.h — per-sample classifier scores, as `clipmod eval --scores-out` writes them and
 * `clipmod report --eval` reads them (docs/report.md). One JSON object per line:
 *   {"key":"000123","url":"shards/val-000.tar","label":3,"pred":3,"probs":[p0,..,p6]}
 * key/url name the WebDataset sample (so the report can re-read its image and caption; "" when
 * the source does not know them); probs are the softmax of the head logits; pred is their
 * argmax (ties -> lower class). Reading checks every line (label in range, same number of
 * probabilities everywhere, finite values in [0,1]) and names file:line at fault; "pred" is
 * recomputed, not trusted.
 * Collected during validation by src/train/val_scores.h.
 * defines: CmScores, cm_scores_*
 */
#ifndef CM_EVAL_SCORES_H
#define CM_EVAL_SCORES_H

#include <stdint.h>
#include "common/common.h"
#include "eval/curves.h"

typedef struct {
    int k;                     /* classes (0 until the first row) */
    int64_t n, cap;
    int32_t *label;            /* [n] */
    float *prob;               /* [n*k] */
    char **key;                /* [n] (malloc'd, "" when unknown) */
    int32_t *url;              /* [n] index into urls */
    char **urls;               /* distinct shard URLs */
    int n_urls, cap_urls;
    char *last_raw, *last_abs;   /* cm_scores_add_abs: the last URL given and its absolute path */
} CmScores;

void cm_scores_init(CmScores *s, int n_classes);
void cm_scores_free(CmScores *s);
/* Append one sample (probs: k values). key/url NULL: "". */
cm_status cm_scores_add(CmScores *s, const char *key, const char *url, int label, const float *probs);
static inline const float *cm_scores_probs(const CmScores *s, int64_t i) { return s->prob + (size_t)i * s->k; }
static inline const char *cm_scores_url(const CmScores *s, int64_t i) { return s->urls[s->url[i]]; }
/* The same, a URL that is a local file recorded as its absolute path (realpath; cached for
   consecutive samples of one shard) so that the report re-reads it from any folder. */
cm_status cm_scores_add_abs(CmScores *s, const char *key, const char *url, int label, const float *probs);
/* Argmax of sample i's probabilities (ties -> lower class, as cm_topk). */
int cm_scores_pred(const CmScores *s, int64_t i);
/* Write atomically as JSON lines. */
cm_status cm_scores_write(const CmScores *s, const char *path);
cm_status cm_scores_read(const char *path, CmScores *out);
/* Top-1/top-2/confusion of the scores (the eval table's numbers). */
cm_status cm_scores_confusion(const CmScores *s, CmConfusion *out);

#endif
