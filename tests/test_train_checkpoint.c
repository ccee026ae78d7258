/*
 * test_train_checkpoint.c — checkpoints: a LoRA (trainable-only) and a full checkpoint of the
 * golden tiny model round-trip bit for bit (model tensors, AdamW state, steps, RNG, metadata);
 * training continued from a reloaded checkpoint is bit-identical to uninterrupted training; a
 * changed base model, a truncated file, a foreign file and a different config are clear errors;
 * --resume latest picks the right file; a process killed while writing a checkpoint leaves the
 * previous one intact and loadable.
 */
#include "testlib.h"
/* REQUIRE evaluates its condition twice: call once, then check */
#define REQUIRE_OK(expr, ...) do { int req_rc_ = (int)(expr); REQUIRE(req_rc_ == 0, __VA_ARGS__); } while (0)
#include "train/checkpoint.h"
#include "io/tensorfile.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cm_test_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
}
static void rm_tmpdir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "cleanup failed\n");
}

/* The golden tiny model with every tensor loaded from model.safetensors. */
static CmModel *golden_model(CmTrainMode mode) {
    CmModelConfig cfg;
    if (cm_config_load(tl_shared("golden/tiny/config.json"), &cfg)) { fprintf(stderr, "%s\n", cm_last_error()); return NULL; }
    CmModel *m;
    if (cm_model_create(&cfg, &m)) return NULL;
    CmTensorFile *f;
    if (cm_tensorfile_open(tl_shared("golden/tiny/model.safetensors"), &f)) { cm_model_free(m); return NULL; }
    for (int i = 0; i < cm_tensorfile_count(f); i++) {
        const CmTensorView *t = cm_tensorfile_at(f, i);
        int idx = cm_model_find(m, t->name);
        if (idx < 0 || cm_tensor_to_f32(t, m->params[idx].data)) { fprintf(stderr, "tensor %s\n", t->name); cm_model_free(m); m = NULL; break; }
    }
    cm_tensorfile_close(f);
    if (m && cm_model_set_mode(m, mode, false, false)) { cm_model_free(m); return NULL; }
    return m;
}

/* deterministic pseudo-gradients for step t */
static void fake_grads(CmModel *m, int t) {
    for (int i = 0; i < m->n_params; i++) {
        CmParam *p = &m->params[i];
        if (!p->grad) continue;
        for (size_t k = 0; k < p->numel; k++) p->grad[k] = sinf((float)(k * 0.37 + i * 1.3 + t * 0.71)) * 0.01f;
    }
}

static void train_steps(CmModel *m, CmAdamW *o, int from, int to) {
    for (int t = from; t < to; t++) { fake_grads(m, t); cm_adamw_step(o, 1e-3 * (t + 1)); }
}

static int compare_models(const CmModel *a, const CmModel *b) {
    int diff = 0;
    for (int i = 0; i < a->n_params; i++)
        if (memcmp(a->params[i].data, b->params[i].data, a->params[i].numel * 4)) {
            if (diff < 3) fprintf(stderr, "    differs: %s\n", a->params[i].name);
            diff++;
        }
    return diff;
}

static int compare_opt(const CmAdamW *a, const CmAdamW *b) {
    int diff = a->n != b->n;
    for (int i = 0; !diff && i < a->n; i++)
        diff += a->step[i] != b->step[i] || memcmp(a->m[i], b->m[i], a->p[i].numel * 4) ||
                memcmp(a->v[i], b->v[i], a->p[i].numel * 4);
    return diff;
}

