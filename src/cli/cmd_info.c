/*
 * cmd_info.c — `clipmod info [--model PATH] [--model-name NAME|CONFIG.json] [--lora-rank R]`
 * (DESIGN §7): one JSON object with the parameter counts of DESIGN §1.4 for the config. With
 * --model: what the file holds, the config used and where it came from ("config_source":
 * "--model-name", "metadata", the open_clip_config.json path, or "shapes" for a built-in config
 * the shapes identify; cm_config_discover), and "matches_config": every tensor has the shape the
 * config says and all CLIP tensors are there (checked, not assumed). A file whose config cannot
 * be known is refused with a message asking for --model-name.
 */
#include <stdio.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "io/tensorfile.h"
#include "model/model.h"

static void put_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { putchar('\\'); putchar(*p); }
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

int cmd_info(int argc, char **argv) {
    const char *model_path = NULL, *model_name = NULL;
    int lora_rank = 4;
    ArgSpec specs[] = {
        ARG("--model", ARG_STR, &model_path, "PATH", "weights file (safetensors / OpenCLIP .bin / .pt): also report what it holds"),
        ARG("--model-name", ARG_STR, &model_name, "NAME", "ViT-B-32 (default; with --model: the file's own config), ViT-B-16, ViT-L-14, *-quickgelu, or a JSON config file",
            .check = args_check_model_name),
        ARG("--lora-rank", ARG_INT, &lora_rank, "R", "LoRA rank counted in \"lora\" and \"trainable_lora\" (default 4)",
            ARG_RANGE(1, 4096)),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof specs[0]), "info",
                        "[--model PATH] [--model-name NAME] [--lora-rank R]", NULL);
    if (rc == -1) return 0;
    if (rc) return rc;
    CmModelConfig cfg;
    char source[4200] = "--model-name";
    if (!model_name && model_path) {   /* the config of the file: metadata, open_clip_config.json beside it, or unambiguous shapes */
        CmTensorFile *f = NULL;
        if (cm_tensorfile_open(model_path, &f)) return cli_fail("info");
        cm_status st = cm_config_discover(f, &cfg, source, sizeof source);
        cm_tensorfile_close(f);
        if (st) return cli_fail("info");
    } else if (cm_config_load(model_name ? model_name : "ViT-B-32", &cfg)) {
        return cli_fail("info");   /* the name was checked by the parser: a file problem */
    }
    cfg.lora_rank = lora_rank;
    CmParamCounts c;
    cm_param_counts(&cfg, &c);
    CmInfoFile fi;
    if (model_path && cm_info_file(model_path, &cfg, &fi)) return cli_fail("info");
    printf("{\"vision\":%lld,\"text\":%lld,\"clip_total\":%lld,\"head\":%lld,\"lora\":%lld,"
           "\"trainable_lora\":%lld,\"trainable_baseline\":%lld",
           (long long)c.vision, (long long)c.text, (long long)c.clip_total, (long long)c.head,
           (long long)c.lora, (long long)c.trainable_lora, (long long)c.trainable_baseline);
    if (model_path) {
        printf(",\"file\":{\"model_name\":\"%s\",\"path\":", cfg.name);
        put_str(model_path);
        printf(",\"config_source\":");
        put_str(source);
        printf(",\"tensors\":%d,\"params\":%lld,\"dtype\":\"%s\",\"clip_tensors\":%d,\"lora_tensors\":%d,"
               "\"head_tensors\":%d,\"other_tensors\":%d,\"matches_config\":%s}",
               fi.n_tensors, (long long)fi.n_params, fi.dtype, fi.n_clip, fi.n_lora, fi.n_head, fi.n_other,
               fi.matches ? "true" : "false");
    }
    printf("}\n");
    return 0;
}
