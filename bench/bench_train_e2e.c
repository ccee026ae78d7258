/*
 * bench_train_e2e.c — `clipmod train` end to end (loader + step + logging + checkpoint) against
 * the model-only step rate of the same batches, interleaved in one run (issue 12, item 3).
 *
 * Setup (cached in DIR, default build/bench-e2e/, reused by later runs):
 *   - ViT-B-32 formula weights (WEIGHTS.md, seed 1: what the tests use), DIR/weights.safetensors;
 *   - real shards: the first N clean_title rows of the shared Fakeddit TSV (real captions, real
 *     6-way labels) with the 50 shared Fakeddit JPEGs cycled as their images, turned into
 *     WebDataset shards by `clipmod prepare fakeddit` (256x256 letterbox JPEG q95, as a real run).
 * Each round, for each precision, alternating the order between rounds:
 *   e2e:        build/clipmod train --model ViT-B-32 --pretrained weights --enable-lora
 *               --dataset-resampled --batch-size B --workers W --precision P, `steps` steps, logs on
 *               (steps.jsonl, progress line every step, the end-of-epoch LoRA checkpoint);
 *   model-only: the same run (the library's cm_train_run, same model, trainer, logging and
 *               checkpoint) over the first 2 batches of the same loader held in memory, so the
 *               captions (and so the packed text rows) are the same kind.
 * Step 1 of each run is warm-up (oneDNN primitives, first touches, the loader's first batch) and
 * not timed. From steps.jsonl: e2e rate = B / mean batch_time (the progress line's Batch (t):
 * data wait + step + logging), data wait = sum data_time / sum batch_time (Data (t)); model-only
 * rate = B / mean (batch_time - data_time) of the memory run (the step and its logging, without
 * even the memory source's copy). Ratio = e2e / model-only (target >= 0.9). Also: wall time of
 * each run (startup + steps + checkpoint) and its peak RSS.
 * Usage: build/bench/bench_train_e2e [--steps N (4)] [--rounds R (1)] [--precision amp|fp32|both
 * (amp)] [--batch B (256)] [--workers W (2)] [--rows N (2048)] [--dir DIR]. `make bench` runs the
 * defaults (amp, one round: ~3 min on an idle 2-core machine); the full figure is
 * `--precision both --rounds 2` (docs/training.md). BENCH_QUICK=1: batch 32, 2 steps (smoke test).
 * Without ../shared (CLIPMOD_SHARED) it says so and exits 0. Runs with GOMP_SPINCOUNT=10000 (clipmod's own default,
 * src/cli/main.c) unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, for both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/common.h"
#include "data/batches.h"
#include "data/loader_source.h"
#include "data/prepare.h"
#include "data/textenc.h"
#include "io/tensorfile.h"
#include "model/model.h"
#include "train/run.h"
#include "train/setup.h"
#include "train/train_config.h"

#define BIG (4 * PATH_MAX)   /* a path built from DIR / CLIPMOD_SHARED plus a suffix */
/* snprintf into a BIG buffer; a path that does not fit ends the bench (exit 2) */
#define P(buf, ...) pfmt(buf, sizeof buf, __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static void pfmt(char *buf, size_t n, const char *fmt, ...);

typedef struct {
    int steps, rounds, B, workers, rows;
    bool amp[2];   /* [0] fp32, [1] amp */
    char dir[PATH_MAX], clipmod[PATH_MAX + 16], shared[PATH_MAX];
    char weights[PATH_MAX + 32];
    char *urls;
} Cfg;

typedef struct {
    bool ok;
    int n;                      /* timed steps */
    double sum_batch, sum_data, step1_data, step1_batch;
    double wall, rss_gib;
    double cpu_timed;           /* process CPU seconds (all threads) from the end of step 1 to the end of the last step */
} RunRes;

static void pfmt(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) { fprintf(stderr, "bench_train_e2e: path too long: %.200s...\n", buf); exit(2); }
}

static int die(const char *what) {
    fprintf(stderr, "bench_train_e2e: %s: %s\n", what, cm_last_error());
    return 1;
}

// ----------------------------------------------------------------------------
// setup: weights and shards (cached)

