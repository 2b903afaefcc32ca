/*
 * gemm_packed.c — the CPU backend's products against a packed operand, for inference
 * phases: C = alpha A B + beta C on the calling thread alone, A and C row-major, B packed
 * once per phase into column panels; and the same kernel with B read in place, for the
 * learning phase split by output units (gram.c), whose B changes every step.
 *
 * Why: OpenBLAS packs both operands on every call. In an inference phase B is always a
 * weight matrix (W^T for A = X W^T, W for X += lr H W) that every step reuses, and at the
 * row counts of a thread's share of a shard (tens of rows) packing it on every call costs
 * as much as a third of the product. Packing it once per phase leaves the micro-kernel.
 * Measured on the development VM (one thread, A 50 x 256 times B 256 x 768): OpenBLAS
 * 0.3.21 sgemm 120 GFLOP/s, this kernel 197 GFLOP/s, about the large-sgemm peak of a core.
 *
 * Packed layout: B (k, n) as ceil(n / NR) panels of NR = 48 columns, panel j0 holding rows
 * 0..k-1 of columns j0..j0+47 contiguously (48 floats per row, zero past column n). Every
 * step of the kernel then reads B sequentially, whatever B's leading dimension was (a
 * power-of-two row stride would map a strided panel onto a few cache sets).
 *
 * The AVX-512 micro-kernel holds an MR x NR = 8 x 48 tile of C in 24 registers; per k it
 * loads three vectors of the panel and broadcasts MR elements of A's column k into 24 fused
 * multiply-adds (row tiles of nearly equal height, up to MR). Loops: panels, then k in
 * blocks of KC (a 256 x 48 block of a panel, 48 KiB, stays near L1 while every row tile
 * uses it; the panel's columns of C stay in L2 across the blocks), then row tiles. Each C
 * element sums its k products in order within a block in one float accumulator. (KC 256
 * against 512, one thread, best of 3: 226 against 202 GFLOP/s at 50 x 784 x 256, 207
 * against 206 at 250 x 3072 x 1000.) Without AVX-512F (checked at run time) a plain C loop
 * over the same layout runs (pcn_gemm_packed_generic; the tests run both).
 *
 * In place (pcn_gemm_inplace): the panels are B's own columns j0..j0+47, rows ldb apart,
 * the last vector of a panel loaded under a mask (B may end there). Where B is the small
 * block a learning step just wrote (100 x 48 of H, in cache) this is as fast as the packed
 * form (one thread, 100 x 400 x 100 with B's rows 784 floats apart: 46 us in place, 45 us
 * packed, 50 us packing first, 51 us OpenBLAS 0.3.21 sgemm); strides of a power of two
 * bytes at many rows would suffer the set conflicts that packing avoids.
 */
#include <stdbool.h>
#include <stddef.h>

#include "cpu.h"

#define MR 8           // rows of a tile
#define NV 3           // 16-float vectors across a tile
#define NR (16 * NV)   // columns of a panel
#define KC 256         // k block

size_t pcn_packed_size(int k, int n) { return (size_t)(n + NR - 1) / NR * NR * (size_t)k; }

void pcn_pack_range(bool trans, int k, int n, const float *b, int ldb, float *bp, int k0,
                    int k1) {
    for (int j0 = 0; j0 < n; j0 += NR) {
        float *p = bp + (size_t)j0 * k;
        const int w = n - j0 < NR ? n - j0 : NR;
        if (!trans) { // row kk of the panel: B[kk][j0 .. j0 + w), then zeros
            for (int kk = k0; kk < k1; kk++) {
                const float *src = b + (size_t)kk * ldb + j0;
                float *dst = p + (size_t)kk * NR;
                for (int j = 0; j < w; j++) dst[j] = src[j];
                for (int j = w; j < NR; j++) dst[j] = 0.0f;
            }
            continue;
        }
        // B = W^T: row kk of the panel is column kk of W's rows j0 .. j0 + w. Blocks of 16
        // k read 16 contiguous floats of each W row and write a 16 x 48 block that stays in L1.
        for (int kb0 = k0; kb0 < k1; kb0 += 16) {
            const int kb = k1 - kb0 < 16 ? k1 - kb0 : 16;
            for (int j = 0; j < NR; j++) {
                const float *src = b + (size_t)(j0 + j) * ldb + kb0;
                float *dst = p + (size_t)kb0 * NR + j;
                for (int q = 0; q < kb; q++) dst[(size_t)q * NR] = j < w ? src[q] : 0.0f;
            }
        }
    }
}

