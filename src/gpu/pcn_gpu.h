/*
 * pcn_gpu.h — the CUDA side of libpcn as a plain C interface (kernels stay private to the
 * .cu files; STYLE rule 9): the process's device, stream and cuBLAS handle, the backend
 * operations on device memory (pcn_gpu_backend() in pcn_impl.h) and the NCCL communicator
 * that src/dist sums gradients with.
 *
 * One process drives one device through one stream; every launch and copy goes to it.
 * Errors that leave no way back (a failed launch, an NCCL error or timeout) go to the fatal
 * handler, which src/dist points at pcn_fatal so that every rank ends, not one.
 * These functions live in gpu_loader.c, which loads the CUDA module (backend_cuda.cu built
 * as libpcn_cuda.so) on first use; without it (built without CUDA, no driver, module
 * missing) they answer "no devices" and say why.
 */
#ifndef PCN_GPU_H
#define PCN_GPU_H

#include <stdbool.h>
#include <stddef.h>

#include "pcn.h"

#ifdef __cplusplus
extern "C" {
#endif

// Whether the CUDA module is available here (and has NCCL); loads it on first call. Local.
bool pcn_gpu_built(void);
bool pcn_gpu_built_nccl(void);
// Why there is no CUDA here (NULL when the module loaded). Local.
const char *pcn_gpu_unavailable_reason(void);

// Where device failures go (message already formatted). Default: print and abort().
void pcn_gpu_set_fatal(void (*handler)(const char *msg));

// The selected device's name and index (NULL / -1 before pcn_cuda_select). Local.
const char *pcn_gpu_device_name(void);
int pcn_gpu_device_index(void);

// Seconds a wait on the device may take before it is declared hung (NCCL peers gone);
// default 300. Local.
void pcn_gpu_set_timeout(double seconds);

// ---- NCCL ------------------------------------------------------------------------------
#define PCN_GPU_NCCL_ID_BYTES 128
// A fresh unique id (rank 0 makes it; src/dist broadcasts it over MPI). Local.
pcn_status pcn_gpu_nccl_unique_id(unsigned char id[PCN_GPU_NCCL_ID_BYTES]);
// Joins the communicator of `size` ranks. Collective over those ranks.
pcn_status pcn_gpu_nccl_init(const unsigned char id[PCN_GPU_NCCL_ID_BYTES], int rank, int size);
// In-place sum of n floats on the device, queued on the compute stream. Collective.
pcn_status pcn_gpu_nccl_sum(float *v, size_t n);
// Frees the communicator (accepts none). Local.
void pcn_gpu_nccl_free(void);

#ifdef __cplusplus
}
#endif
#endif // PCN_GPU_H
