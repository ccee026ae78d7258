/*
 * load.c — weights in and out of a CmModel: strict loading from a CmTensorFile (safetensors,
 * OpenCLIP .bin / epoch_N.pt through src/io), config discovery (the "model_config" metadata
 * clipmod writes, open_clip_config.json next to the weights, or shapes that identify a built-in
 * config), saving as safetensors, the config as JSON, and the file
 * summary behind `clipmod info --model`.
 */
#include "model/model.h"
#include "io/tensorfile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

static bool is_float_dtype(CmDType t) { return t == CM_F32 || t == CM_F16 || t == CM_BF16 || t == CM_F64; }

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static bool shape_ok(const CmParam *p, const CmTensorView *v) {
    if (!strcmp(p->name, "logit_scale")) return v->numel == 1;   /* OpenCLIP accepts [] and [1] */
    if (v->ndim != p->ndim) return false;
    for (int i = 0; i < p->ndim; i++) if (v->shape[i] != p->shape[i]) return false;
    return true;
}

/* Append "name" to a list message, the first few only. */
typedef struct { char buf[900]; int n; } NameList;
static void nl_add(NameList *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void nl_add(NameList *l, const char *fmt, ...) {
    if (l->n++ >= 4) return;
    size_t k = strlen(l->buf);
    if (k + 4 >= sizeof l->buf) return;
    if (k) { l->buf[k++] = ','; l->buf[k++] = ' '; l->buf[k] = 0; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->buf + k, sizeof l->buf - k, fmt, ap);
    va_end(ap);
}

cm_status cm_model_load(CmModel *m, const CmTensorFile *f, unsigned flags, uint64_t init_seed) {
    const char *path = cm_tensorfile_path(f);
    int nf = cm_tensorfile_count(f);
    NameList unexpected = {{0}, 0}, misshaped = {{0}, 0}, missing = {{0}, 0}, badtype = {{0}, 0};
    int missing_lora = 0, missing_head = 0, missing_other = 0;
    int n_lora = 0, n_head = 0;
    for (int i = 0; i < nf; i++) {
        const CmTensorView *v = cm_tensorfile_at(f, i);
        if (!strncmp(v->name, "optimizer.", 10)) continue;   /* clipmod checkpoints: AdamW state */
        int k = cm_model_find(m, v->name);
        if (k < 0) { nl_add(&unexpected, "%s", v->name); continue; }
        if (!is_float_dtype(v->dtype)) { nl_add(&badtype, "%s (%s)", v->name, cm_dtype_name(v->dtype)); continue; }
        if (!shape_ok(&m->params[k], v)) {
            char a[64], b[64];
            shape_str(a, sizeof a, v->ndim, v->shape);
            shape_str(b, sizeof b, m->params[k].ndim, m->params[k].shape);
            nl_add(&misshaped, "%s %s, expected %s", v->name, a, b);
        }
    }
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        if (p->group == CM_GROUP_LORA) n_lora++;
        if (p->group == CM_GROUP_HEAD) n_head++;
        if (cm_tensorfile_find(f, p->name)) continue;
        if (p->group == CM_GROUP_LORA) missing_lora++;
        else if (p->group == CM_GROUP_HEAD) missing_head++;
        else missing_other++;
        if (!(flags & CM_LOAD_PARTIAL_OK)) nl_add(&missing, "%s", p->name);
    }
    bool missing_bad = false;
    if (!(flags & CM_LOAD_PARTIAL_OK)) {
        if (flags & CM_LOAD_CLIP_ONLY_OK)
            /* a plain CLIP file: LoRA and head each entirely absent (or entirely present) */
            missing_bad = missing_other > 0 || (missing_lora && missing_lora != n_lora) || (missing_head && missing_head != n_head);
        else
            missing_bad = missing.n > 0;
    }
    if (unexpected.n || misshaped.n || badtype.n || missing_bad) {
        char msg[3000];
        size_t k = 0;
        k += snprintf(msg + k, sizeof msg - k, "%s: does not match model %s:", path, m->cfg.name);
        if (missing_bad)
            k += snprintf(msg + k, sizeof msg - k, " %d missing (%s%s);", missing.n, missing.buf, missing.n > 4 ? ", ..." : "");
        if (unexpected.n && k < sizeof msg)
            k += snprintf(msg + k, sizeof msg - k, " %d unexpected (%s%s);", unexpected.n, unexpected.buf, unexpected.n > 4 ? ", ..." : "");
        if (misshaped.n && k < sizeof msg)
            k += snprintf(msg + k, sizeof msg - k, " %d mis-shaped (%s%s);", misshaped.n, misshaped.buf, misshaped.n > 4 ? ", ..." : "");
        if (badtype.n && k < sizeof msg)
            snprintf(msg + k, sizeof msg - k, " %d not floating point (%s%s);", badtype.n, badtype.buf, badtype.n > 4 ? ", ..." : "");
        return cm_error(CM_ERR_SHAPE, "%s", msg);
    }
    if (missing_lora || missing_head) cm_model_init_lora_head(m, init_seed);
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        const CmTensorView *v = cm_tensorfile_find(f, p->name);
        if (!v) continue;
        cm_status st = cm_tensor_to_f32(v, p->data);
        if (st) return cm_error_prefix("%s: tensor %s", path, p->name);
        for (size_t j = 0; j < p->numel; j++)
            if (!isfinite(p->data[j]))
                return cm_error(CM_ERR_FORMAT, "%s: tensor %s has a non-finite value at element %zu", path, p->name, j);
    }
    return CM_OK;
}

