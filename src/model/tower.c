/*
 * tower.c — the OpenCLIP vision and text towers (DESIGN §1.1, facts §3) with LoRA on
 * attn.out_proj (DESIGN §1.2), forward and backward side by side.
 *
 *   vision: patches = cm_im2patch(img) [B*NP,3PP]; x = [cls; patches @ conv^T] + pos; x = ln_pre(x)
 *   text:   x = token_embedding[ids] + pos
 *   block:  x_mid = x + out_proj(attn(ln_1(x))) (+ (alpha/r) (ao A^T) B^T);
 *           y = x_mid + c_proj(gelu(c_fc(ln_2(x_mid))))
 *   top:    pooled = x[b, pool_b] (vision 0, text argmax(ids)); raw = ln(pooled) @ proj; feat = raw/|raw|
 * ln_post / ln_final are row-wise, so applying them to the pooled rows only is the same as
 * applying them to every token and then pooling. The text tower runs on the first max(pool)+1
 * tokens of the batch only: under the causal mask later tokens cannot reach a pooled one (their
 * gradients, e.g. to positional_embedding rows past it, are exactly 0 in torch too).
 *
 * Backward accumulates into the grads of trainable tensors only (NULL grad = frozen = no work) and
 * stops below the lowest layer that has a trainable tensor. With TA_CKPT only block inputs are
 * kept; each block is recomputed (without its c_proj, which backward does not need) before its
 * backward.
 */
#include "model/internal.h"
#include "kernels/ops.h"

#include <string.h>

void cm_tower_spec(const CmModel *m, bool vision, TowerSpec *s) {
    const CmModelConfig *c = &m->cfg;
    memset(s, 0, sizeof *s);
    s->vision = vision;
    s->E = c->embed_dim;
    s->r = c->has_lora ? c->lora_rank : 0;
    s->lora_scale = c->has_lora ? c->lora_alpha / (float)c->lora_rank : 0.0f;
    s->quick_gelu = c->quick_gelu;
    s->int8 = m->q8 != NULL;
    if (vision) {
        s->L = c->vision.layers;
        s->D = c->vision.width;
        s->H = (int)(c->vision.width * c->vision.mlp_ratio);
        s->NH = c->vision.heads;
        s->P = c->vision.patch_size;
        s->S = c->vision.image_size;
        s->NP = (s->S / s->P) * (s->S / s->P);
        s->T = s->NP + 1;
        s->causal = false;
        s->tp = &m->visual;
    } else {
        s->L = c->text.layers;
        s->D = c->text.width;
        s->H = (int)(c->text.width * c->text.mlp_ratio);
        s->NH = c->text.heads;
        s->T = c->text.context_length;
        s->causal = true;
        s->text_padded = m->text_padded;
        s->tp = &m->text;
    }
}

static void block_plan(BlockActs *a, Bump *b, const TowerSpec *s, size_t M, size_t B, bool with_xin) {
    size_t D = s->D, H = s->H;
    a->x_in = with_xin ? bump(b, M * D) : NULL;
    a->ln1 = bump(b, M * D);
    a->m1 = bump(b, M);
    a->r1 = bump(b, M);
    a->qkv = bump(b, 3 * M * D);
    a->att = bump(b, B * s->NH * (size_t)s->T * s->T);
    a->ao = bump(b, M * D);
    a->lt = s->r ? bump(b, M * s->r) : NULL;
    a->x_mid = bump(b, M * D);
    a->ln2 = bump(b, M * D);
    a->m2 = bump(b, M);
    a->r2 = bump(b, M);
    a->fc = bump(b, M * H);
    a->act = bump(b, M * H);
}

