/*
 * export.c — see export.h. Writing: a temporary sibling folder "<dir>.export-tmp.XXXXXX" gets
 * every file (each written atomically and fsynced), then the files are renamed into dir —
 * classifier_head.safetensors, the file that makes dir open as an export, removed first and
 * moved in last — and the folder is fsynced. Reading: strict, both ways (every CLIP tensor in
 * the weights file and nothing else; every head tensor in the head file and nothing else).
 */
#include "train/export.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/tokenizer.h"
#include "io/tensorfile.h"
#include "train/metrics.h"

static const char *const OUR_FILES[] = {CM_EXPORT_WEIGHTS, CM_EXPORT_CONFIG, CM_EXPORT_PEFT, CM_EXPORT_PEFT_CONFIG,
                                        CM_EXPORT_VOCAB_GZ, CM_EXPORT_VOCAB_TXT, CM_EXPORT_HEAD};   /* head last */
#define N_OUR_FILES ((int)(sizeof OUR_FILES / sizeof OUR_FILES[0]))

bool cm_export_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* 1: dir exists and holds entries; 0: empty or absent; -1: error (set). */
static int dir_nonempty(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) return 0;
        cm_error(CM_ERR_IO, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) { cm_error(CM_ERR_ARG, "%s: exists and is not a folder", dir); return -1; }
    DIR *d = opendir(dir);
    if (!d) { cm_error(CM_ERR_IO, "%s: cannot list: %s", dir, strerror(errno)); return -1; }
    struct dirent *e;
    int any = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { any = 1; break; }
    closedir(d);
    return any;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { (void)fsync(fd); close(fd); }
}

static char *json_print(cJSON *root) {
    char *s = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) cm_error(CM_ERR_OOM, "export: out of memory for JSON");
    return s;
}

/* OpenCLIP's model config (model_configs/ViT-B-32.json layout). */
static char *openclip_config_json(const CmModelConfig *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "embed_dim", c->embed_dim);
    if (c->quick_gelu) cJSON_AddBoolToObject(root, "quick_gelu", true);
    cJSON *vc = cJSON_AddObjectToObject(root, "vision_cfg");
    cJSON_AddNumberToObject(vc, "image_size", c->vision.image_size);
    cJSON_AddNumberToObject(vc, "layers", c->vision.layers);
    cJSON_AddNumberToObject(vc, "width", c->vision.width);
    cJSON_AddNumberToObject(vc, "patch_size", c->vision.patch_size);
    if (c->vision.head_width != 64) cJSON_AddNumberToObject(vc, "head_width", c->vision.head_width);
    if (c->vision.mlp_ratio != 4.0f) cJSON_AddNumberToObject(vc, "mlp_ratio", c->vision.mlp_ratio);
    cJSON *tc = cJSON_AddObjectToObject(root, "text_cfg");
    cJSON_AddNumberToObject(tc, "context_length", c->text.context_length);
    cJSON_AddNumberToObject(tc, "vocab_size", c->text.vocab_size);
    cJSON_AddNumberToObject(tc, "width", c->text.width);
    cJSON_AddNumberToObject(tc, "heads", c->text.heads);
    cJSON_AddNumberToObject(tc, "layers", c->text.layers);
    if (c->text.mlp_ratio != 4.0f) cJSON_AddNumberToObject(tc, "mlp_ratio", c->text.mlp_ratio);
    return json_print(root);
}

static char *head_config_json(const CmModelConfig *c) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "d", c->head.d);
    cJSON_AddNumberToObject(h, "heads", c->head.heads);
    cJSON_AddNumberToObject(h, "ff", c->head.ff);
    cJSON_AddNumberToObject(h, "layers", c->head.layers);
    cJSON_AddNumberToObject(h, "classes", c->head.n_classes);
    cJSON_AddStringToObject(h, "activation", "relu");
    cJSON_AddBoolToObject(h, "norm_first", false);
    cJSON_AddNumberToObject(h, "dropout_design", c->head.dropout);
    cJSON_AddNumberToObject(h, "classifier_dropout_design", c->head.cls_dropout);
    cJSON_AddStringToObject(h, "input", "[normalised image feature, normalised text feature] as a 2-token sequence per sample");
    char *s = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!s) cm_error(CM_ERR_OOM, "export: out of memory for JSON");
    return s;
}

