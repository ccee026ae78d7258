/*
 * cmd_inspect.c — `clipmod inspect SHARD...` (DESIGN §7): one JSON line per sample
 * {"key":..,"extensions":[..],"sizes":[..],"label":N} (plus "no_json":true when the sample has no
 * .json and so gets label 0, "label_error" when its .json has no usable label — the rule of
 * training and eval, cm_sample_label — and "error" for a sample cut by damage), grouped as
 * webdataset groups them. SHARD is read as the training reader reads --train-data/--val-data
 * (brace patterns, '::'). Samples without .json are counted in a warning per shard. Errors go to
 * stderr, one message per problem, at most 50 and then a count; the exit status is 1 when a
 * shard is missing or damaged, after everything readable has been listed.
 */
#include <stdio.h>
#include <string.h>
#include "cli/args.h"
#include "cli/cli.h"
#include "data/wds.h"

/* JSON string: escapes quotes, backslashes and control characters; invalid UTF-8 bytes become
   U+FFFD so that the line stays valid JSON. */
static void put_json_str(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0;
        for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xC0) == 0x80;
        if (!ok) { fputs("\\ufffd", f); p++; continue; }
        if (n > 1) { fwrite(p, 1, (size_t)n, f); p += n; continue; }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc((int)c, f);
        p++;
    }
    fputc('"', f);
}

int cmd_inspect(int argc, char **argv) {
    long long max_member = 0;
    ArgList pos = {0};
    ArgSpec specs[] = {
        ARG("--max-member", ARG_I64, &max_member, "BYTES", "skip members larger than this (default 256 MiB)"),
    };
    int rc = args_parse(argc, argv, specs, 1, "inspect", "SHARD... [options]", &pos);
    if (rc) { args_free(&pos); return rc < 0 ? 0 : rc; }
    if (pos.n == 0) {
        fprintf(stderr, "clipmod inspect: give a shard (.tar, .tar.gz, .tgz); see --help\n");
        args_free(&pos);
        return 2;
    }
    int status = 0;
    long long logged = 0, unlogged = 0;
    for (int a = 0; a < pos.n; a++) {
      /* the shard list as --train-data/--val-data read it: brace patterns joined by '::' */
      CmShardList sl = {0};
      if (cm_shardlist_init(&sl, pos.v[a], NULL, "inspect")) { status = cli_fail("inspect"); continue; }
      for (int s = 0; s < sl.urls.n; s++) {
        const char *shard = sl.urls.v[s];
        CmWdsReader *r;
        /* with the data: the .json gives the label */
        if (cm_wds_open(shard, true, (uint64_t)max_member, &r)) {
            status = 1;
            if (logged++ < CLI_MAX_LOGGED) cli_fail("inspect"); else unlogged++;
            continue;
        }
        long long nsamples = 0, nbad = 0, nno_json = 0, nlabel_bad = 0;
        char last_err[512] = "";
        for (;;) {
            CmWdsSample *smp;
            int k = cm_wds_next(r, &smp);
            if (k == 0) break;
            if (k < 0) {   /* one message per problem: a damage that already cut a sample is not repeated */
                status = 1;
                if (!last_err[0] || strcmp(last_err, cm_last_error())) {
                    if (logged++ < CLI_MAX_LOGGED) cli_fail("inspect"); else unlogged++;
                }
                break;
            }
            fputs("{\"key\":", stdout);
            put_json_str(stdout, smp->key);
            fputs(",\"extensions\":[", stdout);
            for (int i = 0; i < smp->nfields; i++) { if (i) fputc(',', stdout); put_json_str(stdout, smp->fields[i].ext); }
            fputs("],\"sizes\":[", stdout);
            for (int i = 0; i < smp->nfields; i++) printf("%s%zu", i ? "," : "", smp->fields[i].size);
            fputc(']', stdout);
            if (!smp->error) {   /* the label training and eval give it (one rule: cm_sample_label) */
                int label = 0;
                bool no_json = false;
                if (cm_sample_label(smp, &label, &no_json)) {
                    fputs(",\"label_error\":", stdout);
                    put_json_str(stdout, cm_last_error());
                    nlabel_bad++;
                } else {
                    printf(",\"label\":%d", label);
                    if (no_json) { fputs(",\"no_json\":true", stdout); nno_json++; }
                }
            }
            if (smp->error) {
                fputs(",\"error\":", stdout);
                put_json_str(stdout, smp->error);
                if (logged++ < CLI_MAX_LOGGED) fprintf(stderr, "clipmod inspect: sample '%s': %s\n", smp->key, smp->error);
                else unlogged++;
                snprintf(last_err, sizeof last_err, "%s", smp->error);
                status = 1;
                nbad++;
            }
            fputs("}\n", stdout);
            nsamples++;
            cm_wds_sample_free(smp);
        }
        cm_wds_close(r);
        if (nbad) fprintf(stderr, "clipmod inspect: %s: %lld samples, %lld damaged\n", shard, nsamples, nbad);
        if (nno_json)
            fprintf(stderr, "clipmod inspect: warning: %s: %lld of %lld samples have no .json metadata: training and eval give them label 0\n",
                    shard, nno_json, nsamples);
        if (nlabel_bad)
            fprintf(stderr, "clipmod inspect: warning: %s: %lld samples have a .json without a usable label: training and eval skip them\n",
                    shard, nlabel_bad);
      }
      cm_shardlist_free(&sl);
    }
    if (unlogged) fprintf(stderr, "clipmod inspect: %lld more problems not shown (first %d shown)\n", unlogged, CLI_MAX_LOGGED);
    fflush(stdout);
    args_free(&pos);
    return status;
}
