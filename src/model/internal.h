/*
 * internal.h — model internals shared by tower.c, head.c, forward.c: activation layouts of a
 * tower and of the head, and the tower/head forward and backward entry points.
 */
#ifndef CM_MODEL_INTERNAL_H
#define CM_MODEL_INTERNAL_H

#include "model/model.h"
#include "kernels/ops.h"

/* One residual block's saved activations (M = B*T rows). */
typedef struct {
    float *x_in;              /* [M,D] block input */
    float *ln1, *m1, *r1;     /* [M,D], [M], [M] */
    float *qkv;               /* [M,3D] */
    float *att;               /* [B,NH,T,T] softmax probabilities */
    float *ao;                /* [M,D] attention output before out_proj */
    float *lt;                /* [M,r] ao @ A^T (LoRA) */
    float *x_mid;             /* [M,D] x_in + out_proj(...) */
    float *ln2, *m2, *r2;     /* [M,D], [M], [M] */
    float *fc;                /* [M,H] c_fc output (pre-activation) */
    float *act;               /* [M,H] GELU(fc) */
} BlockActs;

typedef enum { TA_NONE = 0, TA_SAVE, TA_CKPT } TaMode;

/* Static description of a tower. */
typedef struct {
    bool vision;
    int L, D, H, NH, T, E, r;       /* layers, width, MLP width, heads, tokens, embed dim, LoRA rank */
    float lora_scale;
    bool causal, quick_gelu;
    int P, S, NP;                   /* vision: patch size, image size, patches */
    bool keep_all_tokens;           /* text: run all context_length tokens (traces); default: up to the last pooled one */
    bool text_padded;               /* text: [B, max length] padded rows instead of packed sequences (comparisons) */
    bool int8;                      /* the model has int8 weights (inference towers use them) */
    bool amp;                       /* bf16 products in the linears (cm_model_set_amp when planned) */
    const struct CmBackend *be;     /* the model's backend */
    const CmTowerParams *tp;       /* the tower's parameters (m->visual or m->text) */
} TowerSpec;

typedef struct {
    TaMode mode;
    int maxB, B;
    int T;                    /* tokens of the last forward (text: max pooled index + 1) */
    int M;                    /* rows of the last forward: B*T, or the packed total sum_b L_b */
    bool packed;              /* text rows packed: sequence b = rows [seq_off[b], seq_off[b+1]) */
    int *seq_off;             /* [maxB+1] packed row offsets */
    int64_t *att_off;         /* [maxB+1] packed offsets into BlockActs.att (NH * sum L^2) */
    int32_t *row_pos;         /* [maxB*T] packed: position of each row within its sequence */
    int *pool_row;            /* [B] row of the pooled token in the [M,D] buffers */
    void *i8ws;               /* int8 linear workspace (TA_NONE with int8 weights; == ws) */
    void *ws;                 /* the kernels' workspace (int8 / bf16 linears, attention backward) */
    size_t ws_bytes;          /* its size (the backend's plan_* calls) */
    bool amp;                 /* planned for bf16 linears (TowerSpec.amp at planning time) */
    const struct CmBackend *be;   /* the backend that owns mem and ws */
    float *mem;
    BlockActs *blk;           /* L (SAVE) or 1 scratch (NONE, CKPT) */
    float **xin;              /* L block-input pointers */
    float *x_last;            /* [M,D] output of the last block */
    float *patches, *x_pre, *pre_m, *pre_r;   /* vision stem: [B*NP,3PP], [M,D], [M], [M] */
    int32_t *ids;             /* text: [B*T] */
    int *pool;                /* [B] pooled token index (vision 0; text argmax) */
    float *pooled, *pooled_ln, *post_m, *post_r;  /* [B,D], [B,D], [B], [B] */
    float *raw, *feat, *norm; /* [B,E], [B,E], [B] */
    /* scratch planned with the activations, so that a forward allocates nothing */
    float *lora_bt;           /* [r,D] LoRA B^T (scaled in forward) */
    float *rows;              /* TA_NONE: [B, 4D + 2H + max(r,1)] rows of the pooled last block */
    /* backward scratch (SAVE / CKPT) */
    float *dres, *dact, *dfc, *dln, *dao, *dlt, *dqkv, *dpooled, *draw, *dpatch;
    float *lora_dbt;          /* [r,D] LoRA dB^T */
} TowerActs;

/* Every id of tokens [B,ctx] in [0, vocab_size), else CM_ERR_ARG naming the sample and position. */
cm_status cm_check_tokens(const CmModel *m, const int32_t *tokens, int B);

void cm_tower_spec(const CmModel *m, bool vision, TowerSpec *s);
cm_status cm_tower_acts_alloc(TowerActs *ta, const TowerSpec *s, int maxB, TaMode mode);
void cm_tower_acts_free(TowerActs *ta);
/* Forward of the whole tower into ta (images [B,3,S,S] or ids [B,T]); fills ta->raw, ta->feat. */
void cm_tower_forward(const CmModel *m, const TowerSpec *s, TowerActs *ta, const float *images, const int32_t *ids, int B);
/* Backward from dfeat [B,E] (gradient w.r.t. the normalised feature). */
void cm_tower_backward(CmModel *m, const TowerSpec *s, TowerActs *ta, const float *dfeat);
bool cm_tower_has_trainable(const CmModel *m, const TowerSpec *s);

/* Head activations for B samples (2 tokens each). */
typedef struct {
    float *x_in, *qkv, *att, *attd, *attmask, *ao, *sa, *samask, *x1pre, *x1, *n1m, *n1r;
    float *h, *hr, *hrd, *hmask, *ff, *ffmask, *x2pre, *x2, *n2m, *n2r;
} HeadLayerActs;
typedef struct {
    int maxB, B;
    bool dropout_on;
    float *mem;
    HeadLayerActs *lay;
    float *x0;                /* [B,2,d] input sequence [u, v] */
    float *e, *c0, *g, *gd, *gmask, *logits;     /* [B,d] x4, [B,d], [B,K] */
    /* backward scratch */
    float *dx, *dtmp, *dqkv, *dff, *dh, *datt, *de, *dg, *dc0;
    float *att_ws;            /* attention workspace (dA of the backward, oneDNN scratchpads) */
    size_t att_ws_bytes;      /* its size (the backend's plan_attention) */
    int *tok_row;             /* [2*maxB]: rows 2b (u_b) for b < maxB, then rows 2b+1 (v_b) */
} HeadActs;

cm_status cm_head_acts_alloc(HeadActs *ha, const CmModel *m, int maxB);
void cm_head_acts_free(HeadActs *ha);
/* logits [B,K] from U, V [B,E]; dk == NULL: eval (no dropout). */
void cm_head_net_forward(const CmModel *m, HeadActs *ha, const float *U, const float *V, int B, const CmDropoutKey *dk,
                         float *logits);
/* dU, dV [B,E] += gradient from dlogits [B,K]; dU/dV may be NULL (towers frozen). */
void cm_head_net_backward(CmModel *m, HeadActs *ha, const float *dlogits, float *dU, float *dV);
bool cm_head_has_trainable(const CmModel *m);

/* bump allocation over one float block: pass base NULL to count */
typedef struct { float *base; size_t off; } Bump;
static inline float *bump(Bump *b, size_t n) {
    float *p = b->base ? b->base + b->off : NULL;
    b->off += (n + 15) & ~(size_t)15;
    return p;
}

#endif