static void tower_plan(TowerActs *ta, Bump *b, const TowerSpec *s, int maxB) {
    size_t B = maxB, M = B * s->T, D = s->D;
    int nblk = ta->mode == TA_SAVE ? s->L : 1;
    for (int l = 0; l < nblk; l++) block_plan(&ta->blk[l], b, s, M, B, ta->mode == TA_SAVE);
    for (int l = 0; l < s->L; l++) {
        if (ta->mode == TA_SAVE) ta->xin[l] = ta->blk[l].x_in;
        else if (ta->mode == TA_CKPT || l < 2) ta->xin[l] = bump(b, M * D);   /* NONE: ping-pong 0/1 */
        else ta->xin[l] = NULL;
    }
    ta->x_last = bump(b, M * D);
    ta->lora_bt = s->r ? bump(b, (size_t)s->r * D) : NULL;
    ta->rows = ta->mode == TA_NONE ? bump(b, B * (4 * D + 2 * (size_t)s->H + (size_t)(s->r > 0 ? s->r : 1))) : NULL;
    if (s->vision) {
        ta->patches = bump(b, B * s->NP * 3 * (size_t)s->P * s->P);
        ta->x_pre = bump(b, M * D);
        ta->pre_m = bump(b, M);
        ta->pre_r = bump(b, M);
    }
    ta->pooled = bump(b, B * D);
    ta->pooled_ln = bump(b, B * D);
    ta->post_m = bump(b, B);
    ta->post_r = bump(b, B);
    ta->raw = bump(b, B * s->E);
    ta->feat = bump(b, B * s->E);
    ta->norm = bump(b, B);
    if (ta->mode != TA_NONE) {
        ta->dres = bump(b, M * D);
        ta->dact = bump(b, M * s->H);
        ta->dfc = bump(b, M * s->H);
        ta->dln = bump(b, M * D);
        ta->dao = bump(b, M * D);
        ta->dlt = s->r ? bump(b, M * s->r) : NULL;
        ta->dqkv = bump(b, 3 * M * D);
        ta->dpooled = bump(b, B * D);
        ta->draw = bump(b, B * s->E);
        ta->dpatch = s->vision ? bump(b, B * s->NP * D) : NULL;
        ta->lora_dbt = s->r ? bump(b, (size_t)s->r * D) : NULL;
    }
}

cm_status cm_tower_acts_alloc(TowerActs *ta, const TowerSpec *s, int maxB, TaMode mode) {
    memset(ta, 0, sizeof *ta);
    ta->mode = mode;
    ta->maxB = maxB;
    int nblk = mode == TA_SAVE ? s->L : 1;
    ta->blk = cm_calloc((size_t)nblk, sizeof(BlockActs), "block activations");
    ta->xin = cm_calloc((size_t)s->L, sizeof(float *), "block inputs");
    ta->pool = cm_calloc((size_t)maxB, sizeof(int), "pool index");
    ta->pool_row = cm_calloc((size_t)maxB, sizeof(int), "pooled rows");
    ta->ids = s->vision ? NULL : cm_calloc((size_t)maxB * s->T, sizeof(int32_t), "token ids");
    ta->row_pos = s->vision ? NULL : cm_calloc((size_t)maxB * s->T, sizeof(int32_t), "token positions");
    ta->seq_off = s->vision ? NULL : cm_calloc((size_t)maxB + 1, sizeof(int), "sequence offsets");
    ta->att_off = s->vision ? NULL : cm_calloc((size_t)maxB + 1, sizeof(int64_t), "attention offsets");
    if (!ta->blk || !ta->xin || !ta->pool || !ta->pool_row ||
        (!s->vision && (!ta->ids || !ta->row_pos || !ta->seq_off || !ta->att_off))) { cm_tower_acts_free(ta); return CM_ERR_OOM; }
    if (s->int8 && mode == TA_NONE) {   /* the largest int8 linear of the tower at maxB samples */
        int M = maxB * s->T, D = s->D, H = s->H;
        size_t w = cm_linear_int8_workspace(M, D, 3 * D), w2 = cm_linear_int8_workspace(M, D, H),
               w3 = cm_linear_int8_workspace(M, H, D);
        if (w2 > w) w = w2;
        if (w3 > w) w = w3;
        if (s->vision) {
            size_t w4 = cm_linear_int8_workspace(maxB * s->NP, 3 * s->P * s->P, D);
            if (w4 > w) w = w4;
        }
        ta->i8ws = cm_malloc(w, "int8 workspace");
        if (!ta->i8ws) { cm_tower_acts_free(ta); return CM_ERR_OOM; }
    }
    Bump b = {NULL, 0};
    tower_plan(ta, &b, s, maxB);
    ta->mem = cm_malloc(b.off * sizeof(float), s->vision ? "vision tower activations" : "text tower activations");
    if (!ta->mem) { cm_tower_acts_free(ta); return CM_ERR_OOM; }
    b = (Bump){ta->mem, 0};
    tower_plan(ta, &b, s, maxB);
    return CM_OK;
}

void cm_tower_acts_free(TowerActs *ta) {
    cm_free(ta->mem);
    cm_free(ta->blk);
    cm_free(ta->xin);
    cm_free(ta->pool);
    cm_free(ta->pool_row);
    cm_free(ta->ids);
    cm_free(ta->row_pos);
    cm_free(ta->seq_off);
    cm_free(ta->att_off);
    cm_free(ta->i8ws);
    memset(ta, 0, sizeof *ta);
}

// ---------------------------------------------------------------------------------------------
// small-rank LoRA products and fused residual passes (plain loops: BLAS is slow at N = r = 4)

