/*
 * test_demo.c — the demo's pieces: the byte-level tokenizer, the synthetic dataset generator
 * (deterministic for a seed, labels follow the documented rule, shards read back through the
 * project's WebDataset reader with the right counts) and a short `clipmod demo` run that must
 * end with the JSON line of DESIGN §7.
 */
#include "testlib.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "common/common.h"
#include "data/image.h"
#include "data/synth.h"
#include "data/wds.h"
#include "data/textenc.h"

static char tmpdir[256];

static const char *tmp_path(const char *rel) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, rel);
    return buf[k];
}

// ---------------------------------------------------------------------------------------------
// byte tokenizer of the demo (src/data/textenc.h): the framing the demo model relies on

static void test_bytetok_framing(void) {
    int32_t ids[8];
    cm_byte_tokenize("ab", 2, ids, 8);
    int32_t want[8] = {CM_BYTE_SOT, 'a', 'b', CM_BYTE_EOT, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) CHECK(ids[i] == want[i], "ids[%d] = %d, want %d", i, ids[i], want[i]);
    cm_byte_tokenize("", 0, ids, 8);
    CHECK(ids[0] == CM_BYTE_SOT && ids[1] == CM_BYTE_EOT && ids[2] == 0, "empty: %d %d %d", ids[0], ids[1], ids[2]);
    CHECK(CM_BYTE_EOT == CM_BYTE_VOCAB - 1, "EOT %d is not the largest id of %d", CM_BYTE_EOT, CM_BYTE_VOCAB);
}

static void test_bytetok_captions_fit(void) {
    /* every demo caption fits the demo context (48) whole, and OpenCLIP's argmax pooling lands on EOT */
    for (int i = 0; i < 3000; i++) {
        CmSynthSample s;
        cm_synth_draw(11, CM_SYNTH_TRAIN, i, &s);
        int32_t t[48];
        size_t n = strlen(s.caption);
        cm_byte_tokenize(s.caption, n, t, 48);
        int am = 0;
        for (int k = 1; k < 48; k++) if (t[k] > t[am]) am = k;
        CHECK(am == (int)n + 1 && t[am] == CM_BYTE_EOT, "caption '%s': argmax at %d", s.caption, am);
        if (am != (int)n + 1) return;
    }
    int32_t ids[6];
    cm_byte_tokenize("abcdefgh", 8, ids, 6);
    CHECK(ids[5] == CM_BYTE_EOT && ids[4] == 'd', "cut: last %d, before %d", ids[5], ids[4]);
}

// ---------------------------------------------------------------------------------------------
// generator

static void test_synth_rule_table(void) {
    /* the documented table (docs/demo.md, synth.h) */
    CHECK(cm_synth_label(0, 0, 0, 0, false) == 0, "match");
    CHECK(!strcmp(CM_SYNTH_SHAPES[0], "circle") && !strcmp(CM_SYNTH_COLOURS[2], "blue"), "names");
    CHECK(cm_synth_label(0, 0, 0, 0, true) == 1, "match + marker");
    CHECK(cm_synth_label(0, 0, 0, 1, false) == 2, "colour wrong");
    CHECK(cm_synth_label(0, 0, 1, 0, false) == 3, "shape wrong");
    CHECK(cm_synth_label(0, 0, 2, 2, false) == 4, "both wrong");
    CHECK(cm_synth_label(1, 2, 1, 0, true) == 5, "colour wrong + marker");
    CHECK(cm_synth_label(2, 1, 0, 1, true) == 6, "shape wrong + marker");
    CHECK(cm_synth_label(2, 1, 1, 0, true) == 6, "both wrong + marker");
    CHECK(cm_synth_label(3, 0, 0, 0, false) == -1 && cm_synth_label(0, 3, 0, 0, false) == -1 &&
          cm_synth_label(0, 0, -1, 0, true) == -1, "out of range accepted");
}

static bool has_word(const char *cap, const char *w) {
    size_t n = strlen(w);
    for (const char *p = strstr(cap, w); p; p = strstr(p + 1, w))
        if ((p == cap || p[-1] == ' ') && (p[n] == 0 || p[n] == ' ')) return true;
    return false;
}

