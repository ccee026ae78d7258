/*
 * export_open.c — opening a folder written by `clipmod export` (or a plain OpenCLIP model folder):
 * the reading half of src/train/export.c, here so that cm_model_open (the one opener of every
 * inference command) can take such a folder without the model layer reaching up into train/.
 */
#include "model/export_open.h"
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "io/tensorfile.h"

bool cm_export_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

cm_status cm_export_open(const char *dir, CmModel **out, CmModelInfo *info) {
    *out = NULL;
    char wpath[4200], hpath[4200], cpath[4200];
    snprintf(wpath, sizeof wpath, "%s/%s", dir, CM_EXPORT_WEIGHTS);
    snprintf(hpath, sizeof hpath, "%s/%s", dir, CM_EXPORT_HEAD);
    snprintf(cpath, sizeof cpath, "%s/%s", dir, CM_EXPORT_CONFIG);
    if (!cm_file_exists(wpath))
        return cm_error(CM_ERR_IO, "%s: a folder without %s (not a clipmod export or OpenCLIP model folder)", dir, CM_EXPORT_WEIGHTS);
    if (!cm_file_exists(hpath)) {
        /* a plain OpenCLIP model folder: CLIP only (config from open_clip_config.json when present) */
        CmModelConfig cfg;
        bool have_cfg = cm_file_exists(cpath);
        if (have_cfg) {
            /* the JSON says nothing about LoRA / head: they exist only if the file holds them
               (never a randomly initialised head that would answer predict with noise) */
            CmTensorFile *f = NULL;
            if (cm_config_from_json_file(cpath, &cfg) || cm_tensorfile_open(wpath, &f)) return cm_last_status();
            cfg.has_head = cm_tensorfile_find(f, "classifier_head.classifier.3.weight") != NULL;
            cfg.has_lora = cm_tensorfile_find(f, "transformer.resblocks.0.attn.out_proj.lora_A.weight") != NULL;
            cm_tensorfile_close(f);
        }
        cm_status st = cm_model_from_file(wpath, have_cfg ? &cfg : NULL, CM_LOAD_CLIP_ONLY_OK, 0, out);
        if (!st && info) {
            snprintf(info->weights, sizeof info->weights, "%.1000s", wpath);
            snprintf(info->config_source, sizeof info->config_source, "%.1000s", have_cfg ? cpath : "shapes");
        }
        return st;
    }
    CmTensorFile *hf = NULL, *wf = NULL;
    CmModel *m = NULL;
    cm_status st = cm_tensorfile_open(hpath, &hf);
    if (st) return st;
    const char *mc = cm_tensorfile_metadata(hf, "model_config"), *tok = cm_tensorfile_metadata(hf, "tokenizer");
    if (!cm_tensorfile_metadata(hf, "clipmod_export") || !mc) {
        st = cm_error(CM_ERR_FORMAT, "%s: no clipmod export metadata (\"clipmod_export\", \"model_config\")", hpath);
        goto fail;
    }
    if (tok && strcmp(tok, "bpe") && strcmp(tok, "bytes")) { st = cm_error(CM_ERR_FORMAT, "%s: unknown tokenizer '%s'", hpath, tok); goto fail; }
    CmModelConfig cfg;
    if ((st = cm_config_from_json(mc, strlen(mc), hpath, &cfg))) goto fail;
    cfg.has_lora = false;
    cfg.has_head = true;
    if ((st = cm_model_create(&cfg, &m))) goto fail;
    if ((st = cm_tensorfile_open(wpath, &wf))) goto fail;
    if ((st = cm_model_load(m, wf, CM_LOAD_PARTIAL_OK, 0)) || (st = cm_model_load(m, hf, CM_LOAD_PARTIAL_OK, 0))) goto fail;
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i];
        bool head = p->group == CM_GROUP_HEAD;
        if (!cm_tensorfile_find(head ? hf : wf, p->name)) {
            st = cm_error(CM_ERR_SHAPE, "%s: tensor '%s' missing", head ? hpath : wpath, p->name);
            goto fail;
        }
        if (cm_tensorfile_find(head ? wf : hf, p->name)) {
            st = cm_error(CM_ERR_SHAPE, "%s: unexpected tensor '%s' (belongs in %s)", head ? wpath : hpath, p->name, head ? CM_EXPORT_HEAD : CM_EXPORT_WEIGHTS);
            goto fail;
        }
    }
    if (info) {
        snprintf(info->weights, sizeof info->weights, "%.1000s", wpath);
        snprintf(info->config_source, sizeof info->config_source, "%.1000s", hpath);
        info->tokenizer = tok && !strcmp(tok, "bytes") ? CM_TOKENIZER_BYTES : CM_TOKENIZER_BPE;
    }
    cm_tensorfile_close(wf);
    cm_tensorfile_close(hf);
    *out = m;
    return CM_OK;
fail:
    if (wf) cm_tensorfile_close(wf);
    cm_tensorfile_close(hf);
    if (m) cm_model_free(m);
    return st;
}
