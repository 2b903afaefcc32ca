/*
 * device.c — where a pcn_dist run computes: the CPU, or on CUDA one GPU per rank (node-local
 * rank mod visible devices), with gradient sums through NCCL or staged MPI and inference
 * products at --precision.
 *
 * Runs after settings_check (the choices are parsed). Every decision is the same on every
 * rank: the GPU count that matters is the smallest any rank sees. --device cpu never loads
 * the CUDA module nor asks the driver anything; --device auto says on stderr (rank 0, one
 * line) why it uses the CPU when the machine has an NVIDIA driver or device node.
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

// The CPU run: --precision and --comm nccl need a GPU (why: there is none, or NULL when
// --device cpu, which settings_check has already held them against). Collective.
static pcn_status use_cpu(app *a, const char *why) {
    const choices *ch = &a->choice;
    pcn_status st = PCN_OK;
    if (why && ch->precision != PCN_PRECISION_FP32)
        st = pcn_set_error(PCN_EINVAL, "--precision %s needs a GPU, and %s", a->cli.precision,
                           why);
    else if (why && ch->comm == COMM_NCCL)
        st = pcn_set_error(PCN_EINVAL, "--comm nccl needs a GPU, and %s", why);
    snprintf(a->device, sizeof a->device, "cpu");
    if ((st = pcn_dist_agree(a->comm, st)) == PCN_OK) warn_threads(a);
    return st;
}

// --device auto found no GPU it can use (local: why on this rank, or NULL): the CPU, and a
// note from rank 0 that says why, where a GPU was plausibly expected (an NVIDIA driver or
// device node on some rank's machine); elsewhere it stays quiet. Collective.
static pcn_status auto_cpu(app *a, const char *local) {
    const int rank = pcn_dist_rank(a->comm);
    pcn_status st = PCN_OK;
    if (local && pcn_dist_size(a->comm) > 1)
        st = pcn_set_error(PCN_EINVAL, "rank %d: %s", rank, local);
    else if (local)
        st = pcn_set_error(PCN_EINVAL, "%s", local);
    st = pcn_dist_agree(a->comm, st); // every rank holds the lowest such rank's reason
    char why[768];
    snprintf(why, sizeof why, "%s", st != PCN_OK ? pcn_last_error() : "no GPU");
    if (pcn_dist_any(a->comm, pcn_cuda_expected()) && rank == 0)
        fprintf(stderr, "pcn_dist: --device auto: using the CPU: %s\n", why);
    return use_cpu(a, why);
}

// The rank's GPU selected (under auto, *fallback is set instead of failing when a rank
// cannot use its GPU). Collective.
static pcn_status select_gpu(app *a, int visible, bool *fallback) {
    pcn_status st = PCN_OK;
    *fallback = false;
    if (visible == 0)
        st = pcn_set_error(PCN_EINVAL, "--device cuda: rank %d sees no CUDA device: %s",
                           pcn_dist_rank(a->comm), pcn_cuda_unavailable_reason());
    else
        st = pcn_cuda_select(pcn_dist_gpu_for_rank(a->comm));
    if (a->choice.device == DEVICE_AUTO) {
        char why[768];
        snprintf(why, sizeof why, "%s", st != PCN_OK ? pcn_last_error() : "");
        *fallback = pcn_dist_any(a->comm, st != PCN_OK);
        if (*fallback) return auto_cpu(a, st != PCN_OK ? why : NULL);
        return PCN_OK;
    }
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
    if (ch->device == DEVICE_CPU) return use_cpu(a, NULL); // CUDA is neither loaded nor asked
    cuda_environment();
    int visible = pcn_cuda_device_count();
    if (ch->device == DEVICE_AUTO && pcn_dist_min_int(a->comm, visible) == 0)
        return auto_cpu(a, visible ? NULL : pcn_cuda_unavailable_reason());
    bool fallback;
    pcn_status st = select_gpu(a, visible, &fallback);
    if (st != PCN_OK || fallback) return st;
    if ((st = pcn_dist_agree(a->comm, pcn_model_to_device(m, PCN_DEVICE_CUDA))) != PCN_OK)
        return st;
    pcn_comm_kind kind = ch->comm == COMM_MPI    ? PCN_COMM_MPI
                       : ch->comm == COMM_NCCL   ? PCN_COMM_NCCL
                                                 : PCN_COMM_AUTO;
    if ((st = pcn_dist_use_gpu(a->comm, kind, a->cli.comm_timeout)) != PCN_OK) return st;
    p->use_mixed_precision = ch->precision != PCN_PRECISION_FP32;
    p->mixed_precision = ch->precision;
    snprintf(a->device, sizeof a->device, "cuda:%d %s, %s sums, %s", pcn_cuda_device_index(),
             pcn_cuda_device_name(), pcn_dist_uses_nccl(a->comm) ? "nccl" : "mpi",
             a->cli.precision);
    return PCN_OK;
}
