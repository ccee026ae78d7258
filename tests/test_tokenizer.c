/*
 * test_tokenizer.c — the OpenCLIP tokenizer: every case of ../shared/golden/tokenizer/cases.jsonl
 * (ids and untruncated length), the Hugging Face vocab.json + merges.txt layout, the text stages
 * against values computed with Python 3.11 (UTF-8 'replace', html.unescape, str.lower), the heap BPE
 * against the reference loop, invalid UTF-8, empty and very long inputs, corrupt vocabularies,
 * loader threads sharing one tokenizer, and the `clipmod tokenize` output format.
 */
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/wait.h>
#include <utf8proc.h>
#include <zlib.h>
#include <cjson/cJSON.h>
#include "testlib.h"
#include "data/tokenizer_impl.h"

#define VOCAB_GZ "vocab/bpe_simple_vocab_16e6.txt.gz"
static CmTokenizer *g_tok;

/* ---- helpers ---------------------------------------------------------------------------------- */

/* Decode the JSON string starting at p (after its opening quote) into bytes, keeping NULs.
   Returns the length, or -1 on a malformed string. */
static long json_string(const char *p, char *out, size_t cap) {
    size_t n = 0;
    while (*p && *p != '"') {
        uint32_t c = (uint8_t)*p++;
        if (c == '\\') {
            char e = *p++;
            switch (e) {
            case 'n': c = '\n'; break; case 't': c = '\t'; break; case 'r': c = '\r'; break;
            case 'b': c = '\b'; break; case 'f': c = '\f'; break; case '/': c = '/'; break;
            case '\\': c = '\\'; break; case '"': c = '"'; break;
            case 'u': {
                unsigned v;
                if (sscanf(p, "%4x", &v) != 1) return -1;
                p += 4;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    unsigned lo;
                    if (p[0] != '\\' || p[1] != 'u' || sscanf(p + 2, "%4x", &lo) != 1) return -1;
                    p += 6;
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                }
                uint8_t tmp[4];
                size_t k = (size_t)utf8proc_encode_char((utf8proc_int32_t)v, tmp);
                if (n + k > cap) return -1;
                memcpy(out + n, tmp, k); n += k;
                continue;
            }
            default: return -1;
            }
        }
        if (n + 1 > cap) return -1;
        out[n++] = (char)c;
    }
    return *p == '"' ? (long)n : -1;
}

typedef struct { char *text; long len; int32_t ids[77]; int untrunc; char source[64]; } Case;

static int load_cases(Case **out) {
    uint8_t *buf; size_t len;
    if (cm_read_file(tl_shared("golden/tokenizer/cases.jsonl"), 1 << 24, &buf, &len)) return -1;
    int n = 0, cap = 512;
    Case *cs = calloc(cap, sizeof *cs);
    for (char *line = (char *)buf; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        const char *tp = strstr(line, "\"text\": \"");
        if (j && tp && n < cap) {
            Case *c = &cs[n];
            c->text = malloc(strlen(line) + 1);
            c->len = json_string(tp + 9, c->text, strlen(line));
            cJSON *ids = cJSON_GetObjectItem(j, "ids");
            for (int i = 0; i < 77 && i < cJSON_GetArraySize(ids); i++) c->ids[i] = cJSON_GetArrayItem(ids, i)->valueint;
            c->untrunc = cJSON_GetObjectItem(j, "untruncated_len")->valueint;
            snprintf(c->source, sizeof c->source, "%s", cJSON_GetObjectItem(j, "source")->valuestring);
            if (c->len >= 0 && cJSON_GetArraySize(ids) == 77) n++;
        }
        cJSON_Delete(j);
        line = nl ? nl + 1 : NULL;
    }
    cm_free(buf);
    *out = cs;
    return n;
}
static void free_cases(Case *cs, int n) { for (int i = 0; i < n; i++) free(cs[i].text); free(cs); }

static int tokenize_str(CmTokenizer *tok, const char *s, size_t len, int32_t *ids) { return cm_tokenize(tok, s, len, ids, 77); }

static int cps_equal(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    return na == nb && !memcmp(a, b, na * sizeof *a);
}

/* ---- golden ----------------------------------------------------------------------------------- */

