/*
 * backend_host.c — what the two host backends (cpu, reference) share: aligned host memory,
 * plain copies, Philox latents drawn row by row, and the no-op forms of the device-only
 * operations (their sums come back from each pass; a "graph" is a direct call; an event is
 * already passed), and the bounded queue of steps every backend's loops share.
 */
#include <string.h>

#include "core.h"

void *pcn_host_alloc(size_t bytes) { return pcn_alloc(bytes); }
void pcn_host_release(void *p) { pcn_free(p); }

void pcn_host_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memcpy(dst, src, bytes);
}

void pcn_host_scale(int m, int n, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
}

void pcn_host_zero(size_t n, float *p) {
    if (n) memset(p, 0, n * sizeof(float));
}

void pcn_host_normal_rows(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2, int rows,
                          int dim, float *x) {
#pragma omp parallel for schedule(static) if ((size_t)rows * dim >= 8192)
    for (int r = 0; r < rows; r++)
        pcn_rng_normal(seed, first_row + (uint32_t)r, c1, c2, x + (size_t)r * dim, (size_t)dim);
}

void pcn_host_sum_mark(void) {}
void pcn_host_sync(void) {}
double pcn_host_sum_read(void) { return 0.0; }
void pcn_host_set_precision(pcn_precision p) { (void)p; }

void pcn_host_replay(const void *key, size_t key_bytes, void (*body)(void *ctx), void *ctx) {
    (void)key, (void)key_bytes;
    body(ctx);
}

void pcn_host_mark(int slot) { (void)slot; }
pcn_status pcn_host_wait_mark(int slot) {
    (void)slot;
    return PCN_OK;
}
void pcn_host_timer_mark(void) {}
double pcn_host_timer_read(void) { return 0.0; }

// ---- the bounded queue of steps (backend.h) ---------------------------------------------

static int in_flight = PCN_STEPS_IN_FLIGHT; // K; 0: unbounded

void pcn_backend_set_steps_in_flight(int k) {
    in_flight = k <= 0 ? 0 : k > PCN_MARK_SLOTS ? PCN_MARK_SLOTS : k;
}

pcn_status pcn_backend_step_wait(const pcn_backend_ops *o, int step) {
    if (in_flight == 0 || step < in_flight) return PCN_OK;
    return o->wait_mark((step - in_flight) % PCN_MARK_SLOTS);
}

void pcn_backend_step_mark(const pcn_backend_ops *o, int step) {
    o->mark(step % PCN_MARK_SLOTS);
}

const char *pcn_backend_missing(const pcn_backend_ops *o) {
#define OP(f)                                                                               \
    if (!o->f) return #f;
    OP(name) OP(gemm) OP(error_pass) OP(sup_error) OP(axpy) OP(zero) OP(normal_rows)
    OP(phase_init) OP(phase_free) OP(infer_phase) OP(gram_phase) OP(disc_phase) OP(alloc) OP(release)
    OP(upload) OP(download) OP(host_alloc) OP(host_free) OP(sync) OP(sum_begin) OP(sum_finish) OP(sum_read)
    OP(set_precision) OP(replay) OP(fill_rows) OP(act_pass) OP(disc_error) OP(latent_step)
    OP(optim_step) OP(mark) OP(wait_mark) OP(timer_begin) OP(timer_end) OP(timer_read)
#undef OP
    return NULL;
}
