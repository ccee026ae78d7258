/*
 * model.c — the CmModel object: parameter arena built from the parameter table, the named refs
 * (CmTowerParams, CmBlockParams, CmHeadParams),
 * training modes (which tensors are trainable, gradient allocation), initialisation from scratch
 * (OpenCLIP / torch default inits, OpenCLIP v2.30 model.py / transformer.py and the seed project's code) and the golden/full/WEIGHTS.md formula.
 */
#include "model/model.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cm_model_find(const CmModel *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

/* The ref of the tensor called name (absent: idx -1, NULL pointers). */
static CmTensorRef ref(const CmModel *m, const char *name) {
    int i = cm_model_find(m, name);
    return (CmTensorRef){i >= 0 ? m->params[i].data : NULL, i >= 0 ? m->params[i].grad : NULL, i};
}
static CmTensorRef reff(const CmModel *m, const char *fmt, const char *prefix, int l) {
    char nm[128];
    snprintf(nm, sizeof nm, fmt, prefix, l);
    return ref(m, nm);
}

static void block_refs(const CmModel *m, CmBlockParams *b, const char *prefix, int l) {
    b->ln1_w = reff(m, "%stransformer.resblocks.%d.ln_1.weight", prefix, l);
    b->ln1_b = reff(m, "%stransformer.resblocks.%d.ln_1.bias", prefix, l);
    b->in_w = reff(m, "%stransformer.resblocks.%d.attn.in_proj_weight", prefix, l);
    b->in_b = reff(m, "%stransformer.resblocks.%d.attn.in_proj_bias", prefix, l);
    b->out_w = reff(m, "%stransformer.resblocks.%d.attn.out_proj.weight", prefix, l);
    b->out_b = reff(m, "%stransformer.resblocks.%d.attn.out_proj.bias", prefix, l);
    b->lora_A = reff(m, "%stransformer.resblocks.%d.attn.out_proj.lora_A.weight", prefix, l);
    b->lora_B = reff(m, "%stransformer.resblocks.%d.attn.out_proj.lora_B.weight", prefix, l);
    b->ln2_w = reff(m, "%stransformer.resblocks.%d.ln_2.weight", prefix, l);
    b->ln2_b = reff(m, "%stransformer.resblocks.%d.ln_2.bias", prefix, l);
    b->fc_w = reff(m, "%stransformer.resblocks.%d.mlp.c_fc.weight", prefix, l);
    b->fc_b = reff(m, "%stransformer.resblocks.%d.mlp.c_fc.bias", prefix, l);
    b->proj_w = reff(m, "%stransformer.resblocks.%d.mlp.c_proj.weight", prefix, l);
    b->proj_b = reff(m, "%stransformer.resblocks.%d.mlp.c_proj.bias", prefix, l);
}

static void head_layer_refs(const CmModel *m, CmHeadLayerParams *h, int l) {
    const char *p = "classifier_head.transformer.layers.";
    h->in_w = reff(m, "%s%d.self_attn.in_proj_weight", p, l);
    h->in_b = reff(m, "%s%d.self_attn.in_proj_bias", p, l);
    h->out_w = reff(m, "%s%d.self_attn.out_proj.weight", p, l);
    h->out_b = reff(m, "%s%d.self_attn.out_proj.bias", p, l);
    h->l1_w = reff(m, "%s%d.linear1.weight", p, l);
    h->l1_b = reff(m, "%s%d.linear1.bias", p, l);
    h->l2_w = reff(m, "%s%d.linear2.weight", p, l);
    h->l2_b = reff(m, "%s%d.linear2.bias", p, l);
    h->n1_w = reff(m, "%s%d.norm1.weight", p, l);
    h->n1_b = reff(m, "%s%d.norm1.bias", p, l);
    h->n2_w = reff(m, "%s%d.norm2.weight", p, l);
    h->n2_b = reff(m, "%s%d.norm2.bias", p, l);
}

