/*
 * dist.h — the process group for data-parallel training and evaluation (MPI, Open MPI).
 *
 * A process is part of a group only when a launcher started it: mpirun / mpiexec (Open MPI's
 * OMPI_COMM_WORLD_SIZE), Slurm's srun with PMI or PMIx (PMI_SIZE, PMIX_RANK), or any PMI-based
 * launcher. Otherwise MPI is never initialised: one process of rank 0 in a group of 1, and every
 * collective below is a no-op that returns at once (tokenize, info, the tests pay nothing).
 *
 * Collectives work on host buffers (a GPU backend stages through them), sum in rank order where
 * it matters (MPI_Allreduce of float is left to MPI; see docs/distributed.md), and return a
 * status naming the operation; a failure in a group is fatal for the job: cm_dist_abort ends every
 * rank (MPI_Abort) after printing the message with the rank, so a job never hangs on a lost peer.
 * Communication time and bytes are counted for the trainer's "Comm (t)" figure.
 * defines: cm_dist_init, cm_dist_rank, cm_dist_size, cm_dist_active, cm_dist_allreduce_*,
 *          cm_dist_allgather_f32, cm_dist_bcast, cm_dist_barrier, cm_dist_abort, cm_dist_finalize,
 *          cm_dist_stats, cm_dist_launched, cm_dist_bcast_blob, cm_dist_gather_bytes
 */
#ifndef CM_DIST_H
#define CM_DIST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/common.h"

/* Whether a launcher started this process as part of a group (environment only; no MPI call). */
bool cm_dist_launched(void);
/* Initialise the group when launched (idempotent); a single process otherwise. */
cm_status cm_dist_init(void);
int cm_dist_rank(void);
int cm_dist_size(void);
static inline bool cm_dist_active(void) { return cm_dist_size() > 1; }

/* buf[0..n) = the sum over ranks of every rank's buf, in place. */
cm_status cm_dist_allreduce_f32(float *buf, size_t n);
cm_status cm_dist_allreduce_f64(double *buf, size_t n);
cm_status cm_dist_allreduce_i64(int64_t *buf, size_t n);
/* Max over ranks (flags that any rank raised, e.g. a stop signal). */
cm_status cm_dist_allreduce_max_i64(int64_t *buf, size_t n);
/* recv[size*n] = every rank's send[n], in rank order (send may be recv + rank*n: in place). */
cm_status cm_dist_allgather_f32(const float *send, size_t n, float *recv);
/* recv[size*bytes] = every rank's send, in rank order (send may be recv + rank*bytes: in place) */
cm_status cm_dist_allgather_bytes(const void *send, size_t bytes, void *recv);
/* bytes from root to every rank */
cm_status cm_dist_bcast(void *buf, size_t bytes, int root);
/* A buffer of any length from root: root passes *buf / *len, the other ranks get a cm_malloc'd
   copy in *buf (NULL when *len is 0). A group of 1: nothing happens. */
cm_status cm_dist_bcast_blob(void **buf, size_t *len, int root);
/* Every rank's send[bytes] to rank 0: on rank 0 *out (cm_malloc'd) = the concatenation in rank
   order and counts[size] the bytes of each rank (counts: size elements, rank 0 only; may be NULL
   elsewhere); other ranks get *out = NULL. A group of 1: a copy of send. */
cm_status cm_dist_gather_bytes(const void *send, size_t bytes, void **out, size_t *counts);
cm_status cm_dist_barrier(void);
/* Prints "clipmod: rank R of N: <msg>" on stderr and ends the whole job with status code (a
   single process just exits). */
_Noreturn void cm_dist_abort(int code, const char *msg);
void cm_dist_finalize(void);

/* Communication time (s) and bytes sent by this rank since the last reset. */
typedef struct { double seconds; uint64_t bytes; } CmDistStats;
CmDistStats cm_dist_stats(bool reset);

#endif
