/*
 * optim.c — AdamW (torch 1.13 single-tensor), gradient clipping, LR schedules (OpenCLIP
 * scheduler.py) and the parameter-group rule. See optim.h.
 *
 * The arithmetic is the backend's (kernels/adamw.c: adamw, sumsq, scale). Rounding follows torch's
 * CPU kernels step by step in fp32 with the Python-float scalars
 * converted to float (p.mul_(1-lr*wd); exp_avg.mul_(b1).add_(g, alpha=1-b1) — an FMA in torch's
 * vectorised add; exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2); denom = sqrt(v)/bc2_sqrt + eps;
 * p.addcdiv_(m, denom, value=-lr/bc1)), so results agree with torch to the last bit or so.
 */
#include "train/optim.h"
#include "kernels/backend.h"

#include <math.h>
#include <string.h>

bool cm_param_decays(const char *name, int ndim) {
    if (ndim < 2) return false;
    static const char *const excl[] = {"bn", "ln", "bias", "logit_scale"};
    for (size_t i = 0; i < sizeof excl / sizeof excl[0]; i++)
        if (strstr(name, excl[i])) return false;
    return true;
}

cm_status cm_adamw_init(CmAdamW *o, const CmOptParam *params, int n, double beta1, double beta2,
                        double eps, double wd) {
    memset(o, 0, sizeof *o);
    if (n < 0) return cm_error(CM_ERR_ARG, "optimizer: negative parameter count %d", n);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return cm_error(CM_ERR_ARG, "optimizer: betas (%g, %g) must be in [0, 1) (--beta1/--beta2)", beta1, beta2);
    if (!(eps >= 0) || !(wd >= 0) || !isfinite(eps) || !isfinite(wd))
        return cm_error(CM_ERR_ARG, "optimizer: eps %g and weight decay %g must be finite and >= 0 (--eps/--wd)", eps, wd);
    o->beta1 = beta1; o->beta2 = beta2; o->eps = eps; o->wd = wd; o->n = n;
    o->p = cm_calloc(n ? n : 1, sizeof *o->p, "optimizer params");
    o->m = cm_calloc(n ? n : 1, sizeof *o->m, "optimizer exp_avg table");
    o->v = cm_calloc(n ? n : 1, sizeof *o->v, "optimizer exp_avg_sq table");
    o->step = cm_calloc(n ? n : 1, sizeof *o->step, "optimizer steps");
    if (!o->p || !o->m || !o->v || !o->step) { cm_adamw_free(o); return CM_ERR_OOM; }
    if (n) memcpy(o->p, params, sizeof *o->p * n);
    for (int i = 0; i < n; i++) {
        o->m[i] = cm_calloc(params[i].numel ? params[i].numel : 1, sizeof(float), params[i].name);
        o->v[i] = cm_calloc(params[i].numel ? params[i].numel : 1, sizeof(float), params[i].name);
        if (!o->m[i] || !o->v[i]) { cm_adamw_free(o); return cm_error_prefix("optimizer state"); }
    }
    return CM_OK;
}

void cm_adamw_free(CmAdamW *o) {
    if (o->m) for (int i = 0; i < o->n; i++) cm_free(o->m[i]);
    if (o->v) for (int i = 0; i < o->n; i++) cm_free(o->v[i]);
    cm_free(o->m); cm_free(o->v); cm_free(o->p); cm_free(o->step);
    memset(o, 0, sizeof *o);
}

int cm_adamw_find(const CmAdamW *o, const char *name) {
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->p[i].name, name)) return i;
    return -1;
}

/* The scalars torch derives in Python (double) and hands to the fp32 kernels. */
void cm_adamw_step(CmAdamW *o, double lr) {
    const CmBackend *be = o->be ? o->be : cm_backend_cpu();
    o->lr = lr;
    for (int i = 0; i < o->n; i++) {
        CmOptParam *q = &o->p[i];
        if (!q->grad) continue;
        CmAdamWArgs h = {++o->step[i], lr, q->decay ? o->wd : 0.0, o->beta1, o->beta2, o->eps};
        be->adamw(q->data, q->grad, o->m[i], o->v[i], q->numel, &h);
    }
}

