/*
 * checkpoint.c — training checkpoints as safetensors + JSON metadata + AdamW state. See
 * checkpoint.h for the layout.
 */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "io/tensorfile.h"

#define OPT_M "optimizer.exp_avg."
#define OPT_V "optimizer.exp_avg_sq."

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
    char epoch[32], step[32], estep[32], bsize[32] = "", bmtime[32] = "", world[16];
    snprintf(world, sizeof world, "%d", meta->world > 0 ? meta->world : 1);
    if (meta->base_size > 0 && meta->base_model[0]) snprintf(bsize, sizeof bsize, "%lld", (long long)meta->base_size);
    if (meta->base_mtime > 0 && meta->base_model[0]) snprintf(bmtime, sizeof bmtime, "%lld", (long long)meta->base_mtime);
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
        "world_size", world,
        "name", meta->name,
        "model_config", cfg_json,
        "has_lora", m->cfg.has_lora ? "true" : "false",
        "has_head", m->cfg.has_head ? "true" : "false",
        "train_mode", cm_train_mode_name(meta->mode),
        "lock_image", meta->lock_image ? "true" : "false",
        "lock_text", meta->lock_text ? "true" : "false",
        "trainable_only", meta->trainable_only ? "true" : "false",
        "base_model", meta->base_model,
        "base_model_sha256", meta->base_sha256,
        "base_model_size", bsize,
        "base_model_mtime", bmtime,
        "base_model_pretrained", meta->base_pretrained,
        "base_model_arch", meta->base_arch,
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

cm_status cm_checkpoint_read_meta(const char *path, CmCkptMeta *meta, CmModelConfig *cfg) {
    CmTensorFile *f;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    st = cm_ckpt_meta_read(f, path, meta, cfg);
    cm_tensorfile_close(f);
    return st;
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
    st = cm_checkpoint_load_file(f, path, m, opt, meta);
    cm_tensorfile_close(f);
    return st;
}

cm_status cm_checkpoint_load_file(const CmTensorFile *f, const char *path, CmModel *m, CmAdamW *opt, CmCkptMeta *meta) {
    cm_status st;
    CmCkptMeta tmp;
    CmModelConfig cfg;
    bool *loaded = NULL;
    if ((st = cm_ckpt_meta_read(f, path, &tmp, &cfg))) goto done;
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
    if ((st = cm_model_overlay(m, f, path, loaded))) goto done;
    if (!tmp.trainable_only)
        for (int i = 0; i < m->n_params; i++)
            if (!loaded[i]) { st = cm_error(CM_ERR_SHAPE, "%s: tensor '%s' missing", path, m->params[i].name); goto done; }
    if (opt && (st = load_opt(opt, f, path))) goto done;
    if (meta) *meta = tmp;
done:
    cm_free(loaded);
    return st;
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
