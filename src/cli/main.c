/*
 * main.c — build/clipmod: dispatch to the commands of DESIGN §7.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "clipmod.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"

typedef struct { const char *name; int (*fn)(int, char **); const char *summary; } Command;

static const Command commands[] = {
    {"info", cmd_info, "parameter counts of a model config or weights file (JSON)"},
    {"tokenize", cmd_tokenize, "CLIP BPE token ids of texts (one JSON array of 77 per line)"},
    {"preprocess", cmd_preprocess, "eval transform of an image to float32 [3,224,224]"},
    {"embed", cmd_embed, "image/text embeddings (JSON lines)"},
    {"inspect", cmd_inspect, "list the samples of a WebDataset shard (JSON lines)"},
    {"prepare", cmd_prepare, "turn Fakeddit / MMHS150K / COCO into class shards"},
    {"train", cmd_train, "train with OpenCLIP's flags (+ --enable-lora)"},
    {"eval", cmd_eval, "top-1/top-2, per-class metrics and confusion matrix on shards"},
    {"predict", cmd_predict, "classify image+text pairs (JSON lines)"},
    {"demo", cmd_demo, "synthetic 7-class dataset: build, train, evaluate"},
    {"report", cmd_report, "self-contained HTML report of a run and/or per-sample eval scores"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f, "clipmod %s — OpenCLIP-exact CLIP image+text classifier\n\nusage: clipmod COMMAND [options]\n\ncommands:\n",
            CLIPMOD_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'clipmod COMMAND --help' shows the options of a command.\n");
}

/* The man page (roff) on stdout: the command table above and each command's option table, printed
   by args_usage in man mode when the command is given --help. Used by `make install`. */
static int man_page(void) {
    printf(".TH CLIPMOD 1 \"\" \"clipmod %s\" \"User Commands\"\n.SH NAME\nclipmod \\- OpenCLIP-exact CLIP "
           "image+text classifier\n.SH SYNOPSIS\n.B clipmod\n.I COMMAND\n[options]\n.br\n.B clipmod\n\\-\\-help | "
           "\\-\\-version\n.SH DESCRIPTION\nTrains, evaluates and serves a CLIP image+text classifier for content "
           "moderation, computing the same numbers as OpenCLIP.\nExit status: 0 on success, 1 on a runtime or data "
           "failure, 2 on bad usage.\n.SH COMMANDS\n", clipmod_version());
    for (int i = 0; i < N_COMMANDS; i++) printf(".TP\n.B %s\n%s\n", commands[i].name, commands[i].summary);
    printf(".SH OPTIONS\n");
    args_man_mode = true;
    for (int i = 0; i < N_COMMANDS; i++) {
        char help[] = "--help", *av[] = {help, NULL};
        fflush(stdout);
        if (commands[i].fn(1, av) != 0) { fprintf(stderr, "clipmod --man: %s --help failed\n", commands[i].name); return 1; }
    }
    printf(".SH ENVIRONMENT\n.TP\n.B CLIPMOD_VOCAB\nthe BPE vocabulary (file or folder) when no \\-\\-vocab is given "
           "and none lies beside the model\n.TP\n.B CLIPMOD_THREADS\ncompute threads (OpenMP and OpenBLAS)\n"
           ".SH FILES\n.TP\n.I <prefix>/share/clipmod/bpe_simple_vocab_16e6.txt.gz\nthe CLIP BPE vocabulary (MIT, "
           "notice beside it), found relative to the executable or libclipmod.so\n");
    return fflush(stdout) == 0 ? 0 : 1;
}

int cli_fail(const char *cmd) {
    fprintf(stderr, "clipmod %s: %s\n", cmd, cm_last_error());
    return 1;
}

/* libgomp reads its wait policy once, when it loads, so the default is chosen by re-executing
   once with it set. Spinning (libgomp's default: up to 300,000 spins at every barrier) is the
   fastest on an idle machine but several times slower when the cores are shared with other busy
   processes (measured: 3.6x the wall time of passive waiting on a loaded 2-core machine);
   passive waiting loses ~50% on an idle one (the demo: 6.7 s vs 4.5 s). A bounded spin of
   10,000 keeps most of the idle-machine speed and lost 12% to passive under load. An explicit
   OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept; CLIPMOD_NO_REEXEC=1 disables this (docs/model.md). */
static void choose_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("CLIPMOD_NO_REEXEC")) return;
    setenv("GOMP_SPINCOUNT", "10000", 1);
    setenv("CLIPMOD_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);   /* returns only on failure: then run as is */
    unsetenv("CLIPMOD_NO_REEXEC");
}

int main(int argc, char **argv) {
    choose_wait_policy(argv);
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("clipmod %s\n", clipmod_version()); return 0; }
    if (!strcmp(argv[1], "--man")) return man_page();   /* hidden: make's build/clipmod.1 */
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            cm_threads_set(0);
            return commands[i].fn(argc - 2, argv + 2);
        }
    fprintf(stderr, "clipmod: unknown command '%s' (see clipmod --help)\n", argv[1]);
    return 2;
}
