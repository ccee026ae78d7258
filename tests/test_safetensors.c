/*
 * test_safetensors.c — the safetensors reader and writer and the dtype conversions:
 *   - golden/tiny files read (names, shapes, scalar [], metadata) and re-written byte for byte;
 *   - model_fp16.safetensors == half(model.safetensors) exactly; f16/bf16 conversions exhaustive;
 *   - bad files built here in /tmp (wrong/absurd header length, broken JSON, unknown dtype, offsets out
 *     of range / overlapping / with gaps, shape vs bytes, duplicate names, truncation, ...): each gives
 *     a clear error naming the problem, never a crash.
 */
#include "testlib.h"
#include "io/tensorfile.h"

#include <unistd.h>


static void sha_file(const char *path, char out[65]) {
    uint8_t *b = NULL; size_t n = 0;
    out[0] = 0;
    if (cm_read_file(path, (size_t)1 << 31, &b, &n) == CM_OK) { cm_sha256_hex(b, n, out); cm_free(b); }
}

/* Views of an open file -> writer input. */
static CmTensorOut *as_out(const CmTensorFile *f) {
    int n = cm_tensorfile_count(f);
    CmTensorOut *o = calloc((size_t)n + 1, sizeof *o);
    for (int i = 0; i < n; i++) {
        const CmTensorView *v = cm_tensorfile_at(f, i);
        o[i].name = v->name; o[i].dtype = v->dtype; o[i].ndim = v->ndim; o[i].data = v->data;
        memcpy(o[i].shape, v->shape, sizeof o[i].shape);
    }
    return o;
}

static void test_golden_read(void) {
    SHARED_OR_SKIP();
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/model.safetensors"), &f));
    CHECK(cm_tensorfile_count(f) == 98, "count %d", cm_tensorfile_count(f));
    const CmTensorView *v = cm_tensorfile_at(f, 0);
    CHECK(!strcmp(v->name, "positional_embedding") && v->ndim == 2 && v->shape[0] == 77 && v->shape[1] == 64 &&
          v->dtype == CM_F32 && v->nbytes == 77 * 64 * 4, "first tensor %s", v->name);
    const CmTensorView *ls = cm_tensorfile_find(f, "logit_scale");
    REQUIRE(ls, "logit_scale missing");
    CHECK(ls->ndim == 0 && ls->numel == 1 && ls->nbytes == 4, "scalar shape: ndim %d", ls->ndim);
    float x;
    CHECK(cm_tensor_to_f32(ls, &x) == CM_OK && fabsf(x - 2.6592600f) < 1e-6f, "logit_scale %g", x);
    CHECK(cm_tensorfile_find(f, "classifier_head.classifier.3.bias") != NULL, "last tensor found");
    CHECK(cm_tensorfile_find(f, "nope") == NULL, "absent name");
    CHECK(cm_tensorfile_metadata(f, "format") && !strcmp(cm_tensorfile_metadata(f, "format"), "pt"), "metadata");
    CHECK(cm_tensorfile_metadata(f, "other") == NULL, "absent metadata");
    /* every name found again by find */
    for (int i = 0; i < cm_tensorfile_count(f); i++)
        CHECK(cm_tensorfile_find(f, cm_tensorfile_at(f, i)->name) == cm_tensorfile_at(f, i), "find %d", i);
    cm_tensorfile_close(f);
}

/* Re-write each golden file from its own views: the bytes must be identical. */
static void rewrite_same(const char *rel) {
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(tl_shared(rel), &f));
    CmTensorOut *o = as_out(f);
    const char *meta[8];
    int nm = 0;
    const char *keys[] = {"format", "inputs"};
    for (int k = 0; k < 2; k++)
        if (cm_tensorfile_metadata(f, keys[k])) { meta[2 * nm] = keys[k]; meta[2 * nm + 1] = cm_tensorfile_metadata(f, keys[k]); nm++; }
    const char *out = tl_tmp("rewrite.safetensors");
    CHECK(cm_safetensors_write(out, o, cm_tensorfile_count(f), nm ? meta : NULL, nm) == CM_OK, "%s", cm_last_error());
    char a[65], b[65];
    sha_file(tl_shared(rel), a);
    sha_file(out, b);
    CHECK(a[0] && !strcmp(a, b), "%s re-written: sha256 %s != %s", rel, b, a);
    free(o);
    cm_tensorfile_close(f);
    unlink(out);
}

