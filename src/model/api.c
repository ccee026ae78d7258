/*
 * api.c — the model part of the public API (include/clipmod.h): thin wrappers over model.h.
 */
#include "model/model.h"
#include "model/open.h"

#include <math.h>
#include <string.h>

clipmod_status clipmod_model_load(const char *path, const char *model_name, clipmod_model **out) {
    if (!path || !out) return cm_error(CM_ERR_ARG, "clipmod_model_load: path and out are required");
    CmOpenOptions o = {model_name, NULL, NULL};
    return cm_model_open(path, &o, out, NULL);
}

void clipmod_model_free(clipmod_model *m) { cm_model_free(m); }
int clipmod_model_embed_dim(const clipmod_model *m) { return m->cfg.embed_dim; }
int clipmod_model_image_size(const clipmod_model *m) { return m->cfg.vision.image_size; }
int clipmod_model_num_classes(const clipmod_model *m) { return m->cfg.has_head ? m->cfg.head.n_classes : 0; }

clipmod_status clipmod_encode_image(const clipmod_model *m, const float *images, int n, bool normalize, float *out) {
    return normalize ? cm_encode_image(m, images, n, NULL, out) : cm_encode_image(m, images, n, out, NULL);
}

clipmod_status clipmod_encode_text(const clipmod_model *m, const int32_t *tokens, int n, bool normalize, float *out) {
    return normalize ? cm_encode_text(m, tokens, n, NULL, out) : cm_encode_text(m, tokens, n, out, NULL);
}

clipmod_status clipmod_classify(const clipmod_model *m, const float *images, const int32_t *tokens, int n,
                                float *probs, float *logits) {
    if (!m->cfg.has_head) return cm_error(CM_ERR_ARG, "model %s has no classification head", m->cfg.name);
    if (n < 1 || !probs) return cm_error(CM_ERR_ARG, "clipmod_classify: n >= 1 and probs are required");
    size_t E = m->cfg.embed_dim, K = m->cfg.head.n_classes;
    float *U = cm_malloc((size_t)n * E * sizeof(float), "features");
    float *V = cm_malloc((size_t)n * E * sizeof(float), "features");
    float *L = cm_malloc((size_t)n * K * sizeof(float), "logits");
    cm_status st = (!U || !V || !L) ? CM_ERR_OOM : cm_model_forward(m, NULL, images, tokens, n, false, U, V, L);
    if (!st) {
        for (int i = 0; i < n; i++) {
            const float *l = L + (size_t)i * K;
            float mx = l[0], z = 0.0f;
            for (size_t k = 1; k < K; k++) if (l[k] > mx) mx = l[k];
            for (size_t k = 0; k < K; k++) z += expf(l[k] - mx);
            for (size_t k = 0; k < K; k++) probs[(size_t)i * K + k] = expf(l[k] - mx) / z;
        }
        if (logits) memcpy(logits, L, (size_t)n * K * sizeof(float));
    }
    cm_free(U);
    cm_free(V);
    cm_free(L);
    return st;
}
