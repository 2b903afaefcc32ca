/*
 * cpu.h — the CPU backend's own kernels and phases (private to libpcn): what
 * backend_cpu.c, gemm_packed.c and cpu_phases.c share, and what the white-box tests of
 * those kernels reach.
 */
#ifndef PCN_CPU_H
#define PCN_CPU_H

#include "phase.h"

// Products against an operand packed once for many calls, on the calling thread alone
// (gemm_packed.c): an AVX-512 kernel, or a plain loop where the CPU lacks AVX-512F
// (pcn_gemm_packed_vectorised says which; the tests also run the loop directly). pack
// stores B (k, n), or with trans B = W^T of W (n, k), into pcn_packed_size(k, n) floats;
// gemm_packed computes C = alpha A B + beta C with A (m, k) and C (m, n) row-major.
size_t pcn_packed_size(int k, int n);
void pcn_pack(bool trans, int k, int n, const float *b, int ldb, float *bp);
// Rows [k0, k1) of every panel of that packed form (threads may pack disjoint ranges).
void pcn_pack_range(bool trans, int k, int n, const float *b, int ldb, float *bp, int k0,
                    int k1);
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

// The error passes over a block of rows x cols whose rows are ld floats apart, except h's
// (esup's), ldh (lde) apart: x read only, e stored unless NULL, and with s non-NULL
// (leading dimension ld) s += h (s += esup). Return the sum of squares (backend_cpu.c).
double pcn_cpu_error_block(pcn_activation act, int rows, int cols, int ld, const float *x,
                           const float *a, float *e, float *h, int ldh, float *s);
double pcn_cpu_sup_error_block(int rows, int cols, int ld, const float *yhat, const float *y,
                               float *esup, int lde, float *s);

// The phases (cpu_phases.c; the backend's phase operations).
void *pcn_cpu_phase_init(const pcn_model *m, const pcn_phase_params *p);
void pcn_cpu_phase_free(void *ws);
pcn_status pcn_cpu_infer_phase(void *ws, pcn_infer_phase *ph);
pcn_status pcn_cpu_gram_phase(void *ws, pcn_gram_phase *ph);
// The most threads a split phase takes: omp_get_max_threads() with an OpenMP OpenBLAS,
// else 1. The teams the last split phases ran on (0: the last learning phase did not
// split). For the tests. Local.
int pcn_cpu_threads_max(void);
// Threads for a learning phase split by output units, at most max: each takes at least one
// unit (16 outputs) of the widest layer. Local.
int pcn_cpu_unit_threads(const pcn_model *m, int max);
// The workspace's packed products, packed from m's current weights (a split workspace), for
// a step on the calling thread (tests; the row split steps with them).
pcn_products pcn_cpu_packed_products(void *ws, const pcn_model *m);
int pcn_cpu_rows_last_team(void);
// Whether the workspace's phases split over threads (pcn_phase_params.split). Local.
bool pcn_cpu_phase_splits(const void *ws);
int pcn_cpu_units_last_team(void);

#endif // PCN_CPU_H
