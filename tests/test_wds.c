/*
 * test_wds.c — shard URLs and sampling (src/data/wds_urls.c) and labels (wds.c):
 * braceexpand cases (ranges, zero padding, lists, nesting, escapes, literal groups, unbalanced),
 * `::` sources with upsampling factors, the share of each source over 100,000 weighted draws
 * within 2% of w*n / sum(w*n), OpenCLIP's epoch sizing (the arithmetic of OpenCLIP's get_wds_dataset), sizes.json,
 * and the label rules of DESIGN §4.2 for our and the seed project's metadata.
 */
#include "testlib.h"
#include "data/wds.h"

#include <unistd.h>


static void join(const CmStrList *l, char *out, size_t cap) {
    out[0] = 0;
    for (int i = 0; i < l->n; i++) {
        if (i) strncat(out, " ", cap - strlen(out) - 1);
        strncat(out, l->v[i], cap - strlen(out) - 1);
    }
}

static void test_brace(void) {
    /* expected values follow trendels/braceexpand 0.1.7 */
    struct { const char *in, *want; } cases[] = {
        {"a-{00..03}.tar", "a-00.tar a-01.tar a-02.tar a-03.tar"},
        {"s{8..11}", "s8 s9 s10 s11"},
        {"s{08..11}", "s08 s09 s10 s11"},
        {"s{3..1}", "s3 s2 s1"},
        {"{1..7..3}", "1 4 7"},
        {"{a..e..2}", "a c e"},
        {"{Y..b}", "Y Z a b"},
        {"{a,b}{1,2}", "a1 a2 b1 b2"},
        {"x{a,{b,c}d}y", "xay xbdy xcdy"},
        {"x{a,b{1..2}}", "xa xb1 xb2"},
        {"plain.tar", "plain.tar"},
        {"{abc}", "{abc}"},
        {"a\\{b,c\\}", "a{b,c}"},
        {"{}", "{}"},
        {"{,x}", " x"},
        {"{-01..1}", "-01 000 001"},
        {"/data/shard-{000000..000002}.tar", "/data/shard-000000.tar /data/shard-000001.tar /data/shard-000002.tar"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CmStrList l = {0};
        cm_status st = cm_brace_expand(cases[i].in, &l);
        char got[1024];
        join(&l, got, sizeof got);
        CHECK(st == 0 && !strcmp(got, cases[i].want), "%s -> '%s' want '%s' (%s)", cases[i].in, got, cases[i].want,
              st ? cm_last_error() : "");
        cm_strlist_free(&l);
    }
    const char *bad[] = {"a{b", "a{b,c", "{{a,b}"};
    for (int i = 0; i < 3; i++) {
        CmStrList l = {0};
        CHECK(cm_brace_expand(bad[i], &l) != 0 && strstr(cm_last_error(), "unbalanced"), "%s: %s", bad[i], cm_last_error());
        cm_strlist_free(&l);
    }
    CmStrList l = {0};
    CHECK(cm_brace_expand("{0..9999}{0..9999}", &l) != 0, "expansion bomb refused");
    cm_strlist_free(&l);
    CmStrList big = {0};
    REQUIRE(cm_brace_expand("{00000..00099}", &big) == 0, "100");
    CHECK(big.n == 100 && !strcmp(big.v[99], "00099"), "100 zero-padded names");
    cm_strlist_free(&big);
}

static void test_sources_and_weights(void) {
    CmShardList sl;
    REQUIRE(cm_shardlist_init(&sl, "a-{0..3}.tar::b-{00..09}.tar", "1::0.5", "--train-data") == 0, "%s", cm_last_error());
    CHECK(sl.urls.n == 14 && sl.nsources == 2, "14 shards in 2 sources: %d", sl.urls.n);
    CHECK(sl.source[3] == 0 && sl.source[4] == 1 && sl.weights[4] == 0.5, "source/weight per shard");
    /* share of draws: w*n / sum(w*n): a: 4/(4+5) = 0.444, b: 5/9 = 0.556 */
    int counts[2] = {0, 0};
    CmRng rng;
    cm_rng_seed(&rng, 42);
    for (int i = 0; i < 100000; i++) counts[sl.source[cm_shardlist_draw(&sl, &rng)]]++;
    double want0 = 4.0 / 9.0;
    CHECK(fabs(counts[0] / 100000.0 - want0) < 0.02, "source a share %.4f want %.4f", counts[0] / 1e5, want0);
    CHECK(fabs(counts[1] / 100000.0 - (1 - want0)) < 0.02, "source b share %.4f", counts[1] / 1e5);
    /* every shard drawn roughly by its weight */
    int per[14] = {0};
    for (int i = 0; i < 100000; i++) per[cm_shardlist_draw(&sl, &rng)]++;
    CHECK(fabs(per[0] / 1e5 - 1.0 / 9) < 0.01 && fabs(per[13] / 1e5 - 0.5 / 9) < 0.01, "per-shard shares %d %d", per[0], per[13]);
    cm_shardlist_free(&sl);

    /* the seed's 13-source factors style: 3 sources, weights 3::20::1 over 2, 5, 10 shards */
    REQUIRE(cm_shardlist_init(&sl, "x{0..1}::y{0..4}::z{0..9}", "3::20::1", "--train-data") == 0, "%s", cm_last_error());
    int c3[3] = {0};
    for (int i = 0; i < 100000; i++) c3[sl.source[cm_shardlist_draw(&sl, &rng)]]++;
    double tot = 3 * 2 + 20 * 5 + 1 * 10;
    CHECK(fabs(c3[0] / 1e5 - 6 / tot) < 0.02 && fabs(c3[1] / 1e5 - 100 / tot) < 0.02 && fabs(c3[2] / 1e5 - 10 / tot) < 0.02,
          "shares %d %d %d", c3[0], c3[1], c3[2]);
    cm_shardlist_free(&sl);

    /* unweighted: uniform over shards */
    REQUIRE(cm_shardlist_init(&sl, "a{0..1}::b{0..7}", NULL, "--train-data") == 0, "%s", cm_last_error());
    CHECK(sl.weights == NULL, "no weights");
    int cu[2] = {0};
    for (int i = 0; i < 100000; i++) cu[sl.source[cm_shardlist_draw(&sl, &rng)]]++;
    CHECK(fabs(cu[0] / 1e5 - 0.2) < 0.02, "uniform share %.3f", cu[0] / 1e5);
    cm_shardlist_free(&sl);

    CHECK(cm_shardlist_init(&sl, "a::b", "1", "--train-data") != 0 && strstr(cm_last_error(), "2 '::' sources"), "count mismatch: %s", cm_last_error());
    CHECK(cm_shardlist_init(&sl, "a::b", "1::x", "--train-data") != 0, "bad factor");
    CHECK(cm_shardlist_init(&sl, "a::b", "1::-2", "--train-data") != 0, "negative factor");
    CHECK(cm_shardlist_init(&sl, "a{0..2", NULL, "--train-data") != 0 && strstr(cm_last_error(), "--train-data"), "unbalanced: %s", cm_last_error());
    CHECK(cm_shardlist_init(&sl, "a::", NULL, "--train-data") != 0, "empty source");

    /* deterministic shuffle */
    int a[10], b[10];
    for (int i = 0; i < 10; i++) a[i] = b[i] = i;
    CmRng r1, r2;
    cm_rng_seed(&r1, 7); cm_rng_seed(&r2, 7);
    cm_shuffle_ints(a, 10, &r1);
    cm_shuffle_ints(b, 10, &r2);
    CHECK(!memcmp(a, b, sizeof a), "same seed, same order");
    int sum = 0;
    for (int i = 0; i < 10; i++) sum += a[i];
    CHECK(sum == 45, "a permutation");
}

static void test_epoch_size(void) {
    CmEpochSize e;
    /* the arithmetic of OpenCLIP's get_wds_dataset: 1 GPU, bs 2048, 8 workers, 128,000 samples */
    REQUIRE(cm_epoch_size(128000, 2048, 1, 8, &e) == 0, "%s", cm_last_error());
    CHECK(e.num_batches == 64 && e.num_worker_batches == 8 && e.num_samples == 131072, "%lld %lld %lld",
          (long long)e.num_batches, (long long)e.num_worker_batches, (long long)e.num_samples);
    REQUIRE(cm_epoch_size(1000, 32, 2, 0, &e) == 0, "workers 0");
    CHECK(e.num_batches == 16 && e.num_worker_batches == 16 && e.num_samples == 1024, "workers 0: %lld", (long long)e.num_batches);
    REQUIRE(cm_epoch_size(10, 4, 1, 3, &e) == 0, "small");
    CHECK(e.num_batches == 3 && e.num_worker_batches == 1 && e.num_samples == 12, "small: %lld", (long long)e.num_batches);
    CHECK(cm_epoch_size(0, 4, 1, 1, &e) != 0, "zero samples refused");
    CHECK(cm_epoch_size(10, 0, 1, 1, &e) != 0, "zero batch refused");
}

static void test_dataset_size(void) {
    char dir[] = "/tmp/cm_test_wds_XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/sizes.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"00000.tar\": 10, \"00001.tar\": \"7\"}", f);
    fclose(f);
    CmStrList u = {0};
    char p1[256], p2[256];
    snprintf(p1, sizeof p1, "%s/00000.tar", dir);
    snprintf(p2, sizeof p2, "%s/00001.tar", dir);
    cm_strlist_push(&u, p1, strlen(p1));
    cm_strlist_push(&u, p2, strlen(p2));
    int64_t n = 0;
    CHECK(cm_dataset_size(&u, &n) == 0 && n == 17, "sizes.json total %lld (%s)", (long long)n, cm_last_error());
    cm_strlist_push(&u, "/nonexistent/dir/x.tar", 22);
    CHECK(cm_dataset_size(&u, &n) != 0 && strstr(cm_last_error(), "--train-num-samples"), "%s", cm_last_error());
    cm_strlist_free(&u);
    CHECK(tl_rm_rf(dir) == 0, "cleanup");
}

