/*
 * backend.h — the arithmetic interface of the engine (private to libpcn).
 *
 * Every floating-point pass of the inference and learning steps goes through these
 * operations, and every buffer they touch is allocated by the backend, so the CUDA backend
 * (src/gpu) implements the same set on device pointers. All matrices are row-major.
 *
 * Sums of squares: a host backend returns each pass's sum (accumulated in double). A device
 * backend returns 0 and, between sum_begin and sum_finish, leaves the passes' sums on the
 * device; sum_read then copies their total back (the one point that waits for the device).
 * Passes outside sum_begin/sum_finish compute no sum on a device backend.
 *
 * The CPU backend (backend_cpu.c) uses OpenBLAS for matrix products and OpenMP for the
 * element-wise passes; backend_ref.c is the plain loop reference the tests compare it with;
 * backend_host.c holds what the two host backends share (memory, Philox latents, no-op
 * sums and graphs).
 */
#ifndef PCN_BACKEND_H
#define PCN_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcn.h"

typedef struct pcn_backend_ops {
    const char *name;
    // C = alpha op(A) op(B) + beta C; op(A) is (m, k), op(B) is (k, n), C is (m, n).
    void (*gemm)(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
    // Products against an operand packed once for many calls, on the calling thread alone,
    // for phases whose threads split the rows (train.c); NULL where a backend has none (the
    // trainer then lets every gemm thread itself). pack stores B (k, n), or with trans
    // B = W^T of W (n, k), into packed_size(k, n) floats; gemm_packed computes
    // C = alpha A B + beta C with A (m, k) and C (m, n) row-major and B packed.
    size_t (*packed_size)(int k, int n);
    void (*pack)(bool trans, int k, int n, const float *b, int ldb, float *bp);
    void (*gemm_packed)(int m, int n, int k, float alpha, const float *a, int lda,
                        const float *bp, float beta, float *c, int ldc);
    // The learning phase split by output units (learn_gram.c), on the calling thread alone;
    // NULL where a backend has none: C = alpha A B + beta C with B (k, n) row-major read in
    // place; and the error passes below over a block of rows x cols whose rows are ld floats
    // apart, except h's (esup's), ldh (lde) apart: x read only (lr = 0), e stored unless
    // NULL, and with s non-NULL (leading dimension ld) s += h (s += esup).
    void (*gemm_inplace)(int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
    double (*error_block)(pcn_activation act, int rows, int cols, int ld, const float *x,
                          const float *a, float *e, float *h, int ldh, float *s);
    double (*sup_error_block)(int rows, int cols, int ld, const float *yhat, const float *y,
                              float *esup, int lde, float *s);
    // The fused error pass of one layer over n elements:
    //   e = x - f(a); h = e f'(a); then, if lr != 0, x -= lr e (the latent's own term).
    // Returns sum e^2.
    double (*error_pass)(pcn_activation act, size_t n, float *x, const float *a, float *e,
                         float *h, float lr);
    // Supervised error: esup = yhat - y over n elements. Returns sum esup^2.
    double (*sup_error)(size_t n, const float *yhat, const float *y, float *esup);
    // y += alpha x over n elements (latent top term, weight update).
    void (*axpy)(size_t n, float alpha, const float *x, float *y);
    // p[0..n) = 0.
    void (*zero)(size_t n, float *p);
    // Latents: row r of x (rows, dim) gets the N(0,1) draws of pcn_rng_normal(seed,
    // first_row + r, c1, c2), the same values on every backend (up to libm rounding).
    void (*normal_rows)(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2, int rows,
                        int dim, float *x);

    // ---- memory: every engine buffer comes from here -----------------------------------
    bool on_device;                                  // buffers are not host-addressable
    void *(*alloc)(size_t bytes);                    // zeroed; NULL on failure or 0 bytes
    void (*release)(void *p);                        // accepts NULL
    void (*upload)(void *dst, const void *src, size_t bytes);   // host -> backend
    void (*download)(void *dst, const void *src, size_t bytes); // backend -> host (waits)
    void (*sync)(void);                              // waits for all queued work

    // ---- sums, precision, graphs (see the top of this file) ------------------------------
    void (*sum_begin)(void);
    void (*sum_finish)(void);
    double (*sum_read)(void);
    // Arithmetic of the following matrix products (fp32 unless set).
    void (*set_precision)(pcn_precision p);
    // Runs body(ctx): a device backend records it once per key as a graph and replays it;
    // body's host side then runs only on the first call for a key.
    void (*replay)(const void *key, size_t key_bytes, void (*body)(void *ctx), void *ctx);
} pcn_backend_ops;

extern const pcn_backend_ops pcn_backend_cpu;
extern const pcn_backend_ops pcn_backend_ref;

// The CPU backend's packed products (gemm_packed.c): an AVX-512 kernel, or a plain loop
// where the CPU lacks AVX-512F (pcn_gemm_packed_vectorised says which; the tests also run
// the loop, pcn_gemm_packed_generic, directly).
size_t pcn_packed_size(int k, int n);
void pcn_pack(bool trans, int k, int n, const float *b, int ldb, float *bp);
void pcn_gemm_packed(int m, int n, int k, float alpha, const float *a, int lda, const float *bp,
                     float beta, float *c, int ldc);
void pcn_gemm_packed_generic(int m, int n, int k, float alpha, const float *a, int lda,
                             const float *bp, float beta, float *c, int ldc);
bool pcn_gemm_packed_vectorised(void);
// The same kernel (and loop) with B (k, n) row-major read in place, leading dimension ldb.
void pcn_gemm_inplace(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                      int ldb, float beta, float *c, int ldc);
void pcn_gemm_inplace_generic(int m, int n, int k, float alpha, const float *a, int lda,
                              const float *b, int ldb, float beta, float *c, int ldc);

// Shared by the host backends (backend_host.c).
void *pcn_host_alloc(size_t bytes);
void pcn_host_release(void *p);
void pcn_host_copy(void *dst, const void *src, size_t bytes);
void pcn_host_zero(size_t n, float *p);
// C = beta C over (m, n) with leading dimension ldc (an empty product, k = 0); beta 0
// writes zeros without reading C.
void pcn_host_scale(int m, int n, float beta, float *c, int ldc);
void pcn_host_normal_rows(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2, int rows,
                          int dim, float *x);
void pcn_host_sum_mark(void);
void pcn_host_sync(void);
double pcn_host_sum_read(void);
void pcn_host_set_precision(pcn_precision p);
void pcn_host_replay(const void *key, size_t key_bytes, void (*body)(void *ctx), void *ctx);
#define PCN_HOST_BACKEND_COMMON                                                             \
    .zero = pcn_host_zero, .normal_rows = pcn_host_normal_rows, .on_device = false,           \
    .alloc = pcn_host_alloc, .release = pcn_host_release, .upload = pcn_host_copy,             \
    .download = pcn_host_copy, .sync = pcn_host_sync, .sum_begin = pcn_host_sum_mark,         \
    .sum_finish = pcn_host_sum_mark,                                                          \
    .sum_read = pcn_host_sum_read, .set_precision = pcn_host_set_precision,                    \
    .replay = pcn_host_replay

#endif // PCN_BACKEND_H
