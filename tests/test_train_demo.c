/*
 * test_train_demo.c — `clipmod demo` end to end on a small setting (the full demo is `make demo`):
 * it writes shards, trains from scratch with the byte-level tokenizer, evaluates; the last stdout
 * line is the DESIGN §7 JSON with top1/top2; `clipmod eval` on its checkpoint reproduces the
 * numbers; a rerun into the same --data-dir works; the demo data (src/data/synth.h) need both
 * modalities by construction (captions of classes 0 and 2-4 carry no marker word, those of 1 and 5
 * always do; checked on the shards as written for the demo).
 */
#include "testlib.h"
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include "data/wds.h"
#include "data/synth.h"

static char tmpdir[256];

/* "clipmod ..." runs $BUILD/clipmod (build/ or build-asan/) */
static int sh(const char *cmd0, char *out, size_t cap) {
    char cmd[2048];
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/%s", bd, cmd0);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static cJSON *last_line(char *out) {
    char *last = NULL;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) last = l;
    return last ? cJSON_Parse(last) : NULL;
}

static void test_demo_small(void) {
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "clipmod demo --data-dir %s/d --epochs 2 --train-samples 280 --val-samples 70 2>/dev/null", tmpdir);
    int rc = sh(cmd, out, sizeof out);
    REQUIRE(rc == 0, "demo exit %d", rc);
    CHECK(strstr(out, "confusion") != NULL, "no confusion matrix printed");
    cJSON *j = last_line(out);
    REQUIRE(j, "last line is not JSON");
    cJSON *t1 = cJSON_GetObjectItem(j, "top1"), *t2 = cJSON_GetObjectItem(j, "top2"), *ck = cJSON_GetObjectItem(j, "checkpoint");
    CHECK(cJSON_IsNumber(t1) && cJSON_IsNumber(t2) && t2->valuedouble >= t1->valuedouble && cJSON_GetObjectItem(j, "n")->valueint == 70,
          "top1/top2/n");
    REQUIRE(cJSON_IsString(ck), "checkpoint path");
    double top1 = t1->valuedouble;
    snprintf(cmd, sizeof cmd, "clipmod eval --model '%s' --val-data '%s/d/val/{00000..00000}.tar' --json 2>/dev/null", ck->valuestring, tmpdir);
    cJSON_Delete(j);
    rc = sh(cmd, out, sizeof out);
    REQUIRE(rc == 0, "eval exit %d", rc);
    j = last_line(out);
    CHECK(j && cJSON_GetObjectItem(j, "top1")->valuedouble == top1, "eval top1 differs from the demo's");
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "clipmod demo --data-dir %s/d --epochs 1 --train-samples 70 --val-samples 70 2>/dev/null", tmpdir);
    rc = sh(cmd, out, sizeof out);
    CHECK(rc == 0, "rerun into the same folder: exit %d", rc);
}

/* classes 0, 2, 3, 4 use the same caption vocabulary: text alone cannot separate them */
static void test_demo_data_needs_both(void) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/data", tmpdir);
    CmSynthOpts o;
    cm_synth_opts_default(&o);
    o.seed = 5; o.n_train = 70; o.n_val = 70; o.image_size = 32;
    int rc = cm_synth_write(dir, &o);
    REQUIRE(rc == CM_OK, "write: %s", cm_last_error());
    char p[600];
    snprintf(p, sizeof p, "%s/train/00000.tar", dir);
    CmWdsReader *r;
    REQUIRE(cm_wds_open(p, true, 0, &r) == CM_OK, "open");
    CmWdsSample *s;
    int n = 0, marker_in_0 = 0, no_marker_in_15 = 0;
    while (cm_wds_next(r, &s) == 1) {
        const CmWdsField *tx = cm_wds_field(s, "txt"), *js = cm_wds_field(s, "json");
        int label = -1;
        CHECK(cm_wds_image(s) && tx && js && cm_label_from_json((char *)js->data, js->size, &label) == CM_OK, "sample %d", n);
        if (tx) {
            char cap[CM_SYNTH_MAX_CAPTION + 1];
            snprintf(cap, sizeof cap, "%.*s", (int)tx->size, (const char *)tx->data);
            bool marker = strstr(cap, CM_SYNTH_MARKER) != NULL;
            if (label == 0 || (label >= 2 && label <= 4)) marker_in_0 += marker;
            if (label == 1 || label == 5) no_marker_in_15 += !marker;
        }
        n++;
        cm_wds_sample_free(s);
    }
    cm_wds_close(r);
    CHECK(n == 70 && marker_in_0 == 0 && no_marker_in_15 == 0, "%d samples, %d marker words in classes 0/2/3/4, %d classes 1/5 without",
          n, marker_in_0, no_marker_in_15);
    snprintf(p, sizeof p, "%s/val/00000.tar", dir);
    CHECK(cm_file_exists(p), "%s missing", p);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_demo_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    RUN(test_demo_data_needs_both);
    RUN(test_demo_small);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    return tl_summary("test_train_demo");
}
