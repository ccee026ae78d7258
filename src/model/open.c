/*
 * open.c — cm_model_open: one way to open any model file for inference (see open.h), plus the
 * checkpoint metadata reader and tensor overlay that training's resume shares.
 */
#include "model/open.h"
#include "model/export_open.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "io/hub.h"
#include "io/sha256.h"
#include "io/tensorfile.h"

/* The byte-level tokenizer's vocabulary (data/textenc.h CM_BYTE_VOCAB; the model layer sits
   below data, so the number is repeated here). */
#define BYTE_VOCAB 258

const char *cm_train_mode_name(CmTrainMode m) {
    switch (m) {
    case CM_TRAIN_LORA: return "lora";
    case CM_TRAIN_FULL: return "full";
    case CM_TRAIN_HEAD: return "head";
    default: return "none";
    }
}

bool cm_train_mode_parse(const char *s, CmTrainMode *m) {
    if (!strcmp(s, "lora")) *m = CM_TRAIN_LORA;
    else if (!strcmp(s, "full")) *m = CM_TRAIN_FULL;
    else if (!strcmp(s, "head")) *m = CM_TRAIN_HEAD;
    else if (!strcmp(s, "none")) *m = CM_TRAIN_NONE;
    else return false;
    return true;
}

// ---------------------------------------------------------------------------------------------
// checkpoint metadata

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

static void meta_str(const CmTensorFile *f, const char *k, char *out, size_t n, const char *dflt) {
    const char *s = cm_tensorfile_metadata(f, k);
    snprintf(out, n, "%s", s ? s : dflt);
}

