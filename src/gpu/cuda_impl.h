/*
 * cuda_impl.h — what the CUDA module's source files share (private to the module, CUDA
 * only): backend_cuda.cu (the device, its stream, the generative passes, memory, sums,
 * graphs, NCCL) and disc_cuda.cu (the discriminative mode's and the optimizers' kernels).
 *
 * The module is compiled without relocatable device code, so the device helpers (the
 * activations, the block sums) are static inline here and every file has its own copy;
 * host-side, the files share the stream, the sums' slots and the fatal handler through the
 * few functions declared below (hidden: the module exports only its entry point).
 */
#ifndef PCN_GPU_CUDA_IMPL_H
#define PCN_GPU_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend.h"
#include "sums.h"
}

enum {
    THREADS = 256,                       // threads per block of the element-wise kernels
    MAX_BLOCKS = 1024,                   // blocks of a summing pass (grid-stride beyond)
    MAX_ELEMENT_BLOCKS = 8192,           // blocks of a non-summing element-wise pass
};

// ---- errors: one generic check, one macro per library (STYLE rule 4) ---------------------

// Formats file:line: message and hands it to the fatal handler; never returns.
[[noreturn]] void pcn_gpu_fatal(const char *file, int line, const char *fmt, ...);

#define PCN_GPU_CHECK(ok, call, errstr)                                                     \
    do {                                                                                    \
        if (!(ok)) pcn_gpu_fatal(__FILE__, __LINE__, "%s in %s: %s", #call, __func__, errstr); \
    } while (0)
#define PCN_CUDA_CHECK(call)                                                                \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        PCN_GPU_CHECK(e_ == cudaSuccess, call, cudaGetErrorString(e_));                     \
    } while (0)
#define PCN_CUBLAS_CHECK(call)                                                              \
    do {                                                                                    \
        cublasStatus_t s_ = (call);                                                         \
        PCN_GPU_CHECK(s_ == CUBLAS_STATUS_SUCCESS, call, cublasGetStatusString(s_));        \
    } while (0)
#define LAUNCHED() PCN_CUDA_CHECK(cudaGetLastError())

// ---- the device's state, host side (backend_cuda.cu) -------------------------------------

// The process's stream: every kernel, copy and product goes on it.
cudaStream_t pcn_gpu_stream(void);
// The partials slot of the next summing pass, or NULL outside sum_begin/sum_finish.
double *pcn_gpu_next_partial(void);
// Blocks for n elements, THREADS each, between 1 and cap (grid-stride beyond).
int pcn_gpu_blocks_for(size_t n, int cap);
// The discriminative mode's and the optimizers' operations (disc_cuda.cu) into o.
void pcn_gpu_disc_ops(pcn_backend_ops *o);

// ---- device helpers ------------------------------------------------------------------------

// Activation and derivative from one evaluation, as activation_impl.h on the host (slope:
// leaky_relu's, ignored by the others).
template <int ACT>
static __device__ __forceinline__ float act_both(float a, float slope, float *d) {
    if (ACT == PCN_ACT_RELU) {
        *d = a > 0.0f ? 1.0f : 0.0f;
        return a > 0.0f ? a : 0.0f;
    } else if (ACT == PCN_ACT_TANH) {
        float t = tanhf(a);
        *d = 1.0f - t * t;
        return t;
    } else if (ACT == PCN_ACT_SIGMOID) {
        float s = 1.0f / (1.0f + expf(-a));
        *d = s * (1.0f - s);
        return s;
    } else if (ACT == PCN_ACT_GELU) { // tanh form; constants as ACT_GELU_C, ACT_GELU_K
        const float c = 0.7978845608028654f, k = 0.044715f;
        float u = c * (a + k * a * a * a), t = tanhf(u);
        *d = 0.5f * (1.0f + t) + 0.5f * a * (1.0f - t * t) * c * (1.0f + 3.0f * k * a * a);
        return 0.5f * a * (1.0f + t);
    } else if (ACT == PCN_ACT_LEAKY_RELU) {
        *d = a > 0.0f ? 1.0f : slope;
        return a > 0.0f ? a : slope * a;
    } else if (ACT == PCN_ACT_HARD_TANH) {
        *d = a > -1.0f && a < 1.0f ? 1.0f : 0.0f;
        return a > 1.0f ? 1.0f : a < -1.0f ? -1.0f : a;
    }
    *d = 1.0f;
    return a;
}

// Sum of v over the block, in double, into out (thread 0 writes).
static __device__ void block_sum(double v, double *out) {
    __shared__ double warp_sums[THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < THREADS / 32 ? warp_sums[threadIdx.x] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) *out = v;
    }
}

// Block b writes partial[b]; block 0 also zeroes the slot's unused entries.
static __device__ void write_partial(pcn_gpu_acc part, double *partial) {
    block_sum(part, &partial[blockIdx.x]);
    if (blockIdx.x == 0)
        for (int j = gridDim.x + threadIdx.x; j < MAX_BLOCKS; j += blockDim.x) partial[j] = 0.0;
}

// Grid-stride loop over i in [0, n).
#define GRID_LOOP(i, n)                                                                     \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                 \
         i += (size_t)gridDim.x * blockDim.x)

#endif // PCN_GPU_CUDA_IMPL_H