static void test_golden_cases(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "tokenizer not loaded: %s", cm_last_error());
    Case *cs; int n = load_cases(&cs);
    REQUIRE(n == 365, "expected 365 golden cases, read %d", n);
    int match = 0, len_ok = 0;
    for (int i = 0; i < n; i++) {
        int32_t ids[77];
        CHECK(tokenize_str(g_tok, cs[i].text, (size_t)cs[i].len, ids) == 0, "case %d: %s", i, cm_last_error());
        if (!memcmp(ids, cs[i].ids, sizeof ids)) match++;
        else {
            int k = 0; while (k < 77 && ids[k] == cs[i].ids[k]) k++;
            CHECK(0, "case %d (%s) %.60s: first difference at %d: got %d want %d", i, cs[i].source, cs[i].text, k, ids[k], cs[i].ids[k]);
        }
        size_t total;
        int32_t all[4096];
        CHECK(cm_tokenizer_encode(g_tok, cs[i].text, (size_t)cs[i].len, all, 4096, &total) == 0, "encode");
        if ((int)total + 2 == cs[i].untrunc) len_ok++;
        else CHECK(0, "case %d: untruncated length %zu+2, want %d", i, total, cs[i].untrunc);
    }
    printf("golden tokenizer cases: %d/%d identical, untruncated lengths %d/%d\n", match, n, len_ok, n);
    CHECK(match == n, "%d of %d cases differ", n - match, n);
    free_cases(cs, n);
}

static void json_put(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) { if (s[i] == '"' || s[i] == '\\') fputc('\\', f); fputc(s[i], f); }
    fputc('"', f);
}

/* vocab.json + merges.txt written from the gz (an independent rebuild of OpenCLIP's vocabulary). */
static void test_hf_layout(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "no tokenizer");
    char dir[] = "/tmp/cm_tok_hf_XXXXXX";
    char *made = mkdtemp(dir);
    REQUIRE(made, "mkdtemp");
    gzFile gz = gzopen(tl_shared(VOCAB_GZ), "rb");
    REQUIRE(gz, "gzopen");
    char *txt = malloc(8 << 20); int len = gzread(gz, txt, (8 << 20) - 1); gzclose(gz);
    REQUIRE(len > 0, "gzread"); txt[len] = 0;
    char path[256], vpath[256];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    snprintf(vpath, sizeof vpath, "%s/vocab.json", dir);
    FILE *fm = fopen(path, "w"), *fv = fopen(vpath, "w");
    REQUIRE(fm && fv, "create files");
    /* bytes_to_unicode, ids 0..511 */
    uint32_t cs[256]; int order[256], k = 0, extra = 0;
    for (int b = 0; b < 256; b++) if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) { order[k++] = b; cs[b] = b; }
    for (int b = 0; b < 256; b++) if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))) { order[k++] = b; cs[b] = 256 + extra++; }
    fprintf(fv, "{");
    for (int i = 0; i < 512; i++) {
        char u[16]; int n = (int)utf8proc_encode_char((utf8proc_int32_t)cs[order[i % 256]], (uint8_t *)u);
        if (i >= 256) { memcpy(u + n, "</w>", 4); n += 4; }
        fprintf(fv, "%s", i ? ", " : "");
        json_put(fv, u, (size_t)n);
        fprintf(fv, ": %d", i);
    }
    char *line = strchr(txt, '\n') + 1;
    fprintf(fm, "#version: 0.2\n");
    for (int r = 0; r < 48894; r++) {
        char *nl = strchr(line, '\n'); *nl = 0;
        fprintf(fm, "%s\n", line);
        char *sp = strchr(line, ' ');
        char joined[256];
        int jn = snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - line), line, sp + 1);
        fprintf(fv, ", ");
        json_put(fv, joined, (size_t)jn);
        fprintf(fv, ": %d", 512 + r);
        line = nl + 1;
    }
    fprintf(fv, ", \"<|startoftext|>\": 49406, \"<|endoftext|>\": 49407}");
    fclose(fm); fclose(fv); free(txt);

    CmTokenizer *hf = NULL, *plain = NULL;
    CHECK(cm_tokenizer_load(dir, &hf) == 0, "folder: %s", cm_last_error());
    CHECK(cm_tokenizer_load(path, &plain) == 0, "merges.txt alone: %s", cm_last_error());
    CmTokenizer *byjson = NULL;
    CHECK(cm_tokenizer_load(vpath, &byjson) == 0, "vocab.json path: %s", cm_last_error());
    CmTokenizer *near = NULL;                           /* the model's folder is searched */
    char model[300];
    snprintf(model, sizeof model, "%s/open_clip_model.safetensors", dir);
    unsetenv("CLIPMOD_VOCAB");
    CHECK(cm_tokenizer_load_near(NULL, model, &near) == 0, "model folder: %s", cm_last_error());
    CHECK(near && strstr(near->source, dir), "loaded from the model folder, not %s", near ? near->source : "-");
    cm_tokenizer_free(near);
    Case *c; int n = load_cases(&c), same = 0;
    for (int i = 0; hf && plain && byjson && i < n; i++) {
        int32_t a[77], b[77], d[77];
        tokenize_str(hf, c[i].text, (size_t)c[i].len, a);
        tokenize_str(plain, c[i].text, (size_t)c[i].len, b);
        tokenize_str(byjson, c[i].text, (size_t)c[i].len, d);
        if (!memcmp(a, c[i].ids, sizeof a) && !memcmp(b, c[i].ids, sizeof b) && !memcmp(d, c[i].ids, sizeof d)) same++;
    }
    CHECK(same == n && n == 365, "HF layout: %d of %d cases identical", same, n);
    printf("HF vocab.json + merges.txt: %d/%d golden cases identical\n", same, n);
    free_cases(c, n);
    cm_tokenizer_free(hf); cm_tokenizer_free(plain); cm_tokenizer_free(byjson);
    tl_rm_rf(dir);
}

