/*
 * test_prepare.c — `clipmod prepare` (src/data/prepare*.c): the CSV reader; Fakeddit on
 * ../shared/data/fakeddit with the per-class counts computed independently by Python's csv
 * module (every row with an image in the class of DESIGN §4.2, missing images reported,
 * 256x256 white letterbox); MMHS150K on a tree generated here with annotator edge cases (any
 * number of labels, different hate classes, bad label lists, missing entries and images);
 * COCO on ../shared/data/coco (the two images present, one as PNG) and on a generated file
 * with untrimmed captions; the shards read back with the WebDataset reader; the CLI.
 */
#include "testlib.h"
#include "data/image.h"
#include "data/prepare.h"
#include "data/wds.h"

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>



static void test_csv(void) {
    const char *in = "a\tb\tc\n"
                     "1\t\"x\ty\"\t\"say \"\"hi\"\"\"\r\n"
                     "\n"
                     "2\t\"multi\nline\"\tz\n"
                     "3\tq\"uote\t\n"
                     "4\t\"open";
    CmCsv c;
    cm_csv_init(&c, in, strlen(in), '\t');
    REQUIRE(cm_csv_next(&c) == 1 && c.nfields == 3 && !strcmp(c.fields[2], "c"), "header");
    REQUIRE(cm_csv_next(&c) == 1 && c.nfields == 3, "row 1: %d fields", c.nfields);
    CHECK(!strcmp(c.fields[1], "x\ty") && !strcmp(c.fields[2], "say \"hi\""), "quoted tab and doubled quotes: '%s' '%s'", c.fields[1], c.fields[2]);
    REQUIRE(cm_csv_next(&c) == 1 && c.nfields == 3, "row 2 (blank line skipped)");
    CHECK(!strcmp(c.fields[1], "multi\nline") && c.line == 4, "quoted newline, line %lld", (long long)c.line);
    REQUIRE(cm_csv_next(&c) == 1 && c.nfields == 3, "row 3");
    CHECK(!strcmp(c.fields[1], "q\"uote") && !strcmp(c.fields[2], "") && c.line == 6, "inner quote kept, empty last field, line %lld", (long long)c.line);
    CHECK(cm_csv_next(&c) < 0 && strstr(cm_last_error(), "line 7"), "unclosed quote: %s", cm_last_error());
    cm_csv_free(&c);
}

/* Count samples and labels of every class folder; checks 256x256 images and label == folder. */
static void read_classes(const char *out, int64_t per_class[7], int *bad_size, int *bad_label) {
    for (int k = 0; k < 7; k++) {
        per_class[k] = 0;
        for (int s = 0; s < 100; s++) {
            char path[700];
            snprintf(path, sizeof path, "%s/class_%d/%05d.tar", out, k, s);
            if (access(path, F_OK)) break;
            CmWdsReader *r;
            if (cm_wds_open(path, true, 0, &r)) { (*bad_label)++; break; }
            CmWdsSample *smp;
            while (cm_wds_next(r, &smp) == 1) {
                const CmWdsField *jp = cm_wds_field(smp, "jpg"), *js = cm_wds_field(smp, "json");
                CmImage im;
                if (!jp || cm_image_decode(jp->data, jp->size, "shard", 0, &im)) (*bad_size)++;
                else { if (im.w != 256 || im.h != 256) (*bad_size)++; cm_image_free(&im); }
                int lab = -1;
                if (!js || cm_label_from_json((const char *)js->data, js->size, &lab) || lab != k) (*bad_label)++;
                if (!cm_wds_field(smp, "txt")) (*bad_label)++;
                per_class[k]++;
                cm_wds_sample_free(smp);
            }
            cm_wds_close(r);
        }
    }
}