/* lt[M,r] = ao[M,D] @ A[r,D]^T */
static void lora_down(float *lt, const float *ao, const float *A, int M, int D, int r) {
    #pragma omp parallel for if ((size_t)M * D > 65536)
    for (int i = 0; i < M; i++) {
        const float *x = ao + (size_t)i * D;
        for (int k = 0; k < r; k++) {
            const float *a = A + (size_t)k * D;
            float acc = 0.0f;
            #pragma omp simd reduction(+:acc)
            for (int c = 0; c < D; c++) acc += x[c] * a[c];
            lt[(size_t)i * r + k] = acc;
        }
    }
}

/* dst[M,D] = res[M,D] + b[D] (+ s * lt[M,r] @ Bw[D,r]^T when lt): the residual, bias and LoRA
   terms of out = res + (x W^T + b + s (x A^T) B^T) in one pass, before the GEMM adds x W^T
   (beta = 1). Same terms as torch, summed in another order (fp32 rounding only). */
static void residual_init(float *dst, const float *res, const float *b, const float *lt, const float *Bw,
                          int r, float s, int M, int D, float *Bt) {
    if (lt) {   /* Bt: [r,D] scratch planned with the activations (TowerActs.lora_bt) */
        for (int d = 0; d < D; d++)
            for (int k = 0; k < r; k++) Bt[(size_t)k * D + d] = s * Bw[(size_t)d * r + k];
    }
    #pragma omp parallel for if ((size_t)M * D > 65536)
    for (int i = 0; i < M; i++) {
        float *y = dst + (size_t)i * D;
        const float *x = res + (size_t)i * D;
        #pragma omp simd
        for (int c = 0; c < D; c++) y[c] = x[c] + b[c];
        if (lt)
            for (int k = 0; k < r; k++) {
                float l = lt[(size_t)i * r + k];
                const float *bt = Bt + (size_t)k * D;
                #pragma omp simd
                for (int c = 0; c < D; c++) y[c] += l * bt[c];
            }
    }
}

/* out[r,D] += alpha * sum_i a[i,k] X[i,:] for k < r   (a[M,r], X[M,D]); parallel over column
   blocks of 128, ranks in tiles of 16 (any r: the accumulator stays 8 KiB on the stack) */
#define SMALL_TN_RK 16
#define SMALL_TN_CB 128
static void small_tn(float *out, const float *a, const float *X, int M, int D, int r, float alpha) {
    int nblk = (D + SMALL_TN_CB - 1) / SMALL_TN_CB, nkt = (r + SMALL_TN_RK - 1) / SMALL_TN_RK;
    #pragma omp parallel for collapse(2) if ((size_t)M * D * (size_t)nkt > 65536)
    for (int kt = 0; kt < nkt; kt++)
        for (int bk = 0; bk < nblk; bk++) {
            int c0 = bk * SMALL_TN_CB, c1 = c0 + SMALL_TN_CB < D ? c0 + SMALL_TN_CB : D;
            int k0 = kt * SMALL_TN_RK, k1 = k0 + SMALL_TN_RK < r ? k0 + SMALL_TN_RK : r;
            float acc[SMALL_TN_RK][SMALL_TN_CB];
            for (int k = 0; k < k1 - k0; k++) for (int c = 0; c < c1 - c0; c++) acc[k][c] = 0.0f;
            for (int i = 0; i < M; i++) {
                const float *x = X + (size_t)i * D + c0;
                const float *ai = a + (size_t)i * r + k0;
                for (int k = 0; k < k1 - k0; k++) {
                    float w = ai[k];
                    #pragma omp simd
                    for (int c = 0; c < c1 - c0; c++) acc[k][c] += w * x[c];
                }
            }
            for (int k = 0; k < k1 - k0; k++)
                for (int c = c0; c < c1; c++) out[(size_t)(k0 + k) * D + c] += alpha * acc[k][c - c0];
        }
}

// ---------------------------------------------------------------------------------------------
// nn.Linear in the model's precision (fp32, or bf16 products with fp32 accumulation for amp)

/* int8 inference: the quantised copy of weight wi (cm_model_set_int8) when the tower runs
   without activations; NULL otherwise */
static inline const CmInt8Weights *Q8(const CmModel *m, const TowerActs *ta, CmTensorRef w) {
    return m->q8 && ta->i8ws && ta->mode == TA_NONE && w.idx >= 0 && m->q8[w.idx].w ? &m->q8[w.idx] : NULL;
}

