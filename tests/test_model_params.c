/*
 * test_model_params.c — the named parameter structs (issue 8 item 3): CmModel.logit_scale,
 * .visual / .text (CmTowerParams: stem, blocks[], ln_post / ln_final, proj) and .head
 * (CmHeadParams) name every tensor of the parameter table exactly once, each ref under its
 * OpenCLIP name with the table's data pointer; absent tensors (LoRA or head off, the other tower's
 * stem) are idx -1 with NULL pointers; after every cm_model_set_mode (each training mode, the
 * tower locks) each ref's grad is its table entry's, non-NULL exactly when trainable. Tiny
 * configs built in the test; no ../shared data is needed.
 */
#include "testlib.h"
#include "model/model.h"

static const char *CFG_JSON =
    "{\"model_name\": \"params-test\", \"model_cfg\": {\"embed_dim\": 16, \"quick_gelu\": false,"
    " \"vision_cfg\": {\"image_size\": 32, \"layers\": 3, \"width\": 32, \"patch_size\": 16, \"head_width\": 16, \"mlp_ratio\": 2.0},"
    " \"text_cfg\": {\"context_length\": 8, \"vocab_size\": 50, \"width\": 32, \"heads\": 2, \"layers\": 2, \"mlp_ratio\": 2.0}},"
    " \"lora\": {\"r\": 2, \"alpha\": 4.0},"
    " \"head\": {\"d\": 16, \"heads\": 2, \"ff\": 32, \"layers\": 2, \"classes\": 7}}";

/* Every ref of the model with the name it must carry (NULL: must be absent). */
typedef struct { const CmTensorRef *r; char name[128]; } Named;
enum { MAX_NAMED = 512 };

static int add(Named *v, int n, const CmTensorRef *r, const char *fmt, const char *prefix, int l) {
    CM_ASSERT(n < MAX_NAMED);
    v[n].r = r;
    if (fmt) snprintf(v[n].name, sizeof v[n].name, fmt, prefix, l);
    else v[n].name[0] = 0;
    return n + 1;
}

