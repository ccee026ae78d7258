/*
 * test_report_cli.c — the HTML report end to end, as users make it: a short `clipmod demo` run
 * with --report-to html,tensorboard (steps.jsonl, val_scores.jsonl and report.html in the run
 * folder; tensorboard still warned about), `clipmod eval --scores-out --html` on its checkpoint
 * (one line per held-out sample naming its key and shard, consistent with the eval table), then
 * `clipmod report RUN --eval SCORES`. Debian's chromium (headless) loads the report: the DOM it
 * dumps must hold every section and non-empty SVG plots, and a screenshot goes to
 * $BUILD/report_screenshot.png. Without chromium the browser part is SKIPPED (a failure when
 * CI=true); $CLIPMOD_CHROMIUM names another browser binary. Also bad usage / bad inputs.
 */
#include "testlib.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256], run_dir[400], val_urls[600];
static char g_out[1 << 16], g_err[1 << 16];

static int clipmod(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int clipmod(const char *fmt, ...) {
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tl_run_clipmod(args, g_out, sizeof g_out, g_err, sizeof g_err);
}

/* whole file, NUL-terminated (free()); NULL when unreadable */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *h = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (h && fread(h, 1, (size_t)n, f) != (size_t)n) { free(h); h = NULL; }
    if (h) h[n] = 0;
    fclose(f);
    if (len) *len = h ? (size_t)n : 0;
    return h;
}

static int count_lines(const char *path, const char *must_have) {
    char *s = slurp(path, NULL);
    if (!s) return -1;
    int n = 0;
    for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(l);
        if (j && (!must_have || cJSON_GetObjectItemCaseSensitive(j, must_have))) n++;
        cJSON_Delete(j);
    }
    free(s);
    return n;
}

static bool g_trained;

static void test_train_with_html_report(void) {
    CLIPMOD_BIN_OR_SKIP();
    int rc = clipmod("demo --data-dir %s/d --train-samples 256 --val-samples 70 --epochs 2 --batch-size 32 --warmup 4 "
                     "--report-to html,tensorboard", tmpdir);
    REQUIRE(rc == 0, "demo exit %d: %s", rc, g_err);
    snprintf(run_dir, sizeof run_dir, "%s/d/logs/demo", tmpdir);
    /* "/./": the scores must record the shard's absolute (resolved) path */
    snprintf(val_urls, sizeof val_urls, "%s/d/./val/{00000..00000}.tar", tmpdir);
    CHECK(strstr(g_err, "tensorboard") && strstr(g_err, "not available"), "tensorboard still warned: %s", g_err);
    char p[600];
    snprintf(p, sizeof p, "%s/steps.jsonl", run_dir);
    /* 256 / 32 = 8 steps per epoch, 2 epochs; every line has the loss components */
    CHECK(count_lines(p, "contrastive") == 16, "steps.jsonl: %d lines with losses, want 16", count_lines(p, "contrastive"));
    char *s = slurp(p, NULL);
    REQUIRE(s, "steps.jsonl readable");
    char *last = strrchr(s, '{');
    cJSON *j = last ? cJSON_Parse(last) : NULL;
    CHECK(j && cJSON_GetObjectItem(j, "step")->valuedouble == 16 && cJSON_GetObjectItem(j, "epoch")->valuedouble == 1 &&
          cJSON_GetObjectItem(j, "lr") && cJSON_GetObjectItem(j, "logit_scale") && cJSON_GetObjectItem(j, "samples_per_s") &&
          cJSON_GetObjectItem(j, "data_time") && cJSON_GetObjectItem(j, "classification") && cJSON_GetObjectItem(j, "loss"),
          "last step line: %s", last ? last : "(none)");
    cJSON_Delete(j);
    free(s);
    snprintf(p, sizeof p, "%s/val_scores.jsonl", run_dir);
    CHECK(count_lines(p, "probs") == 70, "val_scores.jsonl: %d lines, want 70", count_lines(p, "probs"));
    snprintf(p, sizeof p, "%s/report.html", run_dir);
    size_t n = 0;
    char *h = slurp(p, &n);
    CHECK(h && strstr(h, "id=\"sec-pr\"") && strstr(h, "data:image/jpeg;base64,") && !strstr(h, "No per-sample scores"),
          "the run's report.html has curves and thumbnails from the last validation (%zu bytes)", n);
    free(h);
    g_trained = true;
}

