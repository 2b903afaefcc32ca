/*
 * testutil_mpi.h — the end of an MPI test program (testutil_mpi.c).
 */
#ifndef PCN_TESTUTIL_MPI_H
#define PCN_TESTUTIL_MPI_H

#include "pcn_dist.h"

// Sums tu_failures over the ranks, frees c, finalises MPI, and on rank 0 prints
// "NAME with P ranks: FAILED" or "...: all checks passed". Returns the exit status every
// rank should return (1 when any rank failed). Collective.
int tu_mpi_finish(pcn_comm *c, const char *name);

#endif // PCN_TESTUTIL_MPI_H