void pcn_pack(bool trans, int k, int n, const float *b, int ldb, float *bp) {
    const int panels = (n + NR - 1) / NR;
#pragma omp parallel for schedule(static) if ((size_t)k * n >= 65536)
    for (int q = 0; q < panels; q++) { // each panel on its own: the columns q NR ..
        const int j0 = q * NR, w = n - j0 < NR ? n - j0 : NR;
        pcn_pack_range(trans, k, w, trans ? b + (size_t)j0 * ldb : b + j0, ldb,
                       bp + (size_t)j0 * k, 0, k);
    }
}

// The plain loop over either form: B's panel of columns j0.. starts at b + j0 * step and its
// rows are ldp floats apart (as gemm_avx512 below).
static void gemm_loop(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                      size_t step, int ldp, float beta, float *c, int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        pcn_host_scale(m, n, beta, c, ldc);
        return;
    }
    for (int j0 = 0; j0 < n; j0 += NR) {
        const int w = n - j0 < NR ? n - j0 : NR;
        const float *p = b + (size_t)j0 * step;
        for (int i = 0; i < m; i++) {
            float acc[NR] = {0};
            const float *ai = a + (size_t)i * lda;
            for (int kk = 0; kk < k; kk++)
                for (int j = 0; j < w; j++) acc[j] += ai[kk] * p[(size_t)kk * ldp + j];
            float *ci = c + (size_t)i * ldc + j0;
            for (int j = 0; j < w; j++)
                ci[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * ci[j];
        }
    }
}

void pcn_gemm_packed_generic(int m, int n, int k, float alpha, const float *a, int lda,
                             const float *bp, float beta, float *c, int ldc) {
    gemm_loop(m, n, k, alpha, a, lda, bp, (size_t)k, NR, beta, c, ldc);
}

