/*
 * test_model_open.c — the one model-open function (model/open.h) and portable LoRA checkpoints
 * (issue 8 item 4, issue 11 item 4):
 *   - the tokenizer a model needs: a byte-tokenizer checkpoint says "bytes", and `clipmod embed`
 *     encodes its texts with the byte tokenizer (it used BPE for every model before);
 *   - a LoRA checkpoint finds its base by SHA-256: at the recorded path (unchanged size + mtime:
 *     not hashed), next to the checkpoint, via --base-model, in the HF cache (--cache-dir and
 *     HF_HOME) by the recorded pretrained tag; when none matches the error lists every place tried;
 *     `clipmod predict` gives the same probabilities wherever the base was found.
 */
#include "testlib.h"
#include <sys/stat.h>
#include <utime.h>
#include "data/textenc.h"
#include "io/tensorfile.h"
#include "model/model.h"
#include "model/open.h"
#include "train/checkpoint.h"

static const char *BYTE_CFG =
    "{\"model_name\": \"open-test-bytes\", \"model_cfg\": {\"embed_dim\": 32, \"quick_gelu\": false,"
    " \"vision_cfg\": {\"image_size\": 32, \"layers\": 1, \"width\": 64, \"patch_size\": 16, \"head_width\": 32, \"mlp_ratio\": 2.0},"
    " \"text_cfg\": {\"context_length\": 24, \"vocab_size\": 258, \"width\": 64, \"heads\": 2, \"layers\": 1, \"mlp_ratio\": 2.0}},"
    " \"head\": {\"d\": 32, \"heads\": 4, \"ff\": 64, \"layers\": 1, \"classes\": 7}}";

static char g_out[1 << 20], g_err[1 << 16];

/* The "embedding" array of the first JSON line of out into e[E]; number of values read. */
static int first_embedding(const char *out, float *e, int E) {
    const char *nl = strchr(out, '\n');
    char line[1 << 16];
    size_t n = nl ? (size_t)(nl - out) : strlen(out);
    if (n >= sizeof line) return 0;
    memcpy(line, out, n);
    line[n] = 0;
    cJSON *j = cJSON_Parse(line), *a = j ? cJSON_GetObjectItem(j, "embedding") : NULL;
    int k = 0;
    for (; a && k < cJSON_GetArraySize(a) && k < E; k++) e[k] = (float)cJSON_GetArrayItem(a, k)->valuedouble;
    cJSON_Delete(j);
    return k;
}

static void test_byte_tokenizer_checkpoint(void) {
    CLIPMOD_BIN_OR_SKIP();
    REQUIRE(tl_tmpdir_make("open_bytes"), "tmpdir");
    CmModelConfig cfg;
    REQ_OK(cm_config_from_json(BYTE_CFG, strlen(BYTE_CFG), "test config", &cfg));
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    cm_model_init(m, 11);
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_FULL;
    snprintf(meta.tokenizer, sizeof meta.tokenizer, "bytes");
    const char *ck = tl_tmp("bytes.safetensors");
    REQ_OK(cm_checkpoint_save(ck, m, NULL, &meta));
    CmModel *o;
    CmModelInfo info;
    REQ_OK(cm_model_open(ck, NULL, &o, &info));
    CHECK(info.is_checkpoint && info.tokenizer == CM_TOKENIZER_BYTES && !strcmp(info.config_source, "checkpoint"),
          "checkpoint: tokenizer %d, config from %s", (int)info.tokenizer, info.config_source);
    cm_model_free(o);
    /* plain weights of a byte-vocabulary model: the vocabulary says which tokenizer */
    const char *plain = tl_tmp("plain.safetensors");
    REQ_OK(cm_model_save(m, plain, false, NULL, 0));
    REQ_OK(cm_model_open(plain, NULL, &o, &info));
    CHECK(!info.is_checkpoint && info.tokenizer == CM_TOKENIZER_BYTES && !strcmp(info.config_source, "metadata"),
          "plain: tokenizer %d, config from %s", (int)info.tokenizer, info.config_source);
    cm_model_free(o);

    /* embed's text features equal the model on byte ids */
    const char *text = "a red circle";
    int32_t ids[24];
    cm_byte_tokenize(text, strlen(text), ids, 24);
    float want[32], got[32];
    REQ_OK(cm_encode_text(m, ids, 1, NULL, want));
    char args[1200];
    snprintf(args, sizeof args, "embed --model %s --text '%s'", ck, text);
    int rc = tl_run_clipmod(args, g_out, sizeof g_out, g_err, sizeof g_err);
    REQUIRE(rc == 0, "embed exit %d: %s", rc, g_err);
    REQUIRE(first_embedding(g_out, got, 32) == 32, "embed output: %s", g_out);
    double e = 0;
    for (int i = 0; i < 32; i++) e = fmax(e, fabs(got[i] - want[i]));
    CHECK(e <= 1e-7, "embed text differs from the byte-tokenised features by %g", e);
    cm_model_free(m);
    tl_tmpdir_remove();
}