static void roundtrip(CmTrainMode mode, bool trainable_only) {
    CmModel *m = golden_model(mode);
    REQUIRE(m, "golden model: %s", cm_last_error());
    CmOptParam *pp; int np;
    REQUIRE_OK(cm_opt_params_from_model(m, &pp, &np), "params");
    CHECK(np == (mode == CM_TRAIN_LORA ? 36 : 98), "%d trainable", np);
    CmAdamW o;
    REQUIRE_OK(cm_adamw_init(&o, pp, np, 0.9, 0.98, 1e-6, 0.1), "init");
    train_steps(m, &o, 0, 3);

    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.epoch = 1; meta.step = 3; meta.mode = mode; meta.trainable_only = trainable_only;
    snprintf(meta.name, sizeof meta.name, "run");
    snprintf(meta.base_model, sizeof meta.base_model, "%s", tl_shared("golden/tiny/model.safetensors"));
    REQUIRE_OK(cm_sha256_file(meta.base_model, meta.base_sha256), "sha");
    meta.n_rng = 1;
    snprintf(meta.rng_name[0], sizeof meta.rng_name[0], "dropout");
    cm_rng_seed(&meta.rng[0], 99);
    meta.rng[0].s[3] = 0xffffffffffffffffULL;
    meta.args_json = "{\"lr\":\"0.001\"}";
    char path[512];
    cm_checkpoint_path(path, sizeof path, tmpdir, 1);
    REQUIRE_OK(cm_checkpoint_save(path, m, &o, &meta), "save: %s", cm_last_error());

    /* the file: only trainable tensors in LoRA mode, plus 2 state tensors per trainable one */
    CmTensorFile *f;
    REQUIRE_OK(cm_tensorfile_open(path, &f), "reopen: %s", cm_last_error());
    int want = (trainable_only ? np : m->n_params) + 2 * np;
    CHECK(cm_tensorfile_count(f) == want, "%d tensors, want %d", cm_tensorfile_count(f), want);
    CHECK(!strcmp(cm_tensorfile_metadata(f, "base_model_sha256"), meta.base_sha256), "sha in metadata");
    CHECK(!strcmp(cm_tensorfile_metadata(f, "args"), meta.args_json), "args in metadata");
    CHECK(cm_tensorfile_find(f, "optimizer.exp_avg_sq.classifier_head.classifier.3.bias") != NULL, "state tensor name");
    cm_tensorfile_close(f);

    /* eval-style open: base + overlay gives the trained model bit for bit */
    CmModel *e;
    CmCkptMeta em;
    REQUIRE_OK(cm_checkpoint_open_model(path, &e, &em), "open_model: %s", cm_last_error());
    CHECK(compare_models(m, e) == 0, "opened model differs");
    CHECK(em.epoch == 1 && em.step == 3 && em.mode == mode && em.trainable_only == trainable_only && !strcmp(em.name, "run"), "meta");
    CHECK(em.n_rng == 1 && !strcmp(em.rng_name[0], "dropout") && !memcmp(&em.rng[0], &meta.rng[0], sizeof(CmRng)), "rng state");
    CHECK(e->cfg.embed_dim == 32 && e->cfg.has_lora && e->cfg.has_head && e->cfg.lora_alpha == 32, "config");
    cm_model_free(e);

    /* resume: a fresh model + optimizer from the checkpoint continue exactly */
    CmModel *r = golden_model(mode);
    REQUIRE(r, "model");
    if (!trainable_only) for (size_t k = 0; k < r->n_floats; k++) r->arena[k] = 0;   /* all must come from the file */
    CmOptParam *rp; int rn;
    REQUIRE_OK(cm_opt_params_from_model(r, &rp, &rn), "params");
    CmAdamW ro;
    REQUIRE_OK(cm_adamw_init(&ro, rp, rn, 0.5, 0.5, 1e-3, 0.0), "init");   /* wrong hypers: restored from the file */
    REQUIRE_OK(cm_checkpoint_load(path, r, &ro, NULL), "load: %s", cm_last_error());
    CHECK(ro.beta1 == 0.9 && ro.beta2 == 0.98 && ro.eps == 1e-6 && ro.wd == 0.1, "hyper-parameters restored");
    CHECK(compare_opt(&o, &ro) == 0, "optimizer state differs after load");
    train_steps(m, &o, 3, 6);
    train_steps(r, &ro, 3, 6);
    CHECK(compare_models(m, r) == 0, "resumed training differs");
    CHECK(compare_opt(&o, &ro) == 0, "resumed optimizer differs");

    cm_adamw_free(&o); cm_adamw_free(&ro); cm_free(pp); cm_free(rp);
    cm_model_free(m); cm_model_free(r);
}

