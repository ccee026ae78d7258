/*
 * predict_out.c — see predict_out.h.
 */
#include "cli/predict_out.h"
#include "model/infer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "eval/metrics.h"

const char *pred_class_name(int c, int C, char *buf, size_t n) {
    const char *nm = C == CM_N_CLASSES ? cm_class_name(c) : NULL;
    if (nm) return nm;
    snprintf(buf, n, "class_%d", c);
    return buf;
}

int pred_softmax(const float *h, int C, double *p) { return cm_class_probs(h, C, p, NULL); }

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* RFC 4180: quote when the field has a comma, quote, CR or LF (quotes doubled). */
static void csv_str(FILE *f, const char *s) {
    s = s ? s : "";
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
    fputc('"', f);
}

cm_status pred_out_open(PredOut *o, PredMode mode, PredFormat fmt, int C, const char *path, const CmThresholds *thr) {
    memset(o, 0, sizeof *o);
    o->mode = mode;
    o->format = fmt;
    o->n_classes = C;
    o->thr = thr && thr->n > 0 ? thr : NULL;
    if (path && strcmp(path, "-")) {
        cm_status st = cm_atomic_open(&o->af, path);
        if (st) return st;
        o->f = o->af.f;
        o->to_file = true;
    } else {
        o->f = stdout;
    }
    if (fmt == PRED_CSV) {
        FILE *f = o->f;
        if (mode == PRED_SHARDS) fputs("key,shard,", f);
        else if (mode == PRED_IMAGES) fputs("file,", f);
        else fputs("image,text,", f);
        fputs("label,class", f);
        if (o->thr) fputs(",flagged", f);
        for (int c = 0; c < C; c++) {
            char b[32], col[96];
            snprintf(col, sizeof col, "p_%s", pred_class_name(c, C, b, sizeof b));
            fputc(',', f);
            csv_str(f, col);
        }
        if (mode == PRED_PAIRS) fputs(",error", f);
        fputc('\n', f);
    }
    return CM_OK;
}

cm_status pred_out_row(PredOut *o, const PredRow *r) {
    FILE *f = o->f;
    int C = o->n_classes;
    double p[4096];
    int top = r->logits ? pred_softmax(r->logits, C < 4096 ? C : 4096, p) : -1;
    char nb[32];
    const char *label = top >= 0 ? pred_class_name(top, C, nb, sizeof nb) : "";
    float pf[4096];
    bool flagged = false;
    char dec[1024] = "";
    if (o->thr && top >= 0) {   /* the rules read the probabilities as printed */
        for (int c = 0; c < C && c < 4096; c++) pf[c] = (float)p[c];
        flagged = cm_thresholds_flagged(o->thr, pf, C, NULL);
        cm_thresholds_json(o->thr, pf, C, dec, sizeof dec);
    }
    if (o->format == PRED_JSONL) {
        if (!r->logits) {
            fputs("{\"error\":", f);
            json_str(f, r->error ? r->error : "failed");
            fputs("}\n", f);
        } else {
            fputc('{', f);
            if (o->mode == PRED_SHARDS) { fputs("\"key\":", f); json_str(f, r->key); fputs(",\"shard\":", f); json_str(f, r->shard); fputc(',', f); }
            else if (o->mode == PRED_IMAGES) { fputs("\"file\":", f); json_str(f, r->file); fputc(',', f); }
            fputs("\"label\":", f);
            json_str(f, label);
            fprintf(f, ",\"class\":%d,", top);
            if (dec[0]) fprintf(f, "%s,", dec);
            fputs("\"probs\":[", f);
            for (int c = 0; c < C; c++) fprintf(f, "%s%.7g", c ? "," : "", p[c]);
            fputs("]}\n", f);
        }
    } else {
        if (o->mode == PRED_SHARDS) { csv_str(f, r->key); fputc(',', f); csv_str(f, r->shard); fputc(',', f); }
        else if (o->mode == PRED_IMAGES) { csv_str(f, r->file); fputc(',', f); }
        else { csv_str(f, r->image); fputc(',', f); csv_str(f, r->text); fputc(',', f); }
        csv_str(f, label);
        if (top >= 0) fprintf(f, ",%d", top); else fputc(',', f);
        if (o->thr) { if (top >= 0) fprintf(f, ",%d", flagged ? 1 : 0); else fputc(',', f); }
        for (int c = 0; c < C; c++) { if (top >= 0) fprintf(f, ",%.7g", p[c]); else fputc(',', f); }
        if (o->mode == PRED_PAIRS) { fputc(',', f); csv_str(f, r->logits ? "" : (r->error ? r->error : "failed")); }
        fputc('\n', f);
    }
    o->rows++;
    if (ferror(f)) return cm_error(CM_ERR_IO, "%s: write failed: %s", o->to_file ? o->af.path : "stdout", strerror(errno));
    return CM_OK;
}

