/*
 * dist.c — the MPI process group (see dist.h). Open MPI from Debian (libopenmpi-dev); the build
 * always links it, but MPI_Init runs only in a process started by a launcher.
 */
#include "dist/dist.h"
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

static int g_init;          /* 0 not tried, 1 group, -1 single process */
static int g_rank, g_size = 1;
static CmDistStats g_stats;

bool cm_dist_launched(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return true;
    }
    return false;
}

cm_status cm_dist_init(void) {
    if (g_init) return CM_OK;
    if (!cm_dist_launched()) { g_init = -1; return CM_OK; }
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        g_init = -1;
        return cm_error(CM_ERR_IO, "MPI_Init failed (launched by mpirun/srun, but MPI could not start)");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_init = 1;
    return CM_OK;
}

int cm_dist_rank(void) { return g_init == 1 ? g_rank : 0; }
int cm_dist_size(void) { return g_init == 1 ? g_size : 1; }

static cm_status mpi_fail(int rc, const char *op) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return cm_error(CM_ERR_IO, "rank %d of %d: %s failed: %s", g_rank, g_size, op, msg);
}

/* MPI counts are int: large buffers go in pieces */
#define CHUNK ((size_t)1 << 28)

static cm_status allreduce(void *buf, size_t n, size_t esz, MPI_Datatype t, MPI_Op op, const char *what) {
    if (g_init != 1 || g_size == 1 || n == 0) return CM_OK;
    double t0 = cm_now();
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * esz, (int)k, t, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    }
    g_stats.seconds += cm_now() - t0;
    g_stats.bytes += n * esz;
    return CM_OK;
}

cm_status cm_dist_allreduce_f32(float *buf, size_t n) { return allreduce(buf, n, 4, MPI_FLOAT, MPI_SUM, "all-reduce (float)"); }
cm_status cm_dist_allreduce_f64(double *buf, size_t n) { return allreduce(buf, n, 8, MPI_DOUBLE, MPI_SUM, "all-reduce (double)"); }
cm_status cm_dist_allreduce_i64(int64_t *buf, size_t n) { return allreduce(buf, n, 8, MPI_INT64_T, MPI_SUM, "all-reduce (int64)"); }
cm_status cm_dist_allreduce_max_i64(int64_t *buf, size_t n) { return allreduce(buf, n, 8, MPI_INT64_T, MPI_MAX, "all-reduce max (int64)"); }

static cm_status allgather(const void *send, size_t n, size_t esz, MPI_Datatype t, void *recv) {
    if (g_init != 1 || g_size == 1) {
        if (recv != send) memmove(recv, send, n * esz);
        return CM_OK;
    }
    if (n > (size_t)INT_MAX) return cm_error(CM_ERR_ARG, "all-gather of %zu elements per rank is too large", n);
    double t0 = cm_now();
    bool in_place = (const char *)send == (const char *)recv + (size_t)g_rank * n * esz;
    int rc = MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)n, t, recv, (int)n, t, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-gather");
    g_stats.seconds += cm_now() - t0;
    g_stats.bytes += n * esz * (size_t)(g_size - 1);
    return CM_OK;
}

cm_status cm_dist_allgather_f32(const float *send, size_t n, float *recv) { return allgather(send, n, sizeof(float), MPI_FLOAT, recv); }
cm_status cm_dist_allgather_bytes(const void *send, size_t bytes, void *recv) { return allgather(send, bytes, 1, MPI_BYTE, recv); }

cm_status cm_dist_bcast(void *buf, size_t bytes, int root) {
    if (g_init != 1 || g_size == 1 || bytes == 0) return CM_OK;
    double t0 = cm_now();
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t k = bytes - off < CHUNK ? bytes - off : CHUNK;
        int rc = MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "broadcast");
    }
    g_stats.seconds += cm_now() - t0;
    g_stats.bytes += bytes;
    return CM_OK;
}

