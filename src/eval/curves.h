/*
 * curves.h — ranking and calibration metrics of a classifier's scores, defined exactly as
 * scikit-learn defines them (docs/report.md), for the HTML report and its tests:
 *   - precision-recall curve and average precision (sklearn precision_recall_curve /
 *     average_precision_score): scores sorted descending, one point per DISTINCT score
 *     (tied scores enter together); AP = sum_n (R_n - R_{n-1}) P_n with R_0 = 0 — no
 *     interpolation. Undefined (NaN) when there is no positive.
 *   - ROC curve and AUC (sklearn roc_curve / roc_auc_score): (FPR, TPR) at each distinct
 *     threshold, starting at (0,0); AUC by trapezoids, so ties count 1/2 (the Mann-Whitney U
 *     statistic / (P N)). Undefined (NaN) without both a positive and a negative.
 *   - expected calibration error on the top-1 confidence: 15 equal-width bins
 *     (i/15, (i+1)/15] (the first also takes 0); ECE = sum_b (n_b / N) |acc_b - conf_b|.
 * One-vs-rest per class: scores = the class's probability, positive = (label == class).
 * Also the confusion-matrix numbers of the report (top-1 / top-2, per-class precision / recall /
 * F1 with zero_division = 0, macro-F1 = unweighted mean over classes), the same definitions as
 * src/eval/metrics.c, whose class statistics and top-k they use (test_eval_curves checks that they agree).
 * defines: CmCurve, CmCalib, CmConfusion, CmPrf, cm_pr_curve, cm_roc_curve, cm_average_precision,
 *          cm_roc_auc, cm_calibration, cm_confusion_*, cm_topk_first, CM_ECE_BINS, CM_EVAL_MAX_CLASSES
 */
#ifndef CM_EVAL_CURVES_H
#define CM_EVAL_CURVES_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"

#define CM_ECE_BINS 15
#define CM_EVAL_MAX_CLASSES 64

/* A curve of n points (x[i], y[i]) and the threshold each point is taken at. PR: x = recall,
   y = precision, ordered by decreasing threshold (recall rising). ROC: x = FPR, y = TPR, first
   point (0,0) with threshold +inf. cm_free(x), (y), (thr) via cm_curve_free. */
typedef struct {
    int64_t n;
    double *x, *y, *thr;
    int64_t pos, neg;        /* positives / negatives counted */
} CmCurve;

/* scores[n], positive[n] (nonzero = positive). NaN scores are an error naming the index. */
cm_status cm_pr_curve(const float *scores, const uint8_t *positive, int64_t n, CmCurve *out);
cm_status cm_roc_curve(const float *scores, const uint8_t *positive, int64_t n, CmCurve *out);
void cm_curve_free(CmCurve *c);
/* From a curve made above: AP from a PR curve, AUC from a ROC curve (NaN when undefined). */
double cm_curve_ap(const CmCurve *pr);
double cm_curve_auc(const CmCurve *roc);
/* Convenience: the curve, then its number (NaN also on error; message set). */
double cm_average_precision(const float *scores, const uint8_t *positive, int64_t n);
double cm_roc_auc(const float *scores, const uint8_t *positive, int64_t n);

typedef struct {
    int64_t n;                          /* samples */
    int64_t count[CM_ECE_BINS];         /* per bin */
    double conf[CM_ECE_BINS];           /* mean confidence per bin (0 when empty) */
    double acc[CM_ECE_BINS];            /* accuracy per bin (0 when empty) */
    double ece;                         /* NaN when n == 0 */
    double mean_conf, accuracy;         /* over all samples */
} CmCalib;

/* conf[n]: top-1 probability in [0,1]; correct[n]: top-1 prediction == label. Out-of-range or
   NaN confidences are an error naming the index. */
cm_status cm_calibration(const float *conf, const uint8_t *correct, int64_t n, CmCalib *out);

/* Top-k indices of row[K] (k <= K), best first; ties -> lower index; NaN never beats a number
   (cm_topk's rule). */
void cm_topk_first(const float *row, int K, int k, int *out);

typedef struct {
    int k;                                                  /* classes */
    int64_t n, top1, top2;                                  /* samples, correct counts */
    int64_t m[CM_EVAL_MAX_CLASSES][CM_EVAL_MAX_CLASSES];    /* [true][predicted top-1] */
} CmConfusion;

typedef struct { double precision, recall, f1; int64_t support; } CmPrf;

void cm_confusion_init(CmConfusion *c, int k);
/* One sample: its scores[k] and label (0..k-1, else an error). */
cm_status cm_confusion_add(CmConfusion *c, const float *scores, int label);
CmPrf cm_confusion_class(const CmConfusion *c, int cls);
double cm_confusion_macro_f1(const CmConfusion *c);
static inline double cm_confusion_top1(const CmConfusion *c) { return c->n ? (double)c->top1 / c->n : 0.0; }
static inline double cm_confusion_top2(const CmConfusion *c) { return c->n ? (double)c->top2 / c->n : 0.0; }

#endif
