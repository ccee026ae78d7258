/*
 * util.c — small helpers shared by the commands: --threads clamping and a progress-reporting
 * batch source (see cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "cli/cli.h"
#include "common/common.h"
#include "data/batches.h"

int cli_threads(const char *cmd, int n) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores > 0 && n > 4 * cores) {
        fprintf(stderr, "clipmod %s: warning: --threads %d is more than 4x the %ld cores of this machine: using %ld\n",
                cmd, n, cores, 4 * cores);
        return (int)(4 * cores);
    }
    return n;
}

typedef struct {
    CmBatchSource base;
    CmBatchSource *in;
    const char *cmd;
    long long total, done;
    double t0, last, period;
    bool tty, printed;
} Progress;

static cm_status pr_start(CmBatchSource *s, int64_t e) {
    Progress *p = (Progress *)s;
    p->done = 0;
    p->t0 = p->last = cm_now();
    return p->in->start_epoch(p->in, e);
}

static void pr_report(Progress *p, double now) {
    double el = now - p->t0, rate = el > 0 ? p->done / el : 0;
    char eta[32] = "?";
    if (p->total > 0 && rate > 0) {
        long long s = (long long)((p->total - p->done) / rate + 0.5);
        if (s < 0) s = 0;
        snprintf(eta, sizeof eta, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
    }
    char tot[32] = "";
    if (p->total > 0) snprintf(tot, sizeof tot, "/%lld", p->total);
    if (p->tty) fprintf(stderr, "\rclipmod %s: %lld%s samples, %.1f samples/s, ETA %s   ", p->cmd, p->done, tot, rate, eta);
    else fprintf(stderr, "clipmod %s: %lld%s samples, %.1f samples/s, %.0f s, ETA %s\n", p->cmd, p->done, tot, rate, el, eta);
    p->printed = true;
}

static cm_status pr_next(CmBatchSource *s, float *img, int32_t *tok, int32_t *lab, int *got) {
    Progress *p = (Progress *)s;
    cm_status st = p->in->next(p->in, img, tok, lab, got);
    p->base.skipped = p->in->skipped;   /* the counters of inner, kept current */
    p->base.no_json = p->in->no_json;
    if (st) return st;
    p->done += *got;
    double now = cm_now();
    if (now - p->last >= (p->tty && p->period > 0.5 ? 0.5 : p->period) && *got) {   /* terminal: at least twice a second */
        p->last = now;
        pr_report(p, now);
    }
    return CM_OK;
}

static const char *pr_key(CmBatchSource *s, int i, const char **url) {
    Progress *p = (Progress *)s;
    return cm_batches_sample_key(p->in, i, url);
}

static void pr_close(CmBatchSource *s) {
    Progress *p = (Progress *)s;
    cm_batches_close(p->in);
    free(p);
}

CmBatchSource *cli_progress_source(CmBatchSource *inner, const char *cmd, long long total, double period) {
    Progress *p = calloc(1, sizeof *p);
    if (!p) return inner;   /* no progress, still correct */
    /* the sizes and counters of inner; methods are set one by one (a method added to
       CmBatchSource later stays NULL here instead of being called with the wrong object) */
    p->base.batch = inner->batch;
    p->base.image_size = inner->image_size;
    p->base.ctx = inner->ctx;
    p->base.num_batches = inner->num_batches;
    p->base.num_samples = inner->num_samples;
    p->base.skipped = inner->skipped;
    p->base.no_json = inner->no_json;
    p->base.start_epoch = pr_start;
    p->base.next = pr_next;
    p->base.close = pr_close;
    p->base.sample_key = inner->sample_key ? pr_key : NULL;
    p->in = inner;
    p->cmd = cmd;
    p->total = total;
    p->period = period > 0 ? period : 10;
    p->tty = isatty(2);
    p->t0 = p->last = cm_now();
    return &p->base;
}

void cli_progress_end(CmBatchSource *s) {
    if (!s || s->next != pr_next) return;
    Progress *p = (Progress *)s;
    if (p->tty && p->printed) {
        pr_report(p, cm_now());
        fputc('\n', stderr);
    }
}
