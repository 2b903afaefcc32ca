/*
 * backend_cuda.cu — the engine's backend on one CUDA device: cuBLAS matrix products, fused
 * element-wise kernels, Philox latents drawn on the device, deterministic on-device sums,
 * CUDA Graphs for repeated steps, and the NCCL communicator (when built with NCCL).
 *
 * Invariants:
 * - One process drives one device through one stream (g.stream); cuBLAS and NCCL work on it
 *   too, so the order of work is the order of calls; the only events are mark's
 *   (g.marks), which let the trainer's loops keep a bounded number of steps queued, and the
 *   timers' pairs (g.timers), which time the collectives on the stream.
 * - Sums are deterministic: every pass that sums launches a fixed grid for its size, each
 *   block writes one partial (in double) into the pass's slot, and sum_finish adds all slots
 *   in one fixed order on the device. The same inputs give bitwise the same energies, so
 *   decisions taken from them (early stop, schedules) replay exactly after a resume.
 * - The host waits for the device only in download, sync, sum_read, release, wait_mark and
 *   timer_read (and timer_begin when its ring is full);
 *   with NCCL up those waits poll NCCL's asynchronous error and a timeout, so a dead peer
 *   ends the run with a message instead of a hang.
 * - A graph is keyed by the caller's description of everything it depends on; releasing
 *   any buffer drops every graph (a new buffer may reuse an old address).
 *
 * Built as the module libpcn_cuda.so (gpu_module.h) with disc_cuda.cu (the discriminative
 * mode's and the optimizers' kernels): everything here is static but the one entry point at
 * the end, which hands libpcn's loader the table of functions, and the few helpers the two
 * files share (cuda_impl.h; hidden, not exported).
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <Random123/philox.h>
#ifdef PCN_HAVE_NCCL
#include <nccl.h>
#endif

extern "C" {
#include "gpu_module.h"
}
#include "cuda_impl.h"
#include "settle.h"
#ifndef PCN_CUDA_ARCHS
#define PCN_CUDA_ARCHS "" // the build's CMAKE_CUDA_ARCHITECTURES, comma-separated (CMake)
#endif

// Errors go to libpcn's pcn_last_error() through the function the loader hands over; the
// module links nothing of libpcn.
static pcn_errorv_fn host_errorv;
static pcn_status module_error(pcn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (host_errorv) host_errorv(status, fmt, ap);
    va_end(ap);
    return status;
}
#define pcn_set_error module_error

// ----------------------------------------------------------------------------------------
// Errors: one generic check, one macro per library (STYLE rule 4)
// ----------------------------------------------------------------------------------------

static void default_fatal(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    abort();
}

static void (*fatal_handler)(const char *) = default_fatal;

void pcn_gpu_fatal(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - n, fmt, ap);
    va_end(ap);
    fatal_handler(msg);
    abort(); // a handler must not return
}
#ifdef PCN_HAVE_NCCL
#define PCN_NCCL_CHECK(call)                                                                \
    do {                                                                                    \
        ncclResult_t r_ = (call);                                                           \
        PCN_GPU_CHECK(r_ == ncclSuccess, call, ncclGetErrorString(r_));                     \
    } while (0)
#endif

// ----------------------------------------------------------------------------------------
// The process's device
// ----------------------------------------------------------------------------------------

enum {
    SLOTS = 2 * (PCN_MAX_LAYERS + 2),    // summing passes between sum_begin and sum_finish
    MAX_GRAPHS = 16,
    MAX_KEY = 128,
    TIMERS = 64,                         // timer pairs kept until timer_read (a ring)
};

typedef struct {
    unsigned char key[MAX_KEY];
    size_t len;
    cudaGraphExec_t exec; // NULL: seen once, not recorded yet
} graph_entry;

static struct {
    int device;                 // -1: none selected
    char name[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t marks[PCN_MARK_SLOTS]; // mark / wait_mark (the bounded queue of steps)
    cudaEvent_t timers[TIMERS][2];     // timer_begin / timer_end pairs, a ring:
    int timer_head, timer_n;           //   the oldest pair not yet read, and how many
    double timer_acc;                  // seconds of the pairs read since the last timer_read
    void *blas_workspace;
    cublasComputeType_t compute; // of the next matrix products
    double *partials;           // (SLOTS, MAX_BLOCKS) per-block sums
    double *sum_dev;            // the total of the last sum_finish
    double *sum_host;           // pinned copy of it
    int slot;                   // next free slot; -1 outside sum_begin/sum_finish
    double timeout;             // seconds a wait may take with NCCL up
    bool graphs_on;             // steps recorded as graphs (pcn_cuda_set_graphs)
    graph_entry graphs[MAX_GRAPHS];
    int n_graphs, next_graph;
#ifdef PCN_HAVE_NCCL
    ncclComm_t nccl;
#endif
    bool nccl_up;
} g = {-1};
static bool graphs_off; // pcn_cuda_set_graphs(false) before or after the device was selected

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Between two polls of pcn_settle: spin for the first thousand, then sleep 50 us each.
static void pause_poll(int polls) { if (polls > 1000) usleep(50); }

// What wait_for polls: an event (or, when ev is NULL, the stream) and NCCL's asynchronous
// error; cuda and nccl keep what the last poll saw.
typedef struct {
    cudaEvent_t ev;
    cudaError_t cuda;
#ifdef PCN_HAVE_NCCL
    ncclResult_t nccl;
#endif
} device_wait;

static pcn_settle_state poll_device(void *ctx) {
    device_wait *d = (device_wait *)ctx;
    d->cuda = d->ev ? cudaEventQuery(d->ev) : cudaStreamQuery(g.stream);
    if (d->cuda == cudaSuccess) return PCN_SETTLE_DONE;
    if (d->cuda != cudaErrorNotReady) return PCN_SETTLE_FAILED;
#ifdef PCN_HAVE_NCCL
    if (ncclCommGetAsyncError(g.nccl, &d->nccl) != ncclSuccess) d->nccl = ncclInternalError;
    if (d->nccl != ncclSuccess && d->nccl != ncclInProgress) return PCN_SETTLE_FAILED;
#endif
    return PCN_SETTLE_PENDING;
}

// Waits for an event (ev) or, when ev is NULL, for everything queued on the stream. With
// NCCL up it polls (pcn_settle), so that an NCCL error or a peer that never arrives ends the
// run (through the fatal handler) after g.timeout.
static void wait_for(cudaEvent_t ev, const char *what) {
    if (!g.nccl_up) {
        if (ev) PCN_CUDA_CHECK(cudaEventSynchronize(ev));
        else PCN_CUDA_CHECK(cudaStreamSynchronize(g.stream));
        return;
    }
    device_wait d = {};
    d.ev = ev;
    const pcn_settle_wait w = {poll_device, &d, now, pause_poll, g.timeout};
    const pcn_settle_state s = pcn_settle(&w);
    if (s == PCN_SETTLE_DONE) return;
    if (s == PCN_SETTLE_FAILED && d.cuda != cudaErrorNotReady)
        pcn_gpu_fatal(__FILE__, __LINE__, "waiting for %s: %s", what, cudaGetErrorString(d.cuda));
#ifdef PCN_HAVE_NCCL
    ncclCommAbort(g.nccl);
    g.nccl_up = false;
    if (s == PCN_SETTLE_FAILED)
        pcn_gpu_fatal(__FILE__, __LINE__, "NCCL failed while waiting for %s: %s", what,
                      ncclGetErrorString(d.nccl));
#endif
    pcn_gpu_fatal(__FILE__, __LINE__,
                  "timed out after %.0f s waiting for %s: another rank died or hangs in a "
                  "collective (raise --comm-timeout if the work is just slow)",
                  g.timeout, what);
}

static void wait_stream(const char *what) { wait_for(NULL, what); }

static bool has_nccl(void) {
#ifdef PCN_HAVE_NCCL
    return true;
#else
    return false;
#endif
}
static void m_pcn_gpu_set_fatal(void (*handler)(const char *msg)) {
    fatal_handler = handler ? handler : default_fatal;
}
static const char *m_pcn_gpu_device_name(void) { return g.device >= 0 ? g.name : NULL; }
static int m_pcn_gpu_device_index(void) { return g.device; }
static void m_pcn_gpu_set_timeout(double seconds) { g.timeout = seconds > 0 ? seconds : 300; }

static int m_pcn_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // no driver or no device: clear the sticky error
        return 0;
    }
    return n;
}

// The devices, or why there are none: CUDA's error and the driver's and runtime's versions
// (the loader words the reason, pcn_cuda_probe_reason).
static void m_pcn_gpu_probe(pcn_gpu_probe *out) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    memset(out, 0, sizeof *out);
    out->count = e == cudaSuccess ? n : 0;
    out->error = (int)e;
    if (e != cudaSuccess) {
        cudaGetLastError(); // no driver or no device: clear the sticky error
        snprintf(out->error_name, sizeof out->error_name, "%s", cudaGetErrorName(e));
        snprintf(out->error_string, sizeof out->error_string, "%s", cudaGetErrorString(e));
    }
    if (cudaDriverGetVersion(&out->driver_version) != cudaSuccess) out->driver_version = 0;
    if (cudaRuntimeGetVersion(&out->runtime_version) != cudaSuccess) out->runtime_version = 0;
}

static pcn_status m_pcn_gpu_device_props(int device, pcn_gpu_props *out) {
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess)
        return pcn_set_error(PCN_EINVAL, "CUDA device %d: %s: %s", device, cudaGetErrorName(e),
                             cudaGetErrorString(e));
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->major = prop.major, out->minor = prop.minor;
    static_assert(sizeof prop.uuid.bytes == PCN_CUDA_UUID_BYTES, "CUDA UUID size");
    memcpy(out->uuid, prop.uuid.bytes, PCN_CUDA_UUID_BYTES);
    return PCN_OK;
}

static pcn_status m_pcn_cuda_select(int device) {
    int n = m_pcn_cuda_device_count();
    if (n == 0) return pcn_set_error(PCN_EINVAL, "no CUDA device is visible to this process");
    if (device < 0 || device >= n)
        return pcn_set_error(PCN_EINVAL, "CUDA device %d does not exist (%d visible)", device, n);
    if (g.device >= 0)
        return g.device == device ? PCN_OK
                                  : pcn_set_error(PCN_ESTATE, "this process already drives "
                                                  "CUDA device %d", g.device);
    cudaDeviceProp prop;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess)
        return pcn_set_error(PCN_EINVAL, "CUDA device %d: %s", device, cudaGetErrorString(e));
    snprintf(g.name, sizeof g.name, "%s", prop.name);
    PCN_CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
    PCN_CUBLAS_CHECK(cublasCreate(&g.blas));
    PCN_CUBLAS_CHECK(cublasSetStream(g.blas, g.stream));
    // A workspace of our own lets cuBLAS run inside graph capture without allocating.
    const size_t ws = (size_t)32 << 20;
    PCN_CUDA_CHECK(cudaMalloc(&g.blas_workspace, ws));
    PCN_CUBLAS_CHECK(cublasSetWorkspace(g.blas, g.blas_workspace, ws));
    PCN_CUDA_CHECK(cudaMalloc((void **)&g.partials, sizeof(double) * SLOTS * MAX_BLOCKS));
    PCN_CUDA_CHECK(cudaMalloc((void **)&g.sum_dev, sizeof(double)));
    PCN_CUDA_CHECK(cudaMallocHost((void **)&g.sum_host, sizeof(double)));
    for (int i = 0; i < PCN_MARK_SLOTS; i++)
        PCN_CUDA_CHECK(cudaEventCreateWithFlags(&g.marks[i], cudaEventDisableTiming));
    for (int i = 0; i < TIMERS; i++)
        for (int j = 0; j < 2; j++) PCN_CUDA_CHECK(cudaEventCreate(&g.timers[i][j]));
    g.compute = CUBLAS_COMPUTE_32F;
    g.slot = -1;
    if (g.timeout <= 0) g.timeout = 300;
    g.graphs_on = !graphs_off;
    g.device = device;
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Kernels (private) and their launchers
// ----------------------------------------------------------------------------------------

// e = x - f(a); h = e f'(a); x -= lr e when UPDATE; sum e^2 into partial when given.
template <int ACT, bool UPDATE>
__global__ void error_kernel(size_t n, float *x, const float *a, float *e, float *h, float lr,
                             double *partial) {
    pcn_gpu_acc part = 0.0; // in double (sums.h)
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float d, f = act_both<ACT>(a[i], 0.0f, &d); // generative: no leaky_relu
        float xi = x[i], ei = xi - f;
        e[i] = ei;
        h[i] = ei * d;
        part = pcn_gpu_add_sq(part, ei);
        if (UPDATE) x[i] = xi - lr * ei;
    }
    if (partial) write_partial(part, partial);
}

__global__ void sup_error_kernel(size_t n, const float *yhat, const float *y, float *esup,
                                 double *partial) {
    pcn_gpu_acc part = 0.0; // in double (sums.h)
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float d = yhat[i] - y[i];
        esup[i] = d;
        part = pcn_gpu_add_sq(part, d);
    }
    if (partial) write_partial(part, partial);
}

__global__ void axpy_kernel(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += alpha * x[i];
}

__global__ void scale_kernel(int m, int n, float beta, float *c, int ldc) {
    size_t total = (size_t)m * n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float *cij = &c[(i / n) * ldc + i % n];
        *cij = beta == 0.0f ? 0.0f : beta * *cij;
    }
}

// One thread per (row, group of 4 units): the same Philox block and Box-Muller (in double)
// as pcn_rng_normal on the host.
__global__ void normal_kernel(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2,
                              int rows, int dim, float *x) {
    const int groups = (dim + 3) / 4;
    size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (idx >= (size_t)rows * groups) return;
    int r = (int)(idx / groups), q = (int)(idx % groups);
    philox4x32_ctr_t ctr = {{(uint32_t)q, first_row + (uint32_t)r, c1, c2}};
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t v = philox4x32(ctr, key);
    const double two_pi = 6.283185307179586476925286766559;
    double z[4];
    for (int p = 0; p < 2; p++) {
        double u1 = ((double)v.v[2 * p] + 0.5) * (1.0 / 4294967296.0);
        double u2 = ((double)v.v[2 * p + 1] + 0.5) * (1.0 / 4294967296.0);
        double rad = sqrt(-2.0 * log(u1)), th = two_pi * u2;
        z[2 * p] = rad * cos(th);
        z[2 * p + 1] = rad * sin(th);
    }
    float *out = x + (size_t)r * dim + 4 * q;
    for (int k = 0; k < 4 && 4 * q + k < dim; k++) out[k] = (float)z[k];
}

// Adds n partials in one fixed order (one block, strided then tree) into *out.
__global__ void total_kernel(const double *partials, int n, double *out) {
    double v = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += partials[i];
    block_sum(v, out);
}

cudaStream_t pcn_gpu_stream(void) { return g.stream; }

int pcn_gpu_blocks_for(size_t n, int cap) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (int)(b < 1 ? 1 : b > (size_t)cap ? cap : b);
}

double *pcn_gpu_next_partial(void) {
    if (g.slot < 0) return NULL;
    if (g.slot >= SLOTS) pcn_gpu_fatal(__FILE__, __LINE__, "more than %d summing passes in one sum", SLOTS);
    return g.partials + (size_t)MAX_BLOCKS * g.slot++;
}

// ----------------------------------------------------------------------------------------
// Backend operations
// ----------------------------------------------------------------------------------------

// Row-major C (m, n) = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets the
// operands swapped and each transpose flag as given.
static void cuda_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                      const float *a, int lda, const float *b, int ldb, float beta, float *c,
                      int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { // an empty product (a rank holding no rows): C = beta C
        scale_kernel<<<pcn_gpu_blocks_for((size_t)m * n, 4096), THREADS, 0, g.stream>>>(m, n, beta, c, ldc);
        LAUNCHED();
        return;
    }
    PCN_CUBLAS_CHECK(cublasGemmEx(g.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                  CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, ldc,
                                  g.compute, CUBLAS_GEMM_DEFAULT));
}

template <int ACT>
static void launch_error(size_t n, float *x, const float *a, float *e, float *h, float lr) {
    double *partial = pcn_gpu_next_partial();
    int blocks = pcn_gpu_blocks_for(n, MAX_BLOCKS);
    if (lr != 0.0f)
        error_kernel<ACT, true><<<blocks, THREADS, 0, g.stream>>>(n, x, a, e, h, lr, partial);
    else
        error_kernel<ACT, false><<<blocks, THREADS, 0, g.stream>>>(n, x, a, e, h, lr, partial);
    LAUNCHED();
}

static double cuda_error_pass(pcn_activation act, size_t n, float *x, const float *a, float *e,
                              float *h, float lr) {
    if (n == 0) return 0.0;
    switch (act) {
    case PCN_ACT_RELU: launch_error<PCN_ACT_RELU>(n, x, a, e, h, lr); break;
    case PCN_ACT_TANH: launch_error<PCN_ACT_TANH>(n, x, a, e, h, lr); break;
    case PCN_ACT_SIGMOID: launch_error<PCN_ACT_SIGMOID>(n, x, a, e, h, lr); break;
    default: launch_error<PCN_ACT_IDENTITY>(n, x, a, e, h, lr); break;
    }
    return 0.0; // the sum stays on the device (sum_read)
}

static double cuda_sup_error(size_t n, const float *yhat, const float *y, float *esup) {
    if (n == 0) return 0.0;
    sup_error_kernel<<<pcn_gpu_blocks_for(n, MAX_BLOCKS), THREADS, 0, g.stream>>>(n, yhat, y, esup,
                                                                        pcn_gpu_next_partial());
    LAUNCHED();
    return 0.0;
}

static void cuda_axpy(size_t n, float alpha, const float *x, float *y) {
    if (n == 0) return;
    axpy_kernel<<<pcn_gpu_blocks_for(n, MAX_ELEMENT_BLOCKS), THREADS, 0, g.stream>>>(n, alpha, x, y);
    LAUNCHED();
}

static void cuda_zero(size_t n, float *p) {
    if (n) PCN_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), g.stream));
}

static void cuda_normal_rows(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2,
                             int rows, int dim, float *x) {
    size_t threads = (size_t)rows * ((dim + 3) / 4);
    if (threads == 0) return;
    normal_kernel<<<(unsigned)((threads + THREADS - 1) / THREADS), THREADS, 0, g.stream>>>(
        seed, first_row, c1, c2, rows, dim, x);
    LAUNCHED();
}

static void drop_graphs(void) {
    for (int i = 0; i < g.n_graphs; i++)
        if (g.graphs[i].exec) cudaGraphExecDestroy(g.graphs[i].exec);
    g.n_graphs = g.next_graph = 0;
}

static void *cuda_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    PCN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, g.stream));
    return p;
}

static void cuda_release(void *p) {
    if (!p) return;
    wait_stream("work before freeing device memory");
    drop_graphs();
    PCN_CUDA_CHECK(cudaFree(p));
}

static void cuda_upload(void *dst, const void *src, size_t bytes) {
    if (bytes) PCN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g.stream));
}

static void cuda_download(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    PCN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g.stream));
    wait_stream("a copy from the device");
}

static void cuda_sync(void) { wait_stream("the device"); }

// Pinned host memory for staging (backend.h): copies from it are queued without a host copy,
// and copies into it run without a bounce buffer inside the driver.
static void *cuda_host_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

// Waits first: a queued upload may still read the buffer.
static void cuda_host_free(void *p) {
    if (!p) return;
    wait_stream("copies before freeing pinned memory");
    PCN_CUDA_CHECK(cudaFreeHost(p));
}

static void cuda_sum_begin(void) { g.slot = 0; }

static void cuda_sum_finish(void) {
    total_kernel<<<1, THREADS, 0, g.stream>>>(g.partials, g.slot * MAX_BLOCKS, g.sum_dev);
    LAUNCHED();
    PCN_CUDA_CHECK(cudaMemcpyAsync(g.sum_host, g.sum_dev, sizeof(double), cudaMemcpyDeviceToHost,
                                   g.stream));
    g.slot = -1;
}

static double cuda_sum_read(void) {
    wait_stream("a sum on the device");
    return *g.sum_host;
}

static void cuda_mark(int slot) {
    PCN_CUDA_CHECK(cudaEventRecord(g.marks[slot % PCN_MARK_SLOTS], g.stream));
}

static pcn_status cuda_wait_mark(int slot) {
    wait_for(g.marks[slot % PCN_MARK_SLOTS], "a queued step");
    return PCN_OK;
}

// ---- timers: event pairs around queued operations (the collectives) ----------------------

// Adds the oldest pair's elapsed time, waiting for its end, and frees its slot.
static void timer_fold(void) {
    cudaEvent_t *p = g.timers[g.timer_head];
    wait_for(p[1], "a timed collective");
    float ms = 0.0f;
    PCN_CUDA_CHECK(cudaEventElapsedTime(&ms, p[0], p[1]));
    g.timer_acc += 1e-3 * ms;
    g.timer_head = (g.timer_head + 1) % TIMERS;
    g.timer_n--;
}

static void cuda_timer_begin(void) {
    if (g.timer_n == TIMERS) timer_fold(); // the ring is full: its oldest pair ran long ago
    PCN_CUDA_CHECK(cudaEventRecord(g.timers[(g.timer_head + g.timer_n) % TIMERS][0], g.stream));
}

static void cuda_timer_end(void) {
    PCN_CUDA_CHECK(cudaEventRecord(g.timers[(g.timer_head + g.timer_n) % TIMERS][1], g.stream));
    g.timer_n++;
}

static double cuda_timer_read(void) {
    while (g.timer_n > 0) timer_fold();
    const double seconds = g.timer_acc;
    g.timer_acc = 0.0;
    return seconds;
}

static void cuda_set_precision(pcn_precision p) {
    g.compute = p == PCN_PRECISION_TF32   ? CUBLAS_COMPUTE_32F_FAST_TF32
              : p == PCN_PRECISION_BF16   ? CUBLAS_COMPUTE_32F_FAST_16BF
              : p == PCN_PRECISION_FP16   ? CUBLAS_COMPUTE_32F_FAST_16F
                                          : CUBLAS_COMPUTE_32F;
}

static void cuda_replay(const void *key, size_t len, void (*body)(void *), void *ctx) {
    if (!g.graphs_on || len > MAX_KEY) {
        body(ctx);
        return;
    }
    graph_entry *hit = NULL;
    for (int i = 0; i < g.n_graphs && !hit; i++)
        if (g.graphs[i].len == len && memcmp(g.graphs[i].key, key, len) == 0) hit = &g.graphs[i];
    if (hit && hit->exec) {
        PCN_CUDA_CHECK(cudaGraphLaunch(hit->exec, g.stream));
        return;
    }
    if (!hit) { // first call: run it directly (cuBLAS picks and loads its kernels outside
                // any capture), remember the key, record on the second call
        hit = &g.graphs[g.next_graph];
        if (g.n_graphs == MAX_GRAPHS && hit->exec) cudaGraphExecDestroy(hit->exec); // oldest
        else if (g.n_graphs < MAX_GRAPHS) g.n_graphs++;
        g.next_graph = (g.next_graph + 1) % MAX_GRAPHS;
        memcpy(hit->key, key, len);
        hit->len = len;
        hit->exec = NULL;
        body(ctx);
        return;
    }
    cudaGraph_t graph;
    PCN_CUDA_CHECK(cudaStreamBeginCapture(g.stream, cudaStreamCaptureModeThreadLocal));
    body(ctx);
    PCN_CUDA_CHECK(cudaStreamEndCapture(g.stream, &graph));
    PCN_CUDA_CHECK(cudaGraphInstantiate(&hit->exec, graph, 0));
    PCN_CUDA_CHECK(cudaGraphDestroy(graph));
    PCN_CUDA_CHECK(cudaGraphLaunch(hit->exec, g.stream));
}

static pcn_backend_ops make_ops(void) {
    pcn_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.gemm = cuda_gemm;
    o.error_pass = cuda_error_pass;
    o.sup_error = cuda_sup_error;
    o.axpy = cuda_axpy;
    o.zero = cuda_zero;
    o.normal_rows = cuda_normal_rows;
    o.on_device = true;
    o.alloc = cuda_alloc;
    o.release = cuda_release;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.host_alloc = cuda_host_alloc;
    o.host_free = cuda_host_free;
    o.sync = cuda_sync;
    o.sum_begin = cuda_sum_begin;
    o.sum_finish = cuda_sum_finish;
    o.sum_read = cuda_sum_read;
    o.set_precision = cuda_set_precision;
    o.replay = cuda_replay;
    o.mark = cuda_mark;
    o.wait_mark = cuda_wait_mark;
    o.timer_begin = cuda_timer_begin;
    o.timer_end = cuda_timer_end;
    o.timer_read = cuda_timer_read;
    pcn_gpu_disc_ops(&o); // disc_cuda.cu
    return o;
}

static const pcn_backend_ops cuda_ops = make_ops();

static const pcn_backend_ops *m_pcn_gpu_backend(void) { return g.device >= 0 ? &cuda_ops : NULL; }

// ----------------------------------------------------------------------------------------
// NCCL
// ----------------------------------------------------------------------------------------

#ifdef PCN_HAVE_NCCL
static_assert(sizeof(ncclUniqueId) == PCN_CUDA_NCCL_ID_BYTES, "NCCL unique id size");

static pcn_status m_pcn_gpu_nccl_unique_id(unsigned char *id) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return pcn_set_error(PCN_EIO, "ncclGetUniqueId: %s", ncclGetErrorString(r));
    memcpy(id, &u, sizeof u);
    return PCN_OK;
}

// NCCL >= 2.14 creates the communicator non-blocking (config.blocking = 0) and settle polls
// it under g.timeout: a peer that never starts ends the init with an error, not a hang. Every
// call on such a communicator may answer ncclInProgress; settle waits it out before the next.
#if defined(NCCL_VERSION_CODE) && NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
#define PCN_NCCL_NONBLOCKING 1
#else
#define PCN_NCCL_NONBLOCKING 0
#endif

#if PCN_NCCL_NONBLOCKING
static pcn_settle_state poll_nccl(void *ctx) {
    ncclResult_t *r = (ncclResult_t *)ctx;
    if (ncclCommGetAsyncError(g.nccl, r) != ncclSuccess) *r = ncclInternalError;
    return *r == ncclInProgress ? PCN_SETTLE_PENDING
                                : *r == ncclSuccess ? PCN_SETTLE_DONE : PCN_SETTLE_FAILED;
}

// What an NCCL call on the communicator returned (r), once settled: polled (pcn_settle) for
// at most g.timeout seconds; ncclInProgress when the time ran out.
static ncclResult_t nccl_settle(ncclResult_t r) {
    if (r != ncclInProgress) return r;
    const pcn_settle_wait w = {poll_nccl, &r, now, pause_poll, g.timeout};
    pcn_settle(&w);
    return r;
}
static bool nccl_timed_out(ncclResult_t r) { return r == ncclInProgress; }
#else
static ncclResult_t nccl_settle(ncclResult_t r) { return r; } // blocking calls: settled
static bool nccl_timed_out(ncclResult_t r) { (void)r; return false; }
#endif

// What an NCCL call on the communicator returned, settled; ends the run through the fatal
// handler when it did not settle within g.timeout.
static ncclResult_t nccl_queued(ncclResult_t r, const char *what) {
    r = nccl_settle(r);
    if (nccl_timed_out(r))
        pcn_gpu_fatal(__FILE__, __LINE__, "NCCL: %s did not settle within %.0f s (another rank "
                      "died or hangs; --comm-timeout)", what, g.timeout);
    return r;
}

static ncclResult_t nccl_init_comm(ncclUniqueId u, int rank, int size) {
#if PCN_NCCL_NONBLOCKING
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    return nccl_settle(ncclCommInitRankConfig(&g.nccl, size, u, rank, &config));
#else
    return ncclCommInitRank(&g.nccl, size, u, rank); // no timeout before NCCL 2.14
#endif
}

static pcn_status m_pcn_gpu_nccl_init(const unsigned char *id, int rank,
                                        int size) {
    if (g.device < 0) return pcn_set_error(PCN_ESTATE, "NCCL: no CUDA device selected");
    if (g.nccl_up) return pcn_set_error(PCN_ESTATE, "NCCL: this process already has a communicator");
    // NCCL binds its communicator to the calling thread's current device: make it ours.
    cudaError_t e = cudaSetDevice(g.device);
    if (e != cudaSuccess)
        return pcn_set_error(PCN_EIO, "NCCL: cudaSetDevice(%d): %s", g.device,
                             cudaGetErrorString(e));
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    g.nccl = NULL;
    ncclResult_t r = nccl_init_comm(u, rank, size);
    if (r == ncclSuccess) {
        g.nccl_up = true;
        return PCN_OK;
    }
    if (PCN_NCCL_NONBLOCKING && g.nccl) ncclCommAbort(g.nccl); // a blocking init cleans up
    g.nccl = NULL;
    if (nccl_timed_out(r))
        return pcn_set_error(PCN_EIO, "NCCL: the communicator's init (rank %d of %d) timed out "
                             "after %.0f s: check that every rank started and reached it, and "
                             "the network between the nodes (NCCL_DEBUG=INFO; --comm-timeout)",
                             rank, size, g.timeout);
    return pcn_set_error(PCN_EIO, "NCCL communicator init (rank %d of %d): %s%s", rank, size,
                         ncclGetErrorString(r),
                         r == ncclInvalidUsage ? " (two ranks on one GPU? use --comm mpi)" : "");
}

static pcn_status m_pcn_gpu_nccl_sum(float *v, size_t n) {
    if (!g.nccl_up) return pcn_set_error(PCN_ESTATE, "NCCL: no communicator");
    PCN_NCCL_CHECK(nccl_queued(ncclAllReduce(v, v, n, ncclFloat, ncclSum, g.nccl, g.stream),
                               "queuing a gradient sum"));
    return PCN_OK;
}

static void m_pcn_gpu_nccl_free(void) {
    if (!g.nccl_up) return;
    wait_stream("collectives before closing NCCL");
#if PCN_NCCL_NONBLOCKING
    if (nccl_settle(ncclCommFinalize(g.nccl)) != ncclSuccess) { // flushes; non-blocking here
        ncclCommAbort(g.nccl);
        g.nccl_up = false;
        return;
    }
#endif
    ncclCommDestroy(g.nccl);
    g.nccl_up = false;
}
#else
static pcn_status m_pcn_gpu_nccl_unique_id(unsigned char *id) {
    (void)id;
    return pcn_set_error(PCN_EINVAL, "this libpcn was built without NCCL; use --comm mpi");
}
static pcn_status m_pcn_gpu_nccl_init(const unsigned char *id, int rank,
                                        int size) {
    (void)id, (void)rank, (void)size;
    return pcn_set_error(PCN_EINVAL, "this libpcn was built without NCCL; use --comm mpi");
}
static pcn_status m_pcn_gpu_nccl_sum(float *v, size_t n) {
    (void)v, (void)n;
    return pcn_set_error(PCN_EINVAL, "this libpcn was built without NCCL; use --comm mpi");
}
static void m_pcn_gpu_nccl_free(void) {}
#endif

// ----------------------------------------------------------------------------------------
// The module's one entry point (gpu_module.h)
// ----------------------------------------------------------------------------------------

static void m_pcn_cuda_set_graphs(bool on) {
    graphs_off = !on;
    if (g.device >= 0) g.graphs_on = on;
}

extern "C" __attribute__((visibility("default"))) const pcn_gpu_module *
pcn_gpu_module_init(pcn_errorv_fn set_errorv) {
    static pcn_gpu_module table;
    host_errorv = set_errorv;
    table.abi = PCN_GPU_MODULE_ABI;
    table.has_nccl = has_nccl();
    table.set_fatal = m_pcn_gpu_set_fatal;
    table.device_name = m_pcn_gpu_device_name;
    table.device_index = m_pcn_gpu_device_index;
    table.set_timeout = m_pcn_gpu_set_timeout;
    table.set_graphs = m_pcn_cuda_set_graphs;
    table.archs = PCN_CUDA_ARCHS;
    table.probe = m_pcn_gpu_probe;
    table.device_props = m_pcn_gpu_device_props;
    table.select = m_pcn_cuda_select;
    table.backend = m_pcn_gpu_backend;
    table.nccl_unique_id = m_pcn_gpu_nccl_unique_id;
    table.nccl_init = m_pcn_gpu_nccl_init;
    table.nccl_sum = m_pcn_gpu_nccl_sum;
    table.nccl_free = m_pcn_gpu_nccl_free;
    return &table;
}
