/*
 * cmd_inspect.c — `clipmod inspect` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod inspect: not implemented in this version yet\n");
    return 1;
}
