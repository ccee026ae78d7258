/*
 * head.c — the per-sample classification head (DESIGN §1.3), forward and backward side by side.
 *
 * Per sample b the sequence is [u_b, v_b] (2 tokens of width d). Each of the `layers` torch
 * TransformerEncoderLayers (post-LN, ReLU, batch_first semantics within the sample):
 *   qkv = x Win^T + bin; att = softmax(q k^T / sqrt(hs)) [dropout p on att]; ao = att v
 *   sa = ao Wo^T + bo [dropout p];  x1 = norm1(x + sa)
 *   h = x1 W1^T + b1; hr = relu(h) [dropout p]; ff = hr W2^T + b2 [dropout p]; x2 = norm2(x1 + ff)
 * then e = mean over the 2 tokens; logits = (dropout_0.2(gelu(e C0^T + c0))) C3^T + c3.
 * Dropout only when an RNG is given (training) and p > 0; masks are kept for backward.
 * Every computation is an op of the model's backend (kernels/backend.h): the attention is the
 * backend's attention with T = 2 and dropout on the probabilities as torch's MultiheadAttention
 * applies it; the token mean and its gradient are row gathers/scatters, adds and scales.
 */
#include "model/internal.h"
#include "kernels/backend.h"

#include <math.h>
#include <string.h>

static void head_plan(HeadActs *ha, Bump *b, const CmModel *m, int maxB) {
    const CmHeadConfig *h = &m->cfg.head;
    size_t R = 2 * (size_t)maxB, d = h->d, ff = h->ff, B = maxB, A = B * h->heads * 4;
    for (int l = 0; l < h->layers; l++) {
        HeadLayerActs *a = &ha->lay[l];
        a->x_in = bump(b, R * d);
        a->qkv = bump(b, R * 3 * d);
        a->att = bump(b, A);
        a->attd = bump(b, A);
        a->attmask = bump(b, A);
        a->ao = bump(b, R * d);
        a->sa = bump(b, R * d);
        a->samask = bump(b, R * d);
        a->x1pre = bump(b, R * d);
        a->x1 = bump(b, R * d);
        a->n1m = bump(b, R);
        a->n1r = bump(b, R);
        a->h = bump(b, R * ff);
        a->hr = bump(b, R * ff);
        a->hrd = bump(b, R * ff);
        a->hmask = bump(b, R * ff);
        a->ff = bump(b, R * d);
        a->ffmask = bump(b, R * d);
        a->x2pre = bump(b, R * d);
        a->x2 = bump(b, R * d);
        a->n2m = bump(b, R);
        a->n2r = bump(b, R);
    }
    ha->x0 = bump(b, R * d);
    ha->e = bump(b, B * d);
    ha->c0 = bump(b, B * d);
    ha->g = bump(b, B * d);
    ha->gd = bump(b, B * d);
    ha->gmask = bump(b, B * d);
    ha->logits = bump(b, B * h->n_classes);
    ha->dx = bump(b, R * d);
    ha->dtmp = bump(b, R * d);
    ha->dqkv = bump(b, R * 3 * d);
    ha->dff = bump(b, R * d);
    ha->dh = bump(b, 2 * R * ff);   /* two [R,ff] halves */
    ha->datt = bump(b, R * d);
    ha->de = bump(b, B * d);
    ha->dg = bump(b, B * d);
    ha->dc0 = bump(b, B * d);
    /* planning: the attention's oneDNN products for up to B samples (forward and backward) and
       the workspace they need */
    ha->att_ws_bytes = m->be->plan_attention((int)B, 2, (int)d, h->heads, true);
    ha->att_ws = bump(b, (ha->att_ws_bytes + sizeof(float) - 1) / sizeof(float));
}

