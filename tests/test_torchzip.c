/*
 * test_torchzip.c — PyTorch zip checkpoints read without Python:
 *   - golden open_clip_pytorch_model.bin: the 62 CLIP tensors, bit-identical to model.safetensors;
 *   - golden epoch_1.pt: every state-dict tensor and every AdamW exp_avg/exp_avg_sq bit-exact against
 *     epoch_1_checks.json (sha256 of the raw data, sums), steps, param_groups, epoch and name;
 *   - archives and pickles built here (a tiny zip writer below, files in /tmp): stored and deflated
 *     entries, a "module." prefix, scalars; and bad input: disallowed globals (os.system,
 *     builtins.eval) and opcodes (INST, NEWOBJ, STACK_GLOBAL, ...), REDUCE on a non-callable,
 *     non-contiguous tensors, missing/short storages, truncated archives and pickles, CRC damage.
 */
#include "testlib.h"
#include "io/tensorfile.h"

#include <cjson/cJSON.h>
#include <unistd.h>
#include <zlib.h>


// ---- golden files ------------------------------------------------------------------------------

static void test_bin_equals_safetensors(void) {
    SHARED_OR_SKIP();
    CmTensorFile *b, *s, *h;
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/open_clip_pytorch_model.bin"), &b));
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/model.safetensors"), &s));
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/model_fp16.safetensors"), &h));
    CHECK(cm_tensorfile_count(b) == 62, "count %d", cm_tensorfile_count(b));
    CHECK(cm_tensorfile_checkpoint(b) == NULL, "a bare state dict is no training checkpoint");
    int bad = 0;
    for (int i = 0; i < cm_tensorfile_count(b); i++) {
        const CmTensorView *vb = cm_tensorfile_at(b, i), *vs = cm_tensorfile_find(s, vb->name);
        /* same names in the same (OpenCLIP) order as the 62-tensor fp16 file */
        CHECK(!strcmp(vb->name, cm_tensorfile_at(h, i)->name), "order at %d: %s", i, vb->name);
        if (!vs || vs->nbytes != vb->nbytes || vs->ndim != vb->ndim || vb->dtype != CM_F32 ||
            memcmp(vs->shape, vb->shape, sizeof vs->shape) || memcmp(vs->data, vb->data, vb->nbytes)) {
            bad++;
            fprintf(stderr, "    differs: %s\n", vb->name);
        }
        CHECK(((uintptr_t)vb->data & 63) == 0, "%s: torch stores storages 64-byte aligned", vb->name);
    }
    CHECK(bad == 0, "%d tensors differ", bad);
    const CmTensorView *ls = cm_tensorfile_find(b, "logit_scale");
    CHECK(ls && ls->ndim == 0 && ls->numel == 1, "scalar logit_scale");
    cm_tensorfile_close(b);
    cm_tensorfile_close(s);
    cm_tensorfile_close(h);
}

static double sum_f32(const CmTensorView *v) {
    double s = 0;
    for (size_t i = 0; i < v->numel; i++) { float x; memcpy(&x, (const uint8_t *)v->data + 4 * i, 4); s += x; }
    return s;
}

static bool same_sha(const CmTensorView *v, const cJSON *want) {
    char h[65];
    cm_sha256_hex(v->data, v->nbytes, h);
    return cJSON_IsString(want) && !strcmp(h, want->valuestring);
}

