/*
 * server.c — `clipmod serve`: libmicrohttpd front end, request queue, batch worker, metrics
 * (see server.h and docs/serve.md).
 *
 * A request's life: the pool thread gets the headers (an oversize Content-Length is answered 413
 * at once and the connection closed), collects the body (an oversize chunked body is read and
 * discarded, then 413), parses it (request.c), decodes/transforms the images and tokenizes the
 * captions into a Job, and — under the queue lock — checks the queue limit (429), suspends the
 * connection and queues the job. The worker takes jobs in order into one forward pass, writes the
 * outputs into the jobs, marks them done and resumes their connections; the pool thread is then
 * called again and formats the answer. Jobs that waited past --timeout-ms are answered 503 by the
 * worker without running. The request context (and its job) is freed by the "request completed"
 * callback, which also counts the request in the metrics.
 */
#include "serve/server.h"
#include "model/infer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include "data/image.h"
#include "kernels/ops.h"
#include "serve/request.h"
#include "eval/metrics.h"

enum { EP_NONE = 0, EP_CLASSIFY, EP_EMBED };

typedef struct Job {
    struct Job *next;
    int kind;                /* EP_CLASSIFY / EP_EMBED */
    int n;
    float *img;              /* [n,3,S,S] (rows without an image unused) */
    int32_t *tok;            /* [n,ctx] */
    bool *has_img, *has_txt;
    float *U, *V, *H;        /* outputs [n,E], [n,E], [n,C] */
    double t_queued, deadline;
    bool done;
    int http;                /* 200, or the error status set by the worker */
    char err[256];
} Job;

typedef struct Req {
    struct CmServer *srv;
    struct MHD_Connection *conn;
    double t0;
    int endpoint;
    bool is_post, too_big, queued, array;
    uint8_t *body;
    size_t len, cap;
    Job job;
    int status;              /* HTTP status answered (for the metrics) */
} Req;