static inline void LIN_F(const CmModel *m, const TowerActs *ta, float *out, const float *x, CmTensorRef w, const float *b,
                         int M, int C, int OC) {
    const CmInt8Weights *q = Q8(m, ta, w);
    if (q) cm_linear_forward_int8(out, x, q, b, NULL, M, ta->i8ws);
    else if (m->amp_bf16) cm_linear_forward_bf16(out, x, w.data, b, M, C, OC);
    else cm_linear_forward(out, x, w.data, b, M, C, OC);
}
static inline void LIN_B(const CmModel *m, float *dx, float *dW, float *db, const float *dout, const float *x, const float *W,
                         int M, int C, int OC) {
    if (m->amp_bf16) cm_linear_backward_bf16(dx, dW, db, dout, x, W, M, C, OC);
    else cm_linear_backward(dx, dW, db, dout, x, W, M, C, OC);
}
/* dst = res + (x W^T + b [+ LoRA]) : fp32 fuses the residual into the GEMM (beta = 1); int8 adds
   the dequantised product to it in the same pass; amp runs the bf16 linear and then adds (bias
   and LoRA terms as in fp32). */
static void linear_residual(const CmModel *m, const TowerActs *ta, float *dst, const float *res, const float *x,
                            CmTensorRef w, const float *b, const float *lt, const float *Bw, int r, float s, int M, int C,
                            int D) {
    const float *W = w.data;
    const CmInt8Weights *q = Q8(m, ta, w);
    if (q) {
        residual_init(dst, res, b, lt, Bw, r, s, M, D, ta->lora_bt);
        cm_linear_forward_int8(dst, x, q, NULL, dst, M, ta->i8ws);
        return;
    }
    if (!m->amp_bf16) {
        residual_init(dst, res, b, lt, Bw, r, s, M, D, ta->lora_bt);
        cm_matmul(false, true, M, D, C, 1.0f, x, C, W, C, 1.0f, dst, D);
        return;
    }
    cm_linear_forward_bf16(dst, x, W, NULL, M, C, D);
    float *tmp = cm_malloc((size_t)M * D * sizeof(float), "residual");
    CM_ASSERT(tmp != NULL);
    residual_init(tmp, res, b, lt, Bw, r, s, M, D, ta->lora_bt);
    cm_add_forward(dst, dst, tmp, (size_t)M * D);
    cm_free(tmp);
}

// ---------------------------------------------------------------------------------------------
// attention over the tower's rows: uniform [B,T] (vision, padded text) or packed sequences

static void attn_forward(const TowerSpec *s, const TowerActs *ta, BlockActs *a) {
    if (ta->packed) cm_attention_forward_varlen(a->ao, a->att, a->qkv, ta->seq_off, ta->att_off, ta->B, s->D, s->NH, s->causal);
    else cm_attention_forward(a->ao, a->att, a->qkv, ta->B, ta->T, s->D, s->NH, s->causal);
}
static void attn_backward(const TowerSpec *s, const TowerActs *ta, const BlockActs *a, float *dqkv, const float *dao) {
    if (ta->packed) cm_attention_backward_varlen(dqkv, dao, a->qkv, a->att, ta->seq_off, ta->att_off, ta->B, s->D, s->NH, s->causal);
    else cm_attention_backward(dqkv, dao, a->qkv, a->att, ta->B, ta->T, s->D, s->NH, s->causal);
}

// ---------------------------------------------------------------------------------------------
// one residual block

/* a->x_in must be set. out == NULL: stop after ln_2/c_fc/GELU (recompute for backward). */
static void block_forward(const CmModel *m, const TowerSpec *s, const TowerActs *ta, const CmBlockParams *k, BlockActs *a,
                          float *out) {
    int M = ta->M, D = s->D, H = s->H;
    cm_layernorm_forward(a->ln1, a->m1, a->r1, a->x_in, k->ln1_w.data, k->ln1_b.data, M, D);   // [M,D]
    LIN_F(m, ta, a->qkv, a->ln1, k->in_w, k->in_b.data, M, D, 3 * D);                      // [M,3D]
    attn_forward(s, ta, a);                                                                  // [M,D]
    // x_mid = x_in + (ao Wo^T + bo + (alpha/r) (ao A^T) B^T)
    if (s->r && k->lora_A.idx >= 0) lora_down(a->lt, a->ao, k->lora_A.data, M, D, s->r);         // [M,r]
    linear_residual(m, ta, a->x_mid, a->x_in, a->ao, k->out_w, k->out_b.data, s->r ? a->lt : NULL,
                    k->lora_B.data, s->r, s->lora_scale, M, D, D);
    cm_layernorm_forward(a->ln2, a->m2, a->r2, a->x_mid, k->ln2_w.data, k->ln2_b.data, M, D);
    LIN_F(m, ta, a->fc, a->ln2, k->fc_w, k->fc_b.data, M, D, H);                          // [M,H]
    if (s->quick_gelu) cm_quickgelu_forward(a->act, a->fc, (size_t)M * H);
    else cm_gelu_forward(a->act, a->fc, (size_t)M * H);
    if (!out) return;
    // out = x_mid + (act Wp^T + bp)
    linear_residual(m, ta, out, a->x_mid, a->act, k->proj_w, k->proj_b.data, NULL, NULL, 0, 0.0f, M, H, D);
}

