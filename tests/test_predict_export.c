/*
 * test_predict_export.c — `clipmod predict` streaming and bulk modes and `clipmod export`, from
 * the outside (issue 11 items 2 and 3):
 *   - `predict --jsonl -` fed through a FIFO answers line 1 before line 2 is written;
 *   - bulk `--data` shards (threaded loader) and `--images DIR --captions TSV` give the same
 *     label/class and probabilities (fp32 batch-composition rounding only) as `predict` run one
 *     pair at a time, key every row, count bad samples, write CSV / --out atomically, and exit 1
 *     when nothing could be scored;
 *   - `export` of a LoRA checkpoint (BPE, base model elsewhere) and of a full checkpoint (byte
 *     tokenizer) round-trips: `predict/eval/embed --model DIR` give the checkpoint's answers
 *     (1e-5); refuses a non-empty --out without --overwrite; --peft names;
 *   - the ViT-B-32 export holds exactly OpenCLIP's 302 state-dict names and shapes, in order,
 *     checked against the list in ../shared/golden/full/weights_seed1_tensors.json, and its
 *     open_clip_config.json equals OpenCLIP's ViT-B-32.json values.
 * Models: the golden tiny model (../shared/golden/tiny), saved here as clipmod checkpoints.
 */
#include "testlib.h"
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <cjson/cJSON.h>
#include "data/wds.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/export.h"

static char tmpdir[256];
static char out_buf[1 << 20], err_buf[1 << 16];

static const struct { const char *img, *cap; } samples[] = {
    {"data/coco/000000086220.jpg", "A car and a public transit vehicle on a road."},
    {"data/fakeddit/images/177jpd.jpg", "Humorous Soviet-style propaganda commercial by adult swim"},
    {"data/fakeddit/images/16pfs3.jpg", "thumbs up but i dont think it will fit"},
    {"data/coco/000000039769.png", "A couple of cats laying on top of a pink blanket."},
    {"data/fakeddit/images/2426x5.jpg", "a title with a word"},
    {"data/fakeddit/images/26mjyb.jpg", "orthodox priest blesses rocket before liftoff"},
    {"data/fakeddit/images/1qz4mt.jpg", "Google to remove image of dead teenager from Maps"},
};
#define NS ((int)(sizeof samples / sizeof samples[0]))

