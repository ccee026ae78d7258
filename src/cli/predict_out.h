/*
 * predict_out.h — the output side of `clipmod predict` (docs/predict.md): result rows as JSON
 * lines or CSV, to stdout or atomically to a file, and the progress display on stderr.
 *
 * One row per scored input. Which identifying columns a row has depends on the input mode:
 *   pairs / --jsonl   (none in JSONL: the DESIGN §7 object; "image","text" in CSV)
 *   --data            "key", "shard"
 *   --images          "file"
 * then "label", "class", "probs" (JSONL) or one "p_<class name>" column per class (CSV).
 * A later "flagged" decision (--threshold rules) is one more field of PredRow and one more
 * column, written right after "class" by pred_out_row / pred_out_header.
 * defines: PredMode, PredFormat, PredRow, PredOut, pred_out_*, Progress, progress_*
 */
#ifndef CM_CLI_PREDICT_OUT_H
#define CM_CLI_PREDICT_OUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "common/common.h"

typedef enum { PRED_PAIRS = 0, PRED_SHARDS, PRED_IMAGES } PredMode;
typedef enum { PRED_JSONL = 0, PRED_CSV } PredFormat;

typedef struct {
    const char *key, *shard;     /* PRED_SHARDS */
    const char *file;            /* PRED_IMAGES */
    const char *image, *text;    /* PRED_PAIRS (CSV only) */
    const float *logits;         /* [n_classes] head logits; NULL for an error row */
    const char *error;           /* PRED_PAIRS: why this input gave no result */
} PredRow;

typedef struct {
    PredMode mode;
    PredFormat format;
    int n_classes;
    FILE *f;                     /* stdout or the atomic temp file */
    CmAtomicFile af;
    bool to_file;
    int64_t rows;
} PredOut;

/* path NULL or "-": stdout. Writes the CSV header. */
cm_status pred_out_open(PredOut *o, PredMode mode, PredFormat fmt, int n_classes, const char *path);
cm_status pred_out_row(PredOut *o, const PredRow *r);
/* Flush (streaming: after each batch). */
cm_status pred_out_flush(PredOut *o);
/* ok: commit the file (rename into place); !ok: remove the temp file. */
cm_status pred_out_close(PredOut *o, bool ok);

/* Softmax of logits in double (what every mode prints) and the arg max. */
int pred_softmax(const float *logits, int C, double *probs);
/* Class name (DESIGN §4.2 for 7 classes, else "class_<c>") into buf. */
const char *pred_class_name(int c, int C, char *buf, size_t n);

/* Progress on stderr: on a TTY one line rewritten with '\r' (count/total, rate, ETA) at most 5
   times a second, the cursor left at column 0 so that log lines printed meanwhile (the loader's
   bad-sample warnings) overwrite it instead of running on after it; otherwise a plain line
   every 10 seconds (the first at once). progress_done prints the summary line in both cases. */
typedef struct {
    bool enabled, tty;
    double t0, last, every_s;
    int64_t total;               /* 0: unknown (no ETA) */
    int last_len;
} Progress;
void progress_start(Progress *p, bool enabled, int64_t total);
void progress_update(Progress *p, int64_t done, int64_t bad);
void progress_done(Progress *p, int64_t done, int64_t bad);
/* Erase the TTY line (before printing something else on stderr). */
void progress_clear(Progress *p);

#endif