cm_status cm_head_acts_alloc(HeadActs *ha, const CmModel *m, int maxB) {
    memset(ha, 0, sizeof *ha);
    ha->maxB = maxB;
    int L = m->cfg.head.layers;
    ha->lay = cm_calloc((size_t)(L > 0 ? L : 1), sizeof(HeadLayerActs), "head activations");
    ha->tok_row = cm_calloc(2 * (size_t)maxB, sizeof(int), "head token rows");
    if (!ha->lay || !ha->tok_row) { cm_head_acts_free(ha); return CM_ERR_OOM; }
    for (int b = 0; b < maxB; b++) { ha->tok_row[b] = 2 * b; ha->tok_row[maxB + b] = 2 * b + 1; }
    Bump b = {NULL, 0};
    head_plan(ha, &b, m, maxB);
    ha->mem = cm_malloc(b.off * sizeof(float), "head activations");
    if (!ha->mem) { cm_head_acts_free(ha); return CM_ERR_OOM; }
    b = (Bump){ha->mem, 0};
    head_plan(ha, &b, m, maxB);
    return CM_OK;
}

void cm_head_acts_free(HeadActs *ha) {
    cm_free(ha->mem);
    cm_free(ha->lay);
    cm_free(ha->tok_row);
    memset(ha, 0, sizeof *ha);
}

bool cm_head_has_trainable(const CmModel *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].group == CM_GROUP_HEAD && m->params[i].trainable) return true;
    return false;
}

/* Dropout sites (the Philox counter's site word): layer l's attention probabilities, after
   attention, after ReLU, after FF = 4l..4l+3; the classifier's Dropout(0.2) = CLS_SITE. */
enum { SITE_ATT = 0, SITE_SA = 1, SITE_RELU = 2, SITE_FF = 3, CLS_SITE = 1000 };

/* x [B, n] per sample, in place */
static void maybe_dropout(const CmBackend *be, float *x, float *mask, size_t n, int B, float p, const CmDropoutKey *dk,
                          uint32_t site) {
    if (dk && p > 0) be->dropout_forward(x, mask, x, p, n, B, dk, site);
}

/* dst = src (* mask when dropped): the gradient through an optional dropout */
static void dropout_grad(const CmBackend *be, float *dst, const float *src, const float *mask, size_t n, bool dropped) {
    if (!dropped) { be->copy(dst, src, n * sizeof(float)); return; }
    be->zero(dst, n * sizeof(float));
    be->dropout_backward(dst, src, mask, n);
}

// ---------------------------------------------------------------------------------------------
// attention over 2 tokens per sample (the backend's attention op, T = 2, dropout on the
// probabilities as torch's MultiheadAttention applies it)

/* ao[B,2,d] from qkv[B,2,3d]; att/attd/attmask [B,NH,2,2] */
static void head_attn_forward(const CmBackend *be, const HeadActs *ha, HeadLayerActs *a, int B, int d, int NH, float p,
                              const CmDropoutKey *dk, uint32_t site) {
    CmAttnDropout dr = {p, dk, site, a->attd, a->attmask};
    be->attention_forward(a->ao, a->att, a->qkv, B, 2, d, NH, false, dk && p > 0 ? &dr : NULL, ha->att_ws,
                          ha->att_ws_bytes);
}

/* dqkv[B,2,3d] (=) from dao[B,2,d] */
static void head_attn_backward(const CmBackend *be, HeadLayerActs *a, float *dqkv, const float *dao, int B, int d, int NH,
                               bool dropped, void *ws, size_t ws_bytes) {
    CmAttnDropout dr = {0.0f, NULL, 0, a->attd, a->attmask};
    be->zero(dqkv, (size_t)B * 2 * 3 * d * sizeof(float));
    be->attention_backward(dqkv, dao, a->qkv, a->att, B, 2, d, NH, false, dropped ? &dr : NULL, ws, ws_bytes);
}

// ---------------------------------------------------------------------------------------------
// head

