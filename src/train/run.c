/*
 * run.c — a training run: run folder, out.log, params.txt, resume, epochs, progress lines,
 * validation + results.jsonl, checkpoints. See run.h.
 */
#include "train/run.h"
#include "dist/dist.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/rng.h"
#include "eval/report.h"
#include "eval/scores.h"
#include "train/checkpoint.h"
#include "eval/val_scores.h"
#include "io/tensorfile.h"
#include "model/open.h"

/* ---- out.log: OpenCLIP's "%(asctime)s | %(levelname)s | %(message)s" ---- */
static void outlog_sink(int level, const char *msg, void *ctx) {
    FILE *f = ctx;
    static const char *names[] = {"ERROR", "WARNING", "INFO", "DEBUG"};
    char date[32];
    time_t t = time(NULL);
    struct tm tmv;
    localtime_r(&t, &tmv);
    strftime(date, sizeof date, "%Y-%m-%d,%H:%M:%S", &tmv);
    fprintf(f, "%s | %s | %s\n", date, names[level < 0 ? 0 : (level > 3 ? 3 : level)], msg);
    fflush(f);
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
    long long t = (long long)(s + 0.5);
    snprintf(buf, n, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
}

/* One line of <run>/steps.jsonl per optimizer step (docs/report.md): one write() on an O_APPEND
   descriptor, so a line is never interleaved; fdatasync at the end of each epoch. A crash can
   leave a cut last line, which readers skip; a resumed run appends the steps it redoes again
   (readers keep the last occurrence of a step). */
static cm_status write_step_line(int fd, const char *path, int64_t step, int64_t epoch, int64_t batch,
                                 const CmStepStats *s, double sps, double data_t, double batch_t, const CmDistStats *comm) {
    char line[640];
    int n = snprintf(line, sizeof line,
                     "{\"step\":%lld,\"epoch\":%lld,\"batch\":%lld,\"loss\":%.7g,\"contrastive\":%.7g,\"classification\":%.7g,"
                     "\"lr\":%.7g,\"logit_scale\":%.7g,\"samples_per_s\":%.5g,\"data_time\":%.5g,\"batch_time\":%.5g",
                     (long long)step, (long long)epoch, (long long)batch, (double)s->loss, (double)s->loss_con,
                     (double)s->loss_cls, s->lr, (double)s->logit_scale, sps, data_t, batch_t);
    if (isfinite(s->grad_norm)) n += snprintf(line + n, sizeof line - n, ",\"grad_norm\":%.7g", s->grad_norm);
    if (comm)   /* under MPI: this step's communication (all-gather, all-reduce, stop agreement) */
        n += snprintf(line + n, sizeof line - n, ",\"comm_time\":%.5g,\"comm_bytes\":%llu", comm->seconds, (unsigned long long)comm->bytes);
    n += snprintf(line + n, sizeof line - n, "}\n");
    /* the values are finite here: a non-finite loss ends the step with an error first */
    if (write(fd, line, (size_t)n) != n) return cm_error(CM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return CM_OK;
}

typedef struct { double sum; int64_t n; } Avg;
static void avg_add(Avg *a, double v) { a->sum += v; a->n++; }
static double avg_get(const Avg *a) { return a->n ? a->sum / a->n : 0; }

static void fill_meta(const CmRun *r, CmTrainer *t, int64_t completed, int64_t epoch_step, const char *base_sha,
                      bool trainable_only, const char *args_json, CmCkptMeta *meta) {
    const CmTrainConfig *o = r->o;
    memset(meta, 0, sizeof *meta);
    meta->base_size = meta->base_mtime = -1;
    meta->epoch = completed;
    meta->step = t->step;
    meta->epoch_step = epoch_step;
    snprintf(meta->name, sizeof meta->name, "%s", o->name);
    if (r->base_model) {   /* absolute, so that eval/predict find it from any folder */
        char *abs = realpath(r->base_model, NULL);
        snprintf(meta->base_model, sizeof meta->base_model, "%s", abs ? abs : r->base_model);
        free(abs);
        /* what a moved checkpoint needs to find its base again (model/open.h) */
        struct stat sb;
        if (stat(meta->base_model, &sb) == 0) { meta->base_size = (int64_t)sb.st_size; meta->base_mtime = (int64_t)sb.st_mtime; }
        if (o->pretrained && strcmp(o->pretrained, r->base_model) && !cm_file_exists(o->pretrained))
            snprintf(meta->base_pretrained, sizeof meta->base_pretrained, "%s", o->pretrained);
        snprintf(meta->base_arch, sizeof meta->base_arch, "%s", o->model ? o->model : "");
    }
    snprintf(meta->base_sha256, sizeof meta->base_sha256, "%s", base_sha ? base_sha : "");
    meta->mode = r->m->mode;
    meta->lock_image = r->m->lock_image;
    meta->lock_text = r->m->lock_text;
    meta->trainable_only = trainable_only;
    meta->world = o->world > 1 ? o->world : 1;
    meta->n_rng = 0;   /* dropout masks are a function of (seed, step, sample): nothing to save */
    meta->args_json = args_json;
    snprintf(meta->tokenizer, sizeof meta->tokenizer, "%s", r->tokenizer ? r->tokenizer : "bpe");
}

/* step_N.safetensors of earlier interruptions are superseded once a later checkpoint exists. */
static void remove_old_step_ckpts(const char *ckdir, int64_t step) {
    DIR *d = opendir(ckdir);
    if (!d) return;
    struct dirent *e;
    char path[1400];
    while ((e = readdir(d))) {
        long long k;
        int used = 0;
        if (sscanf(e->d_name, "step_%lld.safetensors%n", &k, &used) != 1 || used != (int)strlen(e->d_name) || k >= step ||
            strcmp(e->d_name + used - 12, ".safetensors"))
            continue;
        snprintf(path, sizeof path, "%s/%s", ckdir, e->d_name);
        if (unlink(path)) cm_warn("could not delete %s: %s", path, strerror(errno));
        else cm_info("Deleted %s (superseded by a later checkpoint)", path);
    }
    closedir(d);
}

/* End-of-epoch checkpoints; *wrote = whether one holding this state was written. */
static cm_status save_ckpt(CmRun *r, CmTrainer *t, const char *ckdir, int64_t completed, const char *base_sha,
                           bool trainable_only, const char *args_json, bool *wrote) {
    const CmTrainConfig *o = r->o;
    CmCkptMeta meta;
    fill_meta(r, t, completed, 0, base_sha, trainable_only, args_json, &meta);
    char path[1200];
    cm_status st;
    *wrote = false;
    bool periodic = completed == o->epochs || (o->save_frequency > 0 && completed % o->save_frequency == 0);
    if (periodic) {
        cm_checkpoint_path(path, sizeof path, ckdir, completed);
        if ((st = cm_checkpoint_save(path, r->m, &t->opt, &meta))) return st;
        cm_info("Saved checkpoint %s", path);
        snprintf(r->stop_checkpoint, sizeof r->stop_checkpoint, "%s", path);
        *wrote = true;
    }
    if (o->delete_previous_checkpoint && completed > 1) {   /* OpenCLIP: whether or not epoch_N was written */
        char prev[1200];
        cm_checkpoint_path(prev, sizeof prev, ckdir, completed - 1);
        if (cm_file_exists(prev) && unlink(prev)) cm_warn("could not delete %s: %s", prev, strerror(errno));
    }
    if (o->save_most_recent) {
        cm_checkpoint_path(path, sizeof path, ckdir, -1);
        if ((st = cm_checkpoint_save(path, r->m, &t->opt, &meta))) return st;
        snprintf(r->stop_checkpoint, sizeof r->stop_checkpoint, "%s", path);
        *wrote = true;
    }
    if (*wrote) remove_old_step_ckpts(ckdir, t->step);
    return CM_OK;
}

/* Whether the run stops here: the signal flag, agreed by every rank of a data-parallel group (the
   largest signal number any rank saw) so that all ranks stop at the same step boundary and the
   saved checkpoint is consistent (one small all-reduce per step under MPI). */
static bool stop_agreed(CmRun *r) {
    if (!r->stop) return false;
    int64_t v = *r->stop;
    if (r->o->world > 1 && cm_dist_allreduce_max_i64(&v, 1) == CM_OK && v && !*r->stop) *r->stop = (int)v;
    return v != 0;
}

/* The run was asked to stop (signal): write step_<N>.safetensors unless the state is already
   saved (saved > 0) or nothing was trained in this run (saved < 0). */
static cm_status save_stop_ckpt(CmRun *r, CmTrainer *t, const char *ckdir, int64_t epoch, int64_t epoch_step,
                                const char *base_sha, bool trainable_only, const char *args_json, int saved) {
    r->stopped = (int)*r->stop;
    if (saved < 0) {   /* no step done in this run: the state on disk is already where it is */
        r->stop_checkpoint[0] = 0;
        cm_info("Stopped by signal %d before the first step of this run (step %lld); nothing new to save", r->stopped, (long long)t->step);
        return CM_OK;
    }
    if (!ckdir[0]) {
        r->stop_checkpoint[0] = 0;
        if (r->o->rank == 0)   /* under MPI the other ranks never write: rank 0 saves */
            cm_warn("stopped by signal %d after step %lld; --logs none: no checkpoint written", r->stopped, (long long)t->step);
        return CM_OK;
    }
    if (!saved) {
        CmCkptMeta meta;
        fill_meta(r, t, epoch, epoch_step, base_sha, trainable_only, args_json, &meta);
        cm_checkpoint_step_path(r->stop_checkpoint, sizeof r->stop_checkpoint, ckdir, t->step);
        cm_status st = cm_checkpoint_save(r->stop_checkpoint, r->m, &t->opt, &meta);
        if (st) return st;
    }
    cm_info("Stopped by signal %d after step %lld (epoch %lld, %lld steps into it); checkpoint %s; resume with --resume latest",
            r->stopped, (long long)t->step, (long long)epoch, (long long)epoch_step, r->stop_checkpoint);
    return CM_OK;
}

cm_status cm_train_run(CmRun *r) {
    const CmTrainConfig *o = r->o;
    CmModel *m = r->m;
    cm_status st = CM_OK;
    FILE *outlog = NULL;
    const char *args_json = o->args_json;
    char *resume_path = NULL;
    uint8_t *resume_bytes = NULL;   /* under MPI: the checkpoint rank 0 read and broadcast */
    size_t resume_len = 0;
    float *img = NULL;
    int32_t *tok = NULL, *lab = NULL;
    CmTrainer t;
    memset(&t, 0, sizeof t);
    int steps_fd = -1;
    char steps_path[1200] = "";
    r->have_val = false;
    r->stopped = 0;
    r->stop_checkpoint[0] = 0;
    r->run_dir[0] = 0;
    if ((st = cm_train_config_check(o))) return st;
    const int B = o->batch_size, K = o->accum_freq;
    const int S = m->cfg.vision.image_size, ctx = m->cfg.text.context_length;
    /* under MPI rank 0 alone writes the run folder (docs/distributed.md) */
    bool save_logs = o->logs && *o->logs && strcasecmp(o->logs, "none") && o->rank == 0;
    bool html = save_logs && o->report_html;
    char ckdir[1100] = "";

    if (r->train->batch != B || r->train->image_size != S || r->train->ctx != ctx)
        return cm_error(CM_ERR_ARG, "training data: batch %d / image %d / context %d, the run wants %d / %d / %d",
                        r->train->batch, r->train->image_size, r->train->ctx, B, S, ctx);
    const int64_t steps_per_epoch = r->train->num_batches / K;
    if (steps_per_epoch < 1)
        return cm_error(CM_ERR_ARG, "--accum-freq %d is larger than the %lld batches of an epoch (--train-num-samples / --batch-size)",
                        K, (long long)r->train->num_batches);

    /* run folder (OpenCLIP refuses to reuse one unless resuming) */
    if (save_logs) {
        snprintf(r->run_dir, sizeof r->run_dir, "%s/%s", o->logs, o->name);
        size_t L = strlen(r->run_dir);
        while (L > 1 && r->run_dir[L - 1] == '/') r->run_dir[--L] = 0;
        char logpath[1200];
        snprintf(logpath, sizeof logpath, "%s/out.log", r->run_dir);
        if (cm_file_exists(logpath) && !o->resume)
            return cm_error(CM_ERR_ARG, "--name %s: experiment %s already exists; use another --name or --resume latest", o->name, r->run_dir);
        snprintf(ckdir, sizeof ckdir, "%s/checkpoints", r->run_dir);
        if ((st = cm_mkdir_p(ckdir))) return st;
        /* temp files of writes that a killed run left behind (only those of dead processes) */
        cm_remove_stale_tmp(ckdir, NULL);
        cm_remove_stale_tmp(r->run_dir, NULL);
        outlog = fopen(logpath, "a");
        if (!outlog) return cm_error(CM_ERR_IO, "%s: cannot open: %s", logpath, strerror(errno));
        cm_log_set_sink(outlog_sink, outlog);
        char pp[1200];
        snprintf(pp, sizeof pp, "%s/params.txt", r->run_dir);
        if (o->params_txt && (st = cm_write_file_atomic(pp, o->params_txt, strlen(o->params_txt)))) goto done;
        snprintf(steps_path, sizeof steps_path, "%s/steps.jsonl", r->run_dir);
        steps_fd = open(steps_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (steps_fd < 0) { st = cm_error(CM_ERR_IO, "%s: cannot open: %s", steps_path, strerror(errno)); goto done; }
    }

    /* schedule */
    CmTrainerCfg tc = {0};
    tc.micro_batch = B; tc.accum_freq = K; tc.grad_checkpointing = o->grad_checkpointing; tc.dropout = r->dropout;
    tc.beta1 = o->beta1; tc.beta2 = o->beta2; tc.eps = o->eps; tc.wd = o->wd;
    tc.grad_clip_norm = o->grad_clip_norm > 0 ? o->grad_clip_norm : 0;
    tc.w_con = (float)o->contrastive_weight; tc.w_cls = (float)o->classification_weight;
    tc.world = o->world > 1 ? o->world : 0; tc.rank = o->world > 1 ? o->rank : 0; tc.openclip_grad = o->openclip_grad;
    if ((st = cm_lr_kind_parse(o->lr_scheduler, &tc.sched.kind))) goto done;
    tc.sched.base_lr = o->lr;
    tc.sched.warmup = o->skip_scheduler ? 0 : o->warmup;
    if (o->skip_scheduler) tc.sched.kind = CM_LR_CONST;
    tc.sched.total_steps = steps_per_epoch * o->epochs;
    tc.sched.cooldown_steps = steps_per_epoch * (o->epochs_cooldown > 0 ? o->epochs_cooldown : 0);
    tc.sched.cooldown_power = o->lr_cooldown_power;
    tc.sched.cooldown_end_lr = o->lr_cooldown_end;
    char warnmsg[512];
    if (!o->skip_scheduler && cm_lr_warmup_too_long(&tc.sched, warnmsg, sizeof warnmsg)) {
        cm_warn("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        cm_warn("%s", warnmsg);
        cm_warn("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    }
    if ((st = cm_trainer_init(&t, m, &tc))) goto done;

    /* base model hash for trainable-only checkpoints */
    bool trainable_only = false;
    char base_sha[65] = "";
    if (r->base_model)
        for (int i = 0; i < m->n_params; i++) trainable_only |= !m->params[i].trainable;
    if (save_logs && trainable_only) {
        if (r->base_sha256[0]) memcpy(base_sha, r->base_sha256, sizeof base_sha);
        else if ((st = cm_sha256_file(r->base_model, base_sha))) goto done;
    }

    /* resume */
    int64_t start_epoch = 0, skip_steps = 0;
    if (o->resume && *o->resume) {
        const bool group = o->world > 1;
        if (!strcmp(o->resume, "latest")) {
            if (o->rank == 0) {   /* under MPI rank 0 alone looks (its run folder) */
                if (!save_logs) { st = cm_error(CM_ERR_ARG, "--resume latest needs --logs (the run folder holds the checkpoints)"); goto done; }
                if (cm_checkpoint_find_latest(ckdir, &resume_path)) {
                    cm_info("No latest resume checkpoint found in %s.", ckdir);
                    resume_path = NULL;
                } else cm_info("Found latest resume checkpoint at %s.", resume_path);
            }
        } else if (o->rank == 0 || !group) {
            resume_path = cm_malloc(strlen(o->resume) + 1, "resume path");
            if (!resume_path) { st = CM_ERR_OOM; goto done; }
            strcpy(resume_path, o->resume);
        }
        CmTensorFile *ckf = NULL;
        if (group) {
            /* rank 0 alone reads the checkpoint and broadcasts its bytes, then its path (for
               messages); no shared file system is assumed. A length of UINT64_MAX says rank 0
               failed: every rank stops (rank 0 with the reason). */
            cm_status rst = CM_OK;
            if (o->rank == 0 && resume_path && (rst = cm_read_file(resume_path, SIZE_MAX, &resume_bytes, &resume_len)))
                cm_error_prefix("--resume");
            uint64_t hdr[2] = {rst ? UINT64_MAX : (uint64_t)resume_len, resume_path ? strlen(resume_path) : 0};
            if ((st = cm_dist_bcast(hdr, sizeof hdr, 0))) goto done;
            if (hdr[0] == UINT64_MAX) {
                st = o->rank == 0 ? rst : cm_error(CM_ERR_IO, "--resume: rank 0 could not read the checkpoint");
                goto done;
            }
            if (o->rank != 0 && hdr[1]) {
                resume_path = cm_calloc(hdr[1] + 1, 1, "resume path");
                if (!resume_path) { st = CM_ERR_OOM; goto done; }
            }
            if (hdr[1] && (st = cm_dist_bcast(resume_path, hdr[1], 0))) goto done;
            if (hdr[1]) {
                void *b = resume_bytes;
                size_t len = resume_len;
                if ((st = cm_dist_bcast_blob(&b, &len, 0))) goto done;
                resume_bytes = b; resume_len = len;
                if ((st = cm_tensorfile_open_memory(resume_bytes, resume_len, resume_path, &ckf))) { cm_error_prefix("--resume"); goto done; }
            }
        } else if (resume_path && (st = cm_tensorfile_open(resume_path, &ckf))) { cm_error_prefix("--resume"); goto done; }
        if (ckf) {
            CmCkptMeta meta;
            if ((st = cm_ckpt_meta_read(ckf, resume_path, &meta, NULL))) { cm_tensorfile_close(ckf); cm_error_prefix("--resume"); goto done; }
            if (meta.trainable_only && meta.base_sha256[0] && base_sha[0] && strcmp(meta.base_sha256, base_sha)) {
                st = cm_error(CM_ERR_ARG, "--resume %s: trained on a base model with SHA-256 %.12s..., --pretrained %s is %.12s...",
                              resume_path, meta.base_sha256, r->base_model, base_sha);
                cm_tensorfile_close(ckf);
                goto done;
            }
            st = cm_checkpoint_load_file(ckf, resume_path, m, &t.opt, &meta);
            cm_tensorfile_close(ckf);
            cm_free(resume_bytes);
            resume_bytes = NULL;
            if (st) { cm_error_prefix("--resume"); goto done; }
            int world = o->world > 1 ? o->world : 1;
            if (meta.world > 0 && meta.world != world)
                cm_warn("--resume %s: the checkpoint was trained by %d rank%s, this run has %d: the data order from here on differs "
                        "from an uninterrupted run (global batch %d x %d x accum %d); weights, optimizer state and step carry on",
                        resume_path, meta.world, meta.world == 1 ? "" : "s", world, world, B, K);
            start_epoch = meta.epoch;
            t.step = meta.step;
            skip_steps = meta.epoch_step;
            if (skip_steps > 0 && skip_steps >= steps_per_epoch) {
                st = cm_error(CM_ERR_ARG, "--resume %s: stopped %lld steps into epoch %lld, but an epoch has %lld steps here "
                              "(different --train-num-samples / --batch-size / --accum-freq?)", resume_path, (long long)skip_steps,
                              (long long)start_epoch, (long long)steps_per_epoch);
                goto done;
            }
            if (meta.step != start_epoch * steps_per_epoch + skip_steps)
                cm_warn("--resume: checkpoint is at step %lld, epoch %lld x %lld steps/epoch + %lld = %lld (different epoch size?)",
                        (long long)meta.step, (long long)start_epoch, (long long)steps_per_epoch, (long long)skip_steps,
                        (long long)(start_epoch * steps_per_epoch + skip_steps));
            if (skip_steps > 0)
                cm_info("=> resuming checkpoint '%s' (epoch %lld, %lld of %lld steps done)", resume_path, (long long)start_epoch,
                        (long long)skip_steps, (long long)steps_per_epoch);
            else cm_info("=> resuming checkpoint '%s' (epoch %lld)", resume_path, (long long)start_epoch);
        }
    }

    size_t isz = (size_t)3 * S * S;
    img = cm_malloc((size_t)K * B * isz * sizeof(float), "training batch");
    tok = cm_malloc((size_t)K * B * ctx * sizeof(int32_t), "training batch");
    lab = cm_malloc((size_t)K * B * sizeof(int32_t), "training batch");
    if (!img || !tok || !lab) { st = CM_ERR_OOM; goto done; }

    int64_t trainable = cm_model_trainable_count(m);
    cm_info("Model %s: %lld trainable parameters (%s), %lld steps per epoch, %lld total, batch %d x accum %d",
            m->cfg.name, (long long)trainable, o->enable_lora ? "LoRA + head" : "all", (long long)steps_per_epoch,
            (long long)tc.sched.total_steps, B, K);
    double t_run0 = cm_now();
    int64_t steps_this_run = 0;
    const uint64_t seed = (uint64_t)o->seed;
    char digits_buf[32];
    int sample_digits = snprintf(digits_buf, sizeof digits_buf, "%lld", (long long)(r->train->num_batches * B) * (o->world > 1 ? o->world : 1));

    for (int64_t epoch = start_epoch; epoch < o->epochs; epoch++) {
        cm_info("Start epoch %lld", (long long)epoch);
        cm_acts_seed(t.acts, cm_epoch_seed(seed, 0, 1));   /* masks vary with the step, not the epoch */
        if ((st = r->train->start_epoch(r->train, epoch))) goto done;
        Avg a_loss = {0}, a_con = {0}, a_cls = {0}, a_data = {0}, a_batch = {0}, a_comm = {0}, a_cbytes = {0};
        const bool group = o->world > 1;
        int64_t i0 = 0;
        if (epoch == start_epoch && skip_steps > 0) {
            /* mid-epoch resume: the source restarted from (seed, epoch); replay the batches the
               interrupted run used (dropout masks follow the restored step: nothing to restore) */
            double tr = cm_now();
            for (i0 = 0; i0 < skip_steps * K; i0++) {
                int got = 0;
                if ((st = r->train->next(r->train, img, tok, lab, &got))) goto done;
                if (got != B) {
                    st = cm_error(CM_ERR_IO, "--resume: the training data ran out after %lld of the %lld batches to replay",
                                  (long long)i0, (long long)(skip_steps * K));
                    goto done;
                }
            }
            cm_info("Replayed the %lld batches of epoch %lld used before the interruption (%.1f s)", (long long)i0, (long long)epoch,
                    cm_now() - tr);
        }
        double t_last = cm_now(), data_time = 0;
        cm_dist_stats(true);   /* Comm (t): what the steps of this epoch communicate */
        for (int64_t i = i0; i < r->train->num_batches; i++) {
            int slot = (int)(i % K);
            if (slot == 0 && stop_agreed(r) && (i > i0 || steps_this_run == 0) && i / K < steps_per_epoch) {
                if ((st = save_stop_ckpt(r, &t, ckdir, epoch, i / K, base_sha, trainable_only, args_json, steps_this_run ? 0 : -1)))
                    goto done;
                goto stopped;
            }
            double t0 = cm_now();
            int got = 0;
            if ((st = r->train->next(r->train, img + (size_t)slot * B * isz, tok + (size_t)slot * B * ctx, lab + (size_t)slot * B, &got)))
                goto done;
            data_time += cm_now() - t0;
            if (got != B) {
                if (got == 0 && i == 0) {
                    st = cm_error(CM_ERR_IO, "--train-data: epoch %lld yielded no batch at all (%lld bad samples/shards skipped)",
                                  (long long)epoch, (long long)r->train->skipped);
                    goto done;
                }
                if (got == 0 && o->world > 1) {   /* the other ranks would wait in the next step's all-gather */
                    st = cm_error(CM_ERR_IO, "--train-data: epoch %lld: this rank's share of the data ran out after %lld of %lld batches "
                                  "(%lld bad samples/shards skipped); every rank must make the same steps (fewer samples than "
                                  "--train-num-samples says?)", (long long)epoch, (long long)i, (long long)r->train->num_batches,
                                  (long long)r->train->skipped);
                    goto done;
                }
                if (got == 0) { cm_warn("epoch %lld: the data ran out after %lld of %lld batches", (long long)epoch, (long long)i, (long long)r->train->num_batches); break; }
                st = cm_error(CM_ERR_ARG, "training data: a partial batch of %d (batch size %d)", got, B);
                goto done;
            }
            if ((i + 1) % K != 0) continue;
            int64_t i_accum = i / K;
            CmStepStats s;
            if ((st = cm_trainer_step(&t, img, tok, lab, K * B, &s))) goto done;
            r->last = s;
            if (r->on_step) r->on_step(r->cb_ctx, t.step - 1, &s);
            steps_this_run++;
            double now = cm_now();
            CmDistStats comm = cm_dist_stats(true);
            if (steps_fd >= 0 &&
                (st = write_step_line(steps_fd, steps_path, t.step, epoch, i_accum + 1, &s, (double)B * K / (now - t_last + 1e-12),
                                      data_time, now - t_last, group ? &comm : NULL)))
                goto done;
            avg_add(&a_comm, comm.seconds);
            avg_add(&a_cbytes, (double)comm.bytes);
            avg_add(&a_batch, now - t_last);
            avg_add(&a_data, data_time);
            t_last = now; data_time = 0;
            avg_add(&a_loss, s.loss); avg_add(&a_con, s.loss_con); avg_add(&a_cls, s.loss_cls);
            int64_t batch_count = i_accum + 1;
            if (i_accum % o->log_every_n_steps == 0 || batch_count == steps_per_epoch) {
                int64_t num_samples = batch_count * B * K;
                double sps = a_batch.n ? (double)B * K / avg_get(&a_batch) : 0;
                double remaining = (double)(tc.sched.total_steps - t.step) * ((cm_now() - t_run0) / (double)steps_this_run);
                char eta[32];
                fmt_eta(remaining, eta, sizeof eta);
                /* under MPI: samples of the whole job (OpenCLIP: batch x world), per-rank rate in /s/gpu,
                   and Comm (t) (seconds and MB this rank communicated per step) beside Data / Batch */
                int W = group ? o->world : 1;
                char comm_s[64] = "";
                if (group) snprintf(comm_s, sizeof comm_s, " Comm (t): %.3f (%.2f MB)", avg_get(&a_comm), avg_get(&a_cbytes) / 1e6);
                cm_info("Train Epoch: %lld [%*lld/%lld (%.0f%%)] Data (t): %.3f Batch (t): %.3f%s, %#g/s, %#g/s/gpu LR: %5f "
                        "Logit Scale: %.3f Contrastive_loss: %#.5g (%#.5g) Classification_loss: %#.5g (%#.5g) Loss: %#.5g (%#.5g) ETA: %s",
                        (long long)epoch, sample_digits, (long long)num_samples * W, (long long)(r->train->num_batches * B) * W,
                        100.0 * batch_count / steps_per_epoch, avg_get(&a_data), avg_get(&a_batch), comm_s, sps * W, sps, s.lr,
                        s.logit_scale, s.loss_con, avg_get(&a_con), s.loss_cls, avg_get(&a_cls), s.loss, avg_get(&a_loss), eta);
                a_data = (Avg){0}; a_batch = (Avg){0}; a_comm = (Avg){0}; a_cbytes = (Avg){0};
            }
        }
        int64_t completed = epoch + 1;
        if (steps_fd >= 0) fdatasync(steps_fd);
        if (r->train->skipped) cm_info("epoch %lld: %lld bad samples skipped so far", (long long)epoch, (long long)r->train->skipped);
        if (r->train->no_json)
            cm_warn("epoch %lld: %lld training samples so far had no .json metadata and were given label 0 (DESIGN §4.2)",
                    (long long)epoch, (long long)r->train->no_json);

        /* validation */
        if (r->val && o->val_frequency > 0 && (completed % o->val_frequency == 0 || completed == o->epochs)) {
            double tv = cm_now();
            CmScores vs;
            cm_scores_init(&vs, 0);
            /* --report-to html: the per-sample scores of the latest validation feed the report's
               PR / ROC / calibration / mistakes sections */
            st = cm_validate_ex(m, r->val, epoch, tc.w_con, tc.w_cls, &r->val_metrics, html ? cm_val_scores_collect : NULL, &vs);
            if (!st && html && vs.n) {
                char vp[1200];
                snprintf(vp, sizeof vp, "%s/val_scores.jsonl", r->run_dir);
                st = cm_scores_write(&vs, vp);
            }
            cm_scores_free(&vs);
            if (!st) st = cm_metrics_allreduce(&r->val_metrics);   /* every rank saw its share */
            if (st) { cm_error_prefix("validation"); goto done; }
            CmMetrics *vm = &r->val_metrics;
            if (vm->n == 0) {   /* validation was asked for and saw nothing: never report zeros as results */
                st = cm_error(CM_ERR_IO, "validation: no sample could be read from --val-data (%lld bad samples or shards skipped)",
                              (long long)r->val->skipped);
                goto done;
            }
            if (r->val->skipped) cm_warn("validation: %lld samples, %lld bad samples or shards skipped", (long long)vm->n, (long long)r->val->skipped);
            r->have_val = true;
            if (r->val->no_json)
                cm_warn("validation: %lld samples so far had no .json metadata and were given label 0 (DESIGN §4.2)", (long long)r->val->no_json);
            cm_info("Eval Epoch: %lld clip_val_loss: %.4f\tval_loss: %.4f\ttop1: %.4f\ttop2: %.4f\tmacro_f1: %.4f\tnum_samples: %lld\t(%.1f s)",
                    (long long)completed, vm->clip_loss_n ? vm->clip_loss_sum / vm->clip_loss_n : 0.0,
                    vm->loss_n ? vm->loss_sum / vm->loss_n : 0.0, cm_metrics_top1(vm), cm_metrics_top2(vm),
                    cm_metrics_macro_f1(vm), (long long)vm->n, cm_now() - tv);
            if (save_logs) {
                char extra[128], rp[1200];
                snprintf(extra, sizeof extra, "\"epoch\":%lld,\"step\":%lld", (long long)completed, (long long)t.step);
                char *js = cm_metrics_json(vm, extra);
                if (!js) { st = CM_ERR_OOM; goto done; }
                snprintf(rp, sizeof rp, "%s/results.jsonl", r->run_dir);
                st = cm_append_line(rp, js);
                cm_free(js);
                if (st) goto done;
            }
        }
        bool saved = false;
        if (save_logs && (st = save_ckpt(r, &t, ckdir, completed, base_sha, trainable_only, args_json, &saved))) goto done;
        if (stop_agreed(r) && completed < o->epochs) {
            if ((st = save_stop_ckpt(r, &t, ckdir, completed, 0, base_sha, trainable_only, args_json, saved ? 1 : 0))) goto done;
            goto stopped;
        }
    }
    if (r->stop && *r->stop) cm_info("signal %d arrived after the last step: the run is complete", (int)*r->stop);
    r->stop_checkpoint[0] = 0;
stopped:
    r->steps_done = t.step;
    r->train_seconds = cm_now() - t_run0;
    if (steps_fd >= 0) { fdatasync(steps_fd); close(steps_fd); steps_fd = -1; }
    if (html) {
        char hp[1200], vp[1200];
        snprintf(hp, sizeof hp, "%s/report.html", r->run_dir);
        snprintf(vp, sizeof vp, "%s/val_scores.jsonl", r->run_dir);
        CmReportOpts ro = cm_report_opts_default();
        ro.run_dir = r->run_dir;
        ro.scores_path = cm_file_exists(vp) ? vp : NULL;
        if ((st = cm_report_html(&ro, hp))) { cm_error_prefix("--report-to html"); goto done; }
        cm_info("Report written to %s", hp);
    }

done:
    r->train_skipped = r->train->skipped;
    r->val_skipped = r->val ? r->val->skipped : 0;
    if (steps_fd >= 0) close(steps_fd);
    if (st && outlog) outlog_sink(CM_LOG_ERROR, cm_last_error(), outlog);
    cm_trainer_free(&t);
    cm_free(img); cm_free(tok); cm_free(lab);
    cm_free(resume_path);
    cm_free(resume_bytes);
    if (outlog) { cm_log_set_sink(NULL, NULL); fclose(outlog); }
    return st;
}
