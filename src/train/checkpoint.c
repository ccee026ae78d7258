/*
 * checkpoint.c — training checkpoints as safetensors + JSON metadata + AdamW state. See
 * checkpoint.h for the layout.
 */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "io/tensorfile.h"

#define OPT_M "optimizer.exp_avg."
#define OPT_V "optimizer.exp_avg_sq."

static const char *mode_name(CmTrainMode m) {
    switch (m) {
    case CM_TRAIN_LORA: return "lora";
    case CM_TRAIN_FULL: return "full";
    case CM_TRAIN_HEAD: return "head";
    default: return "none";
    }
}
static bool mode_parse(const char *s, CmTrainMode *m) {
    if (!strcmp(s, "lora")) *m = CM_TRAIN_LORA;
    else if (!strcmp(s, "full")) *m = CM_TRAIN_FULL;
    else if (!strcmp(s, "head")) *m = CM_TRAIN_HEAD;
    else if (!strcmp(s, "none")) *m = CM_TRAIN_NONE;
    else return false;
    return true;
}

cm_status cm_sha256_file(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return cm_error(CM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        fclose(f); EVP_MD_CTX_free(ctx);
        return cm_error(CM_ERR_OOM, "%s: SHA-256 init failed", path);
    }
    size_t cap = 1 << 20, n;
    unsigned char *buf = cm_malloc(cap, "sha256 buffer");
    if (!buf) { fclose(f); EVP_MD_CTX_free(ctx); return CM_ERR_OOM; }
    while ((n = fread(buf, 1, cap, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    bool err = ferror(f);
    fclose(f);
    cm_free(buf);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (err) return cm_error(CM_ERR_IO, "%s: read error while hashing", path);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return CM_OK;
}

static char *dup_json(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    if (!s) return NULL;
    char *o = cm_malloc(strlen(s) + 1, "checkpoint metadata");
    if (o) strcpy(o, s);
    cJSON_free(s);
    return o;
}

static char *optimizer_json(const CmAdamW *o) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "type", "AdamW");
    cJSON_AddNumberToObject(r, "lr", o->lr);
    cJSON *b = cJSON_AddArrayToObject(r, "betas");
    cJSON_AddItemToArray(b, cJSON_CreateNumber(o->beta1));
    cJSON_AddItemToArray(b, cJSON_CreateNumber(o->beta2));
    cJSON_AddNumberToObject(r, "eps", o->eps);
    cJSON_AddNumberToObject(r, "weight_decay", o->wd);
    cJSON *groups = cJSON_AddArrayToObject(r, "param_groups");
    for (int g = 0; g < 2; g++) {   /* OpenCLIP order: gain_or_bias (wd 0), then rest (wd) */
        cJSON *gr = cJSON_CreateObject();
        cJSON_AddNumberToObject(gr, "weight_decay", g ? o->wd : 0.0);
        cJSON *ps = cJSON_AddArrayToObject(gr, "params");
        for (int i = 0; i < o->n; i++)
            if (o->p[i].decay == (g == 1)) cJSON_AddItemToArray(ps, cJSON_CreateString(o->p[i].name));
        cJSON_AddItemToArray(groups, gr);
    }
    cJSON *st = cJSON_AddObjectToObject(r, "step");
    for (int i = 0; i < o->n; i++) cJSON_AddNumberToObject(st, o->p[i].name, (double)o->step[i]);
    char *s = dup_json(r);
    cJSON_Delete(r);
    return s;
}

static char *rng_json(const CmCkptMeta *meta) {
    cJSON *r = cJSON_CreateObject();
    for (int i = 0; i < meta->n_rng; i++) {
        char hex[4 * 17 + 1];
        snprintf(hex, sizeof hex, "%016llx %016llx %016llx %016llx", (unsigned long long)meta->rng[i].s[0],
                 (unsigned long long)meta->rng[i].s[1], (unsigned long long)meta->rng[i].s[2],
                 (unsigned long long)meta->rng[i].s[3]);
        cJSON_AddStringToObject(r, meta->rng_name[i], hex);
    }
    char *s = dup_json(r);
    cJSON_Delete(r);
    return s;
}

cm_status cm_checkpoint_save(const char *path, const CmModel *m, const CmAdamW *opt, const CmCkptMeta *meta) {
    if (meta->trainable_only && !meta->base_model[0])
        return cm_error(CM_ERR_ARG, "%s: a trainable-only checkpoint needs the base model path", path);
    int nt = 0, cap = m->n_params + 2 * (opt ? opt->n : 0);
    CmTensorOut *ts = cm_calloc(cap ? cap : 1, sizeof *ts, "checkpoint tensor list");
    char **names = cm_calloc(cap ? cap : 1, sizeof *names, "checkpoint names");
    char *cfg_json = cm_config_to_json(&m->cfg);
    char *opt_json = opt ? optimizer_json(opt) : NULL;
    char *rngs = rng_json(meta);
    cm_status st = CM_OK;
    if (!ts || !names || !cfg_json || (opt && !opt_json) || !rngs) { st = cm_error(CM_ERR_OOM, "%s: out of memory", path); goto done; }
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        if (meta->trainable_only && !p->trainable) continue;
        CmTensorOut *t = &ts[nt++];
        t->name = p->name; t->dtype = CM_F32; t->ndim = p->ndim; t->data = p->data;
        for (int d = 0; d < p->ndim; d++) t->shape[d] = p->shape[d];
    }
    if (opt)
        for (int i = 0; i < opt->n; i++)
            for (int k = 0; k < 2; k++) {
                size_t ln = strlen(opt->p[i].name) + 32;
                char *nm = cm_malloc(ln, "checkpoint names");
                if (!nm) { st = CM_ERR_OOM; goto done; }
                snprintf(nm, ln, "%s%s", k ? OPT_V : OPT_M, opt->p[i].name);
                names[i * 2 + k] = nm;
                CmTensorOut *t = &ts[nt++];
                t->name = nm; t->dtype = CM_F32; t->ndim = 1; t->shape[0] = (int64_t)opt->p[i].numel;
                t->data = k ? opt->v[i] : opt->m[i];
            }
    char epoch[32], step[32], estep[32];
    snprintf(epoch, sizeof epoch, "%lld", (long long)meta->epoch);
    snprintf(step, sizeof step, "%lld", (long long)meta->step);
    snprintf(estep, sizeof estep, "%lld", (long long)meta->epoch_step);
    const char *md[] = {
        "format", "pt",
        "clipmod_checkpoint", "1",
        "clipmod_version", CLIPMOD_VERSION,
        "epoch", epoch,
        "step", step,
        "epoch_step", estep,
        "name", meta->name,
        "model_config", cfg_json,
        "has_lora", m->cfg.has_lora ? "true" : "false",
        "has_head", m->cfg.has_head ? "true" : "false",
        "train_mode", mode_name(meta->mode),
        "lock_image", meta->lock_image ? "true" : "false",
        "lock_text", meta->lock_text ? "true" : "false",
        "trainable_only", meta->trainable_only ? "true" : "false",
        "base_model", meta->base_model,
        "base_model_sha256", meta->base_sha256,
        "rng", rngs,
        "optimizer", opt_json ? opt_json : "null",
        "args", meta->args_json ? meta->args_json : "{}",
        "tokenizer", meta->tokenizer[0] ? meta->tokenizer : "bpe",
    };
    st = cm_safetensors_write(path, ts, nt, md, (int)(sizeof md / sizeof md[0]) / 2);
done:
    if (names) for (int i = 0; i < cap; i++) cm_free(names[i]);
    cm_free(names); cm_free(ts); cm_free(cfg_json); cm_free(opt_json); cm_free(rngs);
    return st;
}

