/*
 * device.c — where a pcn_dist run computes: the CPU, or on CUDA one GPU per rank (node-local
 * rank mod visible devices), with gradient sums through NCCL or staged MPI and inference
 * products at --precision.
 *
 * Runs after settings_check (the choices are parsed). Every decision is the same on every
 * rank: the GPU count that matters is the smallest any rank sees.
 */
#define _GNU_SOURCE // sched_getaffinity, CPU_COUNT
#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "program.h"

// A warning, once, when a rank runs more OpenMP threads than the cores it may run on
// (mpirun binds a lone rank to one core: its threads then share it, at the speed of one).
// Collective.
static void warn_threads(app *a) {
    cpu_set_t set;
    const int threads = omp_get_max_threads();
    const int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : threads;
    const int fewest = pcn_dist_min_int(a->comm, cores - threads + 1000000) - 1000000;
    if (fewest >= 0 || pcn_dist_rank(a->comm) != 0) return;
    fprintf(stderr, "pcn_dist: warning: a rank runs %d more OpenMP thread%s than the cores it "
            "is bound to (rank 0: %d threads, %d core%s), so its threads share cores; set "
            "OMP_NUM_THREADS to the cores per rank, or give each rank its cores (mpirun "
            "--map-by slot:PE=N --bind-to core, or --bind-to none)\n", -fewest,
            -fewest == 1 ? "" : "s", threads, cores, cores == 1 ? "" : "s");
}

// The CPU run: --precision and --comm nccl need a GPU. Collective.
static pcn_status use_cpu(app *a, int visible) {
    const choices *ch = &a->choice;
    const char *why = visible ? "another rank sees none" : "this rank sees none";
    pcn_status st = PCN_OK;
    if (ch->precision != PCN_PRECISION_FP32)
        st = pcn_set_error(PCN_EINVAL, "--precision %s needs a GPU, and %s",
                           a->cli.precision, why);
    else if (ch->comm == COMM_NCCL)
        st = pcn_set_error(PCN_EINVAL, "--comm nccl needs a GPU, and %s", why);
    snprintf(a->device, sizeof a->device, "cpu");
    if ((st = pcn_dist_agree(a->comm, st)) == PCN_OK) warn_threads(a);
    return st;
}

// The rank's GPU selected and the model moved onto it. Collective.
static pcn_status take_gpu(app *a, pcn_model *m, int visible) {
    pcn_status st = PCN_OK;
    if (visible == 0) {
        const char *why = pcn_cuda_unavailable_reason(); // NULL: CUDA is here, no device
        st = pcn_set_error(PCN_EINVAL, "--device cuda: rank %d sees no CUDA device%s%s%s",
                           pcn_dist_rank(a->comm), why ? " (" : "", why ? why : "", why ? ")" : "");
    }
    if (st == PCN_OK) st = pcn_cuda_select(pcn_dist_gpu_for_rank(a->comm));
    if (st == PCN_OK) st = pcn_model_to_device(m, PCN_DEVICE_CUDA);
    return pcn_dist_agree(a->comm, st);
}

// The environment's GPU knobs, before the first GPU call: PCN_CUDA_MODULE (the module's
// file) and PCN_CUDA_GRAPHS=0 (no graph replay, for benchmarks). Local.
static void cuda_environment(void) {
    const char *graphs = getenv("PCN_CUDA_GRAPHS");
    pcn_cuda_set_module(getenv("PCN_CUDA_MODULE"));
    pcn_cuda_set_graphs(!(graphs && strcmp(graphs, "0") == 0));
}

pcn_status device_setup(app *a, pcn_model *m, pcn_train_params *p) {
    const choices *ch = &a->choice;
    cuda_environment();
    int visible = pcn_cuda_device_count(), fewest = pcn_dist_min_int(a->comm, visible);
    bool cuda = ch->device == DEVICE_CUDA || (ch->device == DEVICE_AUTO && fewest > 0);
    if (!cuda) return use_cpu(a, visible);
    pcn_status st = take_gpu(a, m, visible);
    if (st != PCN_OK) return st;
    bool own_gpu = pcn_dist_local_size(a->comm) <= fewest;
    pcn_comm_kind kind = ch->comm == COMM_MPI                    ? PCN_COMM_MPI
                       : ch->comm == COMM_NCCL                   ? PCN_COMM_NCCL
                       : own_gpu && pcn_cuda_built_nccl() ? PCN_COMM_NCCL : PCN_COMM_MPI;
    if ((st = pcn_dist_use_gpu(a->comm, kind, a->cli.comm_timeout)) != PCN_OK) return st;
    p->use_mixed_precision = ch->precision != PCN_PRECISION_FP32;
    p->mixed_precision = ch->precision;
    snprintf(a->device, sizeof a->device, "cuda:%d %s, %s sums, %s", pcn_cuda_device_index(),
             pcn_cuda_device_name(), kind == PCN_COMM_NCCL ? "nccl" : "mpi",
             a->cli.precision);
    return PCN_OK;
}