static int collect(const CmModel *m, Named *v) {
    const CmModelConfig *c = &m->cfg;
    int n = 0;
    n = add(v, n, &m->logit_scale, "%slogit_scale", "", 0);
    const CmTowerParams *tw[2] = {&m->visual, &m->text};
    for (int k = 0; k < 2; k++) {
        const CmTowerParams *t = tw[k];
        const char *p = k ? "" : "visual.";
        bool vis = k == 0;
        n = add(v, n, &t->class_emb, vis ? "%sclass_embedding" : NULL, p, 0);
        n = add(v, n, &t->pos, "%spositional_embedding", p, 0);
        n = add(v, n, &t->conv, vis ? "%sconv1.weight" : NULL, p, 0);
        n = add(v, n, &t->ln_pre_w, vis ? "%sln_pre.weight" : NULL, p, 0);
        n = add(v, n, &t->ln_pre_b, vis ? "%sln_pre.bias" : NULL, p, 0);
        n = add(v, n, &t->tok, vis ? NULL : "%stoken_embedding.weight", p, 0);
        n = add(v, n, &t->ln_post_w, vis ? "%sln_post.weight" : "%sln_final.weight", p, 0);
        n = add(v, n, &t->ln_post_b, vis ? "%sln_post.bias" : "%sln_final.bias", p, 0);
        n = add(v, n, &t->proj, vis ? "%sproj" : "%stext_projection", p, 0);
        CHECK(t->n_blocks == (vis ? c->vision.layers : c->text.layers), "tower %d: %d blocks", k, t->n_blocks);
        for (int l = 0; l < t->n_blocks; l++) {
            const CmBlockParams *b = &t->blocks[l];
            n = add(v, n, &b->ln1_w, "%stransformer.resblocks.%d.ln_1.weight", p, l);
            n = add(v, n, &b->ln1_b, "%stransformer.resblocks.%d.ln_1.bias", p, l);
            n = add(v, n, &b->in_w, "%stransformer.resblocks.%d.attn.in_proj_weight", p, l);
            n = add(v, n, &b->in_b, "%stransformer.resblocks.%d.attn.in_proj_bias", p, l);
            n = add(v, n, &b->out_w, "%stransformer.resblocks.%d.attn.out_proj.weight", p, l);
            n = add(v, n, &b->out_b, "%stransformer.resblocks.%d.attn.out_proj.bias", p, l);
            n = add(v, n, &b->lora_A, c->has_lora ? "%stransformer.resblocks.%d.attn.out_proj.lora_A.weight" : NULL, p, l);
            n = add(v, n, &b->lora_B, c->has_lora ? "%stransformer.resblocks.%d.attn.out_proj.lora_B.weight" : NULL, p, l);
            n = add(v, n, &b->ln2_w, "%stransformer.resblocks.%d.ln_2.weight", p, l);
            n = add(v, n, &b->ln2_b, "%stransformer.resblocks.%d.ln_2.bias", p, l);
            n = add(v, n, &b->fc_w, "%stransformer.resblocks.%d.mlp.c_fc.weight", p, l);
            n = add(v, n, &b->fc_b, "%stransformer.resblocks.%d.mlp.c_fc.bias", p, l);
            n = add(v, n, &b->proj_w, "%stransformer.resblocks.%d.mlp.c_proj.weight", p, l);
            n = add(v, n, &b->proj_b, "%stransformer.resblocks.%d.mlp.c_proj.bias", p, l);
        }
    }
    const CmHeadParams *h = &m->head;
    CHECK(h->n_layers == (c->has_head ? c->head.layers : 0), "head: %d layers", h->n_layers);
    const char *hp = "classifier_head.transformer.layers.";
    for (int l = 0; l < h->n_layers; l++) {
        const CmHeadLayerParams *k = &h->layers[l];
        n = add(v, n, &k->in_w, "%s%d.self_attn.in_proj_weight", hp, l);
        n = add(v, n, &k->in_b, "%s%d.self_attn.in_proj_bias", hp, l);
        n = add(v, n, &k->out_w, "%s%d.self_attn.out_proj.weight", hp, l);
        n = add(v, n, &k->out_b, "%s%d.self_attn.out_proj.bias", hp, l);
        n = add(v, n, &k->l1_w, "%s%d.linear1.weight", hp, l);
        n = add(v, n, &k->l1_b, "%s%d.linear1.bias", hp, l);
        n = add(v, n, &k->l2_w, "%s%d.linear2.weight", hp, l);
        n = add(v, n, &k->l2_b, "%s%d.linear2.bias", hp, l);
        n = add(v, n, &k->n1_w, "%s%d.norm1.weight", hp, l);
        n = add(v, n, &k->n1_b, "%s%d.norm1.bias", hp, l);
        n = add(v, n, &k->n2_w, "%s%d.norm2.weight", hp, l);
        n = add(v, n, &k->n2_b, "%s%d.norm2.bias", hp, l);
    }
    bool hh = c->has_head;
    n = add(v, n, &h->c0_w, hh ? "%sclassifier.0.weight" : NULL, "classifier_head.", 0);
    n = add(v, n, &h->c0_b, hh ? "%sclassifier.0.bias" : NULL, "classifier_head.", 0);
    n = add(v, n, &h->c3_w, hh ? "%sclassifier.3.weight" : NULL, "classifier_head.", 0);
    n = add(v, n, &h->c3_b, hh ? "%sclassifier.3.bias" : NULL, "classifier_head.", 0);
    return n;
}

