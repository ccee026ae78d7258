/*
 * prepare.h — `clipmod prepare`: the raw datasets in their published layouts -> class shards
 * (DESIGN §4.3, §7; the datasets are described in docs/data.md):
 *   OUT/class_<id>/00000.tar ... + OUT/class_<id>/sizes.json (only classes that got samples),
 *   OUT/report.json {"written","missing_images","bad_rows","bad_images","repaired_text","per_class":{"0".."6"}}.
 *   A caption with invalid UTF-8 (a raw Fakeddit title) is repaired, not dropped: each byte that
 *   does not start a valid sequence becomes U+FFFD, and the caption is counted in repaired_text.
 * Each sample: <key>.jpg (the image letterboxed onto a white 256x256 canvas, JPEG q95),
 * <key>.txt (caption), <key>.json {"label","dataset","source_label","id",...}.
 *   - Fakeddit: a multimodal_*.tsv (CSV quoting inside TSV, quoted newlines), caption =
 *     clean_title (title when empty), class from 6_way_label mapped per DESIGN §4.2, image
 *     IMAGES/<id>.jpg whatever its real format. subreddit/domain/author are never used.
 *   - MMHS150K: ROOT/MMHS150K_GT.json + ROOT/splits/<split>_ids.txt + ROOT/img_resized/<id>.jpg
 *     (+ ROOT/img_txt/<id>.json OCR text kept in the metadata); caption = tweet text with URLs
 *     removed; Hate (6) when at least two annotator labels are non-zero, any number of labels.
 *   - COCO: captions_*.json + IMAGES/<file_name> (or the same stem as .png/.jpeg/.webp); one
 *     sample per caption, trimmed; class 0.
 * Output is never mixed with an earlier run: everything is written into the sibling folder
 * OUT.tmp.<pid> and renamed to OUT at the end (on failure it is removed). OUT must be absent or
 * empty; with overwrite, a non-empty OUT that holds only an earlier prepare's output (report.json,
 * class_<id>/) is replaced in one atomic rename (renameat2 RENAME_EXCHANGE; the old folder is
 * then deleted), anything else is refused (CM_ERR_ARG). Temp folders of dead processes are removed.
 * Missing images and bad rows are counted and reported, never fatal. Images are processed in
 * parallel (OpenMP) and written in input order, so the output is deterministic.
 * defines: CmPrepareOpts, CmPrepareReport, cm_prepare_fakeddit/mmhs150k/coco, CmCsv, cm_csv_*
 */
#ifndef CM_PREPARE_H
#define CM_PREPARE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "common/common.h"

typedef struct {
    const char *out_dir;
    int shard_size;        /* 0: 10,000 for a train split, 1,000 for val/test */
    int image_size;        /* 0: 256 */
    int jpeg_quality;      /* 0: 95 */
    int64_t limit;         /* stop after this many input rows (0: all) */
    bool quiet;            /* no progress lines */
    bool overwrite;        /* replace a non-empty out_dir that holds an earlier prepare's output */
} CmPrepareOpts;

typedef struct {
    int64_t written, missing_images, bad_rows, bad_images;
    int64_t repaired_text;   /* captions with invalid UTF-8, written with U+FFFD in place of each bad byte */
    int64_t per_class[7];
} CmPrepareReport;

cm_status cm_prepare_fakeddit(const char *tsv, const char *images_dir, const CmPrepareOpts *o, CmPrepareReport *rep);
cm_status cm_prepare_mmhs150k(const char *root, const char *split, const CmPrepareOpts *o, CmPrepareReport *rep);
cm_status cm_prepare_coco(const char *captions, const char *images_dir, const CmPrepareOpts *o, CmPrepareReport *rep);

/* CSV reader (RFC 4180 quoting with any delimiter; quoted fields may hold the delimiter,
   doubled quotes and newlines; CRLF or LF line ends). */
typedef struct {
    const char *p, *end;
    char **fields;         /* current record's fields (NUL-terminated, owned) */
    int nfields, cap;
    char *buf; size_t buf_len, buf_cap;
    int64_t line;          /* 1-based line where the current record starts */
    int64_t pos_line;      /* line of the read position */
    char delim;
} CmCsv;
void cm_csv_init(CmCsv *c, const char *data, size_t len, char delim);
/* 1: a record was read; 0: end of input; negative: malformed (an unterminated quote). */
int cm_csv_next(CmCsv *c);
void cm_csv_free(CmCsv *c);

#endif