static bool meta_bool(const CmTensorFile *f, const char *k) {
    const char *v = cm_tensorfile_metadata(f, k);
    return v && !strcmp(v, "true");
}

static cm_status parse_i64(const char *path, const char *key, const char *v, int64_t *out) {
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < 0) return cm_error(CM_ERR_FORMAT, "%s: metadata \"%s\" is missing or not a count", path, key);
    *out = x;
    return CM_OK;
}

static cm_status read_meta(const CmTensorFile *f, const char *path, CmCkptMeta *meta, CmModelConfig *cfg) {
    memset(meta, 0, sizeof *meta);
    if (!cm_tensorfile_metadata(f, "clipmod_checkpoint"))
        return cm_error(CM_ERR_FORMAT, "%s: not a clipmod checkpoint (no \"clipmod_checkpoint\" in __metadata__)", path);
    cm_status st;
    if ((st = parse_i64(path, "epoch", cm_tensorfile_metadata(f, "epoch"), &meta->epoch))) return st;
    if ((st = parse_i64(path, "step", cm_tensorfile_metadata(f, "step"), &meta->step))) return st;
    const char *es = cm_tensorfile_metadata(f, "epoch_step");   /* absent in older checkpoints: 0 */
    if (es && (st = parse_i64(path, "epoch_step", es, &meta->epoch_step))) return st;
    if (meta->epoch_step > meta->step)
        return cm_error(CM_ERR_FORMAT, "%s: metadata \"epoch_step\" %lld exceeds \"step\" %lld", path,
                        (long long)meta->epoch_step, (long long)meta->step);
    const char *s = cm_tensorfile_metadata(f, "name");
    snprintf(meta->name, sizeof meta->name, "%s", s ? s : "");
    s = cm_tensorfile_metadata(f, "base_model");
    snprintf(meta->base_model, sizeof meta->base_model, "%s", s ? s : "");
    s = cm_tensorfile_metadata(f, "base_model_sha256");
    snprintf(meta->base_sha256, sizeof meta->base_sha256, "%s", s ? s : "");
    s = cm_tensorfile_metadata(f, "tokenizer");
    snprintf(meta->tokenizer, sizeof meta->tokenizer, "%s", s ? s : "bpe");
    s = cm_tensorfile_metadata(f, "train_mode");
    if (!s || !mode_parse(s, &meta->mode)) return cm_error(CM_ERR_FORMAT, "%s: metadata \"train_mode\" missing or unknown", path);
    meta->lock_image = meta_bool(f, "lock_image");
    meta->lock_text = meta_bool(f, "lock_text");
    meta->trainable_only = meta_bool(f, "trainable_only");
    if (meta->trainable_only && !meta->base_model[0])
        return cm_error(CM_ERR_FORMAT, "%s: trainable-only checkpoint without \"base_model\"", path);
    s = cm_tensorfile_metadata(f, "rng");
    if (s) {
        cJSON *r = cJSON_Parse(s), *it;
        if (!r || !cJSON_IsObject(r)) { cJSON_Delete(r); return cm_error(CM_ERR_FORMAT, "%s: metadata \"rng\" is not a JSON object", path); }
        cJSON_ArrayForEach(it, r) {
            unsigned long long w[4];
            if (meta->n_rng >= CM_CKPT_MAX_RNG || !cJSON_IsString(it) ||
                sscanf(it->valuestring, "%16llx %16llx %16llx %16llx", &w[0], &w[1], &w[2], &w[3]) != 4) {
                cJSON_Delete(r);
                return cm_error(CM_ERR_FORMAT, "%s: metadata \"rng\": bad entry", path);
            }
            int k = meta->n_rng++;
            snprintf(meta->rng_name[k], sizeof meta->rng_name[k], "%s", it->string);
            for (int i = 0; i < 4; i++) meta->rng[k].s[i] = w[i];
        }
        cJSON_Delete(r);
    }
    if (cfg) {
        s = cm_tensorfile_metadata(f, "model_config");
        if (!s) return cm_error(CM_ERR_FORMAT, "%s: metadata \"model_config\" missing", path);
        char what[1100];
        snprintf(what, sizeof what, "%s: model_config", path);
        if ((st = cm_config_from_json(s, strlen(s), what, cfg))) return st;
        cfg->has_lora = meta_bool(f, "has_lora");
        cfg->has_head = meta_bool(f, "has_head");
    }
    return CM_OK;
}

