/*
 * infer.c — the inference session (see infer.h): TA_NONE tower activations (ping-pong block
 * buffers, pooled-row last block) and eval-mode head activations, sized once for max_batch.
 */
#include "model/infer.h"
#include "model/internal.h"
#include "kernels/backend.h"

#include <math.h>
#include <string.h>

struct CmInfer {
    const CmModel *m;
    int maxB;
    TowerSpec vs, ts;
    TowerActs vis, txt;
    HeadActs head;
    bool head_alloc;
};

cm_status cm_infer_create(const CmModel *m, int max_batch, CmInfer **out) {
    *out = NULL;
    if (!m) return cm_error(CM_ERR_ARG, "cm_infer_create: no model");
    if (max_batch < 1 || max_batch > 65536) return cm_error(CM_ERR_ARG, "inference batch size %d outside 1..65536", max_batch);
    CmInfer *s = cm_calloc(1, sizeof *s, "inference session");
    if (!s) return CM_ERR_OOM;
    s->m = m;
    s->maxB = max_batch;
    cm_tower_spec(m, true, &s->vs);
    cm_tower_spec(m, false, &s->ts);
    cm_status st = cm_tower_acts_alloc(&s->vis, &s->vs, max_batch, TA_NONE);
    if (!st) st = cm_tower_acts_alloc(&s->txt, &s->ts, max_batch, TA_NONE);
    if (!st && m->cfg.has_head) {
        st = cm_head_acts_alloc(&s->head, m, max_batch);
        s->head_alloc = st == CM_OK;
    }
    if (st) { cm_infer_free(s); return st; }
    *out = s;
    return CM_OK;
}

void cm_infer_free(CmInfer *s) {
    if (!s) return;
    cm_tower_acts_free(&s->vis);   /* safe on a zeroed struct */
    cm_tower_acts_free(&s->txt);
    if (s->head_alloc) cm_head_acts_free(&s->head);
    cm_free(s);
}

const CmModel *cm_infer_model(const CmInfer *s) { return s->m; }

static cm_status run_tower(CmInfer *s, bool vision, const float *images, const int32_t *tokens, int B, float *raw, float *feat) {
    if (B < 1) return cm_error(CM_ERR_ARG, "batch size %d < 1", B);
    if (!vision) s->ts.text_padded = s->m->text_padded;   /* the current setting, not the one at session creation */
    const TowerSpec *sp = vision ? &s->vs : &s->ts;
    TowerActs *ta = vision ? &s->vis : &s->txt;
    size_t E = sp->E, img = (size_t)3 * sp->S * sp->S;
    if (ta->amp != s->m->amp_bf16)
        return cm_error(CM_ERR_ARG, "inference session planned for %s products, but the model is now set to %s: create the session after cm_model_set_amp",
                        ta->amp ? "bf16" : "fp32", s->m->amp_bf16 ? "bf16" : "fp32");
    for (int b0 = 0; b0 < B; b0 += s->maxB) {
        int nb = B - b0 < s->maxB ? B - b0 : s->maxB;
        cm_tower_forward(s->m, sp, ta, vision ? images + b0 * img : NULL, vision ? NULL : tokens + (size_t)b0 * sp->T, nb);
        if (raw) s->m->be->copy(raw + b0 * E, ta->raw, nb * E * sizeof(float));
        if (feat) s->m->be->copy(feat + b0 * E, ta->feat, nb * E * sizeof(float));
    }
    return CM_OK;
}

cm_status cm_infer_encode_image(CmInfer *s, const float *images, int B, float *raw, float *feat) {
    if (!images) return cm_error(CM_ERR_ARG, "encode image: no images");
    return run_tower(s, true, images, NULL, B, raw, feat);
}

cm_status cm_infer_encode_text(CmInfer *s, const int32_t *tokens, int B, float *raw, float *feat) {
    if (!tokens) return cm_error(CM_ERR_ARG, "encode text: no tokens");
    cm_status st = cm_check_tokens(s->m, tokens, B);
    if (st) return st;
    return run_tower(s, false, NULL, tokens, B, raw, feat);
}

cm_status cm_infer_head(CmInfer *s, const float *U, const float *V, int B, float *logits) {
    if (!s->m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", s->m->cfg.name);
    if (B < 1 || !U || !V || !logits) return cm_error(CM_ERR_ARG, "head: batch size %d, U, V and logits required", B);
    size_t E = s->m->cfg.embed_dim, K = s->m->cfg.head.n_classes;
    for (int b0 = 0; b0 < B; b0 += s->maxB) {
        int nb = B - b0 < s->maxB ? B - b0 : s->maxB;
        cm_head_net_forward(s->m, &s->head, U + b0 * E, V + b0 * E, nb, NULL, logits + b0 * K);
    }
    return CM_OK;
}

cm_status cm_infer_classify(CmInfer *s, const float *images, const int32_t *tokens, int B, float *logits,
                            float *U, float *V) {
    if (!s->m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", s->m->cfg.name);
    if (B < 1 || !images || !tokens || !logits) return cm_error(CM_ERR_ARG, "classify: batch size %d, images, tokens and logits required", B);
    cm_status st = cm_check_tokens(s->m, tokens, B);
    if (st) return st;
    size_t E = s->m->cfg.embed_dim, K = s->m->cfg.head.n_classes, img = (size_t)3 * s->vs.S * s->vs.S;
    if (s->vis.amp != s->m->amp_bf16 || s->txt.amp != s->m->amp_bf16)
        return cm_error(CM_ERR_ARG, "inference session planned for another precision than the model's now: create the session after cm_model_set_amp");
    for (int b0 = 0; b0 < B; b0 += s->maxB) {
        int nb = B - b0 < s->maxB ? B - b0 : s->maxB;
        cm_tower_forward(s->m, &s->vs, &s->vis, images + b0 * img, NULL, nb);
        cm_tower_forward(s->m, &s->ts, &s->txt, NULL, tokens + (size_t)b0 * s->ts.T, nb);
        cm_head_net_forward(s->m, &s->head, s->vis.feat, s->txt.feat, nb, NULL, logits + b0 * K);
        if (U) s->m->be->copy(U + b0 * E, s->vis.feat, nb * E * sizeof(float));
        if (V) s->m->be->copy(V + b0 * E, s->txt.feat, nb * E * sizeof(float));
    }
    return CM_OK;
}

int cm_class_probs(const float *logits, int K, double *pd, float *pf) {
    int top = 0;
    for (int c = 1; c < K; c++) if (logits[c] > logits[top]) top = c;
    double mx = logits[top], se = 0;
    for (int c = 0; c < K; c++) se += exp((double)logits[c] - mx);
    for (int c = 0; c < K; c++) {
        double p = exp((double)logits[c] - mx) / se;
        if (pd) pd[c] = p;
        if (pf) pf[c] = (float)p;
    }
    return top;
}