/* The last block in inference: attention over all T tokens, then out_proj, LoRA, residual, ln_2
   and the MLP on the pooled row of each sample only (row-wise ops: the same numbers).
   pooled[B,D] = block output at row pool_row[b]. */
static void block_forward_pooled(const CmModel *m, const TowerSpec *s, const TowerActs *ta, const CmBlockParams *k, BlockActs *a,
                                 float *pooled) {
    int M = ta->M, B = ta->B, D = s->D, H = s->H;
    const int *pool_row = ta->pool_row;
    cm_layernorm_forward(a->ln1, a->m1, a->r1, a->x_in, k->ln1_w.data, k->ln1_b.data, M, D);
    LIN_F(m, ta, a->qkv, a->ln1, k->in_w, k->in_b.data, M, D, 3 * D);
    attn_forward(s, ta, a);
    /* B-row scratch (planned with the activations): aoP, xP, midP, ln2P [B,D]; fcP, actP [B,H]; lt [B,r] */
    float *aoP = ta->rows, *xP = aoP + (size_t)B * D, *midP = xP + (size_t)B * D, *ln2P = midP + (size_t)B * D;
    float *fcP = ln2P + (size_t)B * D, *actP = fcP + (size_t)B * H, *ltP = actP + (size_t)B * H;
    for (int b = 0; b < B; b++) {
        memcpy(aoP + (size_t)b * D, a->ao + (size_t)pool_row[b] * D, D * sizeof(float));
        memcpy(xP + (size_t)b * D, a->x_in + (size_t)pool_row[b] * D, D * sizeof(float));
    }
    if (s->r) lora_down(ltP, aoP, k->lora_A.data, B, D, s->r);
    linear_residual(m, ta, midP, xP, aoP, k->out_w, k->out_b.data, s->r ? ltP : NULL, k->lora_B.data, s->r,
                    s->lora_scale, B, D, D);
    cm_layernorm_forward(ln2P, a->m2, a->r2, midP, k->ln2_w.data, k->ln2_b.data, B, D);
    LIN_F(m, ta, fcP, ln2P, k->fc_w, k->fc_b.data, B, D, H);
    if (s->quick_gelu) cm_quickgelu_forward(actP, fcP, (size_t)B * H);
    else cm_gelu_forward(actP, fcP, (size_t)B * H);
    linear_residual(m, ta, pooled, midP, actP, k->proj_w, k->proj_b.data, NULL, NULL, 0, 0.0f, B, H, D);
}

static bool tr(CmTensorRef r) { return cm_ref_trainable(r); }
static bool tr2(CmTensorRef w, CmTensorRef b) { return cm_ref_trainable(w) || cm_ref_trainable(b); }

static bool block_trainable(const CmBlockParams *k) { return cm_refs_trainable(k->all, CM_BLOCK_NREFS); }

