/*
 * trainer.c — one OpenCLIP optimizer step (accum_freq 1 and the feature cache), see trainer.h.
 */
#include "train/trainer.h"

#include <math.h>
#include <string.h>
#include "data/batches.h"
#include "dist/dist.h"
#include "train/checkpoint.h"

cm_status cm_trainer_init(CmTrainer *t, CmModel *m, const CmTrainerCfg *cfg) {
    memset(t, 0, sizeof *t);
    if (cfg->micro_batch < 1 || cfg->accum_freq < 1)
        return cm_error(CM_ERR_ARG, "trainer: --batch-size %d and --accum-freq %d must be >= 1", cfg->micro_batch, cfg->accum_freq);
    if (!m->cfg.has_head) return cm_error(CM_ERR_ARG, "trainer: the model has no classification head");
    t->m = m; t->cfg = *cfg;
    t->E = m->cfg.embed_dim; t->K = cfg->accum_freq; t->n_cls = m->cfg.head.n_classes;
    t->W = cfg->world > 1 ? cfg->world : 1;
    t->R = cfg->world > 1 ? cfg->rank : 0;
    if (t->R < 0 || t->R >= t->W) return cm_error(CM_ERR_ARG, "trainer: rank %d outside a group of %d", t->R, t->W);
    cm_status st = cm_opt_params_from_model(m, &t->pp, &t->np);
    if (st) return st;
    if (t->np == 0) { cm_trainer_free(t); return cm_error(CM_ERR_ARG, "trainer: nothing is trainable (mode %d)", (int)m->mode); }
    if ((st = cm_adamw_init(&t->opt, t->pp, t->np, cfg->beta1, cfg->beta2, cfg->eps, cfg->wd))) { cm_trainer_free(t); return st; }
    if ((st = cm_acts_create(m, cfg->micro_batch, cfg->grad_checkpointing, &t->acts))) { cm_trainer_free(t); return st; }
    size_t n = (size_t)cfg->micro_batch * t->K * t->W, B = cfg->micro_batch;
    t->Lg = cm_malloc(n * sizeof(int32_t), "trainer labels");
    t->U = cm_malloc(n * t->E * 4, "trainer features");
    t->V = cm_malloc(n * t->E * 4, "trainer features");
    t->H = cm_malloc(n * t->n_cls * 4, "trainer logits");
    t->dU = cm_malloc(n * t->E * 4, "trainer gradients");
    t->dV = cm_malloc(n * t->E * 4, "trainer gradients");
    t->dH = cm_malloc(n * t->n_cls * 4, "trainer gradients");
    t->Uj = cm_malloc(B * t->E * 4, "trainer features");
    t->Vj = cm_malloc(B * t->E * 4, "trainer features");
    t->Hj = cm_malloc(B * t->n_cls * 4, "trainer logits");
    t->keep = cm_malloc(B * (2 * t->E + t->n_cls) * 4, "trainer cache scratch");
    if (!t->keep || !t->Lg || !t->U || !t->V || !t->H || !t->dU || !t->dV || !t->dH || !t->Uj || !t->Vj || !t->Hj) {
        cm_trainer_free(t);
        return CM_ERR_OOM;
    }
    return CM_OK;
}

void cm_trainer_free(CmTrainer *t) {
    if (t->acts) cm_acts_free(t->acts);
    if (t->opt.p) cm_adamw_free(&t->opt);
    cm_free(t->pp);
    cm_free(t->U); cm_free(t->V); cm_free(t->H); cm_free(t->dU); cm_free(t->dV); cm_free(t->dH);
    cm_free(t->Uj); cm_free(t->Vj); cm_free(t->Hj); cm_free(t->keep); cm_free(t->Lg);
    memset(t, 0, sizeof *t);
}

static float *logit_scale_grad(CmTrainer *t) {
    return t->m->logit_scale.grad;   /* NULL unless trainable */
}