cm_status cm_model_load_file(CmModel *m, const char *path, unsigned flags, uint64_t init_seed) {
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    st = cm_model_load(m, f, flags, init_seed);
    cm_tensorfile_close(f);
    return st;
}

// ---------------------------------------------------------------------------------------------
// config <-> JSON, config from a file's shapes

/* The config as the "model_config" JSON of clipmod files (read back by cm_config_from_tensorfile). */
char *cm_config_to_json(const CmModelConfig *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model_name", c->name);
    cJSON *mc = cJSON_AddObjectToObject(root, "model_cfg");
    cJSON_AddNumberToObject(mc, "embed_dim", c->embed_dim);
    cJSON_AddBoolToObject(mc, "quick_gelu", c->quick_gelu);
    cJSON *vc = cJSON_AddObjectToObject(mc, "vision_cfg");
    cJSON_AddNumberToObject(vc, "image_size", c->vision.image_size);
    cJSON_AddNumberToObject(vc, "layers", c->vision.layers);
    cJSON_AddNumberToObject(vc, "width", c->vision.width);
    cJSON_AddNumberToObject(vc, "patch_size", c->vision.patch_size);
    cJSON_AddNumberToObject(vc, "head_width", c->vision.head_width);
    cJSON_AddNumberToObject(vc, "mlp_ratio", c->vision.mlp_ratio);
    cJSON *tc = cJSON_AddObjectToObject(mc, "text_cfg");
    cJSON_AddNumberToObject(tc, "context_length", c->text.context_length);
    cJSON_AddNumberToObject(tc, "vocab_size", c->text.vocab_size);
    cJSON_AddNumberToObject(tc, "width", c->text.width);
    cJSON_AddNumberToObject(tc, "heads", c->text.heads);
    cJSON_AddNumberToObject(tc, "layers", c->text.layers);
    cJSON_AddNumberToObject(tc, "mlp_ratio", c->text.mlp_ratio);
    cJSON *lo = cJSON_AddObjectToObject(root, "lora");
    cJSON_AddBoolToObject(lo, "enabled", c->has_lora);
    cJSON_AddNumberToObject(lo, "r", c->lora_rank);
    cJSON_AddNumberToObject(lo, "alpha", c->lora_alpha);
    cJSON *hd = cJSON_AddObjectToObject(root, "head");
    cJSON_AddBoolToObject(hd, "enabled", c->has_head);
    cJSON_AddNumberToObject(hd, "d", c->head.d);
    cJSON_AddNumberToObject(hd, "heads", c->head.heads);
    cJSON_AddNumberToObject(hd, "ff", c->head.ff);
    cJSON_AddNumberToObject(hd, "layers", c->head.layers);
    cJSON_AddNumberToObject(hd, "classes", c->head.n_classes);
    cJSON_AddNumberToObject(hd, "dropout_design", c->head.dropout);
    cJSON_AddNumberToObject(hd, "classifier_dropout_design", c->head.cls_dropout);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) { cm_error(CM_ERR_OOM, "model config JSON: out of memory"); return NULL; }
    char *out = cm_malloc(strlen(s) + 1, "model config JSON");
    if (out) strcpy(out, s);
    cJSON_free(s);
    return out;
}

