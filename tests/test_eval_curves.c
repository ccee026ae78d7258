/*
 * test_eval_curves.c — the report's metrics math (src/eval/curves.h) against independent
 * computations: a hand-made 8-sample problem whose AP (251/336), AUC (12/16) and curve points
 * are worked out by hand (docs/report.md); AUC against the Mann-Whitney pairwise fraction (ties
 * = 1/2) and AP against "mean over positives of the precision at the positive's own score" on
 * random scores with many ties; ECE by hand and against a per-bin brute force; edge cases (no
 * positive / no negative, NaN). Then the per-sample score file (write / read back, errors naming
 * file:line) and the HTML report on a hand-made score file over a real shard: every section,
 * an embedded JPEG thumbnail, and a hostile caption / key that come out HTML-escaped.
 */
#include "testlib.h"

#include <math.h>
#include "common/rng.h"
#include "data/image.h"
#include "data/wds.h"
#include "eval/curves.h"
#include "eval/report.h"
#include "eval/scores.h"
#include "eval/metrics.h"
#include "cli/train_flags.h"
#include "../src/cli/args.c"          /* the CLI flag code is not in libclipmod.a */
#include "../src/cli/train_flags.c"

static const float HS[8] = {0.9f, 0.8f, 0.8f, 0.7f, 0.6f, 0.4f, 0.4f, 0.2f};
static const uint8_t HP[8] = {1, 1, 0, 1, 0, 1, 0, 0};

static void test_hand_pr(void) {
    CmCurve c;
    REQ_OK(cm_pr_curve(HS, HP, 8, &c));
    /* distinct thresholds 0.9 0.8 0.7 0.6 0.4 0.2: (tp, fp) = (1,0) (2,1) (3,1) (3,2) (4,3) (4,4) */
    const double R[6] = {0.25, 0.5, 0.75, 0.75, 1, 1}, P[6] = {1, 2.0 / 3, 0.75, 0.6, 4.0 / 7, 0.5};
    REQUIRE(c.n == 6, "%lld points, want 6 (one per distinct score)", (long long)c.n);
    for (int i = 0; i < 6; i++) {
        CHECK(fabs(c.x[i] - R[i]) < 1e-15, "recall[%d] %g want %g", i, c.x[i], R[i]);
        CHECK(fabs(c.y[i] - P[i]) < 1e-15, "precision[%d] %g want %g", i, c.y[i], P[i]);
    }
    CHECK(fabs(c.thr[1] - 0.8f) < 1e-9, "threshold[1] %g", c.thr[1]);
    double ap = cm_curve_ap(&c);
    CHECK(fabs(ap - 251.0 / 336.0) < 1e-15, "AP %.17g want 251/336 = %.17g", ap, 251.0 / 336.0);
    cm_curve_free(&c);
}

static void test_hand_roc(void) {
    CmCurve c;
    REQ_OK(cm_roc_curve(HS, HP, 8, &c));
    const double F[7] = {0, 0, 0.25, 0.25, 0.5, 0.75, 1}, T[7] = {0, 0.25, 0.5, 0.75, 0.75, 1, 1};
    REQUIRE(c.n == 7, "%lld points, want 7 ((0,0) + 6 thresholds)", (long long)c.n);
    for (int i = 0; i < 7; i++)
        CHECK(c.x[i] == F[i] && c.y[i] == T[i], "point %d (%g, %g) want (%g, %g)", i, c.x[i], c.y[i], F[i], T[i]);
    CHECK(isinf(c.thr[0]), "first threshold is +inf");
    double auc = cm_curve_auc(&c);
    CHECK(fabs(auc - 0.75) < 1e-15, "AUC %.17g want 12/16", auc);
    cm_curve_free(&c);
}

/* independent: pairwise fraction, ties 1/2 */
static double mann_whitney(const float *s, const uint8_t *p, int n) {
    double num = 0, pairs = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (p[i] && !p[j]) { pairs++; num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0; }
    return pairs ? num / pairs : NAN;
}

/* independent: mean over positives of precision at threshold = that positive's score */
static double brute_ap(const float *s, const uint8_t *p, int n) {
    double sum = 0;
    int np = 0;
    for (int i = 0; i < n; i++) {
        if (!p[i]) continue;
        int tp = 0, all = 0;
        for (int j = 0; j < n; j++) if (s[j] >= s[i]) { all++; tp += p[j] != 0; }
        sum += (double)tp / all;
        np++;
    }
    return np ? sum / np : NAN;
}

