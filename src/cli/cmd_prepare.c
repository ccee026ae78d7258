/*
 * cmd_prepare.c — `clipmod prepare` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_prepare(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod prepare: not implemented in this version yet\n");
    return 1;
}
