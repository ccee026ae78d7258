/*
 * cmd_predict.c — `clipmod predict` (DESIGN §7, issue 11 item 2; docs/predict.md):
 *
 *   pairs     --image PATH --text STR (repeatable, in order)
 *   stream    --jsonl FILE|-: one {"image": PATH, "text": STR} per line; one output line per
 *             non-blank input line, in order, flushed as soon as its batch is done. Lines are
 *             batched (up to --batch-size) but a line never waits more than --max-wait-ms for
 *             company: the input is read with poll(), so on a pipe line 1 is answered before
 *             line 2 arrives.
 *   bulk      --data URLS (WebDataset shards, the threaded loader, eval transform, in order, no
 *             shuffle) or --images DIR --captions FILE (TSV: file name relative to DIR, a TAB,
 *             the caption); progress on stderr; bad samples skipped, counted and reported;
 *             zero samples scored is an error (exit 1).
 * Output (predict_out.h): JSON lines {"label","class","probs"} (+ "key","shard" / "file" in
 * bulk) or CSV (--format csv), to stdout or atomically to --out FILE.
 * In pairs/stream mode an input that cannot be scored gives {"error": ...} on its line; exit status
 * 1 at the end for an unreadable image, 2 when a line was not the expected JSON.
 * The model is opened by cm_model_open (model/open.h: checkpoint, LoRA over its base, weights file with a
 * head, or a `clipmod export` folder); texts use the tokenizer the checkpoint was trained with.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/precision.h"
#include "cli/predict_out.h"
#include "common/common.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/wds.h"
#include "model/model.h"
#include "data/textenc.h"
#include "model/open.h"

#define MAX_LOGGED_BAD 50
#define MAX_LINE ((size_t)64 << 20)

typedef struct {
    char *image, *text;     /* owned */
    char *key;              /* bulk --images: the file name as in the captions file (owned) */
    char *err;              /* owned; set before scoring (bad input line) or by scoring */
    bool usage;             /* err is a malformed input line (counted apart; exit 1 like any data error) */
} Item;

