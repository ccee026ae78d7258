/*
 * config.c — model configurations: the named OpenCLIP ViT configs, OpenCLIP-style JSON configs
 * (plain model config or the open_clip_config.json / golden layout with "model_cfg"), validation,
 * the parameter table (OpenCLIP state-dict names, shapes and order) and the DESIGN §1.4 counts.
 */
#include "model/model.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

// ---------------------------------------------------------------------------------------------
// defaults and named configs

static void set_defaults(CmModelConfig *c) {
    memset(c, 0, sizeof *c);
    c->embed_dim = 512;
    c->vision = (CmVisionConfig){.image_size = 224, .patch_size = 16, .width = 768, .layers = 12,
                                 .head_width = 64, .heads = 12, .mlp_ratio = 4.0f};
    c->text = (CmTextConfig){.context_length = 77, .vocab_size = 49408, .width = 512, .heads = 8,
                             .layers = 12, .mlp_ratio = 4.0f};
    c->has_lora = true;
    c->lora_rank = 4;
    c->lora_alpha = 32.0f;
    c->has_head = true;
}

static void finish_head(CmModelConfig *c) {
    if (c->head.d == 0) c->head.d = c->embed_dim;
    if (c->head.heads == 0) c->head.heads = 4;
    if (c->head.ff == 0) {   /* d may be any |d| <= 1e9 here (validate refuses it): no int overflow (fuzz_config_json) */
        long long ff = 4LL * c->head.d;
        c->head.ff = ff > INT_MAX ? INT_MAX : ff < INT_MIN ? INT_MIN : (int)ff;
    }
    if (c->head.layers == 0) c->head.layers = 2;
    if (c->head.n_classes == 0) c->head.n_classes = 7;
}

cm_status cm_config_from_name(const char *name, CmModelConfig *cfg) {
    static const char *known = "ViT-B-32, ViT-B-16, ViT-L-14 (each also with -quickgelu)";
    if (!name) return cm_error(CM_ERR_ARG, "model name missing (known: %s)", known);
    CmModelConfig c;
    set_defaults(&c);
    char base[64];
    size_t n = strlen(name);
    if (n >= sizeof base) return cm_error(CM_ERR_ARG, "unknown model name '%.80s' (known: %s)", name, known);
    memcpy(base, name, n + 1);
    const char *suffix = "-quickgelu";
    size_t sl = strlen(suffix);
    if (n > sl && !strcmp(base + n - sl, suffix)) { c.quick_gelu = true; base[n - sl] = 0; }
    if (!strcmp(base, "ViT-B-32")) {
        c.vision.patch_size = 32;
    } else if (!strcmp(base, "ViT-B-16")) {
        c.vision.patch_size = 16;
    } else if (!strcmp(base, "ViT-L-14")) {
        c.embed_dim = 768;
        c.vision = (CmVisionConfig){.image_size = 224, .patch_size = 14, .width = 1024, .layers = 24,
                                    .head_width = 64, .heads = 16, .mlp_ratio = 4.0f};
        c.text.width = 768;
        c.text.heads = 12;
    } else {
        return cm_error(CM_ERR_ARG, "unknown model name '%s' (known: %s; or pass a JSON config file)", name, known);
    }
    snprintf(c.name, sizeof c.name, "%s", name);
    c.head.dropout = 0.1f;
    c.head.cls_dropout = 0.2f;
    finish_head(&c);
    *cfg = c;
    return cm_config_validate(cfg);
}

// ---------------------------------------------------------------------------------------------
// JSON