double cm_grad_norm(const CmOptParam *p, int n) {
    double total = 0;
    for (int i = 0; i < n; i++)
        if (p[i].grad) {
            /* torch: per-tensor fp32 norm, then the norm of the norms */
            float ni = (float)sqrt(cm_backend_cpu()->sumsq(p[i].grad, p[i].numel));
            total += (double)ni * ni;
        }
    return (double)(float)sqrt(total);
}

double cm_clip_grad_norm(CmOptParam *p, int n, double max_norm) {
    double total = cm_grad_norm(p, n);
    if (!(max_norm > 0) || !isfinite(total)) return total;
    float coef = (float)max_norm / ((float)total + 1e-6f);
    if (coef < 1.0f)
        for (int i = 0; i < n; i++)
            if (p[i].grad) cm_backend_cpu()->scale(p[i].grad, coef, p[i].numel);
    return total;
}

cm_status cm_lr_kind_parse(const char *s, CmLrKind *out) {
    if (!s || !strcmp(s, "cosine")) { *out = CM_LR_COSINE; return CM_OK; }
    if (!strcmp(s, "const")) { *out = CM_LR_CONST; return CM_OK; }
    if (!strcmp(s, "const-cooldown")) { *out = CM_LR_CONST_COOLDOWN; return CM_OK; }
    return cm_error(CM_ERR_ARG, "--lr-scheduler: unknown scheduler '%s' (cosine, const, const-cooldown)", s);
}

const char *cm_lr_kind_name(CmLrKind k) {
    switch (k) {
    case CM_LR_COSINE: return "cosine";
    case CM_LR_CONST: return "const";
    case CM_LR_CONST_COOLDOWN: return "const-cooldown";
    }
    return "?";
}

double cm_lr_at(const CmLrSchedule *s, int64_t step) {
    double base = s->base_lr;
    if (step < s->warmup) return base * (double)(step + 1) / (double)s->warmup;
    switch (s->kind) {
    case CM_LR_CONST: return base;
    case CM_LR_CONST_COOLDOWN: {
        int64_t start = s->total_steps - s->cooldown_steps;
        if (step < start) return base;
        double e = (double)(step - start), es = (double)(s->total_steps - start);
        if (es <= 0) return s->cooldown_end_lr;
        double decay = pow(1.0 - e / es, s->cooldown_power);
        return decay * (base - s->cooldown_end_lr) + s->cooldown_end_lr;
    }
    case CM_LR_COSINE:
    default: {
        double e = (double)(step - s->warmup), es = (double)(s->total_steps - s->warmup);
        if (es <= 0) return 0.0;   /* only reachable past the end of the run */
        return 0.5 * (1.0 + cos(M_PI * e / es)) * base;
    }
    }
}

bool cm_lr_warmup_too_long(const CmLrSchedule *s, char *buf, size_t buflen) {
    if (s->warmup < s->total_steps) return false;
    if (buf && buflen)
        snprintf(buf, buflen,
                 "--warmup %lld >= total optimizer steps %lld: the learning rate rises linearly for the "
                 "whole run, peaks at %.4g (not --lr %.4g) and never reaches the %s phase. The seed project's "
                 "run had this bug (10000 warmup steps, 9600 total). Lower --warmup or train longer.",
                 (long long)s->warmup, (long long)s->total_steps,
                 s->total_steps > 0 ? cm_lr_at(s, s->total_steps - 1) : 0.0, s->base_lr,
                 s->kind == CM_LR_COSINE ? "cosine decay" : (s->kind == CM_LR_CONST ? "constant" : "cooldown"));
    return true;
}
