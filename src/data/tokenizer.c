/*
 * tokenizer.c — OpenCLIP's SimpleTokenizer (open_clip/tokenizer.py): finding and loading the vocabulary, byte-pair
 * encoding with a thread-safe cache, and the encode / frame / truncate / pad steps; the text stages
 * (UTF-8, html.unescape, whitespace, lower, pre-tokenisation) are in tokenizer_text.c and the
 * vocabulary files in tokenizer_vocab.c.
 *
 * BPE of one pre-token (its UTF-8 bytes b0..bn-1; symbols = byte chars, the last one + "</w>"):
 *   reference (bpe_rounds): OpenCLIP's loop — take the adjacent pair of lowest rank, merge all its
 *     left-to-right non-overlapping occurrences, repeat; O(n) per round, O(n^2) worst case.
 *   fast path for long pre-tokens (bpe_heap): a min-heap of (rank, position) over a linked list,
 *     O(n log n). It equals the reference when the merges are rank-monotone (each merge ranks after
 *     the merges making its two symbols; checked at load, true for the CLIP file): then merging rank r
 *     only creates pairs of rank > r, so the heap pops all rank-r pairs left to right before any other.
 *   Short pre-tokens (the usual case) use the reference directly; tests compare both on random words.
 * The cache maps pre-token bytes (up to 64) to ids; 16 shards, each under its own mutex, so loader
 * threads may share one tokenizer; a full shard is emptied and refilled.
 * defines: cm_tokenizer_load, cm_tokenizer_load_near, cm_tokenizer_free, cm_tokenize,
 *          cm_tokenizer_encode, cm_tokenizer_set_cache, cm_bpe_word, clipmod_tokenizer_*
 */
#include "data/tokenizer_impl.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#define CACHE_KEY_MAX 64
#define CACHE_PER_SHARD_DEFAULT 8192        /* x16 shards: up to 131,072 cached pre-tokens */
#define HEAP_MIN_SYMBOLS 48                 /* shorter pre-tokens use the reference loop */

/* ---- BPE -------------------------------------------------------------------------------------- */

static size_t init_symbols(const CmTokenizer *tok, const uint8_t *b, size_t n, int32_t *sym) {
    for (size_t i = 0; i + 1 < n; i++) sym[i] = tok->byte_id[b[i]];
    sym[n - 1] = tok->byte_end_id[b[n - 1]];
    return n;
}

/* Reference: OpenCLIP SimpleTokenizer.bpe, in place on sym[0..n). Returns the new length. */
static size_t bpe_rounds(const CmTokenizer *tok, int32_t *sym, size_t n) {
    while (n > 1) {
        int32_t best = INT32_MAX, first = -1, second = -1, merged = -1, res;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t r = cm_merge_find(tok, sym[i], sym[i + 1], &res);
            if (r >= 0 && r < best) { best = r; first = sym[i]; second = sym[i + 1]; merged = res; }
        }
        if (first < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && sym[i] == first && sym[i + 1] == second) { sym[w++] = merged; i += 2; }
            else sym[w++] = sym[i++];
        }
        n = w;
    }
    return n;
}

typedef struct { int32_t rank; int32_t pos; int32_t left, right; } HeapEnt;

static bool heap_less(const HeapEnt *a, const HeapEnt *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static void heap_push(HeapEnt *h, size_t *n, HeapEnt e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p]; i = p;
    }
    h[i] = e;
}
static HeapEnt heap_pop(HeapEnt *h, size_t *n) {
    HeapEnt top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c]; i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Fast path: same result as bpe_rounds for rank-monotone merges. Returns the new length or -1 (OOM). */