static const char *T(const char *name) {
    static char b[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(b[k], sizeof b[k], "%s/%s", tmpdir, name);
    return b[k];
}
static const char *vocab(void) { return tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz"); }
static const char *base_name(const char *p) { const char *s = strrchr(p, '/'); return s ? s + 1 : p; }

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char args[7000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return tl_run_clipmod(args, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
}

/* The output lines of out_buf as JSON (max n); returns the count. */
static int parse_lines(cJSON **v, int n) {
    int k = 0;
    char *save = NULL;
    for (char *l = strtok_r(out_buf, "\n", &save); l && k < n; l = strtok_r(NULL, "\n", &save)) v[k++] = cJSON_Parse(l);
    return k;
}
static void free_lines(cJSON **v, int n) { for (int i = 0; i < n; i++) cJSON_Delete(v[i]); }

typedef struct { int cls; double p[7]; } Res;

static bool res_of(const cJSON *j, Res *r) {
    const cJSON *c = cJSON_GetObjectItem(j, "class"), *p = cJSON_GetObjectItem(j, "probs");
    if (!cJSON_IsNumber(c) || cJSON_GetArraySize(p) != 7) return false;
    r->cls = c->valueint;
    for (int i = 0; i < 7; i++) r->p[i] = cJSON_GetArrayItem(p, i)->valuedouble;
    return true;
}
static double res_diff(const Res *a, const Res *b) {
    double d = 0;
    for (int i = 0; i < 7; i++) d = fmax(d, fabs(a->p[i] - b->p[i]));
    return a->cls == b->cls ? d : INFINITY;
}

/* predict of each sample pair, one pair per forward pass (--batch-size 1). */
static bool single(const char *model, Res *r) {
    char args[8192];
    int k = snprintf(args, sizeof args, "predict --model %s --vocab %s --batch-size 1", model, vocab());
    for (int i = 0; i < NS; i++) k += snprintf(args + k, sizeof args - k, " --image %s --text '%s'", tl_shared(samples[i].img), samples[i].cap);
    if (run("%s", args) != 0) { fprintf(stderr, "single predict failed: %s\n", err_buf); return false; }
    cJSON *v[NS + 1];
    int n = parse_lines(v, NS + 1);
    bool ok = n == NS;
    for (int i = 0; i < n && ok; i++) ok = res_of(v[i], &r[i]);
    free_lines(v, n);
    return ok;
}

// ---------------------------------------------------------------------------------------------
// fixtures

static CmModel *golden(void) {
    CmModelConfig cfg;
    CmModel *m = NULL;
    if (cm_config_load(tl_shared("golden/tiny/config.json"), &cfg)) return NULL;
    if (cm_model_from_file(tl_shared("golden/tiny/model.safetensors"), &cfg, CM_LOAD_STRICT, 0, &m)) return NULL;
    return m;
}

static bool fixtures_ok;
static Res ref_lora[NS], ref_bytes[NS];

static void fixtures(void) {
    SHARED_OR_SKIP();
    /* LoRA checkpoint (non-zero B), base model = the CLIP-only torch file elsewhere */
    CmModel *m = golden();
    REQUIRE(m, "golden model: %s", cm_last_error());
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_LORA; meta.trainable_only = true; meta.epoch = 1; meta.step = 1;
    snprintf(meta.name, sizeof meta.name, "t");
    snprintf(meta.base_model, sizeof meta.base_model, "%s", tl_shared("golden/tiny/open_clip_pytorch_model.bin"));
    REQ_OK(cm_sha256_file(meta.base_model, meta.base_sha256));
    snprintf(meta.tokenizer, sizeof meta.tokenizer, "bpe");
    REQ_OK(cm_checkpoint_save(T("lora.safetensors"), m, NULL, &meta));
    /* a full checkpoint with the byte-level tokenizer */
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, false, false));
    meta.mode = CM_TRAIN_FULL; meta.trainable_only = false; meta.base_model[0] = meta.base_sha256[0] = 0;
    snprintf(meta.tokenizer, sizeof meta.tokenizer, "bytes");
    REQ_OK(cm_checkpoint_save(T("bytes.safetensors"), m, NULL, &meta));
    cm_model_free(m);

    /* shards: the samples + one undecodable image, 4 per shard */
    CmShardWriter *w;
    REQ_OK(cm_mkdir_p(T("shards")));
    REQ_OK(cm_shard_writer_open(T("shards"), 4, &w));
    REQ_OK(cm_mkdir_p(T("imgs")));
    char tsv[8192];
    int tk = 0;
    for (int i = 0; i <= NS; i++) {
        uint8_t *img = (uint8_t *)"this is not an image";
        size_t n = 20;
        if (i < NS) REQ_OK(cm_read_file(tl_shared(samples[i].img), 1 << 26, &img, &n));
        char key[16];
        snprintf(key, sizeof key, "s%02d", i);
        const char *cap = i < NS ? samples[i].cap : "bad";
        const char *ext = i < NS && strstr(samples[i].img, ".png") ? "png" : "jpg";
        CmWdsOut f[3] = {{ext, img, n}, {"txt", cap, strlen(cap)}, {"json", "{\"label\":0}", 11}};
        cm_status st = cm_shard_writer_write(w, key, f, 3);
        if (i < NS) {
            char p[600];
            snprintf(p, sizeof p, "%s/imgs/%s", tmpdir, base_name(samples[i].img));
            tl_write_file(p, img, n);
            tk += snprintf(tsv + tk, sizeof tsv - tk, "%s\t%s\n", base_name(samples[i].img), cap);
            cm_free(img);
        }
        REQ_OK(st);
    }
    REQ_OK(cm_shard_writer_close(w));
    tk += snprintf(tsv + tk, sizeof tsv - tk, "missing.jpg\tno such file\n\nno tab on this line\n");
    REQUIRE(tl_write_text(T("captions.tsv"), tsv) == 0, "tsv");
    REQUIRE(single(T("lora.safetensors"), ref_lora), "reference predictions (lora)");
    fixtures_ok = true;
}
#define FIXTURES() do { SHARED_OR_SKIP(); CLIPMOD_BIN_OR_SKIP(); REQUIRE(fixtures_ok, "fixtures failed"); } while (0)

// ---------------------------------------------------------------------------------------------
// predict

/* Wait up to timeout_s for a complete line on fd; appends to buf. */
static bool read_line(int fd, char *buf, size_t cap, size_t *len, double timeout_s) {
    double end = cm_now() + timeout_s;
    while (!memchr(buf, '\n', *len)) {
        int ms = (int)((end - cm_now()) * 1000);
        if (ms <= 0) return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) <= 0) continue;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0) return false;
        *len += (size_t)n;
        buf[*len] = 0;
    }
    return true;
}

