/*
 * report_html.c — the HTML report of a run and/or an evaluation: inputs read here (steps.jsonl,
 * results.jsonl, params.txt, scores), plots drawn as inline SVG, thumbnails re-read from the
 * shards. See report.h and docs/report.md.
 */
#include "eval/report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "clipmod.h"
#include "data/image.h"
#include "data/wds.h"
#include "eval/curves.h"

CmReportOpts cm_report_opts_default(void) {
    CmReportOpts o;
    memset(&o, 0, sizeof o);
    o.title = "clipmod report";
    o.mistakes = 12;
    o.thumb_px = 112;
    return o;
}

// ---------------------------------------------------------------------------------------------
// output buffer

typedef struct { char *s; size_t n, cap; bool oom; int ids; } Buf;   /* ids: unique SVG element ids */

static void bput(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 65536) + n;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = true; return; }
        b->s = ns; b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void bstr(Buf *b, const char *s) { bput(b, s, strlen(s)); }
static void bprintf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(Buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = true; return; }
    if ((size_t)k < sizeof tmp) { bput(b, tmp, (size_t)k); return; }
    char *big = malloc((size_t)k + 1);
    if (!big) { b->oom = true; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    bput(b, big, (size_t)k);
    free(big);
}

size_t cm_html_escape(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (; s && *s; s++) {
        const char *r = NULL;
        switch (*s) {
            case '&': r = "&amp;"; break;
            case '<': r = "&lt;"; break;
            case '>': r = "&gt;"; break;
            case '"': r = "&quot;"; break;
            case '\'': r = "&#39;"; break;
            default: break;
        }
        size_t k = r ? strlen(r) : 1;
        if (cap && n + k < cap) memcpy(out + n, r ? r : s, k);
        else if (cap && n < cap) cap = n + 1;   /* stop writing; keep counting */
        n += k;
    }
    if (cap) out[n < cap ? n : cap - 1] = 0;
    return n;
}

/* escaped text; at most max_bytes of s (cut at a UTF-8 character boundary, "…" added) */
static void besc_n(Buf *b, const char *s, size_t max_bytes) {
    if (!s) return;
    size_t len = strlen(s), cut = len;
    if (len > max_bytes) {
        cut = max_bytes;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        switch (s[i]) {
            case '&': bstr(b, "&amp;"); break;
            case '<': bstr(b, "&lt;"); break;
            case '>': bstr(b, "&gt;"); break;
            case '"': bstr(b, "&quot;"); break;
            case '\'': bstr(b, "&#39;"); break;
            default:
                if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') bstr(b, " ");
                else bput(b, s + i, 1);
        }
    }
    if (cut < len) bstr(b, "\xE2\x80\xA6");
}
static void besc(Buf *b, const char *s) { besc_n(b, s, (size_t)-1); }

static void bnum(Buf *b, double x, int digits) {
    if (!isfinite(x)) bstr(b, "n/a");
    else bprintf(b, "%.*f", digits, x);
}

static const char *class_label(int c, int k, char *buf, size_t n) {
    if (k == CM_NUM_CLASSES && c >= 0 && c < k) snprintf(buf, n, "%d %s", c, CM_CLASS_NAMES[c]);
    else snprintf(buf, n, "class %d", c);
    return buf;
}

static const char *const COLORS[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                     "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_COLORS 10

// ---------------------------------------------------------------------------------------------
// SVG line charts

typedef struct {
    const char *name;
    const double *x, *y;
    int64_t n;
    const char *color;
} Series;

typedef struct {
    double x0, x1, y0, y1;    /* fixed ranges when x1 > x0 / y1 > y0; else from the data */
    bool diagonal;            /* y = x reference (ROC) */
    bool step;                /* draw as steps (PR curves: precision held until the next recall) */
    int legend_w;             /* legend column width (0: none) */
    bool int_x;               /* integer x ticks (epochs, steps) */
} ChartOpts;

static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void tick_label(char *buf, size_t n, double v, double step) {
    if (v == 0) { snprintf(buf, n, "0"); return; }
    double a = fabs(v);
    if (a >= 1e5 || a < 1e-3) snprintf(buf, n, "%.2g", v);
    else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (dec > 6) dec = 6;
        snprintf(buf, n, "%.*f", dec, v);
    }
}

static void svg_chart(Buf *b, const char *title, const char *xlabel, const char *ylabel, const Series *s, int ns,
                      const ChartOpts *o) {
    const int W = 460 + o->legend_w, H = 300, L = 64, R = 16 + o->legend_w, T = 28, Bm = 44;
    const int pw = W - L - R, ph = H - T - Bm;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int64_t total = 0;
    for (int k = 0; k < ns; k++)
        for (int64_t i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
            total++;
        }
    if (o->x1 > o->x0) { x0 = o->x0; x1 = o->x1; }
    if (o->y1 > o->y0) { y0 = o->y0; y1 = o->y1; }
    if (!total && !(o->x1 > o->x0)) { x0 = 0; x1 = 1; }
    if (!total && !(o->y1 > o->y0)) { y0 = 0; y1 = 1; }
    if (x1 <= x0) { x1 = x0 + 1; }
    if (y1 <= y0) { double pad = fabs(y0) > 0 ? fabs(y0) * 0.05 : 0.5; y0 -= pad; y1 += pad; }
    else if (!(o->y1 > o->y0)) { double pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad; }
    double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 5);
    if (o->int_x && xs < 1) xs = 1;
    bprintf(b, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">", W, H, W, H);
    bstr(b, "<title>"); besc(b, title); bstr(b, "</title>");
    bprintf(b, "<text x=\"%d\" y=\"18\" class=\"ct\">", L); besc(b, title); bstr(b, "</text>");
    bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>", L, T, pw, ph);
