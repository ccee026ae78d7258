/*
 * cmd_inspect.c — `clipmod inspect SHARD...` (DESIGN §7): one JSON line per sample
 * {"key":..,"extensions":[..],"sizes":[..]} (plus "error" for a sample cut by damage), grouped
 * as webdataset groups them. Errors go to stderr; the exit status is 1 when a shard is damaged,
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
        if (cm_wds_open(pos.v[s], false, (uint64_t)max_member, &r)) { status = cli_fail("inspect"); continue; }
        long long nsamples = 0, nbad = 0;
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
    }
    fflush(stdout);
    args_free(&pos);
    return status;
}