/* Read an integer field if present; refuse non-integers. */
static cm_status jint(const cJSON *o, const char *key, int *dst, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return CM_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return cm_error(CM_ERR_FORMAT, "%s: \"%s\" must be an integer", what, key);
    *dst = (int)v->valuedouble;
    return CM_OK;
}
static cm_status jfloat(const cJSON *o, const char *key, float *dst, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return CM_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return cm_error(CM_ERR_FORMAT, "%s: \"%s\" must be a number", what, key);
    *dst = (float)v->valuedouble;
    return CM_OK;
}
static cm_status jbool(const cJSON *o, const char *key, bool *dst, const char *what) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return CM_OK;
    if (!cJSON_IsBool(v)) return cm_error(CM_ERR_FORMAT, "%s: \"%s\" must be true or false", what, key);
    *dst = cJSON_IsTrue(v);
    return CM_OK;
}
/* Options whose non-default values change the architecture: refuse them rather than ignore. */
static cm_status refuse_nondefault(const cJSON *o, const char *sect, const char *what) {
    static const struct { const char *key; int kind; const char *def; } opts[] = {
        /* kind 0: must be absent/null/false/0; kind 1: string must equal def */
        {"timm_model_name", 0, NULL}, {"hf_model_name", 0, NULL}, {"ls_init_value", 0, NULL},
        {"patch_dropout", 0, NULL}, {"attentional_pool", 0, NULL}, {"no_ln_pre", 0, NULL},
        {"final_ln_after_pool", 0, NULL}, {"embed_cls", 0, NULL}, {"no_causal_mask", 0, NULL},
        {"proj_bias", 0, NULL}, {"input_patchnorm", 0, NULL}, {"output_tokens", 0, NULL},
        {"pos_embed_type", 1, "learnable"}, {"act_kwargs", 0, NULL}, {"norm_kwargs", 0, NULL},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, opts[i].key);
        if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) continue;
        if (opts[i].kind == 1 && cJSON_IsString(v) && !strcmp(v->valuestring, opts[i].def)) continue;
        if (cJSON_IsNumber(v) && v->valuedouble == 0) continue;
        if (cJSON_IsObject(v) && !v->child) continue;
        return cm_error(CM_ERR_UNSUPPORTED, "%s: %s.%s is not supported by clipmod (only plain ViT towers)",
                        what, sect, opts[i].key);
    }
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(o, "pool_type");
    if (pool && cJSON_IsString(pool)) {
        bool vis = !strcmp(sect, "vision_cfg");
        if (strcmp(pool->valuestring, vis ? "tok" : "argmax"))
            return cm_error(CM_ERR_UNSUPPORTED, "%s: %s.pool_type \"%s\" is not supported (only \"%s\")", what,
                            sect, pool->valuestring, vis ? "tok" : "argmax");
    }
    return CM_OK;
}

#define TRY(x) do { cm_status st_ = (x); if (st_) { cJSON_Delete(root); return st_; } } while (0)

cm_status cm_config_from_json(const char *json, size_t len, const char *what, CmModelConfig *cfg) {
    if (!what) what = "model config";
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return cm_error(CM_ERR_FORMAT, "%s: malformed JSON", what);
    if (!cJSON_IsObject(root)) { cJSON_Delete(root); return cm_error(CM_ERR_FORMAT, "%s: not a JSON object", what); }
    CmModelConfig c;
    set_defaults(&c);
    c.head.dropout = 0.1f;
    c.head.cls_dropout = 0.2f;
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "model_cfg");
    if (mc && !cJSON_IsObject(mc)) TRY(cm_error(CM_ERR_FORMAT, "%s: \"model_cfg\" is not an object", what));
    if (!mc) mc = root;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(mc, "vision_cfg");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(mc, "text_cfg");
    if (!cJSON_IsObject(vc) || !cJSON_IsObject(tc))
        TRY(cm_error(CM_ERR_FORMAT, "%s: needs \"vision_cfg\" and \"text_cfg\" objects", what));
    TRY(jint(mc, "embed_dim", &c.embed_dim, what));
    TRY(jbool(mc, "quick_gelu", &c.quick_gelu, what));
    const cJSON *cu = cJSON_GetObjectItemCaseSensitive(mc, "custom_text");
    (void)cu; /* custom_text only changes the Python class layout, not the maths of a plain text tower */
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(vc, "layers");
    if (layers && !cJSON_IsNumber(layers))
        TRY(cm_error(CM_ERR_UNSUPPORTED, "%s: vision_cfg.layers is not an integer (ResNet towers are not supported)", what));
    TRY(refuse_nondefault(vc, "vision_cfg", what));
    TRY(refuse_nondefault(tc, "text_cfg", what));
    TRY(jint(vc, "image_size", &c.vision.image_size, what));
    TRY(jint(vc, "patch_size", &c.vision.patch_size, what));
    TRY(jint(vc, "width", &c.vision.width, what));
    TRY(jint(vc, "layers", &c.vision.layers, what));
    TRY(jint(vc, "head_width", &c.vision.head_width, what));
    TRY(jfloat(vc, "mlp_ratio", &c.vision.mlp_ratio, what));
    TRY(jint(tc, "context_length", &c.text.context_length, what));
    TRY(jint(tc, "vocab_size", &c.text.vocab_size, what));
    TRY(jint(tc, "width", &c.text.width, what));
    TRY(jint(tc, "heads", &c.text.heads, what));
    TRY(jint(tc, "layers", &c.text.layers, what));
    TRY(jfloat(tc, "mlp_ratio", &c.text.mlp_ratio, what));
    if (c.vision.head_width > 0) c.vision.heads = c.vision.width / c.vision.head_width;
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(root, "lora");
    if (lo && cJSON_IsObject(lo)) {
        TRY(jint(lo, "r", &c.lora_rank, what));
        TRY(jfloat(lo, "alpha", &c.lora_alpha, what));
    }
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head");
    if (hd && cJSON_IsObject(hd)) {
        TRY(jint(hd, "d", &c.head.d, what));
        TRY(jint(hd, "heads", &c.head.heads, what));
        TRY(jint(hd, "ff", &c.head.ff, what));
        TRY(jint(hd, "layers", &c.head.layers, what));
        TRY(jint(hd, "classes", &c.head.n_classes, what));
        TRY(jfloat(hd, "dropout_design", &c.head.dropout, what));
        TRY(jfloat(hd, "classifier_dropout_design", &c.head.cls_dropout, what));
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "model_name");
    snprintf(c.name, sizeof c.name, "%s", (nm && cJSON_IsString(nm)) ? nm->valuestring : "custom");
    cJSON_Delete(root);
    finish_head(&c);
    if (c.head.d != c.embed_dim)
        return cm_error(CM_ERR_FORMAT, "%s: head.d %d must equal embed_dim %d", what, c.head.d, c.embed_dim);
    *cfg = c;
    cm_status st = cm_config_validate(cfg);
    if (st) cm_error_prefix("%s", what);
    return st;
}