static void test_random_against_brute_force(void) {
    CmRng rng;
    cm_rng_seed(&rng, 1234);
    enum { N = 600 };
    static float s[N];
    static uint8_t p[N];
    for (int trial = 0; trial < 12; trial++) {
        int levels = trial < 4 ? 5 : trial < 8 ? 50 : 100000;   /* heavy ties .. nearly none */
        double base = 0.1 + 0.07 * trial;
        for (int i = 0; i < N; i++) {
            p[i] = cm_rng_uniform(&rng) < base;
            double u = cm_rng_uniform(&rng) * 0.7 + (p[i] ? 0.3 * cm_rng_uniform(&rng) : 0);
            s[i] = (float)(floor(u * levels) / levels);
        }
        double a = cm_roc_auc(s, p, N), want_a = mann_whitney(s, p, N);
        double ap = cm_average_precision(s, p, N), want_ap = brute_ap(s, p, N);
        CHECK(fabs(a - want_a) < 1e-12, "trial %d: AUC %.15g, Mann-Whitney %.15g", trial, a, want_a);
        CHECK(fabs(ap - want_ap) < 1e-12, "trial %d: AP %.15g, brute force %.15g", trial, ap, want_ap);
    }
}

static void test_edge_cases(void) {
    const float s[3] = {0.3f, 0.2f, 0.1f};
    const uint8_t none[3] = {0, 0, 0}, all[3] = {1, 1, 1};
    CHECK(isnan(cm_average_precision(s, none, 3)), "AP without positives is undefined");
    CHECK(isnan(cm_roc_auc(s, none, 3)), "AUC without positives is undefined");
    CHECK(isnan(cm_roc_auc(s, all, 3)), "AUC without negatives is undefined");
    CHECK(fabs(cm_average_precision(s, all, 3) - 1) < 1e-15, "AP with only positives is 1");
    const float ties[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t half[4] = {1, 0, 1, 0};
    CHECK(fabs(cm_roc_auc(ties, half, 4) - 0.5) < 1e-15, "all tied: AUC 1/2");
    CHECK(fabs(cm_average_precision(ties, half, 4) - 0.5) < 1e-15, "all tied: AP = prevalence");
    float bad[2] = {0.1f, NAN};
    const uint8_t bp[2] = {1, 0};
    CmCurve c;
    CHECK(cm_pr_curve(bad, bp, 2, &c) == CM_ERR_ARG && strstr(cm_last_error(), "sample 1"), "NaN named: %s", cm_last_error());
    REQ_OK(cm_roc_curve(s, none, 0, &c));
    CHECK(c.n == 1 && isnan(cm_curve_auc(&c)), "empty input: one point, AUC undefined");
    cm_curve_free(&c);
}

static double brute_ece(const float *conf, const uint8_t *ok, int n) {
    double e = 0;
    for (int b = 0; b < 15; b++) {
        double lo = b / 15.0, hi = (b + 1) / 15.0, sc = 0, sa = 0;
        int k = 0;
        for (int i = 0; i < n; i++)
            if (((double)conf[i] > lo || (b == 0 && conf[i] == 0)) && (double)conf[i] <= hi) { k++; sc += conf[i]; sa += ok[i]; }
        if (k) e += (double)k / n * fabs(sa / k - sc / k);
    }
    return e;
}

static void test_ece(void) {
    const float conf[6] = {0.95f, 0.95f, 0.55f, 0.55f, 0.55f, 0.25f};
    const uint8_t ok[6] = {1, 0, 1, 1, 0, 0};
    CmCalib c;
    REQ_OK(cm_calibration(conf, ok, 6, &c));
    /* bins 14 {.95,.95: acc .5}, 8 {.55 x3: acc 2/3}, 3 {.25: acc 0} */
    double want = 2.0 / 6 * fabs(0.5 - 0.95) + 3.0 / 6 * fabs(2.0 / 3 - 0.55) + 1.0 / 6 * 0.25;
    CHECK(fabs(c.ece - want) < 1e-7, "ECE %.9g want %.9g", c.ece, want);
    CHECK(c.count[14] == 2 && c.count[8] == 3 && c.count[3] == 1, "bin counts %lld %lld %lld", (long long)c.count[14],
          (long long)c.count[8], (long long)c.count[3]);
    CHECK(fabs(c.accuracy - 0.5) < 1e-15, "accuracy %g", c.accuracy);
    /* edges: 1 goes to the last bin, 0 to the first */
    const float edge[2] = {1.0f, 0.0f};
    const uint8_t eok[2] = {1, 1};
    REQ_OK(cm_calibration(edge, eok, 2, &c));
    CHECK(c.count[14] == 1 && c.count[0] == 1, "edges: %lld %lld", (long long)c.count[14], (long long)c.count[0]);
    /* random, against the brute force */
    CmRng rng;
    cm_rng_seed(&rng, 99);
    static float rc[2000];
    static uint8_t rk[2000];
    for (int i = 0; i < 2000; i++) {
        rc[i] = (float)(1.0 / 7 + cm_rng_uniform(&rng) * (1 - 1.0 / 7));
        if (i % 50 == 0) rc[i] = (float)((i / 50 % 15 + 1) / 15.0);   /* on (rounded) bin edges */
        rk[i] = cm_rng_uniform(&rng) < rc[i] * 0.9;
    }
    REQ_OK(cm_calibration(rc, rk, 2000, &c));
    double bf = brute_ece(rc, rk, 2000);
    CHECK(fabs(c.ece - bf) < 1e-12, "ECE %.15g, brute force %.15g", c.ece, bf);
    float out[1] = {1.5f};
    CHECK(cm_calibration(out, rk, 1, &c) == CM_ERR_ARG, "confidence outside [0,1] refused");
}

// ---------------------------------------------------------------------------------------------
// score files and the report on a hand-made score file

static char g_shard[600];

static void make_shard(void) {
    CmImage img = {32, 24, NULL};
    img.rgb = cm_malloc(32 * 24 * 3, "test image");
    REQUIRE(img.rgb, "alloc");
    for (int i = 0; i < 32 * 24; i++) { img.rgb[3 * i] = (uint8_t)(i * 7); img.rgb[3 * i + 1] = 200; img.rgb[3 * i + 2] = (uint8_t)i; }
    uint8_t *jpg = NULL;
    size_t jl = 0;
    REQ_OK(cm_jpeg_encode(&img, 90, &jpg, &jl));
    cm_free(img.rgb);
    snprintf(g_shard, sizeof g_shard, "%s", tl_tmp("shard"));
    REQUIRE(!cm_mkdir_p(g_shard), "mkdir");
    CmShardWriter *w;
    REQ_OK(cm_shard_writer_open(g_shard, 100, &w));
    const char *caps[3] = {"a calm caption", "<script>alert(1)</script> & \"quoted\" 'x'", "third"};
    const char *keys[3] = {"k0", "k<1>", "k2"};
    for (int i = 0; i < 3; i++) {
        CmWdsOut f[2] = {{"jpg", jpg, jl}, {"txt", caps[i], strlen(caps[i])}};
        REQ_OK(cm_shard_writer_write(w, keys[i], f, 2));
    }
    free(jpg);
    REQ_OK(cm_shard_writer_close(w));
    snprintf(g_shard + strlen(g_shard), sizeof g_shard - strlen(g_shard), "/00000.tar");
    REQUIRE(cm_file_exists(g_shard), "shard %s written", g_shard);
}

static void test_scores_roundtrip_and_errors(void) {
    CmScores s;
    cm_scores_init(&s, 3);
    const float p0[3] = {0.7f, 0.2f, 0.1f}, p1[3] = {0.1f, 0.3f, 0.6f}, p2[3] = {0.4f, 0.4f, 0.2f};
    REQ_OK(cm_scores_add(&s, "a\"b", "/x/y.tar", 0, p0));
    REQ_OK(cm_scores_add(&s, "c", "/x/y.tar", 1, p1));
    REQ_OK(cm_scores_add(&s, "d", "/x/z.tar", 1, p2));
    CHECK(s.n_urls == 2, "urls interned: %d", s.n_urls);
    CHECK(cm_scores_pred(&s, 2) == 0, "tie -> lower class");
    CHECK(cm_scores_add(&s, "e", "", 3, p0) == CM_ERR_ARG, "label out of range refused");
    const char *path = tl_tmp("s.jsonl");
    REQ_OK(cm_scores_write(&s, path));
    CmScores r;
    REQ_OK(cm_scores_read(path, &r));
    CHECK(r.n == 3 && r.k == 3 && !strcmp(r.key[0], "a\"b") && !strcmp(cm_scores_url(&r, 2), "/x/z.tar") && r.label[1] == 1,
          "read back: n %lld k %d key0 %s", (long long)r.n, r.k, r.n ? r.key[0] : "");
    for (int i = 0; i < 3 && r.n == 3; i++)
        for (int c = 0; c < 3; c++) CHECK(cm_scores_probs(&r, i)[c] == cm_scores_probs(&s, i)[c], "prob %d/%d exact", i, c);
    cm_scores_free(&r);
    cm_scores_free(&s);
    const char *bad = tl_tmp("bad.jsonl");
    tl_write_text(bad, "{\"label\":0,\"probs\":[0.5,0.5]}\n{\"label\":0,\"probs\":[0.5,0.25,0.25]}\n");
    CHECK(cm_scores_read(bad, &r) == CM_ERR_FORMAT && strstr(cm_last_error(), "bad.jsonl:2"), "count change named: %s", cm_last_error());
    tl_write_text(bad, "{\"label\":5,\"probs\":[0.5,0.5]}\n");
    CHECK(cm_scores_read(bad, &r) && strstr(cm_last_error(), "bad.jsonl:1"), "label range named: %s", cm_last_error());
    tl_write_text(bad, "not json\n");
    CHECK(cm_scores_read(bad, &r) == CM_ERR_FORMAT && strstr(cm_last_error(), ":1: not a JSON object"), "garbage: %s", cm_last_error());
    tl_write_text(bad, "{\"label\":0,\"probs\":[0.5,1.5]}\n");
    CHECK(cm_scores_read(bad, &r) == CM_ERR_FORMAT && strstr(cm_last_error(), "probability 1"), "range: %s", cm_last_error());
    tl_write_text(bad, "\n");
    CHECK(cm_scores_read(bad, &r) == CM_ERR_FORMAT && strstr(cm_last_error(), "no scores"), "empty: %s", cm_last_error());
    CHECK(cm_scores_read(tl_tmp("missing.jsonl"), &r) == CM_ERR_IO, "missing file");
}

/* the whole file, NUL-terminated (free()) */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *h = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (h && fread(h, 1, (size_t)n, f) != (size_t)n) { free(h); h = NULL; }
    if (h) h[n] = 0;
    fclose(f);
    return h;
}