/* On entry ta->dres = dL/d(block output) [M,D]; on exit (when need_dx) dL/d(block input). */
static void block_backward(CmModel *m, const TowerSpec *s, const CmBlockParams *k, BlockActs *a, TowerActs *ta,
                           bool need_dx) {
    size_t M = (size_t)ta->M, D = s->D, H = s->H;
    float *dres = ta->dres;
    bool ln1_tr = tr2(k->ln1_w, k->ln1_b), qkv_tr = tr2(k->in_w, k->in_b);
    bool attn_tr = ln1_tr || qkv_tr || tr2(k->out_w, k->out_b) || tr2(k->lora_A, k->lora_B);
    bool need_attn = need_dx || attn_tr;
    bool ln2_tr = tr2(k->ln2_w, k->ln2_b);
    // --- MLP branch: y = x_mid + act @ Wp^T + bp
    bool need_dact = tr2(k->fc_w, k->fc_b) || ln2_tr || need_attn;
    if (need_dact) memset(ta->dact, 0, M * H * sizeof(float));
    LIN_B(m, need_dact ? ta->dact : NULL, k->proj_w.grad, k->proj_b.grad, dres, a->act,
                    k->proj_w.data, (int)M, (int)H, (int)D);
    if (need_dact) {
        memset(ta->dfc, 0, M * H * sizeof(float));
        if (s->quick_gelu) cm_quickgelu_backward(ta->dfc, a->fc, ta->dact, M * H);
        else cm_gelu_backward(ta->dfc, a->fc, ta->dact, M * H);
        bool need_dln2 = ln2_tr || need_attn;
        if (need_dln2) memset(ta->dln, 0, M * D * sizeof(float));
        LIN_B(m, need_dln2 ? ta->dln : NULL, k->fc_w.grad, k->fc_b.grad, ta->dfc, a->ln2,
                        k->fc_w.data, (int)M, (int)D, (int)H);
        if (need_dln2)
            cm_layernorm_backward(need_attn ? dres : NULL, k->ln2_w.grad, k->ln2_b.grad, ta->dln, a->x_mid,
                               k->ln2_w.data, a->m2, a->r2, (int)M, (int)D);
    }
    if (!need_attn) return;
    // --- attention branch: x_mid = x_in + ao Wo^T + bo + s (ao A^T) B^T ; dres = d x_mid
    bool need_dao = need_dx || ln1_tr || qkv_tr;
    if (need_dao) memset(ta->dao, 0, M * D * sizeof(float));
    LIN_B(m, need_dao ? ta->dao : NULL, k->out_w.grad, k->out_b.grad, dres, a->ao, k->out_w.data,
                    (int)M, (int)D, (int)D);
    if (s->r) {
        float *gA = k->lora_A.grad, *gB = k->lora_B.grad;
        const float *Aw = k->lora_A.data, *Bw = k->lora_B.data;
        int r = s->r;
        if (gB) {   // dB[D,r] += s * dres^T @ lt : through dBt[r,D] += s * lt^T dres
            float *dBt = ta->lora_dbt;
            memset(dBt, 0, (size_t)r * D * sizeof(float));
            small_tn(dBt, a->lt, dres, (int)M, (int)D, r, s->lora_scale);
            for (size_t d = 0; d < D; d++)
                for (int q = 0; q < r; q++) gB[d * r + q] += dBt[(size_t)q * D + d];
        }
        if (gA || need_dao) {
            // dlt[M,r] = s * dres @ B  (row-wise dots with B's columns)
            float *Bt = ta->lora_bt;
            for (size_t d = 0; d < D; d++)
                for (int q = 0; q < r; q++) Bt[(size_t)q * D + d] = Bw[d * r + q];
            lora_down(ta->dlt, dres, Bt, (int)M, (int)D, r);
            for (size_t i = 0; i < M * (size_t)r; i++) ta->dlt[i] *= s->lora_scale;
            if (gA) small_tn(gA, ta->dlt, a->ao, (int)M, (int)D, r, 1.0f);        // dA[r,D] += dlt^T ao
            if (need_dao) {                                                        // dao[M,D] += dlt @ A
                #pragma omp parallel for if (M * D > 65536)
                for (size_t i = 0; i < M; i++) {
                    float *y = ta->dao + i * D;
                    for (int q = 0; q < r; q++) {
                        float l = ta->dlt[i * r + q];
                        const float *aw = Aw + (size_t)q * D;
                        #pragma omp simd
                        for (size_t c = 0; c < D; c++) y[c] += l * aw[c];
                    }
                }
            }
        }
    }
    if (!need_dao) return;
    memset(ta->dqkv, 0, 3 * M * D * sizeof(float));
    attn_backward(s, ta, a, ta->dqkv, ta->dao);
    bool need_dln1 = need_dx || ln1_tr;
    if (need_dln1) memset(ta->dln, 0, M * D * sizeof(float));
    LIN_B(m, need_dln1 ? ta->dln : NULL, k->in_w.grad, k->in_b.grad, ta->dqkv, a->ln1, k->in_w.data,
                    (int)M, (int)D, 3 * (int)D);
    if (need_dln1)
        cm_layernorm_backward(need_dx ? dres : NULL, k->ln1_w.grad, k->ln1_b.grad, ta->dln, a->x_in, k->ln1_w.data,
                           a->m1, a->r1, (int)M, (int)D);
}

// ---------------------------------------------------------------------------------------------
// tower

