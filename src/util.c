/*
 * util.c — error messages, status names, version, aligned allocation and the Philox
 * counter-based generator behind every random draw of the library.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <Random123/philox.h>

#include "core.h"

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

static _Thread_local char last_error[1024];

pcn_status pcn_set_errorv(pcn_status status, const char *fmt, va_list ap) {
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return status;
}

pcn_status pcn_set_error(pcn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pcn_set_errorv(status, fmt, ap);
    va_end(ap);
    return status;
}

const char *pcn_last_error(void) { return last_error; }

_Noreturn void pcn_assert_fail(const char *what, const char *file, int line, const char *func) {
    fprintf(stderr, "%s:%d: %s: internal error: %s does not hold (a bug in libpcn; please "
            "report it)\n", file, line, func, what);
    fflush(stderr);
    abort();
}

const char *pcn_status_name(pcn_status s) {
    switch (s) {
    case PCN_OK: return "ok";
    case PCN_EINVAL: return "invalid argument";
    case PCN_ENOMEM: return "out of memory";
    case PCN_EDATA: return "bad data";
    case PCN_EIO: return "I/O error";
    case PCN_ESTATE: return "bad state";
    case PCN_EDIVERGED: return "diverged";
    case PCN_STOPPED: return "stopped";
    }
    return "unknown status";
}

const char *pcn_version(void) { return PCN_VERSION_STRING; }

double pcn_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// ----------------------------------------------------------------------------------------
// Memory
// ----------------------------------------------------------------------------------------

void *pcn_alloc(size_t bytes) {
    if (bytes == 0) return NULL;
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void pcn_free(void *p) { free(p); }

// ----------------------------------------------------------------------------------------
// Philox
// ----------------------------------------------------------------------------------------

static philox4x32_ctr_t draw(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2,
                             uint32_t block) {
    philox4x32_ctr_t ctr = {{block, c0, c1, c2}};
    philox4x32_key_t key = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    return philox4x32(ctr, key);
}

// (0, 1): never 0, so the logarithm of Box-Muller stays finite.
static double open01(uint32_t v) { return ((double)v + 0.5) * (1.0 / 4294967296.0); }

void pcn_rng_normal(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, float *out, size_t n) {
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t j0 = 0; j0 < n; j0 += 4) {
        philox4x32_ctr_t r = draw(seed, c0, c1, c2, (uint32_t)(j0 / 4));
        double z[4];
        for (int p = 0; p < 2; p++) {
            double rad = sqrt(-2.0 * log(open01(r.v[2 * p])));
            double th = two_pi * open01(r.v[2 * p + 1]);
            z[2 * p] = rad * cos(th);
            z[2 * p + 1] = rad * sin(th);
        }
        for (size_t q = 0; q < 4 && j0 + q < n; q++) out[j0 + q] = (float)z[q];
    }
}

void pcn_rng_uniform(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, float lo, float hi,
                     float *out, size_t n) {
    for (size_t j0 = 0; j0 < n; j0 += 4) {
        philox4x32_ctr_t r = draw(seed, c0, c1, c2, (uint32_t)(j0 / 4));
        for (size_t q = 0; q < 4 && j0 + q < n; q++) {
            double u = r.v[q] * (1.0 / 4294967296.0); // [0, 1)
            out[j0 + q] = (float)(lo + (hi - lo) * u);
        }
    }
}

uint64_t pcn_rng_u64(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint64_t j) {
    philox4x32_ctr_t r = draw(seed, c0, c1, c2, (uint32_t)j);
    return ((uint64_t)r.v[0] << 32) | r.v[1];
}
