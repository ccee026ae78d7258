/*
 * forward.c — the model-level forward and backward (towers + head), the CmActs object, the
 * inference helpers (encode_image / encode_text / head) and the losses of DESIGN §2.
 *
 * What a forward keeps follows the model's mode: a tower with a trainable tensor is run in
 * TA_SAVE (or TA_CKPT with --grad-checkpointing); a frozen tower runs in TA_NONE (ping-pong
 * buffers, nothing kept) and backward never enters it. The model itself is only read.
 */
#include "model/infer.h"
#include "model/internal.h"
#include "kernels/backend.h"

#include <math.h>
#include <string.h>

struct CmActs {
    const CmModel *m;
    int maxB;
    bool ckpt;
    TowerSpec vs, ts;
    TowerActs vis, txt;
    bool vis_alloc, txt_alloc;
    HeadActs head;
    bool head_alloc;
    int B;
    bool fwd_ok, saved_v, saved_t, saved_h;
    float *dU, *dV;        /* [maxB,E] */
    CmDropoutKey dk;       /* head dropout: seed, optimizer step, global index of sample 0 */
};

cm_status cm_acts_create(const CmModel *m, int max_B, bool grad_ckpt, CmActs **out) {
    *out = NULL;
    if (max_B < 1 || max_B > (1 << 20)) return cm_error(CM_ERR_ARG, "activation batch size %d out of range", max_B);
    CmActs *a = cm_calloc(1, sizeof *a, "activations");
    if (!a) return CM_ERR_OOM;
    a->m = m;
    a->maxB = max_B;
    a->ckpt = grad_ckpt;
    cm_tower_spec(m, true, &a->vs);
    cm_tower_spec(m, false, &a->ts);
    size_t E = m->cfg.embed_dim;
    a->dU = cm_malloc((size_t)max_B * E * sizeof(float), "feature gradients");
    a->dV = cm_malloc((size_t)max_B * E * sizeof(float), "feature gradients");
    if (!a->dU || !a->dV) { cm_acts_free(a); return CM_ERR_OOM; }
    *out = a;
    return CM_OK;
}

void cm_acts_free(CmActs *a) {
    if (!a) return;
    if (a->vis_alloc) cm_tower_acts_free(&a->vis);
    if (a->txt_alloc) cm_tower_acts_free(&a->txt);
    if (a->head_alloc) cm_head_acts_free(&a->head);
    cm_free(a->dU);
    cm_free(a->dV);
    cm_free(a);
}

void cm_acts_seed(CmActs *a, uint64_t seed) { a->dk.seed = seed; }
void cm_acts_set_step(CmActs *a, uint64_t step, int64_t sample_base) {
    a->dk.step = step;
    a->dk.sample_base = sample_base;
}
const float *cm_acts_image_raw(const CmActs *a) { return a->fwd_ok ? a->vis.raw : NULL; }
const float *cm_acts_text_raw(const CmActs *a) { return a->fwd_ok ? a->txt.raw : NULL; }

static cm_status ensure_tower(TowerActs *ta, bool *alloc, const TowerSpec *s, int maxB, TaMode mode) {
    if (*alloc && ta->mode == mode && ta->amp == s->amp) return CM_OK;
    if (*alloc) { cm_tower_acts_free(ta); *alloc = false; }
    cm_status st = cm_tower_acts_alloc(ta, s, maxB, mode);
    if (st) return st;
    *alloc = true;
    return CM_OK;
}

cm_status cm_check_tokens(const CmModel *m, const int32_t *tokens, int B) {
    int T = m->cfg.text.context_length, V = m->cfg.text.vocab_size;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = tokens[(size_t)b * T + t];
            if (id < 0 || id >= V)
                return cm_error(CM_ERR_ARG, "token id %d at sample %d position %d is outside the vocabulary [0, %d)", id, b, t, V);
        }
    return CM_OK;
}