void cm_tower_forward(const CmModel *m, const TowerSpec *s, TowerActs *ta, const float *images, const int32_t *ids, int B) {
    const CmTowerParams *tp = s->tp;
    size_t D = s->D;
    int T = s->T;
    ta->packed = false;
    if (!s->vision) {
        /* pool at argmax(ids) (the first EOT); with the causal mask no token after the pooled one
           can change it, so each caption runs on its tokens up to its own EOT only (exact). Packed
           (default): sequence b is rows [seq_off[b], seq_off[b+1]) of every [M,D] buffer, M = the
           sum of the lengths. Padded (text_padded): [B, max length] rows. */
        int Te = 1;
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int t = 1; t < s->T; t++) if (ids[(size_t)b * s->T + t] > ids[(size_t)b * s->T + best]) best = t;
            ta->pool[b] = best;
            if (best + 1 > Te) Te = best + 1;
        }
        if (s->keep_all_tokens) Te = s->T;
        ta->packed = !s->keep_all_tokens && !s->text_padded;
        if (ta->packed) {
            int off = 0;
            int64_t aoff = 0;
            for (int b = 0; b < B; b++) {
                int L = ta->pool[b] + 1;
                ta->seq_off[b] = off;
                ta->att_off[b] = aoff;
                memcpy(ta->ids + off, ids + (size_t)b * s->T, (size_t)L * sizeof(int32_t));
                for (int t = 0; t < L; t++) ta->row_pos[off + t] = t;
                ta->pool_row[b] = off + ta->pool[b];
                off += L;
                aoff += (int64_t)s->NH * L * L;
            }
            ta->seq_off[B] = off;
            ta->att_off[B] = aoff;
        }
        T = Te;
    }
    ta->B = B;
    ta->T = T;
    ta->M = ta->packed ? ta->seq_off[B] : B * T;
    if (!ta->packed)
        for (int b = 0; b < B; b++) ta->pool_row[b] = b * T + ta->pool[b];
    size_t M = (size_t)ta->M;
    float *x0 = ta->xin[0];
    if (s->vision) {
        int PP3 = 3 * s->P * s->P;
        cm_im2patch(ta->patches, images, B, s->S, s->S, s->P);                                  // [B*NP,3PP]
        LIN_F(m, ta, ta->x_last, ta->patches, tp->conv, NULL, B * s->NP, PP3, (int)D);  // tmp [B*NP,D]
        const float *cls = tp->class_emb.data, *pos = tp->pos.data;
        #pragma omp parallel for
        for (int b = 0; b < B; b++) {
            float *xb = ta->x_pre + (size_t)b * s->T * D;
            for (size_t c = 0; c < D; c++) xb[c] = cls[c] + pos[c];
            for (int p = 0; p < s->NP; p++) {
                const float *e = ta->x_last + ((size_t)b * s->NP + p) * D;
                float *x = xb + (size_t)(p + 1) * D;
                const float *ps = pos + (size_t)(p + 1) * D;
                for (size_t c = 0; c < D; c++) x[c] = e[c] + ps[c];
            }
            ta->pool[b] = 0;
            ta->pool_row[b] = b * s->T;
        }
        cm_layernorm_forward(x0, ta->pre_m, ta->pre_r, ta->x_pre, tp->ln_pre_w.data, tp->ln_pre_b.data, (int)M, (int)D);
    } else if (ta->packed) {
        cm_embedding_forward_rows(x0, ta->ids, ta->row_pos, tp->tok.data, tp->pos.data, (int)M, (int)D);
    } else {
        for (int b = 0; b < B; b++) memcpy(ta->ids + (size_t)b * T, ids + (size_t)b * s->T, (size_t)T * sizeof(int32_t));
        cm_embedding_forward(x0, ta->ids, tp->tok.data, tp->pos.data, B, T, (int)D);
    }
    for (int l = 0; l < s->L; l++) {
        BlockActs *a = ta->mode == TA_SAVE ? &ta->blk[l] : &ta->blk[0];
        float *in, *out;
        if (ta->mode == TA_NONE) {
            in = ta->xin[l & 1];
            out = l == s->L - 1 ? ta->x_last : ta->xin[(l + 1) & 1];
            if (s->L == 1) in = ta->xin[0];
        } else {
            in = ta->xin[l];
            out = l == s->L - 1 ? ta->x_last : ta->xin[l + 1];
        }
        a->x_in = in;
        if (ta->mode == TA_NONE && l == s->L - 1 && ta->M > B) {
            /* inference: after the last attention only the pooled rows matter */
            block_forward_pooled(m, s, ta, &tp->blocks[l], a, ta->pooled);
            goto pooled_done;
        }
        block_forward(m, s, ta, &tp->blocks[l], a, out);
    }
    for (int b = 0; b < B; b++)
        memcpy(ta->pooled + (size_t)b * D, ta->x_last + (size_t)ta->pool_row[b] * D, D * sizeof(float));
pooled_done:;
    cm_layernorm_forward(ta->pooled_ln, ta->post_m, ta->post_r, ta->pooled, tp->ln_post_w.data, tp->ln_post_b.data, B, (int)D);
    cm_matmul(false, false, B, s->E, (int)D, 1.0f, ta->pooled_ln, (int)D, tp->proj.data, s->E, 0.0f, ta->raw, s->E);  // [B,E]
    cm_l2norm_forward(ta->feat, ta->norm, ta->raw, B, s->E);
}

/* the embeddings (vision: class, positional, conv1, ln_pre; text: token, positional) */
static bool stem_trainable(const CmTowerParams *tp) { return cm_refs_trainable(tp->stem, CM_STEM_NREFS); }

