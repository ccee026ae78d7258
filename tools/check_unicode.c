/*
 * check_unicode.c — development check (not part of `make test`): reads the table written by
 * tools/check_unicode.py and compares cm_py_isspace, cm_py_lower (single chars and the Final_Sigma
 * contexts) and cm_pretok_class with Python for every code point; prints each difference.
 */
#include <stdio.h>
#include <string.h>
#include "data/tokenizer_impl.h"

int main(int argc, char **argv) {
    FILE *f = fopen(argc > 1 ? argv[1] : "/tmp/uc.txt", "r");
    if (!f) { perror("open"); return 1; }
    char low[128], cls[8];
    unsigned cp; int sp, t1, t2;
    long diffs[4] = {0};
    const char *cn = "SLNOD";
    while (fscanf(f, "%x %d %127s %d %d %7s", &cp, &sp, low, &t1, &t2, cls) == 6) {
        if (cm_py_isspace(cp) != (sp != 0)) { diffs[0]++; printf("isspace %04X py=%d\n", cp, sp); }
        uint32_t in[3] = {cp}, out[6];
        size_t n = cm_py_lower(in, 1, out);
        char mine[128]; int o = 0;
        for (size_t i = 0; i < n; i++) o += snprintf(mine + o, sizeof mine - o, i ? "+%x" : "%x", out[i]);
        if (strcmp(mine, low)) { diffs[1]++; printf("lower %04X py=%s c=%s\n", cp, low, mine); }
        uint32_t a[3] = {0x391, cp, 0x3A3}, b[2] = {cp, 0x3A3};
        size_t na = cm_py_lower(a, 3, out);
        int c1 = out[na - 1] == 0x3C2;
        size_t nb = cm_py_lower(b, 2, out);
        int c2 = out[nb - 1] == 0x3C2;
        if (c1 != t1 || c2 != t2) { diffs[2]++; printf("sigma %04X py=%d%d c=%d%d\n", cp, t1, t2, c1, c2); }
        int k = cm_pretok_class(cp);
        if (cn[k] != cls[0]) { diffs[3]++; printf("class %04X py=%c c=%c\n", cp, cls[0], cn[k]); }
    }
    printf("differences: isspace %ld, lower %ld, sigma %ld, class %ld\n", diffs[0], diffs[1], diffs[2], diffs[3]);
    return 0;
}