/* ---- text stages (expected values from Python 3.11) ---------------------------------------------- */

static void test_utf8_replace(void) {
    struct { const char *in; size_t len; uint32_t want[6]; size_t n; } t[] = {
        {"\xff", 1, {0xFFFD}, 1},
        {"\xe0\xa0x", 3, {0xFFFD, 'x'}, 2},
        {"\xed\xa0\x80", 3, {0xFFFD, 0xFFFD, 0xFFFD}, 3},
        {"\xf0\x9f\x98", 3, {0xFFFD}, 1},
        {"\xc0\xaf", 2, {0xFFFD, 0xFFFD}, 2},
        {"a\x80" "b", 3, {'a', 0xFFFD, 'b'}, 3},
        {"\xf4\x90\x80\x80", 4, {0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}, 4},
        {"\xe2\x82", 2, {0xFFFD}, 1},
        {"\xf0\x9f\x98\x80\xf0", 5, {0x1F600, 0xFFFD}, 2},
        {"\xc3", 1, {0xFFFD}, 1},
        {"a\0b", 3, {'a', 0, 'b'}, 3},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t out[8];
        size_t n = cm_utf8_decode_replace((const uint8_t *)t[i].in, t[i].len, out);
        CHECK(cps_equal(out, n, t[i].want, t[i].n), "utf8 case %zu: %zu code points", i, n);
    }
}

static size_t cps_of(const char *s, uint32_t *out) { return cm_utf8_decode_replace((const uint8_t *)s, strlen(s), out); }

