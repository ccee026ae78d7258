/*
 * cmd_eval.c — `clipmod eval` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod eval: not implemented in this version yet\n");
    return 1;
}