cm_status cm_config_from_json_file(const char *path, CmModelConfig *cfg) {
    uint8_t *buf = NULL;
    size_t len = 0;
    cm_status st = cm_read_file(path, 1u << 20, &buf, &len);
    if (st) return st;
    st = cm_config_from_json((const char *)buf, len, path, cfg);
    cm_free(buf);
    return st;
}

cm_status cm_config_load(const char *s, CmModelConfig *cfg) {
    if (!s || !*s) return cm_error(CM_ERR_ARG, "empty model name");
    size_t n = strlen(s);
    if ((n > 5 && !strcmp(s + n - 5, ".json")) || strchr(s, '/')) return cm_config_from_json_file(s, cfg);
    return cm_config_from_name(s, cfg);
}

cm_status cm_config_validate(const CmModelConfig *c) {
#define BAD(...) return cm_error(CM_ERR_ARG, __VA_ARGS__)
#define RANGE(v, lo, hi, nm) if ((v) < (lo) || (v) > (hi)) BAD("model config: %s = %d out of range [%d, %d]", nm, (int)(v), (int)(lo), (int)(hi))
    RANGE(c->embed_dim, 1, 65536, "embed_dim");
    RANGE(c->vision.image_size, 1, 4096, "vision_cfg.image_size");
    RANGE(c->vision.patch_size, 1, 4096, "vision_cfg.patch_size");
    RANGE(c->vision.width, 1, 65536, "vision_cfg.width");
    RANGE(c->vision.layers, 1, 256, "vision_cfg.layers");
    RANGE(c->vision.head_width, 1, 65536, "vision_cfg.head_width");
    RANGE(c->text.context_length, 1, 4096, "text_cfg.context_length");
    RANGE(c->text.vocab_size, 1, 10000000, "text_cfg.vocab_size");
    RANGE(c->text.width, 1, 65536, "text_cfg.width");
    RANGE(c->text.heads, 1, 4096, "text_cfg.heads");
    RANGE(c->text.layers, 1, 256, "text_cfg.layers");
    if (c->vision.image_size % c->vision.patch_size)
        BAD("model config: vision_cfg.image_size %d is not a multiple of patch_size %d", c->vision.image_size, c->vision.patch_size);
    if (c->vision.width % c->vision.head_width)
        BAD("model config: vision_cfg.width %d is not a multiple of head_width %d", c->vision.width, c->vision.head_width);
    if (c->vision.heads != c->vision.width / c->vision.head_width) BAD("model config: vision heads inconsistent with head_width");
    if (c->text.width % c->text.heads)
        BAD("model config: text_cfg.width %d is not a multiple of heads %d", c->text.width, c->text.heads);
    if (!(c->vision.mlp_ratio > 0 && c->vision.mlp_ratio <= 64) || !(c->text.mlp_ratio > 0 && c->text.mlp_ratio <= 64))
        BAD("model config: mlp_ratio out of range (0, 64]");
    if (c->has_lora || c->lora_rank) {
        RANGE(c->lora_rank, 1, 4096, "lora rank");
        if (!(c->lora_alpha > 0 && isfinite(c->lora_alpha))) BAD("model config: lora alpha must be > 0");
    }
    if (c->has_head) {
        RANGE(c->head.heads, 1, 4096, "head.heads");
        RANGE(c->head.ff, 1, 1 << 20, "head.ff");
        RANGE(c->head.layers, 0, 64, "head.layers");
        RANGE(c->head.n_classes, 1, 100000, "head.classes");
        if (c->head.d != c->embed_dim) BAD("model config: head.d %d must equal embed_dim %d", c->head.d, c->embed_dim);
        if (c->head.d % c->head.heads) BAD("model config: head.d %d is not a multiple of head.heads %d", c->head.d, c->head.heads);
        if (!(c->head.dropout >= 0 && c->head.dropout < 1) || !(c->head.cls_dropout >= 0 && c->head.cls_dropout < 1))
            BAD("model config: head dropout must be in [0, 1)");
    }
    return CM_OK;
#undef RANGE
#undef BAD
}