/* Name every parameter of the model (m->params laid out); allocates the block / layer arrays. */
static cm_status build_refs(CmModel *m) {
    const CmModelConfig *cfg = &m->cfg;
    CmTowerParams *v = &m->visual, *t = &m->text;
    m->logit_scale = ref(m, "logit_scale");
    for (int i = 0; i < CM_STEM_NREFS; i++) v->stem[i] = t->stem[i] = (CmTensorRef){NULL, NULL, -1};
    v->class_emb = ref(m, "visual.class_embedding");
    v->pos = ref(m, "visual.positional_embedding");
    v->conv = ref(m, "visual.conv1.weight");
    v->ln_pre_w = ref(m, "visual.ln_pre.weight");
    v->ln_pre_b = ref(m, "visual.ln_pre.bias");
    v->ln_post_w = ref(m, "visual.ln_post.weight");
    v->ln_post_b = ref(m, "visual.ln_post.bias");
    v->proj = ref(m, "visual.proj");
    t->tok = ref(m, "token_embedding.weight");
    t->pos = ref(m, "positional_embedding");
    t->ln_post_w = ref(m, "ln_final.weight");
    t->ln_post_b = ref(m, "ln_final.bias");
    t->proj = ref(m, "text_projection");
    size_t nv = cfg->vision.layers > 0 ? (size_t)cfg->vision.layers : 1, nt = cfg->text.layers > 0 ? (size_t)cfg->text.layers : 1;
    size_t nh = cfg->head.layers > 0 ? (size_t)cfg->head.layers : 1;
    v->blocks = cm_calloc(nv, sizeof(CmBlockParams), "vision block parameters");
    t->blocks = cm_calloc(nt, sizeof(CmBlockParams), "text block parameters");
    m->head.layers = cm_calloc(nh, sizeof(CmHeadLayerParams), "head parameters");
    if (!v->blocks || !t->blocks || !m->head.layers) return CM_ERR_OOM;
    v->n_blocks = cfg->vision.layers;
    t->n_blocks = cfg->text.layers;
    for (int l = 0; l < v->n_blocks; l++) block_refs(m, &v->blocks[l], "visual.", l);
    for (int l = 0; l < t->n_blocks; l++) block_refs(m, &t->blocks[l], "", l);
    m->head.n_layers = cfg->has_head ? cfg->head.layers : 0;
    for (int l = 0; l < m->head.n_layers; l++) head_layer_refs(m, &m->head.layers[l], l);
    for (int i = 0; i < CM_HEAD_CLS_NREFS; i++) m->head.cls[i] = (CmTensorRef){NULL, NULL, -1};
    if (cfg->has_head) {
        m->head.c0_w = ref(m, "classifier_head.classifier.0.weight");
        m->head.c0_b = ref(m, "classifier_head.classifier.0.bias");
        m->head.c3_w = ref(m, "classifier_head.classifier.3.weight");
        m->head.c3_b = ref(m, "classifier_head.classifier.3.bias");
    }
    return CM_OK;
}

static void sync_ref(const CmModel *m, CmTensorRef *r) {
    r->grad = r->idx >= 0 ? m->params[r->idx].grad : NULL;
}
/* After the gradients moved (cm_model_set_mode): every ref's grad = its table entry's. */
static void sync_grads(CmModel *m) {
    sync_ref(m, &m->logit_scale);
    CmTowerParams *tw[2] = {&m->visual, &m->text};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < CM_STEM_NREFS; i++) sync_ref(m, &tw[k]->stem[i]);
        for (int l = 0; l < tw[k]->n_blocks; l++)
            for (int i = 0; i < CM_BLOCK_NREFS; i++) sync_ref(m, &tw[k]->blocks[l].all[i]);
        for (int i = 0; i < CM_TOP_NREFS; i++) sync_ref(m, &tw[k]->top[i]);
    }
    for (int l = 0; l < m->head.n_layers; l++)
        for (int i = 0; i < CM_HEAD_LAYER_NREFS; i++) sync_ref(m, &m->head.layers[l].all[i]);
    for (int i = 0; i < CM_HEAD_CLS_NREFS; i++) sync_ref(m, &m->head.cls[i]);
}

cm_status cm_model_create(const CmModelConfig *cfg, CmModel **out) {
    *out = NULL;
    CmModel *m = cm_calloc(1, sizeof *m, "model");
    if (!m) return CM_ERR_OOM;
    m->cfg = *cfg;
    m->be = cm_backend_cpu();
    cm_status st = cm_param_table(cfg, &m->params, &m->n_params);
    if (st) { cm_free(m); return st; }
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) total += (m->params[i].numel + 15) & ~(size_t)15;  /* 64-byte aligned */
    m->n_floats = total;
    m->arena = cm_calloc(total ? total : 1, sizeof(float), "model parameters");
    if (!m->arena) { cm_model_free(m); return CM_ERR_OOM; }
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        m->params[i].data = m->arena + off;
        off += (m->params[i].numel + 15) & ~(size_t)15;
    }
    if (build_refs(m)) { cm_model_free(m); return CM_ERR_OOM; }
    m->logit_scale.data[0] = (float)log(1.0 / 0.07);
    m->mode = CM_TRAIN_NONE;
    *out = m;
    return CM_OK;
}

