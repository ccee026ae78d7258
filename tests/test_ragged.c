/*
 * test_ragged.c — packed (ragged) text batches: every caption runs only up to its own EOT.
 *   - the varlen attention kernel against the double-precision reference run on each sequence
 *     alone (forward probabilities and outputs, backward dqkv), causal and not, lengths 1..T;
 *   - the text tower packed vs padded ([B, longest]) on a small random model: features, and every
 *     gradient in LoRA and full mode, with and without gradient checkpointing, in fp32; features
 *     in bf16 (amp);
 *   - inference (cm_encode_text) and training forward give the same features.
 * Tolerances: fp32 results are compared against a double evaluation with c * sqrt(n) * eps * scale
 * (n = the longest dot product); packed vs padded differ only in the row count handed to the
 * GEMMs (other blockings, other summation orders), so they must agree to fp32 rounding of a
 * two-layer network: 1e-5 of each tensor's largest value for features and 1e-4 for gradients
 * (the project's feature and gradient bars). bf16: each product rounds its inputs to 8 bits, and
 * a rounding that flips between the two paths moves one element by up to 2^-8 relative: 2e-2.
 * No ../shared needed.
 */
#include <float.h>
#include <math.h>
#include <string.h>
#include "testlib.h"
#include "common/rng.h"
#include "kernels/ops.h"
#include "kernels/kernels_internal.h"
#include "kernel_lab/ref_ops.h"
#include "model/model.h"
#include "model/infer.h"

// ---------------------------------------------------------------------------------------------
// kernel: varlen attention == per-sequence reference

static void varlen_case(int C, int NH, bool causal) {
    enum { B = 6, T = 77 };
    const int lens[B] = {1, 77, 13, 2, 40, 77};
    int off[B + 1];
    int64_t aoff[B + 1];
    off[0] = 0; aoff[0] = 0;
    for (int b = 0; b < B; b++) { off[b + 1] = off[b] + lens[b]; aoff[b + 1] = aoff[b] + (int64_t)NH * lens[b] * lens[b]; }
    int M = off[B], C3 = 3 * C, hs = C / NH;
    float *qkv = cm_malloc((size_t)M * C3 * 4, "qkv"), *out = cm_malloc((size_t)M * C * 4, "out");
    float *att = cm_malloc((size_t)aoff[B] * 4, "att"), *dout = cm_malloc((size_t)M * C * 4, "dout");
    float *dqkv = cm_calloc((size_t)M * C3, 4, "dqkv");
    float *rout = cm_malloc((size_t)T * C * 4, "rout"), *ratt = cm_malloc((size_t)NH * T * T * 4, "ratt");
    float *rdqkv = cm_malloc((size_t)T * C3 * 4, "rdqkv");
    REQUIRE(qkv && out && att && dout && dqkv && rout && ratt && rdqkv, "alloc");
    CmRng r;
    cm_rng_seed(&r, 7);
    for (size_t i = 0; i < (size_t)M * C3; i++) qkv[i] = (float)cm_rng_normal(&r);
    for (size_t i = 0; i < (size_t)M * C; i++) dout[i] = (float)cm_rng_normal(&r);
    cm_attention_forward_varlen(out, att, qkv, off, aoff, B, C, NH, causal);
    cm_attention_backward_varlen(dqkv, dout, qkv, att, off, aoff, B, C, NH, causal);
    /* |q.k| for unit-variance inputs is O(sqrt(hs)); scores are scaled by 1/sqrt(hs): the softmax
       arguments are O(1) with rounding ~ sqrt(hs) eps; outputs are convex combinations of v (O(1)
       entries, up to ~4): tolerance 8 sqrt(max(hs, T)) eps x 4. dqkv sums over up to T keys of
       products of O(1) terms times the probabilities' sensitivity: scale by sqrt(T) more. */
    double eps = FLT_EPSILON, tol_f = 32.0 * sqrt((double)(hs > T ? hs : T)) * eps;
    double tol_b = tol_f * sqrt((double)T) * 4.0;
    double worst_o = 0, worst_a = 0, worst_g = 0;
    for (int b = 0; b < B; b++) {
        int L = lens[b];
        memset(rdqkv, 0, (size_t)L * C3 * 4);
        cm_attention_forward_ref(rout, ratt, qkv + (size_t)off[b] * C3, 1, L, C, NH, causal);
        cm_attention_backward_ref(rdqkv, dout + (size_t)off[b] * C, qkv + (size_t)off[b] * C3, ratt, 1, L, C, NH, causal);
        double d = tl_max_abs_diff(out + (size_t)off[b] * C, rout, (size_t)L * C);
        double da = tl_max_abs_diff(att + aoff[b], ratt, (size_t)NH * L * L);
        double dg = tl_max_abs_diff(dqkv + (size_t)off[b] * C3, rdqkv, (size_t)L * C3);
        CHECK(d <= tol_f * 4 && da <= tol_f && dg <= tol_b,
              "C=%d NH=%d causal=%d seq %d (L=%d): out %.3g att %.3g dqkv %.3g (tol %.3g / %.3g / %.3g)", C, NH, causal, b, L,
              d, da, dg, tol_f * 4, tol_f, tol_b);
        if (d > worst_o) worst_o = d;
        if (da > worst_a) worst_a = da;
        if (dg > worst_g) worst_g = dg;
    }
    fprintf(stderr, "    varlen C=%d NH=%d causal=%d: worst out %.2e att %.2e dqkv %.2e\n", C, NH, causal, worst_o, worst_a, worst_g);
    cm_free(qkv); cm_free(out); cm_free(att); cm_free(dout); cm_free(dqkv); cm_free(rout); cm_free(ratt); cm_free(rdqkv);
}