static void test_stream_fifo(void) {
    FIXTURES();
    const char *fifo = T("in.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0, "mkfifo");
    int outp[2];
    REQUIRE(pipe(outp) == 0, "pipe");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        int in = open(fifo, O_RDONLY);
        if (in < 0) _exit(99);
        dup2(in, 0);
        dup2(outp[1], 1);
        close(outp[0]);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 2);
        execl(tl_clipmod_bin(), "clipmod", "predict", "--model", T("lora.safetensors"), "--vocab", vocab(), "--jsonl", "-", (char *)NULL);
        _exit(98);
    }
    close(outp[1]);
    int w = open(fifo, O_WRONLY);
    REQUIRE(w >= 0, "open fifo for writing");
    char line[1200], got[1 << 14];
    size_t len = 0;
    got[0] = 0;
    snprintf(line, sizeof line, "{\"image\": \"%s\", \"text\": \"%s\"}\n", tl_shared(samples[0].img), samples[0].cap);
    CHECK(write(w, line, strlen(line)) == (ssize_t)strlen(line), "write line 1");
    /* line 2 is not written yet: the answer to line 1 must come anyway (model load included) */
    bool first = read_line(outp[0], got, sizeof got, &len, 30);
    CHECK(first, "no answer to line 1 before line 2 was written (got '%s')", got);
    snprintf(line, sizeof line, "{\"image\": \"%s\", \"text\": \"%s\"}\n", tl_shared(samples[3].img), samples[3].cap);
    CHECK(write(w, line, strlen(line)) == (ssize_t)strlen(line), "write line 2");
    close(w);
    for (;;) {
        struct pollfd p = {outp[0], POLLIN, 0};
        if (poll(&p, 1, 120000) <= 0) break;
        ssize_t n = read(outp[0], got + len, sizeof got - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    got[len] = 0;
    close(outp[0]);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "stream exit status %d", st);
    memcpy(out_buf, got, len + 1);
    cJSON *v[4];
    int n = parse_lines(v, 4);
    CHECK(n == 2, "%d output lines for 2 input lines: %s", n, got);
    Res r;
    if (n >= 1) CHECK(res_of(v[0], &r) && res_diff(&r, &ref_lora[0]) < 2e-6, "line 1 differs from single predict");
    if (n >= 2) CHECK(res_of(v[1], &r) && res_diff(&r, &ref_lora[3]) < 2e-6, "line 2 differs from single predict");
    free_lines(v, n);
}

static int key_index(const char *key) { return key && key[0] == 's' ? atoi(key + 1) : -1; }

