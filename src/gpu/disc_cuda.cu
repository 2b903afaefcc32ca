/*
 * disc_cuda.cu — the CUDA backend's kernels of the discriminative mode and of the weight
 * optimizers (backend.h): broadcast rows, activation, the fused error pass with its sum of
 * squares, the latent step and the optimizer step, each one pass over its elements with the
 * per-element formulas of the host backends (disc_kernels.h, pcn_host_optim_step in
 * backend_disc.c). The discriminative phase itself is the plain one (disc.c), which the
 * loader (cuda.c) puts into the table; it runs on these operations.
 *
 * Invariants (as backend_cuda.cu's passes):
 * - every kernel goes on the module's one stream, and cudaGetLastError is checked after
 *   every launch;
 * - disc_error returns 0: between sum_begin and sum_finish it writes per-block partial sums
 *   (each thread's running sum in double, sums.h) into the next slot, added in one fixed
 *   order by sum_finish; outside them it sums nothing;
 * - the kernels are templates on the activation and the optimizer, so each compiles to one
 *   loop without a per-element switch.
 */
#include <math.h>
#include <string.h>

#include "cuda_impl.h"

// ----------------------------------------------------------------------------------------
// Kernels (private)
// ----------------------------------------------------------------------------------------

// a (rows, cols) = b broadcast to every row.
static __global__ void fill_rows_kernel(size_t n, int cols, const float *b, float *a) {
    GRID_LOOP(i, n) a[i] = b[i % (size_t)cols];
}

// mu = f(a).
template <int ACT>
static __global__ void act_kernel(size_t n, float slope, const float *a, float *mu) {
    GRID_LOOP(i, n) {
        float fd;
        mu[i] = act_both<ACT>(a[i], slope, &fd);
    }
}

// e = x - f(a); d = e f'(a); sum e^2 into partial when given.
template <int ACT>
static __global__ void disc_error_kernel(size_t n, float slope, const float *x, const float *a,
                                         float *e, float *d, double *partial) {
    pcn_gpu_acc part = 0.0; // in double (sums.h)
    GRID_LOOP(i, n) {
        float fd, f = act_both<ACT>(a[i], slope, &fd);
        const float ei = x[i] - f;
        e[i] = ei;
        d[i] = ei * fd;
        part = pcn_gpu_add_sq(part, ei);
    }
    if (partial) write_partial(part, partial);
}

// g = e + t; MOMENTUM: m = g + beta m, x -= lr m; else x -= lr g.
template <bool MOMENTUM>
static __global__ void latent_kernel(size_t n, float lr, float beta, const float *e,
                                     const float *t, float *m, float *x) {
    GRID_LOOP(i, n) {
        if (MOMENTUM) {
            const float mi = (e[i] + t[i]) + beta * m[i];
            m[i] = mi;
            x[i] -= lr * mi;
        } else {
            x[i] -= lr * (e[i] + t[i]);
        }
    }
}

// One optimizer step of kind KIND (pcn_optimizer), as pcn_host_optim_step.
template <int KIND>
static __global__ void optim_kernel(pcn_optim_step o, size_t n, const float *g, float *m,
                                    float *v, float *w) {
    GRID_LOOP(i, n) {
        if (KIND == PCN_OPT_MOMENTUM) {
            const float mi = o.scale * g[i] + o.momentum * m[i];
            m[i] = mi;
            w[i] -= o.lr * (mi + o.wd * w[i]);
        } else if (KIND == PCN_OPT_ADAMW) {
            const float gi = o.scale * g[i];
            const float mi = o.b1 * m[i] + o.c1 * gi;
            const float vi = o.b2 * v[i] + o.c2 * gi * gi;
            m[i] = mi, v[i] = vi;
            const float mh = mi / o.bc1, vh = vi / o.bc2;
            w[i] -= o.lr * (mh / (sqrtf(vh) + o.eps) + o.wd * w[i]);
        } else {
            w[i] -= o.lr * (o.scale * g[i] + o.wd * w[i]);
        }
    }
}

// ----------------------------------------------------------------------------------------
// Launchers: the backend operations
// ----------------------------------------------------------------------------------------

static int element_blocks(size_t n) { return pcn_gpu_blocks_for(n, MAX_ELEMENT_BLOCKS); }

static void cuda_fill_rows(int rows, int cols, const float *b, float *a) {
    const size_t n = (size_t)rows * (size_t)cols;
    if (n == 0) return;
    if (!b) {
        PCN_CUDA_CHECK(cudaMemsetAsync(a, 0, n * sizeof(float), pcn_gpu_stream()));
        return;
    }
    fill_rows_kernel<<<element_blocks(n), THREADS, 0, pcn_gpu_stream()>>>(n, cols, b, a);
    LAUNCHED();
}