cm_status cm_model_forward(const CmModel *m, CmActs *a, const float *images, const int32_t *tokens,
                           int B, bool train, float *U, float *V, float *head_logits) {
    if (!images || !tokens || !U || !V) return cm_error(CM_ERR_ARG, "cm_model_forward: images, tokens, U and V are required");
    if (B < 1 || (a && B > a->maxB)) return cm_error(CM_ERR_ARG, "batch size %d outside 1..%d", B, a ? a->maxB : B);
    if (head_logits && !m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", m->cfg.name);
    if (train && !a) return cm_error(CM_ERR_ARG, "training forward needs activations (dropout RNG)");
    cm_status st = cm_check_tokens(m, tokens, B);
    if (st) return st;
    size_t E = m->cfg.embed_dim;
    if (!a) {
        if ((st = cm_encode_image(m, images, B, NULL, U))) return st;
        if ((st = cm_encode_text(m, tokens, B, NULL, V))) return st;
        return head_logits ? cm_head_forward(m, U, V, B, head_logits) : CM_OK;
    }
    a->fwd_ok = false;
    /* the model's current text layout (cm_model_set_text_padding may change after cm_acts_create;
       the buffers are sized for B x context rows either way); backward follows this forward's */
    a->ts.text_padded = m->text_padded;
    bool need_v = cm_tower_has_trainable(m, &a->vs), need_t = cm_tower_has_trainable(m, &a->ts);
    TaMode tv = need_v ? (a->ckpt ? TA_CKPT : TA_SAVE) : TA_NONE;
    TaMode tt = need_t ? (a->ckpt ? TA_CKPT : TA_SAVE) : TA_NONE;
    a->vs.amp = a->ts.amp = m->amp_bf16;   /* the precision now (plans again when it changed) */
    if ((st = ensure_tower(&a->vis, &a->vis_alloc, &a->vs, a->maxB, tv))) return st;
    if ((st = ensure_tower(&a->txt, &a->txt_alloc, &a->ts, a->maxB, tt))) return st;
    cm_tower_forward(m, &a->vs, &a->vis, images, NULL, B);
    cm_tower_forward(m, &a->ts, &a->txt, NULL, tokens, B);
    m->be->copy(U, a->vis.feat, (size_t)B * E * sizeof(float));
    m->be->copy(V, a->txt.feat, (size_t)B * E * sizeof(float));
    a->saved_v = need_v;
    a->saved_t = need_t;
    a->saved_h = false;
    if (head_logits) {
        if (!a->head_alloc) {
            if ((st = cm_head_acts_alloc(&a->head, m, a->maxB))) return st;
            a->head_alloc = true;
        }
        cm_head_net_forward(m, &a->head, a->vis.feat, a->txt.feat, B, train ? &a->dk : NULL, head_logits);
        a->saved_h = true;
    }
    a->B = B;
    a->fwd_ok = true;
    return CM_OK;
}

cm_status cm_model_backward(CmModel *m, CmActs *a, const float *dU, const float *dV, const float *dhead) {
    if (!a || !a->fwd_ok) return cm_error(CM_ERR_ARG, "cm_model_backward without a preceding forward with activations");
    if (a->m != m) return cm_error(CM_ERR_ARG, "cm_model_backward: activations belong to another model");
    int B = a->B;
    size_t n = (size_t)B * m->cfg.embed_dim;
    const CmBackend *be = m->be;
    if (dU) be->copy(a->dU, dU, n * sizeof(float)); else be->zero(a->dU, n * sizeof(float));
    if (dV) be->copy(a->dV, dV, n * sizeof(float)); else be->zero(a->dV, n * sizeof(float));
    if (dhead && a->saved_h) {
        bool head_tr = cm_head_has_trainable(m);
        if (head_tr || a->saved_v || a->saved_t)
            cm_head_net_backward(m, &a->head, dhead, a->saved_v ? a->dU : NULL, a->saved_t ? a->dV : NULL);
    }
    if (a->saved_v) cm_tower_backward(m, &a->vs, &a->vis, a->dU);
    if (a->saved_t) cm_tower_backward(m, &a->ts, &a->txt, a->dV);
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// inference helpers: a session (model/infer.h) per call, chunks of at most 32 samples

#define CHUNK 32

cm_status cm_encode_image(const CmModel *m, const float *images, int B, float *feat_raw, float *feat_norm) {
    if (!images) return cm_error(CM_ERR_ARG, "cm_encode_image: no images");
    if (B < 1) return cm_error(CM_ERR_ARG, "batch size %d < 1", B);
    CmInfer *s;
    cm_status st = cm_infer_create(m, B < CHUNK ? B : CHUNK, &s);
    if (!st) st = cm_infer_encode_image(s, images, B, feat_raw, feat_norm);
    cm_infer_free(s);
    return st;
}

cm_status cm_encode_text(const CmModel *m, const int32_t *tokens, int B, float *feat_raw, float *feat_norm) {
    if (!tokens) return cm_error(CM_ERR_ARG, "cm_encode_text: no tokens");
    if (B < 1) return cm_error(CM_ERR_ARG, "batch size %d < 1", B);
    CmInfer *s;
    cm_status st = cm_infer_create(m, B < CHUNK ? B : CHUNK, &s);
    if (!st) st = cm_infer_encode_text(s, tokens, B, feat_raw, feat_norm);
    cm_infer_free(s);
    return st;
}

cm_status cm_head_forward(const CmModel *m, const float *U, const float *V, int B, float *logits) {
    if (!m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", m->cfg.name);
    if (B < 1) return cm_error(CM_ERR_ARG, "batch size %d < 1", B);
    CmInfer *s;
    cm_status st = cm_infer_create(m, B < CHUNK ? B : CHUNK, &s);
    if (!st) st = cm_infer_head(s, U, V, B, logits);
    cm_infer_free(s);
    return st;
}

// ---------------------------------------------------------------------------------------------
// losses (DESIGN §2)

cm_status cm_loss(const float *U, const float *V, const float *head_logits, const int32_t *labels,
                  int N, int E, int K, float logit_scale, float w_con, float w_cls,
                  CmLossValues *out, float *dU, float *dV, float *dhead, float *d_logit_scale) {
    if (N < 1 || E < 1 || (head_logits && K < 1)) return cm_error(CM_ERR_ARG, "cm_loss: bad sizes N=%d E=%d K=%d", N, E, K);
    for (int i = 0; i < N; i++)
        if (labels[i] < 0 || (head_logits && labels[i] >= K) || (!head_logits && labels[i] > 1000000))
            return cm_error(CM_ERR_ARG, "label %d of sample %d is outside 0..%d", labels[i], i, K - 1);
    float s = expf(logit_scale);
    const CmBackend *be = cm_backend_cpu();   /* cm_loss works on host buffers (no model at hand) */
    float *p_img = be->alloc((size_t)N * N * sizeof(float), "contrastive probabilities");
    float *p_txt = be->alloc((size_t)N * N * sizeof(float), "contrastive probabilities");
    float *probs = head_logits ? be->alloc((size_t)N * K * sizeof(float), "class probabilities") : NULL;
    void *ws = be->alloc(be->contrastive_workspace(N), "contrastive workspace");
    if (!p_img || !p_txt || !ws || (head_logits && !probs)) {
        be->free(p_img); be->free(p_txt); be->free(probs); be->free(ws);
        return CM_ERR_OOM;
    }
    float con = be->contrastive_forward(p_img, p_txt, U, V, s, labels, N, E);
    float cls = head_logits ? be->crossentropy_forward(probs, head_logits, labels, N, K) : 0.0f;
    CmLossValues lv = {w_con * con + w_cls * cls, con, cls};
    if (out) *out = lv;
    if (dU) be->zero(dU, (size_t)N * E * sizeof(float));
    if (dV) be->zero(dV, (size_t)N * E * sizeof(float));
    if (dU || dV || d_logit_scale) {
        float dscale = 0.0f;
        be->contrastive_backward(dU, dV, &dscale, p_img, p_txt, U, V, s, labels, N, E, w_con, ws);
        if (d_logit_scale) {
            /* d loss / d logit_scale = s * dL/ds. The logits s*u_i.v_j are bilinear in U and V, so
               s * dL/ds = sum_i U_i . dU_i = sum_j V_j . dV_j exactly; summed in double from the
               feature gradient this carries ~1e-7 relative rounding, the kernel's fp32 dscale * s
               ~2e-5. The kernel's value only when neither feature gradient is wanted. */
            const float *F = dU ? U : dV ? V : NULL, *dF = dU ? dU : dV;
            if (F) *d_logit_scale = (float)be->dot(F, dF, (size_t)N * E);
            else *d_logit_scale = dscale * s;
        }
    }
    if (dhead && head_logits) {
        be->zero(dhead, (size_t)N * K * sizeof(float));
        be->crossentropy_backward(dhead, probs, labels, N, K, w_cls);
    }
    be->free(p_img);
    be->free(p_txt);
    be->free(probs);
    be->free(ws);
    return CM_OK;
}