void cm_model_free(CmModel *m) {
    if (!m) return;
    cm_model_set_int8(m, false);
    cm_free(m->params);
    cm_free(m->arena);
    cm_free(m->grad_arena);
    cm_free(m->visual.blocks);
    cm_free(m->text.blocks);
    cm_free(m->head.layers);
    cm_free(m);
}

// ---------------------------------------------------------------------------------------------
// modes

static bool is_trainable(const CmModel *m, const CmParam *p) {
    bool tower_locked = (p->group == CM_GROUP_VISION && m->lock_image) || (p->group == CM_GROUP_TEXT && m->lock_text);
    bool lora_locked = p->group == CM_GROUP_LORA &&
                       ((m->lock_image && !strncmp(p->name, "visual.", 7)) || (m->lock_text && strncmp(p->name, "visual.", 7)));
    switch (m->mode) {
    case CM_TRAIN_NONE: return false;
    case CM_TRAIN_LORA: return (p->group == CM_GROUP_LORA && !lora_locked) || p->group == CM_GROUP_HEAD;
    case CM_TRAIN_HEAD: return p->group == CM_GROUP_HEAD;
    case CM_TRAIN_FULL: return !tower_locked && !lora_locked;
    }
    return false;
}

cm_status cm_model_set_mode(CmModel *m, CmTrainMode mode, bool lock_image, bool lock_text) {
    m->mode = mode;
    m->lock_image = lock_image;
    m->lock_text = lock_text;
    cm_free(m->grad_arena);
    m->grad_arena = NULL;
    m->n_grad_floats = 0;
    size_t total = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        p->trainable = is_trainable(m, p);
        p->grad = NULL;
        if (p->trainable) total += (p->numel + 15) & ~(size_t)15;
    }
    if (!total) { sync_grads(m); return CM_OK; }
    m->grad_arena = cm_calloc(total, sizeof(float), "parameter gradients");
    if (!m->grad_arena) {
        for (int i = 0; i < m->n_params; i++) m->params[i].trainable = false;
        m->mode = CM_TRAIN_NONE;
        sync_grads(m);
        return CM_ERR_OOM;
    }
    m->n_grad_floats = total;
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        if (!p->trainable) continue;
        p->grad = m->grad_arena + off;
        off += (p->numel + 15) & ~(size_t)15;
    }
    sync_grads(m);
    return CM_OK;
}

void cm_model_zero_grad(CmModel *m) {
    if (m->grad_arena) memset(m->grad_arena, 0, m->n_grad_floats * sizeof(float));
}

int64_t cm_model_trainable_count(const CmModel *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].trainable) n += (int64_t)m->params[i].numel;
    return n;
}

// ---------------------------------------------------------------------------------------------
// LoRA merge