static void test_bulk_shards(void) {
    FIXTURES();
    int rc = run("predict --model %s --vocab %s --data '%s/shards/{00000..00001}.tar' --batch-size 3 --workers 2", T("lora.safetensors"),
                 vocab(), tmpdir);
    CHECK(rc == 0, "bulk --data exit %d: %s", rc, err_buf);
    CHECK(strstr(err_buf, "predict: done: 7 samples scored, 1 bad skipped"), "progress summary / bad count: %s", err_buf);
    CHECK(strstr(err_buf, "s07"), "the bad sample is named: %s", err_buf);
    cJSON *v[16];
    int n = parse_lines(v, 16);
    CHECK(n == NS, "%d rows, want %d", n, NS);
    bool seen[NS] = {0};
    for (int i = 0; i < n; i++) {
        const cJSON *k = cJSON_GetObjectItem(v[i], "key"), *s = cJSON_GetObjectItem(v[i], "shard");
        int idx = cJSON_IsString(k) ? key_index(k->valuestring) : -1;
        Res r;
        REQUIRE(idx >= 0 && idx < NS && cJSON_IsString(s) && strstr(s->valuestring, "/shards/0000") && res_of(v[i], &r), "row %d", i);
        CHECK(i == idx, "rows in shard order: row %d is %s", i, k->valuestring);
        seen[idx] = true;
        double d = res_diff(&r, &ref_lora[idx]);
        CHECK(d < 2e-6, "%s: max prob diff %.3g vs single predict", k->valuestring, d);
        CHECK(!strcmp(cJSON_GetObjectItem(v[i], "label")->valuestring, "True") || cJSON_GetObjectItem(v[i], "class")->valueint != 0, "label");
    }
    for (int i = 0; i < NS; i++) CHECK(seen[i], "key s%02d missing", i);
    free_lines(v, n);

    /* on a TTY (util-linux `script` gives one): a progress line rewritten with '\r', rate, ETA */
    if (access("/usr/bin/script", X_OK) == 0) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "/usr/bin/script -qec \"%s predict --model %s --vocab %s --data '%s/shards/{00000..00001}.tar' "
                 "--batch-size 1 --out %s\" /dev/null >%s 2>&1", tl_clipmod_bin(), T("lora.safetensors"), vocab(), tmpdir, T("tty.jsonl"), T("tty.txt"));
        int st = system(cmd);
        uint8_t *tt = NULL;
        size_t tn = 0;
        CHECK(st == 0 && !cm_read_file(T("tty.txt"), 1 << 20, &tt, &tn), "script run: %d", st);
        if (tt) {
            CHECK(strstr((char *)tt, "\rpredict: 1/8 samples") && strstr((char *)tt, "samples/s") && strstr((char *)tt, "ETA") &&
                  strstr((char *)tt, "\033[K") && strstr((char *)tt, "predict: done: 7 samples scored, 1 bad"), "TTY progress: %s", tt);
            cm_free(tt);
        }
    } else {
        fprintf(stderr, "  (no /usr/bin/script: TTY progress not checked)\n");
    }

    /* CSV to a file, atomically */
    rc = run("predict --model %s --vocab %s --data '%s/shards/{00000..00001}.tar' --format csv --out %s --no-progress", T("lora.safetensors"),
             vocab(), tmpdir, T("out.csv"));
    CHECK(rc == 0 && !out_buf[0], "csv --out exit %d, stdout '%.80s': %s", rc, out_buf, err_buf);
    CHECK(!strstr(err_buf, "predict: done"), "--no-progress: %s", err_buf);
    uint8_t *csv;
    size_t cn;
    REQ_OK(cm_read_file(T("out.csv"), 1 << 20, &csv, &cn));
    int lines = 0;
    for (size_t i = 0; i < cn; i++) lines += csv[i] == '\n';
    CHECK(lines == NS + 1, "csv lines %d", lines);
    CHECK(!strncmp((char *)csv, "key,shard,label,class,p_True,p_Satire/Parody,", 45), "csv header: %.120s", csv);
    /* the first data row's probabilities equal the reference */
    char *row = strchr((char *)csv, '\n') + 1;
    CHECK(!strncmp(row, "s00,", 4), "first row %.40s", row);
    char *f = row;
    for (int c = 0; c < 4 && f; c++) f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
    REQUIRE(f, "csv row");
    for (int c = 0; c < 7; c++) {
        double p = strtod(f, &f);
        CHECK(fabs(p - ref_lora[0].p[c]) < 2e-6, "csv p[%d] %g vs %g", c, p, ref_lora[0].p[c]);
        if (*f == ',') f++;
    }
    cm_free(csv);
}

