/*
 * fuzz_config_json.c — libFuzzer target for JSON read from users' files: cm_config_from_json
 * (OpenCLIP model configs and open_clip_config.json), then, for an accepted config,
 * cm_config_validate and a round trip through cm_config_to_json (the "model_config" written into
 * checkpoints) that must parse back to the same config; and cm_label_from_json (shard .json
 * metadata), whose label must be a class id. The input is not NUL-terminated (len is passed).
 * Seeds: tests/fuzz/corpus/config_json/ (tests/fuzz/make_corpus.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/wds.h"
#include "fuzz_util.h"
#include "model/model.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int label = -1;
    if (FZ(cm_label_from_json((const char *)data, size, &label)) == CM_OK && (label < 0 || label >= CM_NUM_CLASSES))
        abort();
    CmModelConfig cfg;
    if (FZ(cm_config_from_json((const char *)data, size, "fuzz.json", &cfg)) != CM_OK) return 0;
    if (FZ(cm_config_validate(&cfg)) != CM_OK) return 0;
    char *js = cm_config_to_json(&cfg);
    if (!js) abort();
    CmModelConfig back;
    if (cm_config_from_json(js, strlen(js), "round trip", &back) != CM_OK) abort();
    char *js2 = cm_config_to_json(&back);
    if (!js2 || strcmp(js, js2)) abort();                     /* serialise -> parse is a fixed point */
    cm_free(js);
    cm_free(js2);
    return 0;
}