static void test_html_unescape(void) {
    const char *t[][2] = {
        {"&notit;", "\xc2\xac" "it;"}, {"&#150;", "\xe2\x80\x93"}, {"&#x110000;", "\xef\xbf\xbd"},
        {"&#0;", "\xef\xbf\xbd"}, {"&#1;x", "x"}, {"&amp;amp;", "&amp;"}, {"&copy 2020", "\xc2\xa9 2020"},
        {"&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;", "&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;"},
        {"&#99999999999999999999;", "\xef\xbf\xbd"}, {"&#xD800;", "\xef\xbf\xbd"}, {"&lt6", "<6"},
        {"&Eacute\xc3\xa9", "\xc3\x89\xc3\xa9"}, {"&#x;", "&#x;"}, {"&#;", "&#;"}, {"&amp\xc3\xa9;", "&\xc3\xa9;"},
        {"&nLt;", "\xe2\x89\xaa\xe2\x83\x92"}, {"&#13;", "\r"}, {"&#65", "A"}, {"&#X41;", "A"}, {"a & b", "a & b"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t in[64], out[64], want[64];
        size_t n = cps_of(t[i][0], in), nw = cps_of(t[i][1], want);
        size_t m = cm_html_unescape(in, n, out);
        CHECK(cps_equal(out, m, want, nw), "html.unescape(%s): %zu code points, want %zu", t[i][0], m, nw);
    }
}

static void test_lower_and_space(void) {
    const char *t[][2] = {
        {"\xc4\xb0", "i\xcc\x87"}, {"\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x82"},
        {"\xce\xa3", "\xcf\x83"}, {"\xce\x91\xce\xa3.", "\xce\xb1\xcf\x82."},
        {"\xce\x91\xce\xa3.\xce\x92", "\xce\xb1\xcf\x83.\xce\xb2"}, {"\xc2\xaa\xce\xa3", "\xc2\xaa\xcf\x82"},
        {"\xce\x91'\xce\xa3", "\xce\xb1'\xcf\x82"}, {"1\xce\xa3", "1\xcf\x83"}, {"\xc7\x85", "\xc7\x86"},
        {"\xe1\xba\x9e", "\xc3\x9f"}, {"\xe2\x84\xaa", "k"}, {"ABC xyz", "abc xyz"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint32_t in[32], out[64], want[32];
        size_t n = cps_of(t[i][0], in), nw = cps_of(t[i][1], want);
        size_t m = cm_py_lower(in, n, out);
        CHECK(cps_equal(out, m, want, nw), "lower case %zu (%s)", i, t[i][0]);
    }
    uint32_t sp[] = {0x1C, 0x1F, 0x85, 0xA0, 0x1680, 0x2000, 0x2028, 0x2029, 0x202F, 0x3000, '\v', '\f'};
    uint32_t notsp[] = {0x200B, 0xFEFF, 0x180E, 'a', 0xFFFD};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) CHECK(cm_py_isspace(sp[i]), "U+%04X is space", sp[i]);
    for (size_t i = 0; i < sizeof notsp / sizeof notsp[0]; i++) CHECK(!cm_py_isspace(notsp[i]), "U+%04X is not space", notsp[i]);
    uint32_t in[] = {' ', 0x3000, 'a', 0x1C, 0x1C, 'b', '\n'}, out[8], want[] = {'a', ' ', 'b'};
    CHECK(cps_equal(out, cm_ws_clean(in, 7, out), want, 3), "whitespace clean");
}

/* Pre-tokens of a lowered string, joined by '|' (special pieces as <S>/<E>). */
static void pieces(const char *s, char *out, size_t cap) {
    uint32_t t[128];
    size_t n = cps_of(s, t), pos = 0, a, b, o = 0;
    int sp;
    out[0] = 0;
    while (cm_pretok_next(t, n, &pos, &a, &b, &sp)) {
        if (o) out[o++] = '|';
        if (sp) { o += (size_t)snprintf(out + o, cap - o, sp == 1 ? "<S>" : "<E>"); continue; }
        for (size_t k = a; k < b; k++) o += (size_t)utf8proc_encode_char((utf8proc_int32_t)t[k], (uint8_t *)out + o);
        out[o] = 0;
    }
}

static void test_pretokenize(void) {
    /* expectations from regex.findall with the OpenCLIP pattern (regex module, IGNORECASE) */
    const char *t[][2] = {
        {"it's a cat's toy", "it|'s|a|cat|'s|toy"}, {"we'll've'd", "we|'ll|'ve|'d"},
        {"'''s", "'''|s"}, {"a123b", "a|1|2|3|b"}, {"x<end_of_text>y", "x|<E>|y"},
        {"!!<end_of_text>", "!!<|end|_|of|_|text|>"}, {"<start_of_text>", "<S>"},
        {"it'\xc5\xbf", "it|'\xc5\xbf"}, {"<\xc5\xbftart_of_text>", "<\xc5\xbftart_of_text>"},
        {"a\xcd\x85" "b", "a|b"}, {"!\xcd\x85!", "!|!"}, {"cafe\xcc\x81", "cafe|\xcc\x81"}, {"  ", ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char got[256];
        pieces(t[i][0], got, sizeof got);
        CHECK(!strcmp(got, t[i][1]), "pieces(%s) = '%s', want '%s'", t[i][0], got, t[i][1]);
    }
}

/* ---- BPE: heap form == reference loop ------------------------------------------------------------- */

static void test_bpe_heap_equals_reference(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "no tokenizer");
    REQUIRE(cm_tokenizer_monotone(g_tok), "the CLIP merges should be rank-monotone");
    const char *alphabets[] = {"ab", "aeinrst", "abcdefghijklmnopqrstuvwxyz", "!.,-", "0123456789"};
    uint64_t s = 12345;
    int words = 0, same = 0;
    for (int a = 0; a < 5; a++)
        for (int len = 1; len <= 300; len += (len < 40 ? 1 : 37)) {
            for (int rep = 0; rep < 4; rep++) {
                uint8_t w[300];
                size_t al = strlen(alphabets[a]);
                for (int i = 0; i < len; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; w[i] = (uint8_t)alphabets[a][(s >> 33) % al]; }
                int32_t r1[300], r2[300];
                long n1 = cm_bpe_word(g_tok, w, (size_t)len, r1, 1), n2 = cm_bpe_word(g_tok, w, (size_t)len, r2, 2);
                words++;
                if (n1 == n2 && n1 > 0 && !memcmp(r1, r2, (size_t)n1 * sizeof *r1)) same++;
            }
        }
    CHECK(same == words, "heap BPE differs from the reference on %d of %d words", words - same, words);
    /* random bytes (any byte value) */
    for (int rep = 0; rep < 200; rep++) {
        uint8_t w[200]; int len = 1 + rep;
        for (int i = 0; i < len; i++) { s = s * 6364136223846793005ull + 1442695040888963407ull; w[i] = (uint8_t)(s >> 56); }
        int32_t r1[200], r2[200];
        long n1 = cm_bpe_word(g_tok, w, (size_t)len, r1, 1), n2 = cm_bpe_word(g_tok, w, (size_t)len, r2, 2);
        CHECK(n1 == n2 && !memcmp(r1, r2, (size_t)(n1 > 0 ? n1 : 0) * sizeof *r1), "random bytes word %d", rep);
    }
}

/* ---- edge inputs ---------------------------------------------------------------------------------- */

static void test_empty_and_invalid(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "no tokenizer");
    int32_t ids[77], want[77] = {49406, 49407};
    CHECK(tokenize_str(g_tok, "", 0, ids) == 0 && !memcmp(ids, want, sizeof ids), "empty string");
    CHECK(tokenize_str(g_tok, NULL, 0, ids) == 0 && !memcmp(ids, want, sizeof ids), "NULL, 0");
    CHECK(tokenize_str(g_tok, " \t\n\xe3\x80\x80 ", 7, ids) == 0 && !memcmp(ids, want, sizeof ids), "whitespace only");
    CHECK(tokenize_str(g_tok, NULL, 5, ids) == CM_ERR_ARG, "NULL text with a length is an error");
    CHECK(cm_tokenize(g_tok, "a", 1, ids, 1) == CM_ERR_ARG, "context 1 is an error");
    CHECK(cm_tokenize(NULL, "a", 1, ids, 77) == CM_ERR_ARG, "NULL tokenizer is an error");
    int32_t two[2];
    CHECK(cm_tokenize(g_tok, "a photo", 7, two, 2) == 0 && two[0] == 49406 && two[1] == 49407, "context 2");
    /* invalid UTF-8 tokenizes as Python's decode(errors='replace') text: each bad part is U+FFFD */
    int32_t a[77], b[77];
    CHECK(tokenize_str(g_tok, "caf\xe9 ok", 7, a) == 0, "invalid utf-8: %s", cm_last_error());
    tokenize_str(g_tok, "caf\xef\xbf\xbd ok", 9, b);
    CHECK(!memcmp(a, b, sizeof a), "0xE9 tokenizes as U+FFFD");
    int32_t want_cafe[] = {49406, 20867, 39802, 2481, 49407, 0};     /* Python: b"caf\xe9 ok".decode(errors="replace") */
    CHECK(!memcmp(a, want_cafe, sizeof want_cafe), "caf\\xe9 ok: %d %d %d %d", a[1], a[2], a[3], a[4]);
    tokenize_str(g_tok, "\xed\xa0\x80", 3, a);
    tokenize_str(g_tok, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9, b);
    CHECK(!memcmp(a, b, sizeof a), "UTF-8 surrogate: three U+FFFD");
    const char all[] = "\0\x01\x7f\x80\xbf\xc0\xc1\xf5\xff\xfe <end_of_text> \xf0\x90\x80";
    int32_t want_all[] = {49406, 188, 189, 221, 47356, 47356, 47356, 47356, 47356, 47356, 39802, 49407, 39802, 49407, 0};
    CHECK(tokenize_str(g_tok, all, sizeof all - 1, a) == 0 && !memcmp(a, want_all, sizeof want_all), "garbage bytes (ids from Python)");
}