static void test_epoch_checkpoint_exact(void) {
    SHARED_OR_SKIP();
    cJSON *root = tl_read_golden_json("golden/tiny/epoch_1_checks.json");
    REQUIRE(root, "checks json: golden/tiny/epoch_1_checks.json unreadable or not JSON");
    CmTensorFile *f;
    cm_status st = cm_tensorfile_open(tl_shared("golden/tiny/epoch_1.pt"), &f);
    if (st) { cJSON_Delete(root); REQUIRE(0, "%s", cm_last_error()); }
    const cJSON *sd = cJSON_GetObjectItem(root, "state_dict"), *e;
    CHECK(cm_tensorfile_count(f) == cJSON_GetArraySize(sd), "count %d", cm_tensorfile_count(f));
    int i = 0, bad = 0;
    cJSON_ArrayForEach(e, sd) {
        const char *key = cJSON_GetObjectItem(e, "key")->valuestring;
        const CmTensorView *v = cm_tensorfile_find(f, key + 7);   /* "module." stripped */
        const CmTensorView *at = cm_tensorfile_at(f, i++);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        bool ok = v && v == at && !strncmp(key, "module.", 7) && v->dtype == CM_F32 &&
                  v->ndim == cJSON_GetArraySize(shape);
        for (int d = 0; ok && d < v->ndim; d++) ok = v->shape[d] == cJSON_GetArrayItem(shape, d)->valueint;
        ok = ok && same_sha(v, cJSON_GetObjectItem(e, "sha256_le")) &&
             fabs(sum_f32(v) - cJSON_GetObjectItem(e, "sum")->valuedouble) <= 1e-9 * (1 + v->numel);
        if (!ok) { bad++; fprintf(stderr, "    state_dict mismatch: %s\n", key); }
    }
    CHECK(bad == 0, "%d state-dict tensors differ", bad);
    const CmCheckpointInfo *ck = cm_tensorfile_checkpoint(f);
    REQUIRE(ck, "checkpoint info");
    CHECK(ck->has_epoch && ck->epoch == 1 && ck->name && !strcmp(ck->name, "tiny"), "epoch/name");
    REQUIRE(ck->has_optimizer, "optimizer");
    const cJSON *pgs = cJSON_GetObjectItem(root, "param_groups");
    CHECK(ck->n_groups == cJSON_GetArraySize(pgs), "groups %d", ck->n_groups);
    int g = 0;
    cJSON_ArrayForEach(e, pgs) {
        if (g >= ck->n_groups) break;
        const CmOptParamGroup *pg = &ck->groups[g++];
        const cJSON *betas = cJSON_GetObjectItem(e, "betas"), *params = cJSON_GetObjectItem(e, "params");
        CHECK(pg->lr == cJSON_GetObjectItem(e, "lr")->valuedouble && pg->eps == cJSON_GetObjectItem(e, "eps")->valuedouble &&
              pg->weight_decay == cJSON_GetObjectItem(e, "weight_decay")->valuedouble &&
              pg->beta1 == cJSON_GetArrayItem(betas, 0)->valuedouble && pg->beta2 == cJSON_GetArrayItem(betas, 1)->valuedouble &&
              !pg->amsgrad && !pg->maximize && isnan(pg->initial_lr), "param group %d scalars", g - 1);
        REQUIRE(pg->n_params == cJSON_GetArraySize(params), "group %d params", g - 1);
        for (int k = 0; k < pg->n_params; k++)
            CHECK(pg->params[k] == cJSON_GetArrayItem(params, k)->valueint, "group %d param %d", g - 1, k);
    }
    const cJSON *states = cJSON_GetObjectItem(root, "state");
    CHECK(ck->n_state == cJSON_GetArraySize(states), "states %d", ck->n_state);
    bad = 0;
    cJSON_ArrayForEach(e, states) {
        int idx = cJSON_GetObjectItem(e, "index")->valueint;
        const CmOptState *s = cm_checkpoint_state(ck, idx);
        const CmTensorView *p = cm_tensorfile_find(f, cJSON_GetObjectItem(e, "param")->valuestring);
        bool ok = s && p && s->has_step && s->step == cJSON_GetObjectItem(e, "step")->valuedouble && s->exp_avg &&
                  s->exp_avg_sq && !s->max_exp_avg_sq && s->exp_avg->numel == p->numel &&
                  !memcmp(s->exp_avg->shape, p->shape, sizeof p->shape) &&
                  same_sha(s->exp_avg, cJSON_GetObjectItem(e, "exp_avg_sha256_le")) &&
                  same_sha(s->exp_avg_sq, cJSON_GetObjectItem(e, "exp_avg_sq_sha256_le")) &&
                  fabs(sum_f32(s->exp_avg) - cJSON_GetObjectItem(e, "exp_avg_sum")->valuedouble) <= 1e-9 * (1 + p->numel) &&
                  fabs(sum_f32(s->exp_avg_sq) - cJSON_GetObjectItem(e, "exp_avg_sq_sum")->valuedouble) <= 1e-9 * (1 + p->numel);
        if (!ok) { bad++; fprintf(stderr, "    optimizer state %d mismatch\n", idx); }
    }
    CHECK(bad == 0, "%d optimizer states differ", bad);
    CHECK(cm_checkpoint_state(ck, 62) == NULL && cm_checkpoint_state(ck, -1) == NULL, "absent index");
    cm_tensorfile_close(f);
    cJSON_Delete(root);
}

