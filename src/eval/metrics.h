/*
 * metrics.h — classification metrics shared by validation, `clipmod eval` and the demo:
 * top-1 / top-2 accuracy, confusion matrix (rows = true class, columns = predicted top-1),
 * per-class precision / recall / F1 / support, the CLIP validation loss average, and the eval
 * JSON of DESIGN §7:
 *   {"n":..,"top1":..,"top2":..,"per_class":[{"class":..,"name":..,"precision":..,"recall":..,
 *    "f1":..,"support":..}],"confusion":[[..]]}
 * Ties in the logits rank the lower class index first (a stable, deterministic top-k).
 * Precision/recall/F1 of a class with no predictions / no support are 0 (sklearn's
 * zero_division=0 convention).
 * defines: CmMetrics, cm_metrics_*, cm_class_name, CM_N_CLASSES
 */
#ifndef CM_EVAL_METRICS_H
#define CM_EVAL_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"

#define CM_N_CLASSES 7
#define CM_MAX_CLASSES 64

/* The seed project's class names (src/data/wds.h CM_CLASS_NAMES): 0 "True" .. 6 "Hate"; NULL outside. */
const char *cm_class_name(int c);

typedef struct {
    int k;                                  /* number of classes */
    int64_t n;                              /* samples counted */
    int64_t top1, top2;                     /* correct counts */
    int64_t confusion[CM_MAX_CLASSES][CM_MAX_CLASSES];   /* [true][pred] */
    double clip_loss_sum;                   /* sum of batch CLIP loss * batch size */
    int64_t clip_loss_n;
    double loss_sum;                        /* sum of total loss * batch size (optional) */
    int64_t loss_n;
} CmMetrics;

typedef struct {
    double precision, recall, f1;
    int64_t support;
} CmClassStats;

void cm_metrics_init(CmMetrics *m, int n_classes);
/* Add a batch: logits[B,K] (or probabilities), labels[B] in 0..K-1. A label outside is an error
   naming the sample index. */
cm_status cm_metrics_add(CmMetrics *m, const float *logits, const int32_t *labels, int B);
/* Add one batch's CLIP validation loss (weighted by its size, as OpenCLIP's clip_val_loss). */
void cm_metrics_add_clip_loss(CmMetrics *m, double loss, int B);
void cm_metrics_add_loss(CmMetrics *m, double loss, int B);
/* Sum the counts of every rank of the data-parallel group into m (a no-op for one process). */
cm_status cm_metrics_allreduce(CmMetrics *m);
/* Merge b into a (same class count). */
void cm_metrics_merge(CmMetrics *a, const CmMetrics *b);
/* Top-k indices of one row (k <= K), best first; ties -> lower index first. */
void cm_topk(const float *row, int K, int k, int *out);
double cm_metrics_top1(const CmMetrics *m);
double cm_metrics_top2(const CmMetrics *m);
CmClassStats cm_metrics_class(const CmMetrics *m, int c);
/* The same statistics from any confusion matrix conf[true][pred] with row stride `stride`, k classes
   (precision/recall/F1 with zero_division = 0, support = true count). */
CmClassStats cm_class_stats(const int64_t *conf, int stride, int k, int c);
double cm_metrics_macro_f1(const CmMetrics *m);

/* The eval JSON object of DESIGN §7 (one line, no trailing newline); cm_malloc'd, cm_free it.
   extra_json: NULL or `"key":value,...` fields inserted first (e.g. epoch, clip_val_loss). */
char *cm_metrics_json(const CmMetrics *m, const char *extra_json);
/* A human-readable table (top-k, per-class rows, confusion matrix) on f. */
void cm_metrics_print(const CmMetrics *m, FILE *f);
/* Append one line (json + "\n") to path, creating it; flushed and fsynced. */
cm_status cm_append_line(const char *path, const char *line);

#endif
