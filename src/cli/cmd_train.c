/*
 * cmd_train.c — `clipmod train` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_train(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod train: not implemented in this version yet\n");
    return 1;
}
