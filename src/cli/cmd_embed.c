/*
 * cmd_embed.c — `clipmod embed` (DESIGN §7). Not built yet: says so and fails.
 */
#include <stdio.h>
#include "cli/cli.h"

int cmd_embed(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "clipmod embed: not implemented in this version yet\n");
    return 1;
}