static long pos_of(const char *h, const char *needle) {
    const char *p = strstr(h, needle);
    return p ? (long)(p - h) : -1;
}

static void test_report_on_hand_made_scores(void) {
    make_shard();
    /* 7 classes; samples k0 (label 2, right), k<1> (label 3, predicted 5 with p .9: the top mistake),
       k2 (label 0, predicted 1), and one whose shard is gone */
    const char *sp = tl_tmp("hand.jsonl");
    char txt[4096];
    snprintf(txt, sizeof txt,
             "{\"key\":\"k0\",\"url\":\"%s\",\"label\":2,\"probs\":[0.05,0.05,0.6,0.1,0.1,0.05,0.05]}\n"
             "{\"key\":\"k<1>\",\"url\":\"%s\",\"label\":3,\"probs\":[0.02,0.02,0.02,0.02,0.01,0.9,0.01]}\n"
             "{\"key\":\"k2\",\"url\":\"%s\",\"label\":0,\"probs\":[0.3,0.4,0.1,0.05,0.05,0.05,0.05]}\n"
             "{\"key\":\"gone\",\"url\":\"%s/nope.tar\",\"label\":6,\"probs\":[0.5,0.1,0.1,0.1,0.1,0.05,0.05]}\n",
             g_shard, g_shard, g_shard, tl_tmp(""));
    tl_write_text(sp, txt);
    CmReportOpts o = cm_report_opts_default();
    o.scores_path = sp;
    const char *out = tl_tmp("hand.html");
    REQ_OK(cm_report_html(&o, out));
    char *h = slurp(out);
    REQUIRE(h, "report readable");
    const char *ids[] = {"sec-summary", "sec-loss", "sec-lr", "sec-logit-scale", "sec-validation", "sec-classes",
                         "sec-confusion", "sec-pr", "sec-roc", "sec-calibration", "sec-mistakes"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "<section id=\"%s\">", ids[i]);
        CHECK(strstr(h, want), "section %s present", ids[i]);
    }
    CHECK(strstr(h, "No run folder given"), "training sections say what is missing");
    CHECK(strstr(h, "data:image/jpeg;base64,/9j/"), "a JPEG thumbnail is embedded");
    CHECK(!strstr(h, "<script>alert"), "the caption's markup is escaped");
    CHECK(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;x&#39;"), "escaped caption present");
    CHECK(strstr(h, "key k&lt;1&gt;"), "key escaped");
    CHECK(strstr(h, "image unavailable: cannot read the shard"), "a gone shard only loses its thumbnail");
    /* the most confident mistake comes first */
    long m1 = pos_of(h, "predicted 5 Manipulated Content (p = 0.900)"), m2 = pos_of(h, "predicted 1 Satire/Parody (p = 0.400)");
    CHECK(m1 >= 0 && m2 >= 0 && m1 < m2, "mistakes ordered by confidence: %ld %ld", m1, m2);
    /* ECE of the four: conf .6 (right), .9, .4, .5 (wrong): bins 8, 13, 5, 7 -> (|1-.6| + .9 + .4 + .5) / 4 */
    char ece[64];
    snprintf(ece, sizeof ece, "<b id=\"ece\">%.4f</b>", (0.4 + 0.9 + 0.4 + 0.5) / 4);
    CHECK(strstr(h, ece), "ECE shown as %s", ece);
    CHECK(!strstr(h, "http://") || !strstr(h, "src=\"http"), "no network resource");
    CHECK(!strstr(h, "<script"), "no script at all");
    free(h);
    /* a run folder that does not exist is an error; one with nothing in it gives a report */
    CmReportOpts r = cm_report_opts_default();
    r.run_dir = tl_tmp("no-such-run");
    CHECK(cm_report_html(&r, tl_tmp("x.html")) == CM_ERR_IO && strstr(cm_last_error(), "no-such-run"), "missing run: %s", cm_last_error());
    r.run_dir = tl_tmp("shard");
    REQ_OK(cm_report_html(&r, tl_tmp("empty.html")));
    h = slurp(tl_tmp("empty.html"));
    CHECK(h && strstr(h, "No per-sample scores") && strstr(h, "steps.jsonl"), "empty run: sections say so");
    free(h);
    char esc[16];
    CHECK(cm_html_escape("<&>", esc, sizeof esc) == 13 && !strcmp(esc, "&lt;&amp;&gt;"), "cm_html_escape: %s", esc);
    CHECK(cm_html_escape("<<<<", esc, 6) == 16 && strlen(esc) < 6, "cm_html_escape truncates safely");
}