static void test_synth_labels_follow_rule(void) {
    int count[7] = {0}, rel_marker[4][2] = {{0}};
    int cap_colour_by_class[7][CM_SYNTH_N_COLOURS] = {{0}};
    const int N = 7000;
    for (int i = 0; i < N; i++) {
        CmSynthSample s;
        cm_synth_draw(3, i % 2 ? CM_SYNTH_VAL : CM_SYNTH_TRAIN, i, &s);
        int want = cm_synth_label(s.shape, s.colour, s.cap_shape, s.cap_colour, s.marker);
        CHECK(s.label == want && want >= 0, "sample %d: label %d, rule %d", i, s.label, want);
        /* the caption says what the metadata says it says */
        CHECK(has_word(s.caption, CM_SYNTH_COLOURS[s.cap_colour]) && has_word(s.caption, CM_SYNTH_SHAPES[s.cap_shape]),
              "sample %d: caption '%s' lacks %s %s", i, s.caption, CM_SYNTH_COLOURS[s.cap_colour], CM_SYNTH_SHAPES[s.cap_shape]);
        CHECK(has_word(s.caption, CM_SYNTH_MARKER) == s.marker, "sample %d: marker %d in '%s'", i, s.marker, s.caption);
        for (int c = 0; c < CM_SYNTH_N_COLOURS; c++)
            if (c != s.cap_colour) CHECK(!has_word(s.caption, CM_SYNTH_COLOURS[c]), "two colours in '%s'", s.caption);
        CHECK(strlen(s.caption) <= 38, "caption '%s' longer than 38 bytes", s.caption);
        CHECK(s.radius > 0.1f && s.cx - s.radius > 0 && s.cx + s.radius < 1 && s.cy - s.radius > 0 && s.cy + s.radius < 1,
              "sample %d: the shape's centre part leaves the image", i);
        if (s.label < 0 || s.label > 6) continue;
        count[s.label]++;
        rel_marker[cm_synth_relation(s.shape, s.colour, s.cap_shape, s.cap_colour)][s.marker]++;
        cap_colour_by_class[s.label][s.cap_colour]++;
    }
    /* classes balanced (uniform draw: 1000 each, 5 sigma ~ 150) */
    for (int c = 0; c < 7; c++) CHECK(count[c] > 850 && count[c] < 1150, "class %d: %d of %d", c, count[c], N);
    /* every (relation, marker) cell occurs */
    for (int r = 0; r < 4; r++)
        for (int m = 0; m < 2; m++) CHECK(rel_marker[r][m] > 100, "relation %d marker %d: %d", r, m, rel_marker[r][m]);
    /* the caption's colour word carries no class information: roughly uniform in every class */
    for (int c = 0; c < 7; c++)
        for (int k = 0; k < CM_SYNTH_N_COLOURS; k++)
            CHECK(cap_colour_by_class[c][k] > count[c] / CM_SYNTH_N_COLOURS - 100 &&
                  cap_colour_by_class[c][k] < count[c] / CM_SYNTH_N_COLOURS + 100,
                  "class %d caption colour %d: %d of %d", c, k, cap_colour_by_class[c][k], count[c]);
}

static void test_synth_deterministic(void) {
    CmSynthSample a, b, c;
    cm_synth_draw(7, CM_SYNTH_TRAIN, 123, &a);
    cm_synth_draw(7, CM_SYNTH_TRAIN, 123, &b);
    cm_synth_draw(8, CM_SYNTH_TRAIN, 123, &c);
    CHECK(!memcmp(&a, &b, sizeof a), "same seed, different sample");
    CHECK(memcmp(&a, &c, sizeof a), "different seed, same sample");
    cm_synth_draw(7, CM_SYNTH_VAL, 123, &c);
    CHECK(memcmp(&a, &c, sizeof a), "train and val share sample 123");
    CmImage x = {0}, y = {0};
    REQUIRE(cm_synth_render(&a, 32, &x) == CM_OK && cm_synth_render(&b, 32, &y) == CM_OK, "%s", cm_last_error());
    CHECK(x.w == 32 && x.h == 32 && !memcmp(x.rgb, y.rgb, 32 * 32 * 3), "renders differ");
    /* the shape is drawn in its colour: the pixel at the centre is close to fg */
    int cx = (int)(a.cx * 32), cy = (int)(a.cy * 32);
    const uint8_t *p = x.rgb + (cy * 32 + cx) * 3;
    int d = abs(p[0] - a.fg[0]) + abs(p[1] - a.fg[1]) + abs(p[2] - a.fg[2]);
    CHECK(d < 70, "centre pixel %d,%d,%d far from fg %d,%d,%d", p[0], p[1], p[2], a.fg[0], a.fg[1], a.fg[2]);
    cm_image_free(&x);
    cm_image_free(&y);
    CHECK(cm_synth_render(&a, 4, &x) == CM_ERR_ARG && x.rgb == NULL, "size 4 accepted");
}