static void test_bulk_images(void) {
    FIXTURES();
    int rc = run("predict --model %s --vocab %s --images %s --captions %s --batch-size 4", T("lora.safetensors"), vocab(), T("imgs"),
                 T("captions.tsv"));
    CHECK(rc == 0, "bulk --images exit %d: %s", rc, err_buf);
    CHECK(strstr(err_buf, "7 samples scored, 2 bad skipped") && strstr(err_buf, "missing.jpg") && strstr(err_buf, "line 10"),
          "bad rows counted and named: %s", err_buf);
    cJSON *v[16];
    int n = parse_lines(v, 16);
    CHECK(n == NS, "%d rows", n);
    for (int i = 0; i < n && i < NS; i++) {
        const cJSON *fl = cJSON_GetObjectItem(v[i], "file");
        Res r;
        REQUIRE(cJSON_IsString(fl) && res_of(v[i], &r), "row %d", i);
        CHECK(!strcmp(fl->valuestring, base_name(samples[i].img)), "row %d file %s", i, fl->valuestring);
        double d = res_diff(&r, &ref_lora[i]);
        CHECK(d < 2e-6, "%s: max prob diff %.3g vs single predict", fl->valuestring, d);
    }
    free_lines(v, n);
}

static void test_bulk_errors(void) {
    FIXTURES();
    /* nothing scorable: exit 1, no output file left behind */
    REQUIRE(tl_write_text(T("none.tsv"), "missing.jpg\tx\nalso-missing.png\ty\n") == 0, "tsv");
    int rc = run("predict --model %s --vocab %s --images %s --captions %s --out %s", T("lora.safetensors"), vocab(), T("imgs"), T("none.tsv"),
                 T("none.jsonl"));
    CHECK(rc == 1 && strstr(err_buf, "no sample could be scored"), "zero scored: exit %d: %s", rc, err_buf);
    CHECK(access(T("none.jsonl"), F_OK) != 0, "--out file written although nothing was scored");
    rc = run("predict --model %s --vocab %s --data '%s/nonexistent/{0..1}.tar'", T("lora.safetensors"), vocab(), tmpdir);
    CHECK(rc == 1, "missing shards: exit %d: %s", rc, err_buf);
    /* usage */
    rc = run("predict --model %s --data x.tar --images %s --captions %s", T("lora.safetensors"), T("imgs"), T("captions.tsv"));
    CHECK(rc == 2 && strstr(err_buf, "one input"), "two modes: %d %s", rc, err_buf);
    rc = run("predict --model %s --images %s", T("lora.safetensors"), T("imgs"));
    CHECK(rc == 2 && strstr(err_buf, "--captions"), "images without captions: %d %s", rc, err_buf);
    rc = run("predict --model %s --data x.tar --format xml", T("lora.safetensors"));
    CHECK(rc == 2 && strstr(err_buf, "--format"), "format: %d %s", rc, err_buf);
}

// ---------------------------------------------------------------------------------------------
// export