static const char *PY_FAKEDDIT =
    "import csv, os, sys, collections\n"
    "m = {0: 0, 1: 1, 2: 4, 3: 3, 4: 5, 5: 2}\n"
    "cnt = collections.Counter(); missing = 0\n"
    "with open(sys.argv[1], newline='', encoding='utf-8') as f:\n"
    "    for row in csv.DictReader(f, delimiter='\\t'):\n"
    "        if os.path.exists(os.path.join(sys.argv[2], row['id'] + '.jpg')): cnt[m[int(row['6_way_label'])]] += 1\n"
    "        else: missing += 1\n"
    "print(' '.join(str(cnt[k]) for k in range(7)), missing)\n";

static void test_fakeddit(void) {
    SHARED_OR_SKIP();
    CmPrepareOpts o = {tl_tmp("fk"), 20, 0, 0, 0, true, false};
    CmPrepareReport r;
    REQUIRE(cm_prepare_fakeddit(tl_shared("data/fakeddit/multimodal_train.tsv"), tl_shared("data/fakeddit/images"), &o, &r) == 0,
        "%s", cm_last_error());
    CHECK(r.written == 50 && r.bad_rows == 0 && r.bad_images == 0, "written %lld bad %lld/%lld", (long long)r.written,
          (long long)r.bad_rows, (long long)r.bad_images);
    CHECK(r.written + r.missing_images >= 9995 && r.written + r.missing_images <= 9998, "every record counted: %lld",
          (long long)(r.written + r.missing_images));
    int64_t got[7];
    int bad_size = 0, bad_label = 0;
    read_classes(tl_tmp("fk"), got, &bad_size, &bad_label);
    CHECK(bad_size == 0 && bad_label == 0, "256x256 images (%d bad), labels match folders (%d bad)", bad_size, bad_label);
    for (int k = 0; k < 7; k++) CHECK(got[k] == r.per_class[k], "class %d: shards %lld report %lld", k, (long long)got[k], (long long)r.per_class[k]);
    CHECK(got[6] == 0 && got[0] > 0, "no Hate from Fakeddit");
    /* a 20-sample shard size splits class 0 (25 samples) into two shards listed in sizes.json */
    uint8_t *sj; size_t sn;
    char p[600];
    snprintf(p, sizeof p, "%s/class_0/sizes.json", tl_tmp("fk"));
    REQUIRE(cm_read_file(p, 1 << 20, &sj, &sn) == 0, "sizes.json");
    CHECK(strstr((char *)sj, "\"00000.tar\": 20") && strstr((char *)sj, "\"00001.tar\": 5"), "sizes.json: %s", sj);
    cm_free(sj);
    snprintf(p, sizeof p, "%s/report.json", tl_tmp("fk"));
    REQUIRE(cm_read_file(p, 1 << 20, &sj, &sn) == 0, "report.json");
    CHECK(strstr((char *)sj, "\"written\": 50") && strstr((char *)sj, "\"per_class\": {\"0\": "), "report: %s", sj);
    cm_free(sj);
    /* white letterbox: 16pfs3 is 320x239, so the top rows of its 256x256 version are white */
    CmWdsReader *rd;
    snprintf(p, sizeof p, "%s/class_0/00000.tar", tl_tmp("fk"));
    REQUIRE(cm_wds_open(p, true, 0, &rd) == 0, "open");
    CmWdsSample *s;
    int found = 0;
    while (cm_wds_next(rd, &s) == 1) {
        if (!strcmp(s->key, "16pfs3")) {
            const CmWdsField *jp = cm_wds_field(s, "jpg");
            CmImage im;
            if (jp && !cm_image_decode(jp->data, jp->size, "16pfs3", 0, &im)) {
                found = im.rgb[0] >= 250 && im.rgb[1] >= 250 && im.rgb[2] >= 250 && im.rgb[(size_t)(255 * 256 + 128) * 3] >= 250;
                cm_image_free(&im);
            }
            const CmWdsField *tx = cm_wds_field(s, "txt");
            CHECK(tx && tx->size > 0 && !strchr((char *)tx->data, '\t'), "caption present");
        }
        cm_wds_sample_free(s);
    }
    cm_wds_close(rd);
    CHECK(found, "16pfs3 letterboxed with white bars");
    /* independent count with Python's csv module */
    if (system("python3 -c 'import csv' >/dev/null 2>&1") != 0) { fprintf(stderr, "  SKIPPED python count: no python3\n"); tl_skip++; return; }
    tl_write_text(tl_tmp("count.py"), PY_FAKEDDIT);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "python3 %s %s %s", tl_tmp("count.py"), tl_shared("data/fakeddit/multimodal_train.tsv"), tl_shared("data/fakeddit/images"));
    FILE *pp = popen(cmd, "r");
    REQUIRE(pp, "popen");
    long long want[7], miss = -1;
    int nread = fscanf(pp, "%lld %lld %lld %lld %lld %lld %lld %lld", &want[0], &want[1], &want[2], &want[3], &want[4], &want[5], &want[6], &miss);
    pclose(pp);
    REQUIRE(nread == 8, "python output");
    for (int k = 0; k < 7; k++) CHECK(want[k] == got[k], "class %d: ours %lld, Python csv %lld", k, (long long)got[k], want[k]);
    CHECK(miss == r.missing_images, "missing images: ours %lld, Python %lld", (long long)r.missing_images, miss);
}

