/*
 * pcn_impl.h — library-private definitions shared by the files of libpcn: the model and
 * state structs, error reporting, aligned allocation and the Philox helpers.
 *
 * Invariants: a model's weights W[0..L-1], Wout live in one buffer w (offsets woff[l]);
 * its gradient buffer g has the same layout. A state holds each tensor family (latents,
 * preactivations, errors, gains) in one allocation with rows of the maximal batch; the
 * first `batch` rows are in use.
 */
#ifndef PCN_IMPL_H
#define PCN_IMPL_H

#include <stdarg.h>

#include "backend.h"
#include "pcn.h"

struct pcn_model {
    int L;                        // layers
    int dims[PCN_MAX_LAYERS + 1]; // d0..dL
    int K;                        // outputs
    pcn_task mode;
    pcn_activation act[PCN_MAX_LAYERS];
    size_t woff[PCN_MAX_LAYERS + 2]; // offset of W[l]; woff[L] readout; woff[L+1] total
    float *w;                     // all weights, in the backend's memory
    float *g;                     // gradient, same layout, in the backend's memory
    float *hw;                    // host copy of w (== w on a host backend)
    pcn_device device;
    const pcn_backend_ops *ops;   // arithmetic backend
};

// Layer l's weights are (out, in): W[l] is (d_l, d_{l+1}); l = L is the readout Wout (K, dL).
static inline int pcn_layer_out(const pcn_model *m, int l) {
    return l < m->L ? m->dims[l] : m->K;
}
static inline int pcn_layer_in(const pcn_model *m, int l) {
    return m->dims[l < m->L ? l + 1 : m->L];
}

struct pcn_state {
    const pcn_model *model;
    const pcn_backend_ops *ops;       // the backend that owns mem
    int max_batch;
    int batch;
    float *mem;                       // the one allocation behind every pointer below
    float *x[PCN_MAX_LAYERS + 1];     // x[l], l = 1..L: latents (B, d_l); x[0] unused
    float *a[PCN_MAX_LAYERS];         // preactivations (B, d_l), l = 0..L-1
    float *e[PCN_MAX_LAYERS + 1];     // errors (B, d_l), l = 0..L; e[L] = top error
    float *h[PCN_MAX_LAYERS];         // gains (B, d_l)
    float *yhat;                      // (B, K)
    float *esup;                      // (B, K)
    bool latents_ready;
    bool has_target;                  // whether e[L], esup hold a supervised snapshot
};

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