// ---- a tiny zip writer and pickle builder (test fixtures made at run time) ---------------------

typedef struct { uint8_t *p; size_t n, cap; } Bytes;
static void put(Bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) { b->cap = (b->n + n) * 2 + 64; b->p = realloc(b->p, b->cap); }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put8(Bytes *b, unsigned x) { uint8_t c = (uint8_t)x; put(b, &c, 1); }
static void put16(Bytes *b, unsigned x) { put8(b, x & 0xff); put8(b, (x >> 8) & 0xff); }
static void put32(Bytes *b, uint32_t x) { put16(b, x & 0xffff); put16(b, x >> 16); }
static void pstr(Bytes *b, const char *s) { put8(b, 'X'); put32(b, (uint32_t)strlen(s)); put(b, s, strlen(s)); }
static void pglobal(Bytes *b, const char *mod, const char *name) {
    put8(b, 'c'); put(b, mod, strlen(mod)); put8(b, '\n'); put(b, name, strlen(name)); put8(b, '\n');
}
static void pint(Bytes *b, int x) { put8(b, 'J'); put32(b, (uint32_t)x); }

typedef struct { const char *name; const void *data; size_t len; bool deflate; } ZEnt;
static uint32_t g_fake_usize;   /* when set: the declared uncompressed size of deflated entries */

static const char *write_zip(const char *fname, const ZEnt *es, int n) {
    Bytes z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, es[i].data, (uInt)es[i].len);
        const void *d = es[i].data;
        size_t dl = es[i].len;
        uint8_t *def = NULL;
        if (es[i].deflate) {
            z_stream s = {0};
            deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
            def = malloc(es[i].len + 1024);
            s.next_in = (Bytef *)es[i].data; s.avail_in = (uInt)es[i].len;
            s.next_out = def; s.avail_out = (uInt)es[i].len + 1024;
            deflate(&s, Z_FINISH);
            dl = s.total_out;
            deflateEnd(&s);
            d = def;
        }
        uint32_t off = (uint32_t)z.n;
        size_t nl = strlen(es[i].name);
        put32(&z, 0x04034b50); put16(&z, 20); put16(&z, 0); put16(&z, es[i].deflate ? 8 : 0); put32(&z, 0);
        uint32_t usz = es[i].deflate && g_fake_usize ? g_fake_usize : (uint32_t)es[i].len;
        put32(&z, crc); put32(&z, (uint32_t)dl); put32(&z, usz); put16(&z, (unsigned)nl); put16(&z, 0);
        put(&z, es[i].name, nl); put(&z, d, dl);
        put32(&cd, 0x02014b50); put16(&cd, 20); put16(&cd, 20); put16(&cd, 0); put16(&cd, es[i].deflate ? 8 : 0);
        put32(&cd, 0); put32(&cd, crc); put32(&cd, (uint32_t)dl); put32(&cd, usz);
        put16(&cd, (unsigned)nl); put16(&cd, 0); put16(&cd, 0); put16(&cd, 0); put16(&cd, 0); put32(&cd, 0); put32(&cd, off);
        put(&cd, es[i].name, nl);
        free(def);
    }
    uint32_t cdoff = (uint32_t)z.n;
    put(&z, cd.p, cd.n);
    put32(&z, 0x06054b50); put16(&z, 0); put16(&z, 0); put16(&z, (unsigned)n); put16(&z, (unsigned)n);
    put32(&z, (uint32_t)cd.n); put32(&z, cdoff); put16(&z, 0);
    const char *p = tl_tmp(fname);
    FILE *fp = fopen(p, "wb");
    fwrite(z.p, 1, z.n, fp);
    fclose(fp);
    free(z.p); free(cd.p);
    return p;
}

