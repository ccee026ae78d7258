/*
 * precision.c — `--precision` of the inference commands (embed, eval, predict, serve):
 *   fp32 (default)            the numbers of OpenCLIP;
 *   amp | amp_bf16 | bf16     bf16 products in the tower linears (fp32 accumulation);
 *   int8                      the tower linears in int8 (per-channel weights, per-row activations,
 *                             fp32 outlier columns); LoRA stays an fp32 rank-r term beside the int8
 *                             out_proj, not merged first: merged, the int8 error scales with
 *                             |W + (alpha/r) B A| (docs/model.md, measured).
 */
#include "cli/precision.h"
#include <stdio.h>
#include <string.h>

int cli_precision_check(const char *cmd, const char *prec) {
    if (!prec || !strcmp(prec, "fp32") || !strcmp(prec, "amp") || !strcmp(prec, "amp_bf16") || !strcmp(prec, "bf16") ||
        !strcmp(prec, "int8"))
        return 0;
    fprintf(stderr, "clipmod %s: --precision %s: expected fp32, amp (bf16), bf16 or int8\n", cmd, prec);
    return 2;
}

int cli_apply_precision(const char *cmd, const char *prec, CmModel **m) {
    if (cli_precision_check(cmd, prec)) return 2;
    if (!prec || !strcmp(prec, "fp32")) return 0;
    if (strcmp(prec, "int8")) { cm_model_set_amp(*m, true); return 0; }
    if (cm_model_set_int8(*m, true)) return cli_fail(cmd);
    return 0;
}
