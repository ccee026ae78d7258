/*
 * cmd_tokenize.c — `clipmod tokenize` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod tokenize: not implemented in this version yet\n");
    return 1;
}