/* One tensor entry: key -> _rebuild_tensor_v2(storage(key skey, numel), off, (r, c), stride, False, OrderedDict()) */
static void ptensor(Bytes *b, const char *key, const char *skey, int numel, int off, int r, int c, int s0, int s1) {
    pstr(b, key);
    pglobal(b, "torch._utils", "_rebuild_tensor_v2");
    put8(b, '(');
    put8(b, '('); pstr(b, "storage"); pglobal(b, "torch", "FloatStorage"); pstr(b, skey); pstr(b, "cpu"); pint(b, numel);
    put8(b, 't'); put8(b, 'Q');
    pint(b, off);
    pint(b, r); pint(b, c); put8(b, 0x86);
    pint(b, s0); pint(b, s1); put8(b, 0x86);
    put8(b, 0x89);
    pglobal(b, "collections", "OrderedDict"); put8(b, ')'); put8(b, 'R');
    put8(b, 't'); put8(b, 'R');
}

static float g_vals[64];

/* A state dict {prefix+"w": [2,3] (stride s0,s1), prefix+"b": [1,4] at offset 6 of the same storage},
   with `inject` bytes placed right after PROTO. */
static void make_sd(Bytes *b, const char *prefix, int s0, int s1, int numel, const uint8_t *inject, size_t ni) {
    char k1[64], k2[64];
    snprintf(k1, sizeof k1, "%sw", prefix);
    snprintf(k2, sizeof k2, "%sb", prefix);
    put8(b, 0x80); put8(b, 2);
    if (inject) put(b, inject, ni);
    pglobal(b, "collections", "OrderedDict"); put8(b, ')'); put8(b, 'R'); put8(b, 'q'); put8(b, 0);
    put8(b, '(');
    ptensor(b, k1, "0", numel, 0, 2, 3, s0, s1);
    ptensor(b, k2, "0", numel, 6, 1, 4, 4, 1);
    put8(b, 'u');
    /* _metadata via BUILD, as torch writes it */
    put8(b, '}'); pstr(b, "_metadata"); pglobal(b, "collections", "OrderedDict"); put8(b, ')'); put8(b, 'R'); put8(b, 's');
    put8(b, 'b');
    put8(b, '.');
}

static const char *sd_zip(const char *fname, const Bytes *pk, bool deflate, size_t storage_bytes) {
    ZEnt es[3] = {{"archive/data.pkl", pk->p, pk->n, deflate},
                  {"archive/data/0", g_vals, storage_bytes, false},
                  {"archive/version", "3\n", 2, false}};
    return write_zip(fname, es, 3);
}

static cm_status open_status(const char *p, CmTensorFile **f) {
    cm_clear_error();
    *f = NULL;
    return cm_tensorfile_open(p, f);
}

static void expect_err(const char *p, cm_status want, const char *needle) {
    CmTensorFile *f;
    cm_status st = open_status(p, &f);
    CHECK(st == want, "%s: status %d want %d (%s)", p, st, want, cm_last_error());
    CHECK(strstr(cm_last_error(), needle) != NULL, "message '%s' lacks '%s'", cm_last_error(), needle);
    if (getenv("SHOW_ERRORS")) fprintf(stderr, "    -> %s\n", cm_last_error());
    CHECK(strstr(cm_last_error(), p) != NULL, "message names the file: %s", cm_last_error());
    if (f) cm_tensorfile_close(f);
    unlink(p);
}

static void test_built_archives(void) {
    for (int i = 0; i < 64; i++) g_vals[i] = (float)i * 0.5f;
    for (int deflate = 0; deflate < 2; deflate++) {
        Bytes pk = {0};
        make_sd(&pk, "module.", 3, 1, 10, NULL, 0);
        const char *p = sd_zip("ok.pt", &pk, deflate, 40);
        CmTensorFile *f;
        cm_status st = open_status(p, &f);
        free(pk.p);
        REQUIRE(st == CM_OK, "%s", cm_last_error());
        CHECK(cm_tensorfile_count(f) == 2, "count");
        const CmTensorView *w = cm_tensorfile_find(f, "w"), *b = cm_tensorfile_find(f, "b");
        CHECK(w && b && w->ndim == 2 && w->shape[1] == 3 && b->shape[1] == 4, "names stripped of module.");
        float x[6];
        CHECK(w && cm_tensor_to_f32(w, x) == CM_OK && x[5] == 2.5f, "w values");
        CHECK(b && cm_tensor_to_f32(b, x) == CM_OK && x[0] == 3.0f && x[3] == 4.5f, "b values at storage offset 6");
        cm_tensorfile_close(f);
        unlink(p);
    }
    /* stride 0/anything on a size-1 dim is still contiguous; a prefix not on every key is kept */
    Bytes pk = {0};
    make_sd(&pk, "", 3, 1, 10, NULL, 0);
    const char *p = sd_zip("nostrip.pt", &pk, false, 40);
    free(pk.p);
    CmTensorFile *f;
    cm_status st = open_status(p, &f);
    REQUIRE(st == CM_OK, "%s", cm_last_error());
    CHECK(cm_tensorfile_find(f, "w") && cm_tensorfile_find(f, "b"), "plain names");
    cm_tensorfile_close(f);
    unlink(p);
}

