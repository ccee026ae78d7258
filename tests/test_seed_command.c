/*
 * test_seed_command.c — issue 5's must-show, automated: the seed project's example training command
 * (../shared/seed/README.md "Example Training Command") runs to completion through `clipmod train`
 * with EXACTLY its flag list — paths filled in, batch/samples/epochs made small — with
 * --enable-lora, --accum-freq 4, --grad-checkpointing and --precision amp, plus --offline and
 * --logs/--name into a temp folder; it writes LoRA+head checkpoints, results.jsonl, out.log and
 * params.txt, and `clipmod eval --json` works on its last checkpoint.
 *
 * Setup (all in a mkdtemp folder, removed at the end, the 605 MB weights file included):
 *   hf/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/{refs/main, blobs/<sha256>,
 *      snapshots/<rev>/open_clip_model.safetensors -> ../../blobs/<sha256>}
 *      the full-size ViT-B-32 golden/full WEIGHTS.md formula weights (seed 1; the same bytes as the
 *      golden file, SHA-256 bca9394d..., see test_model_config.c), laid out as huggingface_hub does;
 *   shards/class_0/{00000,00001}.tar, shards/class_6/00000.tar, val/00000.tar: small generated
 *      JPEGs + captions + {"label": 0|6} written by the project's shard writer.
 * It runs tl_clipmod_bin() ($CLIPMOD_BIN, else $BUILD/clipmod: `make asan` runs build-asan's) with
 * CLIPMOD_VOCAB=../shared/vocab/bpe_simple_vocab_16e6.txt.gz (SHARED_OR_SKIP) and
 * HF_ENDPOINT=http://127.0.0.1:9 (so a broken --offline would fail instead of reaching the network).
 *
 * Reproduce by hand (CLIPMOD_KEEP_TMP=1 build/tests/test_seed_command keeps T, the temp folder):
 *   CLIPMOD_VOCAB=../shared/vocab/bpe_simple_vocab_16e6.txt.gz build/clipmod train \
 *     --save-frequency 1 --warmup 10000 --batch-size=2 --lr=1e-3 --wd=0.1 --epochs=2 --workers=8 \
 *     --model ViT-B-32 --pretrained laion2b_s34b_b79k --train-num-samples 16 --dataset-resampled \
 *     --dataset-type webdataset --precision amp \
 *     --train-data "T/shards/class_0/{00000..00001}.tar::T/shards/class_6/00000.tar" \
 *     --train-data-upsampling-factors "1::5" --grad-checkpointing --accum-freq 4 --cache-dir T/hf \
 *     --enable-lora --val-data "T/val/00000.tar" --offline --logs T/logs --name seedrun
 *   build/clipmod eval --model T/logs/seedrun/checkpoints/epoch_2.safetensors --val-data T/val/00000.tar --batch-size 2 --json
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "testlib.h"
#include "common/rng.h"
#include "model/model.h"
#include "io/tensorfile.h"
#include "io/hub.h"
#include "data/wds.h"
#include "data/image.h"

static const char *REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K";
static const char *REV = "1a25a446712ba5ee05982a381eed697ef9b435cf";   /* any 40-hex commit */
static const char *FORMULA_SHA = "bca9394d248be0cabbfa0a0006524577a15f722a786a686cd97dc0e3de872e1e";
#define N_VAL 6

static char out_buf[1 << 20], err_buf[1 << 20];

/* The whole of T/<rel> as a NUL-terminated string (NULL when unreadable); free with cm_free. */
static char *slurp(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tl_tmpdir, rel);
    uint8_t *b = NULL;
    size_t n = 0;
    if (cm_read_file(p, 1 << 26, &b, &n)) return NULL;
    char *s = cm_malloc(n + 1, "slurp");
    memcpy(s, b, n);
    s[n] = 0;
    cm_free(b);
    return s;
}

static void print_tail(const char *what, const char *s) {
    size_t n = strlen(s);
    fprintf(stderr, "  --- %s (last 3000 bytes) ---\n%s\n", what, s + (n > 3000 ? n - 3000 : 0));
}