/* every rank's rows [R*n, (R+1)*n) of buf [W*n] to every rank (in place) */
static cm_status gather_rows(CmTrainer *t, float *buf, size_t n) {
    return t->W > 1 ? cm_dist_allgather_f32(buf + (size_t)t->R * n, n, buf) : CM_OK;
}

cm_status cm_trainer_grads(CmTrainer *t, const float *images, const int32_t *tokens, const int32_t *labels,
                           int n, CmStepStats *out) {
    CmModel *m = t->m;
    const int B = t->cfg.micro_batch, K = t->K, E = t->E, C = t->n_cls, W = t->W, R = t->R;
    if (n != B * K) return cm_error(CM_ERR_ARG, "trainer: got %d samples, expected batch %d x accum %d", n, B, K);
    const int S = m->cfg.vision.image_size, ctx = m->cfg.text.context_length;
    const size_t img_sz = (size_t)3 * S * S;
    const int G = W * K * B;                 /* rows of the global batch */
    const size_t L0 = (size_t)R * K * B;     /* this rank's first row in it */
    const float ls = m->logit_scale.data[0];
    float *gls = logit_scale_grad(t);
    bool drop = t->cfg.dropout;
    CmLossValues lv;
    cm_status st;
    float d_ls = 0;
    /* OpenCLIP's default under DDP: every rank's full loss differentiated through its own slot
       only, then averaged: the contrastive part of the gradient is 1/W of the global one */
    const float w_con = t->cfg.w_con, w_con_g = t->cfg.openclip_grad && W > 1 ? w_con / (float)W : w_con;

    cm_model_zero_grad(m);
    /* labels of the global batch (the masked count and the CE mean are global) */
    memcpy(t->Lg + L0, labels, (size_t)K * B * sizeof(int32_t));
    if (W > 1 && (st = cm_dist_allgather_bytes(t->Lg + L0, (size_t)K * B * sizeof(int32_t), t->Lg))) return st;
    /* dropout masks are keyed by (seed, step, the sample's index in the global batch, counted
       micro-batch-major: micro-batch j of rank r starts at (j*W + r)*B): the feature-cache pass
       and the recomputation of a micro-batch draw the same masks, and any split of the global
       batch into ranks and micro-batches draws the masks of one process with batch W*B */
    if (K == 1) {
        cm_acts_set_step(t->acts, (uint64_t)t->step, (int64_t)R * B);
        if ((st = cm_model_forward(m, t->acts, images, tokens, B, drop, t->U + L0 * E, t->V + L0 * E, t->H + L0 * C))) return st;
        if ((st = gather_rows(t, t->U, (size_t)B * E)) || (st = gather_rows(t, t->V, (size_t)B * E)) ||
            (st = gather_rows(t, t->H, (size_t)B * C)))
            return st;
        if ((st = cm_loss(t->U, t->V, t->H, t->Lg, G, E, C, ls, w_con_g, t->cfg.w_cls, &lv, t->dU, t->dV, t->dH, &d_ls)))
            return st;
        if ((st = cm_model_backward(m, t->acts, t->dU + L0 * E, t->dV + L0 * E, t->dH + L0 * C))) return st;
    } else {
        /* 1. features of every local micro-batch without gradients (dropout as in training),
              then every rank's (OpenCLIP's feature cache, across the group) */
        for (int j = 0; j < K; j++) {
            size_t r = (size_t)j * B, row = L0 + r;
            cm_acts_set_step(t->acts, (uint64_t)t->step, ((int64_t)j * W + R) * B);
            if ((st = cm_model_forward(m, drop ? t->acts : NULL, images + r * img_sz, tokens + r * ctx, B, drop,
                                       t->U + row * E, t->V + row * E, t->H + row * C)))
                return st;
        }
        if ((st = gather_rows(t, t->U, (size_t)K * B * E)) || (st = gather_rows(t, t->V, (size_t)K * B * E)) ||
            (st = gather_rows(t, t->H, (size_t)K * B * C)))
            return st;
        /* 2. per local micro-batch: fresh forward with gradients, loss over all G rows, backward
              its rows */
        for (int j = 0; j < K; j++) {
            size_t r = (size_t)j * B, row = L0 + r;
            cm_acts_set_step(t->acts, (uint64_t)t->step, ((int64_t)j * W + R) * B);
            if ((st = cm_model_forward(m, t->acts, images + r * img_sz, tokens + r * ctx, B, drop, t->Uj, t->Vj, t->Hj)))
                return st;
            /* swap the fresh rows into the cache; the cached rows come back after the loss
               (OpenCLIP builds a new cat() per sub-step and keeps its no-grad cache unchanged) */
            float *kU = t->keep, *kV = kU + (size_t)B * E, *kH = kV + (size_t)B * E;
            memcpy(kU, t->U + row * E, (size_t)B * E * 4);
            memcpy(kV, t->V + row * E, (size_t)B * E * 4);
            memcpy(kH, t->H + row * C, (size_t)B * C * 4);
            memcpy(t->U + row * E, t->Uj, (size_t)B * E * 4);
            memcpy(t->V + row * E, t->Vj, (size_t)B * E * 4);
            memcpy(t->H + row * C, t->Hj, (size_t)B * C * 4);
            CmLossValues lj;
            float dls_j = 0;
            st = cm_loss(t->U, t->V, t->H, t->Lg, G, E, C, ls, w_con_g, t->cfg.w_cls, &lj, t->dU, t->dV, t->dH, &dls_j);
            memcpy(t->U + row * E, kU, (size_t)B * E * 4);
            memcpy(t->V + row * E, kV, (size_t)B * E * 4);
            memcpy(t->H + row * C, kH, (size_t)B * C * 4);
            if (st) return st;
            if ((st = cm_model_backward(m, t->acts, t->dU + row * E, t->dV + row * E, t->dH + row * C))) return st;
            if (j == 0) { lv = lj; d_ls = dls_j; }
        }
    }
    /* every rank backpropagated the derivative of the one global loss through its own samples:
       the sum over ranks is the global batch's gradient (no averaging). logit_scale's gradient
       comes from the loss alone, which every rank evaluated whole: taken once, not summed (and
       once, not K times: the big-batch value, where OpenCLIP adds it per sub-step) */
    if (W > 1 && m->grad_arena && (st = cm_dist_allreduce_f32(m->grad_arena, m->n_grad_floats))) return st;
    if (w_con_g != w_con) {   /* the loss as defined, and logit_scale's exact gradient (OpenCLIP: every
                                 rank's identical d/d logit_scale, averaged) */
        lv.loss = w_con * lv.loss_con + t->cfg.w_cls * lv.loss_cls;
        d_ls *= (float)W;
    }
    if (gls) gls[0] += d_ls;
    if (out) {
        out->loss = lv.loss; out->loss_con = lv.loss_con; out->loss_cls = lv.loss_cls;
        out->grad_norm = NAN; out->lr = NAN; out->logit_scale = expf(ls);
    }
    if (!isfinite(lv.loss)) return cm_error(CM_ERR_ARG, "training diverged: loss is %g at step %lld", (double)lv.loss, (long long)t->step);
    return CM_OK;
}

cm_status cm_trainer_step(CmTrainer *t, const float *images, const int32_t *tokens, const int32_t *labels,
                          int n, CmStepStats *out) {
    CmStepStats s;
    cm_status st = cm_trainer_grads(t, images, tokens, labels, n, &s);
    if (st) return st;
    double clip = t->cfg.grad_clip_norm;
    if (clip > 0) s.grad_norm = cm_clip_grad_norm(t->pp, t->np, clip);
    double lr = cm_lr_at(&t->cfg.sched, t->step);
    cm_adamw_step(&t->opt, lr);
    CmModel *m = t->m;
    float *ls = m->logit_scale.data;
    ls[0] = cm_logit_scale_clamp(ls[0]);
    t->step++;
    s.lr = lr;
    s.logit_scale = expf(ls[0]);
    if (out) *out = s;
    return CM_OK;
}
