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

// GELU, tanh form (jax.nn.gelu approximate=True): f = a/2 (1 + tanh(c (a + k a^3))),
// c = sqrt(2/pi), k = 0.044715; f' = 1/2 (1 + t) + a/2 (1 - t^2) c (1 + 3 k a^2).
#define ACT_GELU_C 0.7978845608028654f
#define ACT_GELU_K 0.044715f
static inline float act_gelu_both(float a, float *d) {
    float u = ACT_GELU_C * (a + ACT_GELU_K * a * a * a), t = tanhf(u);
    *d = 0.5f * (1.0f + t) + 0.5f * a * (1.0f - t * t) * ACT_GELU_C *
                                 (1.0f + 3.0f * ACT_GELU_K * a * a);
    return 0.5f * a * (1.0f + t);
}
static inline float act_gelu(float a) {
    float d;
    return act_gelu_both(a, &d);
}
static inline float act_gelu_d(float a) {
    float d;
    act_gelu_both(a, &d);
    return d;
}
static inline float act_hard_tanh(float a) { return a > 1.0f ? 1.0f : a < -1.0f ? -1.0f : a; }
static inline float act_hard_tanh_d(float a) { return a > -1.0f && a < 1.0f ? 1.0f : 0.0f; }
static inline float act_hard_tanh_both(float a, float *d) {
    *d = act_hard_tanh_d(a);
    return act_hard_tanh(a);
}
static inline float act_leaky_both(float a, float slope, float *d) {
    *d = a > 0.0f ? 1.0f : slope;
    return a > 0.0f ? a : slope * a;
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
