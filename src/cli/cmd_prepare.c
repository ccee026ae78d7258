/*
 * cmd_prepare.c — `clipmod prepare fakeddit|mmhs150k|coco` (DESIGN §4.3, §7): raw datasets ->
 * OUT/class_<id>/NNNNN.tar + sizes.json + OUT/report.json. Prints the report on stdout.
 * OUT must be new or empty; --overwrite replaces an earlier prepare's output atomically (the
 * new output is written to OUT.tmp.<pid> first, see prepare.h). A refused OUT exits 2.
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "data/prepare.h"

static void print_report(const CmPrepareReport *r) {
    printf("{\"written\":%lld,\"missing_images\":%lld,\"bad_rows\":%lld,\"bad_images\":%lld,\"repaired_text\":%lld,\"per_class\":{",
           (long long)r->written, (long long)r->missing_images, (long long)r->bad_rows, (long long)r->bad_images,
           (long long)r->repaired_text);
    for (int c = 0; c < 7; c++) printf("%s\"%d\":%lld", c ? "," : "", c, (long long)r->per_class[c]);
    printf("}}\n");
}

int cmd_prepare(int argc, char **argv) {
    const char *synopsis =
        "fakeddit --tsv FILE --images DIR --out DIR [--shard-size N]\n"
        "       clipmod prepare mmhs150k --root DIR --split train|val|test --out DIR [--shard-size N]\n"
        "       clipmod prepare coco --captions FILE --images DIR --out DIR [--shard-size N]";
    const char *tsv = NULL, *images = NULL, *out = NULL, *root = NULL, *split = NULL, *captions = NULL;
    int shard_size = 0, image_size = 256, quality = 95;
    long long limit = 0;
    bool quiet = false, overwrite = false;
    ArgList pos = {0};
    ArgSpec specs[] = {
        ARG("--tsv", ARG_STR, &tsv, "FILE", "fakeddit: a multimodal_*.tsv file"),
        ARG("--images", ARG_STR, &images, "DIR", "fakeddit: folder of <id>.jpg; coco: folder of the images"),
        ARG("--root", ARG_STR, &root, "DIR", "mmhs150k: folder with MMHS150K_GT.json, img_resized/, img_txt/, splits/"),
        ARG("--split", ARG_STR, &split, "NAME", "mmhs150k: train, val or test", .choices = "train|val|test"),
        ARG("--captions", ARG_STR, &captions, "FILE", "coco: captions_*.json"),
        ARG("--out", ARG_STR, &out, "DIR", "output folder (class_<id>/NNNNN.tar, sizes.json, report.json)"),
        ARG("--shard-size", ARG_INT, &shard_size, "N", "samples per shard (default 10000 for train, 1000 otherwise)", ARG_RANGE(0, 1e9)),
        ARG("--image-size", ARG_INT, &image_size, "N", "letterbox size (default 256)", ARG_RANGE(8, 4096)),
        ARG("--jpeg-quality", ARG_INT, &quality, "Q", "JPEG quality 1..100 (default 95)", ARG_RANGE(1, 100)),
        ARG("--limit", ARG_I64, &limit, "N", "stop after N input rows (default: all)"),
        ARG("--quiet", ARG_FLAG, &quiet, NULL, "no progress lines"),
        ARG("--overwrite", ARG_FLAG, &overwrite, NULL, "replace a non-empty --out holding an earlier prepare's output (atomically)"),
    };
    int rc = args_parse(argc, argv, specs, (int)(sizeof specs / sizeof *specs), "prepare", synopsis, &pos);
    if (rc) { args_free(&pos); return rc < 0 ? 0 : rc; }
    const char *what = pos.n ? pos.v[0] : NULL;
    int status = 2;
    if (pos.n != 1 || !what) {
        fprintf(stderr, "clipmod prepare: say which dataset: fakeddit, mmhs150k or coco (see --help)\n");
        goto out;
    }
    if (!out) { fprintf(stderr, "clipmod prepare: --out DIR is required\n"); goto out; }
    CmPrepareOpts o = {out, shard_size, image_size, quality, limit, quiet, overwrite};
    CmPrepareReport r;
    cm_status st;
    if (!strcmp(what, "fakeddit")) {
        if (!tsv || !images) { fprintf(stderr, "clipmod prepare fakeddit: --tsv FILE and --images DIR are required\n"); goto out; }
        st = cm_prepare_fakeddit(tsv, images, &o, &r);
    } else if (!strcmp(what, "mmhs150k")) {
        if (!root || !split) { fprintf(stderr, "clipmod prepare mmhs150k: --root DIR and --split train|val|test are required\n"); goto out; }
        if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")) {
            fprintf(stderr, "clipmod prepare mmhs150k: --split must be train, val or test (got '%s')\n", split);
            goto out;
        }
        st = cm_prepare_mmhs150k(root, split, &o, &r);
    } else if (!strcmp(what, "coco")) {
        if (!captions || !images) { fprintf(stderr, "clipmod prepare coco: --captions FILE and --images DIR are required\n"); goto out; }
        st = cm_prepare_coco(captions, images, &o, &r);
    } else {
        fprintf(stderr, "clipmod prepare: unknown dataset '%s' (fakeddit, mmhs150k or coco)\n", what);
        goto out;
    }
    if (st) {   /* a refused --out (not empty, not ours) is a usage error */
        fprintf(stderr, "clipmod prepare: %s\n", cm_last_error());
        status = st == CM_ERR_ARG ? 2 : 1;
        goto out;
    }
    print_report(&r);
    if (r.written == 0) {   /* nothing found where samples were expected: never "done" on nothing */
        fprintf(stderr, "clipmod prepare %s: no sample written from %s%s%s (%lld missing images, %lld bad rows, %lld bad images)\n",
                what, tsv ? tsv : root ? root : captions, images ? " and " : "", images ? images : "",
                (long long)r.missing_images, (long long)r.bad_rows, (long long)r.bad_images);
        status = 1;
        goto out;
    }
    bool partial = r.missing_images || r.bad_rows || r.bad_images || r.repaired_text;
    if (!quiet || partial)   /* a partial failure is always a warning with the counts */
        fprintf(stderr, "clipmod prepare %s: %s%lld written, %lld missing images, %lld bad rows, %lld bad images, "
                "%lld captions with invalid UTF-8 repaired -> %s/report.json\n",
                what, partial ? "warning: " : "", (long long)r.written, (long long)r.missing_images, (long long)r.bad_rows,
                (long long)r.bad_images, (long long)r.repaired_text, out);
    status = 0;
out:
    args_free(&pos);
    return status;
}