static void test_export_lora_roundtrip(void) {
    FIXTURES();
    char dir[600];
    snprintf(dir, sizeof dir, "%s", T("export_lora"));
    int rc = run("export --model %s --out %s --peft", T("lora.safetensors"), dir);
    REQUIRE(rc == 0, "export exit %d: %s", rc, err_buf);
    /* the weights file: exactly the CLIP tensors of the table, in order (62 for the tiny config) */
    CmModel *g = golden();
    REQUIRE(g, "golden");
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, CM_EXPORT_WEIGHTS);
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(p, &f));
    int k = 0;
    bool order = true;
    for (int i = 0; i < g->n_params; i++) {
        if (g->params[i].group == CM_GROUP_LORA || g->params[i].group == CM_GROUP_HEAD) continue;
        const CmTensorView *t = k < cm_tensorfile_count(f) ? cm_tensorfile_at(f, k) : NULL;
        order = order && t && !strcmp(t->name, g->params[i].name) && t->dtype == CM_F32;
        k++;
    }
    CHECK(k == 62 && cm_tensorfile_count(f) == 62 && order, "weights file: %d tensors, order %d", cm_tensorfile_count(f), order);
    /* merged: out_proj.weight = W + (alpha/r) B A */
    const CmTensorView *ow = cm_tensorfile_find(f, "visual.transformer.resblocks.1.attn.out_proj.weight");
    int iw = cm_model_find(g, "visual.transformer.resblocks.1.attn.out_proj.weight"), ia = cm_model_find(g, "visual.transformer.resblocks.1.attn.out_proj.lora_A.weight"),
        ib = cm_model_find(g, "visual.transformer.resblocks.1.attn.out_proj.lora_B.weight");
    REQUIRE(ow && iw >= 0 && ia >= 0 && ib >= 0, "out_proj tensors");
    const float *W = ow->data, *W0 = g->params[iw].data, *A = g->params[ia].data, *B = g->params[ib].data;
    double worst = 0, moved = 0;
    int D = (int)g->params[iw].shape[0], r = g->cfg.lora_rank;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double acc = 0;
            for (int q = 0; q < r; q++) acc += (double)B[i * r + q] * A[q * D + j];
            double want = W0[i * D + j] + g->cfg.lora_alpha / r * acc;
            worst = fmax(worst, fabs(W[i * D + j] - want));
            moved = fmax(moved, fabs(W[i * D + j] - W0[i * D + j]));
        }
    CHECK(worst < 1e-6 && moved > 1e-3, "merge: worst %.3g, LoRA moved W by %.3g", worst, moved);
    cm_tensorfile_close(f);
    /* the head file and its metadata */
    snprintf(p, sizeof p, "%s/%s", dir, CM_EXPORT_HEAD);
    REQ_OK(cm_tensorfile_open(p, &f));
    CHECK(cm_tensorfile_count(f) == 28, "head tensors %d", cm_tensorfile_count(f));
    const char *tok = cm_tensorfile_metadata(f, "tokenizer"), *cls = cm_tensorfile_metadata(f, "class_names"), *hc = cm_tensorfile_metadata(f, "head_config");
    CHECK(tok && !strcmp(tok, "bpe"), "tokenizer %s", tok ? tok : "(none)");
    CHECK(cls && strstr(cls, "\"Hate\"") && hc && strstr(hc, "\"classes\":7"), "class names %s / head config %s", cls ? cls : "-", hc ? hc : "-");
    cm_tensorfile_close(f);
    /* PEFT adapters */
    snprintf(p, sizeof p, "%s/%s", dir, CM_EXPORT_PEFT);
    REQ_OK(cm_tensorfile_open(p, &f));
    CHECK(cm_tensorfile_count(f) == 8 && cm_tensorfile_find(f, "base_model.model.transformer.resblocks.0.attn.out_proj.lora_B.weight"), "peft names");
    cm_tensorfile_close(f);
    cm_model_free(g);

    /* predict from the folder == predict from the checkpoint */
    Res r2[NS];
    REQUIRE(single(dir, r2), "predict --model DIR");
    for (int i = 0; i < NS; i++) {
        double d = res_diff(&r2[i], &ref_lora[i]);
        CHECK(d <= 1e-5, "sample %d: export vs checkpoint max prob diff %.3g", i, d);
    }
    /* eval and embed open it too */
    rc = run("eval --model %s --vocab %s --val-data '%s/shards/{00000..00001}.tar' --json", dir, vocab(), tmpdir);
    CHECK(rc == 0 && strstr(out_buf, "\"n\":7"), "eval --model DIR: %d %s %s", rc, out_buf, err_buf);
    rc = run("embed --model %s --vocab %s --text 'a cat'", dir, vocab());
    CHECK(rc == 0 && strstr(out_buf, "\"embedding\""), "embed --model DIR: %d %s", rc, err_buf);
    /* the weights + config alone are a plain OpenCLIP folder: embed gives the same embedding,
       predict refuses (no head; never a randomly initialised one) */
    {
        static char e1[sizeof out_buf];
        memcpy(e1, out_buf, sizeof e1);
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "mkdir -p %s/ocdir && cp %s/%s %s/%s %s/ocdir/", tmpdir, dir, CM_EXPORT_WEIGHTS, dir, CM_EXPORT_CONFIG, tmpdir);
        REQUIRE(system(cmd) == 0, "copy");
        rc = run("embed --model %s --vocab %s --text 'a cat'", T("ocdir"), vocab());
        CHECK(rc == 0 && !strcmp(out_buf, e1), "embed from the OpenCLIP folder differs: %d %s", rc, err_buf);
        rc = run("predict --model %s --vocab %s --image %s --text x", T("ocdir"), vocab(), tl_shared(samples[0].img));
        CHECK(rc == 1 && strstr(err_buf, "no classification head"), "predict on a CLIP-only folder: %d %s", rc, err_buf);
    }
    /* a non-empty --out is refused unless --overwrite; --overwrite without --peft drops the adapters */
    rc = run("export --model %s --out %s", T("lora.safetensors"), dir);
    CHECK(rc == 2 && strstr(err_buf, "--overwrite"), "non-empty out: %d %s", rc, err_buf);
    rc = run("export --model %s --out %s --overwrite", T("lora.safetensors"), dir);
    CHECK(rc == 0 && access(p, F_OK) != 0, "overwrite: %d %s", rc, err_buf);
    /* --vocab makes the folder self-contained: the tokenizer is found in it */
    rc = run("export --model %s --out %s --overwrite --vocab %s", T("lora.safetensors"), dir, vocab());
    snprintf(p, sizeof p, "%s/bpe_simple_vocab_16e6.txt.gz", dir);
    uint8_t *va = NULL, *vb = NULL;
    size_t na = 0, nb = 0;
    CHECK(rc == 0 && !cm_read_file(p, 1 << 24, &va, &na) && !cm_read_file(vocab(), 1 << 24, &vb, &nb) && na == nb && !memcmp(va, vb, na),
          "--vocab copy: %d %s", rc, err_buf);
    cm_free(va); cm_free(vb);
    rc = run("predict --model %s --vocab %s --image %s --text 'a car'", dir, dir, tl_shared(samples[0].img));
    CHECK(rc == 0 && strstr(out_buf, "\"probs\""), "tokenizer from the folder: %d %s", rc, err_buf);
    rc = run("export --model %s --out %s --overwrite --vocab %s", T("lora.safetensors"), dir, T("captions.tsv"));
    CHECK(rc != 0 && strstr(err_buf, "--vocab"), "a bad vocabulary is refused: %d %s", rc, err_buf);
    /* nothing left behind in the parent but the folder and our inputs */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -d %s/export_lora.export-tmp.* >/dev/null 2>&1", tmpdir);
    CHECK(system(cmd) != 0, "temporary export folder left behind");
}

