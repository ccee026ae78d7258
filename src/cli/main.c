/*
 * main.c — build/clipmod: dispatch to the commands of DESIGN §7.
 */
#include <stdio.h>
#include <string.h>
#include "clipmod.h"
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
    {"serve", cmd_serve, "HTTP inference server: classify/embed API, metrics, web page"},
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

int cli_fail(const char *cmd) {
    fprintf(stderr, "clipmod %s: %s\n", cmd, cm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("clipmod %s\n", CLIPMOD_VERSION); return 0; }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            cm_threads_set(0);
            return commands[i].fn(argc - 2, argv + 2);
        }
    fprintf(stderr, "clipmod: unknown command '%s' (see clipmod --help)\n", argv[1]);
    return 2;
}
