/*
 * report.h — `clipmod report`: one self-contained HTML file (inline CSS and SVG drawn here; no
 * network, no script) about a training run and/or an evaluation (docs/report.md):
 *   summary; loss components, LR and logit scale per optimizer step (<run>/steps.jsonl);
 *   validation top-1 / top-2 / macro-F1 per epoch (<run>/results.jsonl); per-class precision /
 *   recall / F1 (+ AP and ROC AUC with scores) table; confusion-matrix heat map; per-class
 *   precision-recall curves with AP and ROC curves with AUC; reliability diagram with ECE; the
 *   most confident mistakes with thumbnails (re-read from the sample's shard by key) and
 *   captions. Every section is present with a stable id (sec-summary, sec-loss, sec-lr,
 *   sec-logit-scale, sec-validation, sec-classes, sec-confusion, sec-pr, sec-roc,
 *   sec-calibration, sec-mistakes); a section whose input is missing says what is missing.
 * Scores come from `clipmod eval --scores-out` (src/eval/scores.h). Without them the per-class
 * table and confusion matrix come from the run's last validation in results.jsonl.
 * defines: CmReportOpts, cm_report_opts_default, cm_report_html, cm_html_escape
 */
#ifndef CM_EVAL_REPORT_H
#define CM_EVAL_REPORT_H

#include <stddef.h>
#include "common/common.h"
#include "eval/scores.h"

typedef struct {
    const char *run_dir;          /* NULL: no training sections */
    const char *scores_path;      /* read when scores is NULL; NULL: no score sections */
    const CmScores *scores;       /* in-memory scores (eval --html); takes precedence */
    const char *scores_label;     /* shown as the source of the scores (default: scores_path) */
    const char *title;            /* default: "clipmod report" */
    int mistakes;                 /* most confident mistakes shown (default 12, 0: none) */
    int thumb_px;                 /* thumbnail side (default 112) */
} CmReportOpts;

CmReportOpts cm_report_opts_default(void);
/* Writes the report atomically to out_path. Errors: unreadable scores or a damaged
   results.jsonl line (naming file:line); missing run files only empty their sections; an
   unreadable shard only loses its thumbnails (said in the card). */
cm_status cm_report_html(const CmReportOpts *o, const char *out_path);

/* HTML-escape s (& < > " ') into out (cap bytes, always terminated); returns the length the
   whole escape needs (as snprintf). */
size_t cm_html_escape(const char *s, char *out, size_t cap);

#endif