static void test_export_bytes_full(void) {
    FIXTURES();
    char dir[600];
    snprintf(dir, sizeof dir, "%s", T("export_bytes"));
    int rc = run("export --model %s --out %s", T("bytes.safetensors"), dir);
    REQUIRE(rc == 0, "export exit %d: %s", rc, err_buf);
    REQUIRE(single(T("bytes.safetensors"), ref_bytes), "predict bytes checkpoint: %s", err_buf);
    Res r2[NS];
    REQUIRE(single(dir, r2), "predict bytes export: %s", err_buf);
    double worst = 0, vs_bpe = 0;
    for (int i = 0; i < NS; i++) {
        worst = fmax(worst, res_diff(&r2[i], &ref_bytes[i]));
        vs_bpe = fmax(vs_bpe, res_diff(&r2[i], &ref_lora[i]));
    }
    CHECK(worst <= 1e-5, "bytes export vs checkpoint: %.3g", worst);
    CHECK(vs_bpe > 1e-4, "the export did not use the byte tokenizer (same answers as BPE: %.3g)", vs_bpe);

    /* a CLIP-only weights file with a named config: no head is made up — predict refuses, export
       writes a plain OpenCLIP folder (no classifier_head.safetensors) */
    const char *clip = tl_shared("golden/tiny/open_clip_pytorch_model.bin"), *cfg = tl_shared("golden/tiny/config.json");
    rc = run("predict --model %s --model-name %s --vocab %s --image %s --text x", clip, cfg, vocab(), tl_shared(samples[0].img));
    CHECK(rc == 1 && strstr(err_buf, "no classification head"), "predict with a CLIP-only file: %d %s", rc, err_buf);
    rc = run("export --model %s --model-name %s --out %s", clip, cfg, T("export_clip"));
    char p[700];
    snprintf(p, sizeof p, "%s/%s", T("export_clip"), CM_EXPORT_HEAD);
    CHECK(rc == 0 && access(p, F_OK) != 0, "export of a CLIP-only file: %d %s", rc, err_buf);
    rc = run("embed --model %s --vocab %s --text x", T("export_clip"), vocab());
    CHECK(rc == 0 && strstr(out_buf, "\"embedding\""), "embed from the CLIP-only export: %d %s", rc, err_buf);
}

