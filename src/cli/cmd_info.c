/*
 * cmd_info.c — `clipmod info` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod info: not implemented in this version yet\n");
    return 1;
}
