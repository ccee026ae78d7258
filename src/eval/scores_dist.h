/*
 * scores_dist.h — per-sample scores of an evaluation split across the ranks of an MPI job
 * (`mpirun -np N clipmod eval --scores-out`, docs/distributed.md): each rank collects its share
 * with the index of every sample's shard in the expanded --val-data list; rank 0 gathers every
 * rank's rows and orders them as one process reads them (validation reads the shards in list
 * order, each shard from its start: order by shard index, then by position in the shard).
 * defines: CmScoresOrder, cm_val_scores_collect_ordered, cm_scores_gather_ordered, cm_scores_order_free
 */
#ifndef CM_EVAL_SCORES_DIST_H
#define CM_EVAL_SCORES_DIST_H

#include <stdint.h>
#include "common/common.h"
#include "eval/scores.h"

struct CmBatchSource;

typedef struct {
    CmScores *s;                 /* the rows (cm_val_scores_collect's) */
    char *const *urls;           /* the expanded --val-data list, as the loader names the shards */
    int n_urls;
    int32_t *shard;              /* [s->n]: index of each row's shard in urls (-1: not found) */
    int64_t cap;
    int last;                    /* cache: the shard index of the previous row */
} CmScoresOrder;

/* A CmValBatchFn (eval/eval.h): ctx is a CmScoresOrder. */
cm_status cm_val_scores_collect_ordered(void *ctx, struct CmBatchSource *src, const float *logits, const int32_t *labels, int n,
                                        int n_classes);
/* Under MPI: every rank's rows go to rank 0, whose o->s then holds all of them in the
   one-process order (rows whose shard is unknown last, in rank order); other ranks keep theirs.
   A group of 1: nothing to do. */
cm_status cm_scores_gather_ordered(CmScoresOrder *o);
void cm_scores_order_free(CmScoresOrder *o);

#endif