// ---------------------------------------------------------------------------------------------
// parameter table

typedef struct { CmParam *p; int n, cap; } Table;

static void add(Table *t, CmParamGroup g, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static void add(Table *t, CmParamGroup g, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...) {
    if (t->n == t->cap) return;   /* capacity computed exactly beforehand */
    CmParam *p = &t->p[t->n++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    int64_t d[4] = {d0, d1, d2, d3};
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) { p->shape[i] = d[i]; p->numel *= (size_t)d[i]; }
    p->group = g;
    p->decay = ndim >= 2 && !strstr(p->name, "bn") && !strstr(p->name, "ln") && !strstr(p->name, "bias") &&
               !strstr(p->name, "logit_scale");
}

static void add_blocks(Table *t, const CmModelConfig *c, const char *prefix, CmParamGroup g, int L, int D, int hidden) {
    for (int l = 0; l < L; l++) {
        char b[64];
        snprintf(b, sizeof b, "%stransformer.resblocks.%d", prefix, l);
        add(t, g, 1, D, 0, 0, 0, "%s.ln_1.weight", b);
        add(t, g, 1, D, 0, 0, 0, "%s.ln_1.bias", b);
        add(t, g, 2, 3 * D, D, 0, 0, "%s.attn.in_proj_weight", b);
        add(t, g, 1, 3 * D, 0, 0, 0, "%s.attn.in_proj_bias", b);
        add(t, g, 2, D, D, 0, 0, "%s.attn.out_proj.weight", b);
        add(t, g, 1, D, 0, 0, 0, "%s.attn.out_proj.bias", b);
        if (c->has_lora) {
            add(t, CM_GROUP_LORA, 2, c->lora_rank, D, 0, 0, "%s.attn.out_proj.lora_A.weight", b);
            add(t, CM_GROUP_LORA, 2, D, c->lora_rank, 0, 0, "%s.attn.out_proj.lora_B.weight", b);
        }
        add(t, g, 1, D, 0, 0, 0, "%s.ln_2.weight", b);
        add(t, g, 1, D, 0, 0, 0, "%s.ln_2.bias", b);
        add(t, g, 2, hidden, D, 0, 0, "%s.mlp.c_fc.weight", b);
        add(t, g, 1, hidden, 0, 0, 0, "%s.mlp.c_fc.bias", b);
        add(t, g, 2, D, hidden, 0, 0, "%s.mlp.c_proj.weight", b);
        add(t, g, 1, D, 0, 0, 0, "%s.mlp.c_proj.bias", b);
    }
}

static int table_size(const CmModelConfig *c) {
    int per = 12 + (c->has_lora ? 2 : 0);
    int n = 3 + 6 + c->vision.layers * per + 2 + c->text.layers * per + 3;
    if (c->has_head) n += 12 * c->head.layers + 4;
    return n;
}

cm_status cm_param_table(const CmModelConfig *c, CmParam **out, int *n) {
    cm_status st = cm_config_validate(c);
    if (st) return st;
    Table t = {0};
    t.cap = table_size(c);
    t.p = cm_calloc((size_t)t.cap, sizeof *t.p, "parameter table");
    if (!t.p) return CM_ERR_OOM;
    const CmVisionConfig *v = &c->vision;
    const CmTextConfig *x = &c->text;
    int E = c->embed_dim, VW = v->width, TW = x->width, P = v->patch_size;
    int grid = v->image_size / P;
    int vh = (int)(VW * v->mlp_ratio), th = (int)(TW * x->mlp_ratio);
    add(&t, CM_GROUP_TEXT, 2, x->context_length, TW, 0, 0, "positional_embedding");
    add(&t, CM_GROUP_TEXT, 2, TW, E, 0, 0, "text_projection");
    add(&t, CM_GROUP_LOGIT_SCALE, 0, 0, 0, 0, 0, "logit_scale");
    add(&t, CM_GROUP_VISION, 1, VW, 0, 0, 0, "visual.class_embedding");
    add(&t, CM_GROUP_VISION, 2, grid * grid + 1, VW, 0, 0, "visual.positional_embedding");
    add(&t, CM_GROUP_VISION, 2, VW, E, 0, 0, "visual.proj");
    add(&t, CM_GROUP_VISION, 4, VW, 3, P, P, "visual.conv1.weight");
    add(&t, CM_GROUP_VISION, 1, VW, 0, 0, 0, "visual.ln_pre.weight");
    add(&t, CM_GROUP_VISION, 1, VW, 0, 0, 0, "visual.ln_pre.bias");
    add_blocks(&t, c, "visual.", CM_GROUP_VISION, v->layers, VW, vh);
    add(&t, CM_GROUP_VISION, 1, VW, 0, 0, 0, "visual.ln_post.weight");
    add(&t, CM_GROUP_VISION, 1, VW, 0, 0, 0, "visual.ln_post.bias");
    add_blocks(&t, c, "", CM_GROUP_TEXT, x->layers, TW, th);
    add(&t, CM_GROUP_TEXT, 2, x->vocab_size, TW, 0, 0, "token_embedding.weight");
    add(&t, CM_GROUP_TEXT, 1, TW, 0, 0, 0, "ln_final.weight");
    add(&t, CM_GROUP_TEXT, 1, TW, 0, 0, 0, "ln_final.bias");
    if (c->has_head) {
        const CmHeadConfig *h = &c->head;
        int d = h->d;
        for (int l = 0; l < h->layers; l++) {
            char b[64];
            snprintf(b, sizeof b, "classifier_head.transformer.layers.%d", l);
            add(&t, CM_GROUP_HEAD, 2, 3 * d, d, 0, 0, "%s.self_attn.in_proj_weight", b);
            add(&t, CM_GROUP_HEAD, 1, 3 * d, 0, 0, 0, "%s.self_attn.in_proj_bias", b);
            add(&t, CM_GROUP_HEAD, 2, d, d, 0, 0, "%s.self_attn.out_proj.weight", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.self_attn.out_proj.bias", b);
            add(&t, CM_GROUP_HEAD, 2, h->ff, d, 0, 0, "%s.linear1.weight", b);
            add(&t, CM_GROUP_HEAD, 1, h->ff, 0, 0, 0, "%s.linear1.bias", b);
            add(&t, CM_GROUP_HEAD, 2, d, h->ff, 0, 0, "%s.linear2.weight", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.linear2.bias", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.norm1.weight", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.norm1.bias", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.norm2.weight", b);
            add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "%s.norm2.bias", b);
        }
        add(&t, CM_GROUP_HEAD, 2, d, d, 0, 0, "classifier_head.classifier.0.weight");
        add(&t, CM_GROUP_HEAD, 1, d, 0, 0, 0, "classifier_head.classifier.0.bias");
        add(&t, CM_GROUP_HEAD, 2, h->n_classes, d, 0, 0, "classifier_head.classifier.3.weight");
        add(&t, CM_GROUP_HEAD, 1, h->n_classes, 0, 0, 0, "classifier_head.classifier.3.bias");
    }
    CM_ASSERT(t.n == t.cap);
    *out = t.p;
    *n = t.n;
    return CM_OK;
}

void cm_param_counts(const CmModelConfig *cfg, CmParamCounts *out) {
    memset(out, 0, sizeof *out);
    CmModelConfig c = *cfg;
    c.has_lora = c.lora_rank > 0;
    c.has_head = true;
    if (c.head.d == 0) finish_head(&c);
    CmParam *p = NULL;
    int n = 0;
    if (cm_param_table(&c, &p, &n)) return;
    for (int i = 0; i < n; i++) {
        int64_t k = (int64_t)p[i].numel;
        switch (p[i].group) {
        case CM_GROUP_VISION: out->vision += k; out->n_clip_tensors++; break;
        case CM_GROUP_TEXT: out->text += k; out->n_clip_tensors++; break;
        case CM_GROUP_LOGIT_SCALE: out->logit_scale += k; out->n_clip_tensors++; break;
        case CM_GROUP_LORA: out->lora += k; out->n_lora_tensors++; break;
        case CM_GROUP_HEAD: out->head += k; out->n_head_tensors++; break;
        }
    }
    cm_free(p);
    out->clip_total = out->vision + out->text + out->logit_scale;
    out->trainable_lora = out->lora + out->head;
    out->trainable_baseline = out->clip_total + out->head;
}
