/*
 * cmd_inspect.c — `clipmod inspect SHARD...` (DESIGN §7): one JSON line per sample
 * {"key":..,"extensions":[..],"sizes":[..],"label":N} (plus "no_json":true when the sample has no
 * .json and so gets label 0, "label_error" when its .json has no usable label — the rule of
 * training and eval, cm_sample_label — and "error" for a sample cut by damage), grouped as
 * webdataset groups them. Samples without .json are counted in a warning per shard. Errors go to stderr; the exit status is 1 when a shard is damaged,
 * after everything readable has been listed.
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
        {"--max-member", ARG_I64, &max_member, "BYTES", "skip members larger than this (default 256 MiB)"},
    };
    int rc = args_parse(argc, argv, specs, 1, "inspect", "SHARD... [options]", &pos);
    if (rc) { args_free(&pos); return rc < 0 ? 0 : rc; }
    if (pos.n == 0) {
        fprintf(stderr, "clipmod inspect: give a shard (.tar, .tar.gz, .tgz); see --help\n");
        args_free(&pos);
        return 2;
    }
    if (max_member < 0) {
        fprintf(stderr, "clipmod inspect: --max-member must be >= 0\n");
        args_free(&pos);
        return 2;
    }
    int status = 0;
    for (int s = 0; s < pos.n; s++) {
        CmWdsReader *r;
        /* with the data: the .json gives the label */
        if (cm_wds_open(pos.v[s], true, (uint64_t)max_member, &r)) { status = cli_fail("inspect"); continue; }
        long long nsamples = 0, nbad = 0, nno_json = 0, nlabel_bad = 0;
        for (;;) {
            CmWdsSample *smp;
            int k = cm_wds_next(r, &smp);
            if (k == 0) break;
            if (k < 0) { status = cli_fail("inspect"); break; }
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
                fprintf(stderr, "clipmod inspect: %s: sample '%s': %s\n", pos.v[s], smp->key, smp->error);
                status = 1;
                nbad++;
            }
            fputs("}\n", stdout);
            nsamples++;
            cm_wds_sample_free(smp);
        }
        cm_wds_close(r);
        if (nbad) fprintf(stderr, "clipmod inspect: %s: %lld samples, %lld damaged\n", pos.v[s], nsamples, nbad);
        if (nno_json)
            fprintf(stderr, "clipmod inspect: warning: %s: %lld of %lld samples have no .json metadata: training and eval give them label 0\n",
                    pos.v[s], nno_json, nsamples);
        if (nlabel_bad)
            fprintf(stderr, "clipmod inspect: warning: %s: %lld samples have a .json without a usable label: training and eval skip them\n",
                    pos.v[s], nlabel_bad);
    }
    fflush(stdout);
    args_free(&pos);
    return status;
}
