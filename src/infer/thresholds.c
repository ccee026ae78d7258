/*
 * thresholds.c — `--threshold CLASS=P` rules (see thresholds.h).
 */
#include "infer/thresholds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "eval/metrics.h"

/* Case-insensitive, and ' ', '_' and '-' are the same character ("misleading_content"). */
static bool same_name(const char *a, const char *b, size_t len) {
    for (size_t i = 0; i < len; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);
        if (x == '_' || x == '-') x = ' ';
        if (y == '_' || y == '-') y = ' ';
        if (x != y) return false;
    }
    return true;
}

static int class_index(const char *s, size_t len, int n_classes) {
    if (len == 0) return -1;
    bool digits = true;
    for (size_t i = 0; i < len; i++) digits &= isdigit((unsigned char)s[i]) != 0;
    if (digits) {
        if (len > 4) return -1;
        int k = atoi(s);
        return k < n_classes ? k : -1;
    }
    for (int c = 0; c < n_classes; c++) {
        const char *name = cm_class_name(c);
        if (name && strlen(name) == len && same_name(name, s, len)) return c;
    }
    return -1;
}

static void known_classes(char *buf, size_t cap, int n_classes) {
    size_t k = 0;
    buf[0] = 0;
    for (int c = 0; c < n_classes && k < cap; c++) {
        const char *name = cm_class_name(c);
        int w = snprintf(buf + k, cap - k, "%s%s", c ? ", " : "", name ? name : "?");
        if (w < 0) break;
        k += (size_t)w;
    }
}

cm_status cm_thresholds_add(CmThresholds *t, const char *spec, int n_classes) {
    if (!spec || !*spec) return cm_error(CM_ERR_ARG, "--threshold: empty rule (expected CLASS=P, e.g. Hate=0.5)");
    CmThresholds nt = *t;
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) return cm_error(CM_ERR_ARG, "--threshold %s: rule '%.*s' is not CLASS=P (e.g. Hate=0.5)", spec, (int)len, p);
        const char *name = p;
        size_t nlen = (size_t)(eq - p);
        while (nlen && isspace((unsigned char)*name)) { name++; nlen--; }
        while (nlen && isspace((unsigned char)name[nlen - 1])) nlen--;
        int c = class_index(name, nlen, n_classes);
        if (c < 0) {
            char known[512];
            known_classes(known, sizeof known, n_classes);
            return cm_error(CM_ERR_ARG, "--threshold %s: unknown class '%.*s' (a name — %s — or an index 0..%d)", spec,
                            (int)nlen, name, known, n_classes - 1);
        }
        char num[64];
        size_t vlen = (size_t)(p + len - (eq + 1));
        if (vlen == 0 || vlen >= sizeof num)
            return cm_error(CM_ERR_ARG, "--threshold %s: class '%.*s' needs a probability in [0,1] after '='", spec, (int)nlen, name);
        memcpy(num, eq + 1, vlen);
        num[vlen] = 0;
        char *stop;
        errno = 0;
        double v = strtod(num, &stop);
        while (*stop && isspace((unsigned char)*stop)) stop++;
        if (errno || stop == num || *stop || !(v >= 0 && v <= 1))
            return cm_error(CM_ERR_ARG, "--threshold %s: '%s' is not a probability in [0,1]", spec, num);
        for (int i = 0; i < nt.n; i++)
            if (nt.rule[i].cls == c)
                return cm_error(CM_ERR_ARG, "--threshold %s: class %s has two rules (give one per class)", spec,
                                cm_class_name(c) ? cm_class_name(c) : "?");
        if (nt.n >= CM_MAX_THRESHOLDS) return cm_error(CM_ERR_ARG, "--threshold %s: more than %d rules", spec, CM_MAX_THRESHOLDS);
        nt.rule[nt.n++] = (CmThresholdRule){c, (float)v};
        if (!end) break;
        p = end + 1;
    }
    *t = nt;
    return CM_OK;
}

bool cm_thresholds_flagged(const CmThresholds *t, const float *probs, int n_classes, bool *fired) {
    bool any = false;
    for (int i = 0; i < t->n; i++) {
        int c = t->rule[i].cls;
        bool f = c >= 0 && c < n_classes && probs[c] >= t->rule[i].p;
        if (fired) fired[i] = f;
        any |= f;
    }
    return any;
}

int cm_thresholds_json(const CmThresholds *t, const float *probs, int n_classes, char *buf, size_t cap) {
    bool fired[CM_MAX_THRESHOLDS];
    bool any = cm_thresholds_flagged(t, probs, n_classes, fired);
    size_t k = 0;
    int w = snprintf(buf, cap, "\"flagged\":%s,\"flagged_by\":[", any ? "true" : "false");
    if (w < 0) return w;
    k += (size_t)w;
    bool first = true;
    for (int i = 0; i < t->n; i++) {
        if (!fired[i]) continue;
        const char *name = cm_class_name(t->rule[i].cls);
        w = snprintf(k < cap ? buf + k : NULL, k < cap ? cap - k : 0, "%s\"%s\"", first ? "" : ",", name ? name : "?");
        if (w < 0) return w;
        k += (size_t)w;
        first = false;
    }
    w = snprintf(k < cap ? buf + k : NULL, k < cap ? cap - k : 0, "]");
    if (w < 0) return w;
    return (int)(k + (size_t)w);
}