static void test_eval_scores_out(void) {
    if (!g_trained) { fprintf(stderr, "  SKIPPED: no run\n"); tl_skip++; return; }
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/epoch_2.safetensors", run_dir);
    int rc = clipmod("eval --model %s --val-data '%s' --batch-size 16 --json --scores-out %s --html %s", ckpt, val_urls,
                     tl_tmp("scores.jsonl"), tl_tmp("eval.html"));
    REQUIRE(rc == 0, "eval exit %d: %s", rc, g_err);
    cJSON *ev = cJSON_Parse(g_out);
    REQUIRE(ev, "eval --json: %s", g_out);
    double top1 = cJSON_GetObjectItem(ev, "top1")->valuedouble;
    cJSON_Delete(ev);
    char *s = slurp(tl_tmp("scores.jsonl"), NULL);
    REQUIRE(s, "scores file");
    int n = 0, right = 0, keyed = 0;
    char shard[700];
    snprintf(shard, sizeof shard, "%s/d/val/00000.tar", tmpdir);
    for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(l);
        if (!j) continue;
        n++;
        const cJSON *key = cJSON_GetObjectItem(j, "key"), *url = cJSON_GetObjectItem(j, "url"), *pr = cJSON_GetObjectItem(j, "probs");
        int label = cJSON_GetObjectItem(j, "label")->valueint, pred = cJSON_GetObjectItem(j, "pred")->valueint;
        right += label == pred;
        double sum = 0;
        for (int c = 0; c < cJSON_GetArraySize(pr); c++) sum += cJSON_GetArrayItem(pr, c)->valuedouble;
        char want_key[32];
        snprintf(want_key, sizeof want_key, "val-%07d", n - 1);
        keyed += cJSON_GetArraySize(pr) == 7 && fabs(sum - 1) < 1e-5 && cJSON_IsString(key) && !strcmp(key->valuestring, want_key) &&
                 cJSON_IsString(url) && !strcmp(url->valuestring, shard);
        cJSON_Delete(j);
    }
    free(s);
    CHECK(n == 70 && keyed == 70, "%d lines, %d with key val-NNNNNNN in order, the shard's resolved path, 7 probabilities summing to 1", n, keyed);
    CHECK(fabs((double)right / n - top1) < 1e-9, "pred == label fraction %g, eval top1 %g", (double)right / n, top1);
    size_t hl = 0;
    char *h = slurp(tl_tmp("eval.html"), &hl);
    CHECK(h && strstr(h, "clipmod eval --model") && strstr(h, "id=\"sec-mistakes\""), "eval --html wrote the report (%zu bytes)", hl);
    free(h);
    rc = clipmod("report %s --eval %s --out %s", run_dir, tl_tmp("scores.jsonl"), tl_tmp("report.html"));
    CHECK(rc == 0 && strstr(g_err, "wrote"), "report exit %d: %s", rc, g_err);
}

/* the part of the DOM from <section id="ID"> to its </section> (points into dom) */
static const char *section(const char *dom, const char *id, size_t *len) {
    char want[80];
    snprintf(want, sizeof want, "<section id=\"%s\">", id);
    const char *a = strstr(dom, want);
    if (!a) return NULL;
    const char *b = strstr(a, "</section>");
    *len = b ? (size_t)(b - a) : strlen(a);
    return a;
}

/* paths in [s, s+len) whose d= has at least `min_pts` vertices */
static int data_paths(const char *s, size_t len, int min_pts) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, " d=\"M")) && p < s + len; p++) {
        int pts = 1;
        for (const char *q = p + 5; *q && *q != '"'; q++) pts += *q == 'L' || *q == 'H' || *q == 'V';
        n += pts >= min_pts;
    }
    return n;
}

static int count_in(const char *s, size_t len, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) && p < s + len; p++) n++;
    return n;
}

/* $CLIPMOD_CHROMIUM (a path or name), else the first of chromium / chromium-browser /
   google-chrome on PATH; NULL when none runs */
static const char *find_chromium(void) {
    static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
    static char buf[300];
    const char *env = getenv("CLIPMOD_CHROMIUM");
    if (env && *env) {
        snprintf(buf, sizeof buf, "command -v '%s' >/dev/null 2>&1", env);
        return strchr(env, '\'') || system(buf) ? NULL : env;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(buf, sizeof buf, "command -v %s >/dev/null 2>&1", names[i]);
        if (system(buf) == 0) return names[i];
    }
    return NULL;
}

static bool browser_unavailable(const char *why) {
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true")) {
        CHECK(0, "CI=true but the browser check cannot run: %s", why);
        return true;
    }
    fprintf(stderr, "  SKIPPED: %s\n", why);
    tl_skip++;
    return true;
}