cm_status cm_checkpoint_read_meta(const char *path, CmCkptMeta *meta, CmModelConfig *cfg) {
    CmTensorFile *f;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    st = read_meta(f, path, meta, cfg);
    cm_tensorfile_close(f);
    return st;
}

/* Copy every non-optimizer tensor of f into m (by name, shape checked); loaded[i] set per param. */
static cm_status overlay(CmModel *m, const CmTensorFile *f, const char *path, bool *loaded) {
    int n = cm_tensorfile_count(f);
    for (int i = 0; i < n; i++) {
        const CmTensorView *t = cm_tensorfile_at(f, i);
        if (!strncmp(t->name, "optimizer.", 10)) continue;
        int idx = cm_model_find(m, t->name);
        if (idx < 0) return cm_error(CM_ERR_SHAPE, "%s: unexpected tensor '%s' (not in the %s model)", path, t->name, m->cfg.name);
        CmParam *p = &m->params[idx];
        bool ok = t->ndim == p->ndim && t->numel == p->numel;
        for (int d = 0; ok && d < p->ndim; d++) ok = t->shape[d] == p->shape[d];
        if (!ok) return cm_error(CM_ERR_SHAPE, "%s: tensor '%s' has a different shape than the model's", path, t->name);
        cm_status st = cm_tensor_to_f32(t, p->data);
        if (st) return cm_error_prefix("%s: tensor '%s'", path, t->name);
        if (loaded) loaded[idx] = true;
    }
    return CM_OK;
}

