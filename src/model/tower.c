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
 * Every computation is an op of the model's backend (m->be, kernels/backend.h): this file holds
 * buffers, plans them (sizes, workspaces, the backend's per-shape preparation) and calls ops; the
 * only loops left are host-side index bookkeeping (pooled token, packed offsets).
 *
 * Backward accumulates into the grads of trainable tensors only (NULL grad = frozen = no work) and
 * stops below the lowest layer that has a trainable tensor. With TA_CKPT only block inputs are
 * kept; each block is recomputed (without its c_proj, which backward does not need) before its
 * backward.
 */
#include "model/internal.h"
#include "kernels/backend.h"

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
    s->amp = m->amp_bf16;
    s->be = m->be;
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
    /* Planning: one workspace for the kernels' scratch (kernels never allocate), sized by the
       backend's plan_* calls, which also create what the backend caches per shape (oneDNN
       primitives and their scratchpads on the CPU) for every shape up to the planned one: the
       packed text rows and a short last batch met later need nothing new. Linears: int8
       (inference with quantised weights; the others' precision as fallback), fp32/bf16; the
       amp residual sum reuses the workspace as [M,D]; attention: the padded [B,T] products
       (vision; text's padded comparison mode at full length) and the backward's dA. */
    int M = maxB * s->T, D = s->D, H = s->H, PP3 = 3 * s->P * s->P, NPr = maxB * s->NP;
    const int lin[5][3] = {{M, D, 3 * D}, {M, D, D}, {M, D, H}, {M, H, D}, {NPr, PP3, D}};
    int nlin = s->vision ? 5 : 4;
    size_t ws = 0;
    const CmBackend *be = s->be;
    CmMatPrec prec = s->amp ? CM_MM_BF16 : CM_MM_F32;
    bool bwd = mode != TA_NONE, int8 = s->int8 && mode == TA_NONE;
    ta->be = be;
    ta->amp = s->amp;
    for (int i = 0; i < nlin; i++) {   /* in_proj and c_fc carry their bias; out_proj, c_proj, conv1 do not */
        size_t w = be->plan_linear(prec, lin[i][0], lin[i][1], lin[i][2], i == 0 || i == 2, bwd);
        if (int8) {
            size_t w8 = be->plan_linear_int8(lin[i][0], lin[i][1], lin[i][2]);
            if (w8 > w) w = w8;
        }
        if (s->amp && (size_t)M * D * sizeof(float) > w) w = (size_t)M * D * sizeof(float);   /* amp residual sum */
        if (w > ws) ws = w;
    }
    size_t wa = be->plan_attention(maxB, s->T, D, s->NH, bwd);
    if (wa > ws) ws = wa;
    if (ws) {
        ta->ws = be->alloc(ws, s->vision ? "vision tower workspace" : "text tower workspace");
        if (!ta->ws) { cm_tower_acts_free(ta); return CM_ERR_OOM; }
        ta->ws_bytes = ws;
        ta->i8ws = int8 ? ta->ws : NULL;
    }
    Bump b = {NULL, 0};
    tower_plan(ta, &b, s, maxB);
    ta->mem = be->alloc(b.off * sizeof(float), s->vision ? "vision tower activations" : "text tower activations");
    if (!ta->mem) { cm_tower_acts_free(ta); return CM_ERR_OOM; }
    b = (Bump){ta->mem, 0};
    tower_plan(ta, &b, s, maxB);
    return CM_OK;
}

void cm_tower_acts_free(TowerActs *ta) {
    if (ta->be) {
        ta->be->free(ta->mem);
        ta->be->free(ta->ws);
    }
    cm_free(ta->blk);
    cm_free(ta->xin);
    cm_free(ta->pool);
    cm_free(ta->pool_row);
    cm_free(ta->ids);
    cm_free(ta->row_pos);
    cm_free(ta->seq_off);
    cm_free(ta->att_off);
    memset(ta, 0, sizeof *ta);
}

