/*
 * dist.c — the MPI layer: the library's communicator (a duplicate of the caller's, plus the
 * node-local split), shard arithmetic, global sums on host buffers, collective error
 * agreement, fatal errors, and the distributed train/test entry points that hand these
 * collectives to the engine's loops.
 *
 * With a model on a GPU the gradient buffer is device memory: its sum goes through NCCL on
 * the compute stream (sum_f32_device), or the trainer stages it through host memory for
 * MPI (--comm mpi). The row all-gather of batch-space learning takes host buffers only.
 *
 * Invariant: every function marked Collective is called by every rank in the same order;
 * the library never uses MPI_COMM_WORLD.
 */
#include "pcn_dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pcn_comm {
    MPI_Comm comm;         // duplicate of the caller's communicator
    MPI_Comm node;         // processes sharing this node's memory
    int rank, size, local_rank, local_size;
    pcn_collectives coll;  // what the engine's loops call
    bool nccl;             // device buffers are summed with NCCL (else the trainer stages
                           //   them through host memory)
    int *rows_count;       // (size) per-rank counts and displacements of gathers, or NULL
    int *rows_displ;
    int64_t *shard_counts; // (size) a row gather's counts before they become rows_count
    int64_t calls, bytes;  // collectives that communicated, and the bytes this rank gave
};

// Counts a collective that communicates (one rank alone sends nothing), with the bytes
// this rank contributes to it.
static void count(pcn_comm *c, size_t bytes) {
    if (c->size == 1) return;
    c->calls++;
    c->bytes += (int64_t)bytes;
}

// ----------------------------------------------------------------------------------------
// Fatal errors
// ----------------------------------------------------------------------------------------

_Noreturn void pcn_fatal_at(const char *file, int line, const char *fmt, ...) {
    int rank = -1, up = 0;
    MPI_Initialized(&up);
    if (up) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[rank %d] %s:%d: %s\n", rank, file, line, msg);
    fflush(stderr);
    if (up) MPI_Abort(MPI_COMM_WORLD, 1); // the one place WORLD is right: end every rank
    abort();
}

// ----------------------------------------------------------------------------------------
// Collectives
// ----------------------------------------------------------------------------------------

void pcn_dist_shard(int64_t global, int rank, int size, int64_t *lo, int64_t *count) {
    pcn_train_shard(global, rank, size, lo, count);
}

pcn_status pcn_dist_sum_f64(pcn_comm *c, double *v, int n) {
    if (c->size == 1) return PCN_OK;
    count(c, (size_t)n * sizeof *v);
    PCN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, c->comm));
    return PCN_OK;
}

static void sum_host_f32(pcn_comm *c, float *v, size_t n) {
    // MPI counts are int: large buffers go in pieces (the order of sums is unchanged).
    const size_t piece = (size_t)1 << 30;
    if (c->size > 1) count(c, n * sizeof *v);
    for (size_t off = 0; c->size > 1 && off < n; off += piece) {
        int cnt = (int)(n - off < piece ? n - off : piece);
        PCN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v + off, cnt, MPI_FLOAT, MPI_SUM, c->comm));
    }
}

pcn_status pcn_dist_sum_f32(pcn_comm *c, float *v, size_t n) {
    sum_host_f32(c, v, n);
    return PCN_OK;
}

// Every rank takes the status and message of rank `root`, a failing rank. Collective.
static pcn_status adopt_failure(pcn_comm *c, int root, pcn_status local) {
    struct {
        int status;
        char msg[1020];
    } f = {(int)local, ""};
    if (c->rank == root) snprintf(f.msg, sizeof f.msg, "%s", pcn_last_error());
    count(c, c->rank == root ? sizeof f : 0);
    PCN_MPI_CHECK(MPI_Bcast(&f, sizeof f, MPI_BYTE, root, c->comm));
    return pcn_set_error((pcn_status)f.status, "%s", f.msg);
}

pcn_status pcn_dist_agree_any(pcn_comm *c, pcn_status local, bool mine, bool *any) {
    if (c->size == 1) {
        *any = mine;
        return local;
    }
    // The lowest failing rank has the largest size - rank.
    int v[2] = {local != PCN_OK ? c->size - c->rank : 0, mine}, r[2];
    count(c, sizeof v);
    PCN_MPI_CHECK(MPI_Allreduce(v, r, 2, MPI_INT, MPI_MAX, c->comm));
    *any = r[1] != 0;
    return r[0] == 0 ? PCN_OK : adopt_failure(c, c->size - r[0], local);
}