bool cm_tower_has_trainable(const CmModel *m, const TowerSpec *s) {
    const CmTowerParams *tp = s->tp;
    if (stem_trainable(tp)) return true;
    for (int l = 0; l < s->L; l++) if (block_trainable(&tp->blocks[l])) return true;
    return cm_refs_trainable(tp->top, CM_TOP_NREFS);
}

void cm_tower_backward(CmModel *m, const TowerSpec *s, TowerActs *ta, const float *dfeat) {
    const CmTowerParams *tp = s->tp;
    int B = ta->B;
    size_t M = (size_t)ta->M, D = s->D, E = s->E;
    CM_ASSERT(ta->mode != TA_NONE);
    /* below[l]: something trainable under block l (stem or blocks < l) */
    bool below[257];
    below[0] = stem_trainable(tp);
    for (int l = 0; l < s->L; l++) below[l + 1] = below[l] || block_trainable(&tp->blocks[l]);
    CmTensorRef lw = tp->ln_post_w, lb = tp->ln_post_b, pj = tp->proj;
    // top: feat = raw/|raw|; raw = pooled_ln @ proj ; pooled_ln = LN(pooled)
    memset(ta->draw, 0, (size_t)B * E * sizeof(float));
    cm_l2norm_backward(ta->draw, dfeat, ta->feat, ta->norm, B, (int)E);
    if (pj.grad) cm_matmul(true, false, (int)D, (int)E, B, 1.0f, ta->pooled_ln, (int)D, ta->draw, (int)E, 1.0f, pj.grad, (int)E);
    bool ln_tr = tr2(lw, lb);
    if (!below[s->L] && !ln_tr) return;
    float *dpln = ta->dln;   /* [B,D] scratch */
    cm_matmul(false, true, B, (int)D, (int)E, 1.0f, ta->draw, (int)E, pj.data, (int)E, 0.0f, dpln, (int)D);
    memset(ta->dpooled, 0, (size_t)B * D * sizeof(float));
    cm_layernorm_backward(below[s->L] ? ta->dpooled : NULL, lw.grad, lb.grad, dpln, ta->pooled, lw.data,
                       ta->post_m, ta->post_r, B, (int)D);
    if (!below[s->L]) return;
    memset(ta->dres, 0, M * D * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(ta->dres + (size_t)ta->pool_row[b] * D, ta->dpooled + (size_t)b * D, D * sizeof(float));
    // blocks, top down
    for (int l = s->L - 1; l >= 0; l--) {
        if (!below[l + 1]) break;
        BlockActs *a;
        if (ta->mode == TA_CKPT) {
            a = &ta->blk[0];
            a->x_in = ta->xin[l];
            block_forward(m, s, ta, &tp->blocks[l], a, NULL);   /* recompute (c_proj output not needed) */
        } else {
            a = &ta->blk[l];
        }
        block_backward(m, s, &tp->blocks[l], a, ta, below[l]);
    }
    if (!below[0]) return;
    // stem
    if (s->vision) {
        bool emb_tr = tr(tp->class_emb) || tr(tp->pos) || tr(tp->conv);
        float *dx_pre = ta->dln;
        if (emb_tr) memset(dx_pre, 0, M * D * sizeof(float));
        cm_layernorm_backward(emb_tr ? dx_pre : NULL, tp->ln_pre_w.grad, tp->ln_pre_b.grad, ta->dres, ta->x_pre,
                           tp->ln_pre_w.data, ta->pre_m, ta->pre_r, (int)M, (int)D);
        if (!emb_tr) return;
        float *gc = tp->class_emb.grad, *gp = tp->pos.grad;
        for (int b = 0; b < B; b++) {
            const float *xb = dx_pre + (size_t)b * s->T * D;
            if (gc) for (size_t c = 0; c < D; c++) gc[c] += xb[c];
            if (gp) for (size_t i = 0; i < (size_t)s->T * D; i++) gp[i] += xb[i];
        }
        if (tp->conv.grad) {
            for (int b = 0; b < B; b++)
                memcpy(ta->dpatch + (size_t)b * s->NP * D, dx_pre + ((size_t)b * s->T + 1) * D, (size_t)s->NP * D * sizeof(float));
            int PP3 = 3 * s->P * s->P;
            // dconv[D,3PP] += dpatch^T [D,B*NP] @ patches [B*NP,3PP]
            cm_matmul(true, false, (int)D, PP3, B * s->NP, 1.0f, ta->dpatch, (int)D, ta->patches, PP3, 1.0f, tp->conv.grad, PP3);
        }
    } else {
        if (ta->packed) cm_embedding_backward_rows(tp->tok.grad, tp->pos.grad, ta->dres, ta->ids, ta->row_pos, (int)M, (int)D);
        else cm_embedding_backward(tp->tok.grad, tp->pos.grad, ta->dres, ta->ids, B, ta->T, (int)D);
    }
}