cm_status cm_model_merge_lora(const CmModel *m, CmModel **out) {
    *out = NULL;
    CmModelConfig c = m->cfg;
    c.has_lora = false;
    CmModel *o = NULL;
    cm_status st = cm_model_create(&c, &o);
    if (st) return st;
    for (int i = 0; i < o->n_params; i++) {
        int k = cm_model_find(m, o->params[i].name);
        CM_ASSERT(k >= 0 && m->params[k].numel == o->params[i].numel);
        memcpy(o->params[i].data, m->params[k].data, o->params[i].numel * sizeof(float));
    }
    if (!m->cfg.has_lora) { *out = o; return CM_OK; }
    float s = m->cfg.lora_alpha / (float)m->cfg.lora_rank;
    int r = m->cfg.lora_rank;
    for (int tower = 0; tower < 2; tower++) {
        const CmTowerParams *tp = tower ? &m->text : &m->visual, *otp = tower ? &o->text : &o->visual;
        for (int l = 0; l < tp->n_blocks; l++) {
            const float *A = tp->blocks[l].lora_A.data, *Bw = tp->blocks[l].lora_B.data;
            float *W = otp->blocks[l].out_w.data;
            int D = (int)o->params[otp->blocks[l].out_w.idx].shape[0];
            /* W[D,D] += s * B[D,r] @ A[r,D], summed in double */
            for (int i = 0; i < D; i++)
                for (int j = 0; j < D; j++) {
                    double acc = 0;
                    for (int q = 0; q < r; q++) acc += (double)Bw[(size_t)i * r + q] * A[(size_t)q * D + j];
                    W[(size_t)i * D + j] += (float)(s * acc);
                }
        }
    }
    *out = o;
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// initialisation from scratch

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}
static void fill_uniform(CmRng *r, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * cm_rng_uniform_d(r));
}
static void fill_normal(CmRng *r, float *x, size_t n, double std) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * cm_rng_normal(r));
}
static void fill_const(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* One tensor, by name and group (torch / OpenCLIP defaults). */
static void init_param(const CmModel *m, CmParam *p, CmRng *r) {
    const CmModelConfig *c = &m->cfg;
    const char *n = p->name;
    size_t k = p->numel;
    double fan_in = p->ndim >= 2 ? (double)p->numel / (double)p->shape[0] : (double)(p->ndim ? p->shape[0] : 1);
    if (!strcmp(n, "logit_scale")) { p->data[0] = (float)log(1.0 / 0.07); return; }
    if (p->group == CM_GROUP_LORA) {
        if (ends_with(n, "lora_A.weight")) { double b = 1.0 / sqrt((double)p->shape[1]); fill_uniform(r, p->data, k, -b, b); }
        else fill_const(p->data, k, 0.0f);
        return;
    }
    /* LayerNorms (tower ln_*, head norm*) */
    if (ends_with(n, "ln_1.weight") || ends_with(n, "ln_2.weight") || ends_with(n, "ln_pre.weight") ||
        ends_with(n, "ln_post.weight") || ends_with(n, "ln_final.weight") || strstr(n, ".norm1.weight") ||
        strstr(n, ".norm2.weight")) { fill_const(p->data, k, 1.0f); return; }
    if (strstr(n, "ln_") && ends_with(n, ".bias")) { fill_const(p->data, k, 0.0f); return; }
    if (strstr(n, ".norm1.bias") || strstr(n, ".norm2.bias")) { fill_const(p->data, k, 0.0f); return; }
    /* MHA (towers and head): in_proj xavier_uniform, biases zero, out_proj kaiming-uniform */
    if (ends_with(n, "in_proj_bias") || ends_with(n, "attn.out_proj.bias")) { fill_const(p->data, k, 0.0f); return; }
    bool text = p->group == CM_GROUP_TEXT;
    int TW = c->text.width, TL = c->text.layers;
    double attn_std = pow(TW, -0.5), proj_std = pow(TW, -0.5) * pow(2.0 * TL, -0.5), fc_std = pow(2.0 * TW, -0.5);
    if (ends_with(n, "in_proj_weight")) {
        if (text) { fill_normal(r, p->data, k, attn_std); return; }
        double b = sqrt(6.0 / (double)(p->shape[0] + p->shape[1]));
        fill_uniform(r, p->data, k, -b, b);
        return;
    }
    if (text && (ends_with(n, "attn.out_proj.weight") || ends_with(n, "mlp.c_proj.weight"))) { fill_normal(r, p->data, k, proj_std); return; }
    if (text && ends_with(n, "mlp.c_fc.weight")) { fill_normal(r, p->data, k, fc_std); return; }
    if (!strcmp(n, "token_embedding.weight")) { fill_normal(r, p->data, k, 0.02); return; }
    if (!strcmp(n, "positional_embedding")) { fill_normal(r, p->data, k, 0.01); return; }
    if (!strcmp(n, "text_projection")) { fill_normal(r, p->data, k, attn_std); return; }
    if (!strcmp(n, "visual.class_embedding") || !strcmp(n, "visual.positional_embedding") || !strcmp(n, "visual.proj")) {
        fill_normal(r, p->data, k, pow(c->vision.width, -0.5));
        return;
    }
    /* torch nn.Linear / Conv2d default: kaiming_uniform(a=sqrt 5) = U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in)) */
    if (ends_with(n, ".bias")) {
        /* fan_in of the matching weight = that weight's shape[1] */
        char wn[128];
        snprintf(wn, sizeof wn, "%.*sweight", (int)(strlen(n) - 4), n);
        int wi = cm_model_find(m, wn);
        double fi = wi >= 0 && m->params[wi].ndim >= 2 ? (double)m->params[wi].numel / (double)m->params[wi].shape[0] : fan_in;
        double b = 1.0 / sqrt(fi);
        fill_uniform(r, p->data, k, -b, b);
        return;
    }
    double b = 1.0 / sqrt(fan_in);
    fill_uniform(r, p->data, k, -b, b);
}

void cm_model_init(CmModel *m, uint64_t seed) {
    for (int i = 0; i < m->n_params; i++) {
        CmRng r;
        cm_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)));
        init_param(m, &m->params[i], &r);
    }
}

void cm_model_init_lora_head(CmModel *m, uint64_t seed) {
    for (int i = 0; i < m->n_params; i++) {
        if (m->params[i].group != CM_GROUP_LORA && m->params[i].group != CM_GROUP_HEAD) continue;
        CmRng r;
        cm_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)));
        init_param(m, &m->params[i], &r);
    }
}