static void test_roundtrip_lora(void) { SHARED_OR_SKIP(); roundtrip(CM_TRAIN_LORA, true); }
static void test_roundtrip_full(void) { SHARED_OR_SKIP(); roundtrip(CM_TRAIN_FULL, false); }

static void test_errors(void) {
    SHARED_OR_SKIP();
    CmModel *m = golden_model(CM_TRAIN_LORA);
    REQUIRE(m, "model");
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_LORA; meta.trainable_only = true;
    char path[512], base[512];
    snprintf(path, sizeof path, "%s/e.safetensors", tmpdir);
    CHECK(cm_checkpoint_save(path, m, NULL, &meta) == CM_ERR_ARG, "trainable-only without base accepted");
    /* a base model whose content changed */
    snprintf(base, sizeof base, "%s/base.safetensors", tmpdir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", tl_shared("golden/tiny/model.safetensors"), base);
    REQUIRE(system(cmd) == 0, "cp");
    snprintf(meta.base_model, sizeof meta.base_model, "%s", base);
    REQUIRE_OK(cm_sha256_file(base, meta.base_sha256), "sha");
    REQUIRE_OK(cm_checkpoint_save(path, m, NULL, &meta), "save: %s", cm_last_error());
    CmModel *e = NULL;
    REQUIRE_OK(cm_checkpoint_open_model(path, &e, NULL), "open: %s", cm_last_error());
    cm_model_free(e);
    FILE *bf = fopen(base, "r+b");
    REQUIRE(bf, "open base");
    fseek(bf, -4, SEEK_END); fputc(0x7f, bf); fclose(bf);
    CHECK(cm_checkpoint_open_model(path, &e, NULL) != CM_OK && strstr(cm_last_error(), "SHA-256"), "changed base: %s", cm_last_error());
    /* truncated checkpoint */
    uint8_t *buf; size_t len;
    REQUIRE_OK(cm_read_file(path, 1 << 28, &buf, &len), "read");
    char trunc[512];
    snprintf(trunc, sizeof trunc, "%s/trunc.safetensors", tmpdir);
    REQUIRE_OK(cm_write_file_atomic(trunc, buf, len / 2), "write");
    cm_free(buf);
    CHECK(cm_checkpoint_open_model(trunc, &e, NULL) != CM_OK && strstr(cm_last_error(), "trunc.safetensors"), "truncated: %s", cm_last_error());
    CmOptParam *pp; int np;
    REQUIRE_OK(cm_opt_params_from_model(m, &pp, &np), "params");
    CmAdamW o;
    REQUIRE_OK(cm_adamw_init(&o, pp, np, 0.9, 0.98, 1e-6, 0.1), "init");
    CHECK(cm_checkpoint_load(trunc, m, &o, NULL) != CM_OK, "truncated load accepted");
    /* no optimizer state in the file */
    CHECK(cm_checkpoint_load(path, m, &o, NULL) != CM_OK && strstr(cm_last_error(), "optimizer"), "missing state: %s", cm_last_error());
    /* a foreign safetensors file */
    CHECK(cm_checkpoint_open_model(tl_shared("golden/tiny/expected.safetensors"), &e, NULL) != CM_OK &&
          strstr(cm_last_error(), "expected.safetensors"), "foreign: %s", cm_last_error());
    /* a different config */
    CmModelConfig cfg = m->cfg;
    cfg.lora_rank = 8;
    CmModel *other;
    REQUIRE_OK(cm_model_create(&cfg, &other), "create");
    CHECK(cm_checkpoint_load(path, other, NULL, NULL) == CM_ERR_SHAPE && strstr(cm_last_error(), "differs"), "config: %s", cm_last_error());
    cm_model_free(other);
    cm_adamw_free(&o); cm_free(pp);
    cm_model_free(m);
}

/* --resume latest: the complete checkpoint with the most steps, whatever its name (a mid-epoch
   step_N beats an older epoch_latest, a newer epoch_N beats epoch_latest); unreadable files, temp
   files and other names are ignored; on a tie epoch_N wins. */
static void test_find_latest(void) {
    static const char cfg_json[] =
        "{\"model_cfg\":{\"embed_dim\":16,\"vision_cfg\":{\"image_size\":16,\"layers\":1,\"width\":16,\"patch_size\":8,\"head_width\":8},"
        "\"text_cfg\":{\"context_length\":8,\"vocab_size\":258,\"width\":16,\"heads\":2,\"layers\":1}}}";
    CmModelConfig cfg;
    REQUIRE_OK(cm_config_from_json(cfg_json, strlen(cfg_json), "test config", &cfg), "config: %s", cm_last_error());
    CmModel *m;
    REQUIRE_OK(cm_model_create(&cfg, &m), "create: %s", cm_last_error());
    char dir[400], p[600], *out = NULL;
    snprintf(dir, sizeof dir, "%s/ck", tmpdir);
    REQUIRE_OK(cm_mkdir_p(dir), "mkdir");
    CHECK(cm_checkpoint_find_latest(dir, &out) == CM_ERR_IO, "empty folder");
    struct { const char *name; long long step; } ck[] = {
        {"epoch_2.safetensors", 20}, {"epoch_10.safetensors", 100}, {"epoch_9.safetensors", 90}, {"epoch_latest.safetensors", 90}};
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_NONE;
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, ck[i].name);
        meta.step = ck[i].step;
        meta.epoch = ck[i].step / 10;
        REQUIRE_OK(cm_checkpoint_save(p, m, NULL, &meta), "save %s: %s", p, cm_last_error());
    }
    const char *junk[] = {"epoch_11.safetensors.tmp.123", "epoch_x.safetensors", "epoch_12.safetensors", "step_500.safetensors"};
    for (int i = 0; i < 4; i++) { snprintf(p, sizeof p, "%s/%s", dir, junk[i]); tl_write_text(p, "garbage, not a checkpoint"); }
    REQUIRE_OK(cm_checkpoint_find_latest(dir, &out), "find: %s", cm_last_error());
    CHECK(strstr(out, "/epoch_10.safetensors") != NULL, "picked %s (epoch_10 has the most steps)", out);
    cm_free(out);
    snprintf(p, sizeof p, "%s/epoch_latest.safetensors", dir);   /* same step as epoch_10: epoch_10 still */
    meta.step = 100; meta.epoch = 10;
    REQUIRE_OK(cm_checkpoint_save(p, m, NULL, &meta), "save");
    REQUIRE_OK(cm_checkpoint_find_latest(dir, &out), "find");
    CHECK(strstr(out, "/epoch_10.safetensors") != NULL, "tie: picked %s", out);
    cm_free(out);
    cm_checkpoint_step_path(p, sizeof p, dir, 113);   /* interrupted mid-epoch later on */
    meta.step = 113; meta.epoch = 11; meta.epoch_step = 3;
    REQUIRE_OK(cm_checkpoint_save(p, m, NULL, &meta), "save");
    REQUIRE_OK(cm_checkpoint_find_latest(dir, &out), "find");
    CHECK(strstr(out, "/step_113.safetensors") != NULL, "picked %s", out);
    cm_free(out);
    CmCkptMeta got;
    REQUIRE_OK(cm_checkpoint_read_meta(p, &got, NULL), "read");
    CHECK(got.step == 113 && got.epoch == 11 && got.epoch_step == 3, "meta %lld %lld %lld", (long long)got.step,
          (long long)got.epoch, (long long)got.epoch_step);
    snprintf(p, sizeof p, "%s/epoch_latest.safetensors", dir);   /* a newer epoch_latest wins again */
    meta.step = 120; meta.epoch = 12; meta.epoch_step = 0;
    REQUIRE_OK(cm_checkpoint_save(p, m, NULL, &meta), "save");
    REQUIRE_OK(cm_checkpoint_find_latest(dir, &out), "find");
    CHECK(strstr(out, "/epoch_latest.safetensors") != NULL, "picked %s", out);
    cm_free(out);
    cm_model_free(m);
}