/* a run folder by hand: a resumed run's repeated steps, a cut last line, two validations, no scores */
static void test_report_on_hand_made_run(void) {
    const char *run = tl_tmp("run");
    REQUIRE(!cm_mkdir_p(run), "mkdir");
    char p[600];
    snprintf(p, sizeof p, "%s/steps.jsonl", run);
    tl_write_text(p,
        "{\"step\":1,\"epoch\":0,\"loss\":5,\"contrastive\":3,\"classification\":2,\"lr\":1e-4,\"logit_scale\":14.3,\"samples_per_s\":50}\n"
        "{\"step\":2,\"epoch\":0,\"loss\":4.5,\"contrastive\":2.8,\"classification\":1.7,\"lr\":2e-4,\"logit_scale\":14.2,\"samples_per_s\":55}\n"
        "{\"step\":3,\"epoch\":1,\"loss\":99,\"contrastive\":3,\"classification\":2,\"lr\":1e-4,\"logit_scale\":14.1,\"samples_per_s\":50}\n"
        "{\"step\":3,\"epoch\":1,\"loss\":4.2,\"contrastive\":2.6,\"classification\":1.6,\"lr\":1e-4,\"logit_scale\":14.1,\"samples_per_s\":50}\n"
        "{\"step\":4,\"epoch\":1,\"loss\":4.0,\"contrastive\":2.5,\"classification\":1.5,\"lr\":5e-5,\"logit_scale\":14.0,\"samples_per_s\":52}\n"
        "{\"step\":5,\"epo");
    snprintf(p, sizeof p, "%s/results.jsonl", run);
    tl_write_text(p,
        "{\"epoch\":1,\"step\":2,\"n\":4,\"top1\":0.25,\"top2\":0.5,\"macro_f1\":0.1,\"confusion\":[[1,1],[2,0]]}\n"
        "{\"epoch\":2,\"step\":4,\"n\":4,\"top1\":0.75,\"top2\":1,\"macro_f1\":0.7333333333,\"confusion\":[[2,0],[1,1]]}\n");
    CmReportOpts o = cm_report_opts_default();
    o.run_dir = run;
    o.title = "<b>title</b>";
    REQ_OK(cm_report_html(&o, tl_tmp("run.html")));
    char *h = slurp(tl_tmp("run.html"));
    REQUIRE(h, "report");
    CHECK(strstr(h, "4 (last: step 4)"), "steps deduplicated (a resumed run's later lines win), the cut line skipped");
    /* the superseded step-3 loss (99) would stretch the loss axis to 100 */
    CHECK(!strstr(h, ">100</text>") && !strstr(h, ">80</text>") && strstr(h, ">5</text>"), "the superseded step-3 loss is not drawn");
    CHECK(strstr(h, "the run&#39;s last validation (epoch 2"), "per-class table from results.jsonl");
    /* epoch 2 confusion [[2,0],[1,1]]: class 0 P 2/3 R 1, class 1 P 1 R 1/2 */
    CHECK(strstr(h, "<td>class 0</td><td>0.6667</td><td>1.0000</td><td>0.8000</td><td>2</td>"), "class 0 row from the confusion matrix");
    CHECK(strstr(h, "&lt;b&gt;title&lt;/b&gt;") && !strstr(h, "<b>title"), "title escaped");
    CHECK(strstr(h, "No per-sample scores"), "score sections say what is missing");
    long loss = pos_of(h, "id=\"sec-loss\""), miss = pos_of(h, "class=\"missing\"");
    CHECK(loss >= 0 && miss > loss, "the training sections are drawn (first 'missing' after them)");
    free(h);
}