static int write_weights(const Cfg *c) {
    struct stat sb;
    if (stat(c->weights, &sb) == 0 && sb.st_size > 600000000) return 0;
    double t0 = cm_now();
    CmModelConfig mc;
    if (cm_config_from_name("ViT-B-32", &mc)) return die("config");
    mc.has_lora = mc.has_head = false;
    CmModel *m = NULL;
    if (cm_model_create(&mc, &m)) return die("model");
    cm_model_init_formula(m, 1);
    CmTensorOut *ts = calloc((size_t)m->n_params, sizeof *ts);
    if (!ts) return 1;
    int n = cm_model_tensor_list(m, false, ts);
    cm_status st = cm_safetensors_write(c->weights, ts, n, NULL, 0);
    free(ts);
    cm_model_free(m);
    if (st) return die("writing the formula weights");
    printf("  (wrote ViT-B-32 formula weights to %s in %.1f s)\n", c->weights, cm_now() - t0);
    return 0;
}

/* CPU seconds (user + system, all threads) of a running process; -1 when unreadable. */
static double proc_cpu(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = getc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* Waits for pid, polling every 20 ms: the process CPU time when steps.jsonl gets its first and
   its last line (steps 2..N: the timed ones), wall time and peak RSS. Returns the wait status. */
static int watch(pid_t pid, double t0, const char *steps_path, RunRes *r) {
    double cpu_first = -1, cpu_last = -1;
    int lines = 0, status = 0;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &status, WNOHANG, &ru);
        if (w == pid) break;
        if (w < 0) return -1;
        double cpu = proc_cpu(pid);
        int n = count_lines(steps_path);
        if (n > lines && cpu >= 0) {
            if (lines == 0) cpu_first = cpu;
            cpu_last = cpu;
            lines = n;
        }
        usleep(20000);
    }
    r->wall = cm_now() - t0;
    r->rss_gib = ru.ru_maxrss / (1024.0 * 1024.0);
    r->cpu_timed = cpu_first >= 0 && lines > 1 ? cpu_last - cpu_first : 0;
    return status;
}

/* Runs argv (stdout+stderr to log); returns the exit status (-1: could not run). With r: watched
   (steps_path: the run's steps.jsonl). */
