/*
 * dist_agree.c — the same job on every rank (see dist_agree.h).
 */
#include "train/dist_agree.h"

#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "dist/dist.h"

/* options that may legitimately differ between ranks (machines): where files are, how many
   threads, what is logged, which rank it is */
static const char *const PER_RANK[] = {
    "threads", "logs", "log_path", "checkpoint_path", "save_logs", "cache_dir", "vocab", "debug", "log_level",
    "log_local", "rank", "local_rank", "pretrained", "resume", NULL,
};

enum { HASH = 16 };   /* hex digits of SHA-256 kept per entry (64 bits: a check, not a proof) */

typedef struct { char key[64]; char hash[HASH + 1]; } Entry;

static void entry_hash(Entry *e, const char *key, const char *val) {
    snprintf(e->key, sizeof e->key, "%s", key);
    char full[65];
    cm_sha256_hex(val, strlen(val), full);
    memcpy(e->hash, full, HASH);
    e->hash[HASH] = 0;
}

cm_status cm_train_dist_agree(const CmTrainConfig *o, const CmModel *m, const char *base_sha) {
    if (o->world <= 1 || !cm_dist_active()) return CM_OK;
    cJSON *args = o->args_json ? cJSON_Parse(o->args_json) : cJSON_CreateObject();
    if (!args || !cJSON_IsObject(args)) { cJSON_Delete(args); return cm_error(CM_ERR_ARG, "data-parallel check: the options JSON does not parse"); }
    for (int i = 0; PER_RANK[i]; i++) cJSON_DeleteItemFromObjectCaseSensitive(args, PER_RANK[i]);
    int n = cJSON_GetArraySize(args) + 4;
    Entry *mine = cm_calloc((size_t)n, sizeof *mine, "data-parallel check");
    char *cfg = cm_config_to_json(&m->cfg);
    cm_status st = CM_OK;
    if (!mine || !cfg) { st = CM_ERR_OOM; goto out; }
    int k = 0;
    entry_hash(&mine[k++], "clipmod version", CLIPMOD_VERSION);
    entry_hash(&mine[k++], "model config", cfg);
    entry_hash(&mine[k++], "base weights (SHA-256 of --pretrained)", base_sha ? base_sha : "");
    entry_hash(&mine[k++], "resume", !o->resume || !*o->resume ? "none" : !strcmp(o->resume, "latest") ? "latest" : "a checkpoint file");
    const cJSON *it;
    cJSON_ArrayForEach(it, args) {
        if (k >= n) break;
        char opt[64];
        snprintf(opt, sizeof opt, "--%s", it->string);
        for (char *c = opt + 2; *c; c++) if (*c == '_') *c = '-';
        entry_hash(&mine[k++], opt, cJSON_IsString(it) ? it->valuestring : "");
    }
    /* the number of entries first (another clipmod build may have other options) */
    int W = cm_dist_size();
    int64_t cnt = k, *cnts = cm_calloc((size_t)W, sizeof *cnts, "data-parallel check");
    char *all = NULL;
    if (!cnts) { st = CM_ERR_OOM; goto out; }
    if ((st = cm_dist_allgather_bytes(&cnt, sizeof cnt, cnts))) goto out2;
    for (int r = 1; r < W; r++)
        if (cnts[r] != cnts[0]) {
            st = cm_error(CM_ERR_ARG, "rank %d of %d runs a clipmod with %lld options, rank 0 one with %lld: every rank must run the same "
                          "build and command (docs/distributed.md)", r, W, (long long)cnts[r], (long long)cnts[0]);
            goto out2;
        }
    char (*hashes)[HASH + 1] = cm_malloc((size_t)k * (HASH + 1), "data-parallel check");
    if (!hashes) { st = CM_ERR_OOM; goto out2; }
    for (int i = 0; i < k; i++) memcpy(hashes[i], mine[i].hash, HASH + 1);
    all = cm_malloc((size_t)W * k * (HASH + 1), "data-parallel check");
    if (!all) { cm_free(hashes); st = CM_ERR_OOM; goto out2; }
    st = cm_dist_allgather_bytes(hashes, (size_t)k * (HASH + 1), all);
    cm_free(hashes);
    if (st) goto out2;
    for (int r = 1; r < W && !st; r++)
        for (int i = 0; i < k; i++) {
            const char *h0 = all + (size_t)i * (HASH + 1), *hr = all + ((size_t)r * k + i) * (HASH + 1);
            if (memcmp(h0, hr, HASH)) {
                st = cm_error(CM_ERR_ARG, "rank %d of %d was started with another configuration than rank 0: %s differs; every rank "
                              "must run the same command on the same model and data (docs/distributed.md)", r, W, mine[i].key);
                break;
            }
        }
out2:
    cm_free(all);
    cm_free(cnts);
out:
    cm_free(mine);
    cm_free(cfg);
    cJSON_Delete(args);
    return st;
}