static void test_very_long(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "no tokenizer");
    /* 2 MB of words: truncated to 77 with EOT last and equal to the first 75 untruncated ids */
    size_t n = 2 << 20;
    char *t = malloc(n + 1);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(s >> 58);
        t[i] = r < 8 ? ' ' : r < 10 ? ',' : (char)('a' + r % 26);
    }
    int32_t ids[77];
    double t0 = cm_now();
    CHECK(tokenize_str(g_tok, t, n, ids) == 0, "2 MB caption: %s", cm_last_error());
    double dt = cm_now() - t0;
    CHECK(ids[0] == 49406 && ids[76] == 49407, "framing of a truncated caption");
    int32_t *all = malloc(sizeof(int32_t) * 100);
    size_t total;
    CHECK(cm_tokenizer_encode(g_tok, t, n, all, 100, &total) == 0 && total > 100000, "untruncated: %zu ids", total);
    CHECK(!memcmp(ids + 1, all, 75 * sizeof *ids), "truncation keeps the first 75 ids");
    CHECK(dt < 20, "2 MB caption took %.1f s", dt);
    /* one 1 MB word (heap BPE) and a 3000-letter word compared with the reference loop */
    memset(t, 'q', n); for (size_t i = 0; i < n; i += 7) t[i] = 'u';
    CHECK(tokenize_str(g_tok, t, 1 << 20, ids) == 0 && ids[76] == 49407, "1 MB word");
    for (size_t i = 0; i < 3000; i++) { s = s * 6364136223846793005ull + 1; t[i] = (char)('a' + (s >> 59) % 26); }
    int32_t *r1 = malloc(3000 * sizeof *r1), *r2 = malloc(3000 * sizeof *r2);
    long n1 = cm_bpe_word(g_tok, (uint8_t *)t, 3000, r1, 1), n2 = cm_bpe_word(g_tok, (uint8_t *)t, 3000, r2, 0);
    CHECK(n1 == n2 && n1 > 0 && !memcmp(r1, r2, (size_t)n1 * sizeof *r1), "3000-letter word: heap == reference");
    /* exactly 75 tokens: no truncation; 76: truncated, EOT last */
    char a75[151], a76[153];
    for (int i = 0; i < 75; i++) { a75[2 * i] = 'a'; a75[2 * i + 1] = ' '; }
    for (int i = 0; i < 76; i++) { a76[2 * i] = 'a'; a76[2 * i + 1] = ' '; }
    tokenize_str(g_tok, a75, 150, ids);
    CHECK(ids[75] == 320 && ids[76] == 49407, "75 x a");
    tokenize_str(g_tok, a76, 152, ids);
    CHECK(ids[75] == 320 && ids[76] == 49407, "76 x a");
    free(t); free(all); free(r1); free(r2);
}

