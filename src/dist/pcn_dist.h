/*
 * pcn_dist.h — MPI data parallelism for libpcn: the library's own communicator, node-local
 * rank, shard arithmetic, global sums, collective error agreement and the distributed
 * training and test entry points.
 *
 * The library duplicates the caller's communicator and never uses MPI_COMM_WORLD inside.
 * Every rank of the communicator must make the same Collective calls in the same order.
 */
#ifndef PCN_DIST_H
#define PCN_DIST_H

#include <mpi.h>

#include "pcn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pcn_comm pcn_comm;

// Duplicates comm and splits off the node-local communicator. Collective. NULL on error.
pcn_comm *pcn_dist_init(MPI_Comm comm);
// Frees the duplicates. Collective.
void pcn_dist_free(pcn_comm *c);

int pcn_dist_rank(const pcn_comm *c);
// The collectives this communicator has made that communicate (MPI calls between ranks,
// and NCCL sums) and the bytes this rank contributed to them, since pcn_dist_init. Local.
void pcn_dist_traffic(const pcn_comm *c, int64_t *calls, int64_t *bytes);
int pcn_dist_size(const pcn_comm *c);
int pcn_dist_local_rank(const pcn_comm *c);  // rank among the processes of this node
int pcn_dist_local_size(const pcn_comm *c);
MPI_Comm pcn_dist_mpi(const pcn_comm *c);      // the library's duplicate
MPI_Comm pcn_dist_node_mpi(const pcn_comm *c); // the node-local communicator

// Rows [*lo, *lo + *count) of a global batch of `global` rows taken by `rank` of `size`:
// contiguous and balanced; the first global % size ranks take one row more. Local.
void pcn_dist_shard(int64_t global, int rank, int size, int64_t *lo, int64_t *count);

// In-place global sums. Collective.
pcn_status pcn_dist_sum_f64(pcn_comm *c, double *v, int n);
pcn_status pcn_dist_sum_f32(pcn_comm *c, float *v, size_t n);
// All-gather of a batch of `global` rows sharded as pcn_dist_shard: each rank passes its own
// rows of `width` floats in mine (host memory) and receives all rows, in order, in all
// (global * width floats, not overlapping mine). PCN_EINVAL when global * width exceeds
// INT_MAX. Collective.
pcn_status pcn_dist_gather_rows_f32(pcn_comm *c, const float *mine, float *all, int64_t global,
                                    int width);

// Collective error agreement: every rank passes its local status; all return the status of
// the lowest failing rank (PCN_OK when none failed), and pcn_last_error() on every rank
// holds that rank's message. Collective.
pcn_status pcn_dist_agree(pcn_comm *c, pcn_status local);
// All-gather of varying lengths: rank r passes counts[r] floats in mine; every rank
// receives all of them, rank after rank, in all. Collective.
pcn_status pcn_dist_gather_f32(pcn_comm *c, const float *mine, float *all,
                               const int64_t *counts);

// ---- The program's collectives ----------------------------------------------------------
// Small agreements for a program built on this library, so that it needs no MPI call.

// Starts MPI (MPI_THREAD_FUNNELED: only the calling thread calls MPI; other threads may do
// HDF5 I/O) and returns the communicator over every process (MPI_COMM_WORLD). Collective.
pcn_comm *pcn_dist_start(int *argc, char ***argv);
// Frees c (pcn_dist_free) and ends MPI (MPI_Finalize). Collective.
void pcn_dist_finish(pcn_comm *c);
// The smallest of every rank's v. Collective.
int pcn_dist_min_int(pcn_comm *c, int v);
// Whether any rank passes true (a stop flag, say). Collective.
bool pcn_dist_any(pcn_comm *c, bool mine);
// pcn_dist_agree and pcn_dist_any in one collective: the agreed status, and in *any whether
// mine is true on some rank. Collective.
pcn_status pcn_dist_agree_any(pcn_comm *c, pcn_status local, bool mine, bool *any);
// Element-wise maximum and sum of every rank's v[0..n) into max and sum, on rank 0 only
// (elsewhere max and sum are left as they are). Collective.
void pcn_dist_reduce_max_sum(pcn_comm *c, const double *v, int n, double *max, double *sum);