/* Names, data pointers, one ref per table entry; grads and trainability as the table says. */
static void check_refs(const CmModel *m, const char *what) {
    static Named v[MAX_NAMED];
    int n = collect(m, v);
    int *seen = calloc((size_t)m->n_params, sizeof(int));
    REQUIRE(seen, "oom");
    int bad = 0;
    for (int i = 0; i < n && bad < 5; i++) {
        const CmTensorRef *r = v[i].r;
        if (!v[i].name[0]) {
            if (r->idx != -1 || r->data || r->grad) { bad++; CHECK(0, "%s: ref %d should be absent (idx %d)", what, i, r->idx); }
            continue;
        }
        if (r->idx < 0 || r->idx >= m->n_params) { bad++; CHECK(0, "%s: %s: idx %d", what, v[i].name, r->idx); continue; }
        const CmParam *p = &m->params[r->idx];
        seen[r->idx]++;
        bool ok = !strcmp(p->name, v[i].name) && r->data == p->data && r->grad == p->grad &&
                  cm_ref_trainable(*r) == p->trainable;
        if (!ok) bad++;
        CHECK(ok, "%s: ref for %s points at %s (data %s, grad %s, trainable %d/%d)", what, v[i].name, p->name,
              r->data == p->data ? "ok" : "WRONG", r->grad == p->grad ? "ok" : "WRONG", cm_ref_trainable(*r), p->trainable);
    }
    for (int i = 0; i < m->n_params && bad < 5; i++)
        if (seen[i] != 1) { bad++; CHECK(0, "%s: table entry %s named by %d refs", what, m->params[i].name, seen[i]); }
    free(seen);
}

static void check_config(bool lora, bool head) {
    CmModelConfig cfg;
    REQ_OK(cm_config_from_json(CFG_JSON, strlen(CFG_JSON), "test config", &cfg));
    cfg.has_lora = lora;
    cfg.has_head = head;
    REQ_OK(cm_config_validate(&cfg));
    CmModel *m;
    REQ_OK(cm_model_create(&cfg, &m));
    char what[96];
    snprintf(what, sizeof what, "lora %d head %d created", lora, head);
    check_refs(m, what);
    struct { CmTrainMode mode; bool li, lt; } modes[] = {
        {CM_TRAIN_LORA, false, false}, {CM_TRAIN_FULL, false, false}, {CM_TRAIN_HEAD, false, false},
        {CM_TRAIN_FULL, true, false}, {CM_TRAIN_FULL, false, true}, {CM_TRAIN_LORA, true, false},
        {CM_TRAIN_NONE, false, false}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        REQ_OK(cm_model_set_mode(m, modes[i].mode, modes[i].li, modes[i].lt));
        snprintf(what, sizeof what, "lora %d head %d mode %d lock %d/%d", lora, head, (int)modes[i].mode, modes[i].li, modes[i].lt);
        check_refs(m, what);
    }
    /* spot checks of the meaning, not only the bookkeeping */
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_FULL, true, false));
    CHECK(!cm_ref_trainable(m->visual.blocks[1].fc_w) && cm_ref_trainable(m->text.blocks[1].fc_w), "lock-image");
    CHECK(!cm_refs_trainable(m->visual.stem, CM_STEM_NREFS) && cm_refs_trainable(m->text.stem, CM_STEM_NREFS), "stems");
    REQ_OK(cm_model_set_mode(m, CM_TRAIN_LORA, false, false));
    CHECK(cm_refs_trainable(m->visual.blocks[0].all, CM_BLOCK_NREFS) == lora, "LoRA mode: block trainable iff LoRA");
    CHECK(!cm_ref_trainable(m->logit_scale) && !cm_refs_trainable(m->text.top, CM_TOP_NREFS), "LoRA mode: frozen top");
    if (lora) {   /* merging drops the LoRA refs of the copy */
        CmModel *o;
        REQ_OK(cm_model_merge_lora(m, &o));
        check_refs(o, "merged");
        CHECK(o->visual.blocks[0].lora_A.idx == -1 && o->visual.blocks[0].out_w.data != m->visual.blocks[0].out_w.data, "merged refs");
        cm_model_free(o);
    }
    cm_model_free(m);
}

static void test_lora_head(void) { check_config(true, true); }
static void test_plain_clip(void) { check_config(false, false); }
static void test_lora_only(void) { check_config(true, false); }

int main(void) {
    RUN(test_lora_head);
    RUN(test_plain_clip);
    RUN(test_lora_only);
    return tl_summary("test_model_params");
}
