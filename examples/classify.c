/*
 * classify.c — an example program over the public C API only (include/clipmod.h): open any model
 * clipmod reads or writes (e.g. a LoRA checkpoint of `clipmod train --enable-lora`), classify
 * image+caption pairs and print one JSON line per pair, the format of `clipmod predict`:
 *   {"label":"Hate","class":6,"probs":[7 floats]}
 *
 *   classify MODEL [--vocab PATH] [--base-model PATH] IMAGE TEXT [IMAGE TEXT]...
 *
 * Build: cc -Iinclude examples/classify.c build/libclipmod.a <the libraries of the Makefile's LDLIBS>
 *    or: cc -Iinclude examples/classify.c -Lbuild -lclipmod   (the shared library)
 * `make` builds build/examples/classify.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clipmod.h"

static int fail(const char *what) {
    fprintf(stderr, "classify: %s: %s\n", what, clipmod_last_error());
    return 1;
}

static void print_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    clipmod_model_params mp = clipmod_model_default_params();
    const char *model_path = NULL;
    const char *pairs[256];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--vocab") && i + 1 < argc) mp.vocab_path = argv[++i];
        else if (!strcmp(argv[i], "--base-model") && i + 1 < argc) mp.base_model = argv[++i];
        else if (!model_path) model_path = argv[i];
        else if (n < 256) pairs[n++] = argv[i];
    }
    if (!model_path || n == 0 || n % 2) {
        fprintf(stderr, "usage: classify MODEL [--vocab PATH] [--base-model PATH] IMAGE TEXT [IMAGE TEXT]...\n");
        return 2;
    }
    clipmod_model *model;
    if (clipmod_model_load_with_params(model_path, mp, &model) != CLIPMOD_OK) return fail(model_path);
    int K = clipmod_model_num_classes(model), S = clipmod_model_image_size(model), T = clipmod_model_context_length(model);
    if (K == 0) { fprintf(stderr, "classify: %s has no classification head\n", model_path); clipmod_model_free(model); return 1; }
    fprintf(stderr, "classify: %s (%s tokenizer, %d classes)\n", model_path,
            clipmod_model_tokenizer(model) == CLIPMOD_TOKENIZER_BYTES ? "byte" : "BPE", K);

    clipmod_session_params sp = clipmod_session_default_params();
    sp.max_batch = 1;   /* one pair at a time: the buffers below are reused for every pair */
    clipmod_session *session;
    if (clipmod_session_init_with_params(model, sp, &session) != CLIPMOD_OK) { clipmod_model_free(model); return fail("session"); }
    float *pixels = malloc((size_t)3 * S * S * sizeof(float)), *probs = malloc((size_t)K * sizeof(float));
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    int status = pixels && probs && ids ? 0 : 1;
    for (int i = 0; i < n && !status; i += 2) {
        clipmod_image img;
        if (clipmod_image_load(pairs[i], &img) != CLIPMOD_OK) { status = fail(pairs[i]); break; }
        clipmod_status st = clipmod_model_preprocess(model, &img, pixels);
        clipmod_image_free(&img);
        if (st == CLIPMOD_OK) st = clipmod_model_tokenize(model, pairs[i + 1], strlen(pairs[i + 1]), ids);
        if (st == CLIPMOD_OK) st = clipmod_session_classify(session, pixels, ids, 1, probs, NULL);
        if (st != CLIPMOD_OK) { status = fail(pairs[i]); break; }
        int top = 0;
        for (int k = 1; k < K; k++) if (probs[k] > probs[top]) top = k;
        const char *name = clipmod_class_name(top);
        printf("{\"label\":");
        print_json_string(name ? name : "?");
        printf(",\"class\":%d,\"probs\":[", top);
        for (int k = 0; k < K; k++) printf("%s%.7g", k ? "," : "", (double)probs[k]);
        printf("]}\n");
    }
    free(pixels); free(probs); free(ids);
    clipmod_session_free(session);
    clipmod_model_free(model);
    return status;
}
