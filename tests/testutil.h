/*
 * testutil.h — small helpers for the C tests: failure counting, tolerance comparison that
 * prints the first mismatches (|a - b| <= atol + rtol |ref|), and the golden fixture reader.
 */
#ifndef PCN_TESTUTIL_H
#define PCN_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pcn.h"

extern int tu_failures;

#define TU_CHECK(cond, ...)                                                                 \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            tu_failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
        }                                                                                   \
    } while (0)

// Compares n values; prints up to 5 mismatches under label; returns the mismatch count
// (and adds it to tu_failures).
int tu_close_f(const char *label, const float *got, const float *ref, size_t n, double atol,
               double rtol);
int tu_close_d(const char *label, const double *got, const double *ref, size_t n, double atol,
               double rtol);
// Deterministic test randomness (splitmix64) on a caller-held state.
uint64_t tu_rng_next(uint64_t *state);
// A small separable data set: row i has label i % k, its inputs (n, d) are 1 where
// column % k == label plus 0.3 U(0, 1) noise from an LCG on seed, and its regression
// targets (n, k) are 0.5 x[i][c] - 0.2. The same seed gives the same numbers everywhere.
void tu_blobs(int n, int d, int k, uint32_t seed, float *x, int32_t *labels, float *targets);
// Prints "name: N passed, M failed" style summary and returns the exit code.
int tu_finish(const char *name);
// The exit status of a GPU test that found no usable CUDA device: 77 (not run) on a machine
// without an NVIDIA device node, but 1 (failed, with pcn_cuda_unavailable_reason printed)
// where /dev/nvidiactl or /dev/nvidia0 exists, so that a GPU machine whose CUDA is broken
// cannot come back green having run nothing. PCN_TEST_NVIDIA_NODE (tests only) names the
// node to look for instead.
int tu_gpu_absent(const char *name);

// ---- golden fixture: lines "name count v0 v1 ..." -----------------------------------------
typedef struct tu_fixture tu_fixture;
tu_fixture *tu_fixture_load(const char *path);
void tu_fixture_free(tu_fixture *f);
// The array called name (count in *n), or NULL (and a failure) when missing.
const double *tu_fixture_get(tu_fixture *f, const char *name, size_t *n);
double tu_fixture_scalar(tu_fixture *f, const char *name);

#endif