static long bpe_heap(const CmTokenizer *tok, int32_t *sym, size_t n) {
    if (n > (size_t)INT32_MAX / 4) return cm_error(CM_ERR_OOM, "tokenizer: pre-token of %zu bytes is too long", n);
    int32_t *nxt = malloc(n * sizeof *nxt), *prv = malloc(n * sizeof *prv);
    HeapEnt *h = malloc(3 * n * sizeof *h);           /* n-1 initial pairs + at most 2 per merge */
    if (!nxt || !prv || !h) { free(nxt); free(prv); free(h); return cm_error(CM_ERR_OOM, "tokenizer: out of memory"); }
    size_t hn = 0;
    int32_t res;
    for (size_t i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prv[i] = (int32_t)i - 1;
        if (i + 1 < n) {
            int32_t r = cm_merge_find(tok, sym[i], sym[i + 1], &res);
            if (r >= 0) heap_push(h, &hn, (HeapEnt){r, (int32_t)i, sym[i], sym[i + 1]});
        }
    }
    while (hn) {
        HeapEnt e = heap_pop(h, &hn);
        int32_t p = e.pos, q = nxt[p];
        /* stale: p was absorbed (prv marks it), or either symbol changed since the pair was queued */
        if (prv[p] == -2 || q < 0 || sym[p] != e.left || sym[q] != e.right) continue;
        cm_merge_find(tok, e.left, e.right, &res);
        sym[p] = res;
        nxt[p] = nxt[q];
        if (nxt[q] >= 0) prv[nxt[q]] = p;
        prv[q] = -2;                                    /* q is gone */
        int32_t r;
        if (prv[p] >= 0 && (r = cm_merge_find(tok, sym[prv[p]], sym[p], &res)) >= 0)
            heap_push(h, &hn, (HeapEnt){r, prv[p], sym[prv[p]], sym[p]});
        if (nxt[p] >= 0 && (r = cm_merge_find(tok, sym[p], sym[nxt[p]], &res)) >= 0)
            heap_push(h, &hn, (HeapEnt){r, p, sym[p], sym[nxt[p]]});
    }
    size_t w = 0;
    for (int32_t i = 0; i >= 0; i = nxt[i]) sym[w++] = sym[i];
    free(nxt); free(prv); free(h);
    return (long)w;
}

long cm_bpe_word(const CmTokenizer *tok, const uint8_t *bytes, size_t n, int32_t *out, int algo) {
    if (n == 0) return 0;
    init_symbols(tok, bytes, n, out);
    if (algo == 0) algo = (n >= HEAP_MIN_SYMBOLS && tok->monotone) ? 2 : 1;
    if (algo == 2) return bpe_heap(tok, out, n);
    return (long)bpe_rounds(tok, out, n);
}

bool cm_tokenizer_monotone(const CmTokenizer *tok) { return tok->monotone; }

/* ---- the BPE cache ------------------------------------------------------------------------------ */

struct CmBpeCacheEnt {
    CmBpeCacheEnt *next;
    uint64_t hash;
    uint16_t klen, nids;
    int32_t ids[];              /* nids ids, then klen key bytes */
};

static uint64_t key_hash(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}

static void shard_clear(CmBpeCacheShard *s) {
    for (size_t b = 0; b < s->n_buckets; b++) {
        CmBpeCacheEnt *e = s->buckets[b];
        while (e) { CmBpeCacheEnt *nx = e->next; free(e); e = nx; }
        s->buckets[b] = NULL;
    }
    s->count = 0;
}

/* Copy the cached ids of key into out; returns their number, or -1 when absent. */
static long cache_get(CmTokenizer *tok, const uint8_t *key, size_t klen, uint64_t h, int32_t *out) {
    CmBpeCacheShard *s = &tok->cache[h % CM_BPE_CACHE_SHARDS];
    long n = -1;
    pthread_mutex_lock(s->mutex);
    for (CmBpeCacheEnt *e = s->buckets[(h >> 4) % s->n_buckets]; e; e = e->next)
        if (e->hash == h && e->klen == klen && !memcmp(e->ids + e->nids, key, klen)) {
            memcpy(out, e->ids, e->nids * sizeof *out);
            n = e->nids;
            break;
        }
    pthread_mutex_unlock(s->mutex);
    return n;
}