static int run_cmd(char *const argv[], const char *log, const char *steps_path, RunRes *r) {
    fflush(NULL);
    double t0 = cm_now();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    if (r) status = watch(pid, t0, steps_path, r);
    else if (waitpid(pid, &status, 0) < 0) return -1;
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void print_tail(const char *log) {
    char cmd[BIG];
    P(cmd, "tail -n 15 '%s' >&2", log);
    if (system(cmd)) { /* best effort */ }
}

/* TSV of `rows` real titles and labels; image ids e00000.. linked to the shared JPEGs in turn. */
static int make_shards(Cfg *c) {
    char shards[BIG], report[BIG];
    P(shards, "%s/shards", c->dir);
    P(report, "%s/report.json", shards);
    char pat[BIG];
    P(pat, "%s/class_*/*.tar", shards);
    glob_t g;
    struct stat sb;
    bool have = stat(report, &sb) == 0 && glob(pat, 0, NULL, &g) == 0;
    if (have) globfree(&g);
    if (!have) {
        double t0 = cm_now();
        char src[BIG], idir[BIG], tsv[BIG];
        P(src, "%s/data/fakeddit/multimodal_train.tsv", c->shared);
        P(idir, "%s/images", c->dir);
        P(tsv, "%s/titles.tsv", c->dir);
        /* the shared JPEGs */
        char jpat[BIG];
        P(jpat, "%s/data/fakeddit/images/*.jpg", c->shared);
        if (glob(jpat, 0, NULL, &g) || g.gl_pathc == 0) { fprintf(stderr, "bench_train_e2e: no JPEGs match %s\n", jpat); return 1; }
        cm_remove_tree(idir);
        if (cm_mkdir_p(idir)) return die("mkdir");
        uint8_t *data;
        size_t len;
        if (cm_read_file(src, (size_t)1 << 30, &data, &len)) return die("reading the Fakeddit TSV");
        FILE *f = fopen(tsv, "w");
        if (!f) { fprintf(stderr, "bench_train_e2e: cannot write %s\n", tsv); return 1; }
        fprintf(f, "id\t6_way_label\tclean_title\n");
        CmCsv csv;
        cm_csv_init(&csv, (const char *)data, len, '\t');
        int c_title = -1, c_six = -1, nh = 0, k = 0;
        if (cm_csv_next(&csv) == 1) {
            nh = csv.nfields;
            for (int i = 0; i < csv.nfields; i++) {
                if (!strcmp(csv.fields[i], "clean_title")) c_title = i;
                if (!strcmp(csv.fields[i], "6_way_label")) c_six = i;
            }
        }
        while (c_title >= 0 && c_six >= 0 && k < c->rows && cm_csv_next(&csv) == 1) {
            if (csv.nfields != nh) continue;
            const char *t = csv.fields[c_title];
            if (!*t || strpbrk(t, "\t\n\r\"")) continue;
            fprintf(f, "e%05d\t%s\t%s\n", k, csv.fields[c_six], t);
            char link[BIG];
            P(link, "%s/e%05d.jpg", idir, k);
            if (symlink(g.gl_pathv[k % g.gl_pathc], link)) { fprintf(stderr, "bench_train_e2e: symlink %s: %s\n", link, strerror(errno)); return 1; }
            k++;
        }
        cm_csv_free(&csv);
        cm_free(data);
        fclose(f);
        globfree(&g);
        if (k < c->B) { fprintf(stderr, "bench_train_e2e: only %d usable titles in %s\n", k, src); return 1; }
        cm_remove_tree(shards);
        char log[BIG];
        P(log, "%s/prepare.log", c->dir);
        char *argv[] = {c->clipmod, "prepare", "fakeddit", "--tsv", tsv, "--images", idir, "--out", shards, "--shard-size", "256",
                        "--quiet", NULL};
        int rc = run_cmd(argv, log, NULL, NULL);
        if (rc) { fprintf(stderr, "bench_train_e2e: clipmod prepare failed (exit %d), %s:\n", rc, log); print_tail(log); return 1; }
        printf("  (prepared %d samples into %s in %.1f s)\n", k, shards, cm_now() - t0);
    }
    if (glob(pat, 0, NULL, &g) || g.gl_pathc == 0) { fprintf(stderr, "bench_train_e2e: no shards match %s\n", pat); return 1; }
    size_t need = 1;
    for (size_t i = 0; i < g.gl_pathc; i++) need += strlen(g.gl_pathv[i]) + 2;
    c->urls = malloc(need);
    if (!c->urls) return 1;
    c->urls[0] = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (i) strcat(c->urls, "::");
        strcat(c->urls, g.gl_pathv[i]);
    }
    printf("  data: %d Fakeddit titles + labels on the %s Fakeddit JPEGs, `clipmod prepare` shards (256x256 q95): %zu shards\n",
           c->rows, "shared", g.gl_pathc);
    globfree(&g);
    return 0;
}

// ----------------------------------------------------------------------------
// runs

static int read_steps(const char *run_dir, RunRes *r) {
    char path[BIG];
    P(path, "%s/steps.jsonl", run_dir);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    char line[1024];
    int k = 0;
    while (fgets(line, sizeof line, f)) {
        const char *d = strstr(line, "\"data_time\":"), *b = strstr(line, "\"batch_time\":");
        if (!d || !b) continue;
        double dt = atof(d + 12), bt = atof(b + 13);
        if (k++ == 0) { r->step1_data = dt; r->step1_batch = bt; continue; }
        r->n++;
        r->sum_data += dt;
        r->sum_batch += bt;
    }
    fclose(f);
    return r->n > 0 ? 0 : 1;
}

static void fill_train_config(const Cfg *c, bool amp, const char *name, CmTrainConfig *o) {
    cm_train_config_defaults(o);
    o->train_data = c->urls;
    o->dataset_resampled = true;
    o->train_num_samples = (long long)c->steps * c->B;
    o->workers = c->workers;
    o->model = "ViT-B-32";
    o->pretrained = c->weights;
    o->enable_lora = true;
    o->prec = amp ? CM_PREC_AMP_BF16 : CM_PREC_FP32;
    o->batch_size = c->B;
    o->epochs = 1;
    o->warmup = 1;
    o->seed = 1;
    o->val_frequency = 0;
    o->log_every_n_steps = 1;
    o->logs = NULL;   /* set by the caller */
    o->name = name;
}