/* An export-style folder: open_clip_model.safetensors without metadata + open_clip_config.json
   (config and tokenizer from the JSON); the folder itself opens too. */
static void test_folder_with_open_clip_config(void) {
    REQUIRE(tl_tmpdir_make("open_folder"), "tmpdir");
    CmModelConfig cfg;
    REQ_OK(cm_config_from_json(BYTE_CFG, strlen(BYTE_CFG), "test config", &cfg));
    cfg.text.vocab_size = 300;   /* not the byte vocabulary: only the JSON can say "bytes" */
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    cm_model_init(m, 5);
    CmTensorOut *ts = cm_calloc((size_t)m->n_params, sizeof *ts, "list");
    REQUIRE(ts, "oom");
    int n = cm_model_tensor_list(m, false, ts);
    REQ_OK(cm_safetensors_write(tl_tmp("open_clip_model.safetensors"), ts, n, NULL, 0));
    cm_free(ts);
    CmModel *o;
    CmModelInfo info;
    /* without a config beside it: shapes that are no built-in config are refused (the number of
       heads is not in the weights), asking for a config */
    CHECK(cm_model_open(tl_tmp("open_clip_model.safetensors"), NULL, &o, &info) == CM_ERR_ARG &&
          strstr(cm_last_error(), "--model-name"), "shapes: %s", cm_last_error());
    char *js = cm_config_to_json(&cfg);
    REQUIRE(js, "json");
    cJSON *j = cJSON_Parse(js);
    cm_free(js);
    cJSON_AddStringToObject(j, "tokenizer", "bytes");
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    REQUIRE(txt && tl_write_text(tl_tmp("open_clip_config.json"), txt) == 0, "write config");
    free(txt);
    REQ_OK(cm_model_open(tl_tmp(""), NULL, &o, &info));
    CHECK(strstr(info.config_source, "open_clip_config.json") && info.tokenizer == CM_TOKENIZER_BYTES &&
          strstr(info.weights, "open_clip_model.safetensors") && o->cfg.text.heads == 2,
          "folder: config from %s, tokenizer %d, weights %s, text heads %d", info.config_source, (int)info.tokenizer, info.weights,
          o->cfg.text.heads);
    double e = 0;
    for (int i = 0; i < m->n_params; i++)
        for (size_t k = 0; k < m->params[i].numel; k++) e = fmax(e, fabs(m->params[i].data[k] - o->params[i].data[k]));
    CHECK(e == 0, "tensors differ by %g", e);
    cm_model_free(o);
    /* an explicit config wins */
    CmOpenOptions oo = {"ViT-B-32", NULL, NULL};
    CHECK(cm_model_open(tl_tmp(""), &oo, &o, &info) == CM_ERR_SHAPE, "explicit ViT-B-32 config accepted: %s", cm_last_error());
    CHECK(cm_model_open(tl_tmp("nothing-here"), NULL, &o, &info) == CM_ERR_IO && strstr(cm_last_error(), "nothing-here"),
          "missing file: %s", cm_last_error());
    cm_model_free(m);
    tl_tmpdir_remove();
}

// ---------------------------------------------------------------------------------------------
// portable LoRA checkpoints (golden tiny model as the base)

static int copy_file(const char *from, const char *to) {
    uint8_t *b;
    size_t n;
    if (cm_read_file(from, (size_t)1 << 30, &b, &n)) return -1;
    int r = tl_write_file(to, b, n);
    cm_free(b);
    return r;
}

/* A LoRA checkpoint over base (trainable-only, LoRA B made non-zero so it matters). */
static int write_lora_ckpt(const char *base, const char *ck, const char *pretrained, const char *arch) {
    CmModelConfig cfg;
    CmModel *m = NULL;
    if (cm_config_load(tl_shared("golden/tiny/config.json"), &cfg) || cm_model_from_file(base, &cfg, CM_LOAD_CLIP_ONLY_OK, 0, &m) ||
        cm_model_set_mode(m, CM_TRAIN_LORA, false, false)) { cm_model_free(m); return -1; }
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < m->params[i].numel; k++) m->params[i].data[k] = 0.01f * (float)((k * 7 + (size_t)i) % 13) - 0.06f;
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_LORA;
    meta.trainable_only = true;
    snprintf(meta.base_model, sizeof meta.base_model, "%s", base);
    struct stat sb;
    if (stat(base, &sb) || cm_sha256_file(base, meta.base_sha256)) { cm_model_free(m); return -1; }
    meta.base_size = sb.st_size;
    meta.base_mtime = sb.st_mtime;
    snprintf(meta.base_pretrained, sizeof meta.base_pretrained, "%s", pretrained ? pretrained : "");
    snprintf(meta.base_arch, sizeof meta.base_arch, "%s", arch ? arch : "");
    int r = cm_checkpoint_save(ck, m, NULL, &meta) ? -1 : 0;
    cm_model_free(m);
    return r;
}

