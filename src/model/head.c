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
 * The attention is a plain loop (T = 2, a few hundred FLOPs per sample), with dropout on the
 * probabilities as torch's MultiheadAttention applies it.
 */
#include "model/internal.h"
#include "kernels/ops.h"

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
}

cm_status cm_head_acts_alloc(HeadActs *ha, const CmModel *m, int maxB) {
    memset(ha, 0, sizeof *ha);
    ha->maxB = maxB;
    int L = m->cfg.head.layers;
    ha->lay = cm_calloc((size_t)(L > 0 ? L : 1), sizeof(HeadLayerActs), "head activations");
    if (!ha->lay) return CM_ERR_OOM;
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

/* x [B, n] per sample */
static void maybe_dropout(float *x, float *mask, size_t n, int B, float p, const CmDropoutKey *dk, uint32_t site) {
    if (dk && p > 0) cm_dropout_forward(x, mask, x, p, n, B, dk, site);
}

// ---------------------------------------------------------------------------------------------
// attention over 2 tokens per sample

/* ao[B,2,d] from qkv[B,2,3d]; att/attd/attmask [B,NH,2,2] */
static void head_attn_forward(HeadLayerActs *a, int B, int d, int NH, float p, const CmDropoutKey *dk, uint32_t site) {
    int hs = d / NH;
    float sc = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *P = a->att + ((size_t)b * NH + h) * 4;
            for (int i = 0; i < 2; i++) {
                const float *q = a->qkv + ((size_t)b * 2 + i) * 3 * d + h * hs;
                float s[2];
                for (int j = 0; j < 2; j++) {
                    const float *k = a->qkv + ((size_t)b * 2 + j) * 3 * d + d + h * hs;
                    float acc = 0.0f;
                    for (int c = 0; c < hs; c++) acc += (q[c] * sc) * k[c];
                    s[j] = acc;
                }
                float mx = s[0] > s[1] ? s[0] : s[1];
                float e0 = expf(s[0] - mx), e1 = expf(s[1] - mx), z = e0 + e1;
                P[i * 2] = e0 / z;
                P[i * 2 + 1] = e1 / z;
            }
        }
    size_t nA = (size_t)B * NH * 4;
    if (dk && p > 0) cm_dropout_forward(a->attd, a->attmask, a->att, p, (size_t)NH * 4, B, dk, site);
    else memcpy(a->attd, a->att, nA * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *Pd = a->attd + ((size_t)b * NH + h) * 4;
            for (int i = 0; i < 2; i++) {
                float *o = a->ao + ((size_t)b * 2 + i) * d + h * hs;
                const float *v0 = a->qkv + ((size_t)b * 2) * 3 * d + 2 * d + h * hs;
                const float *v1 = v0 + 3 * d;
                for (int c = 0; c < hs; c++) o[c] = Pd[i * 2] * v0[c] + Pd[i * 2 + 1] * v1[c];
            }
        }
}

/* dqkv[B,2,3d] (=) from dao[B,2,d] */
static void head_attn_backward(const HeadLayerActs *a, float *dqkv, const float *dao, int B, int d, int NH, bool dropped) {
    int hs = d / NH;
    float sc = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, (size_t)B * 2 * 3 * d * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t ai = ((size_t)b * NH + h) * 4;
            const float *P = a->att + ai, *Pd = a->attd + ai;
            float dP[4];
            for (int i = 0; i < 2; i++) {
                const float *go = dao + ((size_t)b * 2 + i) * d + h * hs;
                for (int j = 0; j < 2; j++) {
                    const float *v = a->qkv + ((size_t)b * 2 + j) * 3 * d + 2 * d + h * hs;
                    float *dv = dqkv + ((size_t)b * 2 + j) * 3 * d + 2 * d + h * hs;
                    float acc = 0.0f;
                    for (int c = 0; c < hs; c++) { acc += go[c] * v[c]; dv[c] += Pd[i * 2 + j] * go[c]; }
                    dP[i * 2 + j] = dropped ? acc * a->attmask[ai + i * 2 + j] : acc;
                }
            }
            for (int i = 0; i < 2; i++) {
                float dot = P[i * 2] * dP[i * 2] + P[i * 2 + 1] * dP[i * 2 + 1];
                const float *q = a->qkv + ((size_t)b * 2 + i) * 3 * d + h * hs;
                float *dq = dqkv + ((size_t)b * 2 + i) * 3 * d + h * hs;
                for (int j = 0; j < 2; j++) {
                    float dS = P[i * 2 + j] * (dP[i * 2 + j] - dot);
                    const float *k = a->qkv + ((size_t)b * 2 + j) * 3 * d + d + h * hs;
                    float *dk = dqkv + ((size_t)b * 2 + j) * 3 * d + d + h * hs;
                    for (int c = 0; c < hs; c++) { dq[c] += dS * k[c] * sc; dk[c] += dS * q[c] * sc; }
                }
            }
        }
}