static const CmTensorView *need(const CmTensorFile *f, const char *name, int ndim) {
    const CmTensorView *v = cm_tensorfile_find(f, name);
    if (!v) { cm_error(CM_ERR_SHAPE, "%s: no tensor %s: not an OpenCLIP ViT CLIP state dict", cm_tensorfile_path(f), name); return NULL; }
    if (v->ndim != ndim) { cm_error(CM_ERR_SHAPE, "%s: tensor %s has %d dims, expected %d", cm_tensorfile_path(f), name, v->ndim, ndim); return NULL; }
    return v;
}
static int count_layers(const CmTensorFile *f, const char *fmt) {
    int l = 0;
    char nm[160];
    for (;; l++) {
        snprintf(nm, sizeof nm, fmt, l);
        if (!cm_tensorfile_find(f, nm)) return l;
    }
}

/* LoRA / head presence (and the shape-visible sizes) from the file's tensors. */
static void flags_from_file(const CmTensorFile *f, CmModelConfig *c) {
    const CmTensorView *la = cm_tensorfile_find(f, "visual.transformer.resblocks.0.attn.out_proj.lora_A.weight");
    c->has_lora = la != NULL;
    if (la && la->ndim == 2) c->lora_rank = (int)la->shape[0];
    const CmTensorView *c3 = cm_tensorfile_find(f, "classifier_head.classifier.3.weight");
    c->has_head = c3 != NULL;
}

/* Every tensor of f that the config names has the config's shape and every CLIP tensor of the
   config is in f. why: the first mismatch. */
static bool config_fits_file(const CmModelConfig *cfg, const CmTensorFile *f, char *why, size_t n) {
    CmParam *p = NULL;
    int np = 0;
    if (cm_param_table(cfg, &p, &np)) { snprintf(why, n, "%s", cm_last_error()); return false; }
    bool ok = true;
    for (int j = 0; j < np && ok; j++) {
        const CmTensorView *v = cm_tensorfile_find(f, p[j].name);
        if (!v) {
            if (p[j].group == CM_GROUP_LORA || p[j].group == CM_GROUP_HEAD) continue;
            snprintf(why, n, "tensor %s missing", p[j].name);
            ok = false;
        } else if (!shape_ok(&p[j], v)) {
            char a[96], b[96];
            shape_str(a, sizeof a, v->ndim, v->shape);
            shape_str(b, sizeof b, p[j].ndim, p[j].shape);
            snprintf(why, n, "tensor %s is %s, the config says %s", p[j].name, a, b);
            ok = false;
        }
    }
    cm_free(p);
    return ok;
}

/* open_clip_config.json (or a config.json in OpenCLIP's "model_cfg" layout) next to the weights. */
static cm_status config_from_side_file(const CmTensorFile *f, CmModelConfig *cfg, char *source, size_t sn, bool *found) {
    *found = false;
    const char *path = cm_tensorfile_path(f);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0; else dir[0] = 0;
    static const char *names[] = {"open_clip_config.json", "config.json"};
    for (int k = 0; k < 2; k++) {
        char cp[4200];
        snprintf(cp, sizeof cp, "%s%s", dir, names[k]);
        if (!cm_file_exists(cp)) continue;
        uint8_t *buf = NULL;
        size_t len = 0;
        cm_status st = cm_read_file(cp, 1u << 22, &buf, &len);
        if (st) return st;
        if (k == 1) {   /* a Hugging Face transformers config.json is another format: not ours */
            cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
            bool ours = j && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "model_cfg"));
            cJSON_Delete(j);
            if (!ours) { cm_free(buf); continue; }
        }
        st = cm_config_from_json((const char *)buf, len, cp, cfg);
        cm_free(buf);
        if (st) return st;
        flags_from_file(f, cfg);
        char why[400];
        if (!config_fits_file(cfg, f, why, sizeof why))
            return cm_error(CM_ERR_ARG, "%s does not describe %s (%s); give --model-name NAME|CONFIG.json", cp, path, why);
        if (source) snprintf(source, sn, "%s", cp);
        *found = true;
        return CM_OK;
    }
    return CM_OK;
}

