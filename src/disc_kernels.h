/*
 * disc_kernels.h — the discriminative mode's element-wise passes as inline loops (private):
 * one loop per activation so that the compiler vectorises each with its own f and f'
 * (tanh, sigmoid and GELU's tanh through the branch-free act_tanh_rational, within 4e-7
 * of tanh; libm's tanhf and expf do not vectorise). Used by the host backends'
 * operations (backend_disc.c) and the CPU's split phase (disc_cpu.c) on its row blocks.
 * Each pass is built three times, for SSE4.2 (the library's baseline), AVX2 and AVX-512,
 * and the CPU picks one at load time (GCC function multi-versioning, as backend_cpu.c).
 */
#ifndef PCN_DISC_KERNELS_H
#define PCN_DISC_KERNELS_H

#include <stddef.h>

#include "activation_impl.h"
#include "pcn.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DISC_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define DISC_CLONES
#endif

// Expands LOOP(f_and_fd) once per activation; f_and_fd(v, &fd) returns f(v), sets f'(v).
#define DISC_SWITCH(act, slope, LOOP)                                                       \
    switch (act) {                                                                          \
    case PCN_ACT_RELU: LOOP(act_relu_both) break;                                           \
    case PCN_ACT_TANH: LOOP(act_tanh_rational_both) break;                                  \
    case PCN_ACT_SIGMOID: LOOP(act_sigmoid_rational_both) break;                            \
    case PCN_ACT_GELU: LOOP(act_gelu_both) break;                                           \
    case PCN_ACT_LEAKY_RELU: LOOP(LEAKY) break;                                             \
    case PCN_ACT_HARD_TANH: LOOP(act_hard_tanh_both) break;                                 \
    default: LOOP(act_identity_both) break;                                                 \
    }
#define LEAKY(v, fd) act_leaky_both(v, slope, fd)

// mu = f(a) over n elements.
DISC_CLONES static inline void pcn_disc_act_block(pcn_activation act, float slope, size_t n,
                                                  const float *a, float *mu) {
#define ACT_LOOP(BOTH)                                                                      \
    _Pragma("omp simd") for (size_t i = 0; i < n; i++) {                                    \
        float fd;                                                                           \
        mu[i] = BOTH(a[i], &fd);                                                            \
    }
    DISC_SWITCH(act, slope, ACT_LOOP)
#undef ACT_LOOP
}

// e = x - f(a); d = e f'(a) over n elements. The sum of e^2 in float over blocks of
// DISC_BLOCK elements (a loop the compiler vectorises), the blocks' sums added in double;
// returned.
#define DISC_BLOCK 512
DISC_CLONES static inline double pcn_disc_error_block(pcn_activation act, float slope,
                                                      size_t n, const float *x, const float *a,
                                                      float *e, float *d) {
    double sum = 0.0;
    for (size_t b0 = 0; b0 < n; b0 += DISC_BLOCK) {
        const size_t b1 = n - b0 < DISC_BLOCK ? n : b0 + DISC_BLOCK;
        float part = 0.0f;
#define ERR_LOOP(BOTH)                                                                      \
    _Pragma("omp simd reduction(+ : part)") for (size_t i = b0; i < b1; i++) {              \
        float fd, f = BOTH(a[i], &fd), ei = x[i] - f;                                       \
        e[i] = ei;                                                                          \
        d[i] = ei * fd;                                                                     \
        part += ei * ei;                                                                    \
    }
        DISC_SWITCH(act, slope, ERR_LOOP)
#undef ERR_LOOP
        sum += part;
    }
    return sum;
}

// g = e + t; beta != 0: m = g + beta m, x -= lr m; else x -= lr g.
DISC_CLONES static inline void pcn_disc_latent_block(size_t n, float lr, float beta,
                                                     const float *e, const float *t, float *m,
                                                     float *x) {
    if (beta != 0.0f) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            m[i] = (e[i] + t[i]) + beta * m[i];
            x[i] -= lr * m[i];
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) x[i] -= lr * (e[i] + t[i]);
    }
}

#endif // PCN_DISC_KERNELS_H