// ---------------------------------------------------------------------------------------------
// head

void cm_head_net_forward(const CmModel *m, HeadActs *ha, const float *U, const float *V, int B, const CmDropoutKey *dk,
                         float *logits) {
    const CmHeadConfig *hc = &m->cfg.head;
    int d = hc->d, ff = hc->ff, R = 2 * B, K = hc->n_classes;
    float p = hc->dropout;
    ha->B = B;
    ha->dropout_on = dk != NULL;
    for (int b = 0; b < B; b++) {
        memcpy(ha->x0 + (size_t)b * 2 * d, U + (size_t)b * d, d * sizeof(float));
        memcpy(ha->x0 + ((size_t)b * 2 + 1) * d, V + (size_t)b * d, d * sizeof(float));
    }
    const float *x = ha->x0;
    for (int l = 0; l < hc->layers; l++) {
        const CmHeadLayerParams *k = &m->head.layers[l];
        HeadLayerActs *a = &ha->lay[l];
        memcpy(a->x_in, x, (size_t)R * d * sizeof(float));
        cm_linear_forward(a->qkv, a->x_in, k->in_w.data, k->in_b.data, R, d, 3 * d);      // [R,3d]
        head_attn_forward(a, B, d, hc->heads, p, dk, 4u * l + SITE_ATT);                                    // [R,d]
        cm_linear_forward(a->sa, a->ao, k->out_w.data, k->out_b.data, R, d, d);
        maybe_dropout(a->sa, a->samask, (size_t)2 * d, B, p, dk, 4u * l + SITE_SA);
        cm_add_forward(a->x1pre, a->x_in, a->sa, (size_t)R * d);
        cm_layernorm_forward(a->x1, a->n1m, a->n1r, a->x1pre, k->n1_w.data, k->n1_b.data, R, d);
        cm_linear_forward(a->h, a->x1, k->l1_w.data, k->l1_b.data, R, d, ff);              // [R,ff]
        cm_relu_forward(a->hr, a->h, (size_t)R * ff);
        memcpy(a->hrd, a->hr, (size_t)R * ff * sizeof(float));
        maybe_dropout(a->hrd, a->hmask, (size_t)2 * ff, B, p, dk, 4u * l + SITE_RELU);
        cm_linear_forward(a->ff, a->hrd, k->l2_w.data, k->l2_b.data, R, ff, d);            // [R,d]
        maybe_dropout(a->ff, a->ffmask, (size_t)2 * d, B, p, dk, 4u * l + SITE_FF);
        cm_add_forward(a->x2pre, a->x1, a->ff, (size_t)R * d);
        cm_layernorm_forward(a->x2, a->n2m, a->n2r, a->x2pre, k->n2_w.data, k->n2_b.data, R, d);
        x = a->x2;
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++)
            ha->e[(size_t)b * d + c] = (x[(size_t)b * 2 * d + c] + x[((size_t)b * 2 + 1) * d + c]) / 2.0f;
    cm_linear_forward(ha->c0, ha->e, m->head.c0_w.data, m->head.c0_b.data, B, d, d);
    cm_gelu_forward(ha->g, ha->c0, (size_t)B * d);
    memcpy(ha->gd, ha->g, (size_t)B * d * sizeof(float));
    maybe_dropout(ha->gd, ha->gmask, (size_t)d, B, hc->cls_dropout, dk, CLS_SITE);
    cm_linear_forward(ha->logits, ha->gd, m->head.c3_w.data, m->head.c3_b.data, B, d, K);
    if (logits) memcpy(logits, ha->logits, (size_t)B * K * sizeof(float));
}