static void write_jpeg(const char *path, int w, int h, uint8_t v) {
    CmImage im = {w, h, malloc((size_t)w * h * 3)};
    memset(im.rgb, v, (size_t)w * h * 3);
    uint8_t *j; size_t n;
    if (!cm_jpeg_encode(&im, 90, &j, &n)) {
        FILE *f = fopen(path, "wb");
        fwrite(j, 1, n, f);
        fclose(f);
        free(j);
    }
    free(im.rgb);
}

static void test_mmhs(void) {
    const char *root = tl_tmp("mmhs");
    char p[700];
    snprintf(p, sizeof p, "%s/img_resized", root);
    cm_mkdir_p(p);
    snprintf(p, sizeof p, "%s/img_txt", root);
    cm_mkdir_p(p);
    snprintf(p, sizeof p, "%s/splits", root);
    cm_mkdir_p(p);
    /* id -> labels; expected class in the comment */
    struct { const char *id, *labels; int cls; } e[] = {
        {"1000000000000000001", "[0, 0, 0]", 0},
        {"1000000000000000002", "[1, 2, 0]", 6},        /* two annotators, different hate classes */
        {"1000000000000000003", "[0, 0, 5]", 0},        /* one annotator only */
        {"1000000000000000004", "[3]", 0},              /* a single label */
        {"1000000000000000005", "[1, 1]", 6},           /* two labels */
        {"1000000000000000006", "[0, 1, 0, 2, 0]", 6},  /* five labels, two non-zero */
        {"1000000000000000007", "[4, 0, 0, 0]", 0},     /* four labels, one non-zero */
        {"1000000000000000008", "[5, 5, 5]", 6},
        {"1000000000000000009", "[]", -1},              /* bad: empty */
        {"1000000000000000010", "[7, 0, 0]", -1},       /* bad: out of range */
        {"1000000000000000011", "\"1,2\"", -1},         /* bad: not a list */
        {"1000000000000000012", "[1, 2, 3]", -2},       /* image missing */
        {"1000000000000000013", "[0, 0, 0]", -3},       /* image corrupt */
    };
    int ne = (int)(sizeof e / sizeof *e);
    char *gt = malloc(65536);
    size_t k = (size_t)snprintf(gt, 65536, "{");
    for (int i = 0; i < ne; i++) {
        k += (size_t)snprintf(gt + k, 65536 - k,
                              "%s\"%s\": {\"img_url\": \"http://pbs.twimg.com/media/x.jpg\", \"labels\": %s, "
                              "\"tweet_url\": \"https://twitter.com/user/status/%s\", \"tweet_text\": \"@user tweet %d \\ud83d\\ude00 &amp; "
                              "https://t.co/AbC%d\", \"labels_str\": []}",
                              i ? ", " : "", e[i].id, e[i].labels, e[i].id, i, i);
        snprintf(p, sizeof p, "%s/img_resized/%s.jpg", root, e[i].id);
        if (e[i].cls == -3) tl_write_text(p, "\xff\xd8\xff\xe0 not really a jpeg");
        else if (e[i].cls != -2) write_jpeg(p, 500, 300 + i * 10, (uint8_t)(i * 19));
    }
    snprintf(gt + k, 65536 - k, "}");
    snprintf(p, sizeof p, "%s/MMHS150K_GT.json", root);
    tl_write_text(p, gt);
    free(gt);
    snprintf(p, sizeof p, "%s/img_txt/1000000000000000002.json", root);
    tl_write_text(p, "{\"img_text\": \"STRONG BORDERS\"}");
    /* the split lists every entry, a blank line and an id without an entry */
    char ids[4096] = "";
    for (int i = 0; i < ne; i++) { strcat(ids, e[i].id); strcat(ids, "\n"); }
    strcat(ids, "\n1999999999999999999\n");
    snprintf(p, sizeof p, "%s/splits/val_ids.txt", root);
    tl_write_text(p, ids);

    CmPrepareOpts o = {tl_tmp("mmhs_out"), 0, 0, 0, 0, true, false};
    CmPrepareReport r;
    REQUIRE(cm_prepare_mmhs150k(root, "val", &o, &r) == 0, "%s", cm_last_error());
    CHECK(r.per_class[0] == 4 && r.per_class[6] == 4, "not-hate %lld hate %lld", (long long)r.per_class[0], (long long)r.per_class[6]);
    CHECK(r.bad_rows == 4, "bad rows (empty, out of range, not a list, no entry): %lld", (long long)r.bad_rows);
    CHECK(r.missing_images == 1 && r.bad_images == 1 && r.written == 8, "missing %lld corrupt %lld written %lld",
          (long long)r.missing_images, (long long)r.bad_images, (long long)r.written);
    int64_t got[7];
    int bad_size = 0, bad_label = 0;
    read_classes(tl_tmp("mmhs_out"), got, &bad_size, &bad_label);
    CHECK(got[0] == 4 && got[6] == 4 && bad_size == 0 && bad_label == 0, "shards: %lld %lld, %d %d", (long long)got[0],
          (long long)got[6], bad_size, bad_label);
    /* caption without the URL, metadata with the annotator labels and OCR text */
    CmWdsReader *rd;
    snprintf(p, sizeof p, "%s/class_6/00000.tar", tl_tmp("mmhs_out"));
    REQUIRE(cm_wds_open(p, true, 0, &rd) == 0, "open");
    CmWdsSample *s;
    REQUIRE(cm_wds_next(rd, &s) == 1, "first hate sample");
    CHECK(!strcmp(s->key, "1000000000000000002"), "key %s", s->key);
    const CmWdsField *tx = cm_wds_field(s, "txt"), *js = cm_wds_field(s, "json");
    CHECK(tx && !strcmp((char *)tx->data, "@user tweet 1 \xf0\x9f\x98\x80 &amp;"), "caption '%s'", tx ? (char *)tx->data : "");
    CHECK(js && strstr((char *)js->data, "\"source_label\":[1,2,0]") && strstr((char *)js->data, "\"img_text\":\"STRONG BORDERS\"") &&
          strstr((char *)js->data, "\"dataset\":\"mmhs150k\""), "json %s", js ? (char *)js->data : "");
    cm_wds_sample_free(s);
    cm_wds_close(rd);
    o.overwrite = true;   /* the failures below must leave the earlier output alone */
    CHECK(cm_prepare_mmhs150k(root, "dev", &o, &r) != 0, "bad split refused");
    CHECK(cm_prepare_mmhs150k(tl_tmp("nowhere"), "val", &o, &r) != 0 && strstr(cm_last_error(), "MMHS150K_GT.json"), "%s", cm_last_error());
}

