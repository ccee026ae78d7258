/*
 * curves.c — PR / ROC curves, AP, AUC and ECE as scikit-learn computes them. See curves.h.
 */
#include "eval/curves.h"
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { float s; uint8_t p; } Item;

static int by_score_desc(const void *a, const void *b) {
    float x = ((const Item *)a)->s, y = ((const Item *)b)->s;
    return x > y ? -1 : x < y ? 1 : 0;
}

/* Sorted items and, per distinct score (descending), cumulative true / false positives
   (sklearn's _binary_clf_curve). *nt distinct thresholds. */
static cm_status clf_curve(const float *scores, const uint8_t *positive, int64_t n, const char *what,
                           int64_t **tps, int64_t **fps, double **thr, int64_t *nt) {
    *tps = *fps = NULL; *thr = NULL; *nt = 0;
    if (n < 0) return cm_error(CM_ERR_ARG, "%s: negative sample count", what);
    for (int64_t i = 0; i < n; i++)
        if (isnan(scores[i])) return cm_error(CM_ERR_ARG, "%s: score of sample %lld is NaN", what, (long long)i);
    Item *it = cm_malloc((size_t)(n ? n : 1) * sizeof *it, what);
    int64_t *tp = cm_malloc((size_t)(n ? n : 1) * sizeof *tp, what), *fp = cm_malloc((size_t)(n ? n : 1) * sizeof *fp, what);
    double *th = cm_malloc((size_t)(n ? n : 1) * sizeof *th, what);
    if (!it || !tp || !fp || !th) { cm_free(it); cm_free(tp); cm_free(fp); cm_free(th); return CM_ERR_OOM; }
    for (int64_t i = 0; i < n; i++) { it[i].s = scores[i]; it[i].p = positive[i] != 0; }
    qsort(it, (size_t)n, sizeof *it, by_score_desc);
    int64_t k = 0, ctp = 0, cfp = 0;
    for (int64_t i = 0; i < n; i++) {
        if (it[i].p) ctp++; else cfp++;
        if (i + 1 == n || it[i + 1].s != it[i].s) { tp[k] = ctp; fp[k] = cfp; th[k] = it[i].s; k++; }
    }
    cm_free(it);
    *tps = tp; *fps = fp; *thr = th; *nt = k;
    return CM_OK;
}

void cm_curve_free(CmCurve *c) {
    cm_free(c->x); cm_free(c->y); cm_free(c->thr);
    memset(c, 0, sizeof *c);
}

static cm_status curve_alloc(CmCurve *c, int64_t n, const char *what) {
    c->n = n;
    c->x = cm_malloc((size_t)n * sizeof(double), what);
    c->y = cm_malloc((size_t)n * sizeof(double), what);
    c->thr = cm_malloc((size_t)n * sizeof(double), what);
    if (!c->x || !c->y || !c->thr) { cm_curve_free(c); return CM_ERR_OOM; }
    return CM_OK;
}

cm_status cm_pr_curve(const float *scores, const uint8_t *positive, int64_t n, CmCurve *out) {
    memset(out, 0, sizeof *out);
    int64_t *tp, *fp, nt;
    double *th;
    cm_status st = clf_curve(scores, positive, n, "precision-recall curve", &tp, &fp, &th, &nt);
    if (st) return st;
    if ((st = curve_alloc(out, nt, "precision-recall curve"))) { cm_free(tp); cm_free(fp); cm_free(th); return st; }
    int64_t P = nt ? tp[nt - 1] : 0;
    out->pos = P; out->neg = nt ? fp[nt - 1] : 0;
    for (int64_t i = 0; i < nt; i++) {
        out->x[i] = P ? (double)tp[i] / P : NAN;
        out->y[i] = (double)tp[i] / (double)(tp[i] + fp[i]);   /* >= 1 sample at every threshold */
        out->thr[i] = th[i];
    }
    cm_free(tp); cm_free(fp); cm_free(th);
    return CM_OK;
}

cm_status cm_roc_curve(const float *scores, const uint8_t *positive, int64_t n, CmCurve *out) {
    memset(out, 0, sizeof *out);
    int64_t *tp, *fp, nt;
    double *th;
    cm_status st = clf_curve(scores, positive, n, "ROC curve", &tp, &fp, &th, &nt);
    if (st) return st;
    if ((st = curve_alloc(out, nt + 1, "ROC curve"))) { cm_free(tp); cm_free(fp); cm_free(th); return st; }
    int64_t P = nt ? tp[nt - 1] : 0, N = nt ? fp[nt - 1] : 0;
    out->pos = P; out->neg = N;
    out->x[0] = 0; out->y[0] = 0; out->thr[0] = INFINITY;
    for (int64_t i = 0; i < nt; i++) {
        out->x[i + 1] = N ? (double)fp[i] / N : NAN;
        out->y[i + 1] = P ? (double)tp[i] / P : NAN;
        out->thr[i + 1] = th[i];
    }
    cm_free(tp); cm_free(fp); cm_free(th);
    return CM_OK;
}

