/*
 * cmd_embed.c — `clipmod embed --model PATH [--model-name NAME] [--vocab PATH] [--image PATH]...
 * [--text STR]... [--raw]` (DESIGN §7): one JSON line per input, images first, then texts:
 *   {"type":"image"|"text","input":...,"embedding":[E floats]}
 * L2-normalised unless --raw (the projection output). The weights file may be an OpenCLIP
 * safetensors / open_clip_pytorch_model.bin / epoch_N.pt (config from --model-name, else
 * open_clip_config.json beside it, else shapes that are exactly a built-in config: cm_config_discover) or a clipmod checkpoint (config from its metadata). Images go through the eval
 * transform of the model's image size; texts through the CLIP tokenizer (--vocab, else the default
 * search of src/data/tokenizer.h).
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "data/image.h"
#include "data/tokenizer.h"
#include "io/tensorfile.h"
#include "model/model.h"
#include "train/checkpoint.h"

static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { putchar('\\'); putchar(*p); }
        else if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '\r') fputs("\\r", stdout);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static void print_line(const char *type, const char *input, const float *e, int E) {
    printf("{\"type\":\"%s\",\"input\":", type);
    json_string(input);
    printf(",\"embedding\":[");
    for (int i = 0; i < E; i++) printf("%s%.9g", i ? "," : "", (double)e[i]);
    printf("]}\n");
}

/* A clipmod checkpoint (metadata) or a plain weights file. */
static cm_status open_model(const char *path, const char *name, CmModel **m) {
    if (name) {
        CmModelConfig cfg;
        cm_status st = cm_config_load(name, &cfg);
        if (st) return cm_error_prefix("--model-name");
        return cm_model_from_file(path, &cfg, CM_LOAD_CLIP_ONLY_OK, 0, m);
    }
    CmTensorFile *f = NULL;
    cm_status st = cm_tensorfile_open(path, &f);
    if (st) return st;
    bool ckpt = cm_tensorfile_metadata(f, "clipmod_checkpoint") != NULL;
    cm_tensorfile_close(f);
    if (ckpt) return cm_checkpoint_open_model(path, m, NULL);
    return cm_model_from_file(path, NULL, CM_LOAD_CLIP_ONLY_OK, 0, m);
}

int cmd_embed(int argc, char **argv) {
    const char *model_path = NULL, *model_name = NULL, *vocab = NULL;
    ArgList images = {0}, texts = {0};
    bool raw = false;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model_path, "PATH", "weights: OpenCLIP safetensors/.bin/.pt or a clipmod checkpoint"),
        ARG("--model-name", ARG_STR, &model_name, "NAME", "config: ViT-B-32, ViT-B-16, ViT-L-14, *-quickgelu or a JSON file (default: from the file)",
            .check = args_check_model_name),
        ARG("--vocab", ARG_STR, &vocab, "PATH", "BPE merges (bpe_simple_vocab_16e6.txt.gz, merges.txt or a folder)"),
        ARG("--image", ARG_LIST, &images, "PATH", "an image to embed (repeatable)"),
        ARG("--text", ARG_LIST, &texts, "STR", "a text to embed (repeatable)"),
        ARG("--raw", ARG_FLAG, &raw, NULL, "print the unnormalised projection output"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "embed",
                        "--model PATH [--model-name NAME] [--vocab PATH] [--image PATH]... [--text STR]... [--raw]", NULL);
    if (rc == -1) return 0;
    if (rc) return rc;
    rc = 2;
    if (!model_path) { fprintf(stderr, "clipmod embed: --model is required\n"); goto out; }
    if (!images.n && !texts.n) { fprintf(stderr, "clipmod embed: nothing to embed (give --image and/or --text)\n"); goto out; }
    rc = 1;
    CmModel *m = NULL;
    if (open_model(model_path, model_name, &m)) { cli_fail("embed"); goto out; }
    int E = m->cfg.embed_dim, S = m->cfg.vision.image_size, T = m->cfg.text.context_length;
    float *feat = cm_malloc((size_t)(images.n > texts.n ? images.n : texts.n) * E * sizeof(float), "embeddings");
    if (!feat) { cli_fail("embed"); goto free_model; }
    if (images.n) {
        size_t isz = (size_t)3 * S * S;
        float *px = cm_malloc((size_t)images.n * isz * sizeof(float), "images");
        if (!px) { cli_fail("embed"); goto free_feat; }
        for (int i = 0; i < images.n; i++) {
            CmImage img;
            cm_status st = cm_image_load(images.v[i], 0, &img);
            if (!st) {
                st = cm_transform_eval(&img, S, &CM_CLIP_NORMALIZE, px + i * isz);
                cm_image_free(&img);
            }
            if (st) { cm_free(px); cli_fail("embed"); goto free_feat; }
        }
        cm_status st = raw ? cm_encode_image(m, px, images.n, feat, NULL) : cm_encode_image(m, px, images.n, NULL, feat);
        cm_free(px);
        if (st) { cli_fail("embed"); goto free_feat; }
        for (int i = 0; i < images.n; i++) print_line("image", images.v[i], feat + (size_t)i * E, E);
    }
    if (texts.n) {
        CmTokenizer *tok = NULL;
        if (cm_tokenizer_load(vocab, &tok)) { cli_fail("embed"); goto free_feat; }
        int32_t *ids = cm_malloc((size_t)texts.n * T * sizeof(int32_t), "token ids");
        cm_status st = ids ? CM_OK : CM_ERR_OOM;
        for (int i = 0; i < texts.n && !st; i++) st = cm_tokenize(tok, texts.v[i], strlen(texts.v[i]), ids + (size_t)i * T, T);
        if (!st) st = raw ? cm_encode_text(m, ids, texts.n, feat, NULL) : cm_encode_text(m, ids, texts.n, NULL, feat);
        cm_free(ids);
        cm_tokenizer_free(tok);
        if (st) { cli_fail("embed"); goto free_feat; }
        for (int i = 0; i < texts.n; i++) print_line("text", texts.v[i], feat + (size_t)i * E, E);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
free_feat:
    cm_free(feat);
free_model:
    cm_model_free(m);
out:
    args_free(&images);
    args_free(&texts);
    return rc;
}