static bool files_equal(const char *p, const char *q) {
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    bool ok = !cm_read_file(p, 1 << 28, &a, &na) && !cm_read_file(q, 1 << 28, &b, &nb) && na == nb && !memcmp(a, b, na);
    cm_free(a);
    cm_free(b);
    return ok;
}

/* Reads every shard of dir/split (00000.tar, ...), checks each sample; returns the count. */
static int read_split(const char *dir, const char *split, int image_size, int *labels_seen) {
    int total = 0;
    for (int sh = 0;; sh++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s/%05d.tar", dir, split, sh);
        if (!cm_file_exists(path)) break;
        CmWdsReader *r = NULL;
        if (cm_wds_open(path, true, 0, &r)) { CHECK(0, "%s", cm_last_error()); return -1; }
        CmWdsSample *s = NULL;
        int rc;
        while ((rc = cm_wds_next(r, &s)) == 1) {
            const CmWdsField *img = cm_wds_image(s), *txt = cm_wds_field(s, "txt"), *js = cm_wds_field(s, "json");
            CHECK(!s->error && img && txt && js && !strcmp(img->ext, "jpg"), "%s: sample %s incomplete", path, s->key);
            if (img && txt && js) {
                int lab = -1;
                CHECK(cm_label_from_json((const char *)js->data, js->size, &lab) == CM_OK, "%s", cm_last_error());
                CmSynthSample m;
                CHECK(cm_synth_parse_json((const char *)js->data, js->size, &m) == CM_OK, "%s", cm_last_error());
                CHECK(lab == m.label && lab == cm_synth_label(m.shape, m.colour, m.cap_shape, m.cap_colour, m.marker),
                      "%s: label %d, rule %d", s->key, lab, cm_synth_label(m.shape, m.colour, m.cap_shape, m.cap_colour, m.marker));
                /* the shard holds what the generator draws for that index */
                CmSynthSample g;
                cm_synth_draw(5, strcmp(split, "train") ? CM_SYNTH_VAL : CM_SYNTH_TRAIN, m.index, &g);
                CHECK(txt->size == strlen(g.caption) && !memcmp(txt->data, g.caption, txt->size), "%s: caption differs", s->key);
                CmImage im = {0};
                CHECK(cm_image_decode(img->data, img->size, s->key, 0, &im) == CM_OK && im.w == image_size && im.h == image_size,
                      "%s: jpg %dx%d", s->key, im.w, im.h);
                cm_image_free(&im);
                if (lab >= 0 && lab < 7) labels_seen[lab]++;
            }
            total++;
            cm_wds_sample_free(s);
        }
        CHECK(rc == 0, "%s: %s", path, cm_last_error());
        cm_wds_close(r);
    }
    return total;
}

static void test_synth_shards_read_back(void) {
    CmSynthOpts o;
    cm_synth_opts_default(&o);
    o.seed = 5;
    o.n_train = 130;
    o.n_val = 40;
    o.shard_size = 50;
    REQUIRE(cm_synth_write(tmp_path("a"), &o) == CM_OK, "%s", cm_last_error());
    int seen[7] = {0};
    CHECK(read_split(tmp_path("a"), "train", 32, seen) == 130, "train count");
    CHECK(read_split(tmp_path("a"), "val", 32, seen) == 40, "val count");
    for (int c = 0; c < 7; c++) CHECK(seen[c] > 5, "class %d seen %d times", c, seen[c]);
    CHECK(cm_file_exists(tmp_path("a/train/00002.tar")) && !cm_file_exists(tmp_path("a/train/00003.tar")), "3 train shards");
    /* sizes.json gives the counts OpenCLIP's epoch sizing reads */
    CmStrList urls = {0};
    char pat[600];
    cm_synth_urls(tmp_path("a"), CM_SYNTH_TRAIN, o.n_train, o.shard_size, pat, sizeof pat);
    CHECK(strstr(pat, "{00000..00002}.tar") != NULL, "pattern %s", pat);
    REQUIRE(cm_brace_expand(pat, &urls) == CM_OK && urls.n == 3, "expand %s: %s", pat, cm_last_error());
    int64_t total = 0;
    CHECK(cm_dataset_size(&urls, &total) == CM_OK && total == 130, "dataset size %lld: %s", (long long)total, cm_last_error());
    cm_strlist_free(&urls);
    /* same seed: byte-identical shards; another seed: different */
    REQUIRE(cm_synth_write(tmp_path("b"), &o) == CM_OK, "%s", cm_last_error());
    CHECK(files_equal(tmp_path("a/train/00001.tar"), tmp_path("b/train/00001.tar")), "not deterministic");
    CHECK(files_equal(tmp_path("a/val/00000.tar"), tmp_path("b/val/00000.tar")), "val not deterministic");
    o.seed = 6;
    REQUIRE(cm_synth_write(tmp_path("c"), &o) == CM_OK, "%s", cm_last_error());
    CHECK(!files_equal(tmp_path("a/train/00000.tar"), tmp_path("c/train/00000.tar")), "seed ignored");
    /* bad options */
    o.n_val = 0;
    CHECK(cm_synth_write(tmp_path("d"), &o) == CM_ERR_ARG, "n_val 0 accepted");
    o.n_val = 10;
    o.shard_size = 0;
    CHECK(cm_synth_write(tmp_path("d"), &o) == CM_ERR_ARG, "shard size 0 accepted");
}

