/*
 * infer.h — an inference session: the activations of both towers and the head for batches up to
 * max_batch, allocated once and reused by every call (one session per thread; the model itself is
 * shared read-only). Larger requests run in chunks of max_batch. The public API's
 * clipmod_session and the model-level helpers cm_encode_image / cm_encode_text /
 * cm_head_forward (a session per call) run on it.
 * defines: CmInfer, cm_infer_*
 */
#ifndef CM_MODEL_INFER_H
#define CM_MODEL_INFER_H

#include "model/model.h"

typedef struct CmInfer CmInfer;

/* max_batch in 1..65536. Allocates everything the calls below use. */
/* Class probabilities of one row of K head logits, softmax in double (the numbers predict, eval
   --scores-out, serve and clipmod_classify print) into pd (double) and/or pf (float); either may
   be NULL. Returns the top class (the first on ties). */
int cm_class_probs(const float *logits, int K, double *pd, float *pf);
cm_status cm_infer_create(const CmModel *m, int max_batch, CmInfer **out);
void cm_infer_free(CmInfer *s);
const CmModel *cm_infer_model(const CmInfer *s);
/* images [B,3,S,S] -> raw / normalised features [B,E] (either may be NULL). */
cm_status cm_infer_encode_image(CmInfer *s, const float *images, int B, float *raw, float *feat);
/* tokens [B,ctx] (ids < vocab_size, else CM_ERR_ARG) -> features [B,E]. */
cm_status cm_infer_encode_text(CmInfer *s, const int32_t *tokens, int B, float *raw, float *feat);
/* The head (eval mode) on normalised U, V [B,E] -> logits [B,K]. */
cm_status cm_infer_head(CmInfer *s, const float *U, const float *V, int B, float *logits);
/* Both towers and the head: logits [B,K]; U, V (may be NULL) get the normalised features. */
cm_status cm_infer_classify(CmInfer *s, const float *images, const int32_t *tokens, int B, float *logits,
                            float *U, float *V);

#endif
