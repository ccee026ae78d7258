/*
 * thresholds.h — `--threshold CLASS=P` rules: a flagged / not-flagged decision over the class
 * probabilities of one classified pair, shared by `clipmod serve` and `clipmod predict`.
 *
 *   Spec grammar:  RULE[,RULE...]   RULE = CLASS=P   CLASS = a class name (case-insensitive; " ", "_", "-" alike,
 *                  e.g. "Hate") or its index 0..n_classes-1;  P = a probability in [0,1].
 *   A pair is flagged when ANY rule's class has probability >= P (rules are an OR; one rule per
 *   class: giving the same class twice is an error, so a typo cannot silently override a rule).
 *   No rules: nothing is flagged, and callers leave the decision fields out of their output.
 *
 * Pure functions, no global state; a filled CmThresholds is read-only and may be shared by threads.
 * defines: CmThresholdRule, CmThresholds, cm_thresholds_*, CM_MAX_THRESHOLDS
 */
#ifndef CM_INFER_THRESHOLDS_H
#define CM_INFER_THRESHOLDS_H

#include <stdbool.h>
#include <stddef.h>
#include "common/common.h"

#define CM_MAX_THRESHOLDS 64

typedef struct { int cls; float p; } CmThresholdRule;
typedef struct { int n; CmThresholdRule rule[CM_MAX_THRESHOLDS]; } CmThresholds;

/* Add the rules of one spec ("Hate=0.5", "6=0.5", "Hate=0.5,Satire/Parody=0.9") to t. n_classes bounds
   the indices; class names are those of cm_class_name. On error t is unchanged and the message
   (CM_ERR_ARG) names the spec and the bad part. */
cm_status cm_thresholds_add(CmThresholds *t, const char *spec, int n_classes);

/* Whether probs[0..n_classes) trips a rule. fired (may be NULL) gets, for each rule index i, whether
   rule i fired (room for t->n bools). */
bool cm_thresholds_flagged(const CmThresholds *t, const float *probs, int n_classes, bool *fired);

/* The decision as JSON members (no braces): "flagged":true,"flagged_by":["Hate"] into buf
   (always NUL-terminated; returns the length it needed, like snprintf). */
int cm_thresholds_json(const CmThresholds *t, const float *probs, int n_classes, char *buf, size_t cap);

#endif
