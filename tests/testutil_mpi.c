/*
 * testutil_mpi.c — the end of an MPI test program: every rank's failures summed, one line
 * from rank 0, one exit status for all.
 */
#include <mpi.h>
#include <stdio.h>

#include "testutil.h"
#include "testutil_mpi.h"

int tu_mpi_finish(pcn_comm *c, const char *name) {
    int local = tu_failures, total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, pcn_dist_mpi(c));
    int rank = pcn_dist_rank(c), size = pcn_dist_size(c);
    pcn_dist_free(c);
    MPI_Finalize();
    if (rank == 0)
        printf("%s with %d ranks: %s\n", name, size, total ? "FAILED" : "all checks passed");
    return total ? 1 : 0;
}
