/*
 * server.h — the HTTP inference server of `clipmod serve` (libmicrohttpd; docs/serve.md).
 *
 *   POST /v1/classify   JSON {"image": "<base64>", "text": "..."} (or an array of them) or
 *                       multipart/form-data (parts "image", "text") -> the `predict` object(s)
 *                       {"label","class","probs"} + "classes", "top2", "model" and, with threshold
 *                       rules, "flagged"/"flagged_by". The head needs BOTH inputs of every item.
 *   POST /v1/embed      the same bodies, either input optional -> {"image_embedding":[E],
 *                       "text_embedding":[E]} (L2-normalised) for the inputs given.
 *   GET  /healthz /readyz /metrics (Prometheus text) and / (the self-contained web page).
 *
 * Threads: libmicrohttpd's fixed pool (opts.threads) parses bodies, decodes and transforms images
 * and tokenizes captions, then suspends the connection and queues the work; ONE batch worker runs
 * queued items together (up to max_batch, waiting at most max_wait_ms for more) through the shared
 * read-only model and resumes the connections. No request touches the file system.
 * defines: CmServeOpts, CmServer, cm_serve_*
 */
#ifndef CM_SERVE_SERVER_H
#define CM_SERVE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include "common/common.h"
#include "infer/thresholds.h"
#include "model/model.h"
#include "data/textenc.h"

typedef struct {
    const char *host;        /* address to bind ("127.0.0.1"; IPv6 literal allowed) */
    int port;                /* 0: an ephemeral port (cm_serve_port tells which) */
    int threads;             /* HTTP thread pool size */
    int max_connections;     /* open connections at most (bodies buffered: <= this x max_body) */
    int max_batch;           /* items per forward pass */
    int max_wait_ms;         /* how long the first queued item waits for company */
    int max_queue;           /* items waiting at most; more -> 429 + Retry-After */
    int max_items;           /* items of one request (JSON array) */
    size_t max_body;         /* request body bytes; more -> 413 */
    size_t max_caption;      /* caption bytes; more -> 413 */
    size_t max_pixels;       /* decoded image pixels; more -> 413 (0: the decoder's default) */
    int timeout_ms;          /* queued longer than this -> 503 */
    int compute_threads;     /* OpenMP threads of the batch worker (0: all cores) */
    const char *model_id;    /* "model" field of the answers */
    const CmThresholds *thresholds;   /* may be NULL (no "flagged" fields) */
    double load_seconds;     /* reported by /metrics */
} CmServeOpts;

typedef struct CmServer CmServer;

void cm_serve_opts_default(CmServeOpts *o);
/* Start serving m (shared read-only; must outlive the server) with tokenizer te. */
cm_status cm_serve_start(const CmServeOpts *o, const CmModel *m, CmTextEnc *te, CmServer **out);
/* The bound port (the ephemeral one when opts.port was 0). */
int cm_serve_port(const CmServer *s);
/* Stop accepting connections, answer new requests on open connections with 503, finish every
   request already accepted (waiting at most drain_ms), then stop the threads and free s.
   Returns the number of requests still unfinished when drain_ms ran out (0 normally). */
int cm_serve_shutdown(CmServer *s, int drain_ms);

/* The web page served at GET / (src/serve/page.c). */
extern const char cm_serve_page_html[];

#endif
