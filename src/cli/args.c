/*
 * args.c — see args.h.
 */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/common.h"
#include "model/model.h"

bool args_man_mode = false;

/* s as roff text: backslashes and '-' escaped, a leading '.' or '\'' guarded */
static void roff(const char *s) {
    if (*s == '.' || *s == '\'') fputs("\\&", stdout);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", stdout);
        else if (*s == '-') fputs("\\-", stdout);
        else putchar(*s);
    }
}

static void man_usage(const ArgSpec *specs, int n, const char *cmd, const char *synopsis) {
    printf(".SS \"clipmod %s\"\n.B clipmod %s\n", cmd, cmd);
    roff(synopsis ? synopsis : "[options]");
    printf("\n.RS\n");
    for (int i = 0; i < n; i++) {
        if (specs[i].metavar) {             /* .BI: bold name and space, italic metavar */
            printf(".TP\n.BI \"");
            roff(specs[i].name);
            printf(" \" \"");
            roff(specs[i].metavar);
            printf("\"\n");
        } else {
            printf(".TP\n.B ");
            roff(specs[i].name);
            printf("\n");
        }
        roff(specs[i].help ? specs[i].help : "");
        printf("\n");
    }
    printf(".RE\n");
}

void args_usage(const ArgSpec *specs, int n, const char *cmd, const char *synopsis) {
    if (args_man_mode) { man_usage(specs, n, cmd, synopsis); return; }
    printf("usage: clipmod %s %s\n\noptions:\n", cmd, synopsis ? synopsis : "[options]");
    for (int i = 0; i < n; i++) {
        char left[96];
        snprintf(left, sizeof left, "%s%s%s", specs[i].name, specs[i].metavar ? " " : "",
                 specs[i].metavar ? specs[i].metavar : "");
        const char *h = specs[i].help ? specs[i].help : "";
        if (specs[i].refuse) printf("  %-34s %s [refused: %s]\n", left, h, specs[i].refuse);
        else if (specs[i].noeffect) printf("  %-34s %s [no effect here: %s]\n", left, h, specs[i].noeffect);
        else printf("  %-34s %s\n", left, h);
    }
    printf("  %-34s %s\n", "--help", "show this help");
}

static int list_push(ArgList *l, const char *s) {
    const char **nv = realloc(l->v, sizeof(*nv) * (l->n + 1));
    if (!nv) return -1;
    l->v = nv;
    l->v[l->n++] = s;
    return 0;
}

void args_free(ArgList *l) { free(l->v); l->v = NULL; l->n = 0; }

bool args_check_model_name(const char *val, char *why, size_t n) {
    CmModelConfig cfg;
    if (cm_config_load(val, &cfg) == CM_OK) return true;
    snprintf(why, n, "%s", cm_last_error());
    return false;
}

static void fmt_num(double x, char *b, size_t n) {
    if (isinf(x)) snprintf(b, n, x < 0 ? "-inf" : "inf");
    else snprintf(b, n, "%.10g", x);
}

/* The numeric rule: finite and in [lo, hi] (default [0, inf)). */
static int check_range(const ArgSpec *s, double v, const char *val, const char *cmd) {
    double lo = s->ranged ? s->lo : 0, hi = s->ranged ? s->hi : INFINITY;
    if (!isfinite(v)) {
        fprintf(stderr, "clipmod %s: %s must be a finite number, got '%s'\n", cmd, s->name, val);
        return 2;
    }
    if (v < lo || v > hi) {
        char a[32], b[32];
        fmt_num(lo, a, sizeof a);
        fmt_num(hi, b, sizeof b);
        if (isinf(hi)) fprintf(stderr, "clipmod %s: %s must be >= %s, got '%s'\n", cmd, s->name, a, val);
        else fprintf(stderr, "clipmod %s: %s must be in [%s, %s], got '%s'\n", cmd, s->name, a, b, val);
        return 2;
    }
    return 0;
}