static void test_golden_rewrite_bytes(void) {
    SHARED_OR_SKIP();
    rewrite_same("golden/tiny/model.safetensors");
    rewrite_same("golden/tiny/model_fp16.safetensors");
    rewrite_same("golden/tiny/inputs.safetensors");
    rewrite_same("golden/tiny/expected.safetensors");
}

static void test_fp16_file_is_half_of_f32(void) {
    SHARED_OR_SKIP();
    CmTensorFile *a, *h;
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/model.safetensors"), &a));
    REQ_OK(cm_tensorfile_open(tl_shared("golden/tiny/model_fp16.safetensors"), &h));
    CHECK(cm_tensorfile_count(h) == 62, "fp16 count %d", cm_tensorfile_count(h));
    size_t bad = 0, total = 0;
    for (int i = 0; i < cm_tensorfile_count(h); i++) {
        const CmTensorView *vh = cm_tensorfile_at(h, i), *va = cm_tensorfile_find(a, vh->name);
        REQUIRE(va && va->numel == vh->numel && vh->dtype == CM_F16, "tensor %s", vh->name);
        float *fa = malloc(va->numel * 4 + 4), *fh = malloc(vh->numel * 4 + 4);
        CHECK(cm_tensor_to_f32(va, fa) == CM_OK && cm_tensor_to_f32(vh, fh) == CM_OK, "convert");
        for (size_t k = 0; k < va->numel; k++) {
            uint16_t want;
            memcpy(&want, (const uint8_t *)vh->data + 2 * k, 2);
            if (cm_f32_to_f16(fa[k]) != want || cm_f16_to_f32(want) != fh[k]) bad++;
        }
        total += va->numel;
        free(fa); free(fh);
    }
    CHECK(bad == 0 && total > 3000000, "%zu of %zu values differ from half(f32)", bad, total);
    cm_tensorfile_close(a);
    cm_tensorfile_close(h);
}

static void test_f16_bf16_exhaustive(void) {
    /* every f16 bit pattern: to f32 and back is the identity (NaNs become the canonical quiet NaN) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cm_f16_to_f32((uint16_t)h);
        uint16_t back = cm_f32_to_f16(f);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? (back != ((h & 0x8000) | 0x7e00) || f == f) : back != h) bad++;
#ifdef __FLT16_MAX__
        if (!nan && (float)(_Float16)f != f) bad++;
#endif
    }
    CHECK(bad == 0, "%d f16 patterns wrong", bad);
    /* f32 -> f16 rounding against the compiler's _Float16 (round to nearest even), many values */
#ifdef __FLT16_MAX__
    uint64_t s = 12345;
    int bad2 = 0;
    for (int i = 0; i < 2000000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t bits = (uint32_t)(s >> 32);
        if (i % 3 == 0) bits = (bits & 0x87ffffffu) | 0x30000000u;   /* bias towards half's range */
        float f;
        memcpy(&f, &bits, 4);
        if (f != f) continue;
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        if (cm_f32_to_f16(f) != want) bad2++;
    }
    CHECK(bad2 == 0, "%d f32->f16 roundings differ from _Float16", bad2);
#endif
    CHECK(cm_f32_to_f16(65504.f) == 0x7bff && cm_f32_to_f16(65520.f) == 0x7c00 && cm_f32_to_f16(-1e9f) == 0xfc00, "overflow");
    CHECK(cm_f32_to_f16(5.9604645e-8f) == 1 && cm_f32_to_f16(2.9802322e-8f) == 0, "smallest subnormal / tie to 0");
    /* bf16: exhaustive round-trip, and rounding */
    int bad3 = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = cm_bf16_to_f32((uint16_t)h);
        bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (!nan && cm_bf16_from_f32(f) != h) bad3++;
    }
    CHECK(bad3 == 0, "%d bf16 patterns wrong", bad3);
    CHECK(cm_bf16_from_f32(1.00390625f) == 0x3f80 && cm_bf16_from_f32(1.01171875f) == 0x3f82, "bf16 ties to even");
    float one = 1.0f;
    CmTensorView v = {.name = "t", .dtype = CM_BF16, .ndim = 0, .numel = 1, .nbytes = 2};
    uint16_t b = 0x3f80;
    v.data = &b;
    CHECK(cm_tensor_to_f32(&v, &one) == CM_OK && one == 1.0f, "bf16 view");
    v.dtype = CM_I64;
    CHECK(cm_tensor_to_f32(&v, &one) == CM_ERR_UNSUPPORTED && strstr(cm_last_error(), "I64"), "%s", cm_last_error());
}