/* 1. the formula weights as huggingface_hub lays a download out: blob named by its sha256, the
   snapshot file a relative symlink to it, refs/main naming the snapshot. */
static cm_status write_hf_cache(double *seconds) {
    double t0 = cm_now();
    CmModelConfig c;
    cm_status st = cm_config_from_name("ViT-B-32", &c);
    if (st) return st;
    c.has_lora = c.has_head = false;
    CmModel *m = NULL;
    if ((st = cm_model_create(&c, &m))) return st;
    cm_model_init_formula(m, 1);
    CmTensorOut *ts = calloc((size_t)m->n_params, sizeof *ts);
    cm_model_tensor_list(m, false, ts);
    char repo_dir[512], p[1024], q[1024];
    snprintf(repo_dir, sizeof repo_dir, "%s/hf/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K", tl_tmpdir);
    snprintf(p, sizeof p, "%s/blobs", repo_dir);
    if (!st) st = cm_mkdir_p(p);
    snprintf(p, sizeof p, "%s/refs", repo_dir);
    if (!st) st = cm_mkdir_p(p);
    snprintf(p, sizeof p, "%s/snapshots/%s", repo_dir, REV);
    if (!st) st = cm_mkdir_p(p);
    snprintf(p, sizeof p, "%s/blobs/%s", repo_dir, FORMULA_SHA);
    if (!st) st = cm_safetensors_write(p, ts, m->n_params, NULL, 0);
    free(ts);
    cm_model_free(m);
    if (st) return st;
    snprintf(p, sizeof p, "%s/snapshots/%s/%s", repo_dir, REV, CM_HF_SAFE_WEIGHTS_NAME);
    snprintf(q, sizeof q, "../../blobs/%s", FORMULA_SHA);
    if (symlink(q, p)) return cm_error(CM_ERR_IO, "symlink %s: %s", p, strerror(errno));
    snprintf(p, sizeof p, "%s/refs/main", repo_dir);
    FILE *f = fopen(p, "w");
    if (!f) return cm_error(CM_ERR_IO, "%s: %s", p, strerror(errno));
    fputs(REV, f);   /* huggingface_hub writes the commit without a newline */
    fclose(f);
    *seconds = cm_now() - t0;
    return CM_OK;
}

/* 2. n samples of class `label` into dir (shard_size per tar): a 64x64 JPEG whose colour and a
   drawn square depend on the class, a caption, {"label": L}. Labels alternate 0/6 when label < 0. */
static cm_status write_shards(const char *rel, int label, int n, int shard_size, uint64_t seed) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tl_tmpdir, rel);
    cm_status st = cm_mkdir_p(dir);
    if (st) return st;
    CmShardWriter *w = NULL;
    if ((st = cm_shard_writer_open(dir, shard_size, &w))) return st;
    CmRng r;
    cm_rng_seed(&r, seed);
    enum { S = 64 };
    static uint8_t rgb[S * S * 3];
    for (int i = 0; i < n && !st; i++) {
        int lab = label >= 0 ? label : (i % 2 ? 6 : 0);
        int base = lab == 0 ? 200 : 40, x0 = (int)cm_rng_below(&r, S / 2), y0 = (int)cm_rng_below(&r, S / 2);
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                bool in = x >= x0 && x < x0 + S / 3 && y >= y0 && y < y0 + S / 3;
                int noise = (int)cm_rng_below(&r, 32);
                rgb[3 * (y * S + x) + 0] = (uint8_t)(in ? 255 - base : base) + noise / 2;
                rgb[3 * (y * S + x) + 1] = (uint8_t)(100 + noise);
                rgb[3 * (y * S + x) + 2] = (uint8_t)(in ? base : 255 - base) - noise / 2;
            }
        CmImage im = {S, S, rgb};
        uint8_t *jpg = NULL;
        size_t jl = 0;
        if ((st = cm_jpeg_encode(&im, 90, &jpg, &jl))) break;
        char cap[128], js[96], key[32];
        snprintf(cap, sizeof cap, "%s square number %d on a %s background", lab == 0 ? "a blue" : "a red", i,
                 lab == 0 ? "red" : "blue");
        snprintf(js, sizeof js, "{\"label\": %d}", lab);
        snprintf(key, sizeof key, "s%06d", i);
        CmWdsOut f[3] = {{"jpg", jpg, jl}, {"txt", cap, strlen(cap)}, {"json", js, strlen(js)}};
        st = cm_shard_writer_write(w, key, f, 3);
        free(jpg);
    }
    cm_status st2 = cm_shard_writer_close(w);
    return st ? st : st2;
}

