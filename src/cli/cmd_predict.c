/*
 * cmd_predict.c — `clipmod predict --model CKPT --image PATH --text STR` (pairs, repeatable) or
 * `--jsonl FILE` (one {"image": PATH, "text": STR} per line; "-" reads stdin) (DESIGN §7):
 * one JSON line per pair, in input order:
 *   {"label":"Hate","class":6,"probs":[7 floats]}
 * The checkpoint is a clipmod training checkpoint (a LoRA one is applied over its base model)
 * or a weights file with a classification head. Images go through the eval transform of the
 * model's image size (converted to RGB first, as in training); texts through the tokenizer the
 * checkpoint was trained with (BPE: --vocab or the default search; the demo's byte level).
 * A pair whose image cannot be read gives {"error":"..."} on its line, a warning with the counts at
 * the end, and exit status 1. A malformed or empty --jsonl is a data error (1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "data/image.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/textenc.h"

typedef struct { char *image, *text; } Pair;

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { fputc('\\', f); fputc(*p, f); }
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static char *xstrdup(const char *s) {
    char *d = malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* Read a JSONL file of {"image":..,"text":..} objects. */
static int read_jsonl(const char *path, Pair **pairs, int *n) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!strcmp(path, "-")) {
        size_t cap = 1 << 16;
        buf = malloc(cap);
        size_t k;
        while (buf && (k = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
            len += k;
            if (len + 1 >= cap) { cap *= 2; uint8_t *nb = realloc(buf, cap); if (!nb) { free(buf); buf = NULL; } else buf = nb; }
        }
        if (!buf) { fprintf(stderr, "clipmod predict: out of memory reading stdin\n"); return 1; }
        buf[len] = 0;
    } else if (cm_read_file(path, (size_t)1 << 30, &buf, &len)) {
        fprintf(stderr, "clipmod predict: --jsonl %s: %s\n", path, cm_last_error());
        return 1;
    }
    int line = 0;
    char *next = (char *)buf;
    while (next && *next) {
        char *l = next, *nl = strchr(l, '\n');
        if (nl) { *nl = 0; next = nl + 1; } else next = NULL;
        line++;
        while (*l == ' ' || *l == '\t' || *l == '\r') l++;
        if (!*l) continue;
        cJSON *j = cJSON_Parse(l);
        cJSON *im = j ? cJSON_GetObjectItem(j, "image") : NULL, *tx = j ? cJSON_GetObjectItem(j, "text") : NULL;
        if (!cJSON_IsString(im) || !cJSON_IsString(tx)) {
            fprintf(stderr, "clipmod predict: --jsonl %s line %d: expected {\"image\": PATH, \"text\": STR}\n", path, line);
            cJSON_Delete(j);
            if (strcmp(path, "-")) cm_free(buf); else free(buf);
            return 1;   /* a data error, not a usage error */
        }
        Pair *np = realloc(*pairs, sizeof **pairs * (*n + 1));
        if (!np) { cJSON_Delete(j); return 1; }
        *pairs = np;
        (*pairs)[*n].image = xstrdup(im->valuestring);
        (*pairs)[*n].text = xstrdup(tx->valuestring);
        (*n)++;
        cJSON_Delete(j);
    }
    if (strcmp(path, "-")) cm_free(buf); else free(buf);
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *jsonl = NULL, *vocab = NULL, *model_name = NULL;
    ArgList images = {0}, texts = {0};
    int batch = 16;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model, "CKPT", "clipmod checkpoint or weights file with a head (required)"),
        ARG("--image", ARG_LIST, &images, "PATH", "image of a pair (repeatable; pairs with --text in order)"),
        ARG("--text", ARG_LIST, &texts, "STR", "caption of a pair (repeatable)"),
        ARG("--model-name", ARG_STR, &model_name, "NAME|JSON", "config of a plain weights file (default: the checkpoint's, or open_clip_config.json beside the weights)",
            .check = args_check_model_name),
        ARG("--jsonl", ARG_STR, &jsonl, "FILE", "pairs as JSON lines {\"image\":..,\"text\":..} ('-': stdin)"),
        ARG("--vocab", ARG_STR, &vocab, "PATH", "BPE vocabulary (default: next to the model, $CLIPMOD_VOCAB, <prefix>/share/clipmod/)"),
        ARG("--batch-size", ARG_INT, &batch, "N", "pairs per forward pass (default 16)", ARG_RANGE(1, 4096)),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "predict",
                        "--model CKPT (--image PATH --text STR)... | --jsonl FILE", NULL);
    if (rc) { args_free(&images); args_free(&texts); return rc < 0 ? 0 : rc; }
    Pair *pairs = NULL;
    int n = 0, status = 0;
    long long nfail = 0;
    if (!model) { fprintf(stderr, "clipmod predict: --model is required\n"); status = 2; goto out; }
    if (images.n != texts.n) { fprintf(stderr, "clipmod predict: %d --image but %d --text: give them in pairs\n", images.n, texts.n); status = 2; goto out; }
    for (int i = 0; i < images.n; i++) {
        Pair *np = realloc(pairs, sizeof *pairs * (n + 1));
        if (!np) { status = 1; goto out; }
        pairs = np;
        pairs[n].image = xstrdup(images.v[i]);
        pairs[n].text = xstrdup(texts.v[i]);
        n++;
    }
    if (n == 0 && !jsonl) { fprintf(stderr, "clipmod predict: nothing to predict (give --image/--text pairs or --jsonl)\n"); status = 2; goto out; }
    if (jsonl && (status = read_jsonl(jsonl, &pairs, &n))) goto out;
    if (n == 0) {   /* --jsonl given but empty: the input had nothing where pairs were expected */
        fprintf(stderr, "clipmod predict: --jsonl %s holds no pair (expected {\"image\": PATH, \"text\": STR} lines)\n", jsonl);
        status = 1;
        goto out;
    }

    CmModel *m = NULL;
    CmCkptMeta meta;
    if (cm_model_open_any(model, model_name, &m, &meta)) { status = cli_fail("predict"); goto out; }
    if (!m->cfg.has_head) { fprintf(stderr, "clipmod predict: %s has no classification head\n", model); cm_model_free(m); status = 1; goto out; }
    CmTextEnc te;
    if (cm_textenc_open(&te, meta.tokenizer[0] ? meta.tokenizer : "bpe", vocab, model)) { cm_model_free(m); status = cli_fail("predict"); goto out; }
    const int S = m->cfg.vision.image_size, ctx = m->cfg.text.context_length, E = m->cfg.embed_dim, C = m->cfg.head.n_classes;
    float *img = cm_malloc((size_t)batch * 3 * S * S * 4, "predict batch"), *U = cm_malloc((size_t)batch * E * 4, "predict"),
          *V = cm_malloc((size_t)batch * E * 4, "predict"), *H = cm_malloc((size_t)batch * C * 4, "predict");
    int32_t *tok = cm_malloc((size_t)batch * ctx * 4, "predict batch");
    char **err = calloc((size_t)batch, sizeof *err);
    int *slot = calloc((size_t)batch, sizeof *slot);
    if (!img || !U || !V || !H || !tok || !err || !slot) { status = cli_fail("predict"); goto done; }
    for (int b0 = 0; b0 < n; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch, k = 0;
        for (int i = 0; i < nb; i++) {
            const Pair *p = &pairs[b0 + i];
            CmImage im = {0};
            free(err[i]); err[i] = NULL;
            cm_status st = cm_image_load(p->image, 0, &im);
            if (!st) st = cm_transform_eval(&im, S, &CM_CLIP_NORMALIZE, img + (size_t)k * 3 * S * S);
            cm_image_free(&im);
            if (!st) st = cm_textenc_encode(&te, p->text, strlen(p->text), tok + (size_t)k * ctx, ctx);
            if (st) { err[i] = xstrdup(cm_last_error()); slot[i] = -1; continue; }
            slot[i] = k++;
        }
        if (k && cm_model_forward(m, NULL, img, tok, k, false, U, V, H)) { status = cli_fail("predict"); goto done; }
        for (int i = 0; i < nb; i++) {
            if (slot[i] < 0) {
                fputs("{\"error\":", stdout);
                json_str(stdout, err[i] ? err[i] : "failed");
                fputs("}\n", stdout);
                if (++nfail <= CLI_MAX_LOGGED) fprintf(stderr, "clipmod predict: %s\n", err[i] ? err[i] : "failed");
                status = 1;
                continue;
            }
            const float *h = H + (size_t)slot[i] * C;
            double mx = h[0], se = 0;
            for (int c = 1; c < C; c++) if (h[c] > mx) mx = h[c];
            for (int c = 0; c < C; c++) se += exp(h[c] - mx);
            int top;
            cm_topk(h, C, 1, &top);
            printf("{\"label\":");
            json_str(stdout, cm_class_name(top) ? cm_class_name(top) : "?");
            printf(",\"class\":%d,\"probs\":[", top);
            for (int c = 0; c < C; c++) printf("%s%.7g", c ? "," : "", exp(h[c] - mx) / se);
            printf("]}\n");
        }
        fflush(stdout);
    }
    if (nfail)
        fprintf(stderr, "clipmod predict: warning: %lld of %d pairs failed%s\n", nfail, n,
                nfail > CLI_MAX_LOGGED ? " (only the first 50 were named)" : "");
done:
    for (int i = 0; err && i < batch; i++) free(err[i]);
    free(err); free(slot);
    cm_free(img); cm_free(U); cm_free(V); cm_free(H); cm_free(tok);
    cm_textenc_close(&te);
    cm_model_free(m);
out:
    for (int i = 0; i < n; i++) { free(pairs[i].image); free(pairs[i].text); }
    free(pairs);
    args_free(&images); args_free(&texts);
    return status;
}