cm_status cm_dist_bcast_blob(void **buf, size_t *len, int root) {
    if (g_init != 1 || g_size == 1) return CM_OK;
    uint64_t n = g_rank == root ? (uint64_t)*len : 0;
    cm_status st = cm_dist_bcast(&n, sizeof n, root);
    if (st) return st;
    if (g_rank != root) {
        *buf = NULL;
        *len = (size_t)n;
        if (!n) return CM_OK;
        if (!(*buf = cm_malloc((size_t)n, "broadcast buffer"))) return CM_ERR_OOM;
    }
    return cm_dist_bcast(*buf, (size_t)n, root);
}

cm_status cm_dist_gather_bytes(const void *send, size_t bytes, void **out, size_t *counts) {
    *out = NULL;
    if (g_init != 1 || g_size == 1) {
        if (counts) counts[0] = bytes;
        if (!(*out = cm_malloc(bytes ? bytes : 1, "gather buffer"))) return CM_ERR_OOM;
        if (bytes) memcpy(*out, send, bytes);
        return CM_OK;
    }
    /* sizes first (int64 each), then each rank's bytes in pieces MPI's int counts can carry:
       point to point to rank 0, in rank order */
    int64_t *all = cm_calloc((size_t)g_size, sizeof *all, "gather sizes");
    if (!all) return CM_ERR_OOM;
    int64_t mine = (int64_t)bytes;
    double t0 = cm_now();
    int rc = MPI_Gather(&mine, 1, MPI_INT64_T, all, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) { cm_free(all); return mpi_fail(rc, "gather (sizes)"); }
    cm_status st = CM_OK;
    if (g_rank == 0) {
        size_t total = 0;
        for (int r = 0; r < g_size; r++) total += (size_t)all[r];
        char *dst = cm_malloc(total ? total : 1, "gather buffer");
        if (!dst) { cm_free(all); return CM_ERR_OOM; }
        size_t off = 0;
        for (int r = 0; r < g_size && !st; r++) {
            if (counts) counts[r] = (size_t)all[r];
            if (r == 0) { if (bytes) memcpy(dst, send, bytes); off += bytes; continue; }
            for (size_t o = 0; o < (size_t)all[r] && !st; o += CHUNK) {
                size_t k = (size_t)all[r] - o < CHUNK ? (size_t)all[r] - o : CHUNK;
                rc = MPI_Recv(dst + off + o, (int)k, MPI_BYTE, r, 77, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS) st = mpi_fail(rc, "gather (receive)");
            }
            off += (size_t)all[r];
        }
        if (st) cm_free(dst);
        else *out = dst;
    } else {
        for (size_t o = 0; o < bytes && !st; o += CHUNK) {
            size_t k = bytes - o < CHUNK ? bytes - o : CHUNK;
            rc = MPI_Send((const char *)send + o, (int)k, MPI_BYTE, 0, 77, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS) st = mpi_fail(rc, "gather (send)");
        }
        g_stats.bytes += bytes;
    }
    g_stats.seconds += cm_now() - t0;
    cm_free(all);
    return st;
}

cm_status cm_dist_barrier(void) {
    if (g_init != 1 || g_size == 1) return CM_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? CM_OK : mpi_fail(rc, "barrier");
}

_Noreturn void cm_dist_abort(int code, const char *msg) {
    if (g_init == 1 && g_size > 1) {
        fprintf(stderr, "clipmod: rank %d of %d: %s\n", g_rank, g_size, msg ? msg : "failed");
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    if (msg) fprintf(stderr, "clipmod: %s\n", msg);
    exit(code);
}

void cm_dist_finalize(void) {
    if (g_init == 1) MPI_Finalize();
    g_init = -1;
}

CmDistStats cm_dist_stats(bool reset) {
    CmDistStats s = g_stats;
    if (reset) memset(&g_stats, 0, sizeof g_stats);
    return s;
}
