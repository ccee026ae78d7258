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
 * defines: CmCurve, CmCalib, cm_pr_curve, cm_roc_curve, cm_average_precision, cm_roc_auc,
 *          cm_calibration, CM_ECE_BINS
 */
#ifndef CM_EVAL_CURVES_H
#define CM_EVAL_CURVES_H

#include <stdbool.h>
#include <stdint.h>
#include "common/common.h"

#define CM_ECE_BINS 15

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

#endif
