/*
 * metrics.c — top-k accuracy, confusion matrix, per-class P/R/F1, the eval JSON. See metrics.h.
 */
#include "eval/metrics.h"
#include "dist/dist.h"
#include "data/wds.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cm_class_name(int c) { return c >= 0 && c < CM_N_CLASSES ? CM_CLASS_NAMES[c] : NULL; }

void cm_metrics_init(CmMetrics *m, int n_classes) {
    memset(m, 0, sizeof *m);
    m->k = n_classes < 1 ? 1 : (n_classes > CM_MAX_CLASSES ? CM_MAX_CLASSES : n_classes);
}

void cm_topk(const float *row, int K, int k, int *out) {
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int c = 0; c < K; c++) {
            bool taken = false;
            for (int t = 0; t < j; t++) taken |= out[t] == c;
            if (taken) continue;
            /* NaN never wins over a number; among equals the lower index stays */
            if (best < 0 || row[c] > row[best] || (isnan(row[best]) && !isnan(row[c]))) best = c;
        }
        out[j] = best;
    }
}

cm_status cm_metrics_add(CmMetrics *m, const float *logits, const int32_t *labels, int B) {
    for (int i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= m->k)
            return cm_error(CM_ERR_ARG, "metrics: label %d of sample %d is outside 0..%d", (int)labels[i], i, m->k - 1);
    for (int i = 0; i < B; i++) {
        int top[2] = {0, 0};
        int kk = m->k >= 2 ? 2 : 1;
        cm_topk(logits + (size_t)i * m->k, m->k, kk, top);
        int y = labels[i];
        m->n++;
        if (top[0] == y) m->top1++;
        if (top[0] == y || (kk == 2 && top[1] == y)) m->top2++;
        m->confusion[y][top[0]]++;
    }
    return CM_OK;
}

void cm_metrics_add_clip_loss(CmMetrics *m, double loss, int B) { m->clip_loss_sum += loss * B; m->clip_loss_n += B; }
void cm_metrics_add_loss(CmMetrics *m, double loss, int B) { m->loss_sum += loss * B; m->loss_n += B; }

void cm_metrics_merge(CmMetrics *a, const CmMetrics *b) {
    a->n += b->n; a->top1 += b->top1; a->top2 += b->top2;
    for (int i = 0; i < a->k; i++)
        for (int j = 0; j < a->k; j++) a->confusion[i][j] += b->confusion[i][j];
    a->clip_loss_sum += b->clip_loss_sum; a->clip_loss_n += b->clip_loss_n;
    a->loss_sum += b->loss_sum; a->loss_n += b->loss_n;
}

cm_status cm_metrics_allreduce(CmMetrics *m) {
    if (!cm_dist_active()) return CM_OK;
    int64_t c[3 + CM_MAX_CLASSES * CM_MAX_CLASSES + 2];
    double d[2] = {m->clip_loss_sum, m->loss_sum};
    c[0] = m->n; c[1] = m->top1; c[2] = m->top2;
    memcpy(c + 3, m->confusion, sizeof m->confusion);
    c[3 + CM_MAX_CLASSES * CM_MAX_CLASSES] = m->clip_loss_n;
    c[4 + CM_MAX_CLASSES * CM_MAX_CLASSES] = m->loss_n;
    cm_status st = cm_dist_allreduce_i64(c, sizeof c / sizeof c[0]);
    if (!st) st = cm_dist_allreduce_f64(d, 2);
    if (st) return st;
    m->n = c[0]; m->top1 = c[1]; m->top2 = c[2];
    memcpy(m->confusion, c + 3, sizeof m->confusion);
    m->clip_loss_n = c[3 + CM_MAX_CLASSES * CM_MAX_CLASSES];
    m->loss_n = c[4 + CM_MAX_CLASSES * CM_MAX_CLASSES];
    m->clip_loss_sum = d[0];
    m->loss_sum = d[1];
    return CM_OK;
}

double cm_metrics_top1(const CmMetrics *m) { return m->n ? (double)m->top1 / m->n : 0.0; }
double cm_metrics_top2(const CmMetrics *m) { return m->n ? (double)m->top2 / m->n : 0.0; }

CmClassStats cm_class_stats(const int64_t *conf, int stride, int k, int c) {
    CmClassStats s = {0, 0, 0, 0};
    int64_t tp = conf[(size_t)c * stride + c], pred = 0, sup = 0;
    for (int i = 0; i < k; i++) { pred += conf[(size_t)i * stride + c]; sup += conf[(size_t)c * stride + i]; }
    s.support = sup;
    s.precision = pred ? (double)tp / pred : 0.0;
    s.recall = sup ? (double)tp / sup : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    return s;
}

CmClassStats cm_metrics_class(const CmMetrics *m, int c) { return cm_class_stats(&m->confusion[0][0], CM_MAX_CLASSES, m->k, c); }

double cm_metrics_macro_f1(const CmMetrics *m) {
    double s = 0;
    for (int c = 0; c < m->k; c++) s += cm_metrics_class(m, c).f1;
    return s / m->k;
}

