/*
 * test_fuzz_regress.c — every crash the fuzz targets (tests/fuzz/, docs/fuzzing.md) found, fed
 * again through the public or internal entry point that crashed, with the expected result. The
 * inputs are also in the fuzz corpora (tests/fuzz/corpus/<target>/crash-*), so `make fuzz`
 * replays them too. Under `make asan` these cases show the original memory errors if a fix regresses.
 */
#include "testlib.h"
#include "data/tokenizer_impl.h"
#include "model/model.h"
#include "data/wds.h"

/* fuzz_tokenizer: an HTML reference name holding U+0000 ("&lt\0\0\0"): entity_find compared with
   strncmp, which stopped at the NUL and then read past the end of the table name "lt" (ASan:
   global-buffer-overflow). Python: html.unescape("&lt\0\0\0") == "<\0\0\0" (the longest-prefix
   rule matches "lt", the NULs stay). */
static void test_entity_name_with_nul(void) {
    const uint32_t in[] = {'o', ' ', '&', 'l', 't', 0, 0, 0, ' ', '&', 'a', 'm', 'p', 0, ';', '&', 0, 'x'};
    const uint32_t want[] = {'o', ' ', '<', 0, 0, 0, ' ', '&', 0, ';', '&', 0, 'x'};
    size_t n_in = sizeof in / sizeof in[0], n_want = sizeof want / sizeof want[0];
    uint32_t out[64];
    size_t n = cm_html_unescape(in, n_in, out);
    CHECK(n == n_want, "%zu code points, want %zu", n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++) CHECK(out[i] == want[i], "at %zu: U+%04X, want U+%04X", i, out[i], want[i]);
}

/* fuzz_safetensors: the config guessed from shapes took sizes from declared dims; a tensor with a
   0 dim has no data, so its other dims can be anything: visual.positional_embedding [2^40+1, 0]
   and a patch of 2^20 made grid * patch_size overflow an int (UBSan). Now refused (CM_ERR_SHAPE
   naming a tensor and its dim). Found by reading the code the target reaches, replayed by it. */
static void test_shape_guess_absurd_dims(void) {
    const char *hdr = "{\"visual.conv1.weight\":{\"dtype\":\"F32\",\"shape\":[0,3,1048576,1],\"data_offsets\":[0,0]},"
                      "\"visual.positional_embedding\":{\"dtype\":\"F32\",\"shape\":[1099511627777,0],\"data_offsets\":[0,0]},"
                      "\"positional_embedding\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[0,0]},"
                      "\"token_embedding.weight\":{\"dtype\":\"F32\",\"shape\":[8,0],\"data_offsets\":[0,0]},"
                      "\"text_projection\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]}}";
    size_t hl = strlen(hdr);
    uint8_t *buf = malloc(8 + hl);
    REQUIRE(buf, "oom");
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open_memory(buf, 8 + hl, "absurd.safetensors", &f);
    CHECK(st == CM_OK, "the file itself is valid: %s", cm_last_error());
    if (f) {
        CmModelConfig cfg;
        st = cm_config_from_tensorfile(f, &cfg);
        CHECK(st == CM_ERR_SHAPE, "status %d: %s", st, cm_last_error());
        CHECK(strstr(cm_last_error(), "tensor ") && strstr(cm_last_error(), "(expected 1..1048576)"), "names the tensor and dim: %s", cm_last_error());
        cm_tensorfile_close(f);
    }
    free(buf);
}

/* fuzz_config_json: a label given as a string too large for an int ({"label":"88888888888888888"})
   was cast to int before the range check (UBSan float-cast-overflow). Out-of-range and non-finite
   labels, as strings or numbers, are now "unknown label" errors. */
static void test_label_out_of_int_range(void) {
    const char *bad[] = {"{\"label\":\"88888888888888888\"}", "{\"label\":1e300}", "{\"label\":\"nan\"}",
                         "{\"label\":\"-inf\"}", "{\"dataset\":\"fakeedit\",\"6_way_label\":\"1e20\"}",
                         "{\"tweet_id\":\"1\",\"label\":-3e10}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int label = 99;
        cm_status st = cm_label_from_json(bad[i], strlen(bad[i]), &label);
        CHECK(st == CM_ERR_FORMAT && label == -1, "%s: status %d label %d", bad[i], st, label);
    }
    int label = -1;
    CHECK(cm_label_from_json("{\"label\":\"3\"}", 13, &label) == CM_OK && label == 3, "\"3\" is 3: %d", label);
}

/* fuzz_config_json (after 9.85 M executions): {"embed_dim":1e9,...} — the head's default ff = 4 * d
   overflowed an int before cm_config_validate could refuse embed_dim (UBSan). Parsing now
   succeeds without UB and validation refuses the size, naming embed_dim. */
static void test_config_huge_embed_dim(void) {
    const char *js[] = {"{\"embed_dim\":1e9,\"vision_cfg\":{},\"text_cfg\":{}}",
                        "{\"embed_dim\":-1e9,\"vision_cfg\":{},\"text_cfg\":{}}"};
    for (int i = 0; i < 2; i++) {
        CmModelConfig cfg;
        cm_status st = cm_config_from_json(js[i], strlen(js[i]), "huge.json", &cfg);
        if (st == CM_OK) st = cm_config_validate(&cfg);
        CHECK(st == CM_ERR_ARG && strstr(cm_last_error(), "embed_dim"), "%s: status %d: %s", js[i], st, cm_last_error());
    }
}

int main(void) {
    RUN(test_config_huge_embed_dim);
    RUN(test_label_out_of_int_range);
    RUN(test_shape_guess_absurd_dims);
    RUN(test_entity_name_with_nul);
    return tl_summary("test_fuzz_regress");
}
