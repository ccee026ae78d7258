/*
 * test_example.c — the public C API as an embedding program uses it (issue 8 item 6):
 *   - `clipmod train --enable-lora` (tiny model, one short epoch) writes a LoRA checkpoint;
 *     examples/classify (built by `make` against build/libclipmod.a with include/clipmod.h only)
 *     opens it and prints, for two image+caption pairs, the label, class and probabilities that
 *     `clipmod predict` prints (probabilities to the 7 printed digits, i.e. within 1e-6);
 *   - the same program compiled against build/libclipmod.so when the Makefile builds it;
 *   - clipmod_train with the command's settings writes bit-identical tensors, calling the progress
 *     callback after each optimizer step; bad settings are errors naming the flag;
 *   - sessions: clipmod_session_classify / encode_* equal the model-level calls, for batches
 *     larger than the session's max_batch too, and the model reports its tokenizer.
 */
#include "testlib.h"
#include "data/wds.h"
#include "io/tensorfile.h"

static char g_out[1 << 16], g_err[1 << 16], g_out2[1 << 16];

static const struct { const char *img, *cap; int label; } samples[8] = {
    {"data/coco/000000086220.jpg", "A car and a public transit vehicle on a road.", 0},
    {"data/fakeddit/images/177jpd.jpg", "Humorous Soviet-style propaganda commercial by adult swim", 6},
    {"data/fakeddit/images/16pfs3.jpg", "thumbs up but i dont think it will fit", 1},
    {"data/coco/000000039769.png", "A couple of cats laying on top of a pink blanket.", 0},
    {"data/fakeddit/images/2426x5.jpg", "a title with a word", 4},
    {"data/fakeddit/images/26mjyb.jpg", "orthodox priest blesses rocket before liftoff", 2},
    {"data/fakeddit/images/1qz4mt.jpg", "Google to remove image of dead teenager from Maps", 0},
    {"data/fakeddit/images/2vjjnd.jpg", "a long clean title", 5},
};

static int write_shards(const char *dir) {
    CmShardWriter *w;
    if (cm_mkdir_p(dir) || cm_shard_writer_open(dir, 8, &w)) return 0;
    for (int i = 0; i < 8; i++) {
        uint8_t *img;
        size_t n;
        if (cm_read_file(tl_shared(samples[i].img), 1 << 26, &img, &n)) { cm_shard_writer_close(w); return 0; }
        char js[64], key[16];
        snprintf(js, sizeof js, "{\"label\":%d}", samples[i].label);
        snprintf(key, sizeof key, "s%02d", i);
        const char *ext = strstr(samples[i].img, ".png") ? "png" : "jpg";
        CmWdsOut f[3] = {{ext, img, n}, {"txt", samples[i].cap, strlen(samples[i].cap)}, {"json", js, strlen(js)}};
        cm_status st = cm_shard_writer_write(w, key, f, 3);
        cm_free(img);
        if (st) { cm_shard_writer_close(w); return 0; }
    }
    return cm_shard_writer_close(w) == CM_OK;
}

