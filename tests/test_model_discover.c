/*
 * test_model_discover.c — which config a weights file opened without --model-name gets
 * (issue 13, item 5; cm_config_discover): its metadata, else open_clip_config.json (or an
 * OpenCLIP-layout config.json) next to it — checked against every tensor shape — else the shapes
 * only when they are exactly a built-in config; anything else is refused naming --model-name.
 * The tiny golden (2 heads of 32: the old guess assumed 64 dims per head and embedded with the
 * wrong config, text cosine 0.949) must get its config.json, or be refused when alone; `info`
 * says where the config came from and "matches_config" is checked.
 */
#include "testlib.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <unistd.h>
#include "io/tensorfile.h"
#include "model/model.h"

static char out[1 << 20], err[1 << 16];

static int copy_file(const char *from, const char *to) {
    uint8_t *b;
    size_t n;
    if (cm_read_file(from, (size_t)1 << 28, &b, &n)) return -1;
    int r = tl_write_file(to, b, n);
    cm_free(b);
    return r;
}

static void test_tiny_alone_is_refused(void) {
    SHARED_OR_SKIP();
    REQUIRE(cm_mkdir_p(tl_tmp("alone")) == CM_OK, "mkdir");
    const char *w = tl_tmp("alone/model.safetensors");
    REQUIRE(copy_file(tl_shared("golden/tiny/model.safetensors"), w) == 0, "copy");
    CmModel *m = NULL;
    cm_status st = cm_model_from_file(w, NULL, CM_LOAD_CLIP_ONLY_OK, 0, &m);
    CHECK(st == CM_ERR_ARG && strstr(cm_last_error(), "--model-name") && strstr(cm_last_error(), "heads"),
          "tiny without a config: status %d: %s", st, cm_last_error());
    if (m) cm_model_free(m);
    /* a Hugging Face transformers config.json (no "model_cfg") is not taken for OpenCLIP's */
    REQUIRE(tl_write_text(tl_tmp("alone/config.json"), "{\"architectures\":[\"CLIPModel\"],\"projection_dim\":32}") == 0, "write");
    st = cm_model_from_file(w, NULL, CM_LOAD_CLIP_ONLY_OK, 0, &m);
    CHECK(st == CM_ERR_ARG && strstr(cm_last_error(), "--model-name"), "HF config.json: %s", cm_last_error());
    if (m) cm_model_free(m);
    if (access(tl_clipmod_bin(), X_OK) == 0) {
        char args[800];
        snprintf(args, sizeof args, "info --model %s", w);
        int rc = tl_run_clipmod(args, out, sizeof out, err, sizeof err);
        CHECK(rc != 0 && strstr(err, "--model-name") && !strstr(out, "matches_config"), "info on the lone tiny: rc %d %s", rc, err);
        snprintf(args, sizeof args, "embed --model %s --text 'a cat' --vocab %s", w, tl_shared("vocab"));
        rc = tl_run_clipmod(args, out, sizeof out, err, sizeof err);
        CHECK(rc != 0 && strstr(err, "--model-name") && !out[0], "embed on the lone tiny: rc %d %s", rc, err);
    }
}