static void cache_put(CmTokenizer *tok, const uint8_t *key, size_t klen, uint64_t h, const int32_t *ids, size_t n) {
    CmBpeCacheEnt *e = malloc(sizeof *e + n * sizeof(int32_t) + klen);
    if (!e) return;                                     /* the cache is optional */
    e->hash = h; e->klen = (uint16_t)klen; e->nids = (uint16_t)n;
    memcpy(e->ids, ids, n * sizeof *ids);
    memcpy(e->ids + n, key, klen);
    CmBpeCacheShard *s = &tok->cache[h % CM_BPE_CACHE_SHARDS];
    pthread_mutex_lock(s->mutex);
    if (s->count >= tok->cache_max) shard_clear(s);
    size_t b = (h >> 4) % s->n_buckets;
    e->next = s->buckets[b];                             /* a racing duplicate is harmless */
    s->buckets[b] = e;
    s->count++;
    pthread_mutex_unlock(s->mutex);
}

void cm_tokenizer_set_cache(CmTokenizer *tok, size_t max_entries) {
    for (int i = 0; i < CM_BPE_CACHE_SHARDS; i++) {
        pthread_mutex_lock(tok->cache[i].mutex);
        shard_clear(&tok->cache[i]);
        pthread_mutex_unlock(tok->cache[i].mutex);
    }
    tok->cache_max = max_entries ? (max_entries + CM_BPE_CACHE_SHARDS - 1) / CM_BPE_CACHE_SHARDS : 0;
}

/* BPE of one pre-token through the cache. out has room for n ids. */
static long bpe_cached(CmTokenizer *tok, const uint8_t *bytes, size_t n, int32_t *out) {
    bool use = tok->cache_max && n <= CACHE_KEY_MAX;
    uint64_t h = 0;
    if (use) {
        h = key_hash(bytes, n);
        long k = cache_get(tok, bytes, n, h, out);
        if (k >= 0) return k;
    }
    long k = cm_bpe_word(tok, bytes, n, out, 0);
    if (k > 0 && use) cache_put(tok, bytes, n, h, out, (size_t)k);
    return k;
}

/* ---- encoding ----------------------------------------------------------------------------------- */

typedef struct { int32_t *ids; size_t cap, n; } Sink;   /* n counts every id, stored or not */
static void sink_put(Sink *s, int32_t id) { if (s->n < s->cap) s->ids[s->n] = id; s->n++; }