#define PX(v) (L + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (T + ph - ((v) - y0) / (y1 - y0) * ph)
    char lab[64];
    for (double v = ceil(x0 / xs - 1e-9) * xs; v <= x1 + xs * 1e-9; v += xs) {
        double px = PX(v);
        tick_label(lab, sizeof lab, fabs(v) < xs * 1e-9 ? 0 : v, xs);
        bprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/><text x=\"%.1f\" y=\"%d\" class=\"tk\" text-anchor=\"middle\">%s</text>",
                px, T, px, T + ph, px, T + ph + 14, lab);
    }
    for (double v = ceil(y0 / ys - 1e-9) * ys; v <= y1 + ys * 1e-9; v += ys) {
        double py = PY(v);
        tick_label(lab, sizeof lab, fabs(v) < ys * 1e-9 ? 0 : v, ys);
        bprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/><text x=\"%d\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%s</text>",
                L, py, L + pw, py, L - 5, py + 4, lab);
    }
    bprintf(b, "<text x=\"%d\" y=\"%d\" class=\"al\" text-anchor=\"middle\">", L + pw / 2, H - 8); besc(b, xlabel); bstr(b, "</text>");
    bprintf(b, "<text transform=\"translate(14 %d) rotate(-90)\" class=\"al\" text-anchor=\"middle\">", T + ph / 2); besc(b, ylabel); bstr(b, "</text>");
    if (o->diagonal)
        bprintf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"diag\"/>", PX(fmax(x0, y0)), PY(fmax(x0, y0)), PX(fmin(x1, y1)), PY(fmin(x1, y1)));
    int clip_id = ++b->ids;
    bprintf(b, "<clipPath id=\"clip%d\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath>", clip_id, L, T, pw, ph);
    for (int k = 0; k < ns; k++) {
        if (s[k].n == 0) continue;
        /* at most ~1500 vertices per series: every stride-th point, the last one always */
        int64_t stride = s[k].n > 1500 ? (s[k].n + 1499) / 1500 : 1;
        bprintf(b, "<path clip-path=\"url(#clip%d)\" class=\"ln\" stroke=\"%s\" d=\"", clip_id, s[k].color);
        bool pen = false;
        double prev_y = 0;
        for (int64_t i = 0; i < s[k].n; i++) {
            if (i % stride && i != s[k].n - 1) continue;
            double x = s[k].x[i], y = s[k].y[i];
            if (!isfinite(x) || !isfinite(y)) { pen = false; continue; }
            if (pen && o->step) bprintf(b, "L%.1f %.1f", PX(x), PY(prev_y));
            bprintf(b, "%s%.1f %.1f", pen ? "L" : "M", PX(x), PY(y));
            pen = true;
            prev_y = y;
        }
        if (s[k].n == 1 && isfinite(s[k].x[0]) && isfinite(s[k].y[0]))   /* one point: a dot */
            bprintf(b, "h0.1\"/><circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s", PX(s[k].x[0]), PY(s[k].y[0]), s[k].color);
        bstr(b, "\"/>");
    }
    if (o->legend_w || ns > 1) {
        int lx = W - R + 12, ly = T + 6;
        if (!o->legend_w) { lx = L + 8; ly = T + 8; }
        for (int k = 0; k < ns; k++) {
            bprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/><text x=\"%d\" y=\"%d\" class=\"lg\">",
                    lx, ly + k * 17, lx + 16, ly + k * 17, s[k].color, lx + 21, ly + k * 17 + 4);
            besc(b, s[k].name);
            bstr(b, "</text>");
        }
    }
#undef PX
#undef PY
    bstr(b, "</svg>\n");
}

// ---------------------------------------------------------------------------------------------
// run inputs

typedef struct {
    int64_t n, cap;
    double *step, *loss, *con, *cls, *lr, *ls, *sps, *data_t;
} Steps;

static void steps_free(Steps *s) {
    free(s->step); free(s->loss); free(s->con); free(s->cls); free(s->lr); free(s->ls); free(s->sps); free(s->data_t);
    memset(s, 0, sizeof *s);
}

static bool steps_push(Steps *s) {
    if (s->n < s->cap) return true;
    int64_t nc = s->cap ? s->cap * 2 : 1024;
    double **a[] = {&s->step, &s->loss, &s->con, &s->cls, &s->lr, &s->ls, &s->sps, &s->data_t};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        double *p = realloc(*a[i], sizeof(double) * (size_t)nc);
        if (!p) return false;
        *a[i] = p;
    }
    s->cap = nc;
    return true;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Each line a JSON object; a line that does not parse is skipped (a run killed mid-write leaves
   a cut last line) and counted. Returns lines read, -1 when the file cannot be opened. */
typedef cm_status (*LineFn)(void *ctx, const cJSON *obj);
static int64_t read_jsonl(const char *path, LineFn fn, void *ctx, int64_t *bad, cm_status *st) {
    *bad = 0; *st = CM_OK;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t n = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        if (!cJSON_IsObject(j)) { (*bad)++; cJSON_Delete(j); continue; }
        n++;
        *st = fn(ctx, j);
        cJSON_Delete(j);
        if (*st) break;
    }
    free(line);
    fclose(f);
    return n;
}

static cm_status step_line(void *ctx, const cJSON *o) {
    Steps *s = ctx;
    double step = jnum(o, "step");
    if (!isfinite(step)) return CM_OK;
    /* a resumed run redoes the steps after its checkpoint: the later lines win */
    while (s->n > 0 && s->step[s->n - 1] >= step) s->n--;
    if (!steps_push(s)) return cm_error(CM_ERR_OOM, "report: out of memory for steps");
    int64_t i = s->n++;
    s->step[i] = step; s->loss[i] = jnum(o, "loss"); s->con[i] = jnum(o, "contrastive"); s->cls[i] = jnum(o, "classification");
    s->lr[i] = jnum(o, "lr"); s->ls[i] = jnum(o, "logit_scale"); s->sps[i] = jnum(o, "samples_per_s"); s->data_t[i] = jnum(o, "data_time");
    return CM_OK;
}

typedef struct {
    int n;
    double epoch[1024], top1[1024], top2[1024], f1[1024], val_loss[1024];
    cJSON *last;              /* the last line (per-class numbers, confusion) */
    bool truncated;
} Vals;