// ---------------------------------------------------------------------------------------------
// nn.Linear in the model's precision (fp32, or bf16 products with fp32 accumulation for amp)

/* int8 inference: the quantised copy of weight w (cm_model_set_int8) when the tower runs
   without activations; NULL otherwise */
static inline const CmInt8Weights *Q8(const CmModel *m, const TowerActs *ta, CmTensorRef w) {
    return m->q8 && ta->i8ws && ta->mode == TA_NONE && w.idx >= 0 && m->q8[w.idx].w ? &m->q8[w.idx] : NULL;
}

/* the precision of the tower's products: an argument of the backend's linear op */
static inline CmMatPrec PREC(const TowerActs *ta) { return ta->amp ? CM_MM_BF16 : CM_MM_F32; }

static inline void LIN_F(const CmModel *m, const TowerActs *ta, float *out, const float *x, CmTensorRef w, const float *b,
                         int M, int C, int OC) {
    const CmInt8Weights *q = Q8(m, ta, w);
    if (q) m->be->linear_forward_int8(out, x, q, b, NULL, M, ta->i8ws, ta->ws_bytes);
    else m->be->linear_forward(PREC(ta), out, x, w.data, b, M, C, OC, ta->ws, ta->ws_bytes);
}
static inline void LIN_B(const TowerActs *ta, float *dx, float *dW, float *db, const float *dout, const float *x, const float *W,
                         int M, int C, int OC) {
    ta->be->linear_backward(PREC(ta), dx, dW, db, dout, x, W, M, C, OC, ta->ws, ta->ws_bytes);
}

/* dst = res + b (+ s * lt @ Bw^T when lt): Bt = s * Bw^T [r,D] planned with the activations */
static void residual_init(const CmBackend *be, const TowerActs *ta, float *dst, const float *res, const float *b,
                          const float *lt, const float *Bw, int r, float s, int M, int D) {
    if (lt) be->transpose_scaled(ta->lora_bt, Bw, D, r, s);
    be->residual_init(dst, res, b, lt, ta->lora_bt, r, M, D);
}
/* act = gelu(x W^T + b) (fc gets the pre-activation; int8 fuses the GELU into its dequantisation
   pass and leaves fc unwritten: inference only, nothing reads it) */
static void mlp_up(const CmModel *m, const TowerSpec *s, const TowerActs *ta, float *fc, float *act, const float *x,
                   CmTensorRef w, const float *b, int M, int D, int H) {
    const CmInt8Weights *q = Q8(m, ta, w);
    if (q) {
        m->be->linear_gelu_forward_int8(act, x, q, b, s->quick_gelu, M, ta->i8ws, ta->ws_bytes);
        return;
    }
    LIN_F(m, ta, fc, x, w, b, M, D, H);
    if (s->quick_gelu) m->be->quickgelu_forward(act, fc, (size_t)M * H);
    else m->be->gelu_forward(act, fc, (size_t)M * H);
}

/* dst = res + (x W^T + b [+ LoRA]) : fp32 fuses the residual into the GEMM (beta = 1); int8 adds
   the dequantised product to it in the same pass; amp runs the bf16 linear and then adds (bias
   and LoRA terms as in fp32). */
static void linear_residual(const CmModel *m, const TowerActs *ta, float *dst, const float *res, const float *x,
                            CmTensorRef w, const float *b, const float *lt, const float *Bw, int r, float s, int M, int C,
                            int D) {
    const CmBackend *be = m->be;
    const float *W = w.data;
    const CmInt8Weights *q = Q8(m, ta, w);
    if (q) {   /* bias and residual in the dequantisation pass; LoRA (unmerged) first */
        if (!lt) {
            be->linear_forward_int8(dst, x, q, b, res, M, ta->i8ws, ta->ws_bytes);
            return;
        }
        residual_init(be, ta, dst, res, b, lt, Bw, r, s, M, D);
        be->linear_forward_int8(dst, x, q, NULL, dst, M, ta->i8ws, ta->ws_bytes);
        return;
    }
    if (!ta->amp) {
        residual_init(be, ta, dst, res, b, lt, Bw, r, s, M, D);
        be->matmul(false, true, M, D, C, 1.0f, x, C, W, C, 1.0f, dst, D);
        return;
    }
    be->linear_forward(CM_MM_BF16, dst, x, W, NULL, M, C, D, ta->ws, ta->ws_bytes);
    float *tmp = ta->ws;   /* [M,D]: the workspace is free again once the product is done */
    residual_init(be, ta, tmp, res, b, lt, Bw, r, s, M, D);
    be->add(dst, dst, tmp, (size_t)M * D);
}