/* ---- corrupt vocabularies ------------------------------------------------------------------------- */

static int load_bytes(const char *name, const void *data, size_t len, CmTokenizer **tok) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/cm_tok_%d_%s", (int)getpid(), name);
    if (tl_write_file(path, data, len)) return -100;
    int st = cm_tokenizer_load(path, tok);
    unlink(path);
    return st;
}

static void test_corrupt_vocab(void) {
    SHARED_OR_SKIP();
    CmTokenizer *t = NULL;
    CHECK(cm_tokenizer_load("/nonexistent/vocab.txt.gz", &t) == CM_ERR_IO && !t, "missing file");
    CHECK(strstr(cm_last_error(), "/nonexistent/vocab.txt.gz") != NULL, "message names the file: %s", cm_last_error());
    uint8_t *gz; size_t len;
    int rd = cm_read_file(tl_shared(VOCAB_GZ), 1 << 24, &gz, &len);
    REQUIRE(rd == 0, "read vocab");
    CHECK(load_bytes("half.gz", gz, len / 2, &t) == CM_ERR_FORMAT && !t, "truncated gzip");
    CHECK(strstr(cm_last_error(), "truncated") != NULL, "says truncated: %s", cm_last_error());
    CHECK(load_bytes("hdr.gz", gz, 10, &t) == CM_ERR_FORMAT, "gzip header only: %s", cm_last_error());
    uint8_t *bad = malloc(len); memcpy(bad, gz, len);
    for (size_t i = 100; i < 200; i++) bad[i] ^= 0x5A;
    CHECK(load_bytes("flip.gz", bad, len, &t) == CM_ERR_FORMAT && !t, "corrupt gzip: %s", cm_last_error());
    free(bad); cm_free(gz);
    CHECK(load_bytes("empty.txt", "", 0, &t) == CM_ERR_FORMAT, "empty file: %s", cm_last_error());
    const char few[] = "#version: 0.2\ni n\nt h\n";
    CHECK(load_bytes("few.txt", few, sizeof few - 1, &t) == CM_ERR_FORMAT, "2 merges");
    CHECK(strstr(cm_last_error(), "only 2 merges") != NULL, "message: %s", cm_last_error());
    const char one[] = "#version: 0.2\nin\n";
    CHECK(load_bytes("one.txt", one, sizeof one - 1, &t) == CM_ERR_FORMAT && strstr(cm_last_error(), "line 2"), "one symbol: %s", cm_last_error());
    const char utf[] = "#version: 0.2\n\xff\xfe x\n";
    CHECK(load_bytes("utf.txt", utf, sizeof utf - 1, &t) == CM_ERR_FORMAT && strstr(cm_last_error(), "UTF-8"), "bad utf-8: %s", cm_last_error());
    CHECK(load_bytes("v.json", "{\"a\": 1", 7, &t) != CM_OK, "vocab.json without merges.txt");
    char dir[] = "/tmp/cm_tok_dir_XXXXXX";
    char *made = mkdtemp(dir);
    REQUIRE(made, "mkdtemp");
    CHECK(cm_tokenizer_load(dir, &t) == CM_ERR_IO && strstr(cm_last_error(), "no bpe_simple_vocab"), "empty folder: %s", cm_last_error());
    rmdir(dir);
}