static cm_status val_line(void *ctx, const cJSON *o) {
    Vals *v = ctx;
    double e = jnum(o, "epoch");
    if (!isfinite(e)) return CM_OK;
    while (v->n > 0 && v->epoch[v->n - 1] >= e) v->n--;
    if (v->n == 1024) {   /* keep every other point: the curve stays whole */
        for (int i = 0; i < 512; i++) {
            v->epoch[i] = v->epoch[2 * i]; v->top1[i] = v->top1[2 * i]; v->top2[i] = v->top2[2 * i];
            v->f1[i] = v->f1[2 * i]; v->val_loss[i] = v->val_loss[2 * i];
        }
        v->n = 512;
        v->truncated = true;
    }
    int i = v->n++;
    v->epoch[i] = e; v->top1[i] = jnum(o, "top1"); v->top2[i] = jnum(o, "top2"); v->f1[i] = jnum(o, "macro_f1");
    v->val_loss[i] = jnum(o, "val_loss");
    cJSON_Delete(v->last);
    v->last = cJSON_Duplicate(o, true);
    return CM_OK;
}

/* The confusion numbers of a results.jsonl line (its matrix, top-2 from "top2"); false when it
   has no matrix. */
static bool metrics_from_json(const cJSON *o, CmConfusion *m) {
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(o, "confusion");
    int k = cJSON_IsArray(conf) ? cJSON_GetArraySize(conf) : 0;
    if (k < 1 || k > CM_EVAL_MAX_CLASSES) return false;
    cm_confusion_init(m, k);
    for (int i = 0; i < k; i++) {
        const cJSON *row = cJSON_GetArrayItem(conf, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != k) return false;
        for (int j = 0; j < k; j++) {
            const cJSON *c = cJSON_GetArrayItem(row, j);
            if (!cJSON_IsNumber(c) || c->valuedouble < 0) return false;
            m->m[i][j] = (int64_t)c->valuedouble;
            m->n += m->m[i][j];
            if (i == j) m->top1 += m->m[i][j];
        }
    }
    double n = jnum(o, "n"), t2 = jnum(o, "top2");
    m->top2 = isfinite(t2) && isfinite(n) ? (int64_t)llround(t2 * n) : m->top1;
    return true;
}

// ---------------------------------------------------------------------------------------------
// thumbnails: re-read the mistakes from their shards

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static void bbase64(Buf *b, const uint8_t *p, size_t n) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = B64[v >> 18 & 63]; q[1] = B64[v >> 12 & 63];
        q[2] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? B64[v & 63] : '=';
        bput(b, q, 4);
    }
}

typedef struct {
    int64_t row;            /* index into the scores */
    char *thumb_b64;        /* NULL: none */
    char *caption;          /* NULL: none */
    char *why;              /* why the image is missing */
} Mistake;

