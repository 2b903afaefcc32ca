/*
 * backend.h — the arithmetic interface of the engine (private to libpcn).
 *
 * Every floating-point pass of the inference and learning steps goes through these
 * operations, so that a CUDA backend can implement the same set on device pointers. All
 * matrices are row-major. Passes that return a sum accumulate it in double.
 *
 * The CPU backend (backend_cpu.c) uses OpenBLAS for matrix products and OpenMP for the
 * element-wise passes; backend_ref.c is the plain loop reference the tests compare it with.
 */
#ifndef PCN_BACKEND_H
#define PCN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "pcn.h"

typedef struct pcn_backend_ops {
    const char *name;
    // C = alpha op(A) op(B) + beta C; op(A) is (m, k), op(B) is (k, n), C is (m, n).
    void (*gemm)(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
    // The fused error pass of one layer over n elements:
    //   e = x - f(a); h = e f'(a); then, if lr != 0, x -= lr e (the latent's own term).
    // Returns sum e^2.
    double (*error_pass)(pcn_activation act, size_t n, float *x, const float *a, float *e,
                         float *h, float lr);
    // Supervised error: esup = yhat - y over n elements. Returns sum esup^2.
    double (*sup_error)(size_t n, const float *yhat, const float *y, float *esup);
    // y += alpha x over n elements (latent top term, weight update).
    void (*axpy)(size_t n, float alpha, const float *x, float *y);
} pcn_backend_ops;

extern const pcn_backend_ops pcn_backend_cpu;
extern const pcn_backend_ops pcn_backend_ref;

#endif // PCN_BACKEND_H
