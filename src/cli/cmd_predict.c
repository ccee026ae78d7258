/*
 * cmd_predict.c — `clipmod predict` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_predict(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod predict: not implemented in this version yet\n");
    return 1;
}