static void test_write_read_roundtrip(void) {
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t ids[3] = {-1, 0, 49407};
    uint16_t hb[2] = {0x3c00, 0xc000};
    CmTensorOut ts[4] = {
        {.name = "b.weight", .dtype = CM_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "ids", .dtype = CM_I64, .ndim = 1, .shape = {3}, .data = ids},
        {.name = "s", .dtype = CM_F32, .ndim = 0, .data = a},
        {.name = "h\n\"quoted\"\\", .dtype = CM_F16, .ndim = 1, .shape = {2}, .data = hb},
    };
    const char *meta[] = {"format", "pt", "json", "{\"a\": [1, 2]}\t\x01"};
    const char *p = tl_tmp("rt.safetensors");
    REQ_OK(cm_safetensors_write(p, ts, 4, meta, 2));
    uint8_t *raw; size_t n;
    REQ_OK(cm_read_file(p, 1 << 20, &raw, &n));
    uint64_t hl;
    memcpy(&hl, raw, 8);
    CHECK(hl % 8 == 0 && (raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}'), "padding");
    CHECK(strstr((char *)raw + 8, "{\"__metadata__\":{\"format\":\"pt\",\"json\":\"{\\\"a\\\": [1, 2]}\\t\\u0001\"},"
                 "\"b.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") == (char *)raw + 8,
          "header %.*s", (int)hl, (char *)raw + 8);
    CHECK(strstr((char *)raw + 8, "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[48,52]}"), "scalar entry");
    cm_free(raw);
    CmTensorFile *f;
    REQ_OK(cm_tensorfile_open(p, &f));
    CHECK(cm_tensorfile_count(f) == 4, "count");
    const CmTensorView *v = cm_tensorfile_find(f, "h\n\"quoted\"\\");
    float hf[2];
    CHECK(v && cm_tensor_to_f32(v, hf) == CM_OK && hf[0] == 1.0f && hf[1] == -2.0f, "f16 values");
    v = cm_tensorfile_find(f, "ids");
    int64_t back[3];
    CHECK(v && cm_tensor_to_i64(v, back) == CM_OK && back[0] == -1 && back[2] == 49407, "ids");
    CHECK(!strcmp(cm_tensorfile_metadata(f, "json"), "{\"a\": [1, 2]}\t\x01"), "metadata escaped round trip");
    v = cm_tensorfile_find(f, "s");
    CHECK(v && v->ndim == 0 && v->numel == 1, "scalar");
    cm_tensorfile_close(f);
    /* writer refuses duplicates and bad input, and leaves no file */
    unlink(p);
    CmTensorOut dup[2] = {ts[0], ts[0]};
    CHECK(cm_safetensors_write(p, dup, 2, NULL, 0) == CM_ERR_ARG && strstr(cm_last_error(), "b.weight"), "%s", cm_last_error());
    CHECK(access(p, F_OK) != 0, "no file after refused write");
    CmTensorOut bad = ts[0];
    bad.shape[1] = -3;
    CHECK(cm_safetensors_write(p, &bad, 1, NULL, 0) == CM_ERR_ARG, "negative dim refused");
    bad = ts[0];
    bad.name = "\xff\xfe";
    CHECK(cm_safetensors_write(p, &bad, 1, NULL, 0) == CM_ERR_ARG, "non-UTF-8 name refused");
    /* empty file of tensors: "{}" padded */
    REQ_OK(cm_safetensors_write(p, NULL, 0, NULL, 0));
    REQ_OK(cm_read_file(p, 100, &raw, &n));
    CHECK(n == 16 && !memcmp(raw + 8, "{}      ", 8), "empty file bytes");
    cm_free(raw);
    REQ_OK(cm_tensorfile_open(p, &f));
    CHECK(cm_tensorfile_count(f) == 0, "empty");
    cm_tensorfile_close(f);
    unlink(p);
}

// ---- bad files --------------------------------------------------------------------------------

/* Write [u64 hlen][header][data_len bytes]; hlen < 0 means strlen(header). */
static const char *bad_file(const char *name, const char *header, int64_t hlen, size_t data_len) {
    const char *p = tl_tmp(name);
    FILE *fp = fopen(p, "wb");
    uint64_t h = hlen < 0 ? strlen(header) : (uint64_t)hlen;
    fwrite(&h, 8, 1, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < data_len; i++) fputc(i & 0xff, fp);
    fclose(fp);
    return p;
}

static void expect_bad(const char *p, cm_status want, const char *needle) {
    CmTensorFile *f = (CmTensorFile *)1;
    cm_clear_error();
    cm_status st = cm_tensorfile_open(p, &f);
    CHECK(st == want, "%s: status %d want %d (%s)", p, st, want, cm_last_error());
    CHECK(f == NULL, "no file object on error");
    CHECK(strstr(cm_last_error(), needle) != NULL, "message '%s' lacks '%s'", cm_last_error(), needle);
    CHECK(strstr(cm_last_error(), p) != NULL, "message names the file: %s", cm_last_error());
    if (st == CM_OK) cm_tensorfile_close(f);
    unlink(p);
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define T2 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}"

static void test_bad_header_length(void) {
    expect_bad(bad_file("len_big.st", "{" T1 "}", 5000, 8), CM_ERR_FORMAT, "exceeds the file size");
    expect_bad(bad_file("len_absurd.st", "{" T1 "}", (int64_t)1 << 50, 8), CM_ERR_FORMAT, "absurd");
    expect_bad(bad_file("len_small.st", "{" T1 "}", 20, 8), CM_ERR_FORMAT, "not valid JSON");
    expect_bad(bad_file("len_zero.st", "", 0, 0), CM_ERR_FORMAT, "too small");
    expect_bad(bad_file("short.st", "", -1, 0), CM_ERR_FORMAT, "too small");
    /* a 3-byte file and an empty file */
    const char *p = tl_tmp("tiny.st");
    FILE *fp = fopen(p, "wb"); fwrite("abc", 1, 3, fp); fclose(fp);
    expect_bad(p, CM_ERR_FORMAT, "too short");
    p = tl_tmp("empty.st");
    fp = fopen(p, "wb"); fclose(fp);
    expect_bad(p, CM_ERR_FORMAT, "too short");
    expect_bad(tl_tmp("does_not_exist.st"), CM_ERR_IO, "cannot open");
}

static void test_bad_json(void) {
    expect_bad(bad_file("json1.st", "{\"a\":{\"dtype\":\"F32\",", -1, 8), CM_ERR_FORMAT, "not valid JSON");
    expect_bad(bad_file("json2.st", "[1,2,3]", -1, 0), CM_ERR_FORMAT, "start with '{'");
    expect_bad(bad_file("json3.st", "{" T1 "} x", -1, 8), CM_ERR_FORMAT, "trailing bytes");
    expect_bad(bad_file("json4.st", "{\"a\":5}", -1, 0), CM_ERR_FORMAT, "not a JSON object");
    expect_bad(bad_file("json5.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", -1, 8), CM_ERR_FORMAT, "data_offsets");
    expect_bad(bad_file("json6.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_FORMAT, "shape entry 0");
    expect_bad(bad_file("json7.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_FORMAT, "shape entry 0");
    expect_bad(bad_file("json8.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", -1, 8),
               CM_ERR_FORMAT, "data_offsets is not");
    expect_bad(bad_file("json9.st", "{\"__metadata__\":{\"k\":1}," T1 "}", -1, 8), CM_ERR_FORMAT, "not a string");
    expect_bad(bad_file("json10.st", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                        -1, 8), CM_ERR_FORMAT, "appears twice");
    expect_bad(bad_file("json11.st", "{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_FORMAT, "dtype is not a string");
    expect_bad(bad_file("json12.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                        -1, 4), CM_ERR_UNSUPPORTED, "dimensions");
    expect_bad(bad_file("json13.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                        "\"data_offsets\":[0,4]}}", -1, 4), CM_ERR_FORMAT, "overflows");
}

static void test_bad_dtype(void) {
    expect_bad(bad_file("dtype1.st", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", -1, 2),
               CM_ERR_UNSUPPORTED, "unknown or unsupported dtype \"F8_E4M3\"");
    expect_bad(bad_file("dtype2.st", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_UNSUPPORTED, "\"f32\"");
}

static void test_bad_offsets(void) {
    expect_bad(bad_file("off1.st", "{" T1 "," T2 "}", -1, 8), CM_ERR_FORMAT, "out of range");
    expect_bad(bad_file("off2.st", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", -1, 8),
               CM_ERR_FORMAT, "overlap");
    expect_bad(bad_file("off3.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12),
               CM_ERR_FORMAT, "gap");
    expect_bad(bad_file("off4.st", "{" T1 "}", -1, 12), CM_ERR_FORMAT, "after the last tensor");
    expect_bad(bad_file("off5.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_SHAPE, "needs 12 bytes");
    expect_bad(bad_file("off6.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", -1, 8),
               CM_ERR_FORMAT, "begin > end");
    expect_bad(bad_file("off7.st", "{" T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", -1, 12),
               CM_ERR_FORMAT, "duplicate tensor name 'a'");
    /* overlapping with identical ranges, and offsets beyond 2^53 */
    expect_bad(bad_file("off8.st", "{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 8),
               CM_ERR_FORMAT, "overlap");
    expect_bad(bad_file("off9.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", -1, 8),
               CM_ERR_FORMAT, "data_offsets is not");
}

static void test_truncated(void) {
    /* a valid file, then every shorter prefix of it: never a crash, always an error */
    float a[16] = {0};
    CmTensorOut ts[2] = {{.name = "x", .dtype = CM_F32, .ndim = 2, .shape = {2, 4}, .data = a},
                         {.name = "y", .dtype = CM_F32, .ndim = 1, .shape = {8}, .data = a}};
    const char *p = tl_tmp("full.st");
    REQ_OK(cm_safetensors_write(p, ts, 2, NULL, 0));
    uint8_t *raw; size_t n;
    REQ_OK(cm_read_file(p, 1 << 20, &raw, &n));
    int ok = 0;
    for (size_t cut = 0; cut < n; cut++) {
        const char *q = tl_tmp("cut.st");
        FILE *fp = fopen(q, "wb"); fwrite(raw, 1, cut, fp); fclose(fp);
        CmTensorFile *f;
        if (cm_tensorfile_open(q, &f) == CM_OK) { ok++; cm_tensorfile_close(f); }
        else CHECK(strstr(cm_last_error(), q) != NULL, "message names the file: %s", cm_last_error());
        unlink(q);
    }
    CHECK(ok == 0, "%d truncated prefixes were accepted", ok);
    cm_free(raw);
    unlink(p);
}

int main(void) {
    if (!tl_tmpdir_make("safetensors")) { perror("mkdtemp"); return 1; }
    RUN(test_golden_read);
    RUN(test_golden_rewrite_bytes);
    RUN(test_fp16_file_is_half_of_f32);
    RUN(test_f16_bf16_exhaustive);
    RUN(test_write_read_roundtrip);
    RUN(test_bad_header_length);
    RUN(test_bad_json);
    RUN(test_bad_dtype);
    RUN(test_bad_offsets);
    RUN(test_truncated);
    tl_tmpdir_remove();
    return tl_summary("test_safetensors");
}
