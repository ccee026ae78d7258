/*
 * bench_tokenizer.c — tokenizer throughput on one core (`make bench`): captions per second of
 * cm_tokenize (77 ids each) over COCO val2017 captions (../shared/data/coco/captions_val2017.json,
 * 25k captions; synthetic COCO-like captions when absent), with the BPE cache (warm) and without
 * it, and their ratio measured in the same run. Target (issue 3): >= 50,000 captions/s with cache.
 * Uses the shipped vocabulary (assets/) or $CLIPMOD_VOCAB. BENCH_QUICK=1: one short pass.
 */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "common/common.h"
#include "data/tokenizer.h"

static int load_coco(const char *path, char ***out) {
    uint8_t *buf; size_t len;
    if (cm_read_file(path, 1u << 28, &buf, &len)) return 0;
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    cm_free(buf);
    cJSON *ann = j ? cJSON_GetObjectItem(j, "annotations") : NULL;
    int n = ann ? cJSON_GetArraySize(ann) : 0, k = 0;
    char **v = calloc((size_t)n + 1, sizeof *v);
    for (cJSON *a = ann ? ann->child : NULL; a; a = a->next) {
        cJSON *c = cJSON_GetObjectItem(a, "caption");
        if (cJSON_IsString(c)) v[k++] = strdup(c->valuestring);
    }
    cJSON_Delete(j);
    *out = v;
    return k;
}

static int synth(int n, char ***out) {
    static const char *w[] = {"a", "man", "woman", "dog", "cat", "is", "sitting", "on", "the", "top", "of", "bench",
                              "with", "two", "red", "kites", "flying", "near", "beach", "Toilet", "bathroom", "kitchen",
                              "pizza", "table", "riding", "skateboard", "down", "street", "giraffe", "standing", "grass",
                              "next", "to", "tall", "tree", "an", "elephant's", "trunk", "in", "water", ",", "."};
    char **v = calloc((size_t)n, sizeof *v);
    uint64_t s = 7;
    for (int i = 0; i < n; i++) {
        char b[256]; int o = 0, words = 8 + i % 9;
        for (int k = 0; k < words; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            o += snprintf(b + o, sizeof b - o, "%s%s", k ? " " : "", w[(s >> 33) % (sizeof w / sizeof w[0])]);
        }
        v[i] = strdup(b);
    }
    *out = v;
    return n;
}

/* Best captions/s over reps passes. */
static double rate(CmTokenizer *tok, char **caps, const size_t *lens, int n, int reps, long *checksum) {
    double best = 0;
    int32_t ids[CM_CONTEXT_LEN];
    for (int r = 0; r < reps; r++) {
        long sum = 0;
        double t0 = cm_now();
        for (int i = 0; i < n; i++) {
            if (cm_tokenize(tok, caps[i], lens[i], ids, CM_CONTEXT_LEN)) { fprintf(stderr, "%s\n", cm_last_error()); exit(1); }
            sum += ids[1] + ids[5];
        }
        double dt = cm_now() - t0, cps = n / dt;
        if (cps > best) best = cps;
        *checksum = sum;
    }
    return best;
}

int main(void) {
    int quick = getenv("BENCH_QUICK") != NULL;
    CmTokenizer *tok;
    if (cm_tokenizer_load(NULL, &tok)) {
        printf("bench_tokenizer: skipped (%s)\n", cm_last_error());
        return 0;
    }
    char **caps;
    const char *src = "../shared/data/coco/captions_val2017.json";
    int n = load_coco(src, &caps);
    if (n == 0) { src = "synthetic COCO-like captions"; n = synth(25000, &caps); }
    if (quick && n > 2000) n = 2000;
    size_t *lens = malloc(sizeof *lens * (size_t)n), bytes = 0;
    for (int i = 0; i < n; i++) { lens[i] = strlen(caps[i]); bytes += lens[i]; }
    printf("tokenizer: %d captions from %s (mean %.1f bytes), one thread\n", n, src, (double)bytes / n);
    long c1, c2;
    cm_tokenizer_set_cache(tok, 131072);
    double cold = rate(tok, caps, lens, n, 1, &c1);    /* first pass fills the cache */
    double warm = rate(tok, caps, lens, n, quick ? 1 : 3, &c1);
    cm_tokenizer_set_cache(tok, 0);
    double nocache = rate(tok, caps, lens, n, quick ? 1 : 3, &c2);
    printf("  with BPE cache, first pass : %10.0f captions/s\n", cold);
    printf("  with BPE cache, warm       : %10.0f captions/s  (%.2f us/caption; target >= 50000)\n", warm, 1e6 / warm);
    printf("  without cache              : %10.0f captions/s  (%.2f us/caption)\n", nocache, 1e6 / nocache);
    printf("  cache speed-up (same run)  : %10.2fx%s\n", warm / nocache, c1 == c2 ? "" : "  CHECKSUM MISMATCH");
    for (int i = 0; i < n; i++) free(caps[i]);
    free(caps); free(lens);
    cm_tokenizer_free(tok);
    return c1 == c2 ? 0 : 1;
}
