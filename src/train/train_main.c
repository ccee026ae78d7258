/*
 * train_main.c — `clipmod train` after option parsing, as a library function so that the demo
 * runs exactly the same code: the model from --model/--pretrained/--enable-lora (setup.c), the
 * text encoder, OpenCLIP's epoch sizing, WebDataset batch sources (batches_shards.c), the run
 * (run.c).
 */
#include "train/train_main.h"

#include <string.h>
#include "data/wds.h"
#include "train/setup.h"
#include "train/dist_agree.h"
#include "io/sha256.h"
#include "data/loader_source.h"
#include "data/shards.h"
#include "data/textenc.h"

cm_status cm_train_main(const CmTrainConfig *o, CmRun *r, void (*on_step)(void *, int64_t, const CmStepStats *), void *cb_ctx) {
    return cm_train_main_stop(o, r, on_step, cb_ctx, NULL);
}

cm_status cm_train_main_stop(const CmTrainConfig *o, CmRun *r, void (*on_step)(void *, int64_t, const CmStepStats *), void *cb_ctx,
                             volatile sig_atomic_t *stop) {
    memset(r, 0, sizeof *r);
    r->stop = stop;
    cm_status st0 = cm_train_config_check(o);
    if (st0) return st0;
    if (o->threads > 0) cm_threads_set(o->threads);
    /* samples per epoch: --train-num-samples, else sizes.json next to the shards */
    long long ns = o->train_num_samples;
    if (ns <= 0) {
        CmShardList sl = {0};
        int64_t total = 0;
        cm_status s2 = cm_shardlist_init(&sl, o->train_data, NULL, "--train-data");
        if (!s2) s2 = cm_dataset_size(&sl.urls, &total);
        cm_shardlist_free(&sl);
        if (s2) return cm_error_prefix("--train-num-samples not given and the shard sizes are unknown");
        ns = total;
    }
    /* more loader workers than batches in an epoch cannot be meant: OpenCLIP's sizing would
       round the epoch up to one batch per worker (128 samples, --workers 100000: 6.4 M samples) */
    int workers = o->workers;
    long long n_batches = (ns + o->batch_size - 1) / o->batch_size;
    if (n_batches < 1) n_batches = 1;
    if (workers > n_batches) {
        cm_warn("--workers %d is more than the %lld batches of an epoch (%lld samples / batch %d): using %lld workers",
                workers, n_batches, ns, o->batch_size, n_batches);
        workers = (int)n_batches;
    }
    CmModel *m = NULL;
    char *base = NULL;
    CmTextEnc te = {0};
    CmBatchSource *train = NULL, *val = NULL;
    cm_status st = CM_OK;
    if ((st = cm_train_build_model(o, &m, &base))) goto out;
    /* --precision amp / amp_bf16 on CPU: bf16 products with fp32 accumulation in the tower
       linears; master weights, optimizer, LayerNorm, softmax and losses stay fp32 */
    cm_model_set_amp(m, o->prec == CM_PREC_AMP_BF16);
    if (!strcmp(o->tokenizer, "bytes") && m->cfg.text.vocab_size != CM_BYTE_VOCAB) {
        st = cm_error(CM_ERR_ARG, "--tokenizer bytes needs a model whose text vocab_size is %d (this one: %d)", CM_BYTE_VOCAB, m->cfg.text.vocab_size);
        goto out;
    }
    if ((st = cm_textenc_open(&te, o->tokenizer, o->vocab, base))) goto out;
    /* under MPI: every rank runs the same job (flags, model, base weights), checked before any data moves */
    if (o->world > 1) {
        if (base && (st = cm_sha256_file(base, r->base_sha256))) goto out;
        if ((st = cm_train_dist_agree(o, m, r->base_sha256))) goto out;
    }

    if (!te.bytes && m->cfg.text.context_length == 77) {
        /* the threaded loader: OpenCLIP's sampling, shuffles and epoch sizing */
        CmLoaderConfig lc = {0};
        lc.urls = o->train_data; lc.upsampling = o->train_data_upsampling_factors; lc.train = true;
        lc.resampled = o->dataset_resampled; lc.batch_size = o->batch_size; lc.workers = workers;
        lc.num_samples = o->train_num_samples > 0 ? o->train_num_samples : 0; lc.seed = (uint64_t)o->seed;
        lc.world_size = o->world > 1 ? o->world : 1; lc.rank = o->world > 1 ? o->rank : 0;
        lc.image_size = m->cfg.vision.image_size; lc.tok = te.bpe;
        if ((st = cm_batches_loader(&lc, &train))) goto out;
        if (o->val_data && *o->val_data) {
            CmLoaderConfig vc = lc;
            vc.urls = o->val_data; vc.upsampling = NULL; vc.train = false; vc.resampled = false; vc.num_samples = 0;
            if ((st = cm_batches_loader(&vc, &val))) goto out;
        }
    } else {
        /* byte-level captions (the demo) or a non-77 context: the simple single-thread source */
        if (o->world > 1) {
            st = cm_error(CM_ERR_UNSUPPORTED, "data-parallel training reads shards through the BPE loader: --tokenizer bytes or a "
                                             "context other than 77 is single-process only");
            goto out;
        }
        CmEpochSize es;
        if ((st = cm_epoch_size(ns, o->batch_size, 1, workers, &es))) goto out;
        long long nb = es.num_batches;
        CmShardSourceCfg sc = {0};
        sc.urls = o->train_data; sc.upsampling = o->train_data_upsampling_factors; sc.train = true;
        sc.resampled = o->dataset_resampled; sc.batch = o->batch_size; sc.image_size = m->cfg.vision.image_size;
        sc.ctx = m->cfg.text.context_length; sc.num_batches = nb; sc.shuffle = ns < 5000 ? (int)ns : 5000;
        sc.seed = (uint64_t)o->seed; sc.te = &te;
        if ((st = cm_batches_shards(&sc, &train))) goto out;
        if (o->val_data && *o->val_data) {
            CmShardSourceCfg vc = sc;
            vc.urls = o->val_data; vc.upsampling = NULL; vc.train = false; vc.resampled = false; vc.shuffle = 0;
            if ((st = cm_batches_shards(&vc, &val))) goto out;
        }
    }
    r->o = o; r->m = m; r->train = train; r->val = val; r->base_model = base; r->dropout = true;
    r->tokenizer = o->tokenizer;
    r->on_step = on_step; r->cb_ctx = cb_ctx; r->stop = stop;
    st = cm_train_run(r);
out:
    cm_batches_close(train);
    cm_batches_close(val);
    cm_textenc_close(&te);
    if (m) cm_model_free(m);
    cm_free(base);
    r->m = NULL; r->train = NULL; r->val = NULL; r->base_model = NULL;
    return st;
}
