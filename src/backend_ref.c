/*
 * backend_ref.c — the plain reference backend: textbook loops, no BLAS, no threads.
 * Tests run the engine on it and on the CPU backend and compare (STYLE rule 10).
 */
#include "activation_impl.h"
#include "phase.h"

// ----------------------------------------------------------------------------------------

static void ref_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += (double)av * (double)bv;
            }
            float *cij = &c[(size_t)i * ldc + j];
            *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *cij));
        }
    }
}

static float ref_f(pcn_activation act, float a) {
    switch (act) {
    case PCN_ACT_RELU: return act_relu(a);
    case PCN_ACT_TANH: return act_tanh(a);
    case PCN_ACT_SIGMOID: return act_sigmoid(a);
    default: return act_identity(a);
    }
}

static float ref_df(pcn_activation act, float a) {
    switch (act) {
    case PCN_ACT_RELU: return act_relu_d(a);
    case PCN_ACT_TANH: return act_tanh_d(a);
    case PCN_ACT_SIGMOID: return act_sigmoid_d(a);
    default: return act_identity_d(a);
    }
}

static double ref_error_pass(pcn_activation act, size_t n, float *x, const float *a, float *e,
                             float *h, float lr) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        e[i] = x[i] - ref_f(act, a[i]);
        h[i] = e[i] * ref_df(act, a[i]);
        sum += (double)e[i] * e[i];
    }
    if (lr != 0.0f)
        for (size_t i = 0; i < n; i++) x[i] -= lr * e[i];
    return sum;
}

static double ref_sup_error(size_t n, const float *yhat, const float *y, float *esup) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        esup[i] = yhat[i] - y[i];
        sum += (double)esup[i] * esup[i];
    }
    return sum;
}

static void ref_axpy(size_t n, float alpha, const float *x, float *y) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// Plain loops, step-by-step phases.
const pcn_backend_ops pcn_backend_ref = {
    .name = "reference", .gemm = ref_gemm, .error_pass = ref_error_pass,
    .sup_error = ref_sup_error, .axpy = ref_axpy, PCN_PLAIN_PHASES, PCN_HOST_BACKEND_COMMON,
};
