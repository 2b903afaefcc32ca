/*
 * gpu_none.c — the GPU interface of a libpcn built without CUDA: no devices, and every
 * request for one answered with a message that says why.
 */
#include "pcn_gpu.h"
#include "pcn_impl.h"

#define NO_CUDA "this libpcn was built without CUDA (no nvcc at configure time); rebuild with " \
                "the CUDA toolkit on PATH"

bool pcn_gpu_built(void) { return false; }
bool pcn_gpu_built_nccl(void) { return false; }
void pcn_gpu_set_fatal(void (*handler)(const char *msg)) { (void)handler; }
const char *pcn_gpu_device_name(void) { return NULL; }
int pcn_gpu_device_index(void) { return -1; }
void pcn_gpu_set_timeout(double seconds) { (void)seconds; }
int pcn_cuda_device_count(void) { return 0; }
pcn_status pcn_cuda_select(int device) {
    (void)device;
    return pcn_set_error(PCN_EINVAL, "no CUDA device: %s", NO_CUDA);
}
const pcn_backend_ops *pcn_gpu_backend(void) { return NULL; }
pcn_status pcn_gpu_nccl_unique_id(unsigned char id[PCN_GPU_NCCL_ID_BYTES]) {
    (void)id;
    return pcn_set_error(PCN_EINVAL, "no NCCL: %s", NO_CUDA);
}
pcn_status pcn_gpu_nccl_init(const unsigned char id[PCN_GPU_NCCL_ID_BYTES], int rank, int size) {
    (void)id, (void)rank, (void)size;
    return pcn_set_error(PCN_EINVAL, "no NCCL: %s", NO_CUDA);
}
pcn_status pcn_gpu_nccl_sum(float *v, size_t n) {
    (void)v, (void)n;
    return pcn_set_error(PCN_EINVAL, "no NCCL: %s", NO_CUDA);
}
void pcn_gpu_nccl_free(void) {}
