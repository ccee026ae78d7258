/*
 * tokenizer_vocab.c — loading the BPE vocabulary (open_clip/tokenizer.py):
 *   - bpe_simple_vocab_16e6.txt.gz (or any merges text, gzipped or not): lines[1 : 48895] are the
 *     48,894 merges "a b"; the vocabulary is built as OpenCLIP builds it: the 256 byte-unicode
 *     chars in bytes_to_unicode order, the same + "</w>", the merges joined, then <start_of_text>,
 *     <end_of_text> (49,408 ids). A string listed twice keeps its last id and a merge listed twice
 *     its last rank (Python dict semantics).
 *   - Hugging Face vocab.json (string -> id, read with cJSON) + merges.txt (same slicing): ids as
 *     given; the special ids are those of <|startoftext|>/<|endoftext|> (or the OpenCLIP names).
 * Truncated or corrupt files (bad gzip, invalid UTF-8, too few merges, malformed lines, symbols
 * that are not tokens) give a CM_ERR_FORMAT naming the file and line.
 * defines: cm_tok_read_text, cm_tok_build
 */
#include "data/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <utf8proc.h>
#include <zlib.h>

#define N_MERGES 48894               /* 49152 - 256 - 2 */
#define MAX_FILE (64u << 20)         /* compressed or plain vocabulary files */
#define MAX_TEXT (256u << 20)        /* after gunzip */

/* ---- reading ---------------------------------------------------------------------------------- */

static cm_status gunzip(const char *path, const uint8_t *in, size_t n, char **out, size_t *out_len) {
    size_t cap = n * 4 + 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) return cm_error(CM_ERR_OOM, "%s: out of memory", path);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) { free(buf); return cm_error(CM_ERR_FORMAT, "%s: zlib init failed", path); }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    int rc = Z_OK;
    for (;;) {
        if (cap - len < 65536) {
            if (cap >= MAX_TEXT) { rc = Z_MEM_ERROR; break; }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { rc = Z_MEM_ERROR; break; }
            buf = nb; cap *= 2;
        }
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        len = (size_t)((char *)z.next_out - buf);
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 0) break;
            if (inflateReset(&z) != Z_OK) { rc = Z_DATA_ERROR; break; }   /* another gzip member */
            continue;
        }
        if (rc != Z_OK) break;
        if (z.avail_in == 0 && z.avail_out > 0) { rc = Z_BUF_ERROR; break; }   /* input ended early */
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        if (rc == Z_MEM_ERROR) return cm_error(CM_ERR_FORMAT, "%s: decompresses to more than %u MiB (or out of memory)", path, MAX_TEXT >> 20);
        return cm_error(CM_ERR_FORMAT, "%s: %s gzip data", path, rc == Z_BUF_ERROR ? "truncated" : "corrupt");
    }
    buf[len] = 0;
    *out = buf; *out_len = len;
    return CM_OK;
}

cm_status cm_tok_read_text(const char *path, char **out, size_t *len) {
    uint8_t *raw; size_t n;
    *out = NULL; *len = 0;
    cm_status st = cm_read_file(path, MAX_FILE, &raw, &n);
    if (st) return st;
    if (n >= 2 && raw[0] == 0x1F && raw[1] == 0x8B) {
        st = gunzip(path, raw, n, out, len);
        cm_free(raw);
        return st;
    }
    char *buf = malloc(n + 1);
    if (!buf) { cm_free(raw); return cm_error(CM_ERR_OOM, "%s: out of memory", path); }
    memcpy(buf, raw, n); buf[n] = 0;
    cm_free(raw);
    *out = buf; *len = n;
    return CM_OK;
}

/* ---- a load-time string -> id map (later insertions win) ---------------------------------------- */

typedef struct { const char *s; uint32_t len; int32_t id; } MapEnt;
typedef struct { MapEnt *e; size_t mask; } StrMap;