#define N_LAT_BUCKETS 14
static const double LAT_BOUNDS[N_LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
#define N_BATCH_BUCKETS 10
static const int BATCH_BOUNDS[N_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

struct CmServer {
    CmServeOpts o;
    const CmModel *m;
    CmTextEnc *te;
    int S, ctx, E, C, port;
    struct MHD_Daemon *d;
    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_idle;
    Job *head, *tail;
    int queued_items;
    int inflight;            /* requests between their first handler call and completion */
    bool draining, stop;
    pthread_t worker;
    bool worker_started;
    /* metrics (under mu) */
    uint64_t by_status[600];
    uint64_t lat_count[N_LAT_BUCKETS + 1];
    double lat_sum;
    uint64_t lat_n;
    uint64_t batch_count[N_BATCH_BUCKETS + 1];
    uint64_t batch_items, batch_n;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cm_serve_opts_default(CmServeOpts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->threads = 4;
    o->max_connections = 256;
    o->max_batch = 16;
    o->max_wait_ms = 5;
    o->max_queue = 256;
    o->max_items = 64;
    o->max_body = (size_t)16 << 20;
    o->max_caption = 8192;
    o->max_pixels = 0;
    o->timeout_ms = 30000;
    o->model_id = "clipmod";
}

static void job_free(Job *j) {
    cm_free(j->img);
    cm_free(j->tok);
    free(j->has_img);
    free(j->has_txt);
    cm_free(j->U);
    cm_free(j->V);
    cm_free(j->H);
    memset(j, 0, sizeof *j);
}

// ---------------------------------------------------------------------------------------------
// batch worker

static void record_batch(CmServer *s, int b) {
    int k = 0;
    while (k < N_BATCH_BUCKETS && b > BATCH_BOUNDS[k]) k++;
    s->batch_count[k]++;
    s->batch_items += (uint64_t)b;
    s->batch_n++;
}

/* Run the classify jobs jobs[0..nj) as forward passes of at most max_batch items. */
static void run_classify(CmServer *s, Job **jobs, int nj, float *img, int32_t *tok, float *U, float *V, float *H) {
    const size_t isz = (size_t)3 * s->S * s->S;
    const int B = s->o.max_batch;
    int j = 0, i = 0;  /* next (job, item) to place */
    while (j < nj) {
        int k = 0, j0 = j, i0 = i;
        while (j < nj && k < B) {
            memcpy(img + (size_t)k * isz, jobs[j]->img + (size_t)i * isz, isz * sizeof(float));
            memcpy(tok + (size_t)k * s->ctx, jobs[j]->tok + (size_t)i * s->ctx, (size_t)s->ctx * sizeof(int32_t));
            k++;
            if (++i == jobs[j]->n) { j++; i = 0; }
        }
        cm_status st = cm_model_forward(s->m, NULL, img, tok, k, false, U, V, H);
        pthread_mutex_lock(&s->mu);
        record_batch(s, k);
        pthread_mutex_unlock(&s->mu);
        /* scatter back */
        int jj = j0, ii = i0;
        for (int r = 0; r < k; r++) {
            Job *J = jobs[jj];
            if (st) { J->http = 500; snprintf(J->err, sizeof J->err, "forward pass failed: %s", cm_last_error()); }
            else {
                memcpy(J->U + (size_t)ii * s->E, U + (size_t)r * s->E, (size_t)s->E * sizeof(float));
                memcpy(J->V + (size_t)ii * s->E, V + (size_t)r * s->E, (size_t)s->E * sizeof(float));
                memcpy(J->H + (size_t)ii * s->C, H + (size_t)r * s->C, (size_t)s->C * sizeof(float));
            }
            if (++ii == J->n) { jj++; ii = 0; }
        }
    }
}

/* An embed job: the images it has through the image tower, the texts through the text tower. */
static void run_embed(CmServer *s, Job *J, float *img, int32_t *tok, float *U) {
    const size_t isz = (size_t)3 * s->S * s->S;
    for (int pass = 0; pass < 2 && J->http == 200; pass++) {
        int i = 0;
        while (i < J->n) {
            int k = 0, idx[512];
            int cap = s->o.max_batch < 512 ? s->o.max_batch : 512;
            for (; i < J->n && k < cap; i++) {
                if (pass == 0 ? !J->has_img[i] : !J->has_txt[i]) continue;
                if (pass == 0) memcpy(img + (size_t)k * isz, J->img + (size_t)i * isz, isz * sizeof(float));
                else memcpy(tok + (size_t)k * s->ctx, J->tok + (size_t)i * s->ctx, (size_t)s->ctx * sizeof(int32_t));
                idx[k++] = i;
            }
            if (!k) continue;
            cm_status st = pass == 0 ? cm_encode_image(s->m, img, k, NULL, U) : cm_encode_text(s->m, tok, k, NULL, U);
            pthread_mutex_lock(&s->mu);
            record_batch(s, k);
            pthread_mutex_unlock(&s->mu);
            if (st) { J->http = 500; snprintf(J->err, sizeof J->err, "encoder failed: %s", cm_last_error()); break; }
            for (int r = 0; r < k; r++)
                memcpy((pass == 0 ? J->U : J->V) + (size_t)idx[r] * s->E, U + (size_t)r * s->E, (size_t)s->E * sizeof(float));
        }
    }
}

static void *worker_main(void *arg) {
    CmServer *s = arg;
    cm_threads_set(s->o.compute_threads);
    const int B = s->o.max_batch;
    float *img = cm_malloc((size_t)B * 3 * s->S * s->S * sizeof(float), "serve batch images");
    int32_t *tok = cm_malloc((size_t)B * s->ctx * sizeof(int32_t), "serve batch tokens");
    float *U = cm_malloc((size_t)B * s->E * sizeof(float), "serve batch"), *V = cm_malloc((size_t)B * s->E * sizeof(float), "serve batch"),
          *H = cm_malloc((size_t)B * (s->C ? s->C : 1) * sizeof(float), "serve batch");
    Job **take = calloc((size_t)B + 1, sizeof *take);
    bool ok = img && tok && U && V && H && take;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* answer the jobs that waited too long */
        double now = now_s();
        Job **pp = &s->head, *expired = NULL;
        s->tail = NULL;
        while (*pp) {
            Job *J = *pp;
            if (now >= J->deadline || !ok) {
                *pp = J->next;
                s->queued_items -= J->n;
                J->http = 503;
                if (ok) snprintf(J->err, sizeof J->err, "timed out after %d ms in the queue (server busy)", s->o.timeout_ms);
                else snprintf(J->err, sizeof J->err, "server out of memory for its batch buffers");
                J->next = expired;
                expired = J;
            } else {
                s->tail = J;
                pp = &J->next;
            }
        }
        if (expired) {
            Job *done[64];
            int nd = 0;
            for (Job *J = expired; J; J = J->next) J->done = true;
            /* resume outside the lock (the handler may run at once and take the lock) */
            while (expired) {
                nd = 0;
                while (expired && nd < 64) { done[nd++] = expired; expired = expired->next; }
                struct MHD_Connection *cs[64];
                for (int q = 0; q < nd; q++) cs[q] = ((Req *)((char *)done[q] - offsetof(Req, job)))->conn;
                pthread_mutex_unlock(&s->mu);
                for (int q = 0; q < nd; q++) MHD_resume_connection(cs[q]);
                pthread_mutex_lock(&s->mu);
            }
            continue;
        }
        if (!s->head) {
            if (s->stop) break;
            pthread_cond_wait(&s->cv_work, &s->mu);
            continue;
        }
        double ready_at = s->head->t_queued + s->o.max_wait_ms * 1e-3;
        if (s->queued_items < B && now < ready_at && !s->draining && !s->stop) {
            double until = ready_at;
            for (Job *J = s->head; J; J = J->next) if (J->deadline < until) until = J->deadline;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            double wait = until - now;
            ts.tv_sec += (time_t)wait;
            ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9) + 100000;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&s->cv_work, &s->mu, &ts);
            continue;
        }
        /* take: the head job, then following classify jobs while they fit */
        int nj = 0, items = 0;
        int kind = s->head->kind;
        while (s->head && nj < B && s->head->kind == kind && (nj == 0 || (kind == EP_CLASSIFY && items + s->head->n <= B))) {
            Job *J = s->head;
            s->head = J->next;
            if (!s->head) s->tail = NULL;
            s->queued_items -= J->n;
            items += J->n;
            take[nj++] = J;
        }
        pthread_mutex_unlock(&s->mu);
        if (kind == EP_CLASSIFY) run_classify(s, take, nj, img, tok, U, V, H);
        else run_embed(s, take[0], img, tok, U);
        pthread_mutex_lock(&s->mu);
        for (int q = 0; q < nj; q++) take[q]->done = true;
        struct MHD_Connection *cs[B + 1];
        for (int q = 0; q < nj; q++) cs[q] = ((Req *)((char *)take[q] - offsetof(Req, job)))->conn;
        pthread_mutex_unlock(&s->mu);
        for (int q = 0; q < nj; q++) MHD_resume_connection(cs[q]);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    cm_free(img); cm_free(tok); cm_free(U); cm_free(V); cm_free(H);
    free(take);
    cm_bf16_release();   /* the idle cached oneDNN primitives */
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// answers

static enum MHD_Result reply(Req *r, int status, const char *ctype, char *body, size_t len, bool close) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) { free(body); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == 429) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 503 && close) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");   /* draining */
    if (close) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result reply_json(Req *r, int status, CmJBuf *b, bool close) {
    if (b->oom || !b->s) {
        cm_jbuf_free(b);
        char *e = strdup("{\"error\":\"server out of memory formatting the answer\"}\n");
        return e ? reply(r, 500, "application/json", e, strlen(e), close) : MHD_NO;
    }
    cm_jbuf_printf(b, "\n");
    size_t len = b->len;
    char *s = b->s;
    b->s = NULL;
    cm_jbuf_free(b);
    return s ? reply(r, status, "application/json", s, len, close) : MHD_NO;
}

