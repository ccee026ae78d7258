/*
 * torchzip.c — PyTorch zip checkpoints (torch.save): placeholder until the restricted unpickler lands.
 */
#include "io/tensorfile_internal.h"

cm_status cm_torchzip_parse(CmTensorFile *f) {
    return cm_error(CM_ERR_UNSUPPORTED, "%s: torch zip checkpoints are not supported yet", f->path);
}