void pcn_gemm_inplace_generic(int m, int n, int k, float alpha, const float *a, int lda,
                              const float *b, int ldb, float beta, float *c, int ldc) {
    gemm_loop(m, n, k, alpha, a, lda, b, 1, ldb, beta, c, ldc);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

// One tile: mr rows of C, nv vectors (the last stored under mask `last`), k products; with
// `masked` the last vector of B is also loaded under the mask (B in place may end there).
// Full panels and packed B load without: one thread, 32 x 48 x 128 in L1, 197 against
// 180 GFLOP/s with every last vector masked (a split learning phase at B = 100: 2 %).
AVX512 INLINE void tile(int mr, int nv, bool masked, __mmask16 last, int k, float alpha,
                        const float *a, int lda, const float *p, int ldp, float beta, float *c,
                        int ldc) {
    __m512 acc[MR][NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk++, p += ldp) {
        __m512 bv[NV];
        for (int v = 0; v < nv; v++)
            bv[v] = masked && v == nv - 1 ? _mm512_maskz_loadu_ps(last, p + 16 * v)
                                          : _mm512_loadu_ps(p + 16 * v);
        for (int r = 0; r < mr; r++) {
            const __m512 ar = _mm512_set1_ps(a[(size_t)r * lda + kk]);
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

// The tile with mr, nv and masked as constants, so its accumulators live in registers.
#define TILE_CASE(R, V, M)                                                                   \
    case ((R) * 4 + (V)) * 2 + (M):                                                          \
        tile(R, V, M, last, k, alpha, a, lda, p, ldp, beta, c, ldc);                         \
        break;
#define TILE_ROW(R, M) TILE_CASE(R, 1, M) TILE_CASE(R, 2, M) TILE_CASE(R, 3, M)

AVX512 static void tile_any(int mr, int nv, bool masked, __mmask16 last, int k, float alpha,
                            const float *a, int lda, const float *p, int ldp, float beta,
                            float *c, int ldc) {
    switch ((mr * 4 + nv) * 2 + masked) {
        TILE_ROW(1, 0) TILE_ROW(2, 0) TILE_ROW(3, 0) TILE_ROW(4, 0)
        TILE_ROW(5, 0) TILE_ROW(6, 0) TILE_ROW(7, 0) TILE_ROW(8, 0)
        TILE_ROW(1, 1) TILE_ROW(2, 1) TILE_ROW(3, 1) TILE_ROW(4, 1)
        TILE_ROW(5, 1) TILE_ROW(6, 1) TILE_ROW(7, 1) TILE_ROW(8, 1)
    }
}

// B's panel of columns j0.. starts at b + j0 * step (packed: step k; in place: 1) and its
// rows are ldp floats apart (packed: NR, zero past column n; in place: B's leading
// dimension, and B's last vector of a partial panel loads under the mask).
AVX512 static void gemm_avx512(int m, int n, int k, float alpha, const float *a, int lda,
                               const float *b, size_t step, int ldp, float beta, float *c,
                               int ldc) {
    // Rows in ceil(m / MR) tiles of nearly equal height (50 rows: 7 x 7 + 1 x 8, not
    // 6 x 8 + 1 x 2, whose 6 accumulators would leave the FMA units waiting on latency).
    const int tiles = (m + MR - 1) / MR;
    for (int j0 = 0; j0 < n; j0 += NR) {
        const int w = n - j0 < NR ? n - j0 : NR, nv = (w + 15) / 16;
        const __mmask16 last = (__mmask16)((1u << (w - 16 * (nv - 1))) - 1u);
        const bool masked = step == 1 && last != (__mmask16)0xffff;
        for (int k0 = 0; k0 < k; k0 += KC) {
            const int kb = k - k0 < KC ? k - k0 : KC;
            const float bk = k0 == 0 ? beta : 1.0f; // later blocks add to the first's result
            const float *p = b + (size_t)j0 * step + (size_t)k0 * ldp;
            for (int t = 0; t < tiles; t++) {
                const int i0 = (int)((int64_t)m * t / tiles);
                const int i1 = (int)((int64_t)m * (t + 1) / tiles);
                tile_any(i1 - i0, nv, masked, last, kb, alpha, a + (size_t)i0 * lda + k0, lda,
                         p, ldp, bk, c + (size_t)i0 * ldc + j0, ldc);
            }
        }
    }
}

#define HAVE_KERNEL 1
bool pcn_gemm_packed_vectorised(void) { return __builtin_cpu_supports("avx512f"); }
#else // other architectures: the plain loops
#define HAVE_KERNEL 0
bool pcn_gemm_packed_vectorised(void) { return false; }
#endif

// The kernel where the CPU has AVX-512F, else the loop; empty products as the BLAS does.
static void gemm_any(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                     size_t step, int ldp, float beta, float *c, int ldc) {
#if HAVE_KERNEL
    if (m > 0 && n > 0 && k > 0 && pcn_gemm_packed_vectorised()) {
        gemm_avx512(m, n, k, alpha, a, lda, b, step, ldp, beta, c, ldc);
        return;
    }
#endif
    gemm_loop(m, n, k, alpha, a, lda, b, step, ldp, beta, c, ldc);
}

void pcn_gemm_packed(int m, int n, int k, float alpha, const float *a, int lda, const float *bp,
                     float beta, float *c, int ldc) {
    gemm_any(m, n, k, alpha, a, lda, bp, (size_t)k, NR, beta, c, ldc);
}

void pcn_gemm_inplace(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                      int ldb, float beta, float *c, int ldc) {
    gemm_any(m, n, k, alpha, a, lda, b, 1, ldb, beta, c, ldc);
}
