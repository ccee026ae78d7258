/*
 * cmd_export.c — `clipmod export --model CKPT --out DIR [--overwrite] [--peft]` (DESIGN §7,
 * issue 11 item 3): any model clipmod opens (a LoRA or full checkpoint, any config, BPE or byte
 * tokenizer, or an earlier export) becomes DIR/open_clip_model.safetensors (LoRA merged, OpenCLIP
 * names only), DIR/open_clip_config.json and DIR/classifier_head.safetensors; see
 * src/train/export.h for the layout and docs/predict.md for how OpenCLIP loads it.
 * `clipmod predict/eval/embed --model DIR` open the folder.
 */
#include <stdio.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "model/open.h"
#include "train/export.h"

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *model_name = NULL, *vocab = NULL;
    bool overwrite = false, peft = false;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model, "CKPT", "clipmod checkpoint (LoRA or full), weights file with a head, or an export folder (required)"),
        ARG("--out", ARG_STR, &out, "DIR", "output folder; must be absent or empty unless --overwrite (required)"),
        ARG("--overwrite", ARG_FLAG, &overwrite, NULL, "replace the export files in an existing non-empty folder"),
        ARG("--peft", ARG_FLAG, &peft, NULL, "also write the unmerged LoRA as adapter_model.safetensors + adapter_config.json (PEFT naming)"),
        ARG("--vocab", ARG_STR, &vocab, "FILE", "copy this BPE vocabulary (bpe_simple_vocab_16e6.txt.gz or merges.txt) into DIR: a self-contained folder"),
        ARG("--model-name", ARG_STR, &model_name, "NAME|JSON", "config of a plain weights file (default: the checkpoint's, or open_clip_config.json beside the weights)",
            .check = args_check_model_name),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "export", "--model CKPT --out DIR [--overwrite] [--peft] [--vocab FILE]", NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (!model || !out) { fprintf(stderr, "clipmod export: --model and --out are required\n"); return 2; }
    CmModel *m = NULL;
    CmModelInfo info;
    CmOpenOptions oo = {model_name, NULL, NULL};
    if (cm_model_open(model, &oo, &m, &info)) return cli_fail("export");
    int status = 0;
    if (peft && !m->cfg.has_lora) {
        fprintf(stderr, "clipmod export: --peft: %s has no LoRA adapters\n", model);
        status = 2;
    } else {
        CmExportOpts o = {overwrite, peft, info.tokenizer == CM_TOKENIZER_BYTES ? "bytes" : "bpe", model, vocab};
        double t0 = cm_now();
        if (cm_export_write(m, out, &o)) {
            fprintf(stderr, "clipmod export: %s\n", cm_last_error());
            status = cm_last_status() == CM_ERR_ARG ? 2 : 1;
        } else {
            CmParamCounts c;
            cm_param_counts(&m->cfg, &c);
            fprintf(stderr, "clipmod export: %s -> %s (%d CLIP tensors%s, %d head tensors, tokenizer %s) in %.1f s\n", model, out,
                    c.n_clip_tensors, m->cfg.has_lora ? ", LoRA merged" : "", m->cfg.has_head ? c.n_head_tensors : 0, o.tokenizer, cm_now() - t0);
            if (!m->cfg.has_head) fprintf(stderr, "clipmod export: %s has no classification head: %s is a plain OpenCLIP folder\n", model, out);
        }
    }
    cm_model_free(m);
    return status;
}
