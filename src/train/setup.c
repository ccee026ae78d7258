/*
 * setup.c — the model a training run starts from (see setup.h).
 */
#include "train/setup.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

/* OpenCLIP pretrained tags clipmod knows the Hugging Face repository of. */
static const struct { const char *model, *tag, *repo; } known_tags[] = {
    {"ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"},
    {"ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"},
    {"ViT-L-14", "laion2b_s32b_b82k", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K"},
};

static cm_status dupstr(const char *s, char **out) {
    *out = cm_malloc(strlen(s) + 1, "path");
    if (!*out) return CM_ERR_OOM;
    strcpy(*out, s);
    return CM_OK;
}

cm_status cm_resolve_pretrained(const char *model, const char *pretrained, const char *cache_dir, char **out) {
    *out = NULL;
    if (cm_file_exists(pretrained)) return dupstr(pretrained, out);
    const char *repo = NULL;
    for (size_t i = 0; i < sizeof known_tags / sizeof known_tags[0]; i++)
        if (!strcmp(known_tags[i].tag, pretrained) && (!model || !strncmp(model, known_tags[i].model, strlen(known_tags[i].model))))
            repo = known_tags[i].repo;
    if (!repo) {
        if (strchr(pretrained, '/') || strchr(pretrained, '.'))
            return cm_error(CM_ERR_IO, "--pretrained %s: no such file", pretrained);
        return cm_error(CM_ERR_ARG, "--pretrained %s: unknown tag for --model %s (known: laion2b_s34b_b79k for ViT-B-32), or give a weights file",
                        pretrained, model ? model : "?");
    }
    char hub[2048];
    const char *hf = getenv("HF_HOME"), *home = getenv("HOME");
    if (cache_dir && *cache_dir) snprintf(hub, sizeof hub, "%s", cache_dir);
    else if (hf && *hf) snprintf(hub, sizeof hub, "%s/hub", hf);
    else snprintf(hub, sizeof hub, "%s/.cache/huggingface/hub", home ? home : ".");
    char rname[256];   /* "laion/CLIP-..." -> "laion--CLIP-..." */
    size_t k = 0;
    for (const char *p = repo; *p && k + 3 < sizeof rname; p++) {
        if (*p == '/') { rname[k++] = '-'; rname[k++] = '-'; } else rname[k++] = *p;
    }
    rname[k] = 0;
    char repodir[2400];
    snprintf(repodir, sizeof repodir, "%s/models--%s/snapshots", hub, rname);
    DIR *d = opendir(repodir);
    if (d) {
        static const char *files[] = {"open_clip_model.safetensors", "open_clip_pytorch_model.bin"};
        struct dirent *e;
        char best[3000] = "";
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                for (int k = 0; k < 2; k++) {
                    char p[3000];
                    snprintf(p, sizeof p, "%s/%s/%s", repodir, e->d_name, files[k]);
                    /* prefer safetensors over .bin, whatever the snapshot order */
                    if (cm_file_exists(p) && (!best[0] || (k == 0 && strstr(best, ".bin")))) snprintf(best, sizeof best, "%s", p);
                }
        closedir(d);
        if (best[0]) return dupstr(best, out);
    }
    return cm_error(CM_ERR_IO, "--pretrained %s: not found in the Hugging Face cache %s (%s/*/open_clip_model.safetensors); "
                    "download it there or pass the file", pretrained, hub, repodir);
}

cm_status cm_train_build_model(const CmTrainOpts *o, CmModel **out, char **base_path) {
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
        if ((st = cm_resolve_pretrained(cfg.name, o->pretrained, o->cache_dir, base_path))) goto fail;
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
