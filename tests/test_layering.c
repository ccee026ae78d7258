/*
 * test_layering.c — the layering rules of docs/ARCHITECTURE.md that a reviewer can check with
 * grep (issue 8 item 4): the library never includes the CLI (the command-line flag table lives in
 * src/cli/, the trainer takes a CmTrainConfig), and nothing below src/train includes train/.
 * Runs the reviewer's own command lines from the repository root.
 */
#include "testlib.h"
#include <stdio.h>

/* Run a shell pipeline; return its stdout (static buffer) or NULL when it cannot run. */
static const char *shell(const char *cmd) {
    static char out[8192];
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    pclose(p);
    return out;
}

static void test_library_does_not_include_cli(void) {
    REQUIRE(access("src/cli/args.h", F_OK) == 0, "not run from the repository root");
    const char *o = shell("grep -rln '#include \"cli/' src --include=*.c --include=*.h | grep -v '^src/cli/'");
    REQUIRE(o, "popen");
    CHECK(o[0] == 0, "library files include the CLI:\n%s", o);
    /* the check itself can fail: it finds the CLI's own includes */
    const char *self = shell("grep -rln '#include \"cli/' src --include=*.c --include=*.h");
    CHECK(self && strstr(self, "src/cli/"), "the grep finds nothing at all: the check is broken");
}

static void test_lower_layers_do_not_include_train(void) {
    const char *o = shell("grep -rln '#include \"train/' src/model src/data src/io src/kernels src/common"
                          " --include=*.c --include=*.h");
    REQUIRE(o, "popen");
    CHECK(o[0] == 0, "lower layers include train/:\n%s", o);
}

static void test_flag_struct_not_in_library(void) {
    const char *o = shell("grep -rln 'CmTrainOpts\\|ArgSpec' src --include=*.c --include=*.h | grep -v '^src/cli/'");
    REQUIRE(o, "popen");
    CHECK(o[0] == 0, "the CLI's flag types are used in the library:\n%s", o);
}

int main(void) {
    RUN(test_library_does_not_include_cli);
    RUN(test_lower_layers_do_not_include_train);
    RUN(test_flag_struct_not_in_library);
    return tl_summary("test_layering");
}