double cm_curve_ap(const CmCurve *pr) {
    if (pr->pos == 0) return NAN;
    double ap = 0, prev_r = 0;
    for (int64_t i = 0; i < pr->n; i++) {
        ap += (pr->x[i] - prev_r) * pr->y[i];
        prev_r = pr->x[i];
    }
    return ap;
}

double cm_curve_auc(const CmCurve *roc) {
    if (roc->pos == 0 || roc->neg == 0) return NAN;
    double a = 0;
    for (int64_t i = 1; i < roc->n; i++) a += (roc->x[i] - roc->x[i - 1]) * (roc->y[i] + roc->y[i - 1]) * 0.5;
    return a;
}

double cm_average_precision(const float *scores, const uint8_t *positive, int64_t n) {
    CmCurve c;
    if (cm_pr_curve(scores, positive, n, &c)) return NAN;
    double v = cm_curve_ap(&c);
    cm_curve_free(&c);
    return v;
}

double cm_roc_auc(const float *scores, const uint8_t *positive, int64_t n) {
    CmCurve c;
    if (cm_roc_curve(scores, positive, n, &c)) return NAN;
    double v = cm_curve_auc(&c);
    cm_curve_free(&c);
    return v;
}

cm_status cm_calibration(const float *conf, const uint8_t *correct, int64_t n, CmCalib *out) {
    memset(out, 0, sizeof *out);
    double sc[CM_ECE_BINS] = {0}, sa[CM_ECE_BINS] = {0}, tc = 0, ta = 0;
    for (int64_t i = 0; i < n; i++) {
        double c = conf[i];
        if (!(c >= 0 && c <= 1))
            return cm_error(CM_ERR_ARG, "calibration: confidence %g of sample %lld is outside [0, 1]", c, (long long)i);
        /* bin b holds (b/15, (b+1)/15]; 0 goes to the first bin */
        int b = (int)ceil(c * CM_ECE_BINS) - 1;
        if (b < 0) b = 0;
        if (b >= CM_ECE_BINS) b = CM_ECE_BINS - 1;
        /* guard the rounding of c*15 at bin edges: keep lower < c <= upper as computed in double */
        if (b > 0 && c <= (double)b / CM_ECE_BINS) b--;
        else if (b < CM_ECE_BINS - 1 && c > (double)(b + 1) / CM_ECE_BINS) b++;
        out->count[b]++;
        sc[b] += c; sa[b] += correct[i] ? 1 : 0;
        tc += c; ta += correct[i] ? 1 : 0;
    }
    out->n = n;
    double ece = 0;
    for (int b = 0; b < CM_ECE_BINS; b++) {
        if (!out->count[b]) continue;
        out->conf[b] = sc[b] / out->count[b];
        out->acc[b] = sa[b] / out->count[b];
        ece += (double)out->count[b] / n * fabs(out->acc[b] - out->conf[b]);
    }
    out->ece = n ? ece : NAN;
    out->mean_conf = n ? tc / n : NAN;
    out->accuracy = n ? ta / n : NAN;
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// confusion matrix

void cm_topk_first(const float *row, int K, int k, int *out) { cm_topk(row, K, k, out); }

void cm_confusion_init(CmConfusion *c, int k) {
    memset(c, 0, sizeof *c);
    c->k = k < 1 ? 1 : k > CM_EVAL_MAX_CLASSES ? CM_EVAL_MAX_CLASSES : k;
}

cm_status cm_confusion_add(CmConfusion *c, const float *scores, int label) {
    if (label < 0 || label >= c->k) return cm_error(CM_ERR_ARG, "confusion: label %d is outside 0..%d", label, c->k - 1);
    int top[2] = {0, 0}, kk = c->k >= 2 ? 2 : 1;
    cm_topk_first(scores, c->k, kk, top);
    c->n++;
    c->top1 += top[0] == label;
    c->top2 += top[0] == label || (kk == 2 && top[1] == label);
    c->m[label][top[0]]++;
    return CM_OK;
}

CmPrf cm_confusion_class(const CmConfusion *c, int cls) {
    CmClassStats t = cm_class_stats(&c->m[0][0], CM_EVAL_MAX_CLASSES, c->k, cls);
    return (CmPrf){t.precision, t.recall, t.f1, t.support};
}

double cm_confusion_macro_f1(const CmConfusion *c) {
    double s = 0;
    for (int i = 0; i < c->k; i++) s += cm_confusion_class(c, i).f1;
    return s / c->k;
}