/* Run a shell command line, stdout into out, stderr into g_err; exit status or -1. */
static int sh(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>%s", cmd, tl_tmp("stderr.txt"));
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    uint8_t *b;
    size_t len;
    g_err[0] = 0;
    if (!cm_read_file(tl_tmp("stderr.txt"), 1 << 20, &b, &len)) {
        size_t k = len < sizeof g_err - 1 ? len : sizeof g_err - 1;
        memcpy(g_err, b + len - k, k);
        g_err[k] = 0;
        cm_free(b);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int g_calls;
static int64_t g_last_step;
static void progress(void *user, const clipmod_train_progress *p) {
    (void)user;
    g_calls++;
    if (p->step == g_last_step + 1 && isfinite(p->loss) && p->lr > 0 && p->logit_scale > 0) g_last_step = p->step;
}

/* Every tensor of a present in b with the same bytes (and the same count). */
static int same_tensors(const char *pa, const char *pb) {
    CmTensorFile *fa, *fb;
    if (cm_tensorfile_open(pa, &fa)) return 0;
    if (cm_tensorfile_open(pb, &fb)) { cm_tensorfile_close(fa); return 0; }
    int same = cm_tensorfile_count(fa) == cm_tensorfile_count(fb) && cm_tensorfile_count(fa) > 0;
    for (int i = 0; same && i < cm_tensorfile_count(fa); i++) {
        const CmTensorView *a = cm_tensorfile_at(fa, i), *b = cm_tensorfile_find(fb, a->name);
        same = b && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
    }
    cm_tensorfile_close(fa);
    cm_tensorfile_close(fb);
    return same;
}

/* Same number of lines; per line the same label and class, probabilities within 1e-6. */
static void same_predictions(const char *want, const char *got, const char *what) {
    char a[1 << 16], b[1 << 16];
    snprintf(a, sizeof a, "%s", want);
    snprintf(b, sizeof b, "%s", got);
    char *sa, *sb;
    char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
    int lines = 0;
    for (; la && lb; la = strtok_r(NULL, "\n", &sa), lb = strtok_r(NULL, "\n", &sb), lines++) {
        cJSON *ja = cJSON_Parse(la), *jb = cJSON_Parse(lb);
        cJSON *pa = cJSON_GetObjectItem(ja, "probs"), *pb = cJSON_GetObjectItem(jb, "probs");
        cJSON *na = cJSON_GetObjectItem(ja, "label"), *nb = cJSON_GetObjectItem(jb, "label");
        cJSON *ca = cJSON_GetObjectItem(ja, "class"), *cb = cJSON_GetObjectItem(jb, "class");
        bool ok = ja && jb && cJSON_IsString(na) && cJSON_IsString(nb) && !strcmp(na->valuestring, nb->valuestring) &&
                  cJSON_IsNumber(ca) && cJSON_IsNumber(cb) && ca->valueint == cb->valueint &&
                  cJSON_GetArraySize(pa) == 7 && cJSON_GetArraySize(pb) == 7;
        double e = 0;
        for (int k = 0; ok && k < 7; k++) e = fmax(e, fabs(cJSON_GetArrayItem(pa, k)->valuedouble - cJSON_GetArrayItem(pb, k)->valuedouble));
        CHECK(ok && e <= 1e-6, "%s line %d: predict %s vs example %s (max diff %g)", what, lines + 1, la, lb, e);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
    }
    CHECK(lines == 2 && !la && !lb, "%s: %d matching lines, want 2", what, lines);
}

static void test_example_matches_predict(void) {
    SHARED_OR_SKIP();
    CLIPMOD_BIN_OR_SKIP();
    const char *bd = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    char ex[512];
    snprintf(ex, sizeof ex, "%s/examples/classify", bd);
    REQUIRE(access(ex, X_OK) == 0, "%s not built (make builds examples/*.c)", ex);
    REQUIRE(tl_tmpdir_make("example"), "tmpdir");
    REQUIRE(write_shards(tl_tmp("shards")), "shards: %s", cm_last_error());
    char vocab[600];   /* a copy: tl_shared's buffers rotate */
    snprintf(vocab, sizeof vocab, "%s", tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz"));
    char args[4096];
    snprintf(args, sizeof args,
             "train --model %s --pretrained %s --vocab %s --enable-lora --batch-size 4 --epochs 1 --train-num-samples 8 "
             "--lr 1e-3 --warmup 1 --precision fp32 --workers 1 --seed 5 --dataset-type webdataset "
             "--train-data '%s/00000.tar' --logs %s --name ex --threads 2",
             tl_shared("golden/tiny/config.json"), tl_shared("golden/tiny/model.safetensors"), vocab, tl_tmp("shards"), tl_tmp(""));
    int rc = tl_run_clipmod(args, NULL, 0, g_err, sizeof g_err);
    REQUIRE(rc == 0, "train exit %d: %s", rc, g_err);
    char ck[600];
    snprintf(ck, sizeof ck, "%s", tl_tmp("ex/checkpoints/epoch_1.safetensors"));
    REQUIRE(cm_file_exists(ck), "no checkpoint %s", ck);
    char i1[600], i2[600];
    snprintf(i1, sizeof i1, "%s", tl_shared(samples[0].img));
    snprintf(i2, sizeof i2, "%s", tl_shared(samples[3].img));
    snprintf(args, sizeof args, "predict --model %s --vocab %s --image %s --text 'A car.' --image %s --text 'two cats'", ck, vocab, i1, i2);
    rc = tl_run_clipmod(args, g_out, sizeof g_out, g_err, sizeof g_err);
    REQUIRE(rc == 0, "predict exit %d: %s", rc, g_err);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s --vocab %s %s 'A car.' %s 'two cats'", ex, ck, vocab, i1, i2);
    rc = sh(cmd, g_out2, sizeof g_out2);
    REQUIRE(rc == 0, "example exit %d: %s", rc, g_err);
    CHECK(strstr(g_err, "BPE tokenizer"), "example's model line: %s", g_err);
    same_predictions(g_out, g_out2, "static library");
    if (getenv("CLIPMOD_TEST_VERBOSE")) fprintf(stderr, "predict:\n%sexample:\n%s", g_out, g_out2);

    /* the shared library, when the Makefile builds it: the same program, linked with -lclipmod */
    char so[512];
    snprintf(so, sizeof so, "%s/libclipmod.so", bd);
    const char *san = getenv("CLIPMOD_SANITIZED");
    if (san && *san) {
        /* an ASan-built libclipmod.so needs the runtime first in a plain program (LD_PRELOAD) */
        fprintf(stderr, "    sanitizer build: shared-library run skipped\n");
    } else if (access(so, R_OK) == 0) {
        snprintf(cmd, sizeof cmd, "cc -std=c11 -Iinclude examples/classify.c -L%s -lclipmod -Wl,-rpath,$(pwd)/%s -o %s", bd, bd,
                 tl_tmp("classify_so"));
        rc = sh(cmd, g_out2, sizeof g_out2);
        REQUIRE(rc == 0, "building against %s: %s", so, g_err);
        snprintf(cmd, sizeof cmd, "%s %s --vocab %s %s 'A car.' %s 'two cats'", tl_tmp("classify_so"), ck, vocab, i1, i2);
        rc = sh(cmd, g_out2, sizeof g_out2);
        REQUIRE(rc == 0, "shared-library example exit %d: %s", rc, g_err);
        same_predictions(g_out, g_out2, "shared library");
    } else {
        fprintf(stderr, "    %s not built: shared-library run skipped\n", so);
    }

    /* sessions against the model-level calls: 5 pairs through a session of max_batch 2 */
    clipmod_model_params mp = clipmod_model_default_params();
    mp.vocab_path = vocab;
    clipmod_model *m;
    REQ_OK(clipmod_model_load_with_params(ck, mp, &m));
    CHECK(clipmod_model_tokenizer(m) == CLIPMOD_TOKENIZER_BPE && clipmod_model_context_length(m) == 77 &&
          clipmod_model_num_classes(m) == 7, "model properties");
    enum { N = 5 };
    int S = clipmod_model_image_size(m);
    float *px = cm_malloc((size_t)N * 3 * S * S * sizeof(float), "pixels");
    int32_t ids[N * 77];
    REQUIRE(px, "oom");
    for (int i = 0; i < N; i++) {
        clipmod_image img;
        REQ_OK(clipmod_image_load(tl_shared(samples[i].img), &img));
        REQ_OK(clipmod_model_preprocess(m, &img, px + (size_t)i * 3 * S * S));
        clipmod_image_free(&img);
        REQ_OK(clipmod_model_tokenize(m, samples[i].cap, strlen(samples[i].cap), ids + i * 77));
    }
    float p1[N * 7], p2[N * 7], l1[N * 7], l2[N * 7], f1[N * 32], f2[N * 32];
    REQ_OK(clipmod_classify(m, px, ids, N, p1, l1));
    clipmod_session_params sp = clipmod_session_default_params();
    sp.max_batch = 2;
    clipmod_session *s;
    REQ_OK(clipmod_session_init_with_params(m, sp, &s));
    for (int rep = 0; rep < 2; rep++) {   /* the reused buffers give the same answer again */
        REQ_OK(clipmod_session_classify(s, px, ids, N, p2, l2));
        double e = 0;
        for (int i = 0; i < N * 7; i++) e = fmax(e, fabs(l1[i] - l2[i]) + fabs(p1[i] - p2[i]));
        CHECK(e <= 1e-5, "session classify (rep %d) differs by %g", rep, e);
    }
    REQ_OK(clipmod_encode_text(m, ids, N, true, f1));
    REQ_OK(clipmod_session_encode_text(s, ids, N, true, f2));
    double e = 0;
    for (int i = 0; i < N * 32; i++) e = fmax(e, fabs(f1[i] - f2[i]));
    CHECK(e <= 1e-6, "session text features differ by %g", e);
    REQ_OK(clipmod_encode_image(m, px, N, false, f1));
    REQ_OK(clipmod_session_encode_image(s, px, N, false, f2));
    e = 0;
    for (int i = 0; i < N * 32; i++) e = fmax(e, fabs(f1[i] - f2[i]));
    CHECK(e <= 1e-5, "session image features differ by %g", e);
    CHECK(clipmod_session_classify(s, px, ids, 0, p2, NULL) == CLIPMOD_ERR_ARG, "n = 0 accepted");
    ids[3] = 60000;
    CHECK(clipmod_session_classify(s, px, ids, N, p2, NULL) == CLIPMOD_ERR_ARG && strstr(clipmod_last_error(), "60000"),
          "bad token: %s", clipmod_last_error());
    clipmod_session_free(s);
    clipmod_model_free(m);
    cm_free(px);
    /* training through the API: the same run as the command above gives bit-identical tensors,
       with the progress callback called once per optimizer step (2) */
    clipmod_train_params tp = clipmod_train_default_params();
    char tiny_cfg[600], tiny_w[600];
    snprintf(tiny_cfg, sizeof tiny_cfg, "%s", tl_shared("golden/tiny/config.json"));
    snprintf(tiny_w, sizeof tiny_w, "%s", tl_shared("golden/tiny/model.safetensors"));
    tp.model = tiny_cfg;
    tp.pretrained = tiny_w;
    tp.vocab_path = vocab;
    tp.enable_lora = true;
    tp.batch_size = 4;
    tp.epochs = 1;
    tp.train_num_samples = 8;
    tp.lr = 1e-3;
    tp.warmup = 1;
    tp.precision = "fp32";
    tp.workers = 1;
    tp.seed = 5;
    char shards[700];
    snprintf(shards, sizeof shards, "%s/00000.tar", tl_tmp("shards"));
    tp.train_data = shards;
    char logs[600];
    snprintf(logs, sizeof logs, "%s", tl_tmp(""));
    tp.logs_dir = logs;
    tp.name = "api";
    tp.threads = 2;
    tp.progress = progress;
    clipmod_train_result res;
    REQ_OK(clipmod_train(tp, &res));
    CHECK(g_calls == 2 && g_last_step == 2 && res.steps == 2, "progress: %d calls, last step %lld, %lld steps", g_calls,
          (long long)g_last_step, (long long)res.steps);
    CHECK(strstr(res.checkpoint, "api/checkpoints/epoch_1.safetensors") && same_tensors(ck, res.checkpoint),
          "API run's checkpoint %s differs from the command's %s", res.checkpoint, ck);
    tp.train_data = NULL;
    CHECK(clipmod_train(tp, &res) == CLIPMOD_ERR_ARG && strstr(clipmod_last_error(), "train_data"), "no data: %s", clipmod_last_error());
    tp.train_data = shards;
    tp.batch_size = 0;
    tp.name = "bad";
    CHECK(clipmod_train(tp, &res) == CLIPMOD_ERR_ARG && strstr(clipmod_last_error(), "--batch-size"), "batch 0: %s", clipmod_last_error());

    /* a missing file: an error naming it */
    CHECK(clipmod_model_load_with_params("/nonexistent/x.safetensors", mp, &m) == CLIPMOD_ERR_IO &&
          strstr(clipmod_last_error(), "/nonexistent/x.safetensors"), "missing model: %s", clipmod_last_error());
    tl_tmpdir_remove();
}

int main(void) {
    RUN(test_example_matches_predict);
    return tl_summary("test_example");
}