pcn_status pcn_dist_agree(pcn_comm *c, pcn_status local) {
    bool any;
    return pcn_dist_agree_any(c, local, false, &any);
}

// The gathers' per-rank counts and displacements, allocated once per communicator.
static void gather_buffers(pcn_comm *c) {
    if (c->rows_count) return;
    c->rows_count = malloc((size_t)c->size * sizeof *c->rows_count);
    c->rows_displ = malloc((size_t)c->size * sizeof *c->rows_displ);
    c->shard_counts = malloc((size_t)c->size * sizeof *c->shard_counts);
    if (!c->rows_count || !c->rows_displ || !c->shard_counts)
        pcn_fatal("out of memory in a gather");
}

pcn_status pcn_dist_gather_f32(pcn_comm *c, const float *mine, float *all,
                               const int64_t *counts) {
    gather_buffers(c);
    int64_t at = 0;
    for (int r = 0; r < c->size; r++) {
        if (at + counts[r] > INT_MAX)
            return pcn_set_error(PCN_EINVAL, "gathering %lld floats: more than %d values in "
                                 "one MPI call", (long long)(at + counts[r]), INT_MAX);
        c->rows_count[r] = (int)counts[r], c->rows_displ[r] = (int)at;
        at += counts[r];
    }
    count(c, (size_t)counts[c->rank] * sizeof(float));
    PCN_MPI_CHECK(MPI_Allgatherv(mine, c->rows_count[c->rank], MPI_FLOAT, all, c->rows_count,
                                 c->rows_displ, MPI_FLOAT, c->comm));
    return PCN_OK;
}

// A gather whose counts are pcn_train_shard's rows of `width` floats. Host buffers only: a
// device model's batch-space learning across ranks would need device buffers here (the
// trainer keeps the per-step path for device models on several ranks).
pcn_status pcn_dist_gather_rows_f32(pcn_comm *c, const float *mine, float *all, int64_t global,
                                    int width) {
    if ((double)global * width > (double)INT_MAX)
        return pcn_set_error(PCN_EINVAL, "gathering %lld rows of %d floats: more than %d "
                             "values in one MPI call", (long long)global, width, INT_MAX);
    gather_buffers(c);
    for (int r = 0; r < c->size; r++) {
        int64_t lo, rows;
        pcn_train_shard(global, r, c->size, &lo, &rows);
        c->shard_counts[r] = rows * width;
    }
    return pcn_dist_gather_f32(c, mine, all, c->shard_counts);
}

static pcn_status coll_sum_f64(void *ctx, double *v, int n) { return pcn_dist_sum_f64(ctx, v, n); }
static pcn_status coll_gather_f32(void *ctx, const float *mine, float *all,
                                  const int64_t *counts) {
    return pcn_dist_gather_f32(ctx, mine, all, counts);
}
static pcn_status coll_sum_f32(void *ctx, float *v, size_t n) {
    return pcn_dist_sum_f32(ctx, v, n);
}
static pcn_status coll_sum_nccl(void *ctx, float *v, size_t n) {
    count(ctx, n * sizeof *v);
    return pcn_cuda_nccl_sum(v, n);
}
static pcn_status coll_agree(void *ctx, pcn_status st) { return pcn_dist_agree(ctx, st); }
static pcn_status coll_gather_rows_f32(void *ctx, const float *mine, float *all, int64_t global,
                                       int width) {
    return pcn_dist_gather_rows_f32(ctx, mine, all, global, width);
}

// ----------------------------------------------------------------------------------------
// GPUs
// ----------------------------------------------------------------------------------------

int pcn_dist_gpu_for_rank(const pcn_comm *c) {
    int n = pcn_cuda_device_count();
    return n > 0 ? c->local_rank % n : -1;
}

bool pcn_dist_gpu_shared(const unsigned char *ids, int n, int *first, int *second) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (memcmp(ids + (size_t)i * PCN_CUDA_UUID_BYTES, ids + (size_t)j * PCN_CUDA_UUID_BYTES,
                       PCN_CUDA_UUID_BYTES) == 0) {
                *first = i, *second = j;
                return true;
            }
    return false;
}

// A rank's GPU as gathered over its node.
typedef struct {
    int rank;                                // in c->comm
    unsigned char id[PCN_CUDA_UUID_BYTES];
    char label[76];
} gpu_owner;