static void test_coco(void) {
    SHARED_OR_SKIP();
    CmPrepareOpts o = {tl_tmp("coco"), 0, 0, 0, 0, true, false};
    CmPrepareReport r;
    REQUIRE(cm_prepare_coco(tl_shared("data/coco/captions_val2017.json"), tl_shared("data/coco"), &o, &r) == 0, "%s", cm_last_error());
    CHECK(r.written == 10 && r.per_class[0] == 10 && r.missing_images == 25014 - 10 && r.bad_rows == 0,
          "written %lld missing %lld bad %lld", (long long)r.written, (long long)r.missing_images, (long long)r.bad_rows);
    int64_t got[7];
    int bad_size = 0, bad_label = 0;
    read_classes(tl_tmp("coco"), got, &bad_size, &bad_label);
    CHECK(got[0] == 10 && bad_size == 0 && bad_label == 0, "shards %lld, %d %d", (long long)got[0], bad_size, bad_label);
    /* generated: untrimmed captions and one annotation pointing nowhere */
    const char *js =
        "{\"images\": [{\"id\": 5, \"file_name\": \"000000000005.jpg\"}],"
        " \"annotations\": [{\"image_id\": 5, \"id\": 11, \"caption\": \"  A cat\\non a mat. \"},"
        " {\"image_id\": 99, \"id\": 12, \"caption\": \"orphan\"}, {\"image_id\": 5, \"id\": 13, \"caption\": \"   \"}]}";
    tl_write_text(tl_tmp("caps.json"), js);
    cm_mkdir_p(tl_tmp("cimg"));
    char p[700];
    snprintf(p, sizeof p, "%s/000000000005.jpg", tl_tmp("cimg"));
    write_jpeg(p, 64, 32, 100);
    CmPrepareOpts o2 = {tl_tmp("coco2"), 0, 0, 0, 0, true, false};
    REQUIRE(cm_prepare_coco(tl_tmp("caps.json"), tl_tmp("cimg"), &o2, &r) == 0, "%s", cm_last_error());
    CHECK(r.written == 1 && r.bad_rows == 2, "written %lld bad %lld", (long long)r.written, (long long)r.bad_rows);
    CmWdsReader *rd;
    snprintf(p, sizeof p, "%s/class_0/00000.tar", tl_tmp("coco2"));
    REQUIRE(cm_wds_open(p, true, 0, &rd) == 0, "open");
    CmWdsSample *s;
    REQUIRE(cm_wds_next(rd, &s) == 1, "sample");
    const CmWdsField *tx = cm_wds_field(s, "txt");
    CHECK(!strcmp(s->key, "000000000005_11") && tx && !strcmp((char *)tx->data, "A cat\non a mat."), "key %s caption '%s'", s->key,
          tx ? (char *)tx->data : "");
    cm_wds_sample_free(s);
    cm_wds_close(rd);
    tl_write_text(tl_tmp("notcoco.json"), "{\"x\": 1}");
    o2.overwrite = true;   /* failures must leave the earlier output alone */
    CHECK(cm_prepare_coco(tl_tmp("notcoco.json"), tl_tmp("cimg"), &o2, &r) != 0 && strstr(cm_last_error(), "COCO"), "%s", cm_last_error());
    tl_write_text(tl_tmp("broken.json"), "{\"images\": [");
    CHECK(cm_prepare_coco(tl_tmp("broken.json"), tl_tmp("cimg"), &o2, &r) != 0, "broken JSON refused");
}

