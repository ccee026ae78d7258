/*
 * test_train_metrics.c — top-k accuracy, confusion matrix, per-class P/R/F1 against hand counts,
 * the eval JSON (parsed back with cJSON), results.jsonl appending, and bad labels.
 */
#include "testlib.h"
/* REQUIRE evaluates its condition twice: call once, then check */
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include "eval/metrics.h"
#include <cjson/cJSON.h>
#include <unistd.h>

static void test_topk_ties_nan(void) {
    float row[5] = {1, 3, 3, NAN, 2};
    int t[3];
    cm_topk(row, 5, 3, t);
    CHECK(t[0] == 1 && t[1] == 2 && t[2] == 4, "top3 = %d %d %d", t[0], t[1], t[2]);
    float nanrow[3] = {NAN, -1, NAN};
    cm_topk(nanrow, 3, 1, t);
    CHECK(t[0] == 1, "NaN must not win: %d", t[0]);
}

static void test_counts(void) {
    CmMetrics m;
    cm_metrics_init(&m, 3);
    /* 4 samples: true 0 pred 0 (2nd 1); true 1 pred 0 (2nd 1); true 2 pred 2; true 1 pred 2 (2nd 0) */
    float lg[4 * 3] = {5, 4, 0,   3, 2, 1,   0, 1, 9,   1, 0, 2};
    int32_t y[4] = {0, 1, 2, 1};
    REQUIRE_OK(cm_metrics_add(&m, lg, y, 4), "%s", cm_last_error());
    CHECK(m.n == 4 && m.top1 == 2 && m.top2 == 3, "n %lld top1 %lld top2 %lld", (long long)m.n, (long long)m.top1, (long long)m.top2);
    CHECK(m.confusion[0][0] == 1 && m.confusion[1][0] == 1 && m.confusion[2][2] == 1 && m.confusion[1][2] == 1, "confusion");
    CmClassStats c0 = cm_metrics_class(&m, 0), c1 = cm_metrics_class(&m, 1), c2 = cm_metrics_class(&m, 2);
    CHECK(c0.precision == 0.5 && c0.recall == 1.0 && fabs(c0.f1 - 2.0 / 3) < 1e-12 && c0.support == 1, "class 0");
    CHECK(c1.precision == 0 && c1.recall == 0 && c1.f1 == 0 && c1.support == 2, "class 1 (never predicted)");
    CHECK(c2.precision == 0.5 && c2.recall == 1.0 && c2.support == 1, "class 2");
    CmMetrics m2;
    cm_metrics_init(&m2, 3);
    int32_t bad[1] = {3};
    CHECK(cm_metrics_add(&m2, lg, bad, 1) == CM_ERR_ARG && strstr(cm_last_error(), "sample 0"), "bad label: %s", cm_last_error());
    CHECK(m2.n == 0, "nothing counted on error");
    int32_t y2[1] = {2};
    REQUIRE_OK(cm_metrics_add(&m2, lg + 6, y2, 1), "add");
    cm_metrics_merge(&m, &m2);
    CHECK(m.n == 5 && m.top1 == 3 && m.confusion[2][2] == 2, "merge");
}

static void test_json(void) {
    CmMetrics m;
    cm_metrics_init(&m, 7);
    float lg[2 * 7] = {0, 0, 0, 0, 0, 0, 1,   1, 0, 0, 0, 0, 0, 0};
    int32_t y[2] = {6, 3};
    REQUIRE_OK(cm_metrics_add(&m, lg, y, 2), "add");
    cm_metrics_add_clip_loss(&m, 2.0, 1);
    cm_metrics_add_clip_loss(&m, 1.0, 3);
    char *js = cm_metrics_json(&m, "\"epoch\":3");
    REQUIRE(js, "json");
    cJSON *j = cJSON_Parse(js);
    REQUIRE(j, "unparsable: %s", js);
    CHECK(cJSON_GetObjectItem(j, "epoch")->valueint == 3, "extra field");
    CHECK(cJSON_GetObjectItem(j, "n")->valueint == 2, "n");
    CHECK(cJSON_GetObjectItem(j, "top1")->valuedouble == 0.5, "top1");
    CHECK(cJSON_GetObjectItem(j, "top2")->valuedouble == 0.5, "top2 (class 3 is 2nd? no: ties go to class 1)");
    CHECK(fabs(cJSON_GetObjectItem(j, "clip_val_loss")->valuedouble - 1.25) < 1e-12, "clip_val_loss weighted");
    cJSON *pc = cJSON_GetObjectItem(j, "per_class");
    CHECK(cJSON_GetArraySize(pc) == 7, "per_class size");
    cJSON *c6 = cJSON_GetArrayItem(pc, 6);
    CHECK(cJSON_GetObjectItem(c6, "class")->valueint == 6 && !strcmp(cJSON_GetObjectItem(c6, "name")->valuestring, "Hate") &&
          cJSON_GetObjectItem(c6, "precision")->valuedouble == 1.0 && cJSON_GetObjectItem(c6, "support")->valueint == 1, "class 6");
    cJSON *conf = cJSON_GetObjectItem(j, "confusion");
    CHECK(cJSON_GetArraySize(conf) == 7 && cJSON_GetArrayItem(cJSON_GetArrayItem(conf, 3), 0)->valueint == 1, "confusion[3][0]");
    cJSON_Delete(j);
    cm_free(js);
    /* empty metrics stay valid JSON with zeros */
    CmMetrics e;
    cm_metrics_init(&e, 7);
    js = cm_metrics_json(&e, NULL);
    j = cJSON_Parse(js);
    CHECK(j && cJSON_GetObjectItem(j, "top1")->valuedouble == 0, "empty: %s", js);
    cJSON_Delete(j);
    cm_free(js);
}

static void test_append(void) {
    char path[] = "/tmp/cm_test_results_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    unlink(path);
    REQUIRE_OK(cm_append_line(path, "{\"a\":1}"), "%s", cm_last_error());
    REQUIRE_OK(cm_append_line(path, "{\"a\":2}"), "%s", cm_last_error());
    uint8_t *buf; size_t len;
    REQUIRE_OK(cm_read_file(path, 1 << 20, &buf, &len), "read");
    CHECK(len == 16 && !memcmp(buf, "{\"a\":1}\n{\"a\":2}\n", 16), "content '%s'", buf);
    cm_free(buf);
    unlink(path);
    CHECK(cm_append_line("/nonexistent-dir/x/results.jsonl", "{}") == CM_ERR_IO && strstr(cm_last_error(), "/nonexistent-dir"),
          "error names the file: %s", cm_last_error());
}

int main(void) {
    RUN(test_topk_ties_nan);
    RUN(test_counts);
    RUN(test_json);
    RUN(test_append);
    return tl_summary("test_train_metrics");
}
