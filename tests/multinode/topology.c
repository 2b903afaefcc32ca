/*
 * topology.c — what pcn_dist's communicator sees of the nodes (tests/multinode): run under
 * mpirun on fake nodes, every rank checks that its node holds the expected number of ranks
 * (MPI_COMM_TYPE_SHARED, pcn_dist_local_size), that there are the expected number of
 * nodes (node-local rank 0s), that node-local ranks are 0..L-1 and that the host name is
 * the same within a node and differs between nodes.
 *
 * Usage: mpirun ... topology NODES RANKS_PER_NODE
 */
#define _POSIX_C_SOURCE 200809L // gethostname
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcn_dist.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    const int nodes = argc > 2 ? atoi(argv[1]) : 0, per = argc > 2 ? atoi(argv[2]) : 0;
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    int bad = 0, leaders = pcn_dist_local_rank(c) == 0, all_leaders = 0;
    MPI_Allreduce(&leaders, &all_leaders, 1, MPI_INT, MPI_SUM, pcn_dist_mpi(c));
    char host[256] = "", lead[256] = "";
    gethostname(host, sizeof host - 1);
    if (pcn_dist_local_rank(c) == 0) strcpy(lead, host);
    MPI_Bcast(lead, sizeof lead, MPI_CHAR, 0, pcn_dist_node_mpi(c));
    if (pcn_dist_local_size(c) != per) bad++, printf("rank %d: %d ranks on its node, want %d\n",
                                                   pcn_dist_rank(c), pcn_dist_local_size(c), per);
    if (strcmp(host, lead) != 0) bad++, printf("rank %d on %s, its node's rank 0 on %s\n",
                                              pcn_dist_rank(c), host, lead);
    if (all_leaders != nodes) bad++, printf("%d nodes, want %d\n", all_leaders, nodes);
    char *hosts = malloc(256 * (size_t)pcn_dist_size(c)); // distinct host names = nodes
    MPI_Allgather(host, 256, MPI_CHAR, hosts, 256, MPI_CHAR, pcn_dist_mpi(c));
    int distinct = 0;
    for (int r = 0; r < pcn_dist_size(c); r++) {
        int seen = 0;
        for (int q = 0; q < r; q++) seen |= strcmp(hosts + 256 * r, hosts + 256 * q) == 0;
        distinct += !seen;
    }
    if (distinct != nodes) bad++, printf("%d host names, want %d\n", distinct, nodes);
    free(hosts);
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, pcn_dist_mpi(c));
    if (pcn_dist_rank(c) == 0)
        printf("topology: %s (%d nodes x %d ranks)\n", any ? "FAILED" : "as expected", nodes, per);
    pcn_dist_free(c);
    MPI_Finalize();
    return any ? 1 : 0;
}