// ---------------------------------------------------------------------------------------------
// attention over the tower's rows: uniform [B,T] (vision, padded text) or packed sequences

static void attn_forward(const TowerSpec *s, const TowerActs *ta, BlockActs *a) {
    const CmBackend *be = ta->be;
    if (ta->packed) be->attention_forward_varlen(a->ao, a->att, a->qkv, ta->seq_off, ta->att_off, ta->B, s->D, s->NH, s->causal);
    else be->attention_forward(a->ao, a->att, a->qkv, ta->B, ta->T, s->D, s->NH, s->causal, NULL, ta->ws, ta->ws_bytes);
}
static void attn_backward(const TowerSpec *s, const TowerActs *ta, const BlockActs *a, float *dqkv, const float *dao) {
    const CmBackend *be = ta->be;
    if (ta->packed) be->attention_backward_varlen(dqkv, dao, a->qkv, a->att, ta->seq_off, ta->att_off, ta->B, s->D, s->NH, s->causal);
    else be->attention_backward(dqkv, dao, a->qkv, a->att, ta->B, ta->T, s->D, s->NH, s->causal, NULL, ta->ws, ta->ws_bytes);
}

// ---------------------------------------------------------------------------------------------
// one residual block

/* a->x_in must be set. out == NULL: stop after ln_2/c_fc/GELU (recompute for backward). */
static void block_forward(const CmModel *m, const TowerSpec *s, const TowerActs *ta, const CmBlockParams *k, BlockActs *a,
                          float *out) {
    int M = ta->M, D = s->D, H = s->H;
    const CmBackend *be = m->be;
    be->layernorm_forward(a->ln1, a->m1, a->r1, a->x_in, k->ln1_w.data, k->ln1_b.data, M, D);   // [M,D]
    LIN_F(m, ta, a->qkv, a->ln1, k->in_w, k->in_b.data, M, D, 3 * D);                      // [M,3D]
    attn_forward(s, ta, a);                                                                  // [M,D]
    // x_mid = x_in + (ao Wo^T + bo + (alpha/r) (ao A^T) B^T)
    if (s->r && k->lora_A.idx >= 0) be->lora_down(a->lt, a->ao, k->lora_A.data, M, D, s->r);     // [M,r]
    linear_residual(m, ta, a->x_mid, a->x_in, a->ao, k->out_w, k->out_b.data, s->r ? a->lt : NULL,
                    k->lora_B.data, s->r, s->lora_scale, M, D, D);
    be->layernorm_forward(a->ln2, a->m2, a->r2, a->x_mid, k->ln2_w.data, k->ln2_b.data, M, D);
    mlp_up(m, s, ta, a->fc, a->act, a->ln2, k->fc_w, k->fc_b.data, M, D, H);                 // [M,H]
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
    const CmBackend *be = m->be;
    be->layernorm_forward(a->ln1, a->m1, a->r1, a->x_in, k->ln1_w.data, k->ln1_b.data, M, D);
    LIN_F(m, ta, a->qkv, a->ln1, k->in_w, k->in_b.data, M, D, 3 * D);
    attn_forward(s, ta, a);
    /* B-row scratch (planned with the activations): aoP, xP, midP, ln2P [B,D]; fcP, actP [B,H]; lt [B,r] */
    float *aoP = ta->rows, *xP = aoP + (size_t)B * D, *midP = xP + (size_t)B * D, *ln2P = midP + (size_t)B * D;
    float *fcP = ln2P + (size_t)B * D, *actP = fcP + (size_t)B * H, *ltP = actP + (size_t)B * H;
    be->gather_rows(aoP, a->ao, pool_row, B, D);
    be->gather_rows(xP, a->x_in, pool_row, B, D);
    if (s->r) be->lora_down(ltP, aoP, k->lora_A.data, B, D, s->r);
    linear_residual(m, ta, midP, xP, aoP, k->out_w, k->out_b.data, s->r ? ltP : NULL, k->lora_B.data, s->r,
                    s->lora_scale, B, D, D);
    be->layernorm_forward(ln2P, a->m2, a->r2, midP, k->ln2_w.data, k->ln2_b.data, B, D);
    mlp_up(m, s, ta, fcP, actP, ln2P, k->fc_w, k->fc_b.data, B, D, H);
    linear_residual(m, ta, pooled, midP, actP, k->proj_w, k->proj_b.data, NULL, NULL, 0, 0.0f, B, H, D);
}

