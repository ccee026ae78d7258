/*
 * test_thresholds.c — `--threshold CLASS=P` rules (src/infer/thresholds.h): parsing by name and
 * index, the OR decision at the boundary (>= P), the JSON members, and every rejected spec.
 */
#include "testlib.h"
#include "infer/thresholds.h"

static void test_parse_and_decide(void) {
    CmThresholds t = {0};
    REQ_OK(cm_thresholds_add(&t, "Hate=0.5", 7));
    REQ_OK(cm_thresholds_add(&t, "misleading_content=0.25, 1=0.9", 7));
    REQUIRE(t.n == 3, "%d rules", t.n);
    CHECK(t.rule[0].cls == 6 && t.rule[0].p == 0.5f, "rule 0: %d %g", t.rule[0].cls, t.rule[0].p);
    CHECK(t.rule[1].cls == 2 && t.rule[1].p == 0.25f, "rule 1 by name with '_': %d %g", t.rule[1].cls, t.rule[1].p);
    CHECK(t.rule[2].cls == 1 && t.rule[2].p == 0.9f, "rule 2 by index: %d", t.rule[2].cls);
    float p[7] = {0.3f, 0.1f, 0.1f, 0.0f, 0.0f, 0.0f, 0.5f};
    bool fired[3];
    CHECK(cm_thresholds_flagged(&t, p, 7, fired), "Hate at exactly 0.5 flags (>=)");
    CHECK(fired[0] && !fired[1] && !fired[2], "only the Hate rule fired");
    char buf[256];
    int n = cm_thresholds_json(&t, p, 7, buf, sizeof buf);
    CHECK(n == (int)strlen(buf) && !strcmp(buf, "\"flagged\":true,\"flagged_by\":[\"Hate\"]"), "json %s", buf);
    p[6] = 0.4999f; p[2] = 0.26f;
    n = cm_thresholds_json(&t, p, 7, buf, sizeof buf);
    CHECK(!strcmp(buf, "\"flagged\":true,\"flagged_by\":[\"Misleading Content\"]"), "json %s", buf);
    p[2] = 0.1f;
    CHECK(!cm_thresholds_flagged(&t, p, 7, NULL), "below every threshold");
    n = cm_thresholds_json(&t, p, 7, buf, 8);
    CHECK(n == (int)strlen("\"flagged\":false,\"flagged_by\":[]") && strlen(buf) == 7, "truncation reports the needed length: %d", n);
    CmThresholds none = {0};
    CHECK(!cm_thresholds_flagged(&none, p, 7, NULL), "no rules: nothing flagged");
}

static void test_rejects(void) {
    static const char *bad[] = {"", "Hate", "Hate=", "=0.5", "Hate=1.5", "Hate=-0.1", "Hate=abc", "Hate=0.5x",
                                "Nope=0.5", "7=0.5", "Hate=0.5,Hate=0.6", "Hate=nan", "Hate=0.5,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CmThresholds t = {0};
        REQ_OK(cm_thresholds_add(&t, "True=0.9", 7));
        cm_status st = cm_thresholds_add(&t, bad[i], 7);
        CHECK(st == CM_ERR_ARG, "'%s' accepted", bad[i]);
        CHECK(t.n == 1, "'%s' changed the rules on error (%d)", bad[i], t.n);
        CHECK(strstr(cm_last_error(), "--threshold"), "'%s': message %s", bad[i], cm_last_error());
    }
    CmThresholds t = {0};
    cm_thresholds_add(&t, "Nope=0.5", 7);
    CHECK(strstr(cm_last_error(), "Nope") && strstr(cm_last_error(), "Satire/Parody"), "unknown class lists the names: %s", cm_last_error());
    REQ_OK(cm_thresholds_add(&t, "True=0.9", 7));
    CHECK(cm_thresholds_add(&t, "true=0.1", 7) == CM_ERR_ARG && strstr(cm_last_error(), "two rules"), "duplicate: %s", cm_last_error());
}

int main(void) {
    RUN(test_parse_and_decide);
    RUN(test_rejects);
    return tl_summary("test_thresholds");
}