void cm_head_net_forward(const CmModel *m, HeadActs *ha, const float *U, const float *V, int B, const CmDropoutKey *dk,
                         float *logits) {
    const CmHeadConfig *hc = &m->cfg.head;
    int d = hc->d, ff = hc->ff, R = 2 * B, K = hc->n_classes;
    float p = hc->dropout;
    const CmBackend *be = m->be;
    const int *even = ha->tok_row, *odd = ha->tok_row + ha->maxB;   /* rows of u_b and v_b in [B*2,d] */
    ha->B = B;
    ha->dropout_on = dk != NULL;
    be->scatter_rows(ha->x0, U, even, B, d);
    be->scatter_rows(ha->x0, V, odd, B, d);
    const float *x = ha->x0;
    for (int l = 0; l < hc->layers; l++) {
        const CmHeadLayerParams *k = &m->head.layers[l];
        HeadLayerActs *a = &ha->lay[l];
        be->copy(a->x_in, x, (size_t)R * d * sizeof(float));
        be->linear_forward(CM_MM_F32, a->qkv, a->x_in, k->in_w.data, k->in_b.data, R, d, 3 * d, NULL, 0);      // [R,3d]
        head_attn_forward(be, ha, a, B, d, hc->heads, p, dk, 4u * l + SITE_ATT);                                    // [R,d]
        be->linear_forward(CM_MM_F32, a->sa, a->ao, k->out_w.data, k->out_b.data, R, d, d, NULL, 0);
        maybe_dropout(be, a->sa, a->samask, (size_t)2 * d, B, p, dk, 4u * l + SITE_SA);
        be->add(a->x1pre, a->x_in, a->sa, (size_t)R * d);
        be->layernorm_forward(a->x1, a->n1m, a->n1r, a->x1pre, k->n1_w.data, k->n1_b.data, R, d);
        be->linear_forward(CM_MM_F32, a->h, a->x1, k->l1_w.data, k->l1_b.data, R, d, ff, NULL, 0);              // [R,ff]
        be->relu_forward(a->hr, a->h, (size_t)R * ff);
        be->copy(a->hrd, a->hr, (size_t)R * ff * sizeof(float));
        maybe_dropout(be, a->hrd, a->hmask, (size_t)2 * ff, B, p, dk, 4u * l + SITE_RELU);
        be->linear_forward(CM_MM_F32, a->ff, a->hrd, k->l2_w.data, k->l2_b.data, R, ff, d, NULL, 0);            // [R,d]
        maybe_dropout(be, a->ff, a->ffmask, (size_t)2 * d, B, p, dk, 4u * l + SITE_FF);
        be->add(a->x2pre, a->x1, a->ff, (size_t)R * d);
        be->layernorm_forward(a->x2, a->n2m, a->n2r, a->x2pre, k->n2_w.data, k->n2_b.data, R, d);
        x = a->x2;
    }
    /* e = mean of the two tokens: (x[2b] + x[2b+1]) * 0.5 (== / 2 exactly); ha->g is free until the GELU */
    be->gather_rows(ha->e, x, even, B, d);
    be->gather_rows(ha->g, x, odd, B, d);
    be->add(ha->e, ha->e, ha->g, (size_t)B * d);
    be->scale(ha->e, 0.5f, (size_t)B * d);
    be->linear_forward(CM_MM_F32, ha->c0, ha->e, m->head.c0_w.data, m->head.c0_b.data, B, d, d, NULL, 0);
    be->gelu_forward(ha->g, ha->c0, (size_t)B * d);
    be->copy(ha->gd, ha->g, (size_t)B * d * sizeof(float));
    maybe_dropout(be, ha->gd, ha->gmask, (size_t)d, B, hc->cls_dropout, dk, CLS_SITE);
    be->linear_forward(CM_MM_F32, ha->logits, ha->gd, m->head.c3_w.data, m->head.c3_b.data, B, d, K, NULL, 0);
    if (logits) be->copy(logits, ha->logits, (size_t)B * K * sizeof(float));
}