static void test_default_search(void) {
    SHARED_OR_SKIP();
    CmTokenizer *t = NULL;
    setenv("CLIPMOD_VOCAB", "/nonexistent/vocab", 1);
    CHECK(cm_tokenizer_load(NULL, &t) == CM_ERR_IO && strstr(cm_last_error(), "CLIPMOD_VOCAB"), "bad $CLIPMOD_VOCAB: %s", cm_last_error());
    setenv("CLIPMOD_VOCAB", tl_shared("vocab"), 1);    /* a folder */
    CHECK(cm_tokenizer_load(NULL, &t) == 0, "$CLIPMOD_VOCAB folder: %s", cm_last_error());
    cm_tokenizer_free(t); t = NULL;
    unsetenv("CLIPMOD_VOCAB");
    /* the shipped copy is byte for byte the reference file */
    uint8_t *a = NULL, *b = NULL; size_t la = 0, lb = 0;
    CHECK(cm_read_file("assets/bpe_simple_vocab_16e6.txt.gz", (size_t)1 << 24, &a, &la) == 0, "%s", cm_last_error());
    CHECK(cm_read_file(tl_shared("vocab/bpe_simple_vocab_16e6.txt.gz"), (size_t)1 << 24, &b, &lb) == 0, "%s", cm_last_error());
    CHECK(a && b && la == lb && la == 1356917 && !memcmp(a, b, la), "assets/ vocabulary differs from ../shared/vocab");
    cm_free(a); cm_free(b);
}

/* The shipped vocabulary (assets/) is found without $CLIPMOD_VOCAB and without ../shared: from
   build/tests/test_tokenizer it is <exe>/../../assets (docs/tokenizer.md). */
static void test_shipped_vocab(void) {
    CmTokenizer *t = NULL;
    unsetenv("CLIPMOD_VOCAB");
    CHECK(cm_tokenizer_load(NULL, &t) == 0, "shipped vocabulary: %s", cm_last_error());
    if (!t) return;
    CHECK(strstr(t->source, "/assets") != NULL, "loaded from %s, not assets/", t->source);
    int32_t ids[77], want[7] = {49406, 320, 1125, 539, 320, 2368, 49407};
    CHECK(cm_tokenize(t, "a photo of a cat", 16, ids, 77) == 0, "%s", cm_last_error());
    CHECK(!memcmp(ids, want, sizeof want) && ids[7] == 0, "ids %d %d %d %d %d %d %d %d", ids[0], ids[1], ids[2], ids[3],
          ids[4], ids[5], ids[6], ids[7]);
    cm_tokenizer_free(t);
}

/* ---- threads ------------------------------------------------------------------------------------ */