static int count_files(const char *dir, const char *needle) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, needle) != NULL;
    closedir(d);
    return n;
}

/* --out: never mixed with an earlier run (issue 13 item 3): a non-empty --out is refused without
   --overwrite; --overwrite replaces it as a whole (no old shard survives), only when it holds
   prepare output; a failed run leaves the old output as it was; no temp folder is left; a dead
   process's temp folder is removed. */
static void test_out_overwrite(void) {
    char p[700], out[600];
    cm_mkdir_p(tl_tmp("oimg"));
    snprintf(p, sizeof p, "%s/000000000005.jpg", tl_tmp("oimg"));
    write_jpeg(p, 64, 32, 100);
    tl_write_text(tl_tmp("three.json"),
                  "{\"images\": [{\"id\": 5, \"file_name\": \"000000000005.jpg\"}], \"annotations\": ["
                  "{\"image_id\": 5, \"id\": 1, \"caption\": \"one\"}, {\"image_id\": 5, \"id\": 2, \"caption\": \"two\"},"
                  "{\"image_id\": 5, \"id\": 3, \"caption\": \"three\"}]}");
    tl_write_text(tl_tmp("one.json"),
                  "{\"images\": [{\"id\": 5, \"file_name\": \"000000000005.jpg\"}], \"annotations\": ["
                  "{\"image_id\": 5, \"id\": 9, \"caption\": \"nine\"}]}");
    snprintf(out, sizeof out, "%s", tl_tmp("oout"));
    /* a dead process's temp folder next to it */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    snprintf(p, sizeof p, "%s.tmp.%d/class_0", out, (int)dead);
    REQUIRE(cm_mkdir_p(p) == 0, "mkdir");
    CmPrepareOpts o = {out, 1, 0, 0, 0, true, false};
    CmPrepareReport r;
    REQUIRE(cm_prepare_coco(tl_tmp("three.json"), tl_tmp("oimg"), &o, &r) == 0, "%s", cm_last_error());
    snprintf(p, sizeof p, "%s/class_0", out);
    CHECK(r.written == 3 && count_files(p, ".tar") == 3, "first run: %lld written, %d shards", (long long)r.written, count_files(p, ".tar"));
    CHECK(count_files(tl_tmpdir, "oout.tmp.") == 0, "temp folders left after the first run (the dead one included)");
    /* again, without --overwrite: refused, nothing touched */
    CHECK(cm_prepare_coco(tl_tmp("one.json"), tl_tmp("oimg"), &o, &r) == CM_ERR_ARG && strstr(cm_last_error(), "--overwrite") &&
          strstr(cm_last_error(), "not empty"), "non-empty --out: %s", cm_last_error());
    CHECK(count_files(p, ".tar") == 3, "refused run changed the output");
    /* --overwrite with a failing input: the old output stays, no temp left */
    o.overwrite = true;
    CHECK(cm_prepare_coco(tl_tmp("nonexistent.json"), tl_tmp("oimg"), &o, &r) != 0, "missing captions");
    CHECK(count_files(p, ".tar") == 3 && count_files(tl_tmpdir, "oout.tmp.") == 0, "failed --overwrite run: %d shards, %d temp",
          count_files(p, ".tar"), count_files(tl_tmpdir, "oout.tmp."));
    /* --overwrite: only the new run's files */
    REQUIRE(cm_prepare_coco(tl_tmp("one.json"), tl_tmp("oimg"), &o, &r) == 0, "%s", cm_last_error());
    CHECK(r.written == 1 && count_files(p, ".tar") == 1, "after --overwrite: %lld written, %d shards (old ones mixed in?)",
          (long long)r.written, count_files(p, ".tar"));
    snprintf(p, sizeof p, "%s/class_0/sizes.json", out);
    uint8_t *b; size_t n;
    REQUIRE(cm_read_file(p, 1 << 20, &b, &n) == 0, "sizes.json");
    CHECK(strstr((char *)b, "\"00000.tar\": 1") && !strstr((char *)b, "00001"), "sizes.json: %s", (char *)b);
    cm_free(b);
    CHECK(count_files(tl_tmpdir, "oout.tmp.") == 0 && count_files(tl_tmpdir, "oout.old") == 0, "temp folders left after --overwrite");
    /* a folder with other files is never replaced */
    snprintf(p, sizeof p, "%s/notes.txt", out);
    tl_write_text(p, "mine");
    CHECK(cm_prepare_coco(tl_tmp("one.json"), tl_tmp("oimg"), &o, &r) == CM_ERR_ARG && strstr(cm_last_error(), "notes.txt"),
          "foreign file: %s", cm_last_error());
    CHECK(cm_file_exists(p), "the foreign file was removed");
    /* an empty existing folder is fine without --overwrite; a file is not a folder */
    cm_mkdir_p(tl_tmp("oempty"));
    CmPrepareOpts oe = {tl_tmp("oempty"), 0, 0, 0, 0, true, false};
    CHECK(cm_prepare_coco(tl_tmp("one.json"), tl_tmp("oimg"), &oe, &r) == 0 && r.written == 1, "empty --out: %s", cm_last_error());
    CmPrepareOpts of = {tl_tmp("one.json"), 0, 0, 0, 0, true, true};
    CHECK(cm_prepare_coco(tl_tmp("one.json"), tl_tmp("oimg"), &of, &r) == CM_ERR_ARG && strstr(cm_last_error(), "not a folder"),
          "file as --out: %s", cm_last_error());
    /* the CLI: 2 without --overwrite, 0 with it */
    if (access(tl_clipmod_bin(), X_OK) == 0) {
        char args[2000];
        snprintf(args, sizeof args, "prepare coco --captions %s --images %s --out %s --quiet", tl_tmp("three.json"), tl_tmp("oimg"),
                 tl_tmp("oempty"));
        char err[2048];
        CHECK(tl_run_clipmod(args, NULL, 0, err, sizeof err) == 2 && strstr(err, "--overwrite"), "CLI non-empty --out: %s", err);
        strcat(args, " --overwrite");
        CHECK(tl_run_clipmod(args, NULL, 0, NULL, 0) == 0, "CLI --overwrite");
        snprintf(p, sizeof p, "%s/class_0", tl_tmp("oempty"));
        CHECK(count_files(p, ".tar") == 1, "CLI --overwrite: %d shards", count_files(p, ".tar"));
    }
}