static void test_synth_json_errors(void) {
    CmSynthSample s;
    const char *bad[] = {
        "{\"label\":1,", "[1,2]", "{\"marker\":true,\"shape\":\"circle\",\"colour\":\"red\",\"caption_shape\":\"circle\",\"caption_colour\":\"red\"}",
        "{\"label\":0,\"marker\":false,\"shape\":\"hexagon\",\"colour\":\"red\",\"caption_shape\":\"circle\",\"caption_colour\":\"red\"}",
        "{\"label\":0,\"marker\":1,\"shape\":\"circle\",\"colour\":\"red\",\"caption_shape\":\"circle\",\"caption_colour\":\"red\"}",
        "{\"label\":0,\"marker\":false,\"shape\":\"circle\",\"colour\":\"red\",\"caption_shape\":\"circle\"}",
    };
    const char *what[] = {"malformed", "not a JSON object", "label", "hexagon", "marker", "caption_colour"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(cm_synth_parse_json(bad[i], strlen(bad[i]), &s) == CM_ERR_FORMAT, "case %zu accepted", i);
        CHECK(strstr(cm_last_error(), what[i]) != NULL, "case %zu message: %s", i, cm_last_error());
    }
    CmSynthSample a;
    cm_synth_draw(1, CM_SYNTH_TRAIN, 9, &a);
    char *j = cm_synth_json(&a);
    REQUIRE(j, "json");
    CHECK(cm_synth_parse_json(j, strlen(j), &s) == CM_OK && s.label == a.label && s.shape == a.shape &&
          s.colour == a.colour && s.cap_shape == a.cap_shape && s.cap_colour == a.cap_colour && s.marker == a.marker &&
          s.index == 9, "round trip: %s", j);
    cm_free(j);
}

// ---------------------------------------------------------------------------------------------
// `clipmod demo` as users call it

static const char *bin(void) {
    static char b[512];
    const char *e = getenv("CLIPMOD_BIN");
    if (e && *e) return e;
    const char *d = getenv("BUILD");
    snprintf(b, sizeof b, "%s/clipmod", d && *d ? d : "build");
    return b;
}