/* growable string */
typedef struct { char *s; size_t n, cap; bool oom; } Buf;
static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = true; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 1024) + (size_t)k;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = true; return; }
        b->s = ns; b->cap = nc;
    }
}

/* JSON number: finite values with enough digits to round-trip a double; null otherwise */
static void bnum(Buf *b, double x) {
    if (!isfinite(x)) { bprintf(b, "null"); return; }
    bprintf(b, "%.10g", x);
}

char *cm_metrics_json(const CmMetrics *m, const char *extra_json) {
    Buf b = {0};
    bprintf(&b, "{");
    if (extra_json && *extra_json) bprintf(&b, "%s,", extra_json);
    bprintf(&b, "\"n\":%lld,\"top1\":", (long long)m->n);
    bnum(&b, cm_metrics_top1(m));
    bprintf(&b, ",\"top2\":");
    bnum(&b, cm_metrics_top2(m));
    if (m->clip_loss_n) { bprintf(&b, ",\"clip_val_loss\":"); bnum(&b, m->clip_loss_sum / m->clip_loss_n); }
    if (m->loss_n) { bprintf(&b, ",\"val_loss\":"); bnum(&b, m->loss_sum / m->loss_n); }
    bprintf(&b, ",\"macro_f1\":");
    bnum(&b, cm_metrics_macro_f1(m));
    bprintf(&b, ",\"per_class\":[");
    for (int c = 0; c < m->k; c++) {
        CmClassStats s = cm_metrics_class(m, c);
        bprintf(&b, "%s{\"class\":%d,", c ? "," : "", c);
        if (cm_class_name(c) && m->k == CM_N_CLASSES) bprintf(&b, "\"name\":\"%s\",", cm_class_name(c));
        bprintf(&b, "\"precision\":"); bnum(&b, s.precision);
        bprintf(&b, ",\"recall\":"); bnum(&b, s.recall);
        bprintf(&b, ",\"f1\":"); bnum(&b, s.f1);
        bprintf(&b, ",\"support\":%lld}", (long long)s.support);
    }
    bprintf(&b, "],\"confusion\":[");
    for (int i = 0; i < m->k; i++) {
        bprintf(&b, "%s[", i ? "," : "");
        for (int j = 0; j < m->k; j++) bprintf(&b, "%s%lld", j ? "," : "", (long long)m->confusion[i][j]);
        bprintf(&b, "]");
    }
    bprintf(&b, "]}");
    if (b.oom) { free(b.s); cm_error(CM_ERR_OOM, "metrics JSON: out of memory"); return NULL; }
    /* hand back cm_malloc'd memory so that callers use cm_free consistently */
    char *out = cm_malloc(b.n + 1, "metrics JSON");
    if (out) memcpy(out, b.s, b.n + 1);
    free(b.s);
    return out;
}

void cm_metrics_print(const CmMetrics *m, FILE *f) {
    fprintf(f, "samples: %lld   top-1: %.4f   top-2: %.4f   macro-F1: %.4f\n", (long long)m->n,
            cm_metrics_top1(m), cm_metrics_top2(m), cm_metrics_macro_f1(m));
    if (m->clip_loss_n) fprintf(f, "clip_val_loss: %.6f\n", m->clip_loss_sum / m->clip_loss_n);
    fprintf(f, "\n%-3s %-22s %9s %9s %9s %9s\n", "id", "class", "precision", "recall", "f1", "support");
    for (int c = 0; c < m->k; c++) {
        CmClassStats s = cm_metrics_class(m, c);
        fprintf(f, "%-3d %-22s %9.4f %9.4f %9.4f %9lld\n", c, cm_class_name(c) && m->k == CM_N_CLASSES ? cm_class_name(c) : "",
                s.precision, s.recall, s.f1, (long long)s.support);
    }
    fprintf(f, "\nconfusion (rows: true class, columns: predicted)\n     ");
    for (int j = 0; j < m->k; j++) fprintf(f, " %7d", j);
    fprintf(f, "\n");
    for (int i = 0; i < m->k; i++) {
        fprintf(f, "%4d ", i);
        for (int j = 0; j < m->k; j++) fprintf(f, " %7lld", (long long)m->confusion[i][j]);
        fprintf(f, "\n");
    }
}

cm_status cm_append_line(const char *path, const char *line) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return cm_error(CM_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    size_t n = strlen(line);
    char *buf = cm_malloc(n + 2, "results line");
    if (!buf) { close(fd); return CM_ERR_OOM; }
    memcpy(buf, line, n);
    buf[n] = '\n';
    /* one write() of the whole line: O_APPEND keeps concurrent appends from interleaving */
    ssize_t w = write(fd, buf, n + 1);
    int err = errno;
    cm_free(buf);
    if (w != (ssize_t)(n + 1)) { close(fd); return cm_error(CM_ERR_IO, "%s: write failed: %s", path, strerror(err)); }
    fsync(fd);
    if (close(fd)) return cm_error(CM_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return CM_OK;
}