static void test_labels(void) {
    struct { const char *json; int want; } ok[] = {
        {"{\"label\": 3, \"dataset\": \"fakeddit\", \"source_label\": 3, \"id\": \"abc\"}", 3},
        {"{\"label\": 6, \"dataset\": \"mmhs150k\"}", 6},
        {"{\"label\": 0}", 0},
        /* seed project's Fakeddit shards: Fakeddit ids mapped (2 False Connection -> 4, 5 Misleading -> 2, 4 -> 5) */
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": 0, \"caption\": \"x\"}", 0},
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": 1}", 1},
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": 2}", 4},
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": \"3\"}", 3},
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": 4}", 5},
        {"{\"dataset\": \"fakeedit\", \"6_way_label\": 5.0}", 2},
        /* seed MMHS: 0 -> 0, 1..5 -> 6 */
        {"{\"caption\": \"t\", \"label\": 0, \"tweet_id\": \"1114679353714016256\"}", 0},
        {"{\"caption\": \"t\", \"label\": 4, \"tweet_id\": \"1114679353714016256\"}", 6},
        {"{\"label\": \"5\", \"tweet_id\": 1}", 6},
        /* anything else (seed MSCOCO via img2dataset) -> 0 */
        {"{\"url\": \"http://x\", \"caption\": \"c\", \"key\": \"000001\", \"status\": \"success\"}", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int lab = -2;
        cm_status st = cm_label_from_json(ok[i].json, strlen(ok[i].json), &lab);
        CHECK(st == 0 && lab == ok[i].want, "%s -> %d want %d (%s)", ok[i].json, lab, ok[i].want, st ? cm_last_error() : "");
    }
    const char *bad[] = {
        "{\"label\": 7}", "{\"label\": -1, \"dataset\": \"coco\"}", "{\"label\": 1.5}", "{\"label\": \"x\"}",
        "{\"dataset\": \"fakeedit\", \"6_way_label\": 6}", "{\"dataset\": \"fakeedit\"}", "{\"label\": 9, \"tweet_id\": 1}",
        "{\"label\": ", "[1,2]", "", "{\"label\": 1,}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int lab = 0;
        CHECK(cm_label_from_json(bad[i], strlen(bad[i]), &lab) != 0 && lab == -1, "'%s' should be refused", bad[i]);
    }
    CHECK(cm_fakeddit_class(2) == 4 && cm_fakeddit_class(5) == 2 && cm_fakeddit_class(4) == 5 && cm_fakeddit_class(6) == -1,
          "Fakeddit map");
    CHECK(!strcmp(CM_CLASS_NAMES[6], "Hate") && !strcmp(CM_CLASS_NAMES[2], "Misleading Content"), "class names");
}

int main(void) {
    RUN(test_brace);
    RUN(test_sources_and_weights);
    RUN(test_epoch_size);
    RUN(test_dataset_size);
    RUN(test_labels);
    return tl_summary("test_wds");
}
