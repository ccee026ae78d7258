/*
 * batches_mem.c — the memory batch source (see batches.h): fixed tensors served in order, for
 * tests and the golden trajectories.
 */
#include "data/batches.h"

#include <string.h>

typedef struct {
    CmBatchSource base;
    float *images;
    int32_t *tokens, *labels;
    int n;
    bool drop_last;
    int64_t pos, served;     /* next sample index (wraps in training), batches served this epoch */
} MemSource;

static cm_status mem_start(CmBatchSource *s, int64_t epoch) {
    MemSource *m = (MemSource *)s;
    (void)epoch;
    m->pos = 0;
    m->served = 0;
    return CM_OK;
}

static cm_status mem_next(CmBatchSource *s, float *images, int32_t *tokens, int32_t *labels, int *got) {
    MemSource *m = (MemSource *)s;
    const size_t isz = (size_t)3 * s->image_size * s->image_size;
    *got = 0;
    if (m->drop_last) {
        if (m->served >= s->num_batches) return CM_OK;
        for (int i = 0; i < s->batch; i++) {
            int64_t k = m->pos % m->n;
            memcpy(images + (size_t)i * isz, m->images + (size_t)k * isz, isz * sizeof(float));
            memcpy(tokens + (size_t)i * s->ctx, m->tokens + (size_t)k * s->ctx, (size_t)s->ctx * sizeof(int32_t));
            labels[i] = m->labels[k];
            m->pos++;
        }
        m->served++;
        *got = s->batch;
        return CM_OK;
    }
    int b = 0;
    while (b < s->batch && m->pos < m->n) {
        int64_t k = m->pos++;
        memcpy(images + (size_t)b * isz, m->images + (size_t)k * isz, isz * sizeof(float));
        memcpy(tokens + (size_t)b * s->ctx, m->tokens + (size_t)k * s->ctx, (size_t)s->ctx * sizeof(int32_t));
        labels[b] = m->labels[k];
        b++;
    }
    *got = b;
    return CM_OK;
}

static void mem_close(CmBatchSource *s) {
    MemSource *m = (MemSource *)s;
    cm_free(m->images); cm_free(m->tokens); cm_free(m->labels);
    cm_free(m);
}

cm_status cm_batches_memory(const float *images, const int32_t *tokens, const int32_t *labels, int n,
                            int image_size, int ctx, int batch, bool drop_last, int64_t epoch_batches,
                            CmBatchSource **out) {
    *out = NULL;
    if (n < 1 || batch < 1 || image_size < 1 || ctx < 1)
        return cm_error(CM_ERR_ARG, "memory batches: bad sizes (n %d, batch %d, image %d, ctx %d)", n, batch, image_size, ctx);
    if (drop_last && n < batch) return cm_error(CM_ERR_ARG, "memory batches: %d samples are fewer than one batch of %d", n, batch);
    MemSource *m = cm_calloc(1, sizeof *m, "memory batches");
    if (!m) return CM_ERR_OOM;
    size_t isz = (size_t)3 * image_size * image_size;
    m->images = cm_malloc(isz * n * sizeof(float), "memory batches");
    m->tokens = cm_malloc((size_t)ctx * n * sizeof(int32_t), "memory batches");
    m->labels = cm_malloc((size_t)n * sizeof(int32_t), "memory batches");
    if (!m->images || !m->tokens || !m->labels) { mem_close(&m->base); return CM_ERR_OOM; }
    memcpy(m->images, images, isz * n * sizeof(float));
    memcpy(m->tokens, tokens, (size_t)ctx * n * sizeof(int32_t));
    memcpy(m->labels, labels, (size_t)n * sizeof(int32_t));
    m->n = n;
    m->drop_last = drop_last;
    m->base.start_epoch = mem_start;
    m->base.next = mem_next;
    m->base.close = mem_close;
    m->base.batch = batch;
    m->base.image_size = image_size;
    m->base.ctx = ctx;
    m->base.num_batches = drop_last ? (epoch_batches > 0 ? epoch_batches : n / batch) : 0;
    m->base.num_samples = drop_last ? m->base.num_batches * batch : n;
    *out = &m->base;
    return CM_OK;
}