/* Encode text (no SOT/EOT) into s, stopping once s->n >= stop. */
static cm_status encode_impl(CmTokenizer *tok, const char *text, size_t len, Sink *s, size_t stop) {
    if (!tok) return cm_error(CM_ERR_ARG, "tokenize: no tokenizer");
    if (!text && len) return cm_error(CM_ERR_ARG, "tokenize: NULL text of %zu bytes", len);
    if (len > CM_TOKENIZER_MAX_TEXT)
        return cm_error(CM_ERR_ARG, "tokenize: caption of %zu bytes is longer than the %u MiB limit", len, CM_TOKENIZER_MAX_TEXT >> 20);
    enum { SMALL = 512 };
    uint32_t small[3 * SMALL + 4];
    uint8_t small_b[4 * 64];
    int32_t small_i[4 * 64];
    uint32_t *heap = NULL, *A, *B;                      /* A: 2*len+1 code points, B: len+1 */
    if (len <= SMALL) { A = small; B = small + 2 * SMALL + 2; }
    else {
        heap = malloc((3 * len + 4) * sizeof *heap);
        if (!heap) return cm_error(CM_ERR_OOM, "tokenize: out of memory for a caption of %zu bytes", len);
        A = heap; B = heap + 2 * len + 2;
    }
    size_t n = cm_utf8_decode_replace((const uint8_t *)text, len, A);
    n = cm_html_unescape(A, n, B);                      /* html.unescape(html.unescape(text)) */
    n = cm_html_unescape(B, n, A);
    n = cm_ws_clean(A, n, B);                           /* .strip(), " ".join(split()), .strip() */
    n = cm_py_lower(B, n, A);                           /* .lower() */
    cm_status st = CM_OK;
    uint8_t *bytes = NULL; int32_t *ids = NULL; size_t bcap = 0;
    size_t pos = 0, a, b;
    int special;
    while (s->n < stop && cm_pretok_next(A, n, &pos, &a, &b, &special)) {
        if (special) { sink_put(s, special == 1 ? tok->sot : tok->eot); continue; }
        size_t need = 4 * (b - a);
        uint8_t *bb = small_b; int32_t *ii = small_i;
        if (need > sizeof small_b) {
            if (need > bcap) {
                free(bytes); free(ids);
                bytes = malloc(need); ids = malloc(need * sizeof *ids); bcap = need;
                if (!bytes || !ids) { st = cm_error(CM_ERR_OOM, "tokenize: out of memory"); break; }
            }
            bb = bytes; ii = ids;
        }
        size_t nb = 0;
        for (size_t k = a; k < b; k++) nb += (size_t)utf8proc_encode_char((utf8proc_int32_t)A[k], bb + nb);
        long k = bpe_cached(tok, bb, nb, ii);
        if (k < 0) { st = cm_last_status(); break; }
        for (long j = 0; j < k; j++) sink_put(s, ii[j]);
    }
    free(bytes); free(ids); free(heap);
    return st;
}

cm_status cm_tokenizer_encode(CmTokenizer *tok, const char *text, size_t len, int32_t *ids, size_t cap, size_t *n_out) {
    Sink s = {ids, cap, 0};
    cm_status st = encode_impl(tok, text, len, &s, SIZE_MAX);
    if (n_out) *n_out = s.n;
    return st;
}

/* [SOT] + tokens + [EOT]; longer than context_len: cut and set the last to EOT; pad with 0. */
cm_status cm_tokenize(CmTokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len) {
    if (context_len < 2) return cm_error(CM_ERR_ARG, "tokenize: context length %d < 2", context_len);
    if (!ids) return cm_error(CM_ERR_ARG, "tokenize: NULL output");
    size_t body = (size_t)context_len - 2;
    Sink s = {ids + 1, body, 0};
    cm_status st = encode_impl(tok, text, len, &s, body);
    if (st) { memset(ids, 0, (size_t)context_len * sizeof *ids); return st; }
    size_t k = s.n < body ? s.n : body;
    ids[0] = tok->sot;
    ids[k + 1] = tok->eot;
    for (size_t i = k + 2; i < (size_t)context_len; i++) ids[i] = 0;
    return CM_OK;
}

/* ---- loading ------------------------------------------------------------------------------------ */

static bool is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }
static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static cm_status load_files(CmTokenizer *tok, const char *merges_path, const char *vocab_path) {
    char *mt = NULL, *vt = NULL; size_t ml = 0, vl = 0;
    cm_status st = cm_tok_read_text(merges_path, &mt, &ml);
    if (!st && vocab_path) st = cm_tok_read_text(vocab_path, &vt, &vl);
    if (!st) {
        snprintf(tok->source, sizeof tok->source, "%s%s%s", vocab_path ? vocab_path : "", vocab_path ? " + " : "", merges_path);
        st = cm_tok_build(tok, mt, ml, vt, vl, tok->source);
    }
    free(mt); free(vt);
    return st;
}

