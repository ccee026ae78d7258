/*
 * setup.c — the model a training run starts from (see setup.h).
 */
#include "train/setup.h"

#include "io/hub.h"

#include <stdlib.h>
#include <string.h>

cm_status cm_resolve_pretrained(const char *model, const char *pretrained, const char *cache_dir, bool offline, char **out) {
    *out = NULL;
    CmHubOptions ho = cm_hub_default_options();
    if (cache_dir && *cache_dir) ho.cache_dir = cache_dir;
    if (offline) ho.allow_download = false;
    char *p = NULL;
    cm_status st = cm_pretrained_resolve(model, pretrained, &ho, &p);
    if (st) return st;   /* the message names the tag, repo, cache and what was tried */
    *out = cm_malloc(strlen(p) + 1, "pretrained path");
    if (*out) strcpy(*out, p);
    free(p);
    return *out ? CM_OK : CM_ERR_OOM;
}

cm_status cm_train_build_model(const CmTrainConfig *o, CmModel **out, char **base_path) {
    *out = NULL;
    *base_path = NULL;
    CmModelConfig cfg;
    cm_status st = cm_config_load(o->model, &cfg);
    if (st) return cm_error_prefix("--model %s", o->model);
    if (o->force_quick_gelu) cfg.quick_gelu = true;
    cfg.has_lora = o->enable_lora;
    cfg.lora_rank = o->lora_rank;
    cfg.lora_alpha = (float)o->lora_alpha;
    cfg.has_head = true;
    if ((st = cm_config_validate(&cfg))) return cm_error_prefix("--model %s", o->model);
    CmModel *m;
    if ((st = cm_model_create(&cfg, &m))) return st;
    uint64_t seed = (uint64_t)o->seed;
    if (o->pretrained && *o->pretrained) {
        if ((st = cm_resolve_pretrained(o->model, o->pretrained, o->cache_dir, o->offline, base_path))) goto fail;
        cm_info("Loading pretrained %s weights (%s).", o->model, *base_path);
        if ((st = cm_model_load_file(m, *base_path, CM_LOAD_CLIP_ONLY_OK, seed))) { cm_error_prefix("--pretrained"); goto fail; }
    } else {
        cm_info("No --pretrained weights: initialising %s from --seed %lld.", o->model, (long long)o->seed);
        cm_model_init(m, seed);
    }
    CmTrainMode mode = o->enable_lora ? CM_TRAIN_LORA : CM_TRAIN_FULL;
    if ((st = cm_model_set_mode(m, mode, o->lock_image, o->lock_text))) goto fail;
    *out = m;
    return CM_OK;
fail:
    cm_model_free(m);
    cm_free(*base_path);
    *base_path = NULL;
    return st;
}