static cm_status load_opt(CmAdamW *opt, const CmTensorFile *f, const char *path) {
    const char *js = cm_tensorfile_metadata(f, "optimizer");
    cJSON *r = js ? cJSON_Parse(js) : NULL;
    if (!r || !cJSON_IsObject(r)) { cJSON_Delete(r); return cm_error(CM_ERR_FORMAT, "%s: no optimizer state in this checkpoint", path); }
    cJSON *steps = cJSON_GetObjectItem(r, "step"), *betas = cJSON_GetObjectItem(r, "betas");
    cJSON *eps = cJSON_GetObjectItem(r, "eps"), *wd = cJSON_GetObjectItem(r, "weight_decay");
    if (!cJSON_IsObject(steps) || cJSON_GetArraySize(betas) != 2 || !cJSON_IsNumber(eps) || !cJSON_IsNumber(wd)) {
        cJSON_Delete(r);
        return cm_error(CM_ERR_FORMAT, "%s: optimizer metadata lacks step/betas/eps/weight_decay", path);
    }
    /* torch's optimizer.load_state_dict restores the hyper-parameters of the saved groups */
    opt->beta1 = cJSON_GetArrayItem(betas, 0)->valuedouble;
    opt->beta2 = cJSON_GetArrayItem(betas, 1)->valuedouble;
    opt->eps = eps->valuedouble;
    opt->wd = wd->valuedouble;
    cm_status st = CM_OK;
    for (int i = 0; i < opt->n && !st; i++) {
        const char *nm = opt->p[i].name;
        cJSON *s = cJSON_GetObjectItem(steps, nm);
        if (!cJSON_IsNumber(s) || s->valuedouble < 0) { st = cm_error(CM_ERR_SHAPE, "%s: no optimizer step for '%s'", path, nm); break; }
        opt->step[i] = (int64_t)s->valuedouble;
        for (int k = 0; k < 2 && !st; k++) {
            char key[256];
            snprintf(key, sizeof key, "%s%s", k ? OPT_V : OPT_M, nm);
            const CmTensorView *t = cm_tensorfile_find(f, key);
            if (!t) st = cm_error(CM_ERR_SHAPE, "%s: optimizer state '%s' missing", path, key);
            else if (t->numel != opt->p[i].numel) st = cm_error(CM_ERR_SHAPE, "%s: optimizer state '%s' has %zu elements, the tensor %zu", path, key, t->numel, opt->p[i].numel);
            else if (cm_tensor_to_f32(t, k ? opt->v[i] : opt->m[i])) st = cm_error_prefix("%s: '%s'", path, key);
        }
    }
    /* state of tensors that are not trainable now is an error: the run's mode changed */
    cJSON *it;
    if (!st)
        cJSON_ArrayForEach(it, steps)
            if (cm_adamw_find(opt, it->string) < 0) { st = cm_error(CM_ERR_SHAPE, "%s: optimizer state for '%s', which is not trainable in this run (different --enable-lora / --lock-* ?)", path, it->string); break; }
    if (!st) opt->lr = cJSON_IsNumber(cJSON_GetObjectItem(r, "lr")) ? cJSON_GetObjectItem(r, "lr")->valuedouble : 0;
    cJSON_Delete(r);
    return st;
}