static void item_clear(Item *it) {
    free(it->image); free(it->text); free(it->key); free(it->err);
    memset(it, 0, sizeof *it);
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

// ---------------------------------------------------------------------------------------------
// scoring a batch of items (pairs, stream, --images)

typedef struct {
    const CmModel *m;
    CmTextEnc *te;
    int S, ctx, C, batch;
    float *img, *U, *V, *H;
    int32_t *tok;
    int *slot;              /* per item: row of H, or -1 (item->err set) */
} Scorer;

static cm_status scorer_init(Scorer *s, const CmModel *m, CmTextEnc *te, int batch) {
    memset(s, 0, sizeof *s);
    s->m = m; s->te = te; s->batch = batch;
    s->S = m->cfg.vision.image_size; s->ctx = m->cfg.text.context_length; s->C = m->cfg.head.n_classes;
    int E = m->cfg.embed_dim;
    s->img = cm_malloc((size_t)batch * 3 * s->S * s->S * sizeof(float), "predict batch images");
    s->tok = cm_malloc((size_t)batch * s->ctx * sizeof(int32_t), "predict batch tokens");
    s->U = cm_malloc((size_t)batch * E * sizeof(float), "predict features");
    s->V = cm_malloc((size_t)batch * E * sizeof(float), "predict features");
    s->H = cm_malloc((size_t)batch * s->C * sizeof(float), "predict logits");
    s->slot = cm_malloc((size_t)batch * sizeof(int), "predict slots");
    return s->img && s->tok && s->U && s->V && s->H && s->slot ? CM_OK : CM_ERR_OOM;
}

static void scorer_free(Scorer *s) {
    cm_free(s->img); cm_free(s->tok); cm_free(s->U); cm_free(s->V); cm_free(s->H); cm_free(s->slot);
}

/* Decode (in parallel) and forward items[0..n), n <= batch. A failing item gets err + slot -1;
   a model failure is returned. */
static cm_status score_items(Scorer *s, Item *items, int n) {
    size_t isz = (size_t)3 * s->S * s->S;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
    for (int i = 0; i < n; i++) {
        Item *it = &items[i];
        s->slot[i] = -1;
        if (it->err) continue;
        CmImage im = {0};
        cm_status st = cm_image_load(it->image, 0, &im);
        if (!st) st = cm_transform_eval(&im, s->S, &CM_CLIP_NORMALIZE, s->img + (size_t)i * isz);
        cm_image_free(&im);
        if (!st) st = cm_textenc_encode(s->te, it->text, strlen(it->text), s->tok + (size_t)i * s->ctx, s->ctx);
        if (st) { it->err = xstrdup(cm_last_error()); if (!it->err) it->err = xstrdup("out of memory"); continue; }
        s->slot[i] = 0;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (s->slot[i] < 0) continue;
        if (k != i) {
            memmove(s->img + (size_t)k * isz, s->img + (size_t)i * isz, isz * sizeof(float));
            memmove(s->tok + (size_t)k * s->ctx, s->tok + (size_t)i * s->ctx, (size_t)s->ctx * sizeof(int32_t));
        }
        s->slot[i] = k++;
    }
    if (k && cm_model_forward(s->m, NULL, s->img, s->tok, k, false, s->U, s->V, s->H)) return cm_last_status();
    return CM_OK;
}

// ---------------------------------------------------------------------------------------------
// pairs and --jsonl streaming

typedef struct {
    Scorer *sc;
    PredOut *out;
    Item *items;
    int k;
    int64_t scored, failed, malformed;
} Stream;

static cm_status stream_flush(Stream *s) {
    if (!s->k) return CM_OK;
    cm_status st = score_items(s->sc, s->items, s->k);
    if (st) return st;
    for (int i = 0; i < s->k && !st; i++) {
        Item *it = &s->items[i];
        PredRow r = {0};
        r.image = it->image; r.text = it->text;
        if (s->sc->slot[i] >= 0) { r.logits = s->sc->H + (size_t)s->sc->slot[i] * s->sc->C; s->scored++; }
        else {
            r.error = it->err;
            if (it->usage) s->malformed++; else s->failed++;
            fprintf(stderr, "clipmod predict: %s\n", it->err ? it->err : "failed");
        }
        st = pred_out_row(s->out, &r);
    }
    for (int i = 0; i < s->k; i++) item_clear(&s->items[i]);
    s->k = 0;
    if (!st) st = pred_out_flush(s->out);
    return st;
}

/* One input line -> the next item (blank lines give none). */
static cm_status stream_line(Stream *s, char *l, size_t n, const char *name, int64_t line) {
    while (n && (l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t')) n--;
    l[n] = 0;
    while (*l == ' ' || *l == '\t') l++;
    if (!*l) return CM_OK;
    Item *it = &s->items[s->k];
    memset(it, 0, sizeof *it);
    cJSON *j = cJSON_Parse(l);
    cJSON *im = j ? cJSON_GetObjectItem(j, "image") : NULL, *tx = j ? cJSON_GetObjectItem(j, "text") : NULL;
    if (!cJSON_IsString(im) || !cJSON_IsString(tx)) {
        it->err = xprintf("--jsonl %s line %lld: expected {\"image\": PATH, \"text\": STR}", name, (long long)line);
        it->usage = true;
    } else {
        it->image = xstrdup(im->valuestring);
        it->text = xstrdup(tx->valuestring);
        if (!it->image || !it->text) it->err = xstrdup("out of memory");
    }
    cJSON_Delete(j);
    s->k++;
    return CM_OK;
}

/* Read fd to its end: lines are batched, a batch is scored when full, when the input pauses
   for max_wait_ms with a line waiting, or at the end. */
static cm_status stream_fd(Stream *s, int fd, const char *name, int max_wait_ms, int64_t *n_lines) {
    size_t cap = 1 << 16, len = 0, pos = 0;
    char *buf = malloc(cap);
    if (!buf) return cm_error(CM_ERR_OOM, "--jsonl: out of memory");
    bool eof = false;
    int64_t line = 0;
    double deadline = 0;
    cm_status st = CM_OK;
    for (;;) {
        /* complete lines already read */
        char *nl;
        while (!st && (nl = memchr(buf + pos, '\n', len - pos))) {
            int had = s->k;
            st = stream_line(s, buf + pos, (size_t)(nl - (buf + pos)), name, ++line);
            pos = (size_t)(nl - buf) + 1;
            if (!had && s->k) deadline = cm_now() + max_wait_ms / 1000.0;
            if (!st && s->k == s->sc->batch) st = stream_flush(s);
        }
        if (st) break;
        if (eof) {
            if (pos < len) { buf[len] = 0; st = stream_line(s, buf + pos, len - pos, name, ++line); pos = len; }
            if (!st) st = stream_flush(s);
            break;
        }
        if (pos) { memmove(buf, buf + pos, len - pos); len -= pos; pos = 0; }
        if (len + 1 >= cap) {
            if (cap >= MAX_LINE) { st = cm_error(CM_ERR_ARG, "--jsonl %s line %lld: longer than %zu bytes", name, (long long)line + 1, MAX_LINE); break; }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { st = cm_error(CM_ERR_OOM, "--jsonl: out of memory"); break; }
            buf = nb;
            cap *= 2;
        }
        if (s->k) {
            int wait = (int)((deadline - cm_now()) * 1000.0 + 0.999);
            if (wait <= 0) { if ((st = stream_flush(s))) break; continue; }
            struct pollfd p = {fd, POLLIN, 0};
            int r = poll(&p, 1, wait);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) { st = cm_error(CM_ERR_IO, "--jsonl %s: poll: %s", name, strerror(errno)); break; }
            if (r == 0) { if ((st = stream_flush(s))) break; continue; }
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) { st = cm_error(CM_ERR_IO, "--jsonl %s: read: %s", name, strerror(errno)); break; }
        if (n == 0) eof = true;
        len += (size_t)n;
    }
    free(buf);
    *n_lines = line;
    return st;
}

// ---------------------------------------------------------------------------------------------
// bulk: --images DIR --captions FILE

/* TSV: "<file name relative to DIR>\t<caption>" per line; blank lines skipped. */
static cm_status read_captions(const char *dir, const char *path, Item **out, int *n, int64_t *bad) {
    uint8_t *buf = NULL;
    size_t len = 0;
    cm_status st = cm_read_file(path, (size_t)1 << 31, &buf, &len);
    if (st) return cm_error_prefix("--captions");
    Item *v = NULL;
    int k = 0, cap = 0;
    int64_t line = 0;
    char *p = (char *)buf, *end = p + len;
    while (p < end && !st) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        line++;
        char *l = p;
        p = nl ? nl + 1 : end;
        if (e > l && e[-1] == '\r') e--;
        *e = 0;
        if (!*l) continue;
        char *tab = strchr(l, '\t');
        if (!tab || tab == l || strlen(l) != (size_t)(e - l)) {
            if (++*bad <= MAX_LOGGED_BAD)
                cm_warn("predict: --captions %s line %lld: expected FILE<TAB>CAPTION (skipped)", path, (long long)line);
            continue;
        }
        *tab = 0;
        if (k == cap) {
            cap = cap ? cap * 2 : 1024;
            Item *nv = realloc(v, sizeof *v * (size_t)cap);
            if (!nv) { st = cm_error(CM_ERR_OOM, "--captions: out of memory"); break; }
            v = nv;
        }
        memset(&v[k], 0, sizeof v[k]);
        v[k].key = xstrdup(l);
        v[k].text = xstrdup(tab + 1);
        v[k].image = xprintf("%s/%s", dir, l);
        if (!v[k].key || !v[k].text || !v[k].image) st = cm_error(CM_ERR_OOM, "--captions: out of memory");
        k++;
    }
    cm_free(buf);
    if (st) { for (int i = 0; i < k; i++) item_clear(&v[i]); free(v); return st; }
    *out = v;
    *n = k;
    return CM_OK;
}

static cm_status bulk_images(Scorer *sc, PredOut *out, Item *items, int n, int64_t bad0, bool progress, int64_t *scored, int64_t *bad) {
    Progress pg;
    progress_start(&pg, progress, n + bad0);
    *bad = bad0;
    *scored = 0;
    cm_status st = CM_OK;
    for (int b0 = 0; b0 < n && !st; b0 += sc->batch) {
        int nb = n - b0 < sc->batch ? n - b0 : sc->batch;
        if ((st = score_items(sc, items + b0, nb))) break;
        for (int i = 0; i < nb && !st; i++) {
            Item *it = &items[b0 + i];
            if (sc->slot[i] < 0) {
                if (++*bad <= MAX_LOGGED_BAD) {
                    progress_clear(&pg);
                    cm_warn("predict: bad sample %s: %s (skipped)", it->key, it->err ? it->err : "failed");
                }
                continue;
            }
            PredRow r = {0};
            r.file = it->key;
            r.logits = sc->H + (size_t)sc->slot[i] * sc->C;
            st = pred_out_row(out, &r);
            ++*scored;
        }
        progress_update(&pg, *scored, *bad);
    }
    progress_done(&pg, *scored, *bad);
    return st;
}

// ---------------------------------------------------------------------------------------------
// bulk: --data URLS (the threaded loader)

static cm_status encode_cb(void *ctx, const char *text, size_t len, int32_t *ids, int n) {
    return cm_textenc_encode((CmTextEnc *)ctx, text, len, ids, n);
}

static cm_status bulk_shards(const CmModel *m, CmTextEnc *te, PredOut *out, const char *urls, int batch, int workers, bool progress,
                             int64_t *scored, int64_t *bad) {
    *scored = *bad = 0;
    int64_t total = 0;
    CmShardList sl;
    if (!cm_shardlist_init(&sl, urls, NULL, "--data")) {
        if (cm_dataset_size(&sl.urls, &total)) total = 0;   /* no sizes.json: no ETA */
        cm_shardlist_free(&sl);
    } else {
        return cm_last_status();
    }
    CmLoaderConfig lc = {0};
    lc.urls = urls; lc.train = false; lc.batch_size = batch; lc.workers = workers; lc.world_size = 1;
    lc.image_size = m->cfg.vision.image_size; lc.context_len = m->cfg.text.context_length;
    lc.encode = encode_cb; lc.encode_ctx = te;
    CmLoader *l = NULL;
    cm_status st = cm_loader_open(&lc, &l);
    if (st) return st;
    int E = m->cfg.embed_dim, C = m->cfg.head.n_classes;
    float *U = cm_malloc((size_t)batch * E * sizeof(float), "predict"), *V = cm_malloc((size_t)batch * E * sizeof(float), "predict"),
          *H = cm_malloc((size_t)batch * C * sizeof(float), "predict");
    if (!U || !V || !H) st = CM_ERR_OOM;
    if (!st) st = cm_loader_start_epoch(l, 0);
    Progress pg;
    progress_start(&pg, progress, total);
    while (!st) {
        CmBatch *b = NULL;
        int r = cm_loader_next(l, &b);
        if (r < 0) { st = cm_last_status() ? cm_last_status() : CM_ERR_IO; break; }
        if (r == 0) break;
        st = cm_model_forward(m, NULL, b->images, b->tokens, b->n, false, U, V, H);
        for (int i = 0; i < b->n && !st; i++) {
            PredRow row = {0};
            row.key = cm_batch_key(b, i, &row.shard);
            row.logits = H + (size_t)i * C;
            st = pred_out_row(out, &row);
            ++*scored;
        }
        cm_batch_free(b);
        CmLoaderStats ls = cm_loader_stats(l);
        *bad = ls.bad_samples;
        progress_update(&pg, *scored, *bad);
    }
    CmLoaderStats ls = cm_loader_stats(l);
    *bad = ls.bad_samples;
    progress_done(&pg, *scored, *bad);
    if (ls.bad_shards) cm_warn("predict: %lld shard(s) could not be read to the end (see above)", (long long)ls.bad_shards);
    cm_free(U); cm_free(V); cm_free(H);
    cm_loader_close(l);
    return st;
}

// ---------------------------------------------------------------------------------------------

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *jsonl = NULL, *vocab = NULL, *model_name = NULL, *data = NULL, *images_dir = NULL,
               *base_model = NULL, *cache_dir = NULL,
               *captions = NULL, *format = "jsonl", *out_path = NULL, *precision = "fp32";
    ArgList images = {0}, texts = {0}, thresholds = {0};
    int batch = 16, workers = 2, max_wait = 5;
    bool no_progress = false;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model, "CKPT|DIR", "clipmod checkpoint, weights file with a head, or `clipmod export` folder (required)"),
        ARG("--image", ARG_LIST, &images, "PATH", "image of a pair (repeatable; pairs with --text in order)"),
        ARG("--text", ARG_LIST, &texts, "STR", "caption of a pair (repeatable)"),
        ARG("--jsonl", ARG_STR, &jsonl, "FILE", "pairs as JSON lines {\"image\":..,\"text\":..}; '-' streams stdin (one answer per line, flushed)"),
        ARG("--data", ARG_STR, &data, "URLS", "bulk: WebDataset shards, brace patterns joined by '::' (output has key, shard)"),
        ARG("--images", ARG_STR, &images_dir, "DIR", "bulk: a folder of images (with --captions)"),
        ARG("--captions", ARG_STR, &captions, "FILE", "bulk: TSV lines FILE<TAB>CAPTION, FILE relative to --images"),
        ARG("--format", ARG_STR, &format, "jsonl|csv", "output format (default jsonl)"),
        ARG("--out", ARG_STR, &out_path, "FILE", "write the results to FILE atomically (default: stdout)"),
        ARG("--model-name", ARG_STR, &model_name, "NAME|JSON", "config of a plain weights file (default: the checkpoint's, or open_clip_config.json beside the weights)",
            .check = args_check_model_name),
        ARG("--base-model", ARG_STR, &base_model, "PATH", "base weights of a LoRA checkpoint (default: found by SHA-256, docs/open.md)"),
        ARG("--cache-dir", ARG_STR, &cache_dir, "DIR", "Hugging Face cache searched for the base (default $HF_HOME/hub, ...)"),
        ARG("--vocab", ARG_STR, &vocab, "PATH", "BPE vocabulary (default: next to the model, $CLIPMOD_VOCAB, <prefix>/share/clipmod/)"),
        ARG("--batch-size", ARG_INT, &batch, "N", "pairs per forward pass (default 16)"),
        ARG("--max-wait-ms", ARG_INT, &max_wait, "MS", "streaming: longest a line waits for others to share its batch (default 5)"),
        ARG("--workers", ARG_INT, &workers, "N", "bulk --data: decode threads (default 2)"),
        ARG("--no-progress", ARG_FLAG, &no_progress, NULL, "bulk: no progress display on stderr"),
        ARG("--precision", ARG_STR, &precision, "P", CLI_PRECISION_HELP),
        ARG("--threshold", ARG_LIST, &thresholds, "CLASS=P", "flag a pair when CLASS (name or index) has probability >= P; repeatable or comma-separated, any rule flags (adds \"flagged\", \"flagged_by\"; CSV: a flagged column)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "predict",
                        "--model CKPT|DIR ((--image PATH --text STR)... | --jsonl FILE|- | --data URLS | --images DIR --captions FILE) "
                        "[--format jsonl|csv] [--out FILE]", NULL);
    if (rc) { args_free(&images); args_free(&texts); args_free(&thresholds); return rc < 0 ? 0 : rc; }
    CmThresholds thr = {0};
    int status = 2;
    CmModel *m = NULL;
    CmTextEnc te = {0};
    Scorer sc = {0};
    PredOut out = {0};
    bool out_open = false;
    Item *items = NULL;
    int n_items = 0;
    PredFormat fmt = PRED_JSONL;
    PredMode mode = data ? PRED_SHARDS : images_dir ? PRED_IMAGES : PRED_PAIRS;
    int n_modes = (data != NULL) + (images_dir != NULL) + (jsonl != NULL || images.n > 0);

