/*
 * disc_kernels.h — the discriminative mode's element-wise passes as inline loops (private):
 * one loop per activation so that the compiler vectorises each with its own f and f'.
 * Used by the host backends' operations (backend_disc.c) and the CPU's split phase
 * (disc_cpu.c) on its row blocks.
 */
#ifndef PCN_DISC_KERNELS_H
#define PCN_DISC_KERNELS_H

#include <stddef.h>

#include "activation_impl.h"
#include "pcn.h"

#define DISC_LOOP(BOTH)                                                                     \
    for (size_t i = 0; i < n; i++) {                                                        \
        float fd, f = BOTH;                                                                 \
        BODY                                                                                \
    }

// Expands BODY (using f = f(a[i]), fd = f'(a[i]), index i) once per activation.
#define DISC_SWITCH(act, slope)                                                             \
    switch (act) {                                                                          \
    case PCN_ACT_RELU: DISC_LOOP(act_relu_both(a[i], &fd)) break;                           \
    case PCN_ACT_TANH: DISC_LOOP(act_tanh_both(a[i], &fd)) break;                           \
    case PCN_ACT_SIGMOID: DISC_LOOP(act_sigmoid_both(a[i], &fd)) break;                     \
    case PCN_ACT_GELU: DISC_LOOP(act_gelu_both(a[i], &fd)) break;                           \
    case PCN_ACT_LEAKY_RELU: DISC_LOOP(act_leaky_both(a[i], slope, &fd)) break;             \
    case PCN_ACT_HARD_TANH: DISC_LOOP(act_hard_tanh_both(a[i], &fd)) break;                 \
    default: DISC_LOOP(act_identity_both(a[i], &fd)) break;                                 \
    }

// mu = f(a).
static inline void pcn_disc_act_block(pcn_activation act, float slope, size_t n,
                                      const float *a, float *mu) {
#define BODY                                                                                \
    (void)fd;                                                                               \
    mu[i] = f;
    DISC_SWITCH(act, slope)
#undef BODY
}

// e = x - f(a); d = e f'(a); returns sum e^2 (in double).
static inline double pcn_disc_error_block(pcn_activation act, float slope, size_t n,
                                          const float *x, const float *a, float *e, float *d) {
    double sum = 0.0;
#define BODY                                                                                \
    const float ei = x[i] - f;                                                              \
    e[i] = ei;                                                                              \
    d[i] = ei * fd;                                                                         \
    sum += (double)ei * ei;
    DISC_SWITCH(act, slope)
#undef BODY
    return sum;
}

// g = e + t; beta != 0: m = g + beta m, x -= lr m; else x -= lr g.
static inline void pcn_disc_latent_block(size_t n, float lr, float beta, const float *e,
                                         const float *t, float *m, float *x) {
    if (beta != 0.0f) {
        for (size_t i = 0; i < n; i++) {
            m[i] = (e[i] + t[i]) + beta * m[i];
            x[i] -= lr * m[i];
        }
    } else {
        for (size_t i = 0; i < n; i++) x[i] -= lr * (e[i] + t[i]);
    }
}

#endif // PCN_DISC_KERNELS_H