cm_status cm_config_discover(const CmTensorFile *f, CmModelConfig *cfg, char *source, size_t sn) {
    const char *meta = cm_tensorfile_metadata(f, "model_config");
    if (meta) {
        cm_status st = cm_config_from_json(meta, strlen(meta), cm_tensorfile_path(f), cfg);
        if (st) return st;
        cJSON *j = cJSON_Parse(meta);   /* the enabled flags */
        const cJSON *lo = cJSON_GetObjectItem(j, "lora"), *hd = cJSON_GetObjectItem(j, "head");
        if (lo && cJSON_IsFalse(cJSON_GetObjectItem(lo, "enabled"))) cfg->has_lora = false;
        if (hd && cJSON_IsFalse(cJSON_GetObjectItem(hd, "enabled"))) cfg->has_head = false;
        cJSON_Delete(j);
        cfg->has_lora = cfg->has_lora && cm_tensorfile_find(f, "visual.transformer.resblocks.0.attn.out_proj.lora_A.weight");
        cfg->has_head = cfg->has_head && cm_tensorfile_find(f, "classifier_head.classifier.3.weight");
        if (source) snprintf(source, sn, "metadata");
        return CM_OK;
    }
    bool found = false;
    cm_status st = config_from_side_file(f, cfg, source, sn, &found);
    if (st || found) return st;

    /* the shapes: only a config they identify without doubt. The number of attention heads (and
       quick_gelu) is not stored in the weights, so only the built-in configs qualify. */
    const CmTensorView *conv = need(f, "visual.conv1.weight", 4), *vpos = need(f, "visual.positional_embedding", 2);
    const CmTensorView *tpos = need(f, "positional_embedding", 2), *tok = need(f, "token_embedding.weight", 2);
    const CmTensorView *tproj = need(f, "text_projection", 2);
    if (!conv || !vpos || !tpos || !tok || !tproj) return CM_ERR_SHAPE;
    int grid = (int)lround(sqrt((double)(vpos->shape[0] - 1)));
    static const char *named[] = {"ViT-B-32", "ViT-B-16", "ViT-L-14"};
    for (int k = 0; k < 3; k++) {
        CmModelConfig c;
        cm_config_from_name(named[k], &c);
        flags_from_file(f, &c);
        if (conv->shape[0] != c.vision.width || conv->shape[2] != c.vision.patch_size ||
            grid * c.vision.patch_size != c.vision.image_size || tpos->shape[0] != c.text.context_length ||
            tpos->shape[1] != c.text.width || tok->shape[0] != c.text.vocab_size || tproj->shape[1] != c.embed_dim ||
            count_layers(f, "visual.transformer.resblocks.%d.ln_1.weight") != c.vision.layers ||
            count_layers(f, "transformer.resblocks.%d.ln_1.weight") != c.text.layers)
            continue;
        const CmTensorView *l1 = cm_tensorfile_find(f, "classifier_head.transformer.layers.0.linear1.weight");
        const CmTensorView *c3 = cm_tensorfile_find(f, "classifier_head.classifier.3.weight");
        if (c3 && c3->ndim == 2) c.head.n_classes = (int)c3->shape[0];
        if (l1 && l1->ndim == 2) c.head.ff = (int)l1->shape[0];
        if (c.has_head) c.head.layers = count_layers(f, "classifier_head.transformer.layers.%d.norm1.weight");
        char why[400];
        if (cm_config_validate(&c) || !config_fits_file(&c, f, why, sizeof why)) continue;
        cm_info("%s: config %s recognised from the tensor shapes (GELU; OpenAI's weights need --model-name %s-quickgelu)",
                cm_tensorfile_path(f), named[k], named[k]);
        if (source) snprintf(source, sn, "shapes");
        *cfg = c;
        return CM_OK;
    }
    return cm_error(CM_ERR_ARG,
                    "%s: cannot tell the model config from the tensor shapes (vision width %lld, text width %lld, embed %lld match no "
                    "built-in config, and the number of attention heads is not stored in the weights): give --model-name NAME|CONFIG.json "
                    "or put open_clip_config.json next to the weights",
                    cm_tensorfile_path(f), (long long)conv->shape[0], (long long)tpos->shape[1], (long long)tproj->shape[1]);
}

cm_status cm_config_from_tensorfile(const CmTensorFile *f, CmModelConfig *cfg) {
    return cm_config_discover(f, cfg, NULL, 0);
}