static void test_chromium_renders_report(void) {
    if (!g_trained) { fprintf(stderr, "  SKIPPED: no run\n"); tl_skip++; return; }
    const char *chrome = find_chromium();
    if (!chrome) { browser_unavailable("chromium is not installed (scripts/install-deps.sh installs it)"); return; }
    const char *html = tl_tmp("report.html"), *dom_path = tl_tmp("dom.html");
    REQUIRE(cm_file_exists(html), "report.html from the previous case");
    char cmd[2400];
    const char *flags = "--headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars --user-data-dir=";
    snprintf(cmd, sizeof cmd, "timeout 90 %s %s%s/chrome-profile --dump-dom 'file://%s' >%s 2>%s", chrome, flags, tmpdir, html,
             dom_path, tl_tmp("chrome.err"));
    int rc = system(cmd);
    size_t dl = 0;
    char *dom = slurp(dom_path, &dl);
    if (rc != 0 || !dom || dl < 1000) {
        char *e = slurp(tl_tmp("chrome.err"), NULL);
        char why[700];
        snprintf(why, sizeof why, "%s could not load the page (status %d): %.400s", chrome, rc, e ? e : "");
        free(e);
        free(dom);
        browser_unavailable(why);
        return;
    }
    static const struct { const char *id; int min_paths; } S[] = {
        {"sec-summary", 0}, {"sec-loss", 3}, {"sec-lr", 1}, {"sec-logit-scale", 2}, {"sec-validation", 3},
        {"sec-classes", 0}, {"sec-confusion", 0}, {"sec-pr", 3}, {"sec-roc", 3}, {"sec-calibration", 1}, {"sec-mistakes", 0}};
    for (size_t i = 0; i < sizeof S / sizeof S[0]; i++) {
        size_t len = 0;
        const char *s = section(dom, S[i].id, &len);
        CHECK(s, "DOM has section %s", S[i].id);
        if (!s || !S[i].min_paths) continue;
        int np = data_paths(s, len, 2);
        CHECK(count_in(s, len, "<svg") >= 1 && np >= S[i].min_paths, "%s: %d plotted paths, want >= %d", S[i].id, np, S[i].min_paths);
        CHECK(!strstr(s, "class=\"missing\""), "%s is not marked missing", S[i].id);
    }
    size_t len = 0;
    const char *s = section(dom, "sec-confusion", &len);
    CHECK(s && count_in(s, len, "<rect") >= 49, "confusion: %d cells", s ? count_in(s, len, "<rect") : 0);
    s = section(dom, "sec-classes", &len);
    CHECK(s && count_in(s, len, "<tr>") >= 9, "per-class table: %d rows", s ? count_in(s, len, "<tr>") : 0);
    s = section(dom, "sec-mistakes", &len);
    CHECK(s && count_in(s, len, "src=\"data:image/jpeg;base64,") >= 1, "mistakes have thumbnails");
    free(dom);

    /* screenshot: a PNG of the whole page, under the build folder */
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char shot[600];
    snprintf(shot, sizeof shot, "%s/report_screenshot.png", bd);
    unlink(shot);
    snprintf(cmd, sizeof cmd, "timeout 90 %s %s%s/chrome-profile --window-size=1280,5600 --screenshot=%s 'file://%s' >/dev/null 2>&1",
             chrome, flags, tmpdir, shot, html);
    rc = system(cmd);
    size_t pl = 0;
    char *png = slurp(shot, &pl);
    CHECK(rc == 0 && png && pl > 60000 && !memcmp(png, "\x89PNG", 4), "screenshot %s: status %d, %zu bytes", shot, rc, pl);
    if (png && pl > 24) {
        uint32_t w = (uint32_t)(uint8_t)png[16] << 24 | (uint32_t)(uint8_t)png[17] << 16 | (uint32_t)(uint8_t)png[18] << 8 | (uint8_t)png[19];
        CHECK(w >= 1000, "screenshot width %u", w);
    }
    free(png);
}

static void test_usage_and_bad_inputs(void) {
    CLIPMOD_BIN_OR_SKIP();
    int rc = clipmod("report");
    CHECK(rc == 2 && strstr(g_err, "RUN_DIR"), "no argument: %d %s", rc, g_err);
    rc = clipmod("report --eval x.jsonl");
    CHECK(rc == 2 && strstr(g_err, "--out"), "--eval without --out: %d %s", rc, g_err);
    rc = clipmod("report %s/no-such-run", tmpdir);
    CHECK(rc == 1 && strstr(g_err, "no-such-run"), "missing run folder: %d %s", rc, g_err);
    tl_write_text(tl_tmp("bad.jsonl"), "{\"label\":0,\"probs\":[0.5,0.5]}\n{\"label\":0,\"probs\":\"x\"}\n");
    rc = clipmod("report --eval %s --out %s", tl_tmp("bad.jsonl"), tl_tmp("bad.html"));
    CHECK(rc == 1 && strstr(g_err, "bad.jsonl:2"), "bad scores named by line: %d %s", rc, g_err);
    CHECK(!cm_file_exists(tl_tmp("bad.html")), "no report written on error");
    rc = clipmod("report a b --out x.html");
    CHECK(rc == 2, "two run folders: %d", rc);
    rc = clipmod("report --help");
    CHECK(rc == 0 && strstr(g_out, "--eval"), "help: %d", rc);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipmod_test_report.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(tl_tmpdir, sizeof tl_tmpdir, "%s", tmpdir);
    RUN(test_train_with_html_report);
    RUN(test_eval_scores_out);
    RUN(test_chromium_renders_report);
    RUN(test_usage_and_bad_inputs);
    tl_tmpdir_remove();
    return tl_summary("test_report_cli");
}