// nvidia-smi's spelling of a UUID: GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
static void uuid_text(const unsigned char *u, char out[48]) {
    char *o = out + sprintf(out, "GPU-");
    for (int i = 0; i < PCN_CUDA_UUID_BYTES; i++)
        o += sprintf(o, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", u[i]);
}

void pcn_dist_gpus_own(pcn_comm *c, const unsigned char id[PCN_CUDA_UUID_BYTES],
                       const char *label, bool *own, char *why, size_t n) {
    gpu_owner mine = {c->rank, {0}, ""}, *all = calloc((size_t)c->local_size, sizeof mine);
    unsigned char *ids = calloc((size_t)c->local_size, PCN_CUDA_UUID_BYTES);
    if (!all || !ids) pcn_fatal("out of memory gathering GPU identities");
    memcpy(mine.id, id, PCN_CUDA_UUID_BYTES);
    snprintf(mine.label, sizeof mine.label, "%s", label ? label : "");
    count(c, sizeof mine);
    PCN_MPI_CHECK(MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE,
                                c->node));
    for (int r = 0; r < c->local_size; r++) memcpy(ids + (size_t)r * PCN_CUDA_UUID_BYTES,
                                                   all[r].id, PCN_CUDA_UUID_BYTES);
    int i, j;
    pcn_status st = PCN_OK;
    if (pcn_dist_gpu_shared(ids, c->local_size, &i, &j)) {
        char text[48];
        uuid_text(all[i].id, text);
        st = pcn_set_error(PCN_EINVAL, "ranks %d and %d both drive one GPU (%s, %s)",
                           all[i].rank, all[j].rank, all[i].label, text);
    }
    // The lowest rank that saw a shared GPU words the answer for every node.
    *own = pcn_dist_agree(c, st) == PCN_OK;
    if (!*own) snprintf(why, n, "%s", pcn_last_error());
    free(all), free(ids);
}

// The sums' kind: NCCL where asked (or, for auto, where built) and every rank has its own
// GPU; otherwise MPI, or a message that says why NCCL cannot be. Collective.
static pcn_status sums_kind(pcn_comm *c, pcn_comm_kind *kind) {
    pcn_status st = PCN_OK;
    if (pcn_cuda_device_index() < 0)
        st = pcn_set_error(PCN_ESTATE, "no CUDA device selected on rank %d", c->rank);
    else if (*kind == PCN_COMM_NCCL && !pcn_cuda_built_nccl())
        st = pcn_set_error(PCN_EINVAL, "--comm nccl: this pcn_dist was built without NCCL; "
                           "use --comm mpi");
    if ((st = pcn_dist_agree(c, st)) != PCN_OK || *kind == PCN_COMM_MPI) return st;
    if (*kind == PCN_COMM_AUTO && !pcn_dist_any(c, !pcn_cuda_built_nccl())) {
        *kind = PCN_COMM_MPI;
        return PCN_OK;
    }
    unsigned char id[PCN_CUDA_UUID_BYTES] = {0};
    char label[76], why[512];
    bool own;
    pcn_cuda_device_uuid(id);
    snprintf(label, sizeof label, "cuda:%d %s", pcn_cuda_device_index(), pcn_cuda_device_name());
    pcn_dist_gpus_own(c, id, label, &own, why, sizeof why);
    if (*kind == PCN_COMM_AUTO) *kind = own ? PCN_COMM_NCCL : PCN_COMM_MPI;
    else if (!own)
        st = pcn_set_error(PCN_EINVAL, "--comm nccl: %s, and NCCL needs one GPU per rank; use "
                           "--comm mpi, or fewer ranks per node", why);
    return st;
}

pcn_status pcn_dist_use_gpu(pcn_comm *c, pcn_comm_kind kind, double timeout_s) {
    pcn_status st = sums_kind(c, &kind);
    if ((st = pcn_dist_agree(c, st)) != PCN_OK) return st;
    pcn_cuda_set_timeout(timeout_s);
    if (kind == PCN_COMM_MPI) return PCN_OK; // device sums stage through host memory
    unsigned char id[PCN_CUDA_NCCL_ID_BYTES] = {0};
    if (c->rank == 0) st = pcn_cuda_nccl_unique_id(id);
    if ((st = pcn_dist_agree(c, st)) != PCN_OK) return st;
    count(c, c->rank == 0 ? sizeof id : 0);
    PCN_MPI_CHECK(MPI_Bcast(id, sizeof id, MPI_BYTE, 0, c->comm));
    st = pcn_dist_agree(c, pcn_cuda_nccl_init(id, c->rank, c->size));
    if (st == PCN_OK) c->nccl = true, c->coll.sum_f32_device = coll_sum_nccl;
    return st;
}