/* A child writes checkpoints in a loop and is SIGKILLed; the earlier epoch_1 must stay intact. */
static void test_kill_during_write(void) {
    SHARED_OR_SKIP();
    CmModel *m = golden_model(CM_TRAIN_FULL);
    REQUIRE(m, "model");
    CmOptParam *pp; int np;
    REQUIRE_OK(cm_opt_params_from_model(m, &pp, &np), "params");
    CmAdamW o;
    REQUIRE_OK(cm_adamw_init(&o, pp, np, 0.9, 0.98, 1e-6, 0.1), "init");
    train_steps(m, &o, 0, 1);
    CmCkptMeta meta;
    memset(&meta, 0, sizeof meta);
    meta.mode = CM_TRAIN_FULL; meta.epoch = 1; meta.step = 1;
    char dir[400], p1[600], p2[600];
    snprintf(dir, sizeof dir, "%s/kill", tmpdir);
    REQUIRE_OK(cm_mkdir_p(dir), "mkdir");
    cm_checkpoint_path(p1, sizeof p1, dir, 1);
    cm_checkpoint_path(p2, sizeof p2, dir, -1);
    REQUIRE_OK(cm_checkpoint_save(p1, m, &o, &meta), "save: %s", cm_last_error());
    REQUIRE_OK(cm_checkpoint_save(p2, m, &o, &meta), "save latest");
    int kills = 0;
    for (int round = 0; round < 3; round++) {
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0, "fork");
        if (pid == 0) {
            train_steps(m, &o, 1, 2);
            CmCkptMeta m2 = meta;
            m2.epoch = 2;
            for (;;) { cm_checkpoint_save(p1, m, &o, &m2); cm_checkpoint_save(p2, m, &o, &m2); }
        }
        usleep(30000 + 40000 * round);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status);
        /* whatever instant it died at, both files are complete checkpoints (epoch 1 or 2) */
        for (int k = 0; k < 2; k++) {
            CmModel *r = golden_model(CM_TRAIN_FULL);
            REQUIRE(r, "model");
            CmOptParam *rp; int rn;
            REQUIRE_OK(cm_opt_params_from_model(r, &rp, &rn), "params");
            CmAdamW ro;
            REQUIRE_OK(cm_adamw_init(&ro, rp, rn, 0.9, 0.98, 1e-6, 0.1), "init");
            CmCkptMeta got;
            cm_status st = cm_checkpoint_load(k ? p2 : p1, r, &ro, &got);
            CHECK(st == CM_OK, "round %d: %s not loadable after kill: %s", round, k ? p2 : p1, cm_last_error());
            if (!st && got.epoch == 1) CHECK(compare_models(m, r) == 0 && compare_opt(&o, &ro) == 0, "epoch_1 content changed");
            CHECK(st || got.epoch == 1 || got.epoch == 2, "epoch %lld", (long long)got.epoch);
            cm_adamw_free(&ro); cm_free(rp); cm_model_free(r);
        }
        char *latest;
        REQUIRE_OK(cm_checkpoint_find_latest(dir, &latest), "latest");
        CHECK(!strcmp(latest, p1), "latest %s (same step: epoch_N wins the tie)", latest);
        cm_free(latest);
    }
    CHECK(kills == 3, "child was not killed (%d)", kills);
    cm_adamw_free(&o); cm_free(pp); cm_model_free(m);
}

int main(void) {
    make_tmpdir();
    RUN(test_roundtrip_lora);
    RUN(test_roundtrip_full);
    RUN(test_errors);
    RUN(test_find_latest);
    RUN(test_kill_during_write);
    rm_tmpdir();
    return tl_summary("test_train_checkpoint");
}