static void test_varlen_attention(void) {
    varlen_case(64, 2, true);     /* hs 32 (the tiny text tower) */
    varlen_case(128, 2, true);    /* hs 64 (every ViT text tower) */
    varlen_case(128, 2, false);
    varlen_case(512, 2, true);    /* hs 256: the plain loops (the vectorised path takes hs 32, 64, 128) */
    varlen_case(256, 2, false);   /* hs 128 */
    varlen_case(96, 2, true);     /* hs 48: plain loops */
}

static void test_embedding_rows(void) {
    enum { V = 50, C = 8, T = 6 };
    float table[V * C], pos[T * C], out[5 * C], want[5 * C], dtab[V * C] = {0}, dpos[T * C] = {0};
    float dtab_w[V * C] = {0}, dpos_w[T * C] = {0}, dout[5 * C];
    int32_t ids[5] = {3, 49, 3, 0, 7}, rp[5] = {0, 1, 2, 0, 5};
    for (int i = 0; i < V * C; i++) table[i] = (float)i * 0.25f;
    for (int i = 0; i < T * C; i++) pos[i] = (float)i * -0.5f;
    for (int i = 0; i < 5 * C; i++) dout[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < C; c++) {
            want[i * C + c] = table[ids[i] * C + c] + pos[rp[i] * C + c];
            dtab_w[ids[i] * C + c] += dout[i * C + c];
            dpos_w[rp[i] * C + c] += dout[i * C + c];
        }
    cm_embedding_forward_rows(out, ids, rp, table, pos, 5, C);
    cm_embedding_backward_rows(dtab, dpos, dout, ids, rp, 5, C);
    CHECK(memcmp(out, want, sizeof out) == 0, "embedding rows forward");
    CHECK(memcmp(dtab, dtab_w, sizeof dtab) == 0 && memcmp(dpos, dpos_w, sizeof dpos) == 0, "embedding rows backward");
}

// ---------------------------------------------------------------------------------------------
// model: packed vs padded

static const char *TINY =
    "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {\"image_size\": 64, \"layers\": 2, \"width\": 64, "
    "\"patch_size\": 16, \"head_width\": 32}, \"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, "
    "\"width\": 64, \"heads\": 2, \"layers\": 2}}, \"lora\": {\"r\": 4, \"alpha\": 32}, "
    "\"head\": {\"d\": 32, \"heads\": 4, \"ff\": 128, \"layers\": 2, \"classes\": 7}}";

enum { NB = 9 };
static const int g_lens[NB] = {1, 77, 5, 12, 2, 30, 77, 9, 3};   /* tokens up to and incl. EOT */