void cm_head_net_backward(CmModel *m, HeadActs *ha, const float *dlogits, float *dU, float *dV) {
    const CmHeadConfig *hc = &m->cfg.head;
    int B = ha->B, d = hc->d, ff = hc->ff, R = 2 * B, K = hc->n_classes;
    bool dp = ha->dropout_on && hc->dropout > 0, dpc = ha->dropout_on && hc->cls_dropout > 0;
    // classifier: logits = gd C3^T + c3 ; gd = drop(gelu(c0)) ; c0 = e C0^T + c0b
    memset(ha->dg, 0, (size_t)B * d * sizeof(float));
    cm_linear_backward(ha->dg, m->head.c3_w.grad, m->head.c3_b.grad, dlogits, ha->gd, m->head.c3_w.data, B, d, K);
    if (dpc) for (size_t i = 0; i < (size_t)B * d; i++) ha->dg[i] *= ha->gmask[i];
    memset(ha->dc0, 0, (size_t)B * d * sizeof(float));
    cm_gelu_backward(ha->dc0, ha->c0, ha->dg, (size_t)B * d);
    memset(ha->de, 0, (size_t)B * d * sizeof(float));
    cm_linear_backward(ha->de, m->head.c0_w.grad, m->head.c0_b.grad, ha->dc0, ha->e, m->head.c0_w.data, B, d, d);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            float g = ha->de[(size_t)b * d + c] / 2.0f;
            ha->dx[(size_t)b * 2 * d + c] = g;
            ha->dx[((size_t)b * 2 + 1) * d + c] = g;
        }
    float *dh = ha->dh, *dh2 = ha->dh + (size_t)R * ff;
    for (int l = hc->layers - 1; l >= 0; l--) {
        const CmHeadLayerParams *k = &m->head.layers[l];
        HeadLayerActs *a = &ha->lay[l];
        bool need_dx = l > 0 || dU || dV;
        // x2 = norm2(x2pre): dtmp = d x2pre
        memset(ha->dtmp, 0, (size_t)R * d * sizeof(float));
        cm_layernorm_backward(ha->dtmp, k->n2_w.grad, k->n2_b.grad, ha->dx, a->x2pre, k->n2_w.data, a->n2m, a->n2r, R, d);
        // x2pre = x1 + drop(ff): d x1 = dtmp (residual) + FF branch
        for (size_t i = 0; i < (size_t)R * d; i++) ha->dff[i] = dp ? ha->dtmp[i] * a->ffmask[i] : ha->dtmp[i];
        memset(dh, 0, (size_t)R * ff * sizeof(float));
        cm_linear_backward(dh, k->l2_w.grad, k->l2_b.grad, ha->dff, a->hrd, k->l2_w.data, R, ff, d);
        for (size_t i = 0; i < (size_t)R * ff; i++)
            dh2[i] = a->h[i] > 0.0f ? (dp ? dh[i] * a->hmask[i] : dh[i]) : 0.0f;
        cm_linear_backward(ha->dtmp, k->l1_w.grad, k->l1_b.grad, dh2, a->x1, k->l1_w.data, R, d, ff);
        // x1 = norm1(x1pre): dx = d x1pre
        memset(ha->dx, 0, (size_t)R * d * sizeof(float));
        cm_layernorm_backward(ha->dx, k->n1_w.grad, k->n1_b.grad, ha->dtmp, a->x1pre, k->n1_w.data, a->n1m, a->n1r, R, d);
        // x1pre = x_in + drop(sa): dx stays as the residual part of d x_in
        for (size_t i = 0; i < (size_t)R * d; i++) ha->dff[i] = dp ? ha->dx[i] * a->samask[i] : ha->dx[i];
        memset(ha->datt, 0, (size_t)R * d * sizeof(float));
        cm_linear_backward(ha->datt, k->out_w.grad, k->out_b.grad, ha->dff, a->ao, k->out_w.data, R, d, d);
        head_attn_backward(a, ha->dqkv, ha->datt, B, d, hc->heads, dp);
        cm_linear_backward(need_dx ? ha->dx : NULL, k->in_w.grad, k->in_b.grad, ha->dqkv, a->x_in, k->in_w.data, R, d, 3 * d);
        if (!need_dx) return;
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < d; c++) {
            if (dU) dU[(size_t)b * d + c] += ha->dx[(size_t)b * 2 * d + c];
            if (dV) dV[(size_t)b * d + c] += ha->dx[((size_t)b * 2 + 1) * d + c];
        }
}