// Records a message for pcn_last_error() and returns status.
pcn_status pcn_set_error(pcn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
pcn_status pcn_set_errorv(pcn_status status, const char *fmt, va_list ap);

// Bad input (a usage error): unless cond holds, returns status with the message, which
// pcn_last_error() then gives. Always on. No side effects in cond.
#define PCN_CHECK(cond, status, ...)                                                        \
    do {                                                                                    \
        if (!(cond)) return pcn_set_error((status), __VA_ARGS__);                           \
    } while (0)
// A broken invariant (a bug, never bad input): unless cond holds, prints what failed and
// where, then aborts (mpirun then ends the other ranks). No side effects in cond.
#define PCN_ASSERT(cond)                                                                    \
    do {                                                                                    \
        if (!(cond)) pcn_assert_fail(#cond, __FILE__, __LINE__, __func__);                  \
    } while (0)
void pcn_assert_fail(const char *what, const char *file, int line, const char *func)
    __attribute__((noreturn));


// ----------------------------------------------------------------------------------------
// Memory
// ----------------------------------------------------------------------------------------

// 64-byte aligned, zeroed; NULL when count is 0 or on failure.
void *pcn_alloc(size_t bytes);
void pcn_free(void *p);

// ----------------------------------------------------------------------------------------
// Counter-based randomness (Philox4x32-10)
// ----------------------------------------------------------------------------------------

// Fills out[0..n) with N(0,1) draws; unit j's value depends on (seed, c0, c1, c2, j) only.
void pcn_rng_normal(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, float *out, size_t n);
// Fills out[0..n) with U(lo, hi) draws; value j depends on (seed, c0, c1, c2, j) only.
void pcn_rng_uniform(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, float lo, float hi,
                     float *out, size_t n);
// A uniform 64-bit integer, the draw of (seed, c0, c1, c2, j).
uint64_t pcn_rng_u64(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint64_t j);

// Stream ids in the counters (latent streams are pcn_stream values).
#define PCN_RNG_WEIGHTS 0x100u
#define PCN_RNG_SHUFFLE 0x101u

// ----------------------------------------------------------------------------------------
// Internals the tests reach
// ----------------------------------------------------------------------------------------

void pcn_model_set_backend(pcn_model *model, const pcn_backend_ops *ops);
// Moves the model's compute to backend `to` (pcn_model_to_device with any backend; tests
// run the device paths on an emulated device with it). Local.
pcn_status pcn_model_to_backend(pcn_model *model, const pcn_backend_ops *to, pcn_device dev);
// Device models: host copy -> device weights (push) and back (pull). No-ops on the host.
void pcn_model_push(pcn_model *model);
void pcn_model_pull(pcn_model *model);
// The CUDA backend after pcn_cuda_select(), else NULL (src/gpu).
const pcn_backend_ops *pcn_cuda_backend(void);
void pcn_history_set_running_accuracy(pcn_history *h, double acc);

// ----------------------------------------------------------------------------------------
// Step kernels (state.c). Sums are local to this process's rows and not yet halved or
// divided by the batch: the trainer makes them global before turning them into energies.
// ----------------------------------------------------------------------------------------

// A view of rows [r0, r0 + rows) of s: the same buffers from row r0 on, batch = rows.
// Every inference step is row-local, so steps on disjoint views may run concurrently.
void pcn_state_rows(const pcn_state *s, int r0, int rows, pcn_state *view);
// Errors of the current snapshot; with lr != 0 also the whole latent update of an inference
// step. need_top: compute the top error E[L] = Esup Wout (inference needs it, learning not).
// want_sum: the step's sum_l ||E[l]||^2 + ||Esup||^2 over the state's rows is wanted; on a
// host backend it is returned, on a device backend it stays on the device until
// pcn_step_sum (which waits). Without want_sum a device backend computes no sum and the
// step runs without waiting for the device.
double pcn_step_errors(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                       float lr, bool need_top, bool want_sum);
// The full sum of a step run with want_sum, given its return value.
double pcn_step_sum(const pcn_model *m, double returned);
// After pcn_step_errors: the model's gradient buffer g = [H[l]^T X[l+1] ..., -Esup^T X[L]]
// (zero readout part without a target), so that the update is w += (lr/B) g.
void pcn_step_gradient(pcn_model *m, const pcn_state *s, bool has_target);
// w += alpha g over the whole buffer.
void pcn_step_apply(pcn_model *m, float alpha);
// Yhat of the state's rows into s->yhat.
void pcn_step_predict(const pcn_model *m, pcn_state *s);

// ----------------------------------------------------------------------------------------
// Batch-space learning (gram.c), one process or several on host memory
// ----------------------------------------------------------------------------------------

typedef struct pcn_gram pcn_gram;

// What the planner charges for communication. A rank's flops and the bytes it sends in
// collectives are added as flops + flops_per_byte * bytes.
typedef struct {
    int ranks;              // P, >= 1; 1: no communication
    double flops_per_byte;  // flop-equivalents of one byte sent (learn_flops_per_byte)
} pcn_gram_cost;
// A workspace for batches of up to max_global rows over coll's ranks (NULL: one process)
// of which this process holds up to max_local. Local.
pcn_gram *pcn_gram_init(const pcn_model *m, int max_local, int max_global,
                        const pcn_collectives *coll);
void pcn_gram_free(pcn_gram *gr);
// use[l], l = 0..L (L: readout): whether layer l takes the batch-space path for a global
// batch of B rows and T learning steps; cost NULL means one process. Local, and the same
// on every rank for the same arguments.
void pcn_gram_plan(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                   pcn_learn_path path, bool *use);
// The flop-equivalents (flops plus charged bytes) of the busiest rank in one learning phase
// on the plan pcn_gram_plan makes. Local.
double pcn_gram_phase_cost(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                           pcn_learn_path path);
// A learning phase (phase.h's pcn_gram_phase; gr is set here) on the plan pcn_gram_plan
// made: across ranks step by step, on one process as the model's backend runs it in
// phase_ws (its ops->phase_init workspace). Collective over the workspace's ranks.
struct pcn_gram_phase;
pcn_status pcn_gram_learn(pcn_gram *gr, void *phase_ws, struct pcn_gram_phase *ph);

#endif // PCN_IMPL_H