static void test_disallowed_globals_and_opcodes(void) {
    struct { const char *inject; size_t n; const char *needle; } cases[] = {
        {"cos\nsystem\n", 11, "disallowed global 'os.system'"},
        {"cbuiltins\neval\n", 15, "disallowed global 'builtins.eval'"},
        {"cposix\nsystem\n", 14, "disallowed global 'posix.system'"},
        {"ctorch\nload\n", 12, "disallowed global 'torch.load'"},
        {"(i__builtin__\nexec\n", 19, "disallowed pickle opcode 0x69 INST"},
        {"\x93", 1, "0x93 STACK_GLOBAL"},
        {"\x81", 1, "0x81 NEWOBJ"},
        {"Vabc\n", 5, "0x56 UNICODE"},
        {"0", 1, "0x30 POP"},
        {"\x82\x01", 2, "0x82 EXT1"},
        {"\xff", 1, "0xff unknown"},
        /* REDUCE on a storage type (not a callable we allow) */
        {"ctorch\nFloatStorage\n)R", 22, "not an allowed callable"},
        {"h\x07", 2, "memo GET of an unset index"},
        {"\x80\x09", 2, "unknown pickle protocol"},
        {"Nr\xff\xff\xff\x7f", 6, "memo index absurdly large"},
        {"r\x00\x00\x00\x00", 5, "memo put with an empty stack"},
        {"\x8a\x09", 2, "LONG1 integer wider than 64 bits"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Bytes pk = {0};
        make_sd(&pk, "", 3, 1, 10, (const uint8_t *)cases[i].inject, cases[i].n);
        const char *p = sd_zip("evil.pt", &pk, false, 40);
        free(pk.p);
        expect_err(p, cases[i].inject[0] == '\x80' ? CM_ERR_FORMAT : CM_ERR_FORMAT, cases[i].needle);
    }
}

static void test_bad_tensors(void) {
    Bytes pk = {0};
    make_sd(&pk, "", 1, 2, 10, NULL, 0);                    /* w: shape (2,3), stride (1,2): transposed */
    expect_err(sd_zip("nc.pt", &pk, false, 40), CM_ERR_UNSUPPORTED, "tensor 'w' is not contiguous");
    free(pk.p);
    pk = (Bytes){0};
    make_sd(&pk, "", 3, 1, 10, NULL, 0);
    expect_err(sd_zip("short.pt", &pk, false, 36), CM_ERR_FORMAT, "do not fit");        /* storage too small */
    free(pk.p);
    pk = (Bytes){0};
    make_sd(&pk, "", 3, 1, 8, NULL, 0);                     /* numel 8: b at offset 6 + 4 elements overruns */
    expect_err(sd_zip("oob.pt", &pk, false, 40), CM_ERR_FORMAT, "tensor 'b': offset 6");
    free(pk.p);
    /* storage entry missing */
    pk = (Bytes){0};
    make_sd(&pk, "", 3, 1, 10, NULL, 0);
    /* a deflated entry that claims an absurd size, and one whose size is slightly wrong */
    g_fake_usize = 0xfffffff0u;
    expect_err(sd_zip("bomb.pt", &pk, true, 40), CM_ERR_FORMAT, "absurd size");
    g_fake_usize = (uint32_t)pk.n + 1;
    expect_err(sd_zip("badsize.pt", &pk, true, 40), CM_ERR_FORMAT, "deflate data corrupt or truncated");
    g_fake_usize = 0;
    ZEnt es[1] = {{"archive/data.pkl", pk.p, pk.n, false}};
    expect_err(write_zip("nostorage.pt", es, 1), CM_ERR_FORMAT, "storage '0' not found");
    /* no data.pkl at all */
    ZEnt es2[1] = {{"archive/data/0", g_vals, 40, false}};
    expect_err(write_zip("nopkl.pt", es2, 1), CM_ERR_FORMAT, "no data.pkl");
    /* a pickle that is not a dict of tensors */
    uint8_t notsd[] = {0x80, 2, ']', 'K', 1, 'a', '.'};
    ZEnt es3[1] = {{"x/data.pkl", notsd, sizeof notsd, false}};
    expect_err(write_zip("list.pt", es3, 1), CM_ERR_FORMAT, "not a dict of tensors");
    uint8_t intval[] = {0x80, 2, '}', 'X', 1, 0, 0, 0, 'k', 'K', 1, 's', '.'};
    ZEnt es4[1] = {{"x/data.pkl", intval, sizeof intval, false}};
    expect_err(write_zip("intval.pt", es4, 1), CM_ERR_FORMAT, "entry 'k' is a int, not a tensor");
    /* truncated pickle: every prefix of a valid one fails cleanly */
    int accepted = 0;
    for (size_t cut = 0; cut < pk.n; cut += 3) {
        ZEnt e[2] = {{"archive/data.pkl", pk.p, cut, false}, {"archive/data/0", g_vals, 40, false}};
        const char *p = write_zip("cutpkl.pt", e, 2);
        CmTensorFile *f;
        if (open_status(p, &f) == CM_OK) { accepted++; cm_tensorfile_close(f); }
        unlink(p);
    }
    CHECK(accepted == 0, "%d truncated pickles accepted", accepted);
    free(pk.p);
    /* legacy (non-zip) torch format */
    const char *p = tl_tmp("legacy.pt");
    FILE *fp = fopen(p, "wb");
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
    fwrite(legacy, 1, sizeof legacy, fp);
    fclose(fp);
    expect_err(p, CM_ERR_UNSUPPORTED, "legacy");
}

static void test_truncated_and_corrupt_archives(void) {
    SHARED_OR_SKIP();
    uint8_t *raw; size_t n;
    REQ_OK(cm_read_file(tl_shared("golden/tiny/open_clip_pytorch_model.bin"), (size_t)1 << 26, &raw, &n));
    /* prefixes: inside the first entry, mid-storages, inside the central directory, one byte short */
    size_t cuts[] = {3, 30, 100, 11000, 20000, n / 2, n - 5000, n - 300, n - 40, n - 22, n - 1};
    int accepted = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *p = tl_tmp("cut.bin");
        FILE *fp = fopen(p, "wb");
        fwrite(raw, 1, cuts[i], fp);
        fclose(fp);
        CmTensorFile *f;
        if (open_status(p, &f) == CM_OK) { accepted++; cm_tensorfile_close(f); }
        else CHECK(strstr(cm_last_error(), "cut.bin"), "names the file: %s", cm_last_error());
        unlink(p);
    }
    CHECK(accepted == 0, "%d truncated archives accepted", accepted);
    /* one flipped byte inside a storage: CRC mismatch naming the entry */
    raw[20000] ^= 0x40;
    const char *p = tl_tmp("flip.bin");
    FILE *fp = fopen(p, "wb");
    fwrite(raw, 1, n, fp);
    fclose(fp);
    expect_err(p, CM_ERR_FORMAT, "CRC-32 mismatch");
    cm_free(raw);
}

int main(void) {
    if (!tl_tmpdir_make("torchzip")) { perror("mkdtemp"); return 1; }
    RUN(test_bin_equals_safetensors);
    RUN(test_epoch_checkpoint_exact);
    RUN(test_built_archives);
    RUN(test_disallowed_globals_and_opcodes);
    RUN(test_bad_tensors);
    RUN(test_truncated_and_corrupt_archives);
    tl_tmpdir_remove();
    return tl_summary("test_torchzip");
}
