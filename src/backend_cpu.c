/*
 * backend_cpu.c — CPU backend: OpenBLAS sgemm and OpenMP element-wise passes.
 *
 * The error pass fuses activation, derivative, error, gain and the squared-norm sum into
 * one read of (x, a) and one write of (e, h); with lr != 0 it also applies the latent's own
 * term x -= lr e, so an inference step makes a single element-wise pass per layer.
 * Small passes stay on one thread: below PAR_MIN elements the OpenMP fork costs more.
 */
#include <cblas.h>
#include <math.h>

#include "activation_impl.h"
#include "cpu.h"

#define PAR_MIN 32768

// The element-wise passes in three builds chosen at load time by the CPU (GCC function
// multi-versioning): the library's baseline (x86-64-v2: SSE4.2, 4 floats a vector), AVX2
// (8) and AVX-512 (16). One vectorised pass at x86-64-v2 cost 1 cycle per element.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES                                                                      \
    __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define VECTOR_CLONES
#endif

// ----------------------------------------------------------------------------------------

static void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { // an empty product (a process holding no rows): C = beta C
        pcn_host_scale(m, n, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

// One loop per activation so the compiler vectorises each with its own f and f'; the
// transcendental is evaluated once per element for both. Blocks of BLOCK elements sum
// their squares in float (a loop the compiler vectorises) and add the block's sum to a
// double; the latent's own update is a separate loop variant, not a branch inside.
#define BLOCK 512
#define ERROR_LOOP(BOTH, UPDATE)                                                           \
    _Pragma("omp parallel for reduction(+ : sum) if (n >= PAR_MIN) schedule(static)")     \
    for (size_t b0 = 0; b0 < n; b0 += BLOCK) {                                             \
        const size_t b1 = n - b0 < BLOCK ? n : b0 + BLOCK;                                  \
        float part = 0.0f;                                                                  \
        _Pragma("omp simd reduction(+ : part)")                                            \
        for (size_t i = b0; i < b1; i++) {                                                  \
            float di, fi = BOTH(a[i], &di);                                                 \
            float ei = x[i] - fi;                                                           \
            e[i] = ei;                                                                      \
            h[i] = ei * di;                                                                 \
            part += ei * ei;                                                                \
            if (UPDATE) x[i] -= lr * ei;                                                    \
        }                                                                                   \
        sum += part;                                                                        \
    }

#define ERROR_PASS(BOTH)                                                                   \
    if (lr != 0.0f) {                                                                       \
        ERROR_LOOP(BOTH, 1)                                                                 \
    } else {                                                                                \
        ERROR_LOOP(BOTH, 0)                                                                 \
    }

VECTOR_CLONES
static double cpu_error_pass(pcn_activation act, size_t n, float *x, const float *a, float *e,
                             float *h, float lr) {
    double sum = 0.0;
    switch (act) {
    case PCN_ACT_RELU: ERROR_PASS(act_relu_both) break;
    case PCN_ACT_TANH: ERROR_PASS(act_tanh_both) break;
    case PCN_ACT_SIGMOID: ERROR_PASS(act_sigmoid_both) break;
    default: ERROR_PASS(act_identity_both) break;
    }
    return sum;
}

// The error pass over a block of rows x cols, rows ld floats apart, on the calling thread
// (x read only; h's rows ldh apart); e stored unless NULL, and with s non-NULL s += h; per
// row, blocks of BLOCK as above.
#define ERROR_ROWS(BOTH, STORE, ACC)                                                       \
    for (int r = 0; r < rows; r++) {                                                        \
        const size_t o = (size_t)r * ld;                                                    \
        const float *xr = x + o, *ar = a + o;                                               \
        float *er = STORE ? e + o : NULL, *hr = h + (size_t)r * ldh, *sr = ACC ? s + o : NULL; \
        for (int b0 = 0; b0 < cols; b0 += BLOCK) {                                          \
            const int b1 = cols - b0 < BLOCK ? cols : b0 + BLOCK;                           \
            float part = 0.0f;                                                              \
            _Pragma("omp simd reduction(+ : part)")                                        \
            for (int i = b0; i < b1; i++) {                                                 \
                float di, fi = BOTH(ar[i], &di);                                            \
                float ei = xr[i] - fi, hi = ei * di;                                        \
                if (STORE) er[i] = ei;                                                      \
                hr[i] = hi;                                                                 \
                part += ei * ei;                                                            \
                if (ACC) sr[i] += hi;                                                       \
            }                                                                               \
            sum += part;                                                                    \
        }                                                                                   \
    }

#define ERROR_BLOCK(BOTH)                                                                  \
    if (e && s) {                                                                           \
        ERROR_ROWS(BOTH, 1, 1)                                                              \
    } else if (e) {                                                                         \
        ERROR_ROWS(BOTH, 1, 0)                                                              \
    } else if (s) {                                                                         \
        ERROR_ROWS(BOTH, 0, 1)                                                              \
    } else {                                                                                \
        ERROR_ROWS(BOTH, 0, 0)                                                              \
    }

VECTOR_CLONES
double pcn_cpu_error_block(pcn_activation act, int rows, int cols, int ld, const float *x,
                           const float *a, float *e, float *h, int ldh, float *s) {
    double sum = 0.0;
    switch (act) {
    case PCN_ACT_RELU: ERROR_BLOCK(act_relu_both) break;
    case PCN_ACT_TANH: ERROR_BLOCK(act_tanh_both) break;
    case PCN_ACT_SIGMOID: ERROR_BLOCK(act_sigmoid_both) break;
    default: ERROR_BLOCK(act_identity_both) break;
    }
    return sum;
}

VECTOR_CLONES
double pcn_cpu_sup_error_block(int rows, int cols, int ld, const float *yhat, const float *y,
                               float *esup, int lde, float *s) {
    double sum = 0.0;
    for (int r = 0; r < rows; r++) {
        const float *yh = yhat + (size_t)r * ld, *yr = y + (size_t)r * ld;
        float *er = esup + (size_t)r * lde;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < cols; i++) {
            float d = yh[i] - yr[i];
            er[i] = d;
            sum += (double)d * (double)d;
        }
        if (s)
            for (int i = 0; i < cols; i++) s[(size_t)r * ld + i] += er[i];
    }
    return sum;
}

VECTOR_CLONES
static double cpu_sup_error(size_t n, const float *yhat, const float *y, float *esup) {
    double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = yhat[i] - y[i];
        esup[i] = d;
        sum += (double)d * (double)d;
    }
    return sum;
}

VECTOR_CLONES
static void cpu_axpy(size_t n, float alpha, const float *x, float *y) {
#pragma omp parallel for simd if (n >= PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// The arithmetic above; the phases split over the OpenMP threads (cpu_phases.c).
const pcn_backend_ops pcn_backend_cpu = {
    .name = "cpu", .gemm = cpu_gemm, .error_pass = cpu_error_pass, .sup_error = cpu_sup_error,
    .axpy = cpu_axpy, .phase_init = pcn_cpu_phase_init, .phase_free = pcn_cpu_phase_free,
    .infer_phase = pcn_cpu_infer_phase, .gram_phase = pcn_cpu_gram_phase, .splits_units = true,
    .disc_phase = pcn_disc_phase_cpu,
    PCN_HOST_BACKEND_COMMON,
};
