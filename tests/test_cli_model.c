/*
 * test_cli_model.c — `clipmod info` and `clipmod embed` as outside tests call them (DESIGN §7):
 * the exact DESIGN §1.4 JSON, info on a weights file, embed of a real COCO image and caption
 * with the tiny golden model (against expected.safetensors, normalised and --raw), and the exit
 * statuses and messages of bad usage / bad files.
 */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "testlib.h"
#include "io/tensorfile.h"

static char g_out[1 << 20];

static void test_info(void) {
    CLIPMOD_BIN_OR_SKIP();
    char err[512];
    int rc = tl_run_clipmod("info", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0, "info exit %d: %s", rc, err);
    CHECK(!strcmp(g_out, "{\"vision\":87849216,\"text\":63428096,\"clip_total\":151277313,\"head\":6571015,\"lora\":122880,"
                         "\"trainable_lora\":6693895,\"trainable_baseline\":157848328}\n"), "info output exactly: %s", g_out);
    CHECK(strstr(g_out, "\"vision\":87849216,\"text\":63428096,\"clip_total\":151277313,\"head\":6571015,\"lora\":122880,"
                        "\"trainable_lora\":6693895,\"trainable_baseline\":157848328") != NULL, "info output: %s", g_out);
    cJSON *j = cJSON_Parse(g_out);
    CHECK(j && cJSON_IsObject(j), "info output is not one JSON object");
    cJSON_Delete(j);
    rc = tl_run_clipmod("info --model-name ViT-B-32 --lora-rank 8", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0 && strstr(g_out, "\"lora\":245760"), "rank 8: %s", g_out);
    rc = tl_run_clipmod("info --model-name ViT-Z-99", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "ViT-Z-99"), "unknown name: rc %d, %s", rc, err);
    rc = tl_run_clipmod("info --lora-rank x", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2, "bad int: rc %d", rc);
    rc = tl_run_clipmod("info --help", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0 && strstr(g_out, "--model-name"), "help");
    SHARED_OR_SKIP();
    char args[1024];
    snprintf(args, sizeof args, "info --model %s", tl_shared("golden/tiny/model_fp16.safetensors"));
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0 && strstr(g_out, "\"dtype\":\"F16\"") && strstr(g_out, "\"clip_tensors\":62") && strstr(g_out, "\"matches_config\":true"),
          "info --model: rc %d %s %s", rc, g_out, err);
    rc = tl_run_clipmod("info --model /nonexistent/w.safetensors", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "/nonexistent/w.safetensors"), "missing file: rc %d %s", rc, err);
}

/* Parse JSON lines; check the k-th line's type/input and its embedding against want[32]. */
static void check_line(const char *out, int k, const char *type, const float *want, double tol) {
    const char *p = out;
    for (int i = 0; i < k && p; i++) { p = strchr(p, '\n'); if (p) p++; }
    REQUIRE(p && *p, "line %d missing", k);
    const char *e = strchr(p, '\n');
    cJSON *j = cJSON_ParseWithLength(p, e ? (size_t)(e - p) : strlen(p));
    REQUIRE(j, "line %d is not JSON", k);
    CHECK(!strcmp(cJSON_GetObjectItem(j, "type")->valuestring, type), "type");
    const cJSON *emb = cJSON_GetObjectItem(j, "embedding");
    REQUIRE(cJSON_GetArraySize(emb) == 32, "embedding size %d", cJSON_GetArraySize(emb));
    float got[32];
    for (int i = 0; i < 32; i++) got[i] = (float)cJSON_GetArrayItem(emb, i)->valuedouble;
    CHECK_CLOSE(got, want, 32, tol, type);
    cJSON_Delete(j);
}

static void test_embed(void) {
    CLIPMOD_BIN_OR_SKIP();
    SHARED_OR_SKIP();
    CmTensorFile *ex = NULL;
    cm_status st = cm_tensorfile_open(tl_shared("golden/tiny/expected.safetensors"), &ex);
    REQUIRE(st == CM_OK, "%s", cm_last_error());
    char args[2048], err[512];
    const char *caption = "A car and a public transit vehicle on a road.";
    snprintf(args, sizeof args, "embed --model %s --model-name %s --vocab %s --image %s --text '%s'",
             tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"), tl_shared("vocab"),
             tl_shared("data/coco/000000086220.jpg"), caption);
    int rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0, "embed exit %d: %s", rc, err);
    /* sample 0 of the tiny inputs is this image and caption */
    check_line(g_out, 0, "image", tl_f32(ex, "image_features", NULL), 1e-5);
    check_line(g_out, 1, "text", tl_f32(ex, "text_features", NULL), 1e-5);
    strcat(args, " --raw");
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 0, "embed --raw exit %d: %s", rc, err);
    check_line(g_out, 0, "image", tl_f32(ex, "image_features_raw", NULL), 5e-5);
    check_line(g_out, 1, "text", tl_f32(ex, "text_features_raw", NULL), 5e-5);
    /* bad usage and bad inputs */
    rc = tl_run_clipmod("embed --text hello", g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2 && strstr(err, "--model"), "no --model: rc %d %s", rc, err);
    snprintf(args, sizeof args, "embed --model %s --model-name %s", tl_shared("golden/tiny/model.safetensors"),
             tl_shared("golden/tiny/config.json"));
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 2, "nothing to embed: rc %d", rc);
    snprintf(args, sizeof args, "embed --model %s --model-name %s --image /nonexistent/cat.jpg",
             tl_shared("golden/tiny/model.safetensors"), tl_shared("golden/tiny/config.json"));
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "/nonexistent/cat.jpg"), "bad image: rc %d %s", rc, err);
    snprintf(args, sizeof args, "embed --model %s --model-name ViT-B-32 --text hi", tl_shared("golden/tiny/model.safetensors"));
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "mis-shaped"), "wrong config: rc %d %s", rc, err);
    snprintf(args, sizeof args, "embed --model %s --text hi", tl_shared("golden/tiny/config.json"));
    rc = tl_run_clipmod(args, g_out, sizeof g_out, err, sizeof err);
    CHECK(rc == 1 && strstr(err, "config.json"), "not a weights file: rc %d %s", rc, err);
    cm_tensorfile_close(ex);
}

int main(void) {
    RUN(test_info);
    RUN(test_embed);
    return tl_summary("test_cli_model");
}
