/*
 * torchzip.c — PyTorch zip checkpoints (torch.save, torch >= 1.6) read without Python.
 *
 * Archive: <prefix>/data.pkl (the pickle), <prefix>/data/<key> (raw little-endian storages),
 * <prefix>/version, optionally <prefix>/byteorder. The prefix varies (torch 1.13 uses the file stem,
 * newer torch "archive"), so it is taken from the entry ending in "data.pkl".
 * The pickle (run by the restricted unpickler in pickle.c) must give either a state dict
 * {name: tensor} (open_clip_pytorch_model.bin) or an OpenCLIP training checkpoint
 * {"epoch", "name", "state_dict": {...}, "optimizer": AdamW.state_dict()} (epoch_N.pt).
 * Tensors become zero-copy views into the mmap: C-contiguous only (a non-contiguous stride is an
 * error naming the tensor), bounds checked against their storage. A "module." prefix on every key
 * is stripped. The optimizer state is exposed through CmCheckpointInfo.
 */
#include "io/tensorfile_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    CmTensorFile *f;
    CmZip *z;
    char prefix[512];
} LoadCtx;

/* persistent id ('storage', <storage type>, key, location, numel) -> a PV_STORAGE over data/<key> */
static Pv *persistent_load(void *vctx, PvArena *a, Pv *pid) {
    LoadCtx *c = vctx;
    if (pid->kind != PV_TUPLE || pid->n != 5 || pid->items[0]->kind != PV_STR || strcmp(pid->items[0]->s, "storage") ||
        pid->items[1]->kind != PV_GLOBAL || pid->items[1]->i != PG_STORAGE_TYPE || pid->items[2]->kind != PV_STR ||
        pid->items[3]->kind != PV_STR || pid->items[4]->kind != PV_INT) {
        cm_error(CM_ERR_FORMAT, "persistent id is not ('storage', <torch storage type>, key, location, numel)");
        return NULL;
    }
    const char *key = pid->items[2]->s;
    CmDType dt = pid->items[1]->dtype;
    int64_t numel = pid->items[4]->i;
    char name[1200];
    snprintf(name, sizeof name, "%sdata/%s", c->prefix, key);
    int idx = cm_zip_find(c->z, name);
    if (idx < 0) { cm_error(CM_ERR_FORMAT, "storage '%s' not found in the archive (entry %s)", key, name); return NULL; }
    size_t need;
    if (numel < 0 || !cm_mul_ok((size_t)numel, cm_dtype_size(dt), &need) || need > c->z->e[idx].size) {
        cm_error(CM_ERR_FORMAT, "storage '%s': %lld %s elements do not fit its %zu bytes", key, (long long)numel,
                 cm_dtype_name(dt), c->z->e[idx].size);
        return NULL;
    }
    Pv *s = cm_pv_new(a, PV_STORAGE);
    if (!s) return NULL;
    s->dtype = dt;
    s->data = c->z->e[idx].data;
    s->nbytes = need;
    s->key = key;
    return s;
}

