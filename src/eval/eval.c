/*
 * eval.c — validation over a batch source and OpenCLIP's clip_val_loss (see eval.h).
 */
#include "eval/eval.h"

#include <math.h>
#include "data/batches.h"

double cm_clip_val_loss(const float *U, const float *V, int N, int E, float scale) {
    if (N <= 0) return 0;
    double total = 0;
    for (int dir = 0; dir < 2; dir++) {
        const float *A = dir ? V : U, *Bm = dir ? U : V;
        for (int i = 0; i < N; i++) {
            double mx = -INFINITY, diag = 0;
            double *row = cm_malloc((size_t)N * sizeof(double), "val loss");
            if (!row) return NAN;
            for (int j = 0; j < N; j++) {
                double d = 0;
                for (int k = 0; k < E; k++) d += (double)A[(size_t)i * E + k] * Bm[(size_t)j * E + k];
                row[j] = scale * d;
                if (row[j] > mx) mx = row[j];
                if (j == i) diag = row[j];
            }
            double se = 0;
            for (int j = 0; j < N; j++) se += exp(row[j] - mx);
            total += mx + log(se) - diag;
            cm_free(row);
        }
    }
    return total / (2.0 * N);
}

cm_status cm_validate(const CmModel *m, CmBatchSource *val, int64_t epoch, float w_con, float w_cls, CmMetrics *out) {
    return cm_validate_ex(m, val, epoch, w_con, w_cls, out, NULL, NULL);
}

cm_status cm_validate_ex(const CmModel *m, CmBatchSource *val, int64_t epoch, float w_con, float w_cls, CmMetrics *out,
                         CmValBatchFn on_batch, void *cb_ctx) {
    const int B = val->batch, S = val->image_size, ctx = val->ctx, E = m->cfg.embed_dim, C = m->cfg.head.n_classes;
    cm_metrics_init(out, C);
    if (S != m->cfg.vision.image_size || ctx != m->cfg.text.context_length)
        return cm_error(CM_ERR_ARG, "validation data: images %d / context %d, the model wants %d / %d", S, ctx,
                        m->cfg.vision.image_size, m->cfg.text.context_length);
    float *img = cm_malloc((size_t)B * 3 * S * S * 4, "validation batch");
    int32_t *tok = cm_malloc((size_t)B * ctx * 4, "validation batch"), *lab = cm_malloc((size_t)B * 4, "validation batch");
    float *U = cm_malloc((size_t)B * E * 4, "validation features"), *V = cm_malloc((size_t)B * E * 4, "validation features");
    float *H = cm_malloc((size_t)B * C * 4, "validation logits");
    cm_status st = CM_OK;
    if (!img || !tok || !lab || !U || !V || !H) { st = CM_ERR_OOM; goto done; }
    float ls = m->logit_scale.data[0], scale = expf(ls);
    if ((st = val->start_epoch(val, epoch))) goto done;
    for (;;) {
        int got = 0;
        if ((st = val->next(val, img, tok, lab, &got))) goto done;
        if (got == 0) break;
        if ((st = cm_model_forward(m, NULL, img, tok, got, false, U, V, H))) goto done;
        if ((st = cm_metrics_add(out, H, lab, got))) goto done;
        if (on_batch && (st = on_batch(cb_ctx, val, H, lab, got, C))) goto done;
        cm_metrics_add_clip_loss(out, cm_clip_val_loss(U, V, got, E, scale), got);
        CmLossValues lv;
        if ((st = cm_loss(U, V, H, lab, got, E, C, ls, w_con, w_cls, &lv, NULL, NULL, NULL, NULL))) goto done;
        cm_metrics_add_loss(out, lv.loss, got);
    }
done:
    cm_free(img); cm_free(tok); cm_free(lab); cm_free(U); cm_free(V); cm_free(H);
    return st;
}