bool pcn_dist_uses_nccl(const pcn_comm *c) { return c->nccl; }

// Device failures (a failed launch, NCCL errors, a timeout) end every rank.
static void gpu_fatal(const char *msg) { pcn_fatal("%s", msg); }

// ----------------------------------------------------------------------------------------
// The communicator
// ----------------------------------------------------------------------------------------

pcn_comm *pcn_dist_init(MPI_Comm comm) {
    pcn_comm *c = calloc(1, sizeof *c);
    if (!c) pcn_fatal("out of memory allocating the communicator");
    PCN_MPI_CHECK(MPI_Comm_dup(comm, &c->comm));
    PCN_MPI_CHECK(MPI_Comm_rank(c->comm, &c->rank));
    PCN_MPI_CHECK(MPI_Comm_size(c->comm, &c->size));
    PCN_MPI_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                      &c->node));
    PCN_MPI_CHECK(MPI_Comm_rank(c->node, &c->local_rank));
    PCN_MPI_CHECK(MPI_Comm_size(c->node, &c->local_size));
    c->coll = (pcn_collectives){c,          c->rank,    c->size,           coll_sum_f64,
                                coll_sum_f32, NULL, coll_agree, coll_gather_rows_f32,
                                coll_gather_f32};
    pcn_cuda_set_fatal(gpu_fatal);
    return c;
}

void pcn_dist_free(pcn_comm *c) {
    if (!c) return;
    if (c->nccl) pcn_cuda_nccl_free();
    free(c->rows_count), free(c->rows_displ), free(c->shard_counts);
    MPI_Comm_free(&c->node);
    MPI_Comm_free(&c->comm);
    free(c);
}

void pcn_dist_traffic(const pcn_comm *c, int64_t *calls, int64_t *bytes) {
    *calls = c->calls, *bytes = c->bytes;
}

int pcn_dist_rank(const pcn_comm *c) { return c->rank; }
int pcn_dist_size(const pcn_comm *c) { return c->size; }
int pcn_dist_local_rank(const pcn_comm *c) { return c->local_rank; }
int pcn_dist_local_size(const pcn_comm *c) { return c->local_size; }
MPI_Comm pcn_dist_mpi(const pcn_comm *c) { return c->comm; }
MPI_Comm pcn_dist_node_mpi(const pcn_comm *c) { return c->node; }

// ----------------------------------------------------------------------------------------
// The program's collectives
// ----------------------------------------------------------------------------------------

pcn_comm *pcn_dist_start(int *argc, char ***argv) {
    int provided;
    PCN_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    return pcn_dist_init(MPI_COMM_WORLD);
}

void pcn_dist_finish(pcn_comm *c) {
    pcn_dist_free(c);
    MPI_Finalize();
}

int pcn_dist_min_int(pcn_comm *c, int v) {
    int least = v;
    count(c, sizeof v);
    PCN_MPI_CHECK(MPI_Allreduce(&v, &least, 1, MPI_INT, MPI_MIN, c->comm));
    return least;
}

bool pcn_dist_any(pcn_comm *c, bool mine) {
    int v = mine, any = 0;
    count(c, sizeof v);
    PCN_MPI_CHECK(MPI_Allreduce(&v, &any, 1, MPI_INT, MPI_MAX, c->comm));
    return any != 0;
}

void pcn_dist_reduce_max_sum(pcn_comm *c, const double *v, int n, double *max, double *sum) {
    count(c, 2 * (size_t)n * sizeof *v);
    PCN_MPI_CHECK(MPI_Reduce(v, max, n, MPI_DOUBLE, MPI_MAX, 0, c->comm));
    PCN_MPI_CHECK(MPI_Reduce(v, sum, n, MPI_DOUBLE, MPI_SUM, 0, c->comm));
}

// ----------------------------------------------------------------------------------------
// Distributed training and test
// ----------------------------------------------------------------------------------------

pcn_status pcn_dist_train(pcn_model *model, const pcn_data *data, const pcn_train_params *params,
                          pcn_history *history, pcn_comm *c) {
    return pcn_train_sharded(model, data, params, history, &c->coll);
}

pcn_status pcn_dist_test(const pcn_model *model, const pcn_data *data,
                         const pcn_train_params *params, pcn_test_result *result, float *yhat,
                         pcn_comm *c) {
    return pcn_test_sharded(model, data, params, result, yhat, &c->coll);
}