/* path: a merges file (.gz or text), a vocab.json (merges.txt beside it), or a folder with either. */
static cm_status load_path(CmTokenizer *tok, const char *path) {
    char a[PATH_MAX], b[PATH_MAX];
    if (is_dir(path)) {
        snprintf(a, sizeof a, "%s/bpe_simple_vocab_16e6.txt.gz", path);
        if (cm_file_exists(a)) return load_files(tok, a, NULL);
        snprintf(a, sizeof a, "%s/merges.txt", path);
        snprintf(b, sizeof b, "%s/vocab.json", path);
        if (cm_file_exists(a)) return load_files(tok, a, cm_file_exists(b) ? b : NULL);
        return cm_error(CM_ERR_IO, "%s: no bpe_simple_vocab_16e6.txt.gz, merges.txt or vocab.json in this folder", path);
    }
    if (!cm_file_exists(path)) return cm_error(CM_ERR_IO, "%s: tokenizer vocabulary not found", path);
    if (ends_with(path, ".json")) {
        snprintf(a, sizeof a, "%s", path);
        char *slash = strrchr(a, '/');
        snprintf(slash ? slash + 1 : a, sizeof a - (size_t)(slash ? slash + 1 - a : 0), "merges.txt");
        if (!cm_file_exists(a)) return cm_error(CM_ERR_IO, "%s: no merges.txt beside this vocab.json (looked for %s)", path, a);
        return load_files(tok, a, path);
    }
    return load_files(tok, path, NULL);
}

static cm_status tok_new(CmTokenizer **out) {
    CmTokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) return cm_error(CM_ERR_OOM, "tokenizer: out of memory");
    tok->cache_max = CACHE_PER_SHARD_DEFAULT;
    for (int i = 0; i < CM_BPE_CACHE_SHARDS; i++) {
        CmBpeCacheShard *s = &tok->cache[i];
        s->mutex = malloc(sizeof(pthread_mutex_t));
        s->n_buckets = 4096;
        s->buckets = calloc(s->n_buckets, sizeof *s->buckets);
        if (!s->mutex || !s->buckets) { *out = tok; return cm_error(CM_ERR_OOM, "tokenizer: out of memory"); }
        pthread_mutex_init(s->mutex, NULL);
    }
    *out = tok;
    return CM_OK;
}

void cm_tokenizer_free(CmTokenizer *tok) {
    if (!tok) return;
    for (int i = 0; i < CM_BPE_CACHE_SHARDS; i++) {
        CmBpeCacheShard *s = &tok->cache[i];
        if (s->buckets) shard_clear(s);
        free(s->buckets);
        if (s->mutex) { pthread_mutex_destroy(s->mutex); free(s->mutex); }
    }
    free(tok->m_keys); free(tok->m_rank); free(tok->m_res);
    free(tok);
}

/* a folder holding bpe_simple_vocab_16e6.txt.gz or merges.txt (copied into out) */
static bool vocab_in(const char *dir, char *out, size_t cap) {
    char a[PATH_MAX], b[PATH_MAX];
    if (snprintf(a, sizeof a, "%s/bpe_simple_vocab_16e6.txt.gz", dir) >= (int)sizeof a ||
        snprintf(b, sizeof b, "%s/merges.txt", dir) >= (int)sizeof b)
        return false;
    if (!cm_file_exists(a) && !cm_file_exists(b)) return false;
    return snprintf(out, cap, "%s", dir) < (int)cap;
}

/* `file`'s folder + rel (file: an absolute path of a binary) */
static bool vocab_beside(const char *file, const char *rel, char *out, size_t cap) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", file) >= (int)sizeof dir) return false;
    char *sl = strrchr(dir, '/');
    if (!sl) return false;
    if (snprintf(sl, sizeof dir - (size_t)(sl - dir), "/%s", rel) >= (int)(sizeof dir - (size_t)(sl - dir))) return false;
    return vocab_in(dir, out, cap);
}

/* the model's folder (model_path: a weights file or a folder) */
static bool vocab_near_model(const char *model_path, char *buf, size_t cap) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", model_path) >= (int)sizeof dir) return false;
    if (!is_dir(dir)) { char *sl = strrchr(dir, '/'); if (sl) *sl = 0; else snprintf(dir, sizeof dir, "."); }
    return vocab_in(dir, buf, cap);
}