static void test_report_to_parsing(void) {
    CmTrainOpts o;
    memset(&o, 0, sizeof o);
    const char *yes[] = {"html", "tensorboard,html", " HTML ", "wandb, html ,tensorboard"};
    const char *no[] = {"", "tensorboard", "wandb,tensorboard", "htmlx", "xhtml", "ht ml"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) { o.report_to = yes[i]; CHECK(cm_train_opts_report_html(&o), "'%s' names html", yes[i]); }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) { o.report_to = no[i]; CHECK(!cm_train_opts_report_html(&o), "'%s' does not", no[i]); }
    o.report_to = NULL;
    CHECK(!cm_train_opts_report_html(&o), "NULL");
}

/* src/eval's confusion numbers (the report) == src/train/metrics.c's (eval / validation) */
static void test_confusion_agrees_with_metrics(void) {
    CmRng rng;
    cm_rng_seed(&rng, 5);
    CmConfusion c;
    CmMetrics m;
    cm_confusion_init(&c, 7);
    cm_metrics_init(&m, 7);
    for (int i = 0; i < 500; i++) {
        float z[7];
        for (int k = 0; k < 7; k++) z[k] = (float)floor(cm_rng_uniform(&rng) * 4);   /* many ties */
        int32_t y = (int32_t)cm_rng_below(&rng, 7);
        REQ_OK(cm_confusion_add(&c, z, y));
        REQ_OK(cm_metrics_add(&m, z, &y, 1));
    }
    CHECK(c.n == m.n && c.top1 == m.top1 && c.top2 == m.top2, "top-k: %lld/%lld %lld/%lld", (long long)c.top1,
          (long long)m.top1, (long long)c.top2, (long long)m.top2);
    int same = 1;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 7; j++) same &= c.m[i][j] == m.confusion[i][j];
    CHECK(same, "confusion matrices equal");
    for (int k = 0; k < 7; k++) {
        CmPrf a = cm_confusion_class(&c, k);
        CmClassStats b = cm_metrics_class(&m, k);
        CHECK(a.precision == b.precision && a.recall == b.recall && a.f1 == b.f1 && a.support == b.support, "class %d", k);
    }
    CHECK(cm_confusion_macro_f1(&c) == cm_metrics_macro_f1(&m), "macro-F1 %g vs %g", cm_confusion_macro_f1(&c), cm_metrics_macro_f1(&m));
    float z[7] = {0};
    CHECK(cm_confusion_add(&c, z, 7) == CM_ERR_ARG, "label out of range");
}

int main(void) {
    if (!tl_tmpdir_make("eval_curves")) { perror("mkdtemp"); return 1; }
    RUN(test_hand_pr);
    RUN(test_hand_roc);
    RUN(test_random_against_brute_force);
    RUN(test_edge_cases);
    RUN(test_ece);
    RUN(test_scores_roundtrip_and_errors);
    RUN(test_report_on_hand_made_scores);
    RUN(test_report_on_hand_made_run);
    RUN(test_report_to_parsing);
    RUN(test_confusion_agrees_with_metrics);
    tl_tmpdir_remove();
    return tl_summary("test_eval_curves");
}