static enum MHD_Result reply_error(Req *r, int status, const char *msg, bool close) {
    CmJBuf b = {0};
    cm_jbuf_printf(&b, "{\"error\":");
    cm_jbuf_str(&b, msg);
    cm_jbuf_printf(&b, ",\"status\":%d}", status);
    return reply_json(r, status, &b, close);
}

/* A JSON number; non-finite values (a broken model) become null, never invalid JSON. */
static void jnum(CmJBuf *b, const char *sep, double v) {
    if (isfinite(v)) cm_jbuf_printf(b, "%s%.7g", sep, v);
    else cm_jbuf_printf(b, "%snull", sep);
}

static const char *class_label(int c, char *buf, size_t n) {
    const char *name = cm_class_name(c);
    if (name) return name;
    snprintf(buf, n, "class_%d", c);
    return buf;
}

static void format_classify_item(CmServer *s, const Job *J, int i, CmJBuf *b) {
    const int C = s->C;
    const float *h = J->H + (size_t)i * C;
    float probs[CM_MAX_CLASSES];
    double pd[CM_MAX_CLASSES];
    cm_class_probs(h, C, pd, probs);   /* C <= CM_MAX_CLASSES (checked when the server opens) */
    int top[2] = {0, 0};
    cm_topk(h, C, C >= 2 ? 2 : 1, top);
    char nb[32];
    cm_jbuf_printf(b, "{\"label\":");
    cm_jbuf_str(b, class_label(top[0], nb, sizeof nb));
    cm_jbuf_printf(b, ",\"class\":%d,\"probs\":[", top[0]);
    for (int c = 0; c < C; c++) jnum(b, c ? "," : "", pd[c]);
    cm_jbuf_printf(b, "],\"top2\":[");
    for (int k = 0; k < (C >= 2 ? 2 : 1); k++) {
        cm_jbuf_printf(b, "%s{\"class\":%d,\"label\":", k ? "," : "", top[k]);
        cm_jbuf_str(b, class_label(top[k], nb, sizeof nb));
        jnum(b, ",\"prob\":", pd[top[k]]);
        cm_jbuf_printf(b, "}");
    }
    cm_jbuf_printf(b, "],\"classes\":[");
    for (int c = 0; c < C; c++) { if (c) cm_jbuf_printf(b, ","); cm_jbuf_str(b, class_label(c, nb, sizeof nb)); }
    cm_jbuf_printf(b, "],\"model\":");
    cm_jbuf_str(b, s->o.model_id ? s->o.model_id : "clipmod");
    if (s->o.thresholds && s->o.thresholds->n) {
        char dec[2048];
        cm_thresholds_json(s->o.thresholds, probs, C, dec, sizeof dec);
        cm_jbuf_printf(b, ",%s", dec);
    }
    cm_jbuf_printf(b, "}");
}