static bool tr(CmTensorRef r) { return cm_ref_trainable(r); }
static bool tr2(CmTensorRef w, CmTensorRef b) { return cm_ref_trainable(w) || cm_ref_trainable(b); }

static bool block_trainable(const CmBlockParams *k) { return cm_refs_trainable(k->all, CM_BLOCK_NREFS); }

/* On entry ta->dres = dL/d(block output) [M,D]; on exit (when need_dx) dL/d(block input). */
static void block_backward(CmModel *m, const TowerSpec *s, const CmBlockParams *k, BlockActs *a, TowerActs *ta,
                           bool need_dx) {
    size_t M = (size_t)ta->M, D = s->D, H = s->H;
    const CmBackend *be = m->be;
    float *dres = ta->dres;
    bool ln1_tr = tr2(k->ln1_w, k->ln1_b), qkv_tr = tr2(k->in_w, k->in_b);
    bool attn_tr = ln1_tr || qkv_tr || tr2(k->out_w, k->out_b) || tr2(k->lora_A, k->lora_B);
    bool need_attn = need_dx || attn_tr;
    bool ln2_tr = tr2(k->ln2_w, k->ln2_b);
    // --- MLP branch: y = x_mid + act @ Wp^T + bp
    bool need_dact = tr2(k->fc_w, k->fc_b) || ln2_tr || need_attn;
    if (need_dact) be->zero(ta->dact, M * H * sizeof(float));
    LIN_B(ta, need_dact ? ta->dact : NULL, k->proj_w.grad, k->proj_b.grad, dres, a->act,
                    k->proj_w.data, (int)M, (int)H, (int)D);
    if (need_dact) {
        be->zero(ta->dfc, M * H * sizeof(float));
        if (s->quick_gelu) be->quickgelu_backward(ta->dfc, a->fc, ta->dact, M * H);
        else be->gelu_backward(ta->dfc, a->fc, ta->dact, M * H);
        bool need_dln2 = ln2_tr || need_attn;
        if (need_dln2) be->zero(ta->dln, M * D * sizeof(float));
        LIN_B(ta, need_dln2 ? ta->dln : NULL, k->fc_w.grad, k->fc_b.grad, ta->dfc, a->ln2,
                        k->fc_w.data, (int)M, (int)D, (int)H);
        if (need_dln2)
            be->layernorm_backward(need_attn ? dres : NULL, k->ln2_w.grad, k->ln2_b.grad, ta->dln, a->x_mid,
                               k->ln2_w.data, a->m2, a->r2, (int)M, (int)D);
    }
    if (!need_attn) return;
    // --- attention branch: x_mid = x_in + ao Wo^T + bo + s (ao A^T) B^T ; dres = d x_mid
    bool need_dao = need_dx || ln1_tr || qkv_tr;
    if (need_dao) be->zero(ta->dao, M * D * sizeof(float));
    LIN_B(ta, need_dao ? ta->dao : NULL, k->out_w.grad, k->out_b.grad, dres, a->ao, k->out_w.data,
                    (int)M, (int)D, (int)D);
    if (s->r) {
        float *gA = k->lora_A.grad, *gB = k->lora_B.grad;
        const float *Aw = k->lora_A.data, *Bw = k->lora_B.data;
        int r = s->r;
        if (gB) {   // dB[D,r] += s * dres^T @ lt : through dBt[r,D] += s * lt^T dres, then its transpose
            float *dBt = ta->lora_dbt, *tmp = ta->lora_bt;   /* lora_bt is free until Bt below */
            be->zero(dBt, (size_t)r * D * sizeof(float));
            be->lora_tn(dBt, a->lt, dres, (int)M, (int)D, r, s->lora_scale);
            be->transpose_scaled(tmp, dBt, r, (int)D, 1.0f);
            be->add(gB, gB, tmp, D * (size_t)r);
        }
        if (gA || need_dao) {
            // dlt[M,r] = s * dres @ B  (row-wise dots with B's columns)
            float *Bt = ta->lora_bt;
            be->transpose_scaled(Bt, Bw, (int)D, r, 1.0f);
            be->lora_down(ta->dlt, dres, Bt, (int)M, (int)D, r);
            be->scale(ta->dlt, s->lora_scale, M * (size_t)r);
            if (gA) be->lora_tn(gA, ta->dlt, a->ao, (int)M, (int)D, r, 1.0f);          // dA[r,D] += dlt^T ao
            if (need_dao) be->lora_up_acc(ta->dao, ta->dlt, Aw, (int)M, (int)D, r);  // dao[M,D] += dlt @ A
        }
    }
    if (!need_dao) return;
    be->zero(ta->dqkv, 3 * M * D * sizeof(float));
    attn_backward(s, ta, a, ta->dqkv, ta->dao);
    bool need_dln1 = need_dx || ln1_tr;
    if (need_dln1) be->zero(ta->dln, M * D * sizeof(float));
    LIN_B(ta, need_dln1 ? ta->dln : NULL, k->in_w.grad, k->in_b.grad, ta->dqkv, a->ln1, k->in_w.data,
                    (int)M, (int)D, 3 * (int)D);
    if (need_dln1)
        be->layernorm_backward(need_dx ? dres : NULL, k->ln1_w.grad, k->ln1_b.grad, ta->dln, a->x_in, k->ln1_w.data,
                           a->m1, a->r1, (int)M, (int)D);
}