static CmModel *tiny_model(void) {
    CmModelConfig c;
    if (cm_config_from_json(TINY, strlen(TINY), "tiny", &c)) return NULL;
    c.has_lora = true;
    c.has_head = true;
    CmModel *m = NULL;
    if (cm_model_create(&c, &m)) return NULL;
    cm_model_init(m, 3);
    cm_model_init_lora_head(m, 4);
    /* LoRA B is 0 at init: give it values so the adapters' gradients are not trivially 0 */
    CmRng r;
    cm_rng_seed(&r, 5);
    for (int i = 0; i < m->n_params; i++)
        if (strstr(m->params[i].name, "lora_B"))
            for (size_t k = 0; k < (size_t)m->params[i].numel; k++) m->params[i].data[k] = (float)(0.05 * cm_rng_normal(&r));
    return m;
}

static void make_tokens(int32_t *tok) {
    CmRng r;
    cm_rng_seed(&r, 11);
    memset(tok, 0, sizeof(int32_t) * NB * 77);
    for (int b = 0; b < NB; b++) {
        int L = g_lens[b];
        int32_t *t = tok + b * 77;
        if (L > 1) t[0] = 49406;
        for (int i = 1; i < L - 1; i++) t[i] = (int32_t)cm_rng_below(&r, 49000);
        t[L - 1] = 49407;
    }
}

/* NB random images [NB,3,64,64] (cm_malloc'd; NULL when out of memory) */
static float *make_images(uint64_t seed) {
    float *img = cm_malloc((size_t)NB * 3 * 64 * 64 * 4, "images");
    if (!img) return NULL;
    CmRng r;
    cm_rng_seed(&r, seed);
    for (int i = 0; i < NB * 3 * 64 * 64; i++) img[i] = (float)cm_rng_normal(&r);
    return img;
}

static void test_features_packed_vs_padded(void) {
    CmModel *m = tiny_model();
    REQUIRE(m, "model: %s", cm_last_error());
    int32_t tok[NB * 77];
    make_tokens(tok);
    float fp[NB * 32], fq[NB * 32], rp[NB * 32], rq[NB * 32];
    for (int amp = 0; amp <= 1; amp++) {
        cm_model_set_amp(m, amp);
        cm_model_set_text_padding(m, false);
        REQ_OK(cm_encode_text(m, tok, NB, rp, fp));
        cm_model_set_text_padding(m, true);
        REQ_OK(cm_encode_text(m, tok, NB, rq, fq));
        double rel = amp ? 2e-2 : 1e-5;
        double d = tl_max_abs_diff(fp, fq, NB * 32), mx = tl_max_abs(fq, NB * 32);
        double dr = tl_max_abs_diff(rp, rq, NB * 32), mr = tl_max_abs(rq, NB * 32);
        CHECK(d <= rel * mx && dr <= rel * mr, "%s: features packed vs padded max diff %.3g (raw %.3g), tol %.3g x max",
              amp ? "amp" : "fp32", d, dr, rel);
        fprintf(stderr, "    %s features packed vs padded: %.2e of max (raw %.2e)\n", amp ? "amp " : "fp32", d / mx, dr / mr);
        /* every row is a unit vector and its own caption's: a row mix-up would show as cosine << 1 */
        for (int b = 0; b < NB; b++) {
            double dot = 0;
            for (int e = 0; e < 32; e++) dot += (double)fp[b * 32 + e] * fq[b * 32 + e];
            CHECK(dot > 1 - (amp ? 1e-3 : 1e-6), "%s sample %d (length %d): cosine %.8f", amp ? "amp" : "fp32", b, g_lens[b], dot);
        }
    }
    cm_model_set_amp(m, false);
    cm_model_free(m);
}

/* one forward + loss + backward on activations a; grads into m's gradient buffers */
static int step_on(CmModel *m, CmActs *a, const float *img, const int32_t *tok, const int32_t *lab, float *V) {
    float U[NB * 32], dU[NB * 32], dV[NB * 32], hl[NB * 7], dh[NB * 7];
    cm_model_zero_grad(m);
    return cm_model_forward(m, a, img, tok, NB, false, U, V, hl) ||
           cm_loss(U, V, hl, lab, NB, 32, 7, m->logit_scale.data[0], 1, 1, NULL, dU, dV, dh, NULL) ||
           cm_model_backward(m, a, dU, dV, dh);
}