static char *dup_or_null(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

static void fill_from_sample(Mistake *mk, const CmWdsSample *x, int px) {
    const CmWdsField *tx = cm_wds_field(x, "txt"), *im = cm_wds_image(x);
    if (tx) mk->caption = dup_or_null((const char *)tx->data, tx->size);
    if (!im) { mk->why = strdup("the sample has no image"); return; }
    CmImage pic = {0}, th = {0};
    uint8_t *jpg = NULL;
    size_t jl = 0;
    cm_status st = cm_image_decode(im->data, im->size, x->key, 0, &pic);
    if (!st) st = cm_letterbox(&pic, px, &th);
    if (!st) st = cm_jpeg_encode(&th, 80, &jpg, &jl);
    cm_image_free(&pic);
    cm_image_free(&th);
    if (st) { mk->why = strdup(cm_last_error()); return; }
    Buf b = {0};
    bbase64(&b, jpg, jl);
    free(jpg);
    if (b.oom) { free(b.s); mk->why = strdup("out of memory"); return; }
    mk->thumb_b64 = b.s;
}

/* For every distinct shard among the mistakes, one pass over it picking the keys wanted. */
static void load_thumbs(const CmScores *sc, Mistake *mk, int nm, int px) {
    for (int i = 0; i < nm; i++) {
        if (mk[i].thumb_b64 || mk[i].why) continue;
        int u = sc->url[mk[i].row];
        const char *url = sc->urls[u];
        if (!*url || !*sc->key[mk[i].row]) { mk[i].why = strdup("the scores do not name the sample's shard and key"); continue; }
        CmWdsReader *rd = NULL;
        int left = 0;
        for (int j = i; j < nm; j++) left += sc->url[mk[j].row] == u && !mk[j].thumb_b64 && !mk[j].why;
        if (cm_wds_open(url, true, 0, &rd)) {
            char why[700];
            snprintf(why, sizeof why, "cannot read the shard: %s", cm_last_error());
            for (int j = i; j < nm; j++) if (sc->url[mk[j].row] == u && !mk[j].why) mk[j].why = strdup(why);
            continue;
        }
        CmWdsSample *x = NULL;
        while (left > 0 && cm_wds_next(rd, &x) == 1) {
            for (int j = i; j < nm; j++)
                if (sc->url[mk[j].row] == u && !mk[j].thumb_b64 && !mk[j].why && !strcmp(sc->key[mk[j].row], x->key)) {
                    fill_from_sample(&mk[j], x, px);
                    left--;
                }
            cm_wds_sample_free(x);
        }
        cm_wds_close(rd);
        for (int j = i; j < nm; j++)
            if (sc->url[mk[j].row] == u && !mk[j].thumb_b64 && !mk[j].why) mk[j].why = strdup("key not found in its shard");
    }
}

// ---------------------------------------------------------------------------------------------
// sections

static const char CSS[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}"
    "header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c8cdd8}"
    "nav{padding:8px 28px;background:#e9ecf1;font-size:13px}nav a{margin-right:14px;color:#2456a6;text-decoration:none}"
    "main{padding:8px 28px 40px}section{background:#fff;border:1px solid #dde1e8;border-radius:8px;margin:16px 0;padding:14px 18px}"
    "h2{font-size:17px;margin:0 0 10px}.missing{color:#8a6d3b;background:#fcf8e3;padding:8px 12px;border-radius:6px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{background:#fff}"
    ".plot{fill:#fbfcfd;stroke:#9aa3b2}.grid{stroke:#e3e6eb}.tk{font-size:11px;fill:#5a6270}.al{font-size:12px;fill:#333}"
    ".ct{font-size:13px;font-weight:600;fill:#1d2330}.lg{font-size:11.5px;fill:#333}.ln{fill:none;stroke-width:1.8}"
    ".diag{stroke:#999;stroke-dasharray:4 4}table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "td,th{padding:4px 10px;border-bottom:1px solid #e3e6eb;text-align:right}th{background:#f0f2f5}td:first-child,th:first-child{text-align:left}"
    ".kv td{text-align:left}.cards{display:flex;flex-wrap:wrap;gap:12px}"
    "figure{margin:0;width:230px;border:1px solid #dde1e8;border-radius:6px;padding:8px;background:#fcfcfd}"
    "figure img{display:block;margin:0 auto 6px;border-radius:4px}figcaption{font-size:12px;word-wrap:break-word}"
    ".noimg{width:112px;height:112px;margin:0 auto 6px;background:#eee;color:#888;font-size:11px;display:flex;align-items:center;justify-content:center;text-align:center}"
    ".bad{color:#b02a2a;font-weight:600}.good{color:#2a7a2a;font-weight:600}.cap{font-style:italic;color:#333}.src{color:#777;font-size:11px}"
    "pre{background:#f4f5f7;padding:8px;max-height:300px;overflow:auto;font-size:12px}";

static void section_open(Buf *b, const char *id, const char *title) {
    bprintf(b, "<section id=\"%s\"><h2>", id);
    besc(b, title);
    bstr(b, "</h2>\n");
}
static void missing(Buf *b, const char *why) {
    bstr(b, "<p class=\"missing\">");
    besc(b, why);
    bstr(b, "</p>\n");
}

static void sec_training(Buf *b, const Steps *st, const char *run_dir, const char *steps_why) {
    section_open(b, "sec-loss", "Training loss per step");
    if (!st->n) missing(b, steps_why);
    else {
        Series s[3] = {{"total", st->step, st->loss, st->n, COLORS[0]},
                       {"contrastive", st->step, st->con, st->n, COLORS[1]},
                       {"classification", st->step, st->cls, st->n, COLORS[2]}};
        ChartOpts o = {0};
        o.int_x = true;
        o.legend_w = 130;
        bstr(b, "<div class=\"charts\">");
        svg_chart(b, "loss components", "optimizer step", "loss", s, 3, &o);
        bstr(b, "</div>\n");
    }
    bstr(b, "</section>\n");
    section_open(b, "sec-lr", "Learning rate per step");
    if (!st->n) missing(b, steps_why);
    else {
        Series s = {"lr", st->step, st->lr, st->n, COLORS[4]};
        ChartOpts o = {0};
        o.int_x = true;
        svg_chart(b, "learning rate", "optimizer step", "lr", &s, 1, &o);
    }
    bstr(b, "</section>\n");
    section_open(b, "sec-logit-scale", "Logit scale and throughput per step");
    if (!st->n) missing(b, steps_why);
    else {
        Series s = {"logit scale", st->step, st->ls, st->n, COLORS[3]};
        Series t = {"samples/s", st->step, st->sps, st->n, COLORS[5]};
        ChartOpts o = {0};
        o.int_x = true;
        bstr(b, "<div class=\"charts\">");
        svg_chart(b, "logit scale exp(t)", "optimizer step", "scale", &s, 1, &o);
        svg_chart(b, "throughput", "optimizer step", "samples / s", &t, 1, &o);
        bstr(b, "</div>\n");
    }
    bstr(b, "</section>\n");
    (void)run_dir;
}

static void sec_validation(Buf *b, const Vals *v, const char *why) {
    section_open(b, "sec-validation", "Validation per epoch");
    if (!v->n) { missing(b, why); bstr(b, "</section>\n"); return; }
    Series s[3] = {{"top-1", v->epoch, v->top1, v->n, COLORS[0]},
                   {"top-2", v->epoch, v->top2, v->n, COLORS[1]},
                   {"macro-F1", v->epoch, v->f1, v->n, COLORS[2]}};
    ChartOpts o = {0};
    o.y0 = 0; o.y1 = 1; o.legend_w = 110; o.int_x = true;
    bstr(b, "<div class=\"charts\">");
    svg_chart(b, "validation metrics", "epoch", "score", s, 3, &o);
    Series l = {"val_loss", v->epoch, v->val_loss, v->n, COLORS[3]};
    bool have_loss = false;
    for (int i = 0; i < v->n; i++) have_loss |= isfinite(v->val_loss[i]);
    ChartOpts o2 = {0};
    o2.int_x = true;
    if (have_loss) svg_chart(b, "validation loss", "epoch", "loss", &l, 1, &o2);
    bstr(b, "</div>\n<table><tr><th>epoch</th><th>top-1</th><th>top-2</th><th>macro-F1</th><th>val loss</th></tr>");
    for (int i = 0; i < v->n; i++) {
        bprintf(b, "<tr><td>%.0f</td><td>", v->epoch[i]);
        bnum(b, v->top1[i], 4); bstr(b, "</td><td>"); bnum(b, v->top2[i], 4); bstr(b, "</td><td>");
        bnum(b, v->f1[i], 4); bstr(b, "</td><td>"); bnum(b, v->val_loss[i], 4); bstr(b, "</td></tr>");
    }
    bstr(b, "</table>");
    if (v->truncated) bstr(b, "<p>(over 1024 validations: every other one is shown)</p>");
    bstr(b, "</section>\n");
}

static void heat_color(double f, char *out, size_t n) {
    /* white -> #08519c */
    if (!(f >= 0)) f = 0;
    if (f > 1) f = 1;
    int r = (int)lround(255 + (8 - 255) * f), g = (int)lround(255 + (81 - 255) * f), bl = (int)lround(255 + (156 - 255) * f);
    snprintf(out, n, "rgb(%d,%d,%d)", r, g, bl);
}

static void sec_classes(Buf *b, const CmConfusion *m, const double *ap, const double *auc, const char *src, const char *why) {
    char nm[64];
    section_open(b, "sec-classes", "Per-class precision, recall, F1");
    if (!m) { missing(b, why); bstr(b, "</section>\n"); return; }
    bstr(b, "<p>From "); besc(b, src);
    bprintf(b, ": %lld samples, top-1 %.4f, top-2 %.4f, macro-F1 %.4f.</p>", (long long)m->n, cm_confusion_top1(m),
            cm_confusion_top2(m), cm_confusion_macro_f1(m));
    bstr(b, "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>");
    if (ap) bstr(b, "<th>AP</th><th>ROC AUC</th>");
    bstr(b, "</tr>");
    for (int c = 0; c < m->k; c++) {
        CmPrf s = cm_confusion_class(m, c);
        bstr(b, "<tr><td>"); besc(b, class_label(c, m->k, nm, sizeof nm)); bstr(b, "</td><td>");
        bnum(b, s.precision, 4); bstr(b, "</td><td>"); bnum(b, s.recall, 4); bstr(b, "</td><td>"); bnum(b, s.f1, 4);
        bprintf(b, "</td><td>%lld</td>", (long long)s.support);
        if (ap) { bstr(b, "<td>"); bnum(b, ap[c], 4); bstr(b, "</td><td>"); bnum(b, auc[c], 4); bstr(b, "</td>"); }
        bstr(b, "</tr>");
    }
    bstr(b, "<tr><th>macro</th><th></th><th></th><th>");
    bnum(b, cm_confusion_macro_f1(m), 4);
    bprintf(b, "</th><th>%lld</th>", (long long)m->n);
    if (ap) {
        double sa = 0, su = 0; int na = 0, nu = 0;
        for (int c = 0; c < m->k; c++) { if (isfinite(ap[c])) { sa += ap[c]; na++; } if (isfinite(auc[c])) { su += auc[c]; nu++; } }
        bstr(b, "<th>"); bnum(b, na ? sa / na : NAN, 4); bstr(b, "</th><th>"); bnum(b, nu ? su / nu : NAN, 4); bstr(b, "</th>");
    }
    bstr(b, "</tr></table>");
    if (ap) bstr(b, "<p>AP and AUC are one-vs-rest on the class's probability; n/a where a class has no positive (or no negative) sample; the macro row averages the defined ones.</p>");
    bstr(b, "</section>\n");

    section_open(b, "sec-confusion", "Confusion matrix");
    const int k = m->k, cell = k <= 8 ? 56 : k <= 16 ? 34 : 18, L = 180, T = 30, W = L + k * cell + 120, H = T + k * cell + 130;
    bprintf(b, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>confusion matrix</title>", W, H, W, H);
    bprintf(b, "<text x=\"%d\" y=\"18\" class=\"ct\">rows: true class, columns: predicted (colour: share of the row)</text>", 4);
    for (int i = 0; i < k; i++) {
        int64_t row = 0;
        for (int j = 0; j < k; j++) row += m->m[i][j];
        bprintf(b, "<text x=\"%d\" y=\"%d\" class=\"tk\" text-anchor=\"end\">", L - 6, T + i * cell + cell / 2 + 4);
        besc(b, class_label(i, k, nm, sizeof nm)); bstr(b, "</text>");
        for (int j = 0; j < k; j++) {
            double f = row ? (double)m->m[i][j] / row : 0;
            char col[32];
            heat_color(f, col, sizeof col);
            bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"><title>true %d, predicted %d: %lld (%.1f%%)</title></rect>",
                    L + j * cell, T + i * cell, cell, cell, col, i, j, (long long)m->m[i][j], 100 * f);
            if (cell >= 30)
                bprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" fill=\"%s\">%lld</text>", L + j * cell + cell / 2,
                        T + i * cell + cell / 2 + 4, f > 0.55 ? "#fff" : "#222", (long long)m->m[i][j]);
        }
    }
    for (int j = 0; j < k; j++) {
        int x = L + j * cell + cell / 2, y = T + k * cell + 8;
        bprintf(b, "<text transform=\"translate(%d %d) rotate(40)\" class=\"tk\">", x, y);
        besc(b, class_label(j, k, nm, sizeof nm)); bstr(b, "</text>");
    }
    bprintf(b, "<text x=\"%d\" y=\"%d\" class=\"al\" text-anchor=\"middle\">predicted class</text>", L + k * cell / 2, H - 6);
    bstr(b, "</svg>\n</section>\n");
}

static void sec_curves(Buf *b, const CmScores *sc, CmCurve *pr, CmCurve *roc, const double *ap, const double *auc, const char *why) {
    section_open(b, "sec-pr", "Precision-recall curves (one-vs-rest)");
    if (!sc) missing(b, why);
    else {
        Series s[CM_EVAL_MAX_CLASSES];
        char names[CM_EVAL_MAX_CLASSES][96], nm[64];
        int ns = 0;
        for (int c = 0; c < sc->k; c++) {
            snprintf(names[c], sizeof names[c], "%s  AP %s", class_label(c, sc->k, nm, sizeof nm), "");
            char v[16];
            if (isfinite(ap[c])) snprintf(v, sizeof v, "%.3f", ap[c]); else snprintf(v, sizeof v, "n/a");
            strncat(names[c], v, sizeof names[c] - strlen(names[c]) - 1);
            s[ns++] = (Series){names[c], pr[c].x, pr[c].y, pr[c].pos ? pr[c].n : 0, COLORS[c % N_COLORS]};
        }
        ChartOpts o = {0};
        o.x0 = 0; o.x1 = 1; o.y0 = 0; o.y1 = 1.02; o.step = true; o.legend_w = 260;
        svg_chart(b, "precision vs recall", "recall", "precision", s, ns, &o);
        bstr(b, "<p>AP = &Sigma;<sub>n</sub> (R<sub>n</sub> &minus; R<sub>n&minus;1</sub>) P<sub>n</sub> over the distinct thresholds (scikit-learn's average_precision_score).</p>");
    }
    bstr(b, "</section>\n");
    section_open(b, "sec-roc", "ROC curves (one-vs-rest)");
    if (!sc) missing(b, why);
    else {
        Series s[CM_EVAL_MAX_CLASSES];
        char names[CM_EVAL_MAX_CLASSES][96], nm[64];
        for (int c = 0; c < sc->k; c++) {
            char v[16];
            if (isfinite(auc[c])) snprintf(v, sizeof v, "%.3f", auc[c]); else snprintf(v, sizeof v, "n/a");
            snprintf(names[c], sizeof names[c], "%s  AUC %s", class_label(c, sc->k, nm, sizeof nm), v);
            s[c] = (Series){names[c], roc[c].x, roc[c].y, roc[c].pos && roc[c].neg ? roc[c].n : 0, COLORS[c % N_COLORS]};
        }
        ChartOpts o = {0};
        o.x0 = 0; o.x1 = 1; o.y0 = 0; o.y1 = 1.02; o.diagonal = true; o.legend_w = 260;
        svg_chart(b, "true positive rate vs false positive rate", "false positive rate", "true positive rate", s, sc->k, &o);
        bstr(b, "<p>AUC by trapezoids over the distinct thresholds (ties count &frac12;), as scikit-learn's roc_auc_score.</p>");
    }
    bstr(b, "</section>\n");
}

static void sec_calibration(Buf *b, const CmCalib *cal, const char *why) {
    section_open(b, "sec-calibration", "Calibration (reliability diagram)");
    if (!cal) { missing(b, why); bstr(b, "</section>\n"); return; }
    bprintf(b, "<p>Expected calibration error (15 equal-width bins of the top-1 confidence): <b id=\"ece\">%.4f</b>; mean confidence %.4f, accuracy %.4f.</p>",
            cal->ece, cal->mean_conf, cal->accuracy);
    const int W = 620, H = 320, L = 60, T = 28, pw = 420, ph = 240;
    bprintf(b, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>reliability diagram</title>", W, H, W, H);
    bprintf(b, "<text x=\"%d\" y=\"18\" class=\"ct\">accuracy vs confidence per bin</text>", L);
    bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>", L, T, pw, ph);
    for (int i = 0; i <= 5; i++) {
        double v = i / 5.0;
        bprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/><text x=\"%d\" y=\"%.1f\" class=\"tk\" text-anchor=\"end\">%.1f</text>",
                L, T + ph - v * ph, L + pw, T + ph - v * ph, L - 5, T + ph - v * ph + 4, v);
        bprintf(b, "<text x=\"%.1f\" y=\"%d\" class=\"tk\" text-anchor=\"middle\">%.1f</text>", L + v * pw, T + ph + 14, v);
    }
    double bw = (double)pw / CM_ECE_BINS;
    for (int i = 0; i < CM_ECE_BINS; i++) {
        if (!cal->count[i]) continue;
        double x = L + i * bw, ya = T + ph - cal->acc[i] * ph, yc = T + ph - cal->conf[i] * ph;
        bprintf(b, "<path d=\"M%.1f %.1fH%.1fV%.1fH%.1fZ\" fill=\"#1f77b4\" stroke=\"#fff\"><title>bin %d: %lld samples, accuracy %.3f, confidence %.3f</title></path>",
                x, T + ph + 0.0, x + bw, ya, x, i, (long long)cal->count[i], cal->acc[i], cal->conf[i]);
        bprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\" fill-opacity=\"0.3\" stroke=\"#d62728\"/>",
                x + 1, fmin(ya, yc), bw - 2, fabs(ya - yc));
    }
    bprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"diag\"/>", L, T + ph, L + pw, T);
    bprintf(b, "<text x=\"%d\" y=\"%d\" class=\"al\" text-anchor=\"middle\">top-1 confidence</text>", L + pw / 2, H - 8);
    bprintf(b, "<text transform=\"translate(14 %d) rotate(-90)\" class=\"al\" text-anchor=\"middle\">accuracy</text>", T + ph / 2);
    int lx = L + pw + 14;
    bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"#1f77b4\"/><text x=\"%d\" y=\"%d\" class=\"lg\">accuracy</text>", lx, T + 4, lx + 20, T + 13);
    bprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"10\" fill=\"#d62728\" fill-opacity=\"0.3\" stroke=\"#d62728\"/><text x=\"%d\" y=\"%d\" class=\"lg\">gap to confidence</text>", lx, T + 22, lx + 20, T + 31);
    bstr(b, "</svg>\n<table><tr><th>bin</th><th>samples</th><th>confidence</th><th>accuracy</th></tr>");
    for (int i = 0; i < CM_ECE_BINS; i++) {
        if (!cal->count[i]) continue;
        bprintf(b, "<tr><td>(%.3f, %.3f]</td><td>%lld</td><td>%.4f</td><td>%.4f</td></tr>", (double)i / CM_ECE_BINS,
                (double)(i + 1) / CM_ECE_BINS, (long long)cal->count[i], cal->conf[i], cal->acc[i]);
    }
    bstr(b, "</table></section>\n");
}