/* Tensor -> view (name copied into the file); contiguity and bounds checked. */
static cm_status make_view(CmTensorFile *f, const Pv *t, const char *name, bool extra, CmTensorView **out) {
    if (t->kind != PV_TENSOR)
        return cm_error(CM_ERR_FORMAT, "%s: entry '%s' is a %s, not a tensor", f->path, name, cm_pv_kind_name(t->kind));
    CmTensorView *v = cm_tf_add(f, extra);
    if (!v) return cm_last_status();
    if (!(v->name = cm_tf_strdup(f, name, strlen(name)))) return cm_last_status();
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    memcpy(v->shape, t->shape, sizeof v->shape);
    if (!cm_tf_sizes(v))
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': negative or absurd shape", f->path, name);
    if (v->numel) {
        int64_t want = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] != 1 && t->stride[d] != want) {
                char sh[160] = "", sd[160] = "";
                for (int k = 0; k < t->ndim; k++) {
                    snprintf(sh + strlen(sh), sizeof sh - strlen(sh), k ? ",%lld" : "%lld", (long long)t->shape[k]);
                    snprintf(sd + strlen(sd), sizeof sd - strlen(sd), k ? ",%lld" : "%lld", (long long)t->stride[k]);
                }
                return cm_error(CM_ERR_UNSUPPORTED, "%s: tensor '%s' is not contiguous (shape [%s], stride [%s]); "
                                "save it with .contiguous()", f->path, name, sh, sd);
            }
            want *= t->shape[d];
        }
    }
    size_t es = cm_dtype_size(v->dtype), off;
    const Pv *s = t->storage;
    if (t->offset < 0 || !cm_mul_ok((size_t)t->offset, es, &off) || off > s->nbytes || v->nbytes > s->nbytes - off)
        return cm_error(CM_ERR_FORMAT, "%s: tensor '%s': offset %lld + %zu elements exceed storage '%s' (%zu bytes)",
                        f->path, name, (long long)t->offset, v->numel, s->key, s->nbytes);
    v->data = s->data + off;
    *out = v;
    return CM_OK;
}

static bool pv_num(const Pv *v, double *x) {
    if (!v) return false;
    if (v->kind == PV_FLOAT) { *x = v->f; return true; }
    if (v->kind == PV_INT || v->kind == PV_BOOL) { *x = (double)v->i; return true; }
    return false;
}

static cm_status read_state_dict(CmTensorFile *f, const Pv *sd) {
    if (sd->kind != PV_DICT)
        return cm_error(CM_ERR_FORMAT, "%s: the pickle holds a %s, not a state dict", f->path, cm_pv_kind_name(sd->kind));
    bool strip = sd->n > 0;
    for (size_t i = 0; i < sd->n; i += 2) {
        if (sd->items[i]->kind != PV_STR)
            return cm_error(CM_ERR_FORMAT, "%s: state dict key %zu is a %s, not a string", f->path, i / 2,
                            cm_pv_kind_name(sd->items[i]->kind));
        if (strncmp(sd->items[i]->s, "module.", 7)) strip = false;
    }
    for (size_t i = 0; i < sd->n; i += 2) {
        CmTensorView *v;
        cm_status st = make_view(f, sd->items[i + 1], sd->items[i]->s + (strip ? 7 : 0), false, &v);
        if (st) return st;
    }
    return CM_OK;
}

static int cmp_state(const void *a, const void *b) {
    int64_t x = ((const CmOptState *)a)->index, y = ((const CmOptState *)b)->index;
    return x < y ? -1 : x > y;
}