static int step(CmModel *m, bool ckpt, const float *img, const int32_t *tok, const int32_t *lab, float *V) {
    CmActs *a = NULL;
    if (cm_acts_create(m, NB, ckpt, &a)) return 1;
    int rc = step_on(m, a, img, tok, lab, V);
    cm_acts_free(a);
    return rc;
}

static void grads_case(CmTrainMode mode, bool ckpt) {
    CmModel *m = tiny_model(), *q = tiny_model();
    REQUIRE(m && q, "model: %s", cm_last_error());
    REQ_OK(cm_model_set_mode(m, mode, false, false));
    REQ_OK(cm_model_set_mode(q, mode, false, false));
    cm_model_set_text_padding(q, true);
    int32_t tok[NB * 77], lab[NB] = {0, 6, 1, 0, 4, 2, 0, 5, 0};
    make_tokens(tok);
    float *img = make_images(13);
    REQUIRE(img, "alloc");
    float Vp[NB * 32], Vq[NB * 32];
    REQ_OK(step(m, ckpt, img, tok, lab, Vp));
    REQ_OK(step(q, ckpt, img, tok, lab, Vq));
    CHECK(tl_max_abs_diff(Vp, Vq, NB * 32) <= 1e-5 * tl_max_abs(Vq, NB * 32), "training-forward features differ");
    int n = 0, ntext = 0;
    double worst = 0;
    for (int i = 0; i < m->n_params; i++) {
        const CmParam *p = &m->params[i], *pq = &q->params[i];
        if (!p->grad) continue;
        double mx = tl_max_abs(pq->grad, p->numel), d = tl_max_abs_diff(p->grad, pq->grad, p->numel);
        CHECK(d <= 1e-4 * mx + 1e-30, "%s%s: %s packed vs padded max diff %.3g > 1e-4 x %.3g", mode == CM_TRAIN_LORA ? "lora" : "full",
              ckpt ? " ckpt" : "", p->name, d, mx);
        if (mx > 0 && d / mx > worst) worst = d / mx;
        if (p->group == CM_GROUP_TEXT || (p->group == CM_GROUP_LORA && strstr(p->name, "visual") == NULL)) ntext += mx > 0;
        n++;
    }
    CHECK(ntext > 0, "no non-zero text-tower gradient was compared");
    fprintf(stderr, "    %s%s: %d gradients (%d text, non-zero), packed vs padded worst %.2e of max\n",
            mode == CM_TRAIN_LORA ? "lora" : "full", ckpt ? " ckpt" : "", n, ntext, worst);
    cm_free(img);
    cm_model_free(m);
    cm_model_free(q);
}

/* cm_model_set_text_padding after cm_acts_create takes effect at the next forward (bench_text_ragged
   times both layouts on one CmActs; it used to keep the layout of the creation, so its "packed vs
   padded" step compared padded with padded): bit-identical to activations created in that layout. */
static void test_padding_toggle_same_acts(void) {
    CmModel *m = tiny_model();
    REQUIRE(m, "model: %s", cm_last_error());
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    int32_t tok[NB * 77], lab[NB] = {0, 6, 1, 0, 4, 2, 0, 5, 0};
    make_tokens(tok);
    float *img = cm_malloc((size_t)NB * 3 * 64 * 64 * 4, "images");
    size_t ng = m->n_grad_floats;
    float *g[4] = {cm_malloc(ng * 4, "g"), cm_malloc(ng * 4, "g"), cm_malloc(ng * 4, "g"), cm_malloc(ng * 4, "g")};
    REQUIRE(img && g[0] && g[1] && g[2] && g[3], "alloc");
    CmRng r;
    cm_rng_seed(&r, 13);
    for (int i = 0; i < NB * 3 * 64 * 64; i++) img[i] = (float)cm_rng_normal(&r);
    float V[4][NB * 32];
    /* fresh activations in each layout: the references */
    for (int padded = 0; padded <= 1; padded++) {
        cm_model_set_text_padding(m, padded);
        REQ_OK(step(m, false, img, tok, lab, V[padded]));
        memcpy(g[padded], m->grad_arena, ng * 4);
    }
    CHECK(memcmp(g[0], g[1], ng * 4) != 0, "packed and padded gradients are bit-identical: this test cannot tell them apart");
    /* one CmActs, created packed, then padded, packed */
    cm_model_set_text_padding(m, false);
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, NB, false, &a));
    for (int k = 0; k < 2; k++) {
        bool padded = k == 0;
        cm_model_set_text_padding(m, padded);
        REQ_OK(step_on(m, a, img, tok, lab, V[2 + k]));
        memcpy(g[2 + k], m->grad_arena, ng * 4);
        CHECK(!memcmp(g[2 + k], g[padded], ng * 4) && !memcmp(V[2 + k], V[padded], sizeof V[0]),
              "set_text_padding(%d) after cm_acts_create: the step differs from fresh activations in that layout", padded);
    }
    cm_acts_free(a);
    /* the same for an inference session created before the call */
    CmInfer *ses = NULL;
    cm_model_set_text_padding(m, false);
    REQ_OK(cm_infer_create(m, NB, &ses));
    for (int padded = 1; padded >= 0; padded--) {
        float fs[NB * 32], ff[NB * 32];
        cm_model_set_text_padding(m, padded);
        REQ_OK(cm_infer_encode_text(ses, tok, NB, NULL, fs));
        REQ_OK(cm_encode_text(m, tok, NB, NULL, ff));
        CHECK(!memcmp(fs, ff, sizeof fs), "set_text_padding(%d) after cm_infer_create: features differ from a fresh session's", padded);
    }
    cm_infer_free(ses);
    for (int i = 0; i < 4; i++) cm_free(g[i]);
    cm_free(img);
    cm_model_free(m);
}

