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

// tanh as a rational function (a 13/6 minimax fit on [-7.905, 7.905], clamped outside;
// Eigen's and so XLA's float tanh, which PCX's GELU runs through): branch-free, so loops
// over it vectorise. Relative error <= 4e-7 against tanh in double (libm's tanhf: 1.5e-7),
// checked over [-20, 20] in steps of 1e-4.
static inline float act_tanh_rational(float x) {
    const float c = 7.90531110763549805f;
    const float xc = x > c ? c : x < -c ? -c : x, x2 = xc * xc;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return fabsf(x) < 0.0004f ? x : p * xc / q;
}

// tanh and sigmoid through act_tanh_rational (the discriminative mode's loops; generative
// mode keeps libm's, as pcn-torch): sigmoid(a) = 1/2 + 1/2 tanh(a/2).
static inline float act_tanh_rational_both(float a, float *d) {
    float t = act_tanh_rational(a);
    *d = 1.0f - t * t;
    return t;
}
static inline float act_sigmoid_rational_both(float a, float *d) {
    float s = 0.5f + 0.5f * act_tanh_rational(0.5f * a);
    *d = s * (1.0f - s);
    return s;
}

// GELU, tanh form (jax.nn.gelu approximate=True): f = a/2 (1 + tanh(c (a + k a^3))),
// c = sqrt(2/pi), k = 0.044715; f' = 1/2 (1 + t) + a/2 (1 - t^2) c (1 + 3 k a^2); tanh is
// act_tanh_rational.
#define ACT_GELU_C 0.7978845608028654f
#define ACT_GELU_K 0.044715f
static inline float act_gelu_both(float a, float *d) {
    float u = ACT_GELU_C * (a + ACT_GELU_K * a * a * a), t = act_tanh_rational(u);
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
