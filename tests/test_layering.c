/*
 * test_layering.c — structural rules a reviewer can check by hand (issue 8 items 4 and 6):
 *   - every global symbol that $BUILD/libclipmod.a defines is prefixed cm_ / CM_ / clipmod_
 *     (`nm -g --defined-only`; sanitizer-generated __asan / __odr_asan symbols aside), so the
 *     library can be linked into any C program without clashing on names like `matmul`;
 *   - $BUILD/libclipmod.so, when the Makefile builds it, exports only clipmod_* functions;
 *   - layers never point upward: nothing in src/common, kernels, io, model, data includes
 *     train/, eval/ or cli/; src/eval includes no train/; src/api includes no cli/ and its
 *     inference part no train/; the inference commands (embed, eval, predict, info) include no train/.
 *   - the library never includes the CLI (issue 8 item 4, the reviewer's own command line): the
 *     flag table lives in src/cli/, the trainer takes a CmTrainConfig, and the CLI's flag types
 *     (CmTrainOpts, ArgSpec) appear nowhere outside src/cli/.
 *   - kernels never allocate (issue 8 item 1): no malloc/calloc/realloc/free/aligned_alloc/cm_malloc/
 *     cm_calloc/cm_free call in src/kernels/ (backend_cpu.c aside: the table's alloc/free buffer
 *     ops are the one place the CPU backend owns memory), and no CM_ASSERT anywhere in src/ on the
 *     same line as, or the line after, an allocation (a failed allocation is a status).
 * Runs nm and grep through the shell from the repository root.
 */
#include "testlib.h"

static char g_buf[1 << 20];

/* Run cmd; its stdout into g_buf; returns the exit status (-1 when it could not run). */
static int sh(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(g_buf, 1, sizeof g_buf - 1, p);
    g_buf[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *build_dir(void) {
    const char *b = getenv("BUILD");
    return b && *b ? b : "build";
}

static bool sanitizer_symbol(const char *s) {
    return !strncmp(s, "__asan", 6) || !strncmp(s, "__odr_asan", 10) || !strncmp(s, "__ubsan", 7) ||
           !strncmp(s, "__sancov", 8);
}

/* Lines "ADDR TYPE NAME" of nm output: count names without an allowed prefix, print a few. */
static int count_unprefixed(const char *what, const char *const *prefixes, int np) {
    int bad = 0;
    for (char *l = strtok(g_buf, "\n"); l; l = strtok(NULL, "\n")) {
        char addr[64], type[8], name[512];
        if (sscanf(l, "%63s %7s %511s", addr, type, name) != 3) continue;   /* "file.o:" headers, blanks */
        if (sanitizer_symbol(name)) continue;
        bool ok = false;
        for (int i = 0; i < np && !ok; i++) ok = !strncmp(name, prefixes[i], strlen(prefixes[i]));
        if (!ok && bad++ < 20) fprintf(stderr, "    %s exports unprefixed %s (%s)\n", what, name, type);
    }
    return bad;
}

static void test_static_lib_symbols(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "nm -g --defined-only '%s/libclipmod.a' 2>/dev/null", build_dir());
    int rc = sh(cmd);
    REQUIRE(rc == 0 && strlen(g_buf) > 1000, "nm %s/libclipmod.a failed (rc %d)", build_dir(), rc);
    static const char *const pre[] = {"cm_", "CM_", "clipmod_"};
    int bad = count_unprefixed("libclipmod.a", pre, 3);
    CHECK(bad == 0, "%d global symbols of libclipmod.a lack the cm_ / clipmod_ prefix", bad);
}

static void test_shared_lib_exports(void) {
    char path[512], cmd[700];
    snprintf(path, sizeof path, "%s/libclipmod.so", build_dir());
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "    %s not built: export check skipped\n", path);
        return;
    }
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s' 2>/dev/null", path);
    int rc = sh(cmd);
    REQUIRE(rc == 0, "nm -D %s failed (rc %d)", path, rc);
    static const char *const pre[] = {"clipmod_", "_init", "_fini", "_edata", "_end", "__bss_start"};
    int bad = count_unprefixed("libclipmod.so", pre, 6);
    CHECK(bad == 0, "%d dynamic symbols of libclipmod.so are not clipmod_ API", bad);
}

/* Every line grep prints is a violation: "file:line:#include ...". */
static void no_includes(const char *dirs, const char *pattern, const char *rule) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -rnE '#include \"(%s)/' %s --include=*.c --include=*.h 2>/dev/null", pattern, dirs);
    int rc = sh(cmd);
    CHECK(rc == 1 && !g_buf[0], "%s:\n%s", rule, g_buf);
}

static void test_lower_layers_do_not_include_upper(void) {
    REQUIRE(access("src/model", R_OK) == 0, "run from the repository root");
    no_includes("src/common src/kernels src/io src/model src/data", "train|eval|cli",
                "src/common|kernels|io|model|data include train/, eval/ or cli/");
}

