/*
 * args.h — the table-driven option parser every command uses. Each option is declared once
 * (long name, type, destination, help); --help is generated from the table, so help and parser
 * cannot drift apart. Accepts "--name value" and "--name=value"; "--" ends options.
 * defines: ArgSpec, ArgType, ArgList, args_parse, args_usage
 */
#ifndef CM_ARGS_H
#define CM_ARGS_H

#include <stdbool.h>

typedef enum {
    ARG_FLAG,    /* bool*, no value */
    ARG_INT,     /* int* */
    ARG_I64,     /* long long* */
    ARG_FLOAT,   /* double* */
    ARG_STR,     /* const char** (points into argv) */
    ARG_LIST     /* ArgList*: repeatable, and also takes several values until the next --option */
} ArgType;

typedef struct { const char **v; int n; } ArgList;

typedef struct {
    const char *name;     /* "--model-name" */
    ArgType type;
    void *dst;
    const char *metavar;  /* "NAME" (NULL for flags) */
    const char *help;
} ArgSpec;

/* Returns 0 on success, 2 on a usage error (one line already printed on stderr), and -1 when
   --help was asked for (usage already printed on stdout; the caller exits 0).
   Positional arguments are collected into *pos (may be NULL if none are allowed). */
int args_parse(int argc, char **argv, const ArgSpec *specs, int n, const char *cmd,
               const char *synopsis, ArgList *pos);
void args_usage(const ArgSpec *specs, int n, const char *cmd, const char *synopsis);
/* When set (by `clipmod --man`), args_usage writes the command's section of the man page (roff)
   instead of the --help text: the man page is generated from the same tables as --help. */
extern bool args_man_mode;
void args_free(ArgList *l);

#endif
