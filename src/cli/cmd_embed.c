/*
 * cmd_embed.c — `clipmod embed --model PATH [--model-name NAME] [--vocab PATH] [--image PATH]...
 * [--text STR]... [--raw]` (DESIGN §7): one JSON line per input, images first, then texts:
 *   {"type":"image"|"text","input":...,"embedding":[E floats]}
 * L2-normalised unless --raw (the projection output). The weights file may be an OpenCLIP
 * safetensors / open_clip_pytorch_model.bin / epoch_N.pt (config from --model-name, else
 * open_clip_config.json beside it, else shapes that are exactly a built-in config) or any clipmod
 * checkpoint, LoRA ones over their base (model/open.h; also a `clipmod export` folder). Images go
 * through the eval transform of the model's image size; texts through the tokenizer the model
 * needs: the byte-level one for byte-tokenizer checkpoints, else BPE (--vocab, else the default
 * search of src/data/tokenizer.h).
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/precision.h"
#include "common/common.h"
#include "data/image.h"
#include "data/textenc.h"
#include "model/model.h"
#include "model/open.h"

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

int cmd_embed(int argc, char **argv) {
    const char *model_path = NULL, *model_name = NULL, *vocab = NULL, *base_model = NULL, *cache_dir = NULL, *precision = "fp32";
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
        ARG("--precision", ARG_STR, &precision, "P", CLI_PRECISION_HELP),
        ARG("--base-model", ARG_STR, &base_model, "PATH", "base weights of a LoRA checkpoint (default: found by SHA-256, docs/open.md)"),
        ARG("--cache-dir", ARG_STR, &cache_dir, "DIR", "Hugging Face cache searched for the base (default $HF_HOME/hub, ...)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "embed",
                        "--model PATH [--model-name NAME] [--vocab PATH] [--image PATH]... [--text STR]... [--raw]", NULL);
    if (rc == -1) return 0;
    if (rc) return rc;
    rc = 2;
    if (!model_path) { fprintf(stderr, "clipmod embed: --model is required\n"); goto out; }
    if (!images.n && !texts.n) { fprintf(stderr, "clipmod embed: nothing to embed (give --image and/or --text)\n"); goto out; }
    if (cli_precision_check("embed", precision)) goto out;
    rc = 1;
    CmModel *m = NULL;
    CmModelInfo info;
    CmOpenOptions oo = {model_name, base_model, cache_dir};
    if (cm_model_open(model_path, &oo, &m, &info)) { cli_fail("embed"); goto out; }
    if ((rc = cli_apply_precision("embed", precision, &m))) goto free_model;
    rc = 1;
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
        CmTextEnc te;
        if (cm_textenc_open(&te, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", vocab, info.weights)) { cli_fail("embed"); goto free_feat; }
        int32_t *ids = cm_malloc((size_t)texts.n * T * sizeof(int32_t), "token ids");
        cm_status st = ids ? CM_OK : CM_ERR_OOM;
        for (int i = 0; i < texts.n && !st; i++) st = cm_textenc_encode(&te, texts.v[i], strlen(texts.v[i]), ids + (size_t)i * T, T);
        if (!st) st = raw ? cm_encode_text(m, ids, texts.n, feat, NULL) : cm_encode_text(m, ids, texts.n, NULL, feat);
        cm_free(ids);
        cm_textenc_close(&te);
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
