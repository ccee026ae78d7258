/*
 * sample_ids.c — CmSampleIds (sample_ids.h): the key and shard URL of each sample of a batch.
 */
#include "data/sample_ids.h"

#include <stdlib.h>
#include <string.h>

void cm_sample_ids_clear(CmSampleIds *ids) { ids->len = 0; ids->n = 0; }

cm_status cm_sample_ids_add(CmSampleIds *ids, const char *key, const char *url) {
    if (!key) key = "";
    if (!url) url = "";
    size_t kl = strlen(key) + 1, ul = strlen(url) + 1;
    if (ids->len + kl + ul > UINT32_MAX) return cm_error(CM_ERR_ARG, "sample ids: a batch's keys exceed 4 GiB");
    if (ids->len + kl + ul > ids->cap) {
        size_t nc = (ids->cap ? ids->cap * 2 : 4096) + kl + ul;
        char *nb = realloc(ids->buf, nc);
        if (!nb) return cm_error(CM_ERR_OOM, "sample ids: out of memory");
        ids->buf = nb; ids->cap = nc;
    }
    if (ids->n >= ids->ncap) {
        int nc = ids->ncap ? ids->ncap * 2 : 64;
        uint32_t *no = realloc(ids->off, sizeof *no * 2 * (size_t)nc);
        if (!no) return cm_error(CM_ERR_OOM, "sample ids: out of memory");
        ids->off = no; ids->ncap = nc;
    }
    ids->off[2 * ids->n] = (uint32_t)ids->len;
    memcpy(ids->buf + ids->len, key, kl);
    ids->len += kl;
    ids->off[2 * ids->n + 1] = (uint32_t)ids->len;
    memcpy(ids->buf + ids->len, url, ul);
    ids->len += ul;
    ids->n++;
    return CM_OK;
}

const char *cm_sample_ids_get(const CmSampleIds *ids, int i, const char **url) {
    if (url) *url = NULL;
    if (i < 0 || i >= ids->n) return NULL;
    if (url) *url = ids->buf + ids->off[2 * i + 1];
    return ids->buf + ids->off[2 * i];
}

void cm_sample_ids_free(CmSampleIds *ids) {
    free(ids->buf); free(ids->off);
    memset(ids, 0, sizeof *ids);
}