static int check_choice(const ArgSpec *s, const char *val, const char *cmd) {
    size_t L = strlen(val);
    for (const char *c = s->choices; *c; ) {
        const char *bar = strchr(c, '|');
        size_t k = bar ? (size_t)(bar - c) : strlen(c);
        if (k == L && !strncmp(c, val, k)) return 0;
        c += k + (bar ? 1 : 0);
        if (!bar) break;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", s->choices);
    for (char *p = list; *p; p++) if (*p == '|') *p = ',';
    fprintf(stderr, "clipmod %s: %s must be one of %s, got '%s'\n", cmd, s->name, list, val);
    return 2;
}

static int parse_value(const ArgSpec *s, const char *val, const char *cmd) {
    char *end;
    errno = 0;
    switch (s->type) {
    case ARG_INT: case ARG_I64: {
        long long v = strtoll(val, &end, 10);
        if (errno || *end || end == val || (s->type == ARG_INT && (v < -2147483647LL || v > 2147483647LL))) {
            fprintf(stderr, "clipmod %s: %s expects an integer, got '%s'\n", cmd, s->name, val);
            return 2;
        }
        if (check_range(s, (double)v, val, cmd)) return 2;
        if (s->type == ARG_INT) *(int *)s->dst = (int)v; else *(long long *)s->dst = v;
        return 0;
    }
    case ARG_FLOAT: {
        double v = strtod(val, &end);
        if (*end || end == val || (errno && !(errno == ERANGE && v == 0))) {
            fprintf(stderr, "clipmod %s: %s expects a number, got '%s'\n", cmd, s->name, val);
            return 2;
        }
        if (check_range(s, v, val, cmd)) return 2;
        *(double *)s->dst = v;
        return 0;
    }
    case ARG_STR:
        if (s->choices && check_choice(s, val, cmd)) return 2;
        if (s->check) {
            char why[512] = "";
            if (!s->check(val, why, sizeof why)) {
                fprintf(stderr, "clipmod %s: %s %s: %s\n", cmd, s->name, val, why);
                return 2;
            }
        }
        *(const char **)s->dst = val;
        return 0;
    case ARG_LIST: return list_push((ArgList *)s->dst, val) ? 2 : 0;
    case ARG_FLAG: return 0;
    }
    return 2;
}

int args_parse(int argc, char **argv, const ArgSpec *specs, int n, const char *cmd,
               const char *synopsis, ArgList *pos) {
    bool only_pos = false;
    unsigned char *seen = calloc((size_t)(n > 0 ? n : 1), 1);
    int rc = 0;
    if (!seen) { fprintf(stderr, "clipmod %s: out of memory\n", cmd); return 2; }
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] != '-' || a[2] == 0) {
            if (!only_pos && !strcmp(a, "--")) { only_pos = true; continue; }
            if (!pos) { fprintf(stderr, "clipmod %s: unexpected argument '%s' (see --help)\n", cmd, a); rc = 2; break; }
            if (list_push(pos, a)) rc = 2;
            continue;
        }
        if (!strcmp(a, "--help")) { args_usage(specs, n, cmd, synopsis); rc = -1; break; }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        int k = 0;
        for (; k < n; k++)
            if (strlen(specs[k].name) == nl && !strncmp(specs[k].name, a, nl)) break;
        if (k == n) { fprintf(stderr, "clipmod %s: unknown option '%.*s' (see --help)\n", cmd, (int)nl, a); rc = 2; break; }
        const ArgSpec *s = &specs[k];
        seen[k] = 1;
        if (s->type == ARG_FLAG) {
            if (eq) { fprintf(stderr, "clipmod %s: %s takes no value\n", cmd, s->name); rc = 2; break; }
            *(bool *)s->dst = true;
            continue;
        }
        if (eq) { rc = parse_value(s, eq + 1, cmd); continue; }
        if (i + 1 >= argc) { fprintf(stderr, "clipmod %s: %s needs a value\n", cmd, s->name); rc = 2; break; }
        rc = parse_value(s, argv[++i], cmd);
        if (s->type == ARG_LIST) /* several values: take until the next option */
            while (!rc && i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                rc = parse_value(s, argv[++i], cmd);
    }
    /* refused flags first (nothing has been done yet), then one warning per no-effect flag */
    for (int k = 0; k < n && !rc; k++)
        if (seen[k] && specs[k].refuse) {
            fprintf(stderr, "clipmod %s: %s is not supported: %s\n", cmd, specs[k].name, specs[k].refuse);
            rc = 2;
        }
    for (int k = 0; k < n && !rc; k++) {
        if (!seen[k]) continue;
        if (specs[k].given) *specs[k].given = true;
        if (specs[k].noeffect) cm_warn("%s has no effect here: %s", specs[k].name, specs[k].noeffect);
    }
    free(seen);
    if (rc) {   /* error or --help: nothing parsed is used; free the lists (callers may free again) */
        for (int k = 0; k < n; k++)
            if (specs[k].type == ARG_LIST) args_free((ArgList *)specs[k].dst);
        if (pos) args_free(pos);
    }
    return rc;
}
