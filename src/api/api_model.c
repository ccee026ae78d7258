/*
 * api_model.c — the model and session part of the public API (include/clipmod.h): a model handle
 * over cm_model_open (model/open.h) that also knows its tokenizer, and sessions over the
 * inference workspace (model/infer.h). src/api sits above model, data and eval (it may include
 * them) and below the CLI.
 */
#include "clipmod.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#include "data/image.h"
#include "data/textenc.h"
#include "data/wds.h"
#include "model/infer.h"
#include "model/model.h"
#include "model/open.h"

struct clipmod_model {
    CmModel *m;
    CmModelInfo info;
    char vocab[4096];          /* params.vocab_path ("" = default search) */
    pthread_mutex_t mu;        /* guards the lazy tokenizer load */
    bool te_tried;
    cm_status te_status;
    char te_error[1024];
    CmTextEnc te;
};

struct clipmod_session {
    const clipmod_model *model;
    CmInfer *inf;
    int maxB;
    float *logits;             /* [maxB,K] */
};

clipmod_model_params clipmod_model_default_params(void) {
    clipmod_model_params p;
    memset(&p, 0, sizeof p);
    return p;
}

clipmod_status clipmod_model_load_with_params(const char *path, clipmod_model_params p, clipmod_model **out) {
    if (!path || !out) return cm_error(CM_ERR_ARG, "clipmod_model_load: path and out are required");
    *out = NULL;
    if (p.n_threads < 0) return cm_error(CM_ERR_ARG, "clipmod_model_load: n_threads %d < 0", p.n_threads);
    clipmod_model *h = cm_calloc(1, sizeof *h, "model handle");
    if (!h) return CM_ERR_OOM;
    if (p.vocab_path && strlen(p.vocab_path) >= sizeof h->vocab) {
        cm_free(h);
        return cm_error(CM_ERR_ARG, "clipmod_model_load: vocab_path too long");
    }
    snprintf(h->vocab, sizeof h->vocab, "%s", p.vocab_path ? p.vocab_path : "");
    if (p.n_threads > 0) cm_threads_set(p.n_threads);
    CmOpenOptions o = {p.model_name, p.base_model, p.cache_dir};
    cm_status st = cm_model_open(path, &o, &h->m, &h->info);
    if (st) { cm_free(h); return st; }
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return CM_OK;
}

clipmod_status clipmod_model_load(const char *path, const char *model_name, clipmod_model **out) {
    clipmod_model_params p = clipmod_model_default_params();
    p.model_name = model_name;
    return clipmod_model_load_with_params(path, p, out);
}

void clipmod_model_free(clipmod_model *h) {
    if (!h) return;
    cm_textenc_close(&h->te);
    pthread_mutex_destroy(&h->mu);
    cm_model_free(h->m);
    cm_free(h);
}

int clipmod_model_embed_dim(const clipmod_model *h) { return h->m->cfg.embed_dim; }
int clipmod_model_image_size(const clipmod_model *h) { return h->m->cfg.vision.image_size; }
int clipmod_model_num_classes(const clipmod_model *h) { return h->m->cfg.has_head ? h->m->cfg.head.n_classes : 0; }
int clipmod_model_context_length(const clipmod_model *h) { return h->m->cfg.text.context_length; }
const char *clipmod_class_name(int c) { return c >= 0 && c < 7 ? CM_CLASS_NAMES[c] : NULL; }

clipmod_tokenizer_kind clipmod_model_tokenizer(const clipmod_model *h) {
    return h->info.tokenizer == CM_TOKENIZER_BYTES ? CLIPMOD_TOKENIZER_BYTES : CLIPMOD_TOKENIZER_BPE;
}

clipmod_status clipmod_model_tokenize(const clipmod_model *hc, const char *text, size_t len, int32_t *ids) {
    if (!hc || !text || !ids) return cm_error(CM_ERR_ARG, "clipmod_model_tokenize: model, text and ids are required");
    clipmod_model *h = (clipmod_model *)hc;   /* the lazy tokenizer is the only mutable part, under mu */
    pthread_mutex_lock(&h->mu);
    if (!h->te_tried) {
        h->te_tried = true;
        h->te_status = cm_textenc_open(&h->te, h->info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe",
                                       h->vocab[0] ? h->vocab : NULL, h->info.weights);
        if (h->te_status) snprintf(h->te_error, sizeof h->te_error, "%s", cm_last_error());
    }
    cm_status st = h->te_status;
    pthread_mutex_unlock(&h->mu);
    if (st) return cm_error(st, "%s", h->te_error);
    return cm_textenc_encode(&h->te, text, len, ids, h->m->cfg.text.context_length);
}

