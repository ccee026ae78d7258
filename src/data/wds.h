/*
 * wds.h — WebDataset on top of tar.h (DESIGN §4.1, §4.2; webdataset's tar grouping; OpenCLIP v2.30 open_clip_train/data.py; the seed project's data code):
 *   - grouping tar members into samples exactly as webdataset's tariterators (key = path up to
 *     the first '.' of the basename, directory prefix included; extension = the rest,
 *     lower-cased; a new sample when the key changes or an extension repeats; names without a
 *     key, `__*__` metadata names and non-regular members skipped);
 *   - shard URLs: `::` sources, braceexpand (`{000..099}`, `{a,b}`, nesting, `\` escapes),
 *     upsampling weights per shard, weighted sampling with replacement, per-epoch shuffles;
 *   - epoch sizing of OpenCLIP's get_wds_dataset; sizes.json lookup;
 *   - labels from a sample's metadata JSON (ours and the seed project's);
 *   - a sample/shard writer on tar.h (members in sorted-extension order, as webdataset's
 *     TarWriter writes them), with a rolling shard writer that also writes sizes.json.
 * defines: CmWdsSample, CmWdsReader, cm_wds_*, cm_split_key, CmStrList, cm_brace_expand,
 *          CmShardList, cm_shardlist_*, CmEpochSize, cm_epoch_size, cm_label_from_json,
 *          CmShardWriter, cm_shard_writer_*
 */
#ifndef CM_WDS_H
#define CM_WDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "common/common.h"
#include "common/rng.h"

#define CM_WDS_MAX_FIELDS 16

typedef struct {
    char *ext;           /* lower-cased extension, e.g. "jpg", "txt.gz" */
    uint8_t *data;       /* size bytes + a NUL (NULL when the reader does not load data) */
    size_t size;
} CmWdsField;

typedef struct {
    char *key;
    char *url;           /* the shard path (owned by the sample) */
    uint64_t offset;     /* offset of the sample's first member header in the tar stream */
    int nfields;
    CmWdsField fields[CM_WDS_MAX_FIELDS];
    char *error;         /* non-NULL: the sample is damaged (over-limit or truncated member) */
} CmWdsSample;

typedef struct CmWdsReader CmWdsReader;

/* Split a member path into key and extension as webdataset's base_plus_ext regex
   (optional directory prefix, then non-dots, a dot, then no slashes) does (see wds.c). Returns false when the name has no key (skipped). */
bool cm_split_key(const char *path, size_t *key_len);
/* Whether webdataset's tar iterator skips this name (`__key__`-style metadata). */
bool cm_wds_meta_name(const char *path);

cm_status cm_wds_open(const char *path, bool load_data, uint64_t max_member, CmWdsReader **out);
/* 1: *out is the next sample (caller frees with cm_wds_sample_free); 0: end of shard;
   negative: the shard is damaged from here on (message names shard and offset); the reader
   has already returned every sample it could read (a sample cut by the damage comes back with
   `error` set first). */
int cm_wds_next(CmWdsReader *r, CmWdsSample **out);
const char *cm_wds_path(const CmWdsReader *r);
void cm_wds_close(CmWdsReader *r);
void cm_wds_sample_free(CmWdsSample *s);
const CmWdsField *cm_wds_field(const CmWdsSample *s, const char *ext);
/* The image field: first of jpg;png;jpeg;webp (OpenCLIP's rename order). */
const CmWdsField *cm_wds_image(const CmWdsSample *s);

/* ---- URLs ---- */
typedef struct { char **v; int n, cap; } CmStrList;
cm_status cm_strlist_push(CmStrList *l, const char *s, size_t n);
void cm_strlist_free(CmStrList *l);
/* braceexpand(pattern), appended to out. Unbalanced braces are an error. At most 10M names. */
cm_status cm_brace_expand(const char *pattern, CmStrList *out);