/* ViT-B-32: the exported names and shapes are OpenCLIP's 302, in state-dict order. */
static void test_export_vitb32_names(void) {
    SHARED_OR_SKIP();
    cJSON *list = tl_read_golden_json("golden/full/weights_seed1_tensors.json");
    REQUIRE(list, "golden/full/weights_seed1_tensors.json");
    const cJSON *ts = cJSON_GetObjectItem(list, "tensors");
    REQUIRE(cJSON_GetArraySize(ts) == 302, "the OpenCLIP list has %d names", cJSON_GetArraySize(ts));
    CmModelConfig cfg;
    REQ_OK(cm_config_from_name("ViT-B-32", &cfg));
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    cm_model_init_lora_head(m, 1);
    CmExportOpts o = {false, false, "bpe", "test", NULL};
    char dir[600];
    snprintf(dir, sizeof dir, "%s", T("export_vitb32"));
    REQ_OK(cm_export_write(m, dir, &o));
    cm_model_free(m);
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, CM_EXPORT_WEIGHTS);
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(p, &f));
    CHECK(cm_tensorfile_count(f) == 302, "%d tensors in the export", cm_tensorfile_count(f));
    int i = 0, bad = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, ts) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const cJSON *shape = cJSON_GetObjectItem(t, "shape");
        const CmTensorView *v = i < cm_tensorfile_count(f) ? cm_tensorfile_at(f, i) : NULL;
        bool ok = v && !strcmp(v->name, name) && v->ndim == cJSON_GetArraySize(shape) && v->dtype == CM_F32;
        for (int d = 0; ok && d < v->ndim; d++) ok = v->shape[d] == (int64_t)cJSON_GetArrayItem(shape, d)->valuedouble;
        if (!ok && bad++ < 5) CHECK(0, "tensor %d: export has %s, OpenCLIP %s", i, v ? v->name : "(none)", name);
        i++;
    }
    CHECK(bad == 0, "%d of 302 names/shapes differ", bad);
    cm_tensorfile_close(f);
    cJSON_Delete(list);
    /* open_clip_config.json: OpenCLIP's ViT-B-32.json values, nothing else */
    snprintf(p, sizeof p, "%s/%s", dir, CM_EXPORT_CONFIG);
    uint8_t *b;
    size_t n;
    REQ_OK(cm_read_file(p, 1 << 20, &b, &n));
    cJSON *want = cJSON_Parse("{\"embed_dim\":512,\"vision_cfg\":{\"image_size\":224,\"layers\":12,\"width\":768,\"patch_size\":32},"
                              "\"text_cfg\":{\"context_length\":77,\"vocab_size\":49408,\"width\":512,\"heads\":8,\"layers\":12}}");
    cJSON *got = cJSON_Parse((char *)b);
    CHECK(got && cJSON_Compare(want, got, true), "open_clip_config.json: %s", b);
    cJSON_Delete(want);
    cJSON_Delete(got);
    cm_free(b);
}

int main(void) {
    if (!tl_tmpdir_make("predict_export")) return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", tl_tmpdir);
    RUN(fixtures);
    RUN(test_stream_fifo);
    RUN(test_bulk_shards);
    RUN(test_bulk_images);
    RUN(test_bulk_errors);
    RUN(test_export_lora_roundtrip);
    RUN(test_export_bytes_full);
    RUN(test_export_vitb32_names);
    tl_tmpdir_remove();
    return tl_summary("test_predict_export");
}
