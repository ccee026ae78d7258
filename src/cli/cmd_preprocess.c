/*
 * cmd_preprocess.c — `clipmod preprocess` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_preprocess(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod preprocess: not implemented in this version yet\n");
    return 1;
}