cm_status cm_checkpoint_load(const char *path, CmModel *m, CmAdamW *opt, CmCkptMeta *meta) {
    CmTensorFile *f;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    CmCkptMeta tmp;
    CmModelConfig cfg;
    bool *loaded = NULL;
    if ((st = read_meta(f, path, &tmp, &cfg))) goto done;
    if (cfg.embed_dim != m->cfg.embed_dim || cfg.vision.width != m->cfg.vision.width || cfg.text.width != m->cfg.text.width ||
        cfg.vision.layers != m->cfg.vision.layers || cfg.text.layers != m->cfg.text.layers || cfg.has_lora != m->cfg.has_lora ||
        cfg.has_head != m->cfg.has_head || (cfg.has_lora && cfg.lora_rank != m->cfg.lora_rank)) {
        st = cm_error(CM_ERR_SHAPE, "%s: checkpoint model config (%s) differs from this run's model (%s)", path, cfg.name, m->cfg.name);
        goto done;
    }
    if (cfg.has_lora && cfg.lora_alpha != m->cfg.lora_alpha) {
        st = cm_error(CM_ERR_ARG, "%s: checkpoint has lora_alpha %g, this run %g (--lora-alpha)", path, cfg.lora_alpha, m->cfg.lora_alpha);
        goto done;
    }
    loaded = cm_calloc(m->n_params ? m->n_params : 1, sizeof *loaded, "checkpoint load");
    if (!loaded) { st = CM_ERR_OOM; goto done; }
    if ((st = overlay(m, f, path, loaded))) goto done;
    if (!tmp.trainable_only)
        for (int i = 0; i < m->n_params; i++)
            if (!loaded[i]) { st = cm_error(CM_ERR_SHAPE, "%s: tensor '%s' missing", path, m->params[i].name); goto done; }
    if (opt && (st = load_opt(opt, f, path))) goto done;
    if (meta) *meta = tmp;
done:
    cm_free(loaded);
    cm_tensorfile_close(f);
    return st;
}

cm_status cm_checkpoint_open_model(const char *path, CmModel **out, CmCkptMeta *meta) {
    *out = NULL;
    CmTensorFile *f;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    bool is_ckpt = cm_tensorfile_metadata(f, "clipmod_checkpoint") != NULL;
    CmCkptMeta mt;
    CmModelConfig cfg;
    CmModel *m = NULL;
    CmTensorFile *bf = NULL;
    bool *loaded = NULL;
    if (!is_ckpt) {
        /* a plain weights file (OpenCLIP or clipmod export): config from its shapes, LoRA/head
           initialised when absent (LoRA B = 0: the towers equal plain CLIP) */
        cm_tensorfile_close(f);
        if ((st = cm_model_from_file(path, NULL, CM_LOAD_CLIP_ONLY_OK, 0, out))) return st;
        if (meta) { memset(meta, 0, sizeof *meta); snprintf(meta->base_model, sizeof meta->base_model, "%s", path); }
        return CM_OK;
    }
    if ((st = read_meta(f, path, &mt, &cfg))) goto fail;
    if ((st = cm_model_create(&cfg, &m))) goto fail;
    cm_model_init_lora_head(m, 0);
    loaded = cm_calloc(m->n_params ? m->n_params : 1, sizeof *loaded, "model load");
    if (!loaded) { st = CM_ERR_OOM; goto fail; }
    if (mt.trainable_only) {
        if (mt.base_sha256[0]) {
            char sha[65];
            if ((st = cm_sha256_file(mt.base_model, sha))) { cm_error_prefix("%s: base model", path); goto fail; }
            if (strcmp(sha, mt.base_sha256)) {
                st = cm_error(CM_ERR_FORMAT, "%s: base model %s has SHA-256 %.12s..., the checkpoint was trained on %.12s...",
                              path, mt.base_model, sha, mt.base_sha256);
                goto fail;
            }
        }
        if ((st = cm_tensorfile_open(mt.base_model, &bf))) { cm_error_prefix("%s: base model", path); goto fail; }
        if ((st = overlay(m, bf, mt.base_model, loaded))) goto fail;
    }
    if ((st = overlay(m, f, path, loaded))) goto fail;
    for (int i = 0; i < m->n_params; i++)
        if (!loaded[i] && m->params[i].group != CM_GROUP_LORA && m->params[i].group != CM_GROUP_HEAD) {
            st = cm_error(CM_ERR_SHAPE, "%s: tensor '%s' is in neither the checkpoint nor its base model", path, m->params[i].name);
            goto fail;
        }
    cm_free(loaded);
    if (bf) cm_tensorfile_close(bf);
    cm_tensorfile_close(f);
    if (meta) *meta = mt;
    *out = m;
    return CM_OK;
fail:
    cm_free(loaded);
    if (bf) cm_tensorfile_close(bf);
    cm_tensorfile_close(f);
    if (m) cm_model_free(m);
    return st;
}