cm_status cm_ckpt_meta_read(const CmTensorFile *f, const char *path, CmCkptMeta *meta, CmModelConfig *cfg) {
    memset(meta, 0, sizeof *meta);
    meta->base_size = meta->base_mtime = -1;
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
    const char *ws = cm_tensorfile_metadata(f, "world_size");   /* absent in older checkpoints: 0 (unknown) */
    int64_t w = 0;
    if (ws && *ws && (st = parse_i64(path, "world_size", ws, &w))) return st;
    if (w < 0 || w > (1 << 24)) return cm_error(CM_ERR_FORMAT, "%s: metadata \"world_size\" %lld out of range", path, (long long)w);
    meta->world = (int)w;
    meta_str(f, "name", meta->name, sizeof meta->name, "");
    meta_str(f, "base_model", meta->base_model, sizeof meta->base_model, "");
    meta_str(f, "base_model_sha256", meta->base_sha256, sizeof meta->base_sha256, "");
    meta_str(f, "base_model_pretrained", meta->base_pretrained, sizeof meta->base_pretrained, "");
    meta_str(f, "base_model_arch", meta->base_arch, sizeof meta->base_arch, "");
    const char *s = cm_tensorfile_metadata(f, "base_model_size");
    if (s && *s && (st = parse_i64(path, "base_model_size", s, &meta->base_size))) return st;
    s = cm_tensorfile_metadata(f, "base_model_mtime");
    if (s && *s && (st = parse_i64(path, "base_model_mtime", s, &meta->base_mtime))) return st;
    meta_str(f, "tokenizer", meta->tokenizer, sizeof meta->tokenizer, "bpe");
    if (strcmp(meta->tokenizer, "bpe") && strcmp(meta->tokenizer, "bytes"))
        return cm_error(CM_ERR_FORMAT, "%s: metadata \"tokenizer\" is '%s' (bpe or bytes)", path, meta->tokenizer);
    s = cm_tensorfile_metadata(f, "train_mode");
    if (!s || !cm_train_mode_parse(s, &meta->mode)) return cm_error(CM_ERR_FORMAT, "%s: metadata \"train_mode\" missing or unknown", path);
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

cm_status cm_model_overlay(CmModel *m, const CmTensorFile *f, const char *path, bool *loaded) {
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

// ---------------------------------------------------------------------------------------------
// the base model of a trainable-only checkpoint

typedef struct {
    char text[4096];   /* "  PLACE: why" lines for the error */
    size_t len;
} Tried;

static void tried_add(Tried *t, const char *what, const char *path, const char *why) {
    int n = snprintf(t->text + t->len, sizeof t->text - t->len, "\n  %s %s: %s", what, path, why);
    if (n > 0) t->len = t->len + (size_t)n < sizeof t->text ? t->len + (size_t)n : sizeof t->text - 1;
}

/* 1: cand is the base (out filled), 0: not (reason recorded), <0: error status (I/O while hashing
   is a "not", so only OOM-like failures abort). */
static int try_base(const char *what, const char *cand, bool recorded_path, const CmCkptMeta *mt, Tried *t,
                    char *out, size_t outn) {
    struct stat sb;
    if (stat(cand, &sb) != 0) { tried_add(t, what, cand, errno == ENOENT ? "absent" : strerror(errno)); return 0; }
    if (!S_ISREG(sb.st_mode)) { tried_add(t, what, cand, "not a regular file"); return 0; }
    if (!mt->base_sha256[0]) {   /* an old checkpoint without a hash: the file is taken as is */
        snprintf(out, outn, "%s", cand);
        return 1;
    }
    if (mt->base_size >= 0 && (int64_t)sb.st_size != mt->base_size) {
        char why[128];
        snprintf(why, sizeof why, "%lld bytes, the base had %lld", (long long)sb.st_size, (long long)mt->base_size);
        tried_add(t, what, cand, why);
        return 0;
    }
    /* the recorded file, unchanged (same size and mtime): no need to hash it */
    if (recorded_path && mt->base_size >= 0 && mt->base_mtime >= 0 && (int64_t)sb.st_mtime == mt->base_mtime) {
        snprintf(out, outn, "%s", cand);
        return 1;
    }
    char sha[65];
    if (cm_sha256_file(cand, sha)) { tried_add(t, what, cand, cm_last_error()); return 0; }
    if (strcmp(sha, mt->base_sha256)) {
        char why[160];
        snprintf(why, sizeof why, "SHA-256 %.12s..., the checkpoint was trained on %.12s...", sha, mt->base_sha256);
        tried_add(t, what, cand, why);
        return 0;
    }
    snprintf(out, outn, "%s", cand);
    return 1;
}

static cm_status find_base(const char *ckpt, const CmCkptMeta *mt, const CmOpenOptions *o, char *out, size_t outn) {
    Tried t = {{0}, 0};
    char cand[4096];
    if (o && o->base_model && *o->base_model) {   /* explicit: that file or an error */
        if (try_base("--base-model", o->base_model, false, mt, &t, out, outn) == 1) return CM_OK;
        return cm_error(CM_ERR_ARG, "%s: the base model given does not match the checkpoint:%s", ckpt, t.text);
    }
    if (try_base("recorded path", mt->base_model, true, mt, &t, out, outn) == 1) return CM_OK;
    /* next to the checkpoint: the recorded file name, then OpenCLIP's two names */
    const char *slash = strrchr(ckpt, '/');
    int dl = slash ? (int)(slash - ckpt) : 1;
    const char *dir = slash ? ckpt : ".";
    const char *base_name = strrchr(mt->base_model, '/');
    base_name = base_name ? base_name + 1 : mt->base_model;
    const char *names[3] = {base_name, CM_HF_SAFE_WEIGHTS_NAME, CM_HF_WEIGHTS_NAME};
    for (int i = 0; i < 3; i++) {
        if (i && !strcmp(names[i], base_name)) continue;
        snprintf(cand, sizeof cand, "%.*s/%s", dl, dir, names[i]);
        if (!strcmp(cand, mt->base_model)) continue;   /* the recorded path, tried above */
        if (try_base("next to the checkpoint", cand, false, mt, &t, out, outn) == 1) return CM_OK;
    }
    /* the Hugging Face cache, by the recorded pretrained tag */
    if (mt->base_pretrained[0]) {
        const CmPretrainedTag *tag = cm_pretrained_lookup(mt->base_arch[0] ? mt->base_arch : NULL, mt->base_pretrained);
        if (!tag) {
            tried_add(&t, "HF cache", mt->base_pretrained, "not a known pretrained tag");
        } else {
            CmHubOptions ho = cm_hub_default_options();
            ho.cache_dir = o ? o->cache_dir : NULL;
            char *cache = cm_hub_cache_dir(&ho);
            for (int i = 0; cache && i < 2; i++) {
                const char *file = i ? CM_HF_WEIGHTS_NAME : CM_HF_SAFE_WEIGHTS_NAME;
                char *p = cm_hub_cached_path(cache, tag->repo, file, NULL);
                if (p) {
                    int r = try_base("HF cache", p, false, mt, &t, out, outn);
                    free(p);
                    if (r == 1) { free(cache); return CM_OK; }
                } else {
                    snprintf(cand, sizeof cand, "%s/%s not cached", tag->repo, file);
                    tried_add(&t, "HF cache", cache, cand);
                }
            }
            free(cache);
        }
    }
    return cm_error(CM_ERR_IO, "%s: base model (SHA-256 %.12s...) not found; tried:%s\n  (pass --base-model PATH, or put "
                    "the base next to the checkpoint)", ckpt, mt->base_sha256[0] ? mt->base_sha256 : "unrecorded", t.text);
}

// ---------------------------------------------------------------------------------------------
// cm_model_open

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A folder: its open_clip_model.safetensors, else open_clip_pytorch_model.bin. A pretrained tag
   with a model name: the cached file. Else path itself. */
static cm_status resolve_weights(const char *path, const CmOpenOptions *o, char *out, size_t n) {
    if (is_dir(path)) {
        const char *names[2] = {CM_HF_SAFE_WEIGHTS_NAME, CM_HF_WEIGHTS_NAME};
        for (int i = 0; i < 2; i++) {
            snprintf(out, n, "%s/%s", path, names[i]);
            if (cm_file_exists(out)) return CM_OK;
        }
        return cm_error(CM_ERR_IO, "%s: a folder without %s or %s", path, names[0], names[1]);
    }
    snprintf(out, n, "%s", path);
    if (cm_file_exists(path) || !o || !o->config || strchr(path, '/')) return CM_OK;
    const CmPretrainedTag *tag = cm_pretrained_lookup(o->config, path);
    if (!tag) return CM_OK;   /* the open below names the missing file */
    CmHubOptions ho = cm_hub_default_options();
    ho.cache_dir = o->cache_dir;
    ho.allow_download = false;
    char *p = NULL;
    cm_status st = cm_pretrained_resolve(o->config, path, &ho, &p);
    if (st) return st;
    snprintf(out, n, "%s", p);
    free(p);
    return CM_OK;
}

/* A "tokenizer" key (bpe | bytes) at the top of a JSON file; "" when absent. */
static void json_tokenizer(const char *json_path, char *out, size_t n) {
    out[0] = 0;
    uint8_t *b;
    size_t len;
    if (cm_read_file(json_path, 1 << 24, &b, &len)) return;   /* then open fails on the config anyway */
    cJSON *j = cJSON_ParseWithLength((const char *)b, len);
    cm_free(b);
    const cJSON *t = cJSON_GetObjectItem(j, "tokenizer");
    if (cJSON_IsString(t)) snprintf(out, n, "%s", t->valuestring);
    cJSON_Delete(j);
}

static cm_status open_checkpoint(CmTensorFile *f, const char *path, const CmOpenOptions *o, CmModel **out, CmModelInfo *info) {
    CmModelConfig cfg;
    CmModel *m = NULL;
    CmTensorFile *bf = NULL;
    bool *loaded = NULL;
    cm_status st;
    if ((st = cm_ckpt_meta_read(f, path, &info->meta, &cfg))) return st;
    info->is_checkpoint = true;
    snprintf(info->config_source, sizeof info->config_source, "checkpoint");
    if ((st = cm_model_create(&cfg, &m))) return st;
    cm_model_init_lora_head(m, 0);
    loaded = cm_calloc(m->n_params ? m->n_params : 1, sizeof *loaded, "model load");
    if (!loaded) { st = CM_ERR_OOM; goto fail; }
    if (info->meta.trainable_only) {
        if ((st = find_base(path, &info->meta, o, info->base_model, sizeof info->base_model))) goto fail;
        if ((st = cm_tensorfile_open(info->base_model, &bf))) { cm_error_prefix("%s: base model", path); goto fail; }
        if ((st = cm_model_overlay(m, bf, info->base_model, loaded))) goto fail;
    }
    if ((st = cm_model_overlay(m, f, path, loaded))) goto fail;
    for (int i = 0; i < m->n_params; i++)
        if (!loaded[i] && m->params[i].group != CM_GROUP_LORA && m->params[i].group != CM_GROUP_HEAD) {
            st = cm_error(CM_ERR_SHAPE, "%s: tensor '%s' is in neither the checkpoint nor its base model", path, m->params[i].name);
            goto fail;
        }
    info->tokenizer = strcmp(info->meta.tokenizer, "bytes") ? CM_TOKENIZER_BPE : CM_TOKENIZER_BYTES;
    cm_free(loaded);
    if (bf) cm_tensorfile_close(bf);
    *out = m;
    return CM_OK;
fail:
    cm_free(loaded);
    if (bf) cm_tensorfile_close(bf);
    cm_model_free(m);
    return st;
}

cm_status cm_model_open(const char *path, const CmOpenOptions *o, CmModel **out, CmModelInfo *info) {
    if (!path || !out) return cm_error(CM_ERR_ARG, "cm_model_open: path and out are required");
    *out = NULL;
    CmModelInfo tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    if (cm_export_is_dir(path)) {   /* a `clipmod export` folder: its head file carries the config */
        char hp[4200];
        snprintf(hp, sizeof hp, "%s/%s", path, CM_EXPORT_HEAD);
        if (cm_file_exists(hp)) {
            if (o && o->config) return cm_error(CM_ERR_ARG, "%s: an export folder carries its config; --model-name is for weights files", path);
            return cm_export_open(path, out, info);
        }
    }
    cm_status st = resolve_weights(path, o, info->weights, sizeof info->weights);
    if (st) return st;
    const char *w = info->weights;
    CmTensorFile *f;
    if ((st = cm_tensorfile_open(w, &f))) return st;
    if (cm_tensorfile_metadata(f, "clipmod_checkpoint")) {
        st = open_checkpoint(f, w, o, out, info);
        cm_tensorfile_close(f);
        return st;
    }
    /* plain weights: config from the option, else cm_config_discover (the file's metadata,
       open_clip_config.json / config.json beside it, or shapes that are exactly a built-in
       config); LoRA and head initialised when absent */
    CmModelConfig cfg;
    char tok[16] = "";
    if (o && o->config) {
        if ((st = cm_config_load(o->config, &cfg))) { cm_tensorfile_close(f); return cm_error_prefix("model config %s", o->config); }
        snprintf(info->config_source, sizeof info->config_source, "option");
    } else {
        if ((st = cm_config_discover(f, &cfg, info->config_source, sizeof info->config_source))) { cm_tensorfile_close(f); return st; }
        if (strcmp(info->config_source, "metadata") && strcmp(info->config_source, "shapes"))
            json_tokenizer(info->config_source, tok, sizeof tok);   /* the side file's "tokenizer" key */
    }
    const char *mt = cm_tensorfile_metadata(f, "tokenizer");
    if (mt) snprintf(tok, sizeof tok, "%s", mt);
    /* LoRA and head exist only when the file holds them: a config says nothing about them, and a
       randomly initialised head would make predict / export / serve answer with noise */
    cfg.has_head = cm_tensorfile_find(f, "classifier_head.classifier.3.weight") != NULL;
    cfg.has_lora = cm_tensorfile_find(f, "transformer.resblocks.0.attn.out_proj.lora_A.weight") != NULL;
    CmModel *m = NULL;
    if ((st = cm_model_create(&cfg, &m))) { cm_tensorfile_close(f); return st; }
    st = cm_model_load(m, f, CM_LOAD_CLIP_ONLY_OK, 0);
    cm_tensorfile_close(f);
    if (st) { cm_model_free(m); return st; }
    if (tok[0] && strcmp(tok, "bpe") && strcmp(tok, "bytes")) {
        cm_model_free(m);
        return cm_error(CM_ERR_FORMAT, "%s: tokenizer '%s' (bpe or bytes)", w, tok);
    }
    info->tokenizer = !strcmp(tok, "bytes") || (!tok[0] && cfg.text.vocab_size == BYTE_VOCAB) ? CM_TOKENIZER_BYTES
                                                                                            : CM_TOKENIZER_BPE;
    *out = m;
    return CM_OK;
}