/* The model-only side: the first 2 batches of the same loader in memory, then cm_train_run. */
static int model_only_child(const Cfg *c, bool amp, const char *logs, const char *name, int fd) {
    CmTrainConfig o;
    fill_train_config(c, amp, name, &o);
    o.logs = logs;
    CmModel *m = NULL;
    char *base = NULL;
    if (cm_train_build_model(&o, &m, &base)) return die("model");
    cm_model_set_amp(m, amp);
    CmTextEnc te;
    if (cm_textenc_open(&te, "bpe", NULL, base)) return die("tokenizer");
    CmBatchesConfig lc = {0};
    lc.urls = o.train_data; lc.train = true; lc.resampled = true; lc.batch_size = c->B; lc.workers = c->workers;
    lc.num_samples = o.train_num_samples; lc.seed = 1; lc.world_size = 1; lc.image_size = m->cfg.vision.image_size;
    lc.context_len = m->cfg.text.context_length; lc.te = &te;
    CmBatchSource *ld = NULL;
    if (cm_batches_open(&lc, &ld) || ld->start_epoch(ld, 0)) return die("loader");
    const int B = c->B, S = m->cfg.vision.image_size, NB = 2;
    const size_t isz = (size_t)3 * S * S;
    float *img = cm_malloc(sizeof(float) * isz * B * NB, "images");
    int32_t *tok = cm_malloc(sizeof(int32_t) * 77 * B * NB, "tokens"), *lab = cm_malloc(sizeof(int32_t) * B * NB, "labels");
    if (!img || !tok || !lab) return die("memory");
    for (int k = 0; k < NB; k++) {
        int got = 0;
        if (ld->next(ld, img + isz * B * k, tok + (size_t)77 * B * k, lab + (size_t)B * k, &got) || got != B) return die("loader batch");
    }
    cm_batches_close(ld);
    long sum = 0;
    int mx = 0;
    for (int b = 0; b < B * NB; b++) {
        int L = 0;
        while (L < 77 && tok[(size_t)b * 77 + L]) L++;
        sum += L;
        if (L > mx) mx = L;
    }
    double lens[2] = {(double)sum / (B * NB), mx};
    CmBatchSource *mem = NULL;
    if (cm_batches_memory(img, tok, lab, B * NB, S, 77, B, true, c->steps, &mem)) return die("memory source");
    cm_free(img); cm_free(tok); cm_free(lab);
    CmRun r;
    memset(&r, 0, sizeof r);
    r.o = &o; r.m = m; r.train = mem; r.base_model = base; r.dropout = true; r.tokenizer = "bpe";
    if (cm_train_run(&r)) return die("model-only run");
    cm_batches_close(mem);
    cm_textenc_close(&te);
    cm_model_free(m);
    cm_free(base);
    if (write(fd, lens, sizeof lens) != sizeof lens) return 1;
    return 0;
}

/* One e2e or model-only run; fills *r from its steps.jsonl. lens (model-only): caption lengths. */
static int one_run(const Cfg *c, bool amp, bool e2e, int round, RunRes *r, double lens[2]) {
    memset(r, 0, sizeof *r);
    char logs[BIG], name[64], run_dir[BIG], log[BIG], steps[BIG];
    P(logs, "%s/runs", c->dir);
    snprintf(name, sizeof name, "%s_%s_%d", e2e ? "e2e" : "model", amp ? "amp" : "fp32", round);
    P(run_dir, "%s/%s", logs, name);
    P(steps, "%s/steps.jsonl", run_dir);
    P(log, "%s/%s.log", logs, name);
    cm_remove_tree(run_dir);
    if (cm_mkdir_p(logs)) return die("mkdir");
    if (e2e) {
        char bs[16], ns[32], wk[16];
        snprintf(bs, sizeof bs, "%d", c->B);
        snprintf(ns, sizeof ns, "%lld", (long long)c->steps * c->B);
        snprintf(wk, sizeof wk, "%d", c->workers);
        char *argv[] = {(char *)c->clipmod, "train", "--model", "ViT-B-32", "--pretrained", (char *)c->weights, "--enable-lora",
                        "--train-data", c->urls, "--dataset-resampled", "--train-num-samples", ns, "--batch-size", bs,
                        "--workers", wk, "--precision", amp ? "amp" : "fp32", "--epochs", "1", "--warmup", "1", "--seed", "1",
                        "--val-frequency", "0", "--log-every-n-steps", "1", "--logs", logs, "--name", name, NULL};
        int rc = run_cmd(argv, log, steps, r);
        if (rc) { fprintf(stderr, "bench_train_e2e: clipmod train failed (exit %d), %s:\n", rc, log); print_tail(log); return 1; }
    } else {
        int p[2];
        if (pipe(p)) return 1;
        fflush(NULL);
        double t0 = cm_now();
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) { dup2(fd, 2); close(fd); }
            _exit(model_only_child(c, amp, logs, name, p[1]));
        }
        close(p[1]);
        if (pid < 0) return 1;
        int status = watch(pid, t0, steps, r);
        bool ok = status >= 0 && read(p[0], lens, 2 * sizeof(double)) == 2 * sizeof(double) && WIFEXITED(status) &&
                  WEXITSTATUS(status) == 0;
        close(p[0]);
        if (!ok) { fprintf(stderr, "bench_train_e2e: the model-only run failed, %s:\n", log); print_tail(log); return 1; }
    }
    if (read_steps(run_dir, r)) { fprintf(stderr, "bench_train_e2e: no timed step in %s/steps.jsonl\n", run_dir); return 1; }
    r->ok = true;
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_train_e2e [--steps N>=2] [--rounds R>=1] [--precision amp|fp32|both] [--batch B] [--workers W>=1] "
                    "[--rows N] [--dir DIR]\n");
}

