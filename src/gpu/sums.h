/*
 * sums.h — how a thread of the CUDA backend's summing passes (backend_cuda.cu: the error
 * passes' sums of squares) adds its elements, shared with the host so that test_gpu_sums
 * checks the same code on every machine, GPU or not.
 *
 * A pass runs a fixed grid (MAX_BLOCKS x THREADS, 262,144 threads) that strides over the
 * elements, so at 1e9 elements each thread adds about 4,000 squares. A float running sum
 * loses up to ~1e-4 relative there (2e-6 typical: test_gpu_sums), enough to move an
 * early-stop decision; the running sum is a double, so the error stays near 1e-16 per add.
 * Blocks reduce in double too.
 */
#ifndef PCN_GPU_SUMS_H
#define PCN_GPU_SUMS_H

#ifdef __CUDACC__
#define PCN_HOST_DEVICE __host__ __device__
#else
#define PCN_HOST_DEVICE
#endif

typedef double pcn_gpu_acc; // a thread's running sum of squares

// acc + v², in double.
static inline PCN_HOST_DEVICE pcn_gpu_acc pcn_gpu_add_sq(pcn_gpu_acc acc, float v) {
    return acc + (double)v * (double)v;
}

#endif // PCN_GPU_SUMS_H
