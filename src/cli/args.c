/*
 * args.c — see args.h.
 */
#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        printf("  %-34s %s\n", left, specs[i].help ? specs[i].help : "");
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
        if (s->type == ARG_INT) *(int *)s->dst = (int)v; else *(long long *)s->dst = v;
        return 0;
    }
    case ARG_FLOAT: {
        double v = strtod(val, &end);
        if (errno || *end || end == val) {
            fprintf(stderr, "clipmod %s: %s expects a number, got '%s'\n", cmd, s->name, val);
            return 2;
        }
        *(double *)s->dst = v;
        return 0;
    }
    case ARG_STR: *(const char **)s->dst = val; return 0;
    case ARG_LIST: return list_push((ArgList *)s->dst, val) ? 2 : 0;
    case ARG_FLAG: return 0;
    }
    return 2;
}

int args_parse(int argc, char **argv, const ArgSpec *specs, int n, const char *cmd,
               const char *synopsis, ArgList *pos) {
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] != '-' || a[2] == 0) {
            if (!only_pos && !strcmp(a, "--")) { only_pos = true; continue; }
            if (!pos) { fprintf(stderr, "clipmod %s: unexpected argument '%s' (see --help)\n", cmd, a); return 2; }
            if (list_push(pos, a)) return 2;
            continue;
        }
        if (!strcmp(a, "--help")) { args_usage(specs, n, cmd, synopsis); return -1; }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const ArgSpec *s = NULL;
        for (int k = 0; k < n; k++)
            if (strlen(specs[k].name) == nl && !strncmp(specs[k].name, a, nl)) { s = &specs[k]; break; }
        if (!s) { fprintf(stderr, "clipmod %s: unknown option '%.*s' (see --help)\n", cmd, (int)nl, a); return 2; }
        if (s->type == ARG_FLAG) {
            if (eq) { fprintf(stderr, "clipmod %s: %s takes no value\n", cmd, s->name); return 2; }
            *(bool *)s->dst = true;
            continue;
        }
        if (eq) { if (parse_value(s, eq + 1, cmd)) return 2; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "clipmod %s: %s needs a value\n", cmd, s->name); return 2; }
        if (parse_value(s, argv[++i], cmd)) return 2;
        if (s->type == ARG_LIST) /* several values: take until the next option */
            while (i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                if (parse_value(s, argv[++i], cmd)) return 2;
    }
    return 0;
}