/* Run `clipmod <args>`; stdout into out, the last stderr line into err; returns the exit status. */
static int run(const char *args, char *out, size_t n, char *err, size_t en) {
    char cmd[4096], ef[600];
    snprintf(ef, sizeof ef, "%s/stderr.txt", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", bin(), args, ef);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t k = fread(out, 1, n - 1, p);
    out[k] = 0;
    int st = pclose(p);
    if (err) {
        err[0] = 0;
        FILE *f = fopen(ef, "r");
        char line[1024];
        if (f) { while (fgets(line, sizeof line, f)) snprintf(err, en, "%s", line); fclose(f); }
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char g_out[1 << 18];

/* The last non-empty line of s (modified in place). */
static char *last_line(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
    char *p = strrchr(s, '\n');
    return p ? p + 1 : s;
}

static void test_demo_short_run(void) {
    if (access(bin(), X_OK)) { fprintf(stderr, "  SKIPPED: %s missing\n", bin()); tl_skip++; return; }
    char err[1024], args[1024];
    snprintf(args, sizeof args, "demo --data-dir %s/run --train-samples 256 --val-samples 70 --epochs 1 --batch-size 32 "
             "--warmup 2 --seed 3", tmpdir);
    int rc = run(args, g_out, sizeof g_out, err, sizeof err);
    REQUIRE(rc == 0, "demo exit %d: %s", rc, err);
    CHECK(strstr(g_out, "confusion") != NULL, "no confusion matrix in: %.400s", g_out);
    char *line = last_line(g_out);
    cJSON *j = cJSON_Parse(line);
    REQUIRE(j && cJSON_IsObject(j), "last line is not a JSON object: %s", line);
    const cJSON *t1 = cJSON_GetObjectItem(j, "top1"), *t2 = cJSON_GetObjectItem(j, "top2"), *n = cJSON_GetObjectItem(j, "n");
    const cJSON *conf = cJSON_GetObjectItem(j, "confusion");
    CHECK(cJSON_IsNumber(t1) && cJSON_IsNumber(t2) && t1->valuedouble >= 0 && t1->valuedouble <= t2->valuedouble &&
          t2->valuedouble <= 1, "top1/top2: %s", line);
    CHECK(cJSON_IsNumber(n) && n->valueint == 70, "n: %s", line);
    CHECK(cJSON_IsArray(conf) && cJSON_GetArraySize(conf) == 7, "confusion: %s", line);
    int64_t sum = 0;
    for (int r = 0; r < cJSON_GetArraySize(conf); r++) {
        const cJSON *row = cJSON_GetArrayItem(conf, r);
        for (int c = 0; c < cJSON_GetArraySize(row); c++) sum += (int64_t)cJSON_GetArrayItem(row, c)->valuedouble;
    }
    CHECK(sum == 70, "confusion sums to %lld", (long long)sum);
    cJSON_Delete(j);
    /* --data-dir keeps the shards, written by the real writer */
    char p[600];
    snprintf(p, sizeof p, "%s/run/train/00000.tar", tmpdir);
    CHECK(cm_file_exists(p), "%s missing", p);
    snprintf(p, sizeof p, "%s/run/val/sizes.json", tmpdir);
    CHECK(cm_file_exists(p), "%s missing", p);
    /* --ablate image: the shards hold empty captions, labels unchanged */
    snprintf(args, sizeof args, "demo --data-dir %s/abl --train-samples 64 --val-samples 14 --epochs 1 --batch-size 32 "
             "--ablate image", tmpdir);
    rc = run(args, g_out, sizeof g_out, err, sizeof err);
    REQUIRE(rc == 0, "ablate exit %d: %s", rc, err);
    line = last_line(g_out);
    CHECK(strstr(line, "\"demo\":\"image-only\"") != NULL, "ablate json: %s", line);
    snprintf(p, sizeof p, "%s/abl/val/00000.tar", tmpdir);
    CmWdsReader *r = NULL;
    REQUIRE(cm_wds_open(p, true, 0, &r) == CM_OK, "%s", cm_last_error());
    CmWdsSample *s = NULL;
    int ns = 0, nonempty = 0;
    while (cm_wds_next(r, &s) == 1) {
        const CmWdsField *tx = cm_wds_field(s, "txt");
        nonempty += !tx || tx->size != 0;
        ns++;
        cm_wds_sample_free(s);
    }
    cm_wds_close(r);
    CHECK(ns == 14 && nonempty == 0, "%d samples, %d with a caption", ns, nonempty);
}

static void test_demo_usage_errors(void) {
    if (access(bin(), X_OK)) { fprintf(stderr, "  SKIPPED: %s missing\n", bin()); tl_skip++; return; }
    char err[1024];
    int rc = run("demo --ablate sound", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "--ablate"), "bad ablate: rc %d, %s", rc, err);
    rc = run("demo --epochs 0", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "--epochs"), "epochs 0: rc %d, %s", rc, err);
    rc = run("demo --train-samples 10 --batch-size 64", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "--batch-size"), "batch > samples: rc %d, %s", rc, err);
    rc = run("demo --help", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0 && strstr(g_out, "--data-dir"), "help: rc %d", rc);
    /* an unwritable data folder */
    rc = run("demo --data-dir /proc/clipmod-demo --train-samples 64 --val-samples 8", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "/proc/clipmod-demo"), "unwritable dir: rc %d, %s", rc, err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipmod_test_demo.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_bytetok_framing);
    RUN(test_bytetok_captions_fit);
    RUN(test_synth_rule_table);
    RUN(test_synth_labels_follow_rule);
    RUN(test_synth_deterministic);
    RUN(test_synth_shards_read_back);
    RUN(test_synth_json_errors);
    RUN(test_demo_usage_errors);
    RUN(test_demo_short_run);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return tl_summary("test_demo");
}
