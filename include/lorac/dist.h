/* lorac/dist.h — the processes of a data-parallel run (`mpirun -np N lorac train`).
 *
 * One small interface over MPI, so that the trainer never sees mpi.h: built with MPI (Open MPI's
 * development files present at configure time) and started by an MPI launcher, the process joins
 * MPI_COMM_WORLD; otherwise it is rank 0 of 1 and every collective is a no-op (the same code path,
 * no #ifdef in the trainer).
 *
 * Collectives are blocking and must be called by every rank in the same order with the same sizes.
 * A failure on one rank that the others do not share (a write on rank 0, out of memory) must end
 * the job: dist_finalize(rc != 0) then calls MPI_Abort, which the launcher turns into the end of
 * every rank; a failure all ranks agreed on (dist_agree) ends them normally. A rank killed outright
 * is noticed by the launcher (Open MPI's mpirun kills the rest and names the rank). */
#ifndef LORAC_DIST_H
#define LORAC_DIST_H

#include <stdint.h>

#include "lorac/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the build and the environment give this process. */
typedef struct dist_launch {
    int launched;   /* an MPI launcher's environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK) */
    int rank, size; /* as the launcher numbers the processes (0 and 1 when not launched) */
    int idle;       /* launched as rank > 0 by a build without MPI: this process has nothing to do */
    char note[256]; /* a line for the user ("" when there is nothing to say) */
} dist_launch;

/* Joins the job when this build has MPI and a launcher started the process (MPI_Init_thread,
 * funneled: only the main thread calls MPI, OpenMP threads compute). Without MPI, a launched
 * process is told so in out->note: rank 0 trains alone, the others are idle. */
int dist_init(dist_launch *out, lorac_err *err);
/* rc == 0, or a failure every rank agreed on: MPI_Finalize. Otherwise (a failure of this rank
 * alone) MPI_Abort, which ends every rank of the job. No-op when not joined. */
void dist_finalize(int rc);

int dist_rank(void); /* 0 when not joined */
int dist_size(void); /* 1 when not joined */
const char *dist_mpi_version(void); /* the MPI library ("Open MPI v4.1.4, ...") or "none (built without MPI)" */

/* buf (n) := its sum over the ranks, in place. */
int dist_allreduce_sum(float *buf, size_t n, lorac_err *err);
int dist_allreduce_sum_f64(double *buf, size_t n, lorac_err *err);
/* buf (bytes) := rank 0's. */
int dist_bcast(void *buf, size_t bytes, lorac_err *err);
/* Whether every rank holds the same value (a fingerprint of what must be identical everywhere). */
int dist_same(uint64_t v, int *same, lorac_err *err);

/* After a phase each rank ran alone (setup, loading a checkpoint): every rank learns whether any
 * failed. Returns rc when this rank failed (its message prefixed "rank R: " on ranks > 0, and
 * emptied when rank 0 failed too, so that one rank speaks), LORAC_EIO with an empty message when
 * only another rank failed, LORAC_OK when none did. A failure returned here is an agreed one. */
int dist_agree(int rc, lorac_err *err);

#ifdef __cplusplus
}
#endif
#endif