cm_status pred_out_flush(PredOut *o) {
    if (fflush(o->f) != 0) return cm_error(CM_ERR_IO, "%s: write failed: %s", o->to_file ? o->af.path : "stdout", strerror(errno));
    return CM_OK;
}

cm_status pred_out_close(PredOut *o, bool ok) {
    cm_status st = CM_OK;
    if (o->to_file) {
        if (ok) st = cm_atomic_commit(&o->af);
        else cm_atomic_abort(&o->af);
        o->to_file = false;
    } else if (fflush(stdout) != 0) {
        st = cm_error(CM_ERR_IO, "stdout: write failed: %s", strerror(errno));
    }
    o->f = NULL;
    return st;
}

// ---------------------------------------------------------------------------------------------
// progress

static void fmt_dur(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) { snprintf(b, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60) snprintf(b, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(b, n, "%lds", t);
}

static void progress_line(Progress *p, int64_t done, int64_t bad, char *b, size_t n) {
    double el = cm_now() - p->t0, rate = el > 0 ? done / el : 0;
    char eta[32], ela[32];
    fmt_dur(ela, sizeof ela, el);
    size_t k;
    if (p->total > 0) {
        fmt_dur(eta, sizeof eta, rate > 0 ? (p->total - done - bad) / rate : -1);
        k = (size_t)snprintf(b, n, "predict: %lld/%lld samples (%.0f%%)  %.1f samples/s  elapsed %s  ETA %s", (long long)(done + bad),
                             (long long)p->total, 100.0 * (double)(done + bad) / (double)p->total, rate, ela, eta);
    } else {
        k = (size_t)snprintf(b, n, "predict: %lld samples  %.1f samples/s  elapsed %s", (long long)done, rate, ela);
    }
    if (bad && k < n) snprintf(b + k, n - k, "  (%lld bad)", (long long)bad);
}

void progress_start(Progress *p, bool enabled, int64_t total) {
    memset(p, 0, sizeof *p);
    p->enabled = enabled;
    p->tty = isatty(2);
    p->t0 = cm_now();
    p->last = -1e9;   /* the first update shows at once */
    p->every_s = p->tty ? 0.2 : 10.0;
    p->total = total;
}

void progress_update(Progress *p, int64_t done, int64_t bad) {
    if (!p->enabled) return;
    double now = cm_now();
    if (now - p->last < p->every_s) return;
    p->last = now;
    char b[256];
    progress_line(p, done, bad, b, sizeof b);
    if (p->tty) {
        /* the cursor goes back to column 0, so a warning printed meanwhile starts on a clean
           line start ("\033[K" clears the rest of the line) */
        fprintf(stderr, "\r%s\033[K\r", b);
        p->last_len = (int)strlen(b);
    } else {
        fprintf(stderr, "%s\n", b);
    }
    fflush(stderr);
}

void progress_clear(Progress *p) {
    if (p->enabled && p->tty && p->last_len) { fputs("\r\033[K", stderr); p->last_len = 0; }
}

void progress_done(Progress *p, int64_t done, int64_t bad) {
    if (!p->enabled) return;
    progress_clear(p);
    double el = cm_now() - p->t0;
    char ela[32];
    fmt_dur(ela, sizeof ela, el);
    fprintf(stderr, "predict: done: %lld samples scored, %lld bad skipped, in %s (%.1f samples/s)\n", (long long)done, (long long)bad, ela,
            el > 0 ? done / el : 0.0);
    fflush(stderr);
}
