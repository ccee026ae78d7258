/*
 * sample_ids.h — the WebDataset keys and shard URLs of the samples of one batch (the loader's
 * CmBatch and the batch sources of src/train keep one): strings in one growing buffer with
 * offsets per sample, so that a warm batch costs no allocation, only a copy of ~100 bytes per
 * sample beside its ~600 kB image.
 * defines: CmSampleIds, cm_sample_ids_*
 */
#ifndef CM_DATA_SAMPLE_IDS_H
#define CM_DATA_SAMPLE_IDS_H

#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

typedef struct { char *buf; size_t len, cap; uint32_t *off; int n, ncap; } CmSampleIds;

void cm_sample_ids_clear(CmSampleIds *ids);
/* Appends sample n's key and URL (NULL: ""). */
cm_status cm_sample_ids_add(CmSampleIds *ids, const char *key, const char *url);
/* Key of sample i (NULL outside 0..n-1) and its URL in *url. */
const char *cm_sample_ids_get(const CmSampleIds *ids, int i, const char **url);
void cm_sample_ids_free(CmSampleIds *ids);

#endif