typedef struct { Case *cs; int n, seed, bad; } ThreadArg;
static void *worker(void *p) {
    ThreadArg *a = p;
    for (int rep = 0; rep < 6; rep++)
        for (int i = 0; i < a->n; i++) {
            int k = (i * 7 + a->seed * 13 + rep) % a->n;
            int32_t ids[77];
            if (cm_tokenize(g_tok, a->cs[k].text, (size_t)a->cs[k].len, ids, 77) || memcmp(ids, a->cs[k].ids, sizeof ids)) a->bad++;
        }
    return NULL;
}

static void test_threads_share_one_tokenizer(void) {
    SHARED_OR_SKIP();
    REQUIRE(g_tok, "no tokenizer");
    Case *cs; int n = load_cases(&cs);
    REQUIRE(n > 0, "cases");
    cm_tokenizer_set_cache(g_tok, 64);                  /* tiny: shards fill and empty all the time */
    pthread_t th[4]; ThreadArg args[4];
    for (int i = 0; i < 4; i++) { args[i] = (ThreadArg){cs, n, i, 0}; pthread_create(&th[i], NULL, worker, &args[i]); }
    int bad = 0;
    for (int i = 0; i < 4; i++) { pthread_join(th[i], NULL); bad += args[i].bad; }
    CHECK(bad == 0, "%d wrong results from threads", bad);
    cm_tokenizer_set_cache(g_tok, 0);                   /* and without a cache */
    args[0].bad = 0; worker(&args[0]);
    CHECK(args[0].bad == 0, "no cache: %d wrong", args[0].bad);
    cm_tokenizer_set_cache(g_tok, 131072);
    free_cases(cs, n);
}

/* ---- CLI ---------------------------------------------------------------------------------------- */

static void test_cli(void) {
    SHARED_OR_SKIP();
    char out[8192], want[1024];
    int o = snprintf(want, sizeof want, "[49406, 320, 1125, 539, 320, 2368, 49407");
    for (int i = 7; i < 77; i++) o += snprintf(want + o, sizeof want - o, ", 0");
    snprintf(want + o, sizeof want - o, "]\n[49406, 320, 1929, 49407");
    char args[1024];
    snprintf(args, sizeof args, "tokenize --vocab %s 'a photo of a cat' 'a dog'", tl_shared(VOCAB_GZ));
    int rc = tl_run_clipmod(args, out, sizeof out, NULL, 0);
    CHECK(rc == 0, "exit %d", rc);
    CHECK(!strncmp(out, want, strlen(want)), "output: %.120s", out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    CHECK(lines == 2, "%d lines", lines);
    CHECK(tl_run_clipmod("tokenize --help", out, sizeof out, NULL, 0) == 0 && strstr(out, "usage"), "--help");
    CHECK(tl_run_clipmod("tokenize ", out, sizeof out, NULL, 0) == 2, "no TEXT: exit 2");
    CHECK(tl_run_clipmod("tokenize --bogus x", out, sizeof out, NULL, 0) == 2, "unknown option: exit 2");
    CHECK(tl_run_clipmod("tokenize --vocab /nonexistent.gz hello", out, sizeof out, NULL, 0) == 1, "missing vocab: exit 1");
    snprintf(args, sizeof args, "tokenize --vocab %s --stdin < /dev/null", tl_shared(VOCAB_GZ));
    CHECK(tl_run_clipmod(args, out, sizeof out, NULL, 0) == 0 && !out[0], "--stdin empty");
}

int main(void) {
    if (tl_have_shared() && cm_tokenizer_load(tl_shared(VOCAB_GZ), &g_tok))
        fprintf(stderr, "cannot load %s: %s\n", tl_shared(VOCAB_GZ), cm_last_error());
    RUN(test_golden_cases);
    RUN(test_hf_layout);
    RUN(test_utf8_replace);
    RUN(test_html_unescape);
    RUN(test_lower_and_space);
    RUN(test_pretokenize);
    RUN(test_bpe_heap_equals_reference);
    RUN(test_empty_and_invalid);
    RUN(test_very_long);
    RUN(test_corrupt_vocab);
    RUN(test_default_search);
    RUN(test_shipped_vocab);
    RUN(test_threads_share_one_tokenizer);
    RUN(test_cli);
    cm_tokenizer_free(g_tok);
    return tl_summary("test_tokenizer");
}
