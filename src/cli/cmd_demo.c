/*
 * cmd_demo.c — `clipmod demo` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_demo(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod demo: not implemented in this version yet\n");
    return 1;
}
