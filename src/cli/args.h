/*
 * args.h — the table-driven option parser every command uses, and the one rule set that checks
 * every flag value (docs/flags.md). Each option is declared once (long name, type, destination,
 * help, rules); --help is generated from the table, so help and parser cannot drift apart.
 * Accepts "--name value" and "--name=value"; "--" ends options.
 *
 * Rules, applied while parsing, before a command opens or writes any file (violations: one line
 * naming the flag on stderr, status 2):
 *   - ARG_INT / ARG_I64 / ARG_FLOAT: finite, and >= 0 unless the spec gives a range
 *     (ARG_RANGE(lo, hi), inclusive; lo may be negative). NaN and inf are never accepted.
 *   - ARG_STR with `choices` ("a|b|c"): the value is one of them.
 *   - `check`: a custom test of the value (e.g. --model-name must name a known config).
 *   - `refuse`: the flag is not supported here; giving it is an error with that reason.
 *   - `noeffect`: the flag is accepted (OpenCLIP command lines run unchanged) but changes nothing
 *     here; giving it prints one warning with that reason.
 *   - `given`: set to true when the flag appears ("not set" is explicit, never a magic value).
 * defines: ArgSpec, ArgType, ArgList, ARG, ARG_RANGE, args_parse, args_usage, args_free
 */
#ifndef CM_ARGS_H
#define CM_ARGS_H

#include <stdbool.h>
#include <stddef.h>

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
    /* rules (all optional; zero = the default rule of the type) */
    bool ranged;          /* numbers: [lo, hi] instead of [0, inf) */
    double lo, hi;
    const char *choices;  /* ARG_STR: "a|b|c" */
    bool *given;          /* set to true when the flag appears */
    const char *noeffect; /* accepted, warns once: "--x: no effect here: <noeffect>" */
    const char *refuse;   /* refused: "--x: <refuse>" (status 2) */
    bool optional;        /* Python default None: params.txt prints None unless given */
    /* custom value check: return false and write the reason into why */
    bool (*check)(const char *val, char *why, size_t n);
} ArgSpec;

#define ARG_RANGE(a, b) .ranged = true, .lo = (a), .hi = (b)
/* One table entry: ARG("--name", ARG_INT, &dst, "N", "help", rules...) */
#define ARG(nm, ty, d, mv, hp, ...) {.name = (nm), .type = (ty), .dst = (d), .metavar = (mv), .help = (hp), ##__VA_ARGS__}

/* Returns 0 on success, 2 on a usage error (one line already printed on stderr), and -1 when
   --help was asked for (usage already printed on stdout; the caller exits 0). On 2 and -1 the
   ARG_LIST destinations and *pos are already freed (freeing them again is harmless).
   Positional arguments are collected into *pos (may be NULL if none are allowed). */
int args_parse(int argc, char **argv, const ArgSpec *specs, int n, const char *cmd,
               const char *synopsis, ArgList *pos);
void args_usage(const ArgSpec *specs, int n, const char *cmd, const char *synopsis);
/* When set (by `clipmod --man`), args_usage writes the command's section of the man page (roff)
   instead of the --help text: the man page is generated from the same tables as --help. */
extern bool args_man_mode;
void args_free(ArgList *l);

/* --model-name's check: a built-in config name or a readable OpenCLIP JSON config. */
bool args_check_model_name(const char *val, char *why, size_t n);

#endif
