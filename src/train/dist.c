/* The processes of a data-parallel run (lorac/dist.h): MPI when built with it (LORAC_HAVE_MPI, set
 * by CMakeLists.txt for this file alone) and started by a launcher, else rank 0 of 1. The only file
 * that includes mpi.h. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac/dist.h"

#ifdef LORAC_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    int joined, rank, size, agreed;
} g = {0, 0, 1, 0};

int dist_rank(void) { return g.rank; }
int dist_size(void) { return g.size; }

/* The launcher's numbering from its environment: Open MPI, MPICH (Hydra) and PMI, PMIx (Slurm). */
static int env_int(const char *const *names, int dflt) {
    for (int i = 0; names[i]; i++) {
        const char *s = getenv(names[i]);
        if (s && *s) return atoi(s);
    }
    return dflt;
}

static void read_launch(dist_launch *l) {
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", NULL};
    memset(l, 0, sizeof *l);
    l->size = env_int(size_vars, 0);
    l->rank = env_int(rank_vars, -1);
    l->launched = l->size > 0 || l->rank >= 0;
    if (l->rank < 0) l->rank = 0;
    if (l->size < 1) l->size = 1;
}

#ifdef LORAC_HAVE_MPI

/* MPI takes int counts: larger buffers go in pieces (in the same order on every rank). */
#define DIST_CHUNK ((size_t)1 << 30)

static int mpi_fail(int rc, const char *what, lorac_err *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return lorac_fail(err, LORAC_EIO, "MPI %s failed: %.*s", what, len, msg);
}

int dist_init(dist_launch *out, lorac_err *err) {
    read_launch(out);
    if (!out->launched) return LORAC_OK;
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread", err);
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    g.joined = 1;
    out->rank = g.rank;
    out->size = g.size;
    return LORAC_OK;
}

void dist_finalize(int rc) {
    if (!g.joined) return;
    g.joined = 0;
    if (rc && !g.agreed) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 1); /* the launcher ends every other rank */
    }
    MPI_Finalize();
}

const char *dist_mpi_version(void) {
    static char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!v[0] && MPI_Get_library_version(v, &len) == MPI_SUCCESS) v[strcspn(v, ",\n")] = '\0';
    return v;
}

static int allreduce(void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Op op, lorac_err *err) {
    for (size_t off = 0; g.joined && off < n; off += DIST_CHUNK) {
        size_t k = n - off < DIST_CHUNK ? n - off : DIST_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, type, op, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce", err);
    }
    return LORAC_OK;
}

int dist_allreduce_sum(float *buf, size_t n, lorac_err *err) { return allreduce(buf, n, MPI_FLOAT, sizeof *buf, MPI_SUM, err); }

int dist_allreduce_sum_f64(double *buf, size_t n, lorac_err *err) {
    return allreduce(buf, n, MPI_DOUBLE, sizeof *buf, MPI_SUM, err);
}

int dist_bcast(void *buf, size_t bytes, lorac_err *err) {
    for (size_t off = 0; g.joined && off < bytes; off += DIST_CHUNK) {
        size_t k = bytes - off < DIST_CHUNK ? bytes - off : DIST_CHUNK;
        int rc = MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, 0, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast", err);
    }
    return LORAC_OK;
}

int dist_same(uint64_t v, int *same, lorac_err *err) {
    /* AND of v and of ~v: all equal exactly when AND(v) == ~AND(~v) (= OR(v)) */
    unsigned long long b[2] = {v, ~v};
    int rc = allreduce(b, 2, MPI_UNSIGNED_LONG_LONG, sizeof b[0], MPI_BAND, err);
    *same = b[0] == ~b[1];
    return rc;
}

int dist_agree(int rc, lorac_err *err) {
    if (!g.joined) return rc;
    int f[2] = {rc != 0 && g.rank == 0, rc != 0}; /* rank 0 failed, any rank failed */
    int mrc = allreduce(f, 2, MPI_INT, sizeof f[0], MPI_MAX, err);
    if (mrc) return mrc;
    if (!f[1]) return LORAC_OK;
    g.agreed = 1;
    if (!rc) return lorac_fail(err, LORAC_EIO, "%s", "");
    if (err && g.rank > 0 && f[0]) err->msg[0] = '\0';
    else if (err && g.rank > 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        lorac_fail(err, rc, "rank %d: %s", g.rank, m);
    }
    return rc;
}

#else /* one process */

int dist_init(dist_launch *out, lorac_err *err) {
    (void)err;
    read_launch(out);
    if (!out->launched) return LORAC_OK;
    out->idle = out->rank > 0;
    snprintf(out->note, sizeof out->note, "rank %d of %d: lorac was built without MPI, so %s", out->rank, out->size,
             out->idle ? "this process does nothing (rank 0 trains alone)" : "this process trains alone");
    out->rank = 0;
    out->size = 1;
    return LORAC_OK;
}

void dist_finalize(int rc) { (void)rc; }
const char *dist_mpi_version(void) { return "none (built without MPI)"; }
int dist_allreduce_sum(float *buf, size_t n, lorac_err *err) { return (void)buf, (void)n, (void)err, LORAC_OK; }
int dist_allreduce_sum_f64(double *buf, size_t n, lorac_err *err) { return (void)buf, (void)n, (void)err, LORAC_OK; }
int dist_bcast(void *buf, size_t bytes, lorac_err *err) { return (void)buf, (void)bytes, (void)err, LORAC_OK; }
int dist_same(uint64_t v, int *same, lorac_err *err) { return (void)v, (void)err, *same = 1, LORAC_OK; }
int dist_agree(int rc, lorac_err *err) { return (void)err, rc; }

#endif