/* 4b. a checkpoint holds exactly the LoRA + head tensors (and their AdamW moments). */
static void check_checkpoint(int epoch, const CmParam *tab, int ntab, int n_want, float *lora_b_maxabs) {
    char p[512];
    snprintf(p, sizeof p, "%s/logs/seedrun/checkpoints/epoch_%d.safetensors", tl_tmpdir, epoch);
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open(p, &f);
    REQUIRE(st == CM_OK, "epoch_%d checkpoint: %s", epoch, cm_last_error());
    int n_model = 0, n_opt = 0, n_bad = 0;
    *lora_b_maxabs = 0;
    for (int i = 0; i < cm_tensorfile_count(f); i++) {
        const CmTensorView *t = cm_tensorfile_at(f, i);
        if (!strncmp(t->name, "optimizer.", 10)) { n_opt++; continue; }
        n_model++;
        int k = -1;
        for (int j = 0; j < ntab && k < 0; j++) if (!strcmp(tab[j].name, t->name)) k = j;
        bool ok = k >= 0 && (tab[k].group == CM_GROUP_LORA || tab[k].group == CM_GROUP_HEAD) && t->numel == tab[k].numel;
        if (!ok && n_bad++ < 5) CHECK(0, "epoch_%d holds %s (not a LoRA/head tensor of the right size)", epoch, t->name);
        if (ok && strstr(t->name, "lora_B") && t->dtype == CM_F32) {
            float *v = malloc(t->numel * sizeof *v);
            if (v && cm_tensor_to_f32(t, v) == CM_OK) {
                float mx = (float)tl_max_abs(v, t->numel);
                if (mx > *lora_b_maxabs) *lora_b_maxabs = mx;
            }
            free(v);
        }
    }
    CHECK(n_bad == 0, "epoch_%d: %d unexpected tensors", epoch, n_bad);
    CHECK(n_model == n_want, "epoch_%d: %d model tensors, want %d (LoRA + head)", epoch, n_model, n_want);
    CHECK(n_opt == 2 * n_want, "epoch_%d: %d optimizer tensors, want %d", epoch, n_opt, 2 * n_want);
    for (int j = 0; j < ntab; j++)
        if ((tab[j].group == CM_GROUP_LORA || tab[j].group == CM_GROUP_HEAD) && !cm_tensorfile_find(f, tab[j].name))
            CHECK(0, "epoch_%d lacks %s", epoch, tab[j].name);
    const char *tr = cm_tensorfile_metadata(f, "trainable_only");
    CHECK(tr && !strcmp(tr, "true"), "epoch_%d trainable_only = %s", epoch, tr ? tr : "(none)");
    cm_tensorfile_close(f);
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_seed_command(void) {
    SHARED_OR_SKIP();
    CLIPMOD_BIN_OR_SKIP();
    double t0 = cm_now(), t_w = 0;
    REQ_OK(write_hf_cache(&t_w));
    {
        char cache[512];
        snprintf(cache, sizeof cache, "%s/hf", tl_tmpdir);
        char *path = cm_hub_cached_path(cache, REPO, CM_HF_SAFE_WEIGHTS_NAME, NULL);
        REQUIRE(path, "the resolver does not find the weights in %s", cache);
        free(path);
    }
    REQ_OK(write_shards("shards/class_0", 0, 8, 4, 11));   /* 00000.tar, 00001.tar */
    REQ_OK(write_shards("shards/class_6", 6, 4, 4, 12));   /* 00000.tar */
    REQ_OK(write_shards("val", -1, N_VAL, 100, 13));       /* 00000.tar, labels 0 and 6 */
    double t_setup = cm_now() - t0;

    /* children inherit these: the vocabulary from ../shared, and an endpoint that refuses
       connections, so a broken --offline fails instead of reaching the network */
    const char *vocab = tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz");
    setenv("CLIPMOD_VOCAB", vocab, 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9", 1);
    const char *T = tl_tmpdir;
    char args[4096];
    snprintf(args, sizeof args, "train"
        " --save-frequency 1 --warmup 10000 --batch-size=2 --lr=1e-3 --wd=0.1 --epochs=2 --workers=8"
        " --model ViT-B-32 --pretrained laion2b_s34b_b79k --train-num-samples 16 --dataset-resampled"
        " --dataset-type webdataset --precision amp"
        " --train-data '%s/shards/class_0/{00000..00001}.tar::%s/shards/class_6/00000.tar'"
        " --train-data-upsampling-factors '1::5' --grad-checkpointing --accum-freq 4 --cache-dir '%s/hf'"
        " --enable-lora --val-data '%s/val/00000.tar'"
        " --offline --logs '%s/logs' --name seedrun", T, T, T, T, T);
    double t1 = cm_now();
    int rc = tl_run_clipmod(args, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
    double t_train = cm_now() - t1;
    const char *err = err_buf;
    if (rc != 0) print_tail("train stderr", err);
    CHECK(rc == 0, "%s train exited %d", tl_clipmod_bin(), rc);
    CHECK(strstr(err, "--warmup 10000 >= total optimizer steps 4"),
          "no loud warmup warning naming 10000 >= 4 steps on stderr");
    CHECK(strstr(err, "!!!!!!!!!!"), "the warmup warning is not loud");
    REQUIRE(rc == 0, "train failed; the rest needs its outputs");

    /* checkpoints: only the 48 LoRA + head tensors (+ AdamW moments) */
    CmModelConfig c;
    REQ_OK(cm_config_from_name("ViT-B-32", &c));
    CmParamCounts k;
    cm_param_counts(&c, &k);
    CHECK(k.n_lora_tensors == 48, "ViT-B-32: %d LoRA tensors, want 24 adapters x 2", k.n_lora_tensors);
    CmParam *tab = NULL;
    int ntab = 0;
    REQ_OK(cm_param_table(&c, &tab, &ntab));
    float b1 = 0, b2 = 0;
    check_checkpoint(1, tab, ntab, k.n_lora_tensors + k.n_head_tensors, &b1);
    check_checkpoint(2, tab, ntab, k.n_lora_tensors + k.n_head_tensors, &b2);
    cm_free(tab);
    CHECK(b1 > 0 && b2 > 0 && b1 != b2, "lora_B not trained: max |lora_B| %g after epoch 1, %g after epoch 2", b1, b2);
    char p[512];
    snprintf(p, sizeof p, "%s/logs/seedrun/checkpoints/epoch_3.safetensors", T);
    CHECK(!cm_file_exists(p), "an epoch_3 checkpoint after --epochs=2");

    /* results.jsonl: one line per epoch */
    char *res = slurp("logs/seedrun/results.jsonl");
    REQUIRE(res, "no results.jsonl");
    int lines = 0;
    double val_loss2 = NAN, top1_2 = NAN, clip2 = NAN;
    for (char *s = res, *e; *s; s = e + (*e != 0)) {
        e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        if (e == s) continue;
        lines++;
        cJSON *j = cJSON_ParseWithLength(s, (size_t)(e - s));
        CHECK(j, "results.jsonl line %d is not JSON", lines);
        if (!j) continue;
        double ep = num(j, "epoch"), cl = num(j, "clip_val_loss"), vl = num(j, "val_loss");
        double t1v = num(j, "top1"), t2v = num(j, "top2"), nn = num(j, "n");
        CHECK(ep == lines, "line %d: epoch %g", lines, ep);
        CHECK(isfinite(cl) && cl >= 0 && isfinite(vl) && vl >= 0, "line %d: clip_val_loss %g val_loss %g", lines, cl, vl);
        CHECK(t1v >= 0 && t1v <= 1 && t2v >= t1v && t2v <= 1, "line %d: top1 %g top2 %g", lines, t1v, t2v);
        CHECK(nn == N_VAL, "line %d: n %g, want %d", lines, nn, N_VAL);
        if (lines == 2) { val_loss2 = vl; top1_2 = t1v; clip2 = cl; }
        cJSON_Delete(j);
    }
    CHECK(lines == 2, "results.jsonl has %d lines, want 2", lines);
    cm_free(res);

    char *log = slurp("logs/seedrun/out.log"), *params = slurp("logs/seedrun/params.txt");
    CHECK(log && strstr(log, "Eval Epoch: 2"), "out.log missing or without the epoch-2 eval line");
    CHECK(params && strstr(params, "accum_freq: 4") && strstr(params, "grad_checkpointing: True") &&
          strstr(params, "precision: amp"), "params.txt missing or lacks accum_freq/grad_checkpointing/precision");
    cm_free(log);
    cm_free(params);

    /* clipmod eval --json on the last checkpoint (LoRA over the cached base weights) */
    double t2 = cm_now();
    snprintf(args, sizeof args, "eval --model '%s/logs/seedrun/checkpoints/epoch_2.safetensors'"
             " --val-data '%s/val/00000.tar' --batch-size 2 --json", T, T);
    rc = tl_run_clipmod(args, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
    double t_eval = cm_now() - t2;
    const char *out = out_buf;
    if (rc != 0) print_tail("eval stderr", err_buf);
    CHECK(rc == 0, "clipmod eval exited %d", rc);
    const char *last = NULL;
    for (const char *s = out; (s = strchr(s, '{')); s++) if (s == out || s[-1] == '\n') last = s;
    cJSON *j = last ? cJSON_Parse(last) : NULL;
    CHECK(j, "eval --json printed no JSON object: %s", out);
    if (j) {
        double t1v = num(j, "top1"), vl = num(j, "val_loss");
        CHECK(num(j, "n") == N_VAL && t1v >= 0 && t1v <= 1 && num(j, "top2") >= t1v, "eval n %g top1 %g top2 %g",
              num(j, "n"), t1v, num(j, "top2"));
        /* fp32 eval vs the run's amp validation of the same weights, same data and batch size:
           close losses (bf16 products: DESIGN's amp tolerance is 2e-2) */
        double cl = num(j, "clip_val_loss");
        CHECK(isfinite(vl) && fabs(vl - val_loss2) < 0.05, "eval val_loss %g vs the run's epoch-2 val_loss %g", vl, val_loss2);
        CHECK(isfinite(cl) && fabs(cl - clip2) < 0.05, "eval clip_val_loss %g vs the run's epoch-2 %g", cl, clip2);
        fprintf(stderr, "  eval: top1 %.3f (run's epoch 2: %.3f), val_loss %.4f (run: %.4f), clip_val_loss %.4f (run: %.4f)\n",
                t1v, top1_2, vl, val_loss2, cl, clip2);
        cJSON_Delete(j);
    }
    fprintf(stderr, "  times: weights %.1f s (setup %.1f s), train %.1f s, eval %.1f s\n", t_w, t_setup, t_train, t_eval);
}

int main(void) {
    if (!tl_tmpdir_make("seedcmd")) { perror("mkdtemp"); return 1; }
    RUN(test_seed_command);
    /* the 605 MB weights file goes with the folder */
    if (getenv("CLIPMOD_KEEP_TMP")) fprintf(stderr, "  kept %s (CLIPMOD_KEEP_TMP)\n", tl_tmpdir);
    else tl_tmpdir_remove();
    return tl_summary("test_seed_command");
}