// ---- GPUs ------------------------------------------------------------------------------
typedef enum {
    PCN_COMM_MPI = 0,  // MPI; with a model on a GPU, staged through host memory (ranks may
                       //   share a GPU)
    PCN_COMM_NCCL = 1, // NCCL on device buffers, on the compute stream (one GPU per rank)
    PCN_COMM_AUTO = 2  // NCCL when built with it and no two ranks of a node drive one GPU,
                       //   else MPI
} pcn_comm_kind;

// The CUDA device this rank should drive: its node-local rank modulo the devices it sees
// (-1 when it sees none). Local.
int pcn_dist_gpu_for_rank(const pcn_comm *c);
// Gradients of models on this rank's GPU are summed with `kind` from now on; NCCL builds
// its communicator from a unique id that rank 0 broadcasts over MPI. NCCL is refused, naming
// the ranks and the GPU, when two ranks of a node drive the same GPU (by UUID, so ranks that
// each see one distinct GPU, as under Slurm's --gpus-per-task, qualify). timeout_s bounds
// every wait on the device while NCCL is up: a dead or hung peer ends all ranks with a
// message. pcn_cuda_select() must have run on every rank. Collective; every rank gets the
// same status.
pcn_status pcn_dist_use_gpu(pcn_comm *c, pcn_comm_kind kind, double timeout_s);
// Whether gradients on the GPU are summed with NCCL (after pcn_dist_use_gpu). Local.
bool pcn_dist_uses_nccl(const pcn_comm *c);
// Among n GPU identities (n consecutive blocks of PCN_CUDA_UUID_BYTES), the first two equal
// ones: true with *first < *second their indexes, false when all are distinct. Local.
bool pcn_dist_gpu_shared(const unsigned char *ids, int n, int *first, int *second);
// Whether every rank drives a GPU of its own: each rank passes the identity of its GPU
// (pcn_cuda_device_uuid) and a label for messages ("cuda:0 NVIDIA H200"); they are gathered
// over each node. When two ranks of a node share one, *own is false and why (n bytes) names
// the first such pair of the lowest node that has one. Collective; the same answer on every
// rank.
void pcn_dist_gpus_own(pcn_comm *c, const unsigned char id[PCN_CUDA_UUID_BYTES],
                       const char *label, bool *own, char *why, size_t n);

// pcn_train / pcn_test over the ranks of c: each rank takes its shard of every global batch,
// gradients, energies and counts are summed globally, so every rank ends with the same
// weights and history, equal (to float summation order) to a single-process run. The data
// source is read by each rank for its own rows only. yhat (if given) receives this rank's
// rows only. Collective.
pcn_status pcn_dist_train(pcn_model *model, const pcn_data *data, const pcn_train_params *params,
                          pcn_history *history, pcn_comm *c);
pcn_status pcn_dist_test(const pcn_model *model, const pcn_data *data,
                         const pcn_train_params *params, pcn_test_result *result, float *yhat,
                         pcn_comm *c);

// Prints "[rank r] file:line: message" to stderr and aborts every rank (MPI_Abort).
_Noreturn void pcn_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define pcn_fatal(...) pcn_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

// Checks an MPI call; on failure reports the statement, file:line, function and MPI's own
// error string, and aborts every rank.
#define PCN_MPI_CHECK(call)                                                                 \
    do {                                                                                    \
        int pcn_mpi_rc_ = (call);                                                           \
        if (pcn_mpi_rc_ != MPI_SUCCESS) {                                                   \
            char pcn_mpi_msg_[MPI_MAX_ERROR_STRING];                                        \
            int pcn_mpi_len_ = 0;                                                           \
            MPI_Error_string(pcn_mpi_rc_, pcn_mpi_msg_, &pcn_mpi_len_);                     \
            pcn_fatal_at(__FILE__, __LINE__, "%s in %s: %s", #call, __func__, pcn_mpi_msg_); \
        }                                                                                   \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif // PCN_DIST_H