static cm_status read_optimizer(CmTensorFile *f, const Pv *opt) {
    CmCheckpointInfo *ck = &f->ckpt;
    const Pv *state = cm_pv_get(opt, "state"), *groups = cm_pv_get(opt, "param_groups");
    if (opt->kind != PV_DICT || !state || state->kind != PV_DICT || !groups || groups->kind != PV_LIST)
        return cm_error(CM_ERR_FORMAT, "%s: \"optimizer\" is not a torch optimizer state_dict (state dict + "
                        "param_groups list)", f->path);
    size_t ns = state->n / 2;
    f->ck_state = calloc(ns ? ns : 1, sizeof *f->ck_state);
    f->ck_groups = calloc(groups->n ? groups->n : 1, sizeof *f->ck_groups);
    if (!f->ck_state || !f->ck_groups) return cm_error(CM_ERR_OOM, "%s: out of memory", f->path);
    /* views are added first and pointers taken after, since the extra array may move while growing */
    int64_t *view_idx = calloc(ns * 3 + 1, sizeof *view_idx);
    if (!view_idx) return cm_error(CM_ERR_OOM, "%s: out of memory", f->path);
    cm_status st = CM_OK;
    static const char *const tnames[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    for (size_t i = 0; i < ns && !st; i++) {
        const Pv *k = state->items[2 * i], *s = state->items[2 * i + 1];
        CmOptState *o = &f->ck_state[i];
        if (k->kind != PV_INT || s->kind != PV_DICT) {
            st = cm_error(CM_ERR_FORMAT, "%s: optimizer state entry %zu is not {int: dict}", f->path, i);
            break;
        }
        o->index = k->i;
        const Pv *step = cm_pv_get(s, "step");
        if (step && step->kind == PV_TENSOR) {
            CmTensorView *sv;
            char nm[96];
            snprintf(nm, sizeof nm, "optimizer.state.%lld.step", (long long)o->index);
            if ((st = make_view(f, step, nm, true, &sv))) break;
            float x;
            if (sv->numel != 1 || cm_tensor_to_f32(sv, &x)) {
                st = cm_error(CM_ERR_FORMAT, "%s: optimizer state %lld: step is not a scalar float tensor", f->path,
                              (long long)o->index);
                break;
            }
            o->step = x;
            o->has_step = true;
        } else if (step) {
            if (!pv_num(step, &o->step)) {
                st = cm_error(CM_ERR_FORMAT, "%s: optimizer state %lld: step is a %s", f->path, (long long)o->index,
                              cm_pv_kind_name(step->kind));
                break;
            }
            o->has_step = true;
        }
        for (int t = 0; t < 3 && !st; t++) {
            const Pv *tv = cm_pv_get(s, tnames[t]);
            view_idx[3 * i + t] = -1;
            if (!tv) continue;
            char nm[96];
            snprintf(nm, sizeof nm, "optimizer.state.%lld.%s", (long long)o->index, tnames[t]);
            CmTensorView *v;
            if ((st = make_view(f, tv, nm, true, &v))) break;
            view_idx[3 * i + t] = v - f->extra;
        }
    }
    for (size_t i = 0; i < ns && !st; i++) {
        CmOptState *o = &f->ck_state[i];
        o->exp_avg = view_idx[3 * i] >= 0 ? &f->extra[view_idx[3 * i]] : NULL;
        o->exp_avg_sq = view_idx[3 * i + 1] >= 0 ? &f->extra[view_idx[3 * i + 1]] : NULL;
        o->max_exp_avg_sq = view_idx[3 * i + 2] >= 0 ? &f->extra[view_idx[3 * i + 2]] : NULL;
    }
    free(view_idx);
    if (st) return st;
    qsort(f->ck_state, ns, sizeof *f->ck_state, cmp_state);
    for (size_t i = 1; i < ns; i++)
        if (f->ck_state[i].index == f->ck_state[i - 1].index)
            return cm_error(CM_ERR_FORMAT, "%s: optimizer state index %lld appears twice", f->path,
                            (long long)f->ck_state[i].index);
    for (size_t g = 0; g < groups->n; g++) {
        const Pv *pg = groups->items[g];
        CmOptParamGroup *o = &f->ck_groups[g];
        const Pv *betas = cm_pv_get(pg, "betas"), *params = cm_pv_get(pg, "params"), *x;
        if (pg->kind != PV_DICT || !pv_num(cm_pv_get(pg, "lr"), &o->lr) || !pv_num(cm_pv_get(pg, "eps"), &o->eps) ||
            !pv_num(cm_pv_get(pg, "weight_decay"), &o->weight_decay) || !betas ||
            (betas->kind != PV_TUPLE && betas->kind != PV_LIST) || betas->n != 2 || !pv_num(betas->items[0], &o->beta1) ||
            !pv_num(betas->items[1], &o->beta2) || !params || params->kind != PV_LIST)
            return cm_error(CM_ERR_FORMAT, "%s: optimizer param_groups[%zu] lacks lr/betas/eps/weight_decay/params", f->path, g);
        o->amsgrad = (x = cm_pv_get(pg, "amsgrad")) && x->kind == PV_BOOL && x->i;
        o->maximize = (x = cm_pv_get(pg, "maximize")) && x->kind == PV_BOOL && x->i;
        if (!pv_num(cm_pv_get(pg, "initial_lr"), &o->initial_lr)) o->initial_lr = NAN;
        int64_t *idx = malloc((params->n ? params->n : 1) * sizeof *idx);
        if (!idx || !cm_tf_own(f, idx)) return cm_error(CM_ERR_OOM, "%s: out of memory", f->path);
        for (size_t k = 0; k < params->n; k++) {
            if (params->items[k]->kind != PV_INT)
                return cm_error(CM_ERR_FORMAT, "%s: optimizer param_groups[%zu].params[%zu] is not an int", f->path, g, k);
            idx[k] = params->items[k]->i;
        }
        o->params = idx;
        o->n_params = (int)params->n;
    }
    ck->has_optimizer = true;
    ck->n_state = (int)ns;
    ck->state = f->ck_state;
    ck->n_groups = (int)groups->n;
    ck->groups = f->ck_groups;
    return CM_OK;
}

static cm_status interpret(CmTensorFile *f, const Pv *top) {
    if (top->kind != PV_DICT)
        return cm_error(CM_ERR_FORMAT, "%s: the pickle holds a %s, not a dict of tensors", f->path, cm_pv_kind_name(top->kind));
    const Pv *sd = cm_pv_get(top, "state_dict");
    if (!sd) return read_state_dict(f, top);
    cm_status st = read_state_dict(f, sd);
    if (st) return st;
    CmCheckpointInfo *ck = &f->ckpt;
    f->has_ckpt = true;
    const Pv *x;
    if ((x = cm_pv_get(top, "epoch")) && x->kind == PV_INT) { ck->has_epoch = true; ck->epoch = x->i; }
    if ((x = cm_pv_get(top, "name")) && x->kind == PV_STR && !(ck->name = cm_tf_strdup(f, x->s, strlen(x->s))))
        return cm_last_status();
    if ((x = cm_pv_get(top, "optimizer")) && x->kind != PV_NONE) return read_optimizer(f, x);
    return CM_OK;
}

cm_status cm_torchzip_parse(CmTensorFile *f) {
    CmZip z;
    cm_status st = cm_zip_open(&z, f->map, f->map_len, f->path);
    if (st) return st;
    LoadCtx c = {.f = f, .z = &z};
    int pkl = -1;
    for (int i = 0; i < z.n && pkl < 0; i++) {
        const char *nm = z.e[i].name, *slash = strchr(nm, '/');
        size_t len = strlen(nm);
        if (len >= 8 && !strcmp(nm + len - 8, "data.pkl") && (len == 8 || nm[len - 9] == '/') &&
            (!slash || slash == nm + len - 9) && len - 8 < sizeof c.prefix) {
            pkl = i;
            memcpy(c.prefix, nm, len - 8);
            c.prefix[len - 8] = 0;
        }
    }
    PvArena *a = NULL;
    if (pkl < 0) { st = cm_error(CM_ERR_FORMAT, "%s: zip archive has no data.pkl: not a torch.save checkpoint", f->path); goto out; }
    char bo[600];
    snprintf(bo, sizeof bo, "%sbyteorder", c.prefix);
    int ibo = cm_zip_find(&z, bo);
    if (ibo >= 0 && !(z.e[ibo].size == 6 && !memcmp(z.e[ibo].data, "little", 6))) {
        st = cm_error(CM_ERR_UNSUPPORTED, "%s: big-endian torch checkpoint is not supported", f->path);
        goto out;
    }
    a = cm_pv_arena_new();
    if (!a) { st = cm_error(CM_ERR_OOM, "%s: out of memory", f->path); goto out; }
    Pv *top = NULL;
    if ((st = cm_unpickle(z.e[pkl].data, z.e[pkl].size, f->path, a, persistent_load, &c, &top))) goto out;
    if ((st = interpret(f, top))) goto out;
    /* inflated storages now belong to the file */
    for (int i = 0; i < z.n; i++)
        if (z.e[i].inflated) {
            z.e[i].inflated = false;
            if (!cm_tf_own(f, (void *)z.e[i].data)) { st = cm_last_status(); goto out; }
        }
out:
    cm_pv_arena_free(a);
    cm_zip_close(&z);
    return st;
}