/* open_clip_config.json next to the weights gives the config: same numbers as --model-name */
static void test_side_config(void) {
    SHARED_OR_SKIP();
    REQUIRE(cm_mkdir_p(tl_tmp("side")) == CM_OK, "mkdir");
    const char *w = tl_tmp("side/open_clip_model.safetensors");
    REQUIRE(copy_file(tl_shared("golden/tiny/model.safetensors"), w) == 0, "copy");
    REQUIRE(copy_file(tl_shared("golden/tiny/config.json"), tl_tmp("side/open_clip_config.json")) == 0, "copy");
    CmTensorFile *f;
    REQUIRE(cm_tensorfile_open(w, &f) == CM_OK, "open");
    CmModelConfig c, want;
    char src[4200];
    cm_status st = cm_config_discover(f, &c, src, sizeof src);
    cm_tensorfile_close(f);
    REQUIRE(st == CM_OK, "discover: %s", cm_last_error());
    REQUIRE(cm_config_from_json_file(tl_shared("golden/tiny/config.json"), &want) == CM_OK, "config");
    CHECK(strstr(src, "open_clip_config.json") != NULL, "source %s", src);
    CHECK(c.vision.heads == 2 && c.text.heads == 2 && c.head.heads == 4 && c.vision.head_width == 32 && c.has_lora && c.has_head,
          "vision heads %d text heads %d head heads %d", c.vision.heads, c.text.heads, c.head.heads);
    CHECK(c.vision.heads == want.vision.heads && c.text.heads == want.text.heads && c.embed_dim == want.embed_dim &&
          c.lora_rank == want.lora_rank && c.head.ff == want.head.ff, "differs from config.json");
    if (access(tl_clipmod_bin(), X_OK) == 0) {
        /* embed: without --model-name == with it (bit for bit: the same config) */
        static char a[1 << 16], b[1 << 16];
        char args[1500];
        snprintf(args, sizeof args, "embed --model %s --text 'A couple of cats laying on top of a pink blanket.' --vocab %s", w,
                 tl_shared("vocab"));
        CHECK(tl_run_clipmod(args, a, sizeof a, err, sizeof err) == 0, "embed (discovered): %s", err);
        snprintf(args, sizeof args, "embed --model %s --model-name %s --text 'A couple of cats laying on top of a pink blanket.' --vocab %s",
                 w, tl_shared("golden/tiny/config.json"), tl_shared("vocab"));
        CHECK(tl_run_clipmod(args, b, sizeof b, err, sizeof err) == 0, "embed (--model-name): %s", err);
        CHECK(a[0] && !strcmp(a, b), "embeddings differ:\n%.200s\n%.200s", a, b);
        snprintf(args, sizeof args, "info --model %s", w);
        CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0, "info: %s", err);
        cJSON *j = cJSON_Parse(out), *fo = cJSON_GetObjectItem(j, "file");
        cJSON *cs = cJSON_GetObjectItem(fo, "config_source"), *mc = cJSON_GetObjectItem(fo, "matches_config");
        CHECK(cJSON_IsString(cs) && strstr(cs->valuestring, "open_clip_config.json") && cJSON_IsTrue(mc), "info: %s", out);
        cJSON_Delete(j);
        /* --model-name that does not fit the file: matches_config false, source --model-name */
        snprintf(args, sizeof args, "info --model %s --model-name ViT-B-32", w);
        CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0, "info: %s", err);
        CHECK(strstr(out, "\"config_source\":\"--model-name\"") && strstr(out, "\"matches_config\":false"), "info ViT-B-32: %s", out);
    }
    /* a side config that does not fit the weights: refused, naming both */
    REQUIRE(tl_write_text(tl_tmp("side/open_clip_config.json"),
                          "{\"model_cfg\":{\"embed_dim\":32,\"vision_cfg\":{\"image_size\":64,\"layers\":2,\"width\":64,\"patch_size\":16,"
                          "\"head_width\":32},\"text_cfg\":{\"context_length\":77,\"vocab_size\":49408,\"width\":64,\"heads\":2,"
                          "\"layers\":3}}}") == 0, "write");
    CmModel *m = NULL;
    st = cm_model_from_file(w, NULL, CM_LOAD_CLIP_ONLY_OK, 0, &m);
    CHECK(st == CM_ERR_ARG && strstr(cm_last_error(), "open_clip_config.json") && strstr(cm_last_error(), "open_clip_model.safetensors") &&
          strstr(cm_last_error(), "missing"), "unfit side config: %s", cm_last_error());
    if (m) cm_model_free(m);
}

/* The golden folder itself: its config.json has OpenCLIP's layout; the .bin there finds it too */
static void test_golden_folder(void) {
    SHARED_OR_SKIP();
    const char *files[] = {"golden/tiny/model.safetensors", "golden/tiny/open_clip_pytorch_model.bin"};
    for (int k = 0; k < 2; k++) {
        CmTensorFile *f;
        REQUIRE(cm_tensorfile_open(tl_shared(files[k]), &f) == CM_OK, "open %s: %s", files[k], cm_last_error());
        CmModelConfig c;
        char src[4200] = "";
        cm_status st = cm_config_discover(f, &c, src, sizeof src);
        cm_tensorfile_close(f);
        CHECK(st == CM_OK && strstr(src, "golden/tiny/config.json") && c.text.heads == 2 && c.vision.heads == 2,
              "%s: st %d src %s heads %d/%d: %s", files[k], st, src, c.vision.heads, c.text.heads, cm_last_error());
    }
}

