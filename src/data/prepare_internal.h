/*
 * prepare_internal.h — the pipeline shared by the prepare commands (prepare.c): items are queued
 * with their caption, metadata JSON, class and image path; every CHUNK items the images are
 * loaded, letterboxed and JPEG-encoded in parallel, then the samples are written in order.
 * defines: PrepItem, Prep, cm_prep_init, cm_prep_add, cm_prep_finish, cm_prep_bad_row, cm_prep_default_shard_size
 */
#ifndef CM_PREPARE_INTERNAL_H
#define CM_PREPARE_INTERNAL_H

#include "data/prepare.h"

typedef struct {
    char *key, *caption, *meta, *image_path;
    int cls;
    uint8_t *jpg; size_t jpg_len;
    int status;            /* 0 ok, 1 missing image, 2 undecodable image */
    int dup_of;            /* -1, or the earlier item of this chunk with the same image */
    char err[300];
} PrepItem;

typedef struct CmShardWriter CmShardWriter;

typedef struct {
    CmPrepareOpts o;
    CmPrepareReport *rep;
    const char *dataset;
    CmShardWriter *w[7];
    PrepItem *items;
    int n;
    int64_t rows, logged;
    double t0, last_progress;
    char out_final[4096];  /* --out as given (trailing '/' removed) */
    char out_tmp[4200];    /* where this run writes: <out_final>.tmp.<pid> (p->o.out_dir points here) */
} Prep;

int cm_prep_default_shard_size(const char *name_or_split);
cm_status cm_prep_init(Prep *p, const CmPrepareOpts *o, CmPrepareReport *rep, const char *dataset, const char *split_hint);
/* Takes ownership of the strings (malloc'd). */
cm_status cm_prep_add(Prep *p, char *key, char *caption, char *meta, int cls, char *image_path);
void cm_prep_bad_row(Prep *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Flushes, closes the shard writers (sizes.json) and writes report.json. */
cm_status cm_prep_finish(Prep *p, cm_status st);
/* Replace every byte of s that does not start a valid UTF-8 sequence (overlongs, surrogates and
   code points above U+10FFFF included) by U+FFFD. Returns a malloc'd copy when something was
   replaced (*changed = true), else s itself; NULL on out of memory. */
char *cm_prep_utf8_repair(char *s, bool *changed);
/* strdup that reports OOM through cm_error. */
char *cm_prep_strdup(const char *s);
/* Trim ASCII whitespace in place; returns s. */
char *cm_prep_trim(char *s);
/* A key is usable when non-empty, <= 200 bytes, and made of [A-Za-z0-9_-]. */
bool cm_prep_key_ok(const char *k);

#endif