/* Planning creates every oneDNN primitive a step needs (bf16 linears in row chunks, the padded
   vision attention in batch chunks): an amp LoRA step on packed captions and then on a short last
   batch (4 of 9 planned samples), and int8 inference, create nothing at run time. */
static void test_nothing_created_at_run(void) {
    CmModel *m = tiny_model();
    REQUIRE(m, "model: %s", cm_last_error());
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    cm_model_set_amp(m, true);
    int32_t tok[NB * 77], lab[NB] = {0, 6, 1, 0, 4, 2, 0, 5, 0};
    make_tokens(tok);
    float *img = make_images(17);
    REQUIRE(img, "alloc");
    CmActs *a = NULL;
    REQ_OK(cm_acts_create(m, NB, false, &a));   /* planning */
    size_t created = cm_mm_created_at_run();
    float U[NB * 32], V[NB * 32], dU[NB * 32], dV[NB * 32], hl[NB * 7], dh[NB * 7];
    const int batches[2] = {NB, 4};
    for (int i = 0; i < 2; i++) {
        int B = batches[i];
        cm_model_zero_grad(m);
        REQ_OK(cm_model_forward(m, a, img, tok, B, true, U, V, hl));
        REQ_OK(cm_loss(U, V, hl, lab, B, 32, 7, m->logit_scale.data[0], 1, 1, NULL, dU, dV, dh, NULL));
        REQ_OK(cm_model_backward(m, a, dU, dV, dh));
        CHECK(cm_mm_created_at_run() == created, "amp step on %d of %d planned samples: %zu primitives created at run time",
              B, NB, cm_mm_created_at_run() - created);
    }
    cm_acts_free(a);
    cm_model_set_amp(m, false);
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_NONE, false, false));
    REQ_OK(cm_model_set_int8(m, true));
    created = cm_mm_created_at_run();
    REQ_OK(cm_encode_text(m, tok, NB, NULL, V));
    REQ_OK(cm_encode_text(m, tok + 2 * 77, 3, NULL, V));
    REQ_OK(cm_encode_image(m, img, 2, NULL, U));
    CHECK(cm_mm_created_at_run() == created, "int8 inference: %zu primitives created at run time",
          cm_mm_created_at_run() - created);
    cm_free(img);
    cm_model_free(m);
}

static void test_grads_lora(void) { grads_case(CM_TRAIN_LORA, false); }
static void test_grads_full(void) { grads_case(CM_TRAIN_FULL, false); }
static void test_grads_full_ckpt(void) { grads_case(CM_TRAIN_FULL, true); }

int main(void) {
    RUN(test_varlen_attention);
    RUN(test_embedding_rows);
    RUN(test_features_packed_vs_padded);
    RUN(test_grads_lora);
    RUN(test_padding_toggle_same_acts);
    RUN(test_nothing_created_at_run);
    RUN(test_grads_full);
    RUN(test_grads_full_ckpt);
    return tl_summary("test_ragged");
}