// ---------------------------------------------------------------------------------------------
// golden/full/WEIGHTS.md formula (bit-exact; keep the two roundings separate: no FMA)

static uint64_t f_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t f_fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 0x100000001B3ull; }
    return h;
}

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
void cm_formula_fill(const char *name, int ndim, const int64_t *shape, uint64_t seed, float *out) {
    size_t N = 1;
    for (int i = 0; i < ndim; i++) N *= (size_t)shape[i];
    if (!strcmp(name, "logit_scale")) { for (size_t i = 0; i < N; i++) out[i] = (float)log(1.0 / 0.07); return; }
    double center = 0.0, scale;
    if (ends_with(name, "ln_1.weight") || ends_with(name, "ln_2.weight") || ends_with(name, "ln_pre.weight") ||
        ends_with(name, "ln_post.weight") || ends_with(name, "ln_final.weight")) { center = 1.0; scale = 0.1; }
    else if (ends_with(name, "bias")) scale = 0.02;
    else if (!strcmp(name, "token_embedding.weight")) scale = 0.02 * sqrt(3.0);
    else if (!strcmp(name, "positional_embedding")) scale = 0.01 * sqrt(3.0);
    else if (!strcmp(name, "visual.class_embedding") || !strcmp(name, "visual.positional_embedding"))
        scale = sqrt(3.0) / sqrt((double)shape[ndim - 1]);   /* the vision width: 768 for ViT-B-32 */
    else if (!strcmp(name, "visual.proj") || !strcmp(name, "text_projection")) scale = sqrt(3.0) / sqrt((double)shape[0]);
    else if (!strcmp(name, "visual.conv1.weight")) scale = sqrt(3.0) / sqrt((double)(shape[1] * shape[2] * shape[3]));
    else scale = sqrt(3.0) / sqrt((double)(ndim >= 2 ? shape[1] : (ndim == 1 ? shape[0] : 1)));
    uint64_t base = f_fnv1a64(name) ^ (seed * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < N; i++) {
        uint64_t r = f_splitmix64(base + i);
        double u = (double)(r >> 40) / 16777216.0 * 2.0 - 1.0;
        volatile double v = scale * u;
        double w = v;
        if (center != 0.0) w = center + w;
        out[i] = (float)w;
    }
}
#pragma GCC pop_options

void cm_model_init_formula(CmModel *m, uint64_t seed) {
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        cm_formula_fill(p->name, p->ndim, p->shape, seed, p->data);
    }
}

// ---------------------------------------------------------------------------------------------
// int8 inference weights

static cm_status quantise(CmModel *m, CmTensorRef w) {
    if (w.idx < 0) return CM_OK;
    CmParam *p = &m->params[w.idx];
    int OC = (int)p->shape[0];
    int C = (int)(p->numel / (size_t)OC);   /* conv1 [D,3,P,P] is the linear [D, 3PP] */
    void *mem = cm_malloc(cm_int8_weights_bytes(OC, C), "int8 weights");
    if (!mem) return cm_error(CM_ERR_OOM, "int8: %s: %s", p->name, cm_last_error());
    cm_status st = cm_int8_weights_init(&m->q8[w.idx], p->data, OC, C, mem);
    if (st) { cm_free(mem); return cm_error(st, "int8: %s: %s", p->name, cm_last_error()); }
    return CM_OK;
}

cm_status cm_model_set_int8(CmModel *m, bool on) {
    if (m->q8) {
        for (int i = 0; i < m->n_params; i++) cm_free(m->q8[i].w);   /* the block given to cm_int8_weights_init */
        cm_free(m->q8);
        m->q8 = NULL;
    }
    if (!on) return CM_OK;
    m->q8 = cm_calloc((size_t)m->n_params, sizeof(CmInt8Weights), "int8 weights");
    if (!m->q8) return CM_ERR_OOM;
    cm_status st = quantise(m, m->visual.conv);
    for (int tower = 0; tower < 2 && !st; tower++) {
        const CmBlockParams *blk = tower ? m->text.blocks : m->visual.blocks;
        int L = tower ? m->text.n_blocks : m->visual.n_blocks;
        for (int l = 0; l < L && !st; l++)
            if (!(st = quantise(m, blk[l].in_w)) && !(st = quantise(m, blk[l].out_w)) && !(st = quantise(m, blk[l].fc_w)))
                st = quantise(m, blk[l].proj_w);
    }
    if (st) cm_model_set_int8(m, false);
    return st;
}
