/*
 * precision.h — `--precision fp32|amp|bf16|int8` for the inference commands (precision.c).
 */
#ifndef CM_CLI_PRECISION_H
#define CM_CLI_PRECISION_H
#include "cli/cli.h"
#include "model/model.h"

/* 0 when prec is a known value (NULL = fp32), else prints the error and returns 2. */
/* The --precision help of the inference commands (embed, eval, predict): one text for all. */
#define CLI_PRECISION_HELP "fp32 (default), amp|bf16 (bf16 tower products) or int8 (int8 tower linears, LoRA in fp32)"
int cli_precision_check(const char *cmd, const char *prec);
/* Applies prec to *m (int8 may replace *m by its LoRA-merged copy). 0 ok, 2 usage, 1 failure. */
int cli_apply_precision(const char *cmd, const char *prec, CmModel **m);

#endif
