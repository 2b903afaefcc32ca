/*
 * test_gpu_sums.c — the CUDA backend's per-thread sums of squares (src/gpu/sums.h, the
 * code the error kernels run), checked on the host on every machine: a thread of a pass
 * over 1e9 elements adds about 4,000 squares; its running sum must stay within 1e-12
 * relative of an exact (long double) sum. A float running sum, which the kernels used
 * before, misses by about 2e-6 here: the test measures that too, so it shows it can fail.
 */
#include <math.h>
#include <stdio.h>

#include "gpu/sums.h"
#include "testutil.h"

enum { THREADS = 64, PER_THREAD = 4096 }; // 4096: a pass over 1.07e9 elements on 262,144 threads

// The element a grid-striding thread t meets at its k-th step: values in [0.5, 1.5], not
// exactly representable sums.
static float element(int t, int k) {
    return 1.0f + 0.5f * (float)sin(0.37 * (double)t + 1.618 * (double)k);
}

int main(void) {
    double worst = 0.0, worst_float = 0.0;
    for (int t = 0; t < THREADS; t++) {
        pcn_gpu_acc acc = 0.0;
        float as_float = 0.0f;
        long double exact = 0.0L;
        for (int k = 0; k < PER_THREAD; k++) {
            const float v = element(t, k);
            acc = pcn_gpu_add_sq(acc, v);
            as_float += v * v;
            exact += (long double)v * (long double)v;
        }
        const double rel = fabs((double)((acc - exact) / exact));
        const double rel_float = fabs((double)((as_float - exact) / exact));
        worst = rel > worst ? rel : worst;
        worst_float = rel_float > worst_float ? rel_float : worst_float;
    }
    printf("per-thread sums of %d squares: worst relative error %.3g (a float sum: %.3g)\n",
           PER_THREAD, worst, worst_float);
    TU_CHECK(worst <= 1e-12, "the running sum loses %.3g relative over %d adds", worst,
             PER_THREAD);
    TU_CHECK(worst_float > 1e-7, "a float running sum lost only %.3g: the test would not "
             "catch one", worst_float);
    return tu_failures ? 1 : 0;
}
