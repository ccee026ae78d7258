/*
 * train_main.h — `clipmod train` after option parsing (train_main.c), shared with the demo.
 * defines: cm_train_main, cm_train_main_stop
 */
#ifndef CM_TRAIN_MAIN_H
#define CM_TRAIN_MAIN_H

#include "train/run.h"
#include "train/train_config.h"

/* o: a checked configuration (cm_train_config_check runs first). On return r holds the results (val metrics, last step, run folder);
   the model and data sources are freed (r->m etc. are NULL). on_step may be NULL. */
cm_status cm_train_main(const CmTrainConfig *o, CmRun *r, void (*on_step)(void *, int64_t, const CmStepStats *), void *cb_ctx);
/* The same with a stop flag (CmRun.stop: a signal handler sets it; NULL: none). */
cm_status cm_train_main_stop(const CmTrainConfig *o, CmRun *r, void (*on_step)(void *, int64_t, const CmStepStats *), void *cb_ctx,
                             volatile sig_atomic_t *stop);

#endif
