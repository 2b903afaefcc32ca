/*
 * activation_impl.h — the activations and their hand-coded derivatives as inline
 * functions (private), shared by the public lookup (activation.c) and the backends.
 * Derivatives follow pcn-torch: relu' = 1[a > 0], tanh' = 1 - tanh(a)^2, sigmoid' = s(1-s).
 */
#ifndef PCN_ACTIVATION_IMPL_H
#define PCN_ACTIVATION_IMPL_H

#include <math.h>

static inline float act_relu(float a) { return a > 0.0f ? a : 0.0f; }
static inline float act_relu_d(float a) { return a > 0.0f ? 1.0f : 0.0f; }
static inline float act_tanh(float a) { return tanhf(a); }
static inline float act_tanh_d(float a) {
    float t = tanhf(a);
    return 1.0f - t * t;
}
static inline float act_sigmoid(float a) { return 1.0f / (1.0f + expf(-a)); }
static inline float act_sigmoid_d(float a) {
    float s = act_sigmoid(a);
    return s * (1.0f - s);
}
static inline float act_identity(float a) { return a; }
static inline float act_identity_d(float a) {
    (void)a;
    return 1.0f;
}

// f and f' together from one evaluation of the transcendental (the hot loops' form).
static inline float act_tanh_both(float a, float *d) {
    float t = tanhf(a);
    *d = 1.0f - t * t;
    return t;
}
static inline float act_sigmoid_both(float a, float *d) {
    float s = act_sigmoid(a);
    *d = s * (1.0f - s);
    return s;
}
static inline float act_relu_both(float a, float *d) {
    *d = act_relu_d(a);
    return act_relu(a);
}
static inline float act_identity_both(float a, float *d) {
    *d = 1.0f;
    return a;
}

#endif // PCN_ACTIVATION_IMPL_H
