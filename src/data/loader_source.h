/*
 * loader_source.h — a CmBatchSource over the threaded WebDataset loader (src/data/loader.h).
 * defines: cm_batches_loader
 */
#ifndef CM_DATA_LOADER_SOURCE_H
#define CM_DATA_LOADER_SOURCE_H

#include "data/loader.h"
#include "data/batches.h"

/* Opens the loader; train sources know num_batches per epoch (OpenCLIP's sizing). */
cm_status cm_batches_loader(const CmLoaderConfig *cfg, CmBatchSource **out);

#endif