static uint64_t str_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 1099511628211ull; }
    return h;
}
static cm_status map_init(StrMap *m, size_t n) {
    size_t cap = 1;
    while (cap < 2 * n + 16) cap <<= 1;
    m->e = calloc(cap, sizeof *m->e);
    m->mask = cap - 1;
    return m->e ? CM_OK : cm_error(CM_ERR_OOM, "tokenizer: out of memory");
}
/* s must stay alive while the map is used. */
static void map_put(StrMap *m, const char *s, size_t n, int32_t id) {
    size_t h = str_hash(s, n) & m->mask;
    while (m->e[h].s && !(m->e[h].len == n && !memcmp(m->e[h].s, s, n))) h = (h + 1) & m->mask;
    m->e[h].s = s; m->e[h].len = (uint32_t)n; m->e[h].id = id;
}
static int32_t map_get(const StrMap *m, const char *s, size_t n) {
    size_t h = str_hash(s, n) & m->mask;
    while (m->e[h].s) {
        if (m->e[h].len == n && !memcmp(m->e[h].s, s, n)) return m->e[h].id;
        h = (h + 1) & m->mask;
    }
    return -1;
}

/* ---- bytes_to_unicode ------------------------------------------------------------------------- */

/* order[k]: the byte whose char has vocabulary id k; cp[b]: the char of byte b. */
static void bytes_to_unicode(uint8_t order[256], uint32_t cp[256]) {
    int k = 0, extra = 0;
    bool printable[256] = {0};
    for (int b = 0; b < 256; b++)
        printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    for (int b = 0; b < 256; b++) if (printable[b]) { order[k++] = (uint8_t)b; cp[b] = (uint32_t)b; }
    for (int b = 0; b < 256; b++) if (!printable[b]) { order[k++] = (uint8_t)b; cp[b] = 256u + (uint32_t)extra++; }
}

static size_t put_utf8(char *o, uint32_t c) { return (size_t)utf8proc_encode_char((utf8proc_int32_t)c, (utf8proc_uint8_t *)o); }

/* ---- merges ----------------------------------------------------------------------------------- */

typedef struct { const char *a, *b; uint32_t alen, blen; } Merge;

/* Strict UTF-8 check (Python's .decode("utf-8") of the whole file). Returns the bad offset or -1. */
static long utf8_invalid_at(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if ((uint8_t)s[i] < 0x80) { i++; continue; }
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) return (long)i;
        i += (size_t)k;
    }
    return -1;
}

/* Split lines[1 .. 1+N_MERGES) of text into the two symbols of each merge (pointing into text). */
static cm_status parse_merges(const char *text, size_t len, const char *what, Merge *m) {
    long bad = utf8_invalid_at(text, len);
    if (bad >= 0) return cm_error(CM_ERR_FORMAT, "%s: invalid UTF-8 at byte %ld", what, bad);
    const char *p = text, *end = text + len;
    const char *nl = memchr(p, '\n', len);
    if (!nl) return cm_error(CM_ERR_FORMAT, "%s: no merge lines (truncated or not a BPE merges file)", what);
    p = nl + 1;                                         /* line 0: "#version: 0.2" header */
    for (int r = 0; r < N_MERGES; r++) {
        if (p >= end)
            return cm_error(CM_ERR_FORMAT, "%s: only %d merges, OpenCLIP needs %d (truncated file?)", what, r, N_MERGES);
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        const char *q = p, *le = e;
        if (le > q && le[-1] == '\r') le--;
        const char *parts[3]; size_t plen[3]; int np = 0;
        while (q < le) {
            while (q < le && (*q == ' ' || *q == '\t')) q++;
            if (q == le) break;
            const char *s = q;
            while (q < le && *q != ' ' && *q != '\t') q++;
            if (np < 3) { parts[np] = s; plen[np] = (size_t)(q - s); }
            np++;
        }
        if (np != 2)
            return cm_error(CM_ERR_FORMAT, "%s: line %d: expected two symbols separated by a space, found %d", what, r + 2, np);
        m[r].a = parts[0]; m[r].alen = (uint32_t)plen[0];
        m[r].b = parts[1]; m[r].blen = (uint32_t)plen[1];
        p = e + 1;
    }
    return CM_OK;
}