void cm_head_net_backward(CmModel *m, HeadActs *ha, const float *dlogits, float *dU, float *dV) {
    const CmHeadConfig *hc = &m->cfg.head;
    int B = ha->B, d = hc->d, ff = hc->ff, R = 2 * B, K = hc->n_classes;
    bool dp = ha->dropout_on && hc->dropout > 0, dpc = ha->dropout_on && hc->cls_dropout > 0;
    const CmBackend *be = m->be;
    const int *even = ha->tok_row, *odd = ha->tok_row + ha->maxB;
    // classifier: logits = gd C3^T + c3 ; gd = drop(gelu(c0)) ; c0 = e C0^T + c0b
    be->zero(ha->dg, (size_t)B * d * sizeof(float));
    be->linear_backward(CM_MM_F32, ha->dg, m->head.c3_w.grad, m->head.c3_b.grad, dlogits, ha->gd, m->head.c3_w.data, B, d, K, NULL, 0);
    if (dpc) {   /* dg *= gmask, through dc0 (free until the GELU backward) */
        dropout_grad(be, ha->dc0, ha->dg, ha->gmask, (size_t)B * d, true);
        be->copy(ha->dg, ha->dc0, (size_t)B * d * sizeof(float));
    }
    be->zero(ha->dc0, (size_t)B * d * sizeof(float));
    be->gelu_backward(ha->dc0, ha->c0, ha->dg, (size_t)B * d);
    be->zero(ha->de, (size_t)B * d * sizeof(float));
    be->linear_backward(CM_MM_F32, ha->de, m->head.c0_w.grad, m->head.c0_b.grad, ha->dc0, ha->e, m->head.c0_w.data, B, d, d, NULL, 0);
    be->scale(ha->de, 0.5f, (size_t)B * d);   /* d mean: half to each token */
    be->scatter_rows(ha->dx, ha->de, even, B, d);
    be->scatter_rows(ha->dx, ha->de, odd, B, d);
    float *dh = ha->dh, *dh2 = ha->dh + (size_t)R * ff;
    for (int l = hc->layers - 1; l >= 0; l--) {
        const CmHeadLayerParams *k = &m->head.layers[l];
        HeadLayerActs *a = &ha->lay[l];
        bool need_dx = l > 0 || dU || dV;
        // x2 = norm2(x2pre): dtmp = d x2pre
        be->zero(ha->dtmp, (size_t)R * d * sizeof(float));
        be->layernorm_backward(ha->dtmp, k->n2_w.grad, k->n2_b.grad, ha->dx, a->x2pre, k->n2_w.data, a->n2m, a->n2r, R, d);
        // x2pre = x1 + drop(ff): d x1 = dtmp (residual) + FF branch
        dropout_grad(be, ha->dff, ha->dtmp, a->ffmask, (size_t)R * d, dp);
        be->zero(dh, (size_t)R * ff * sizeof(float));
        be->linear_backward(CM_MM_F32, dh, k->l2_w.grad, k->l2_b.grad, ha->dff, a->hrd, k->l2_w.data, R, ff, d, NULL, 0);
        // hrd = drop(relu(h)): dh2 = relu'(h) * (dh * hmask)
        if (dp) {
            dropout_grad(be, dh2, dh, a->hmask, (size_t)R * ff, true);
            be->copy(dh, dh2, (size_t)R * ff * sizeof(float));
        }
        be->zero(dh2, (size_t)R * ff * sizeof(float));
        be->relu_backward(dh2, a->h, dh, (size_t)R * ff);
        be->linear_backward(CM_MM_F32, ha->dtmp, k->l1_w.grad, k->l1_b.grad, dh2, a->x1, k->l1_w.data, R, d, ff, NULL, 0);
        // x1 = norm1(x1pre): dx = d x1pre
        be->zero(ha->dx, (size_t)R * d * sizeof(float));
        be->layernorm_backward(ha->dx, k->n1_w.grad, k->n1_b.grad, ha->dtmp, a->x1pre, k->n1_w.data, a->n1m, a->n1r, R, d);
        // x1pre = x_in + drop(sa): dx stays as the residual part of d x_in
        dropout_grad(be, ha->dff, ha->dx, a->samask, (size_t)R * d, dp);
        be->zero(ha->datt, (size_t)R * d * sizeof(float));
        be->linear_backward(CM_MM_F32, ha->datt, k->out_w.grad, k->out_b.grad, ha->dff, a->ao, k->out_w.data, R, d, d, NULL, 0);
        head_attn_backward(be, a, ha->dqkv, ha->datt, B, d, hc->heads, dp, ha->att_ws, ha->att_ws_bytes);
        be->linear_backward(CM_MM_F32, need_dx ? ha->dx : NULL, k->in_w.grad, k->in_b.grad, ha->dqkv, a->x_in, k->in_w.data, R, d, 3 * d, NULL, 0);
        if (!need_dx) return;
    }
    /* dU += dx[even rows], dV += dx[odd rows] (through de, free now) */
    if (dU) { be->gather_rows(ha->de, ha->dx, even, B, d); be->add(dU, dU, ha->de, (size_t)B * d); }
    if (dV) { be->gather_rows(ha->de, ha->dx, odd, B, d); be->add(dV, dV, ha->de, (size_t)B * d); }
}