template <int ACT> static void launch_act(float slope, size_t n, const float *a, float *mu) {
    act_kernel<ACT><<<element_blocks(n), THREADS, 0, pcn_gpu_stream()>>>(n, slope, a, mu);
    LAUNCHED();
}

static void cuda_act_pass(pcn_activation act, float slope, size_t n, const float *a,
                          float *mu) {
    if (n == 0) return;
    switch (act) {
    case PCN_ACT_RELU: launch_act<PCN_ACT_RELU>(slope, n, a, mu); break;
    case PCN_ACT_TANH: launch_act<PCN_ACT_TANH>(slope, n, a, mu); break;
    case PCN_ACT_SIGMOID: launch_act<PCN_ACT_SIGMOID>(slope, n, a, mu); break;
    case PCN_ACT_GELU: launch_act<PCN_ACT_GELU>(slope, n, a, mu); break;
    case PCN_ACT_LEAKY_RELU: launch_act<PCN_ACT_LEAKY_RELU>(slope, n, a, mu); break;
    case PCN_ACT_HARD_TANH: launch_act<PCN_ACT_HARD_TANH>(slope, n, a, mu); break;
    default: launch_act<PCN_ACT_IDENTITY>(slope, n, a, mu); break;
    }
}

template <int ACT>
static void launch_disc_error(float slope, size_t n, const float *x, const float *a, float *e,
                              float *d) {
    double *partial = pcn_gpu_next_partial();
    disc_error_kernel<ACT><<<pcn_gpu_blocks_for(n, MAX_BLOCKS), THREADS, 0, pcn_gpu_stream()>>>(
        n, slope, x, a, e, d, partial);
    LAUNCHED();
}

static double cuda_disc_error(pcn_activation act, float slope, size_t n, const float *x,
                              const float *a, float *e, float *d) {
    if (n == 0) return 0.0;
    switch (act) {
    case PCN_ACT_RELU: launch_disc_error<PCN_ACT_RELU>(slope, n, x, a, e, d); break;
    case PCN_ACT_TANH: launch_disc_error<PCN_ACT_TANH>(slope, n, x, a, e, d); break;
    case PCN_ACT_SIGMOID: launch_disc_error<PCN_ACT_SIGMOID>(slope, n, x, a, e, d); break;
    case PCN_ACT_GELU: launch_disc_error<PCN_ACT_GELU>(slope, n, x, a, e, d); break;
    case PCN_ACT_LEAKY_RELU: launch_disc_error<PCN_ACT_LEAKY_RELU>(slope, n, x, a, e, d); break;
    case PCN_ACT_HARD_TANH: launch_disc_error<PCN_ACT_HARD_TANH>(slope, n, x, a, e, d); break;
    default: launch_disc_error<PCN_ACT_IDENTITY>(slope, n, x, a, e, d); break;
    }
    return 0.0; // the sum stays on the device (sum_read)
}

static void cuda_latent_step(size_t n, float lr, float beta, const float *e, const float *t,
                             float *m, float *x) {
    if (n == 0) return;
    if (beta != 0.0f)
        latent_kernel<true><<<element_blocks(n), THREADS, 0, pcn_gpu_stream()>>>(n, lr, beta, e,
                                                                                 t, m, x);
    else
        latent_kernel<false><<<element_blocks(n), THREADS, 0, pcn_gpu_stream()>>>(n, lr, beta, e,
                                                                                  t, m, x);
    LAUNCHED();
}

static void cuda_optim_step(const pcn_optim_step *o, size_t n, const float *g, float *m,
                            float *v, float *w) {
    if (n == 0) return;
    const int blocks = element_blocks(n);
    cudaStream_t s = pcn_gpu_stream();
    switch (o->kind) {
    case PCN_OPT_MOMENTUM: optim_kernel<PCN_OPT_MOMENTUM><<<blocks, THREADS, 0, s>>>(*o, n, g, m, v, w); break;
    case PCN_OPT_ADAMW: optim_kernel<PCN_OPT_ADAMW><<<blocks, THREADS, 0, s>>>(*o, n, g, m, v, w); break;
    default: optim_kernel<PCN_OPT_SGD><<<blocks, THREADS, 0, s>>>(*o, n, g, m, v, w); break;
    }
    LAUNCHED();
}

void pcn_gpu_disc_ops(pcn_backend_ops *o) {
    o->fill_rows = cuda_fill_rows;
    o->act_pass = cuda_act_pass;
    o->disc_error = cuda_disc_error;
    o->latent_step = cuda_latent_step;
    o->optim_step = cuda_optim_step;
}
