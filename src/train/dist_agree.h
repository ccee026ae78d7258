/*
 * dist_agree.h — every rank of a data-parallel job checks at start that it runs the same job as
 * the others (docs/distributed.md "Same job on every rank").
 * defines: cm_train_dist_agree
 */
#ifndef CM_TRAIN_DIST_AGREE_H
#define CM_TRAIN_DIST_AGREE_H

#include "common/common.h"
#include "model/model.h"
#include "train/train_config.h"

/* Each rank builds its canonical configuration: the training options (o->args_json) without the
   ones that may differ between machines (--threads, --logs, --cache-dir, --vocab, --debug, rank
   fields, the paths of --pretrained and --resume: the base weights count by their SHA-256
   (base_sha, "" when none), --resume by its kind: none / latest / a file), plus the model config
   and clipmod's version; one SHA-256 per entry is all-gathered. On a difference every rank returns
   CM_ERR_ARG naming the first rank that differs from rank 0 and the first entry (flag) that does.
   A group of 1 (or o->world <= 1): CM_OK at once. */
cm_status cm_train_dist_agree(const CmTrainConfig *o, const CmModel *m, const char *base_sha);

#endif