/* `clipmod predict` on two golden pairs; the stdout lines into probs (NUL-terminated copy). */
static int predict(const char *ck, const char *extra, char *probs, size_t n) {
    char args[3000];
    snprintf(args, sizeof args, "predict --model %s --vocab %s --image %s --text 'A car.' --image %s --text 'cats' %s", ck,
             tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz"), tl_shared("data/coco/000000086220.jpg"),
             tl_shared("data/coco/000000039769.png"), extra ? extra : "");
    int rc = tl_run_clipmod(args, g_out, sizeof g_out, g_err, sizeof g_err);
    if (probs) {
        size_t k = strlen(g_out) < n - 1 ? strlen(g_out) : n - 1;
        memcpy(probs, g_out, k);
        probs[k] = 0;
    }
    return rc;
}

static void test_lora_base_search(void) {
    SHARED_OR_SKIP();
    CLIPMOD_BIN_OR_SKIP();
    REQUIRE(tl_tmpdir_make("open_lora"), "tmpdir");
    char orig[600], ckdir[600], ck[700], next[700], elsewhere[700];
    snprintf(orig, sizeof orig, "%s", tl_tmp("orig"));
    snprintf(ckdir, sizeof ckdir, "%s", tl_tmp("run"));
    REQUIRE(cm_mkdir_p(orig) == CM_OK && cm_mkdir_p(ckdir) == CM_OK && cm_mkdir_p(tl_tmp("else")) == CM_OK, "mkdir");
    char base[700];
    snprintf(base, sizeof base, "%s/base.safetensors", orig);
    snprintf(ck, sizeof ck, "%s/epoch_1.safetensors", ckdir);
    snprintf(next, sizeof next, "%s/base.safetensors", ckdir);
    snprintf(elsewhere, sizeof elsewhere, "%s", tl_tmp("else/renamed.safetensors"));
    REQUIRE(copy_file(tl_shared("golden/tiny/model.safetensors"), base) == 0, "copy base");
    REQUIRE(write_lora_ckpt(base, ck, NULL, NULL) == 0, "checkpoint: %s", cm_last_error());

    /* at the recorded path */
    CmModel *m;
    CmModelInfo info;
    REQ_OK(cm_model_open(ck, NULL, &m, &info));
    CHECK(!strcmp(info.base_model, base) && info.meta.trainable_only, "base found at %s", info.base_model);
    cm_model_free(m);
    static char p0[1 << 14], p1[1 << 14];
    int rc = predict(ck, NULL, p0, sizeof p0);
    REQUIRE(rc == 0 && strstr(p0, "\"probs\""), "predict at the recorded path: %d %s", rc, g_err);

    /* unchanged path, size and mtime: trusted without hashing (a same-size edit with the old
       mtime restored is not noticed — that is the documented cost of a fast start-up) */
    struct stat sb;
    REQUIRE(stat(base, &sb) == 0, "stat");
    FILE *f = fopen(base, "r+b");
    REQUIRE(f, "open base");
    fseek(f, -1, SEEK_END);
    int last = fgetc(f);
    fseek(f, -1, SEEK_END);
    fputc(last ^ 1, f);
    fclose(f);
    struct utimbuf ut = {sb.st_atime, sb.st_mtime};
    REQUIRE(utime(base, &ut) == 0, "utime");
    CHECK(cm_model_open(ck, NULL, &m, &info) == CM_OK, "same size+mtime hashed? %s", cm_last_error());
    cm_model_free(m);
    /* a new mtime: hashed, no longer the base */
    ut.modtime = sb.st_mtime + 10;
    REQUIRE(utime(base, &ut) == 0, "utime");
    CHECK(cm_model_open(ck, NULL, &m, &info) != CM_OK && strstr(cm_last_error(), "SHA-256") && strstr(cm_last_error(), "recorded path"),
          "changed base accepted: %s", cm_last_error());
    f = fopen(base, "r+b");
    REQUIRE(f, "open base");
    fseek(f, -1, SEEK_END);
    fputc(last, f);
    fclose(f);

    /* moved next to the checkpoint */
    REQUIRE(rename(base, next) == 0, "move");
    rc = predict(ck, NULL, p1, sizeof p1);
    CHECK(rc == 0 && !strcmp(p0, p1), "predict with the base next to the checkpoint: %d %s\n%s\n%s", rc, g_err, p0, p1);

    /* moved elsewhere under another name: an error listing every place tried, then --base-model */
    REQUIRE(rename(next, elsewhere) == 0, "move");
    rc = predict(ck, NULL, NULL, 0);
    CHECK(rc == 1 && strstr(g_err, "recorded path") && strstr(g_err, base) && strstr(g_err, "next to the checkpoint") &&
          strstr(g_err, next) && strstr(g_err, "--base-model"), "missing base: %d %s", rc, g_err);
    char extra[1200];
    snprintf(extra, sizeof extra, "--base-model %s", elsewhere);
    rc = predict(ck, extra, p1, sizeof p1);
    CHECK(rc == 0 && !strcmp(p0, p1), "predict --base-model: %d %s", rc, g_err);
    /* --base-model naming a different file: refused, naming it */
    snprintf(extra, sizeof extra, "--base-model %s", tl_shared("golden/tiny/model_fp16.safetensors"));
    rc = predict(ck, extra, NULL, 0);
    CHECK(rc != 0 && strstr(g_err, "model_fp16.safetensors"), "wrong --base-model: %d %s", rc, g_err);

    /* the HF cache by the recorded pretrained tag (--cache-dir, then HF_HOME) */
    char snap[800], ck2[700];
    snprintf(snap, sizeof snap, "%s", tl_tmp("hf/hub/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K/snapshots/0123abcd"));
    REQUIRE(cm_mkdir_p(snap) == CM_OK, "mkdir snapshot");
    char cached[900];
    snprintf(cached, sizeof cached, "%s/open_clip_model.safetensors", snap);
    REQUIRE(rename(elsewhere, cached) == 0, "into the cache");
    snprintf(ck2, sizeof ck2, "%s/tagged.safetensors", ckdir);
    REQUIRE(write_lora_ckpt(cached, ck2, "laion2b_s34b_b79k", "ViT-B-32") == 0, "tagged checkpoint: %s", cm_last_error());
    char hub[700], newcache[900];
    snprintf(hub, sizeof hub, "%s", tl_tmp("hf/hub"));
    snprintf(newcache, sizeof newcache, "%s", tl_tmp("cache2"));
    REQUIRE(rename(hub, newcache) == 0, "move the cache");   /* the recorded path is gone */
    CmOpenOptions oo = {NULL, NULL, newcache};
    CHECK(cm_model_open(ck2, &oo, &m, &info) == CM_OK && strstr(info.base_model, "cache2/models--laion"),
          "HF cache (--cache-dir): %s", cm_last_error());
    cm_model_free(m);
    snprintf(extra, sizeof extra, "--cache-dir %s", newcache);
    rc = predict(ck2, extra, p1, sizeof p1);
    CHECK(rc == 0 && !strcmp(p0, p1), "predict --cache-dir: %d %s", rc, g_err);
    char home[800];
    snprintf(home, sizeof home, "%s", tl_tmp("home"));
    REQUIRE(cm_mkdir_p(home) == CM_OK, "mkdir");
    char hubdir[900];
    snprintf(hubdir, sizeof hubdir, "%s/hub", home);
    REQUIRE(rename(newcache, hubdir) == 0, "move");
    const char *old_hf = getenv("HF_HOME"), *old_hub = getenv("HF_HUB_CACHE");
    char *save_hf = old_hf ? strdup(old_hf) : NULL, *save_hub = old_hub ? strdup(old_hub) : NULL;
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", home, 1);
    CHECK(cm_model_open(ck2, NULL, &m, &info) == CM_OK && strstr(info.base_model, "home/hub/models--laion"), "HF_HOME: %s", cm_last_error());
    cm_model_free(m);
    rename(hubdir, newcache);
    CHECK(cm_model_open(ck2, NULL, &m, &info) != CM_OK && strstr(cm_last_error(), "HF cache") &&
          strstr(cm_last_error(), "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"), "cache miss listed: %s", cm_last_error());
    if (save_hf) setenv("HF_HOME", save_hf, 1); else unsetenv("HF_HOME");
    if (save_hub) setenv("HF_HUB_CACHE", save_hub, 1);
    free(save_hf);
    free(save_hub);
    tl_tmpdir_remove();
}

int main(void) {
    RUN(test_byte_tokenizer_checkpoint);
    RUN(test_folder_with_open_clip_config);
    RUN(test_lora_base_search);
    return tl_summary("test_model_open");
}
