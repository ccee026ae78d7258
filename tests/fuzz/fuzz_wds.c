/*
 * fuzz_wds.c — libFuzzer target for shards: the input is a tar (plain, or gzip when it starts
 * with the gzip magic) read as a file, first by the raw tar reader (data skipped, reading on past
 * non-fatal errors such as an over-limit member), then by the WebDataset grouping reader (data
 * loaded, 4 KiB member limit) with per-sample checks: keys non-empty, at most CM_WDS_MAX_FIELDS
 * fields, no repeated extension in a sample, field sizes matching their data; the label rule runs
 * on each sample's .json field, and the key splitter on each member name.
 * Seeds: tests/fuzz/corpus/wds/ (tests/fuzz/make_corpus.py).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/tar.h"
#include "data/wds.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) { fz_quiet(); return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file(data, size);
    CmTarReader *t;
    if (FZ(cm_tar_open(path, false, 4096, &t)) == CM_OK) {
        CmTarEntry e;
        for (int i = 0; i < 100000; i++) {
            int rc = cm_tar_next(t, &e);
            if (rc == CM_TAR_END) break;
            if (rc == CM_TAR_MEMBER || !cm_tar_fatal(t)) {
                size_t kl;
                if (e.name && cm_split_key(e.name, &kl) && kl > strlen(e.name)) abort();
                if (e.name) (void)cm_wds_meta_name(e.name);
                continue;
            }
            break;
        }
        cm_tar_close(t);
    }
    CmWdsReader *r;
    if (FZ(cm_wds_open(path, true, 4096, &r)) == CM_OK) {
        for (int i = 0; i < 100000; i++) {
            CmWdsSample *s;
            int rc = cm_wds_next(r, &s);
            if (rc <= 0) break;
            if (!s->key || !s->key[0] || s->nfields < 0 || s->nfields > CM_WDS_MAX_FIELDS) abort();
            for (int a = 0; a < s->nfields; a++) {
                if (!s->fields[a].ext) abort();
                for (int b = 0; b < a; b++)
                    if (!strcmp(s->fields[a].ext, s->fields[b].ext)) abort();   /* a repeat starts a new sample */
                if (s->fields[a].data && s->fields[a].data[s->fields[a].size] != 0) abort();   /* NUL-terminated */
            }
            const CmWdsField *js = cm_wds_field(s, "json");
            int label;
            if (js && js->data) (void)FZ(cm_label_from_json((const char *)js->data, js->size, &label));
            (void)cm_wds_image(s);
            cm_wds_sample_free(s);
        }
        cm_wds_close(r);
    }
    return 0;
}
