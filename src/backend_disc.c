/*
 * backend_disc.c — the host backends' kernels of the discriminative mode and of the weight
 * optimizers (backend.h): broadcast rows, activation, the fused error pass, the latent step
 * and the optimizer step, each one pass over its elements. The CPU backend's split
 * inference (disc_cpu.c) runs the same per-element formulas on its threads' row blocks
 * (disc_kernels.h); the CUDA backend has them as kernels (src/gpu).
 */
#include <math.h>
#include <string.h>

#include "core.h"
#include "disc_kernels.h"

void pcn_host_fill_rows(int rows, int cols, const float *b, float *a) {
    for (int r = 0; r < rows; r++) {
        float *ar = a + (size_t)r * cols;
        if (b) memcpy(ar, b, (size_t)cols * sizeof(float));
        else memset(ar, 0, (size_t)cols * sizeof(float));
    }
}

void pcn_host_act_pass(pcn_activation act, float slope, size_t n, const float *a, float *mu) {
    pcn_disc_act_block(act, slope, n, a, mu);
}

double pcn_host_disc_error(pcn_activation act, float slope, size_t n, const float *x,
                           const float *a, float *e, float *d) {
    return pcn_disc_error_block(act, slope, n, x, a, e, d);
}

void pcn_host_latent_step(size_t n, float lr, float beta, const float *e, const float *t,
                          float *m, float *x) {
    pcn_disc_latent_block(n, lr, beta, e, t, m, x);
}

// Threads share a step from this many weights on (below, one thread is faster).
#define OPTIM_PAR_MIN 65536

DISC_CLONES void pcn_host_optim_step(const pcn_optim_step *o, size_t n, const float *g, float *m,
                                     float *v, float *w) {
    const long long N = (long long)n;
    switch (o->kind) {
    case PCN_OPT_MOMENTUM:
#pragma omp parallel for simd if (N >= OPTIM_PAR_MIN) schedule(static)
        for (long long i = 0; i < N; i++) {
            m[i] = o->scale * g[i] + o->momentum * m[i];
            w[i] -= o->lr * (m[i] + o->wd * w[i]);
        }
        break;
    case PCN_OPT_ADAMW:
#pragma omp parallel for simd if (N >= OPTIM_PAR_MIN) schedule(static)
        for (long long i = 0; i < N; i++) {
            const float gi = o->scale * g[i];
            m[i] = o->b1 * m[i] + o->c1 * gi;
            v[i] = o->b2 * v[i] + o->c2 * gi * gi;
            const float mh = m[i] / o->bc1, vh = v[i] / o->bc2;
            w[i] -= o->lr * (mh / (sqrtf(vh) + o->eps) + o->wd * w[i]);
        }
        break;
    default:
#pragma omp parallel for simd if (N >= OPTIM_PAR_MIN) schedule(static)
        for (long long i = 0; i < N; i++) w[i] -= o->lr * (o->scale * g[i] + o->wd * w[i]);
        break;
    }
}