static cm_status merges_table(CmTokenizer *tok, const Merge *m, const StrMap *map, const char *what) {
    size_t cap = 1;
    while (cap < 2 * (size_t)N_MERGES) cap <<= 1;
    tok->m_keys = malloc(cap * sizeof *tok->m_keys);
    tok->m_rank = malloc(cap * sizeof *tok->m_rank);
    tok->m_res = malloc(cap * sizeof *tok->m_res);
    if (!tok->m_keys || !tok->m_rank || !tok->m_res) return cm_error(CM_ERR_OOM, "%s: out of memory", what);
    memset(tok->m_keys, 0xFF, cap * sizeof *tok->m_keys);
    tok->m_mask = cap - 1;
    char joined[1024];
    for (int r = 0; r < N_MERGES; r++) {
        int32_t a = map_get(map, m[r].a, m[r].alen), b = map_get(map, m[r].b, m[r].blen);
        if (a < 0 || b < 0)
            return cm_error(CM_ERR_FORMAT, "%s: line %d: symbol '%.*s' is not in the vocabulary", what, r + 2,
                            (int)(a < 0 ? m[r].alen : m[r].blen), a < 0 ? m[r].a : m[r].b);
        if (m[r].alen + m[r].blen > sizeof joined)
            return cm_error(CM_ERR_FORMAT, "%s: line %d: merge of %u bytes is too long", what, r + 2, m[r].alen + m[r].blen);
        memcpy(joined, m[r].a, m[r].alen);
        memcpy(joined + m[r].alen, m[r].b, m[r].blen);
        int32_t res = map_get(map, joined, m[r].alen + m[r].blen);
        if (res < 0)
            return cm_error(CM_ERR_FORMAT, "%s: line %d: merged symbol '%.*s' is not in the vocabulary", what, r + 2,
                            (int)(m[r].alen + m[r].blen), joined);
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & tok->m_mask;
        while (tok->m_keys[h] != UINT64_MAX && tok->m_keys[h] != key) h = (h + 1) & tok->m_mask;
        if (tok->m_keys[h] == UINT64_MAX) tok->n_merges++;
        tok->m_keys[h] = key; tok->m_rank[h] = r; tok->m_res[h] = res;   /* a repeated merge: last rank */
    }
    /* Rank-monotone: every merge ranks after every merge producing either of its symbols. Then a merge
       only creates pairs of higher rank, and the heap BPE equals OpenCLIP's round-by-round loop. */
    int32_t *made = malloc((size_t)tok->n_vocab * sizeof *made);
    if (!made) return cm_error(CM_ERR_OOM, "%s: out of memory", what);
    for (int32_t i = 0; i < tok->n_vocab; i++) made[i] = -1;
    for (size_t h = 0; h <= tok->m_mask; h++)
        if (tok->m_keys[h] != UINT64_MAX && made[tok->m_res[h]] < tok->m_rank[h]) made[tok->m_res[h]] = tok->m_rank[h];
    tok->monotone = true;
    for (size_t h = 0; h <= tok->m_mask; h++) {
        if (tok->m_keys[h] == UINT64_MAX) continue;
        int32_t a = (int32_t)(tok->m_keys[h] >> 32), b = (int32_t)(uint32_t)tok->m_keys[h];
        if (made[a] >= tok->m_rank[h] || made[b] >= tok->m_rank[h]) tok->monotone = false;
    }
    free(made);
    return CM_OK;
}

/* ---- building --------------------------------------------------------------------------------- */