/* The installed data folder <prefix>/share/clipmod/, found from libclipmod.so's folder (or the
   source tree's assets/ beside build/libclipmod.so) and then from the executable's (so a moved
   prefix still works); then the source tree's assets/ from build/clipmod (<exe>/../assets) or
   build/tests/x, build/bench/x (<exe>/../../assets).
   Never ../shared and never a compiled-in path (docs/tokenizer.md). */
static bool vocab_installed(char *buf, size_t cap) {
    Dl_info di;
    char lib[PATH_MAX];   /* dli_fname: the name given to dlopen, possibly relative; for a static link the
                             program's own name, which the /proc/self/exe rules below handle */
    if (dladdr((void *)cm_tokenizer_load_near, &di) && di.dli_fname && strstr(di.dli_fname, ".so") &&
        realpath(di.dli_fname, lib) &&
        (vocab_beside(lib, "../share/clipmod", buf, cap) || vocab_beside(lib, "../assets", buf, cap)))
        return true;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return false;
    exe[k] = 0;
    return vocab_beside(exe, "../share/clipmod", buf, cap) || vocab_beside(exe, "../assets", buf, cap) ||
           vocab_beside(exe, "../../assets", buf, cap);
}

/* vocab_path NULL: the model's folder; $CLIPMOD_VOCAB (an error there is reported, not skipped);
   vocab_installed(). */
cm_status cm_tokenizer_load_near(const char *vocab_path, const char *model_path, CmTokenizer **out) {
    if (!out) return cm_error(CM_ERR_ARG, "tokenizer: NULL output");
    *out = NULL;
    CmTokenizer *tok = NULL;
    cm_status st = tok_new(&tok);
    if (st) { cm_tokenizer_free(tok); return st; }
    char buf[PATH_MAX];
    const char *env = getenv("CLIPMOD_VOCAB");
    if (vocab_path) st = load_path(tok, vocab_path);
    else if (model_path && vocab_near_model(model_path, buf, sizeof buf)) st = load_path(tok, buf);
    else if (env && *env) {
        st = load_path(tok, env);
        if (st) cm_error_prefix("$CLIPMOD_VOCAB");
    } else if (vocab_installed(buf, sizeof buf)) st = load_path(tok, buf);
    else st = cm_error(CM_ERR_IO, "tokenizer vocabulary not found: give --vocab PATH or set CLIPMOD_VOCAB "
                                  "to bpe_simple_vocab_16e6.txt.gz (looked beside the model, in "
                                  "<prefix>/share/clipmod/ and the source tree's assets/; see docs/tokenizer.md)");
    if (st) { cm_tokenizer_free(tok); return st; }
    *out = tok;
    return CM_OK;
}

cm_status cm_tokenizer_load(const char *path, CmTokenizer **out) { return cm_tokenizer_load_near(path, NULL, out); }

/* ---- public API (include/clipmod.h) ---------------------------------------------------------------- */

clipmod_status clipmod_tokenizer_load(const char *path, clipmod_tokenizer **out) {
    return cm_tokenizer_load(path, out);
}
void clipmod_tokenizer_free(clipmod_tokenizer *tok) { cm_tokenizer_free(tok); }
clipmod_status clipmod_tokenize(clipmod_tokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len) {
    return cm_tokenize(tok, text, len, ids, context_len);
}
clipmod_status clipmod_tokenize_batch(clipmod_tokenizer *tok, const char *const *texts, size_t n, int32_t *ids) {
    for (size_t i = 0; i < n; i++) {
        cm_status st = cm_tokenize(tok, texts[i], texts[i] ? strlen(texts[i]) : 0, ids + i * CM_CONTEXT_LEN, CM_CONTEXT_LEN);
        if (st) return cm_error_prefix("text %zu", i);
    }
    return CLIPMOD_OK;
}
