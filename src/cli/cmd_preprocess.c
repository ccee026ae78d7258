/*
 * cmd_preprocess.c — `clipmod preprocess --image PATH --out FILE` (DESIGN §7): decode the image
 * (format from its bytes, converted to RGB right after decoding, DESIGN §5), apply OpenCLIP's
 * ViT-B-32 eval transform and write float32 little-endian [3,224,224] (602,112 bytes) atomically
 * (--out - writes them to standard output).
 * Exit status: 0 ok, 2 bad usage, 1 failure (one line on stderr naming the file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "common/common.h"
#include "data/image.h"

int cmd_preprocess(int argc, char **argv) {
    const char *image = NULL, *out = NULL;
    int size = 224;
    long long max_pixels = (long long)CM_DEFAULT_MAX_PIXELS;
    const ArgSpec specs[] = {
        ARG("--image", ARG_STR, &image, "PATH", "input image (JPEG, PNG or WebP; the format is read from the bytes)"),
        ARG("--out", ARG_STR, &out, "FILE", "output: float32 little-endian [3,SIZE,SIZE], channel-major ('-': standard output)"),
        ARG("--size", ARG_INT, &size, "N", "output side (default 224, ViT-B-32)", ARG_RANGE(1, 4096)),
        ARG("--max-pixels", ARG_I64, &max_pixels, "N", "refuse larger images before decoding (default 67108864 = 64 MP)", ARG_RANGE(1, 1e12)),
    };
    const int n = (int)(sizeof specs / sizeof specs[0]);
    int rc = args_parse(argc, argv, specs, n, "preprocess", "--image PATH --out FILE", NULL);
    if (rc == -1) return 0;
    if (rc) return rc;
    if (!image) { fprintf(stderr, "clipmod preprocess: --image is required\n"); return 2; }
    if (!out) { fprintf(stderr, "clipmod preprocess: --out is required\n"); return 2; }

    CmImage img;
    if (cm_image_load(image, (size_t)max_pixels, &img) != CM_OK) return cli_fail("preprocess");
    size_t count = (size_t)3 * size * size;
    float *t = cm_malloc(count * sizeof(float), "preprocess output");
    if (!t) { cm_image_free(&img); return cli_fail("preprocess"); }
    cm_status st = cm_transform_eval(&img, size, &CM_CLIP_NORMALIZE, t);
    cm_image_free(&img);
    if (st == CM_OK) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "clipmod preprocess writes the host's float32: add a byte swap for big-endian hosts"
#endif
        if (!strcmp(out, "-")) {   /* '-' is standard output, as for every file a command writes */
            if (fwrite(t, sizeof(float), count, stdout) != count || fflush(stdout))
                st = cm_error(CM_ERR_IO, "--out -: cannot write to standard output");
        } else st = cm_write_file_atomic(out, t, count * sizeof(float));
    }
    cm_free(t);
    return st == CM_OK ? 0 : cli_fail("preprocess");
}
