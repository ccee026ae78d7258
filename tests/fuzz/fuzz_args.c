/*
 * fuzz_args.c — libFuzzer target for command lines: the input, split at NUL bytes into up to 64
 * arguments, goes through args_parse (src/cli/args.c) with `clipmod train`'s flag table (every
 * ArgType occurs there: flags, int, int64, float, string, multi-value lists), then
 * cm_train_opts_finalize (the checks and model defaults) and, for accepted options,
 * cm_train_opts_json and cm_py_float of every float option. args_parse must answer 0, 2 or -1.
 * Seeds: tests/fuzz/corpus/args/ (tests/fuzz/make_corpus.py, NUL-separated argument lists).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "fuzz_util.h"
#include "cli/train_flags.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* one copy with a NUL after every argument (and the last), argv pointing into it */
    char *buf = malloc(size + 1);
    if (!buf) abort();
    if (size) memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    CmTrainOpts o;
    ArgSpec specs[CM_TRAIN_MAX_SPECS];
    cm_train_opts_defaults(&o);
    int n = cm_train_opts_specs(&o, specs);
    if (n <= 0 || n > CM_TRAIN_MAX_SPECS) abort();
    int rc = args_parse(argc, argv, specs, n, "train", "[fuzz]", NULL);
    if (rc != 0 && rc != 2 && rc != -1) abort();
    if (rc == 0 && FZ(cm_train_opts_finalize(&o)) == CM_OK) {
        char *js = cm_train_opts_json(&o);
        if (!js) abort();
        cm_free(js);
        char f[64];
        double xs[] = {o.lr, o.beta1, o.beta2, o.eps, o.wd, o.momentum, o.grad_clip_norm, o.lr_cooldown_end,
                       o.lr_cooldown_power, o.force_patch_dropout, o.lora_alpha, o.contrastive_weight,
                       o.classification_weight};
        for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) cm_py_float(xs[i], f, sizeof f);
    }
    /* the list options own arrays of pointers */
    args_free(&o.image_mean);
    args_free(&o.image_std);
    args_free(&o.aug_cfg);
    args_free(&o.force_image_size);
    free(buf);
    return 0;
}