cm_status cm_model_open_any(const char *path, const char *config_name, CmModel **out, CmCkptMeta *meta) {
    *out = NULL;
    if (config_name) {
        CmTensorFile *f;
        cm_status st = cm_tensorfile_open(path, &f);
        if (st) return st;
        bool ckpt = cm_tensorfile_metadata(f, "clipmod_checkpoint") != NULL;
        cm_tensorfile_close(f);
        if (!ckpt) {
            CmModelConfig cfg;
            if ((st = cm_config_load(config_name, &cfg))) return cm_error_prefix("--model-name %s", config_name);
            if ((st = cm_model_from_file(path, &cfg, CM_LOAD_CLIP_ONLY_OK, 0, out))) return st;
            if (meta) { memset(meta, 0, sizeof *meta); snprintf(meta->base_model, sizeof meta->base_model, "%s", path); }
            return CM_OK;
        }
    }
    return cm_checkpoint_open_model(path, out, meta);
}

cm_status cm_opt_params_from_model(const CmModel *m, CmOptParam **out, int *n) {
    int k = 0;
    for (int i = 0; i < m->n_params; i++) k += m->params[i].trainable;
    *out = cm_calloc(k ? k : 1, sizeof **out, "optimizer parameter list");
    if (!*out) return CM_ERR_OOM;
    k = 0;
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        if (!p->trainable) continue;
        (*out)[k++] = (CmOptParam){p->name, p->data, p->grad, p->numel, p->ndim, cm_param_decays(p->name, p->ndim)};
    }
    *n = k;
    return CM_OK;
}

void cm_checkpoint_path(char *buf, size_t n, const char *dir, int64_t epoch) {
    if (epoch < 0) snprintf(buf, n, "%s/epoch_latest.safetensors", dir);
    else snprintf(buf, n, "%s/epoch_%lld.safetensors", dir, (long long)epoch);
}

void cm_checkpoint_step_path(char *buf, size_t n, const char *dir, int64_t step) {
    snprintf(buf, n, "%s/step_%lld.safetensors", dir, (long long)step);
}

/* rank of a checkpoint file name on a tie in steps (higher wins); -1: not a checkpoint name */
static int ckpt_name_rank(const char *nm) {
    long long k;
    int used = 0;
    size_t L = strlen(nm);
    if (!strcmp(nm, "epoch_latest.safetensors")) return 1;
    if (sscanf(nm, "epoch_%lld.safetensors%n", &k, &used) == 1 && used == (int)L && k >= 0 && !strncmp(nm + used - 12, ".safetensors", 12)) return 2;
    used = 0;
    if (sscanf(nm, "step_%lld.safetensors%n", &k, &used) == 1 && used == (int)L && k >= 0 && !strncmp(nm + used - 12, ".safetensors", 12)) return 0;
    return -1;
}

cm_status cm_checkpoint_find_latest(const char *dir, char **out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return cm_error(CM_ERR_IO, "%s: no checkpoint folder (%s)", dir, strerror(errno));
    char path[4096], best[4096] = "";
    long long best_step = -1;
    int best_rank = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int rank = ckpt_name_rank(e->d_name);
        if (rank < 0) continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        CmCkptMeta mt;
        if (cm_checkpoint_read_meta(path, &mt, NULL)) {
            cm_warn("--resume latest: ignoring %s: %s", path, cm_last_error());
            continue;
        }
        if (mt.step > best_step || (mt.step == best_step && rank > best_rank)) {
            best_step = mt.step;
            best_rank = rank;
            snprintf(best, sizeof best, "%s", path);
        }
    }
    closedir(d);
    if (best_step < 0) return cm_error(CM_ERR_IO, "%s: no complete checkpoint to resume from", dir);
    *out = cm_malloc(strlen(best) + 1, "checkpoint path");
    if (!*out) return CM_ERR_OOM;
    strcpy(*out, best);
    return CM_OK;
}