static void format_embed_item(CmServer *s, const Job *J, int i, CmJBuf *b) {
    cm_jbuf_printf(b, "{\"dim\":%d", s->E);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0 ? !J->has_img[i] : !J->has_txt[i]) continue;
        const float *e = (pass == 0 ? J->U : J->V) + (size_t)i * s->E;
        cm_jbuf_printf(b, ",\"%s_embedding\":[", pass == 0 ? "image" : "text");
        for (int k = 0; k < s->E; k++) jnum(b, k ? "," : "", e[k]);
        cm_jbuf_printf(b, "]");
    }
    cm_jbuf_printf(b, ",\"model\":");
    cm_jbuf_str(b, s->o.model_id ? s->o.model_id : "clipmod");
    cm_jbuf_printf(b, "}");
}

static enum MHD_Result reply_job(Req *r, bool array) {
    CmServer *s = r->srv;
    Job *J = &r->job;
    if (J->http != 200) return reply_error(r, J->http, J->err, false);
    CmJBuf b = {0};
    if (array) cm_jbuf_printf(&b, "[");
    for (int i = 0; i < J->n; i++) {
        if (i) cm_jbuf_printf(&b, ",");
        if (r->endpoint == EP_CLASSIFY) format_classify_item(s, J, i, &b);
        else format_embed_item(s, J, i, &b);
    }
    if (array) cm_jbuf_printf(&b, "]");
    return reply_json(r, 200, &b, false);
}

