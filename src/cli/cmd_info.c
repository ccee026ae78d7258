/*
 * cmd_info.c — `clipmod info [--model PATH] [--model-name NAME|CONFIG.json] [--lora-rank R]`
 * (DESIGN §7): one JSON object with the parameter counts of DESIGN §1.4 for the config.
 */
#include <stdio.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "model/model.h"

int cmd_info(int argc, char **argv) {
    const char *model_path = NULL, *model_name = "ViT-B-32";
    int lora_rank = 4;
    ArgSpec specs[] = {
        {"--model", ARG_STR, &model_path, "PATH", "weights file (safetensors / OpenCLIP .bin / .pt): also report what it holds"},
        {"--model-name", ARG_STR, &model_name, "NAME", "ViT-B-32 (default), ViT-B-16, ViT-L-14, *-quickgelu, or a JSON config file"},
        {"--lora-rank", ARG_INT, &lora_rank, "R", "LoRA rank counted in \"lora\" and \"trainable_lora\" (default 4)"},
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "info",
                        "[--model PATH] [--model-name NAME] [--lora-rank R]", NULL);
    if (rc == -1) return 0;
    if (rc) return rc;
    if (lora_rank < 1 || lora_rank > 4096) {
        fprintf(stderr, "clipmod info: --lora-rank must be in 1..4096, got %d\n", lora_rank);
        return 2;
    }
    CmModelConfig cfg;
    if (cm_config_load(model_name, &cfg)) {
        fprintf(stderr, "clipmod info: --model-name: %s\n", cm_last_error());
        return cm_last_status() == CM_ERR_ARG ? 2 : 1;
    }
    cfg.lora_rank = lora_rank;
    CmParamCounts c;
    cm_param_counts(&cfg, &c);
    printf("{\"model_name\":\"%s\",\"vision\":%lld,\"text\":%lld,\"clip_total\":%lld,\"head\":%lld,\"lora\":%lld,"
           "\"trainable_lora\":%lld,\"trainable_baseline\":%lld",
           cfg.name, (long long)c.vision, (long long)c.text, (long long)c.clip_total, (long long)c.head,
           (long long)c.lora, (long long)c.trainable_lora, (long long)c.trainable_baseline);
    if (model_path) {
        printf("}\n");
        fprintf(stderr, "clipmod info: --model is not available in this build yet\n");
        return 1;
    }
    printf("}\n");
    return 0;
}