/* A file with exactly ViT-B-32's shapes (sparse: a header and a hole, nothing is read) is
   recognised from its shapes; one layer fewer is not. */
static int write_sparse_vit(const char *path, int drop_layer) {
    CmModelConfig c;
    if (cm_config_from_name("ViT-B-32", &c)) return -1;
    c.has_lora = c.has_head = false;
    CmParam *p;
    int np;
    if (cm_param_table(&c, &p, &np)) return -1;
    cJSON *h = cJSON_CreateObject();
    int64_t off = 0;
    char skip[80];
    snprintf(skip, sizeof skip, "visual.transformer.resblocks.%d.", c.vision.layers - 1);
    for (int i = 0; i < np; i++) {
        if (drop_layer && !strncmp(p[i].name, skip, strlen(skip))) continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F16");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        int64_t n = 1;
        for (int d = 0; d < p[i].ndim; d++) { cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)p[i].shape[d])); n *= p[i].shape[d]; }
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + 2 * n)));
        off += 2 * n;
        cJSON_AddItemToObject(h, p[i].name, t);
    }
    cm_free(p);
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    size_t L = strlen(js);
    size_t pad = (8 - L % 8) % 8;
    uint64_t hl = L + pad;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0 && write(fd, &hl, 8) == 8 && write(fd, js, L) == (ssize_t)L && write(fd, "        ", pad) == (ssize_t)pad &&
             ftruncate(fd, (off_t)(8 + hl + (uint64_t)off)) == 0;
    if (fd >= 0) close(fd);
    cJSON_free(js);
    return ok ? 0 : -1;
}

static void test_builtin_shapes(void) {
    REQUIRE(cm_mkdir_p(tl_tmp("vit")) == CM_OK, "mkdir");
    const char *w = tl_tmp("vit/b32.safetensors"), *w2 = tl_tmp("vit/b32minus.safetensors");
    REQUIRE(write_sparse_vit(w, 0) == 0 && write_sparse_vit(w2, 1) == 0, "write sparse files");
    CmTensorFile *f;
    REQUIRE(cm_tensorfile_open(w, &f) == CM_OK, "open: %s", cm_last_error());
    CmModelConfig c;
    char src[64] = "";
    cm_status st = cm_config_discover(f, &c, src, sizeof src);
    cm_tensorfile_close(f);
    CHECK(st == CM_OK && !strcmp(src, "shapes") && !strcmp(c.name, "ViT-B-32") && c.vision.heads == 12 && c.text.heads == 8 &&
          !c.quick_gelu && !c.has_lora && !c.has_head, "ViT-B-32 shapes: st %d src %s name %s: %s", st, src, c.name, cm_last_error());
    REQUIRE(cm_tensorfile_open(w2, &f) == CM_OK, "open: %s", cm_last_error());
    st = cm_config_discover(f, &c, src, sizeof src);
    cm_tensorfile_close(f);
    CHECK(st == CM_ERR_ARG && strstr(cm_last_error(), "--model-name"), "11 vision layers: st %d: %s", st, cm_last_error());
    if (access(tl_clipmod_bin(), X_OK) == 0) {
        char args[800];
        snprintf(args, sizeof args, "info --model %s", w);
        CHECK(tl_run_clipmod(args, out, sizeof out, err, sizeof err) == 0, "info: %s", err);
        CHECK(strstr(out, "\"model_name\":\"ViT-B-32\"") && strstr(out, "\"config_source\":\"shapes\"") &&
              strstr(out, "\"matches_config\":true"), "info: %s", out);
    }
}

int main(void) {
    if (!tl_tmpdir_make("discover")) { perror("mkdtemp"); return 1; }
    RUN(test_tiny_alone_is_refused);
    RUN(test_side_config);
    RUN(test_golden_folder);
    RUN(test_builtin_shapes);
    tl_tmpdir_remove();
    return tl_summary("test_model_discover");
}
