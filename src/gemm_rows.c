/*
 * gemm_rows.c — the CPU backend's product for row-split inference: C = alpha A B + beta C
 * on the calling thread alone, all row-major, B read where it lies (no packing).
 *
 * Why it exists: OpenBLAS packs both operands on every call. In an inference phase one
 * operand of every product is a weight matrix that all steps reuse (W^T for A = X W^T,
 * transposed once per phase; W itself for X += lr H W), and at the row counts of a shard
 * (tens of rows per thread) packing it costs as much as a third of the product. Measured on
 * the development VM (one thread, A 50 x 256 times B 256 x 768): OpenBLAS 0.3.21 sgemm
 * 120 GFLOP/s, this kernel 197 GFLOP/s, about the machine's large-sgemm peak per core.
 *
 * The micro-kernel holds an MR x NR = 8 x 48 tile of C in 24 AVX-512 registers; per k it
 * loads three vectors of B's row k and broadcasts MR elements of A's column k into 24 fused
 * multiply-adds. Loops: k in blocks of KC (a 48-column panel of B, KC x 192 bytes, stays in
 * L2), then column panels, then row tiles, so every row tile reuses the panel. The last
 * vector of a panel is masked, so any n works without reading or writing past a row. Each
 * C element sums its k products in order within a block, in one float accumulator.
 *
 * Without AVX-512F (checked at run time) the product is cblas_sgemm, which OpenBLAS on
 * OpenMP runs on the calling thread inside a parallel region.
 */
#include <cblas.h>
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

#define MR 8           // rows of a tile
#define NV 3           // 16-float vectors across a tile
#define NR (16 * NV)   // columns of a tile
#define KC 512         // k block

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

// One tile: mr rows, nv vectors (the last masked by `last`), k products.
AVX512 INLINE void tile(int mr, int nv, __mmask16 last, int k, float alpha, const float *a,
                        int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    __m512 acc[MR][NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        const float *bp = b + (size_t)p * ldb;
        __m512 bv[NV];
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, bp + 16 * v)
                                : _mm512_loadu_ps(bp + 16 * v);
        for (int r = 0; r < mr; r++) {
            const __m512 ar = _mm512_set1_ps(a[(size_t)r * lda + p]);
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < mr; r++) {
        float *cr = c + (size_t)r * ldc;
        for (int v = 0; v < nv; v++) {
            const __mmask16 mask = v == nv - 1 ? last : (__mmask16)0xffff;
            __m512 out = _mm512_mul_ps(va, acc[r][v]);
            if (beta != 0.0f) // beta 0 never reads C (it may hold NaN)
                out = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, cr + 16 * v), out);
            _mm512_mask_storeu_ps(cr + 16 * v, mask, out);
        }
    }
}

// The tile with mr and nv as constants, so its accumulators live in registers.
#define TILE_CASE(R, V)                                                                      \
    case (R) * 4 + (V):                                                                      \
        tile(R, V, last, k, alpha, a, lda, b, ldb, beta, c, ldc);                            \
        break;
#define TILE_ROW(R) TILE_CASE(R, 1) TILE_CASE(R, 2) TILE_CASE(R, 3)

AVX512 static void tile_any(int mr, int nv, __mmask16 last, int k, float alpha, const float *a,
                            int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    switch (mr * 4 + nv) {
        TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4)
        TILE_ROW(5) TILE_ROW(6) TILE_ROW(7) TILE_ROW(8)
    }
}

AVX512 static void gemm_avx512(int m, int n, int k, float alpha, const float *a, int lda,
                               const float *b, int ldb, float beta, float *c, int ldc) {
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kb = k - k0 < KC ? k - k0 : KC;
        const float bk = k0 == 0 ? beta : 1.0f; // later blocks add to the first's result
        for (int j0 = 0; j0 < n; j0 += NR) {
            const int w = n - j0 < NR ? n - j0 : NR, nv = (w + 15) / 16;
            const __mmask16 last = (__mmask16)((1u << (w - 16 * (nv - 1))) - 1u);
            for (int i0 = 0; i0 < m; i0 += MR)
                tile_any(m - i0 < MR ? m - i0 : MR, nv, last, kb, alpha,
                         a + (size_t)i0 * lda + k0, lda, b + (size_t)k0 * ldb + j0, ldb, bk,
                         c + (size_t)i0 * ldc + j0, ldc);
        }
    }
}

bool pcn_gemm_rows_vectorised(void) {
    static int have = -1; // benign race: every thread computes the same answer
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return have == 1;
}

void pcn_gemm_rows(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                   int ldb, float beta, float *c, int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { // C = beta C
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return;
    }
    if (pcn_gemm_rows_vectorised())
        gemm_avx512(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
                    beta, c, ldc);
}