static void test_cli(void) {
    SHARED_OR_SKIP();
    CLIPMOD_BIN_OR_SKIP();
    static char o[1 << 20];
    char args[1500], path[600];
    snprintf(args, sizeof args, "prepare fakeddit --tsv %s --images %s --out %s --quiet",
             tl_shared("data/fakeddit/multimodal_train.tsv"), tl_shared("data/fakeddit/images"), tl_tmp("cli"));
    CHECK(tl_run_clipmod(args, o, sizeof o, NULL, 0) == 0, "prepare fakeddit exits 0");
    CHECK(strstr(o, "\"written\":50"), "stdout report: %s", o);
    snprintf(path, sizeof path, "%s/report.json", tl_tmp("cli"));
    CHECK(cm_file_exists(path), "report.json written");
    CHECK(tl_run_clipmod("prepare nosuch --out /tmp/x", NULL, 0, NULL, 0) == 2, "unknown dataset: usage error");
    CHECK(tl_run_clipmod("prepare fakeddit --out /tmp/x", NULL, 0, NULL, 0) == 2, "missing --tsv: usage error");
    snprintf(args, sizeof args, "prepare fakeddit --tsv /nonexistent.tsv --images /tmp --out %s --quiet", tl_tmp("cli2"));
    CHECK(tl_run_clipmod(args, NULL, 0, NULL, 0) == 1, "missing TSV: failure");
}

int main(void) {
    if (!tl_tmpdir_make("prepare")) { perror("mkdtemp"); return 1; }
    RUN(test_csv);
    RUN(test_fakeddit);
    RUN(test_mmhs);
    RUN(test_coco);
    RUN(test_out_overwrite);
    RUN(test_cli);
    tl_tmpdir_remove();
    return tl_summary("test_prepare");
}