// ---------------------------------------------------------------------------------------------
// tower

void cm_tower_forward(const CmModel *m, const TowerSpec *s, TowerActs *ta, const float *images, const int32_t *ids, int B) {
    const CmBackend *be = m->be;
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
                be->copy(ta->ids + off, ids + (size_t)b * s->T, (size_t)L * sizeof(int32_t));
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
        be->im2patch(ta->patches, images, B, s->S, s->S, s->P);                                 // [B*NP,3PP]
        LIN_F(m, ta, ta->x_last, ta->patches, tp->conv, NULL, B * s->NP, PP3, (int)D);  // tmp [B*NP,D]
        be->cls_pos_forward(ta->x_pre, ta->x_last, tp->class_emb.data, tp->pos.data, B, s->NP, (int)D);
        for (int b = 0; b < B; b++) {   /* the class token is pooled */
            ta->pool[b] = 0;
            ta->pool_row[b] = b * s->T;
        }
        be->layernorm_forward(x0, ta->pre_m, ta->pre_r, ta->x_pre, tp->ln_pre_w.data, tp->ln_pre_b.data, (int)M, (int)D);
    } else if (ta->packed) {
        be->embedding_forward_rows(x0, ta->ids, ta->row_pos, tp->tok.data, tp->pos.data, (int)M, (int)D);
    } else {
        for (int b = 0; b < B; b++) be->copy(ta->ids + (size_t)b * T, ids + (size_t)b * s->T, (size_t)T * sizeof(int32_t));
        be->embedding_forward(x0, ta->ids, tp->tok.data, tp->pos.data, B, T, (int)D);
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
    be->gather_rows(ta->pooled, ta->x_last, ta->pool_row, B, (int)D);
pooled_done:;
    be->layernorm_forward(ta->pooled_ln, ta->post_m, ta->post_r, ta->pooled, tp->ln_post_w.data, tp->ln_post_b.data, B, (int)D);
    be->matmul(false, false, B, s->E, (int)D, 1.0f, ta->pooled_ln, (int)D, tp->proj.data, s->E, 0.0f, ta->raw, s->E);  // [B,E]
    be->l2norm_forward(ta->feat, ta->norm, ta->raw, B, s->E);
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
    const CmBackend *be = m->be;
    CM_ASSERT(ta->mode != TA_NONE);
    /* below[l]: something trainable under block l (stem or blocks < l) */
    bool below[257];
    below[0] = stem_trainable(tp);
    for (int l = 0; l < s->L; l++) below[l + 1] = below[l] || block_trainable(&tp->blocks[l]);
    CmTensorRef lw = tp->ln_post_w, lb = tp->ln_post_b, pj = tp->proj;
    // top: feat = raw/|raw|; raw = pooled_ln @ proj ; pooled_ln = LN(pooled)
    be->zero(ta->draw, (size_t)B * E * sizeof(float));
    be->l2norm_backward(ta->draw, dfeat, ta->feat, ta->norm, B, (int)E);
    if (pj.grad) be->matmul(true, false, (int)D, (int)E, B, 1.0f, ta->pooled_ln, (int)D, ta->draw, (int)E, 1.0f, pj.grad, (int)E);
    bool ln_tr = tr2(lw, lb);
    if (!below[s->L] && !ln_tr) return;
    float *dpln = ta->dln;   /* [B,D] scratch */
    be->matmul(false, true, B, (int)D, (int)E, 1.0f, ta->draw, (int)E, pj.data, (int)E, 0.0f, dpln, (int)D);
    be->zero(ta->dpooled, (size_t)B * D * sizeof(float));
    be->layernorm_backward(below[s->L] ? ta->dpooled : NULL, lw.grad, lb.grad, dpln, ta->pooled, lw.data,
                       ta->post_m, ta->post_r, B, (int)D);
    if (!below[s->L]) return;
    be->zero(ta->dres, M * D * sizeof(float));
    be->scatter_rows(ta->dres, ta->dpooled, ta->pool_row, B, (int)D);
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
        if (emb_tr) be->zero(dx_pre, M * D * sizeof(float));
        be->layernorm_backward(emb_tr ? dx_pre : NULL, tp->ln_pre_w.grad, tp->ln_pre_b.grad, ta->dres, ta->x_pre,
                           tp->ln_pre_w.data, ta->pre_m, ta->pre_r, (int)M, (int)D);
        if (!emb_tr) return;
        be->cls_pos_backward(tp->class_emb.grad, tp->pos.grad, tp->conv.grad ? ta->dpatch : NULL, dx_pre, B, s->NP, (int)D);
        if (tp->conv.grad) {
            int PP3 = 3 * s->P * s->P;
            // dconv[D,3PP] += dpatch^T [D,B*NP] @ patches [B*NP,3PP]
            be->matmul(true, false, (int)D, PP3, B * s->NP, 1.0f, ta->dpatch, (int)D, ta->patches, PP3, 1.0f, tp->conv.grad, PP3);
        }
    } else {
        if (ta->packed) be->embedding_backward_rows(tp->tok.grad, tp->pos.grad, ta->dres, ta->ids, ta->row_pos, (int)M, (int)D);
        else be->embedding_backward(tp->tok.grad, tp->pos.grad, ta->dres, ta->ids, B, ta->T, (int)D);
    }
}