static void test_eval_does_not_include_train(void) {
    if (access("src/eval", R_OK) != 0) return;
    no_includes("src/eval", "train|cli", "src/eval includes train/ or cli/");
}

static void test_api_does_not_include_train_or_cli(void) {
    if (access("src/api", R_OK) != 0) return;
    no_includes("src/api", "cli", "src/api includes cli/");
    no_includes("src/api/api_model.c", "train", "src/api/api_model.c (the API's inference part) includes train/");
}

static void test_inference_commands_do_not_include_train(void) {
    no_includes("src/cli/cmd_embed.c src/cli/cmd_eval.c src/cli/cmd_predict.c src/cli/cmd_info.c", "train",
                "an inference command includes train/");
}

static void test_library_does_not_include_cli(void) {
    REQUIRE(access("src/cli/args.h", R_OK) == 0, "run from the repository root");
    int rc = sh("grep -rln '#include \"cli/' src --include=*.c --include=*.h | grep -v '^src/cli/'");
    CHECK(rc == 1 && !g_buf[0], "library files include the CLI:\n%s", g_buf);
    /* the check itself can fail: the same grep finds the CLI's own includes */
    rc = sh("grep -rln '#include \"cli/' src --include=*.c --include=*.h");
    CHECK(rc == 0 && strstr(g_buf, "src/cli/"), "the grep finds nothing at all: the check is broken");
}

static void test_flag_types_only_in_cli(void) {
    int rc = sh("grep -rlnE 'CmTrainOpts|ArgSpec' src --include=*.c --include=*.h | grep -v '^src/cli/'");
    CHECK(rc == 1 && !g_buf[0], "the CLI's flag types are used in the library:\n%s", g_buf);
}

#define ALLOC_RE "\\b(malloc|calloc|realloc|free|aligned_alloc|posix_memalign|strdup|cm_malloc|cm_calloc|cm_free)[[:space:]]*\\("

static void test_kernels_do_not_allocate(void) {
    REQUIRE(access("src/kernels/ops.h", R_OK) == 0, "run from the repository root");
    int rc = sh("grep -rnE '" ALLOC_RE "' src/kernels --include=*.c --include=*.h | grep -v '^src/kernels/backend_cpu.c:'");
    CHECK(rc == 1 && !g_buf[0], "src/kernels allocates (scratch must come from the caller's workspace):\n%s", g_buf);
    /* the grep itself works: it finds the allocator's own definition in src/common */
    rc = sh("grep -rnE '" ALLOC_RE "' src/common/common.c");
    CHECK(rc == 0 && strstr(g_buf, "cm_malloc"), "the allocation grep finds nothing in src/common: the check is broken");
}

/* awk over every source file: a CM_ASSERT on an allocation's line or the line after it */
#define ASSERT_AFTER_ALLOC_AWK \
    "awk 'FNR==1{prev=\"\"} /CM_ASSERT\\(/ && (prev ~ /(malloc|calloc|realloc|strdup|_alloc)\\(/ || " \
    "$0 ~ /(malloc|calloc|realloc|strdup|_alloc)\\(/) {print FILENAME \":\" FNR \": \" $0} {prev=$0}' "

static void test_no_assert_on_allocation(void) {
    int rc = sh(ASSERT_AFTER_ALLOC_AWK "$(find src -name '*.[ch]')");
    CHECK(rc == 0 && !g_buf[0], "CM_ASSERT on an allocation result (return CM_ERR_OOM instead):\n%s", g_buf);
    /* the check can fail: it flags a planted example */
    char path[256];
    snprintf(path, sizeof path, "/tmp/cm_layering_%d.c", (int)getpid());
    tl_write_text(path, "void f(void) {\n    float *p = malloc(4);\n    CM_ASSERT(p != NULL);\n}\n");
    char cmd[600];
    snprintf(cmd, sizeof cmd, ASSERT_AFTER_ALLOC_AWK "'%s'", path);
    rc = sh(cmd);
    unlink(path);
    CHECK(rc == 0 && strstr(g_buf, "CM_ASSERT"), "the awk check misses a planted CM_ASSERT after malloc: %s", g_buf);
}

int main(void) {
    RUN(test_kernels_do_not_allocate);
    RUN(test_no_assert_on_allocation);
    RUN(test_static_lib_symbols);
    RUN(test_shared_lib_exports);
    RUN(test_lower_layers_do_not_include_upper);
    RUN(test_eval_does_not_include_train);
    RUN(test_api_does_not_include_train_or_cli);
    RUN(test_inference_commands_do_not_include_train);
    RUN(test_library_does_not_include_cli);
    RUN(test_flag_types_only_in_cli);
    return tl_summary("test_layering");
}