static enum MHD_Result reply_metrics(Req *r) {
    CmServer *s = r->srv;
    CmJBuf b = {0};
    pthread_mutex_lock(&s->mu);
    cm_jbuf_printf(&b, "# HELP clipmod_http_requests_total HTTP requests answered, by status code.\n"
                       "# TYPE clipmod_http_requests_total counter\n");
    bool any = false;
    for (int c = 100; c < 600; c++)
        if (s->by_status[c]) { cm_jbuf_printf(&b, "clipmod_http_requests_total{code=\"%d\"} %llu\n", c, (unsigned long long)s->by_status[c]); any = true; }
    if (!any) cm_jbuf_printf(&b, "clipmod_http_requests_total{code=\"200\"} 0\n");
    cm_jbuf_printf(&b, "# HELP clipmod_request_duration_seconds Time from the request's headers to its completion.\n"
                       "# TYPE clipmod_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k <= N_LAT_BUCKETS; k++) {
        cum += s->lat_count[k];
        if (k < N_LAT_BUCKETS) cm_jbuf_printf(&b, "clipmod_request_duration_seconds_bucket{le=\"%g\"} %llu\n", LAT_BOUNDS[k], (unsigned long long)cum);
        else cm_jbuf_printf(&b, "clipmod_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    cm_jbuf_printf(&b, "clipmod_request_duration_seconds_sum %.6f\nclipmod_request_duration_seconds_count %llu\n", s->lat_sum,
                   (unsigned long long)s->lat_n);
    cm_jbuf_printf(&b, "# HELP clipmod_batch_size Items per forward pass of the batch worker.\n# TYPE clipmod_batch_size histogram\n");
    cum = 0;
    for (int k = 0; k <= N_BATCH_BUCKETS; k++) {
        cum += s->batch_count[k];
        if (k < N_BATCH_BUCKETS) cm_jbuf_printf(&b, "clipmod_batch_size_bucket{le=\"%d\"} %llu\n", BATCH_BOUNDS[k], (unsigned long long)cum);
        else cm_jbuf_printf(&b, "clipmod_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    cm_jbuf_printf(&b, "clipmod_batch_size_sum %llu\nclipmod_batch_size_count %llu\n", (unsigned long long)s->batch_items,
                   (unsigned long long)s->batch_n);
    cm_jbuf_printf(&b, "# HELP clipmod_queue_depth Items waiting for the batch worker.\n# TYPE clipmod_queue_depth gauge\nclipmod_queue_depth %d\n",
                   s->queued_items);
    cm_jbuf_printf(&b, "# HELP clipmod_requests_in_flight Requests accepted and not yet completed (this one not counted).\n"
                       "# TYPE clipmod_requests_in_flight gauge\nclipmod_requests_in_flight %d\n", s->inflight - 1);
    cm_jbuf_printf(&b, "# HELP clipmod_model_load_seconds Time to open the model (and merge LoRA) at start-up.\n"
                       "# TYPE clipmod_model_load_seconds gauge\nclipmod_model_load_seconds %.6f\n", s->o.load_seconds);
    pthread_mutex_unlock(&s->mu);
    if (b.oom || !b.s) { cm_jbuf_free(&b); return reply_error(r, 500, "out of memory", false); }
    char *t = b.s;
    size_t len = b.len;
    b.s = NULL;
    return reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", t, len, false);
}

static enum MHD_Result reply_text(Req *r, int status, const char *ctype, const char *text) {
    char *t = strdup(text);
    return t ? reply(r, status, ctype, t, strlen(t), false) : MHD_NO;
}

// ---------------------------------------------------------------------------------------------
// request handling

/* Parse, check and preprocess the body into r->job; on failure answer and return false. */
static bool prepare_job(Req *r, CmReqBatch *rb, enum MHD_Result *ret) {
    CmServer *s = r->srv;
    const char *ctype = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    CmReqLimits lim = {s->o.max_caption, s->o.max_items};
    int http = 400;
    if (cm_req_parse(ctype, r->body, r->len, &lim, rb, &http)) { *ret = reply_error(r, http, cm_last_error(), false); return false; }
    char msg[512];
    Job *J = &r->job;
    const int n = rb->n;
    const size_t isz = (size_t)3 * s->S * s->S;
    for (int i = 0; i < n; i++) {
        const CmReqItem *it = &rb->items[i];
        char where[32] = "";
        if (rb->array) snprintf(where, sizeof where, "item %d: ", i);
        if (r->endpoint == EP_CLASSIFY && (!it->image || !it->text)) {
            snprintf(msg, sizeof msg, "%sno \"%s\": the classification head takes the image and the text features together, "
                     "so /v1/classify needs both \"image\" and \"text\" (/v1/embed takes either alone)", where, it->image ? "text" : "image");
            *ret = reply_error(r, 400, msg, false);
            return false;
        }
        if (!it->image && !it->text) {
            snprintf(msg, sizeof msg, "%sneither \"image\" nor \"text\" given", where);
            *ret = reply_error(r, 400, msg, false);
            return false;
        }
    }
    J->kind = r->endpoint;
    J->n = n;
    J->img = cm_malloc((size_t)n * isz * sizeof(float), "request images");
    J->tok = cm_calloc((size_t)n * s->ctx, sizeof(int32_t), "request tokens");
    J->has_img = calloc((size_t)n, sizeof(bool));
    J->has_txt = calloc((size_t)n, sizeof(bool));
    J->U = cm_malloc((size_t)n * s->E * sizeof(float), "request outputs");
    J->V = cm_malloc((size_t)n * s->E * sizeof(float), "request outputs");
    J->H = cm_malloc((size_t)n * (s->C ? s->C : 1) * sizeof(float), "request outputs");
    if (!J->img || !J->tok || !J->has_img || !J->has_txt || !J->U || !J->V || !J->H) {
        *ret = reply_error(r, 503, "server out of memory for this request", false);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const CmReqItem *it = &rb->items[i];
        char what[32];
        snprintf(what, sizeof what, rb->array ? "item %d: image" : "image", i);
        if (it->image) {
            CmImage im = {0};
            cm_status st = cm_image_decode(it->image, it->image_len, what, s->o.max_pixels, &im);
            if (!st) st = cm_transform_eval(&im, s->S, &CM_CLIP_NORMALIZE, J->img + (size_t)i * isz);
            cm_image_free(&im);
            if (st) {
                int code = (st == CM_ERR_OOM && strstr(cm_last_error(), "exceeds the limit")) ? 413 : st == CM_ERR_OOM ? 503 : 400;
                *ret = reply_error(r, code, cm_last_error(), false);
                return false;
            }
            J->has_img[i] = true;
        }
        if (it->text) {
            if (cm_textenc_encode(s->te, it->text, it->text_len, J->tok + (size_t)i * s->ctx, s->ctx)) {
                snprintf(msg, sizeof msg, "%stext: %s", rb->array ? "item: " : "", cm_last_error());
                *ret = reply_error(r, 400, msg, false);
                return false;
            }
            J->has_txt[i] = true;
        }
    }
    J->http = 200;
    return true;
}

static enum MHD_Result handle_post(Req *r) {
    CmServer *s = r->srv;
    if (r->endpoint == EP_CLASSIFY && !s->m->cfg.has_head)
        return reply_error(r, 501, "this model has no classification head: only /v1/embed is available", false);
    CmReqBatch rb;
    enum MHD_Result ret = MHD_YES;
    bool ok = prepare_job(r, &rb, &ret);
    bool array = rb.array;
    cm_req_batch_free(&rb);
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    if (!ok) { job_free(&r->job); return ret; }
    Job *J = &r->job;
    J->done = false;
    J->t_queued = now_s();
    J->deadline = J->t_queued + s->o.timeout_ms * 1e-3;
    J->next = NULL;
    r->queued = true;
    r->array = array;
    pthread_mutex_lock(&s->mu);
    if (s->draining) {
        pthread_mutex_unlock(&s->mu);
        r->queued = false;
        job_free(J);
        return reply_error(r, 503, "server is shutting down", true);
    }
    if (s->queued_items + J->n > s->o.max_queue && s->queued_items > 0) {
        int q = s->queued_items;
        pthread_mutex_unlock(&s->mu);
        r->queued = false;
        job_free(J);
        char msg[160];
        snprintf(msg, sizeof msg, "queue full (%d items waiting, limit %d): retry later", q, s->o.max_queue);
        return reply_error(r, 429, msg, false);
    }
    MHD_suspend_connection(r->conn);
    if (s->tail) s->tail->next = J; else s->head = J;
    s->tail = J;
    s->queued_items += J->n;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

static int endpoint_of(const char *url) {
    if (!strcmp(url, "/v1/classify")) return EP_CLASSIFY;
    if (!strcmp(url, "/v1/embed")) return EP_EMBED;
    return EP_NONE;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    CmServer *s = cls;
    Req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = conn;
        r->t0 = now_s();
        r->endpoint = endpoint_of(url);
        r->is_post = !strcmp(method, "POST");
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->inflight++;
        bool draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        if (draining) return reply_error(r, 503, "server is shutting down", true);
        if (r->is_post && r->endpoint != EP_NONE) {
            const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(cl, &end, 10);
                if (errno || end == cl || v > s->o.max_body) {
                    char msg[160];
                    snprintf(msg, sizeof msg, "request body of %s bytes is over the limit of %zu bytes", cl, s->o.max_body);
                    for (char *p = msg; *p; p++) if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') *p = '?';
                    r->too_big = true;
                    return reply_error(r, 413, msg, true);
                }
            }
        }
        return MHD_YES;
    }
    if (r->status) {               /* answered already (early 413 / draining): discard any body */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->is_post || r->endpoint == EP_NONE || r->too_big || r->len + *upload_size > s->o.max_body) {
            r->too_big = r->too_big || (r->is_post && r->endpoint != EP_NONE);
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
        } else {
            if (r->len + *upload_size > r->cap) {
                size_t cap = r->cap ? r->cap : 65536;
                while (cap < r->len + *upload_size) cap *= 2;
                if (cap > s->o.max_body) cap = s->o.max_body;
                uint8_t *nb = realloc(r->body, cap + 1);
                if (!nb) return MHD_NO;
                r->body = nb;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    /* the whole request is here */
    if (r->queued) {
        if (!r->job.done) return MHD_YES;   /* should not happen: resumed only when done */
        return reply_job(r, r->array);
    }
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (r->endpoint != EP_NONE) {
        if (!r->is_post) return reply_error(r, 405, "use POST for this endpoint", false);
        if (r->too_big) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body is over the limit of %zu bytes", s->o.max_body);
            return reply_error(r, 413, msg, true);
        }
        return handle_post(r);
    }
    if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz") || !strcmp(url, "/metrics") || !strcmp(url, "/")) {
        if (!get) return reply_error(r, 405, "use GET for this endpoint", false);
        if (!strcmp(url, "/healthz")) return reply_text(r, 200, "application/json", "{\"status\":\"ok\"}\n");
        if (!strcmp(url, "/readyz")) {
            pthread_mutex_lock(&s->mu);
            bool d = s->draining;
            int q = s->queued_items;
            pthread_mutex_unlock(&s->mu);
            if (d) return reply_error(r, 503, "server is shutting down", false);
            char buf[128];
            snprintf(buf, sizeof buf, "{\"ready\":true,\"queue_depth\":%d}\n", q);
            return reply_text(r, 200, "application/json", buf);
        }
        if (!strcmp(url, "/metrics")) return reply_metrics(r);
        return reply_text(r, 200, "text/html; charset=utf-8", cm_serve_page_html);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "no such endpoint: %.100s (see GET / for the API)", url);
    for (char *p = msg; *p; p++) if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') *p = '?';
    return reply_error(r, 404, msg, false);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    CmServer *s = cls;
    Req *r = *con_cls;
    if (!r) return;
    double dt = now_s() - r->t0;
    pthread_mutex_lock(&s->mu);
    if (r->status >= 100 && r->status < 600) s->by_status[r->status]++;
    int k = 0;
    while (k < N_LAT_BUCKETS && dt > LAT_BOUNDS[k]) k++;
    s->lat_count[k]++;
    s->lat_sum += dt;
    s->lat_n++;
    s->inflight--;
    pthread_cond_broadcast(&s->cv_idle);
    pthread_mutex_unlock(&s->mu);
    job_free(&r->job);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
    cm_debug("libmicrohttpd: %s", buf);
}

// ---------------------------------------------------------------------------------------------

cm_status cm_serve_start(const CmServeOpts *o, const CmModel *m, CmTextEnc *te, CmServer **out) {
    *out = NULL;
    if (o->max_batch < 1 || o->max_batch > 4096) return cm_error(CM_ERR_ARG, "--max-batch %d: must be 1..4096", o->max_batch);
    if (o->max_wait_ms < 0 || o->max_wait_ms > 60000) return cm_error(CM_ERR_ARG, "--max-wait-ms %d: must be 0..60000", o->max_wait_ms);
    if (o->threads < 1 || o->threads > 256) return cm_error(CM_ERR_ARG, "--threads %d: must be 1..256", o->threads);
    if (o->max_connections < 1 || o->max_connections > 65536) return cm_error(CM_ERR_ARG, "--max-connections %d: must be 1..65536", o->max_connections);
    if (o->max_queue < 1) return cm_error(CM_ERR_ARG, "--max-queue %d: must be >= 1", o->max_queue);
    if (o->max_items < 1) return cm_error(CM_ERR_ARG, "--max-items %d: must be >= 1", o->max_items);
    if (o->timeout_ms < 1) return cm_error(CM_ERR_ARG, "--timeout-ms %d: must be >= 1", o->timeout_ms);
    if (o->port < 0 || o->port > 65535) return cm_error(CM_ERR_ARG, "--port %d: must be 0..65535", o->port);
    if (m->cfg.has_head && m->cfg.head.n_classes > CM_MAX_CLASSES)
        return cm_error(CM_ERR_UNSUPPORTED, "model has %d classes (at most %d served)", m->cfg.head.n_classes, CM_MAX_CLASSES);
    CmServer *s = calloc(1, sizeof *s);
    if (!s) return cm_error(CM_ERR_OOM, "out of memory");
    s->o = *o;
    s->m = m;
    s->te = te;
    s->S = m->cfg.vision.image_size;
    s->ctx = m->cfg.text.context_length;
    s->E = m->cfg.embed_dim;
    s->C = m->cfg.has_head ? m->cfg.head.n_classes : 0;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv_work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->cv_idle, NULL);

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    const char *host = o->host && *o->host ? o->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        sa = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        cm_serve_shutdown(s, 0);
        return cm_error(CM_ERR_ARG, "--host %s: not an IPv4 or IPv6 address", host);
    }
    if (pthread_create(&s->worker, NULL, worker_main, s)) {
        cm_serve_shutdown(s, 0);
        return cm_error(CM_ERR_OOM, "cannot start the batch worker thread");
    }
    s->worker_started = true;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_END);
    if (!s->d) {
        int e = errno;
        cm_serve_shutdown(s, 0);
        return cm_error(CM_ERR_IO, "cannot listen on %s:%d (%s)", host, o->port, e ? strerror(e) : "libmicrohttpd failed to start");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    *out = s;
    return CM_OK;
}

int cm_serve_port(const CmServer *s) { return s->port; }

int cm_serve_shutdown(CmServer *s, int drain_ms) {
    if (!s) return 0;
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    if (s->d) {
        MHD_socket ls = MHD_quiesce_daemon(s->d);
        if (ls != MHD_INVALID_SOCKET) close(ls);
    }
    /* wait for the accepted requests */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += drain_ms / 1000;
    ts.tv_nsec += (long)(drain_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&s->mu);
    while (s->d && s->inflight > 0)
        if (pthread_cond_timedwait(&s->cv_idle, &s->mu, &ts) == ETIMEDOUT) break;
    int left = s->inflight;
    /* expire whatever is still queued so that every suspended connection is resumed */
    for (Job *J = s->head; J; J = J->next) J->deadline = 0;
    s->stop = true;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_started) pthread_join(s->worker, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_idle);
    free(s);
    return left;
}