typedef struct {
    CmStrList urls;      /* every shard, sources in order */
    double *weights;     /* per shard (upsampling factor of its source); NULL when none given */
    int *source;         /* per shard: index of its `::` source */
    int nsources;
    double *cum;         /* cumulative weights for sampling (NULL when unweighted) */
} CmShardList;

/* spec: "a-{00..09}.tar::b.tar"; factors: "w1::w2" (NULL/"" for none; then the count must match
   the sources). flag names the option in error messages. */
cm_status cm_shardlist_init(CmShardList *sl, const char *spec, const char *factors, const char *flag);
void cm_shardlist_free(CmShardList *sl);
/* One shard index drawn with replacement, proportional to the weights (uniform if none):
   Python's random.choices(urls, weights) with our RNG. */
int cm_shardlist_draw(const CmShardList *sl, CmRng *rng);
/* Fisher-Yates shuffle of idx[0..n). */
void cm_shuffle_ints(int *idx, int n, CmRng *rng);

/* ---- epoch sizing (OpenCLIP v2.30 open_clip_train/data.py, get_wds_dataset) ---- */
typedef struct {
    int64_t num_samples;        /* per epoch, after rounding */
    int64_t num_batches;        /* global batches per epoch */
    int64_t num_worker_batches; /* batches each worker yields */
} CmEpochSize;
cm_status cm_epoch_size(int64_t train_num_samples, int batch_size, int world_size, int workers, CmEpochSize *out);
/* Total samples of the shards from sizes.json (shard basename -> count) or __len__ in each
   shard's directory. Error when neither exists or a shard is not listed. */
cm_status cm_dataset_size(const CmStrList *urls, int64_t *total);

/* ---- labels (DESIGN §4.2) ---- */
#define CM_NUM_CLASSES 7
extern const char *const CM_CLASS_NAMES[CM_NUM_CLASSES];
/* Our class id from a sample's metadata JSON: our "label" (0..6) when present with one of our
   "dataset" names; the seed project's rules otherwise ("dataset":"fakeedit" -> 6_way_label mapped,
   "tweet_id" -> MMHS 0 -> 0 else 6, anything else -> 0). Error (CM_ERR_FORMAT) on malformed
   JSON or an unknown/out-of-range label. */
cm_status cm_label_from_json(const char *json, size_t len, int *label);
/* The label of a sample, one rule for training, evaluation and inspect (DESIGN §4.2,
   docs/data.md): from its .json by cm_label_from_json; a sample without .json gets label 0 and
   *no_json = true (the callers count and report those). Errors as cm_label_from_json. */
cm_status cm_sample_label(const CmWdsSample *s, int *label, bool *no_json);
/* Fakeddit 6_way_label (0 True, 1 Satire, 2 False Connection, 3 Imposter, 4 Manipulated,
   5 Misleading) -> our class id; -1 when out of range. */
int cm_fakeddit_class(int six_way);

/* ---- writing ---- */
typedef struct { const char *ext; const void *data; size_t size; } CmWdsOut;
typedef struct CmTarWriter CmTarWriter;
/* Writes key.ext for each field, in sorted extension order (as webdataset's TarWriter). */
cm_status cm_wds_write_sample(CmTarWriter *w, const char *key, const CmWdsOut *fields, int n);

/* Rolling writer: dir/00000.tar, dir/00001.tar, ... with at most shard_size samples each;
   close writes dir/sizes.json ({"00000.tar": n, ...}). */
typedef struct CmShardWriter CmShardWriter;
cm_status cm_shard_writer_open(const char *dir, int shard_size, CmShardWriter **out);
cm_status cm_shard_writer_write(CmShardWriter *sw, const char *key, const CmWdsOut *fields, int n);
int64_t cm_shard_writer_count(const CmShardWriter *sw);
cm_status cm_shard_writer_close(CmShardWriter *sw);   /* frees sw (also on error) */

#endif