typedef struct { int64_t row; float conf; } Cand;
static int by_conf_desc(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->conf != y->conf) return x->conf > y->conf ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static cm_status sec_mistakes(Buf *b, const CmScores *sc, int want, int px, const char *why) {
    section_open(b, "sec-mistakes", "Most confident mistakes");
    if (!sc) { missing(b, why); bstr(b, "</section>\n"); return CM_OK; }
    Cand *c = cm_malloc(sizeof *c * (size_t)(sc->n ? sc->n : 1), "report mistakes");
    if (!c) return CM_ERR_OOM;
    int64_t nc = 0;
    for (int64_t i = 0; i < sc->n; i++) {
        int p = cm_scores_pred(sc, i);
        if (p != sc->label[i]) c[nc++] = (Cand){i, cm_scores_probs(sc, i)[p]};
    }
    qsort(c, (size_t)nc, sizeof *c, by_conf_desc);
    int nm = nc < want ? (int)nc : want;
    if (nc == 0) missing(b, "No mistakes: every sample's top-1 prediction is its label.");
    else if (nm == 0) missing(b, "Mistakes are not listed (--mistakes 0).");
    Mistake *mk = calloc((size_t)(nm ? nm : 1), sizeof *mk);
    if (!mk) { cm_free(c); return cm_error(CM_ERR_OOM, "report: out of memory"); }
    for (int i = 0; i < nm; i++) mk[i].row = c[i].row;
    load_thumbs(sc, mk, nm, px);
    bprintf(b, "<p>%lld of %lld samples are misclassified; the %d with the highest top-1 probability:</p><div class=\"cards\">",
            (long long)nc, (long long)sc->n, nm);
    char nm1[64], nm2[64];
    for (int i = 0; i < nm; i++) {
        int64_t r = mk[i].row;
        int p = cm_scores_pred(sc, r);
        bstr(b, "<figure class=\"mistake\">");
        if (mk[i].thumb_b64) {
            bprintf(b, "<img width=\"%d\" height=\"%d\" alt=\"", px, px);
            besc(b, sc->key[r]);
            bstr(b, "\" src=\"data:image/jpeg;base64,");
            bstr(b, mk[i].thumb_b64);
            bstr(b, "\">");
        } else {
            bstr(b, "<div class=\"noimg\">image unavailable: ");
            besc_n(b, mk[i].why ? mk[i].why : "?", 160);
            bstr(b, "</div>");
        }
        bstr(b, "<figcaption><span class=\"bad\">predicted ");
        besc(b, class_label(p, sc->k, nm1, sizeof nm1));
        bprintf(b, " (p = %.3f)</span><br><span class=\"good\">true ", (double)cm_scores_probs(sc, r)[p]);
        besc(b, class_label(sc->label[r], sc->k, nm2, sizeof nm2));
        bprintf(b, " (p = %.3f)</span><br>", (double)cm_scores_probs(sc, r)[sc->label[r]]);
        if (mk[i].caption) { bstr(b, "<span class=\"cap\">&ldquo;"); besc_n(b, mk[i].caption, 300); bstr(b, "&rdquo;</span><br>"); }
        bstr(b, "<span class=\"src\">key ");
        besc_n(b, sc->key[r], 120);
        bstr(b, " in ");
        besc_n(b, cm_scores_url(sc, r), 200);
        bstr(b, "</span></figcaption></figure>\n");
    }
    bstr(b, "</div></section>\n");
    for (int i = 0; i < nm; i++) { free(mk[i].thumb_b64); free(mk[i].caption); free(mk[i].why); }
    free(mk);
    cm_free(c);
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------

cm_status cm_report_html(const CmReportOpts *o, const char *out_path) {
    cm_status st = CM_OK;
    Buf b = {0};
    Steps steps = {0};
    Vals *vals = calloc(1, sizeof *vals);
    CmScores own = {0};
    const CmScores *sc = o->scores;
    CmCurve pr[CM_EVAL_MAX_CLASSES], roc[CM_EVAL_MAX_CLASSES];
    double ap[CM_EVAL_MAX_CLASSES], auc[CM_EVAL_MAX_CLASSES];
    int ncurves = 0;
    float *score = NULL;
    uint8_t *pos = NULL;
    char *params = NULL;
    CmCalib cal;
    bool have_cal = false;
    if (!vals) return cm_error(CM_ERR_OOM, "report: out of memory");
    if (!o->run_dir && !o->scores && !o->scores_path) { free(vals); return cm_error(CM_ERR_ARG, "report: neither a run folder nor scores given"); }

    /* inputs */
    char steps_why[1400] = "", vals_why[1400] = "", path[1300];
    if (o->run_dir) {
        int64_t bad;
        snprintf(path, sizeof path, "%s/steps.jsonl", o->run_dir);
        int64_t n = read_jsonl(path, step_line, &steps, &bad, &st);
        if (st) goto done;
        if (n < 0) snprintf(steps_why, sizeof steps_why, "No %s (runs before per-step logging, or --logs none).", path);
        else if (!steps.n) snprintf(steps_why, sizeof steps_why, "%s holds no step.", path);
        if (bad) cm_warn("report: %s: %lld unreadable lines skipped", path, (long long)bad);
        snprintf(path, sizeof path, "%s/results.jsonl", o->run_dir);
        n = read_jsonl(path, val_line, vals, &bad, &st);
        if (st) goto done;
        if (n < 0) snprintf(vals_why, sizeof vals_why, "No %s: the run had no --val-data (or no validation yet).", path);
        else if (!vals->n) snprintf(vals_why, sizeof vals_why, "%s holds no validation.", path);
        if (bad) cm_warn("report: %s: %lld unreadable lines skipped", path, (long long)bad);
        snprintf(path, sizeof path, "%s/params.txt", o->run_dir);
        size_t pl;
        if (cm_read_file(path, 1 << 20, (uint8_t **)&params, &pl)) { params = NULL; cm_clear_error(); }
        struct stat sb;
        if (stat(o->run_dir, &sb) || !S_ISDIR(sb.st_mode)) {
            st = cm_error(CM_ERR_IO, "report: run folder %s does not exist", o->run_dir);
            goto done;
        }
    } else {
        snprintf(steps_why, sizeof steps_why, "No run folder given: training curves need RUN_DIR/steps.jsonl.");
        snprintf(vals_why, sizeof vals_why, "No run folder given: validation curves need RUN_DIR/results.jsonl.");
    }
    if (!sc && o->scores_path) {
        if ((st = cm_scores_read(o->scores_path, &own))) goto done;
        sc = &own;
    }
    const char *scores_why = "No per-sample scores: give `clipmod report --eval SCORES` (from `clipmod eval --scores-out SCORES`), "
                             "or train with --report-to html and --val-data.";
    const char *scores_src = o->scores_label ? o->scores_label : o->scores_path ? o->scores_path : "the evaluation";

    /* metrics */
    CmConfusion mt;
    const CmConfusion *mp = NULL;
    const char *msrc = NULL;
    char msrc_buf[200];
    if (sc) {
        if ((st = cm_scores_confusion(sc, &mt))) goto done;
        mp = &mt;
        msrc = scores_src;
        score = cm_malloc(sizeof *score * (size_t)sc->n, "report scores");
        pos = cm_malloc((size_t)sc->n, "report scores");
        if (!score || !pos) { st = CM_ERR_OOM; goto done; }
        for (int c = 0; c < sc->k; c++) {
            for (int64_t i = 0; i < sc->n; i++) { score[i] = cm_scores_probs(sc, i)[c]; pos[i] = sc->label[i] == c; }
            if ((st = cm_pr_curve(score, pos, sc->n, &pr[c]))) goto done;
            if ((st = cm_roc_curve(score, pos, sc->n, &roc[c]))) { cm_curve_free(&pr[c]); goto done; }
            ncurves++;
            ap[c] = cm_curve_ap(&pr[c]);
            auc[c] = cm_curve_auc(&roc[c]);
        }
        for (int64_t i = 0; i < sc->n; i++) {
            int p = cm_scores_pred(sc, i);
            score[i] = cm_scores_probs(sc, i)[p];
            pos[i] = p == sc->label[i];
        }
        if ((st = cm_calibration(score, pos, sc->n, &cal))) goto done;
        have_cal = true;
    } else if (vals->last && metrics_from_json(vals->last, &mt)) {
        mp = &mt;
        snprintf(msrc_buf, sizeof msrc_buf, "the run's last validation (epoch %.0f, results.jsonl)", vals->epoch[vals->n - 1]);
        msrc = msrc_buf;
    }

    /* page */
    bstr(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"><title>");
    besc(&b, o->title ? o->title : "clipmod report");
    bprintf(&b, "</title><style>%s</style></head><body>\n<header><h1>", CSS);
    besc(&b, o->title ? o->title : "clipmod report");
    time_t now = time(NULL);
    struct tm tmv;
    char date[64];
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tmv);
    bprintf(&b, "</h1><p>clipmod %s &middot; generated %s</p></header>\n<nav>", CLIPMOD_VERSION, date);
    static const char *const NAV[][2] = {{"sec-summary", "summary"}, {"sec-loss", "loss"}, {"sec-lr", "LR"},
        {"sec-logit-scale", "logit scale"}, {"sec-validation", "validation"}, {"sec-classes", "per class"},
        {"sec-confusion", "confusion"}, {"sec-pr", "PR"}, {"sec-roc", "ROC"}, {"sec-calibration", "calibration"},
        {"sec-mistakes", "mistakes"}};
    for (size_t i = 0; i < sizeof NAV / sizeof NAV[0]; i++) bprintf(&b, "<a href=\"#%s\">%s</a>", NAV[i][0], NAV[i][1]);
    bstr(&b, "</nav>\n<main>\n");

    section_open(&b, "sec-summary", "Summary");
    bstr(&b, "<table class=\"kv\">");
    bstr(&b, "<tr><td>run folder</td><td>"); besc(&b, o->run_dir ? o->run_dir : "(none)"); bstr(&b, "</td></tr>");
    if (steps.n) bprintf(&b, "<tr><td>optimizer steps logged</td><td>%lld (last: step %.0f)</td></tr>", (long long)steps.n, steps.step[steps.n - 1]);
    if (vals->n) {
        bprintf(&b, "<tr><td>last validation</td><td>epoch %.0f: top-1 ", vals->epoch[vals->n - 1]);
        bnum(&b, vals->top1[vals->n - 1], 4); bstr(&b, ", top-2 "); bnum(&b, vals->top2[vals->n - 1], 4);
        bstr(&b, ", macro-F1 "); bnum(&b, vals->f1[vals->n - 1], 4); bstr(&b, "</td></tr>");
    }
    bstr(&b, "<tr><td>scores</td><td>");
    if (sc) {
        besc(&b, scores_src);
        bprintf(&b, ": %lld samples, %d classes, top-1 %.4f, top-2 %.4f, macro-F1 %.4f, ECE %.4f", (long long)sc->n, sc->k,
                cm_confusion_top1(&mt), cm_confusion_top2(&mt), cm_confusion_macro_f1(&mt), cal.ece);
    } else bstr(&b, "(none)");
    bstr(&b, "</td></tr></table>");
    if (params) { bstr(&b, "<details><summary>params.txt</summary><pre>"); besc(&b, params); bstr(&b, "</pre></details>"); }
    bstr(&b, "</section>\n");

    sec_training(&b, &steps, o->run_dir, steps_why);
    sec_validation(&b, vals, vals_why);
    sec_classes(&b, mp, sc ? ap : NULL, sc ? auc : NULL, msrc, sc ? "" : scores_why);
    if (!mp) {   /* sec_classes wrote sec-classes only: the confusion section still has to exist */
        section_open(&b, "sec-confusion", "Confusion matrix");
        missing(&b, scores_why);
        bstr(&b, "</section>\n");
    }
    sec_curves(&b, sc, pr, roc, ap, auc, scores_why);
    sec_calibration(&b, have_cal ? &cal : NULL, scores_why);
    if ((st = sec_mistakes(&b, sc, o->mistakes, o->thumb_px > 8 ? o->thumb_px : 112, scores_why))) goto done;
    bstr(&b, "</main></body></html>\n");
    if (b.oom) { st = cm_error(CM_ERR_OOM, "report: out of memory"); goto done; }
    st = cm_write_file_atomic(out_path, b.s, b.n);

done:
    for (int c = 0; c < ncurves; c++) { cm_curve_free(&pr[c]); cm_curve_free(&roc[c]); }
    cm_free(score); cm_free(pos); cm_free(params);
    steps_free(&steps);
    cJSON_Delete(vals->last);
    free(vals);
    cm_scores_free(&own);
    free(b.s);
    return st;
}
