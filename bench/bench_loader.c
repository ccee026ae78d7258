/*
 * bench_loader.c — data loader throughput (decode + train transform + tokenize + batching),
 * samples/s with 1 and 2 workers, on generated shards of 256x256 JPEGs (q90, textured like a
 * photo, as `clipmod prepare` writes them). Baseline in the same run: the same per-sample work
 * in a plain single-threaded loop over the samples in memory (no tar reading, no threads), so
 * the ratios show the loader's overhead and its scaling.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/image.h"
#include "data/loader.h"
#include "data/tar.h"
#include "data/tokenizer.h"
#include "data/wds.h"

#include <time.h>

#define NSHARDS 4
#define PER_SHARD 128

/* CPU seconds of the whole process (all threads): overhead independent of machine load */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char dir[] = "/tmp/cm_bench_loader_XXXXXX";

static void make_image(int i, CmImage *im) {
    im->w = im->h = 256;
    im->rgb = malloc(256 * 256 * 3);
    uint32_t s = (uint32_t)i * 2654435761u + 1;
    for (int y = 0; y < 256; y++)
        for (int x = 0; x < 256; x++) {
            s = s * 1664525u + 1013904223u;
            uint8_t *p = im->rgb + ((size_t)y * 256 + x) * 3;
            int n = (int)(s >> 27);   /* a little noise over smooth gradients */
            p[0] = (uint8_t)((x + i * 13 + n) & 255);
            p[1] = (uint8_t)((y * 2 + n) & 255);
            p[2] = (uint8_t)(((x ^ y) + i) & 255);
        }
}

int main(void) {
    CmTokenizer *tok;
    if (cm_tokenizer_load(NULL, &tok)) {
        printf("bench_loader: skipped (no tokenizer vocabulary: %s)\n", cm_last_error());
        return 0;
    }
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    /* shards + an in-memory copy for the baseline */
    int n = NSHARDS * PER_SHARD;
    uint8_t **jpgs = calloc((size_t)n, sizeof *jpgs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    size_t total_bytes = 0;
    for (int s = 0; s < NSHARDS; s++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%05d.tar", dir, s);
        CmTarWriter *w;
        if (cm_tar_writer_open(path, 0, &w)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
        for (int k = 0; k < PER_SHARD; k++) {
            int i = s * PER_SHARD + k;
            CmImage im;
            make_image(i, &im);
            if (cm_jpeg_encode(&im, 90, &jpgs[i], &lens[i])) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
            free(im.rgb);
            total_bytes += lens[i];
            char key[32], txt[128], js[64];
            snprintf(key, sizeof key, "%06d", i);
            int tl = snprintf(txt, sizeof txt, "a photo of a %s thing number %d on a table next to a window", i % 2 ? "red" : "blue", i);
            int jl = snprintf(js, sizeof js, "{\"label\": %d, \"dataset\": \"bench\"}", i % 7);
            CmWdsOut f[3] = {{"jpg", jpgs[i], lens[i]}, {"txt", txt, (size_t)tl}, {"json", js, (size_t)jl}};
            cm_wds_write_sample(w, key, f, 3);
        }
        cm_tar_writer_close(w);
    }
    printf("bench_loader: %d samples in %d shards, 256x256 JPEG q90, mean %.1f KB\n", n, NSHARDS, total_bytes / 1024.0 / n);

    /* baseline: decode + train transform + tokenize, one thread, no loader */
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    int32_t ids[77];
    CmRng rng;
    cm_rng_seed(&rng, 1);
    double t0 = cm_now(), c0 = cpu_now();
    for (int i = 0; i < n; i++) {
        CmImage im;
        char txt[128];
        int tl = snprintf(txt, sizeof txt, "a photo of a %s thing number %d on a table next to a window", i % 2 ? "red" : "blue", i);
        if (cm_image_decode(jpgs[i], lens[i], "bench", 0, &im) || cm_transform_train(&im, 224, &CM_CLIP_NORMALIZE, &rng, out) ||
            cm_tokenize(tok, txt, (size_t)tl, ids, 77)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
        cm_image_free(&im);
    }
    double base = n / (cm_now() - t0), base_cpu = (cpu_now() - c0) / n * 1e3;
    printf("  baseline (plain loop, 1 thread)      %8.1f samples/s            %.3f CPU ms/sample\n", base, base_cpu);

    char urls[300];
    snprintf(urls, sizeof urls, "%s/{00000..%05d}.tar", dir, NSHARDS - 1);
    for (int workers = 1; workers <= 2; workers++) {
        CmLoaderConfig c = {0};
        c.urls = urls;
        c.train = true;
        c.resampled = true;
        c.batch_size = 32;
        c.workers = workers;
        c.num_samples = n;
        c.seed = 3;
        c.world_size = 1;
        c.tok = tok;
        c.shuffle_bufsize = 256;
        c.shuffle_initial = 64;
        CmLoader *l;
        if (cm_loader_open(&c, &l)) { fprintf(stderr, "%s\n", cm_last_error()); return 1; }
        /* epoch 0 warms up (page cache, buffers); epoch 1 is timed */
        double best = 0, cpu = 1e9;
        for (int ep = 0; ep < 3; ep++) {
            cm_loader_start_epoch(l, ep);
            CmBatch *b;
            long long got = 0;
            double t = cm_now(), ct = cpu_now();
            while (cm_loader_next(l, &b) == 1) { got += b->n; cm_batch_free(b); }
            double rate = got / (cm_now() - t), cms = (cpu_now() - ct) / (double)got * 1e3;
            if (ep > 0 && rate > best) best = rate;
            if (ep > 0 && cms < cpu) cpu = cms;
        }
        CmLoaderStats st = cm_loader_stats(l);
        cm_loader_close(l);
        printf("  loader, %d worker%s (batch 32)          %8.1f samples/s  (%.2fx)  %.3f CPU ms/sample (%.2fx), %lld bad\n",
               workers, workers > 1 ? "s" : " ", best, best / base, cpu, cpu / base_cpu, (long long)st.bad_samples);
    }
    free(out);
    for (int i = 0; i < n; i++) free(jpgs[i]);
    free(jpgs); free(lens);
    cm_tokenizer_free(tok);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return 0;
}