clipmod_status clipmod_model_preprocess(const clipmod_model *h, const clipmod_image *img, float *out) {
    if (!h || !img || !img->rgb || !out) return cm_error(CM_ERR_ARG, "clipmod_model_preprocess: model, image and out are required");
    CmImage im = {img->width, img->height, img->rgb};
    return cm_transform_eval(&im, h->m->cfg.vision.image_size, &CM_CLIP_NORMALIZE, out);
}

clipmod_status clipmod_encode_image(const clipmod_model *h, const float *images, int n, bool normalize, float *out) {
    return normalize ? cm_encode_image(h->m, images, n, NULL, out) : cm_encode_image(h->m, images, n, out, NULL);
}

clipmod_status clipmod_encode_text(const clipmod_model *h, const int32_t *tokens, int n, bool normalize, float *out) {
    return normalize ? cm_encode_text(h->m, tokens, n, NULL, out) : cm_encode_text(h->m, tokens, n, out, NULL);
}

/* probs[n,K] from logits, in double (the numbers `clipmod predict` prints). */
static void softmax_rows(const float *L, int n, int K, float *probs) {
    for (int i = 0; i < n; i++) cm_class_probs(L + (size_t)i * K, K, NULL, probs + (size_t)i * K);
}

clipmod_status clipmod_classify(const clipmod_model *h, const float *images, const int32_t *tokens, int n,
                                float *probs, float *logits) {
    if (!h) return cm_error(CM_ERR_ARG, "clipmod_classify: no model");
    clipmod_session_params sp = clipmod_session_default_params();
    sp.max_batch = n >= 1 && n < 32 ? n : 32;
    clipmod_session *s;
    cm_status st = clipmod_session_init_with_params(h, sp, &s);
    if (st) return st;
    st = clipmod_session_classify(s, images, tokens, n, probs, logits);
    clipmod_session_free(s);
    return st;
}

// ---------------------------------------------------------------------------------------------
// sessions

clipmod_session_params clipmod_session_default_params(void) {
    clipmod_session_params p;
    memset(&p, 0, sizeof p);
    p.max_batch = 16;
    return p;
}

clipmod_status clipmod_session_init_with_params(const clipmod_model *h, clipmod_session_params p, clipmod_session **out) {
    if (!h || !out) return cm_error(CM_ERR_ARG, "clipmod_session_init: model and out are required");
    *out = NULL;
    clipmod_session *s = cm_calloc(1, sizeof *s, "session");
    if (!s) return CM_ERR_OOM;
    s->model = h;
    s->maxB = p.max_batch;
    cm_status st = cm_infer_create(h->m, p.max_batch, &s->inf);
    if (!st && h->m->cfg.has_head) {
        s->logits = cm_malloc((size_t)p.max_batch * h->m->cfg.head.n_classes * sizeof(float), "session logits");
        if (!s->logits) st = CM_ERR_OOM;
    }
    if (st) { clipmod_session_free(s); return st; }
    *out = s;
    return CM_OK;
}

void clipmod_session_free(clipmod_session *s) {
    if (!s) return;
    cm_infer_free(s->inf);
    cm_free(s->logits);
    cm_free(s);
}

clipmod_status clipmod_session_encode_image(clipmod_session *s, const float *images, int n, bool normalize, float *out) {
    if (!s || !out) return cm_error(CM_ERR_ARG, "clipmod_session_encode_image: session and out are required");
    return normalize ? cm_infer_encode_image(s->inf, images, n, NULL, out) : cm_infer_encode_image(s->inf, images, n, out, NULL);
}

clipmod_status clipmod_session_encode_text(clipmod_session *s, const int32_t *tokens, int n, bool normalize, float *out) {
    if (!s || !out) return cm_error(CM_ERR_ARG, "clipmod_session_encode_text: session and out are required");
    return normalize ? cm_infer_encode_text(s->inf, tokens, n, NULL, out) : cm_infer_encode_text(s->inf, tokens, n, out, NULL);
}

clipmod_status clipmod_session_classify(clipmod_session *s, const float *images, const int32_t *tokens, int n,
                                        float *probs, float *logits) {
    if (!s || !probs || n < 1) return cm_error(CM_ERR_ARG, "clipmod_classify: a session, n >= 1 and probs are required");
    const CmModel *m = s->model->m;
    if (!m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", m->cfg.name);
    int K = m->cfg.head.n_classes, S = m->cfg.vision.image_size, T = m->cfg.text.context_length;
    for (int b0 = 0; b0 < n; b0 += s->maxB) {
        int nb = n - b0 < s->maxB ? n - b0 : s->maxB;
        cm_status st = cm_infer_classify(s->inf, images + (size_t)b0 * 3 * S * S, tokens + (size_t)b0 * T, nb, s->logits, NULL, NULL);
        if (st) return st;
        softmax_rows(s->logits, nb, K, probs + (size_t)b0 * K);
        if (logits) memcpy(logits + (size_t)b0 * K, s->logits, (size_t)nb * K * sizeof(float));
    }
    return CM_OK;
}