int main(int argc, char **argv) {
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {   /* clipmod's own default (src/cli/main.c) */
        setenv("GOMP_SPINCOUNT", "10000", 1);
        execv("/proc/self/exe", argv);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    Cfg c;
    memset(&c, 0, sizeof c);
    c.steps = 4; c.rounds = 1; c.B = 256; c.workers = 2; c.rows = 2048;
    c.amp[0] = false; c.amp[1] = true;
    if (getenv("BENCH_QUICK") && *getenv("BENCH_QUICK") == '1') { c.B = 32; c.steps = 2; }   /* smoke test */
    char exe[PATH_MAX - 64];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;   /* build/bench */
    snprintf(c.clipmod, sizeof c.clipmod, "%s/../clipmod", exe);
    snprintf(c.dir, sizeof c.dir, "%s/../bench-e2e", exe);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { usage(); return 2; }
        i++;
        if (!strcmp(a, "--steps")) c.steps = atoi(v);
        else if (!strcmp(a, "--rounds")) c.rounds = atoi(v);
        else if (!strcmp(a, "--batch")) c.B = atoi(v);
        else if (!strcmp(a, "--workers")) c.workers = atoi(v);
        else if (!strcmp(a, "--rows")) c.rows = atoi(v);
        else if (!strcmp(a, "--dir")) snprintf(c.dir, sizeof c.dir, "%s", v);
        else if (!strcmp(a, "--precision")) {
            c.amp[0] = !strcmp(v, "fp32") || !strcmp(v, "both");
            c.amp[1] = !strcmp(v, "amp") || !strcmp(v, "both");
            if (!c.amp[0] && !c.amp[1]) { usage(); return 2; }
        } else { usage(); return 2; }
    }
    if (c.steps < 2 || c.rounds < 1 || c.B < 1 || c.workers < 1 || c.rows < c.B) { usage(); return 2; }
    c.steps = (c.steps + c.workers - 1) / c.workers * c.workers;   /* OpenCLIP's epoch sizing rounds up to whole workers */
    const char *sh = getenv("CLIPMOD_SHARED");
    snprintf(c.shared, sizeof c.shared, "%s", sh && *sh ? sh : "../shared");
    char probe[BIG];
    P(probe, "%s/data/fakeddit/multimodal_train.tsv", c.shared);
    if (access(probe, R_OK)) { printf("bench_train_e2e: skipped (needs %s: set CLIPMOD_SHARED)\n", probe); return 0; }
    if (access(c.clipmod, X_OK)) { fprintf(stderr, "bench_train_e2e: %s not built (make)\n", c.clipmod); return 1; }
    if (cm_mkdir_p(c.dir)) return die("mkdir");
    char *real = realpath(c.dir, NULL), *real_sh = realpath(c.shared, NULL);   /* symlinks to the JPEGs are absolute */
    if (!real || !real_sh) { fprintf(stderr, "bench_train_e2e: %s: %s\n", real ? c.shared : c.dir, strerror(errno)); return 1; }
    snprintf(c.dir, sizeof c.dir, "%s", real);
    snprintf(c.shared, sizeof c.shared, "%s", real_sh);
    free(real);
    free(real_sh);
    snprintf(c.weights, sizeof c.weights, "%s/weights.safetensors", c.dir);
    cm_threads_set(0);
    printf("bench_train_e2e: clipmod train end to end vs model-only steps, ViT-B-32 formula weights + --enable-lora, batch %d, "
           "--workers %d, %d steps per run (step 1 untimed), %d round(s), %d threads, %s=%s\n",
           c.B, c.workers, c.steps, c.rounds, cm_threads_get(), getenv("OMP_WAIT_POLICY") ? "OMP_WAIT_POLICY" : "GOMP_SPINCOUNT",
           getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : getenv("GOMP_SPINCOUNT"));
    if (write_weights(&c) || make_shards(&c)) return 1;
    double tot[2][2][3] = {{{0}}};   /* [amp][e2e][batch, data, n] */
    double lens[2] = {0, 0}, cpu[2][2] = {{0}};   /* [amp][e2e] CPU seconds of the timed steps */
    for (int round = 0; round < c.rounds; round++)
        for (int amp = 0; amp <= 1; amp++) {
            if (!c.amp[amp]) continue;
            RunRes res[2];
            for (int j = 0; j < 2; j++) {
                bool e2e = (j + round) % 2 == 0;   /* e2e first in even rounds, model-only first in odd ones */
                if (one_run(&c, amp, e2e, round, &res[e2e], lens)) return 1;
                tot[amp][e2e][0] += res[e2e].sum_batch;
                tot[amp][e2e][1] += res[e2e].sum_data;
                tot[amp][e2e][2] += res[e2e].n;
            }
            RunRes *e = &res[1], *m = &res[0];
            double rate_e = c.B * e->n / e->sum_batch, rate_m = c.B * m->n / (m->sum_batch - m->sum_data);
            printf("  %-4s round %d: clipmod train %6.2f samples/s, data wait %5.2f%% (%.3f s/step; step 1: %.2f s of %.1f s) | "
                   "model-only %6.2f samples/s (copy %.3f s/step) | ratio %.3f\n",
                   amp ? "amp" : "fp32", round + 1, rate_e, 100 * e->sum_data / e->sum_batch, e->sum_data / e->n, e->step1_data,
                   e->step1_batch, rate_m, m->sum_data / m->n, rate_e / rate_m);
            printf("             CPU per timed step: clipmod train %.1f s, model-only %.1f s (model-only/e2e %.3f)\n", e->cpu_timed / e->n,
                   m->cpu_timed / m->n, (m->cpu_timed / m->n) / (e->cpu_timed / e->n));
            printf("             wall: clipmod train %.1f s (step 1 %.1f s, steps 2-%d %.1f s, the rest %.1f s: start, checkpoint), "
                   "model-only %.1f s (step 1 %.1f s); peak RSS %.2f / %.2f GiB\n", e->wall, e->step1_batch, e->n + 1, e->sum_batch,
                   e->wall - e->step1_batch - e->sum_batch, m->wall, m->step1_batch, e->rss_gib, m->rss_gib);
            cpu[amp][1] += e->cpu_timed; cpu[amp][0] += m->cpu_timed;
        }
    printf("  captions in the batches: mean %.1f tokens, longest %.0f\n", lens[0], lens[1]);
    for (int amp = 0; amp <= 1; amp++) {
        if (!c.amp[amp]) continue;
        double *e = tot[amp][1], *m = tot[amp][0];
        double rate_e = c.B * e[2] / e[0], rate_m = c.B * m[2] / (m[0] - m[1]);
        printf("  %-4s all rounds: clipmod train %.2f samples/s, data wait %.2f%%, model-only %.2f samples/s: ratio %.3f (target >= 0.9); "
               "CPU per step model-only/e2e %.3f\n",
               amp ? "amp" : "fp32", rate_e, 100 * e[1] / e[0], rate_m, rate_e / rate_m, (cpu[amp][0] / m[2]) / (cpu[amp][1] / e[2]));
    }
    printf("  (wall ratios need a quiet machine: the runs last minutes each and other load moves them; the CPU ratio and the\n"
           "   data wait are what a shared machine still shows — docs/training.md)\n");
    free(c.urls);
    return 0;
}