cm_status cm_tok_build(CmTokenizer *tok, const char *merges, size_t merges_len,
                       const char *vocab_json, size_t vocab_json_len, const char *what) {
    cm_status st = CM_OK;
    Merge *m = calloc(N_MERGES, sizeof *m);
    StrMap map = {0};
    char *arena = NULL;
    cJSON *json = NULL;
    if (!m) return cm_error(CM_ERR_OOM, "%s: out of memory", what);
    if ((st = parse_merges(merges, merges_len, what, m))) goto done;

    uint8_t order[256]; uint32_t cp[256];
    bytes_to_unicode(order, cp);
    char base[256][8]; size_t base_len[256];           /* UTF-8 of each byte's char, by byte */
    for (int b = 0; b < 256; b++) base_len[b] = put_utf8(base[b], cp[b]);

    if (!vocab_json) {
        /* OpenCLIP: vocab = chars, chars + "</w>", joined merges, specials; encoder = dict(zip(vocab, ids)) */
        size_t arena_len = 512 * 8 + 64;
        for (int r = 0; r < N_MERGES; r++) arena_len += m[r].alen + m[r].blen;
        arena = malloc(arena_len);
        if (!arena || (st = map_init(&map, 49408))) { st = st ? st : cm_error(CM_ERR_OOM, "%s: out of memory", what); goto done; }
        char *o = arena;
        for (int k = 0; k < 256; k++) { memcpy(o, base[order[k]], base_len[order[k]]); map_put(&map, o, base_len[order[k]], k); o += base_len[order[k]]; }
        for (int k = 0; k < 256; k++) {
            size_t n = base_len[order[k]];
            memcpy(o, base[order[k]], n); memcpy(o + n, "</w>", 4);
            map_put(&map, o, n + 4, 256 + k); o += n + 4;
        }
        for (int r = 0; r < N_MERGES; r++) {
            memcpy(o, m[r].a, m[r].alen); memcpy(o + m[r].alen, m[r].b, m[r].blen);
            map_put(&map, o, m[r].alen + m[r].blen, 512 + r); o += m[r].alen + m[r].blen;
        }
        map_put(&map, "<start_of_text>", 15, 512 + N_MERGES);
        map_put(&map, "<end_of_text>", 13, 513 + N_MERGES);
        tok->n_vocab = 514 + N_MERGES;
    } else {
        json = cJSON_ParseWithLength(vocab_json, vocab_json_len);
        if (!json || !cJSON_IsObject(json)) { st = cm_error(CM_ERR_FORMAT, "%s: vocab.json is not a JSON object", what); goto done; }
        int n = cJSON_GetArraySize(json);
        if ((st = map_init(&map, (size_t)n))) goto done;
        int32_t max_id = -1;
        for (cJSON *it = json->child; it; it = it->next) {
            double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
            if (!it->string || v < 0 || v >= (1 << 24) || v != (double)(int32_t)v) {
                st = cm_error(CM_ERR_FORMAT, "%s: vocab.json entry '%.40s' is not an id in [0, 2^24)", what, it->string ? it->string : "?");
                goto done;
            }
            map_put(&map, it->string, strlen(it->string), (int32_t)v);
            if ((int32_t)v > max_id) max_id = (int32_t)v;
        }
        tok->n_vocab = max_id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char s[16];
        memcpy(s, base[b], base_len[b]); memcpy(s + base_len[b], "</w>", 4);
        tok->byte_id[b] = map_get(&map, base[b], base_len[b]);
        tok->byte_end_id[b] = map_get(&map, s, base_len[b] + 4);
        if (tok->byte_id[b] < 0 || tok->byte_end_id[b] < 0) {
            st = cm_error(CM_ERR_FORMAT, "%s: the vocabulary lacks the symbol of byte 0x%02X", what, b);
            goto done;
        }
    }
    tok->sot = map_get(&map, "<start_of_text>", 15);
    tok->eot = map_get(&map, "<end_of_text>", 13);
    if (tok->sot < 0) tok->sot = map_get(&map, "<|startoftext|>", 15);
    if (tok->eot < 0) tok->eot = map_get(&map, "<|endoftext|>", 13);
    if (tok->sot < 0 || tok->eot < 0) { st = cm_error(CM_ERR_FORMAT, "%s: vocab.json has no <|startoftext|>/<|endoftext|> ids", what); goto done; }
    st = merges_table(tok, m, &map, what);
done:
    cJSON_Delete(json);
    free(map.e);
    free(arena);
    free(m);
    return st;
}