static char *class_names_json(int n) {
    cJSON *a = cJSON_CreateArray();
    for (int c = 0; c < n; c++) {
        char buf[32];
        const char *nm = n == CM_N_CLASSES ? cm_class_name(c) : NULL;
        if (!nm) { snprintf(buf, sizeof buf, "class_%d", c); nm = buf; }
        cJSON_AddItemToArray(a, cJSON_CreateString(nm));
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    if (!s) cm_error(CM_ERR_OOM, "export: out of memory for JSON");
    return s;
}

static cm_status write_text(const char *path, const char *s) {
    size_t n = strlen(s);
    char *b = malloc(n + 2);
    if (!b) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    memcpy(b, s, n);
    b[n] = '\n';
    cm_status st = cm_write_file_atomic(path, b, n + 1);
    free(b);
    return st;
}

/* Tensors of m whose group is in mask (bit per CmParamGroup), names prefixed when prefix != NULL
   (names then point into names_buf, n_params * 160 bytes). */
static int select_tensors(const CmModel *m, unsigned mask, CmTensorOut *all, CmTensorOut *out, const char *prefix, char *names_buf) {
    int n = cm_model_tensor_list(m, false, all), k = 0;
    for (int i = 0; i < n; i++) {
        int idx = cm_model_find(m, all[i].name);
        if (idx < 0 || !(mask & (1u << m->params[idx].group))) continue;
        out[k] = all[i];
        if (prefix) {
            char *nm = names_buf + (size_t)k * 160;
            snprintf(nm, 160, "%s%s", prefix, all[i].name);
            out[k].name = nm;
        }
        k++;
    }
    return k;
}

static cm_status write_files(const CmModel *m, const CmModel *merged, const char *tmp, const CmExportOpts *o) {
    char path[4200];
    int np = m->n_params > merged->n_params ? m->n_params : merged->n_params;
    CmTensorOut *all = cm_calloc((size_t)np, sizeof *all, "export tensor list");
    CmTensorOut *sel = cm_calloc((size_t)np, sizeof *sel, "export tensor list");
    char *names = cm_calloc((size_t)np, 160, "export tensor names");
    char *cfgjson = NULL, *ocjson = NULL, *headjson = NULL, *classes = NULL, *lorajson = NULL, *peftjson = NULL;
    cm_status st = CM_OK;
    if (!all || !sel || !names) { st = CM_ERR_OOM; goto done; }

    /* the CLIP towers, LoRA merged */
    unsigned clip = (1u << CM_GROUP_VISION) | (1u << CM_GROUP_TEXT) | (1u << CM_GROUP_LOGIT_SCALE);
    int n = select_tensors(merged, clip, all, sel, NULL, NULL);
    const char *fmt[] = {"format", "pt"};
    snprintf(path, sizeof path, "%s/%s", tmp, CM_EXPORT_WEIGHTS);
    if ((st = cm_safetensors_write(path, sel, n, fmt, 1))) goto done;

    snprintf(path, sizeof path, "%s/%s", tmp, CM_EXPORT_CONFIG);
    if (!(ocjson = openclip_config_json(&merged->cfg))) { st = CM_ERR_OOM; goto done; }
    if ((st = write_text(path, ocjson))) goto done;

    if (o->peft) {
        n = select_tensors(m, 1u << CM_GROUP_LORA, all, sel, "base_model.model.", names);
        snprintf(path, sizeof path, "%s/%s", tmp, CM_EXPORT_PEFT);
        if ((st = cm_safetensors_write(path, sel, n, fmt, 1))) goto done;
        cJSON *pc = cJSON_CreateObject();
        cJSON_AddStringToObject(pc, "peft_type", "LORA");
        cJSON_AddNumberToObject(pc, "r", m->cfg.lora_rank);
        cJSON_AddNumberToObject(pc, "lora_alpha", m->cfg.lora_alpha);
        cJSON_AddNumberToObject(pc, "lora_dropout", 0.0);
        cJSON_AddStringToObject(pc, "bias", "none");
        cJSON *tm = cJSON_AddArrayToObject(pc, "target_modules");
        cJSON_AddItemToArray(tm, cJSON_CreateString("out_proj"));
        cJSON_AddBoolToObject(pc, "fan_in_fan_out", false);
        cJSON_AddBoolToObject(pc, "inference_mode", true);
        cJSON_AddNullToObject(pc, "task_type");
        cJSON_AddStringToObject(pc, "base_model_name_or_path", CM_EXPORT_WEIGHTS " (before merging: subtract alpha/r B A from attn.out_proj.weight)");
        if (!(peftjson = json_print(pc))) { st = CM_ERR_OOM; goto done; }
        snprintf(path, sizeof path, "%s/%s", tmp, CM_EXPORT_PEFT_CONFIG);
        if ((st = write_text(path, peftjson))) goto done;
    }

    if (o->vocab) {
        uint8_t *vb = NULL;
        size_t vn = 0;
        size_t vl = strlen(o->vocab);
        bool gz = vl > 3 && !strcmp(o->vocab + vl - 3, ".gz");
        CmTokenizer *tk = NULL;
        if ((st = cm_tokenizer_load(o->vocab, &tk))) { cm_error_prefix("export --vocab"); goto done; }
        cm_tokenizer_free(tk);
        if ((st = cm_read_file(o->vocab, (size_t)256 << 20, &vb, &vn))) { cm_error_prefix("export --vocab"); goto done; }
        snprintf(path, sizeof path, "%s/%s", tmp, gz ? CM_EXPORT_VOCAB_GZ : CM_EXPORT_VOCAB_TXT);
        st = cm_write_file_atomic(path, vb, vn);
        cm_free(vb);
        if (st) goto done;
    }

    /* the head + what is needed to run it (a model without a head is exported as a plain
       OpenCLIP folder) */
    if (!merged->cfg.has_head) goto done;
    n = select_tensors(merged, 1u << CM_GROUP_HEAD, all, sel, NULL, NULL);
    if (!(cfgjson = cm_config_to_json(&merged->cfg)) || !(headjson = head_config_json(&merged->cfg)) ||
        !(classes = class_names_json(merged->cfg.head.n_classes))) { st = CM_ERR_OOM; goto done; }
    {
        cJSON *lj = cJSON_CreateObject();
        cJSON_AddBoolToObject(lj, "merged", m->cfg.has_lora);
        if (m->cfg.has_lora) {
            cJSON_AddNumberToObject(lj, "r", m->cfg.lora_rank);
            cJSON_AddNumberToObject(lj, "alpha", m->cfg.lora_alpha);
            cJSON_AddStringToObject(lj, "target", "attn.out_proj of every residual block of both towers");
        }
        lorajson = cJSON_PrintUnformatted(lj);
        cJSON_Delete(lj);
        if (!lorajson) { st = cm_error(CM_ERR_OOM, "export: out of memory"); goto done; }
    }
    const char *tokenizer = o->tokenizer && *o->tokenizer ? o->tokenizer : "bpe";
    const char *meta[] = {"format", "pt", "clipmod_export", "1", "model_config", cfgjson, "head_config", headjson,
                          "tokenizer", tokenizer, "class_names", classes, "lora", lorajson,
                          "source", o->source ? o->source : ""};
    snprintf(path, sizeof path, "%s/%s", tmp, CM_EXPORT_HEAD);
    st = cm_safetensors_write(path, sel, n, meta, (int)(sizeof meta / sizeof meta[0]) / 2);
done:
    cm_free(all); cm_free(sel); cm_free(names); cm_free(cfgjson);
    cJSON_free(ocjson); cJSON_free(headjson); cJSON_free(classes); cJSON_free(lorajson); cJSON_free(peftjson);
    return st;
}

static void remove_tmp(const char *tmp) {
    char p[4200];
    for (int i = 0; i < N_OUR_FILES; i++) { snprintf(p, sizeof p, "%s/%s", tmp, OUR_FILES[i]); unlink(p); }
    rmdir(tmp);
}

cm_status cm_export_write(const CmModel *m, const char *dir_in, const CmExportOpts *o) {
    CmExportOpts def = {0};
    if (!o) o = &def;
    if (o->peft && !m->cfg.has_lora) return cm_error(CM_ERR_ARG, "export --peft: the model has no LoRA adapters");
    if (o->tokenizer && *o->tokenizer && strcmp(o->tokenizer, "bpe") && strcmp(o->tokenizer, "bytes"))
        return cm_error(CM_ERR_ARG, "export: unknown tokenizer kind '%s' (bpe, bytes)", o->tokenizer);
    if (o->vocab && o->tokenizer && !strcmp(o->tokenizer, "bytes"))
        return cm_error(CM_ERR_ARG, "export --vocab: the model uses the byte-level tokenizer, which needs no vocabulary");
    char dir[4000];
    size_t dl = strlen(dir_in);
    if (!dl || dl >= sizeof dir) return cm_error(CM_ERR_ARG, "export: bad output folder '%s'", dir_in);
    memcpy(dir, dir_in, dl + 1);
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    int ne = dir_nonempty(dir);
    if (ne < 0) return cm_last_status();
    if (ne && !o->overwrite) return cm_error(CM_ERR_ARG, "%s: exists and is not empty (pass --overwrite to replace an export there)", dir);
    cm_status st = cm_mkdir_p(dir);
    if (st) return st;
    char tmp[4100];
    snprintf(tmp, sizeof tmp, "%s.export-tmp.XXXXXX", dir);
    if (!mkdtemp(tmp)) return cm_error(CM_ERR_IO, "%s: cannot create a temporary folder: %s", tmp, strerror(errno));
    CmModel *merged = NULL;
    if (m->cfg.has_lora) st = cm_model_merge_lora(m, &merged);
    if (!st) st = write_files(m, merged ? merged : m, tmp, o);
    if (merged) cm_model_free(merged);
    if (st) { remove_tmp(tmp); return st; }
    /* move in: the head file (what makes dir an export) goes away first and comes back last;
       files of an earlier export that this one does not write (PEFT) are removed */
    char src[4200], dst[4200];
    snprintf(dst, sizeof dst, "%s/%s", dir, CM_EXPORT_HEAD);
    if (unlink(dst) && errno != ENOENT) st = cm_error(CM_ERR_IO, "%s: cannot replace: %s", dst, strerror(errno));
    for (int i = 0; i < N_OUR_FILES && !st; i++) {
        snprintf(src, sizeof src, "%s/%s", tmp, OUR_FILES[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, OUR_FILES[i]);
        if (!cm_file_exists(src)) {
            if (unlink(dst) && errno != ENOENT) st = cm_error(CM_ERR_IO, "%s: cannot remove: %s", dst, strerror(errno));
            continue;
        }
        if (rename(src, dst)) st = cm_error(CM_ERR_IO, "%s: cannot move into place: %s", dst, strerror(errno));
    }
    fsync_dir(dir);
    remove_tmp(tmp);
    return st;
}

// ---------------------------------------------------------------------------------------------
// reading

cm_status cm_export_open(const char *dir, CmModel **out, CmCkptMeta *meta) {
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
        if (!st && meta) { memset(meta, 0, sizeof *meta); snprintf(meta->base_model, sizeof meta->base_model, "%.1000s", wpath); }
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
    if (meta) {
        memset(meta, 0, sizeof *meta);
        snprintf(meta->base_model, sizeof meta->base_model, "%.1000s", wpath);
        snprintf(meta->tokenizer, sizeof meta->tokenizer, "%s", tok ? tok : "bpe");
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