#define USAGE(...) do { fprintf(stderr, "clipmod predict: " __VA_ARGS__); fputc('\n', stderr); status = 2; goto done; } while (0)
    if (!model) USAGE("--model is required");
    if (!strcmp(format, "csv")) fmt = PRED_CSV;
    else if (strcmp(format, "jsonl")) USAGE("--format %s: expected jsonl or csv", format);
    if (images.n != texts.n) USAGE("%d --image but %d --text: give them in pairs", images.n, texts.n);
    if (n_modes > 1) USAGE("give one input: pairs / --jsonl, --data, or --images with --captions");
    if (n_modes == 0) USAGE("nothing to predict (give --image/--text pairs, --jsonl, --data or --images/--captions)");
    if ((images_dir != NULL) != (captions != NULL)) USAGE("--images DIR and --captions FILE go together");
    if (batch < 1 || batch > 4096) USAGE("--batch-size must be in 1..4096");
    if (max_wait < 0 || max_wait > 60000) USAGE("--max-wait-ms must be in 0..60000");
    if (workers < 0 || workers > 256) USAGE("--workers must be in 0..256");
    if (out_path && !*out_path) USAGE("--out: empty file name");
    if (cli_precision_check("predict", precision)) { status = 2; goto done; }
#undef USAGE

    status = 1;
    CmModelInfo info;
    CmOpenOptions oo = {model_name, base_model, cache_dir};
    if (cm_model_open(model, &oo, &m, &info)) { status = cm_last_status() == CM_ERR_ARG ? 2 : 1; cli_fail("predict"); goto done; }
    if (!m->cfg.has_head) { fprintf(stderr, "clipmod predict: %s has no classification head\n", model); goto done; }
    if ((status = cli_apply_precision("predict", precision, &m))) goto done;
    status = 1;
    if (cm_textenc_open(&te, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", vocab, info.weights)) { cli_fail("predict"); goto done; }
    for (int i = 0; i < thresholds.n; i++)
        if (cm_thresholds_add(&thr, thresholds.v[i], m->cfg.head.n_classes)) { status = 2; cli_fail("predict"); goto done; }
    if (pred_out_open(&out, mode, fmt, m->cfg.head.n_classes, out_path, &thr)) { cli_fail("predict"); goto done; }
    out_open = true;
    bool progress = !no_progress;
    int64_t scored = 0, bad = 0;
    cm_status st = CM_OK;

    if (mode == PRED_SHARDS) {
        st = bulk_shards(m, &te, &out, data, batch, workers, progress, &scored, &bad);
    } else {
        if ((st = scorer_init(&sc, m, &te, batch))) { cli_fail("predict"); goto done; }
        if (mode == PRED_IMAGES) {
            if (!(st = read_captions(images_dir, captions, &items, &n_items, &bad)))
                st = bulk_images(&sc, &out, items, n_items, bad, progress, &scored, &bad);
        } else {
            Stream s = {&sc, &out, NULL, 0, 0, 0, 0};
            s.items = calloc((size_t)batch, sizeof *s.items);
            if (!s.items) st = cm_error(CM_ERR_OOM, "predict: out of memory");
            for (int i = 0; i < images.n && !st; i++) {
                Item *it = &s.items[s.k++];
                it->image = xstrdup(images.v[i]);
                it->text = xstrdup(texts.v[i]);
                if (!it->image || !it->text) st = cm_error(CM_ERR_OOM, "predict: out of memory");
                if (!st && s.k == batch) st = stream_flush(&s);
            }
            if (!st) st = stream_flush(&s);
            int64_t lines = 0;
            if (!st && jsonl) {
                int fd = strcmp(jsonl, "-") ? open(jsonl, O_RDONLY | O_CLOEXEC) : 0;
                if (fd < 0) {
                    fprintf(stderr, "clipmod predict: --jsonl %s: cannot open: %s\n", jsonl, strerror(errno));
                    status = 1;   /* a data failure (docs/flags.md: exit codes) */
                    if (s.items) free(s.items);
                    goto done;
                }
                st = stream_fd(&s, fd, jsonl, max_wait, &lines);
                if (fd) close(fd);
            }
            for (int i = 0; s.items && i < s.k; i++) item_clear(&s.items[i]);
            free(s.items);
            if (st) { cli_fail("predict"); goto done; }
            if (s.scored + s.failed + s.malformed == 0) {
                fprintf(stderr, "clipmod predict: nothing to predict: --jsonl %s holds no pair\n", jsonl ? jsonl : "");
                status = 1;   /* zero samples where samples were expected: a data failure */
                goto done;
            }
            if (pred_out_close(&out, true)) { out_open = false; cli_fail("predict"); goto done; }
            out_open = false;
            /* a malformed line or an unreadable image is a data failure (exit 1), reported with counts */
            if (s.failed + s.malformed)
                fprintf(stderr, "clipmod predict: %lld of %lld pairs failed (%lld malformed lines)\n", (long long)(s.failed + s.malformed),
                        (long long)(s.scored + s.failed + s.malformed), (long long)s.malformed);
            status = s.failed + s.malformed ? 1 : 0;
            goto done;
        }
    }
    /* bulk */
    if (st) { status = cm_last_status() == CM_ERR_ARG ? 2 : 1; cli_fail("predict"); goto done; }
    if (bad) fprintf(stderr, "clipmod predict: %lld bad sample(s) skipped\n", (long long)bad);
    if (scored == 0) { fprintf(stderr, "clipmod predict: no sample could be scored\n"); goto done; }
    out_open = false;
    if (pred_out_close(&out, true)) { cli_fail("predict"); goto done; }
    status = 0;
done:
    if (out_open) pred_out_close(&out, false);
    for (int i = 0; i < n_items; i++) item_clear(&items[i]);
    free(items);
    scorer_free(&sc);
    cm_textenc_close(&te);
    if (m) cm_model_free(m);
    args_free(&images);
    args_free(&texts);
    args_free(&thresholds);
    return status;
}