cm_status cm_model_from_file(const char *path, const CmModelConfig *cfg, unsigned flags, uint64_t init_seed, CmModel **out) {
    *out = NULL;
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    CmModelConfig c;
    if (cfg) c = *cfg;
    else if ((st = cm_config_from_tensorfile(f, &c))) { cm_tensorfile_close(f); return st; }
    CmModel *m = NULL;
    if ((st = cm_model_create(&c, &m))) { cm_tensorfile_close(f); return st; }
    st = cm_model_load(m, f, flags, init_seed);
    cm_tensorfile_close(f);
    if (st) { cm_model_free(m); return st; }
    *out = m;
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// save

int cm_model_tensor_list(const CmModel *m, bool trainable_only, CmTensorOut *ts) {
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        if (trainable_only && !p->trainable) continue;
        CmTensorOut *t = &ts[n++];
        t->name = p->name;
        t->dtype = CM_F32;
        t->ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) t->shape[d] = p->shape[d];
        t->data = p->data;
    }
    return n;
}

cm_status cm_model_save(const CmModel *m, const char *path, bool trainable_only, const char *const *metadata, int n_meta) {
    CmTensorOut *ts = cm_calloc((size_t)m->n_params, sizeof *ts, "tensor list");
    const char **meta = cm_calloc((size_t)(2 * n_meta + 2), sizeof(char *), "metadata");
    char *cfgjson = NULL;
    if (!ts || !meta) { cm_free(ts); cm_free(meta); return CM_ERR_OOM; }
    int n = cm_model_tensor_list(m, trainable_only, ts);
    bool has_cfg = false;
    for (int i = 0; i < n_meta; i++) {
        meta[2 * i] = metadata[2 * i];
        meta[2 * i + 1] = metadata[2 * i + 1];
        if (!strcmp(metadata[2 * i], "model_config")) has_cfg = true;
    }
    int nm = n_meta;
    if (!has_cfg) {
        if (!(cfgjson = cm_config_to_json(&m->cfg))) { cm_free(ts); cm_free(meta); return CM_ERR_OOM; }
        meta[2 * nm] = "model_config";
        meta[2 * nm + 1] = cfgjson;
        nm++;
    }
    cm_status st = cm_safetensors_write(path, ts, n, meta, nm);
    cm_free(ts);
    cm_free(meta);
    cm_free(cfgjson);
    return st;
}

// ---------------------------------------------------------------------------------------------
// `clipmod info --model`

cm_status cm_info_file(const char *path, const CmModelConfig *cfg, CmInfoFile *out) {
    memset(out, 0, sizeof *out);
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    CmModelConfig c = *cfg;
    c.has_lora = c.has_head = true;
    CmParam *p = NULL;
    int np = 0;
    if ((st = cm_param_table(&c, &p, &np))) { cm_tensorfile_close(f); return st; }
    out->n_tensors = cm_tensorfile_count(f);
    CmDType dt = CM_F32;
    bool mixed = false;
    int bad = 0;
    for (int i = 0; i < out->n_tensors; i++) {
        const CmTensorView *v = cm_tensorfile_at(f, i);
        if (!strncmp(v->name, "optimizer.", 10)) continue;
        out->n_params += (int64_t)v->numel;
        if (i == 0) dt = v->dtype; else if (v->dtype != dt) mixed = true;
        int k = -1;
        for (int j = 0; j < np && k < 0; j++) if (!strcmp(p[j].name, v->name)) k = j;
        if (k < 0) { out->n_other++; continue; }
        if (!shape_ok(&p[k], v) || !is_float_dtype(v->dtype)) bad++;
        switch (p[k].group) {
        case CM_GROUP_LORA: out->n_lora++; break;
        case CM_GROUP_HEAD: out->n_head++; break;
        default: out->n_clip++; break;
        }
    }
    int n_clip = 0, n_lora = 0, n_head = 0;
    for (int j = 0; j < np; j++) {
        if (p[j].group == CM_GROUP_LORA) n_lora++;
        else if (p[j].group == CM_GROUP_HEAD) n_head++;
        else n_clip++;
    }
    snprintf(out->dtype, sizeof out->dtype, "%s", mixed ? "mixed" : out->n_tensors ? cm_dtype_name(dt) : "none");
    out->matches = !bad && !out->n_other && out->n_clip == n_clip && (out->n_lora == 0 || out->n_lora == n_lora) &&
                   (out->n_head == 0 || out->n_head == n_head);
    cm_free(p);
    cm_tensorfile_close(f);
    return CM_OK;
}
