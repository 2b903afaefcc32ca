/*
 * core.h — the engine's private core, shared by the files of libpcn: the model and state
 * layouts (model.c, state.c), errors (PCN_CHECK, PCN_ASSERT; util.c), aligned memory and
 * counter-based randomness (util.c). Nothing outside libpcn and its white-box tests
 * includes it.
 *
 * Invariants: a model's weights W[0..L-1], Wout live in one buffer w (offsets woff[l]);
 * its gradient buffer g has the same layout. A state holds each tensor family (latents,
 * preactivations, errors, gains) in one allocation with rows of the maximal batch; the
 * first `batch` rows are in use.
 */
#ifndef PCN_CORE_H
#define PCN_CORE_H

#include <stdarg.h>

#include "backend.h"
#include "pcn.h"

struct pcn_model {
    int L;                        // layers
    int dims[PCN_MAX_LAYERS + 1]; // d0..dL
    int K;                        // outputs
    pcn_task mode;
    pcn_direction dir;            // generative (the seed) or discriminative
    bool bias;                    // discriminative: biases b_1..b_L in the readout slot
    float slope;                  // leaky_relu's slope
    // Generative: act[l] is W[l]'s prediction's activation. Discriminative: act[l] is that
    // of mu_{l+1} (layer l = W_{l+1}); act[L-1] is the identity (the output).
    pcn_activation act[PCN_MAX_LAYERS];
    size_t woff[PCN_MAX_LAYERS + 2]; // offset of W[l]; woff[L] readout; woff[L+1] total
    float *w;                     // all weights, in the backend's memory
    float *g;                     // gradient, same layout, in the backend's memory
    float *hw;                    // host copy of w (== w on a host backend)
    bool host_stale;              // w changed since hw was copied from it: the accessors
                                  // (pcn_model_weights, _layer, _readout) pull first
    float *opt;                   // optimizer moments, opt_slots x woff[L+1], backend memory
    float *hopt;                  // host copy of opt (== opt on a host backend)
    int opt_slots;                // 0 (none), 1 (momentum) or 2 (adamw: m, v)
    pcn_device device;
    const pcn_backend_ops *ops;   // arithmetic backend
};

// Discriminative layer l (l = 0..L-1) is W_{l+1}: (d_{l+1}, d_l), out x in; its bias
// b_{l+1} sits at woff[L] + bias_off(l).
static inline size_t pcn_disc_bias_off(const pcn_model *m, int l) {
    size_t off = 0;
    for (int k = 1; k <= l; k++) off += (size_t)m->dims[k];
    return off;
}

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
    // A device state's latents as pcn_state_latent hands them out: host buffers (B, d_l),
    // allocated on first use, uploaded by pcn_state_push_latents.
    float *staged[PCN_MAX_LAYERS + 1];
};

// Uploads the latents pcn_state_latent handed out for a device state since the last call
// (a latent_init callback's values); no-op on the host. Local.
void pcn_state_push_latents(pcn_state *s);

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

// pcn_set_error (pcn.h) with a va_list.
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
// Models on a backend (model.c), the CUDA backend (src/gpu/cuda.c), the history (history.c)
// ----------------------------------------------------------------------------------------

void pcn_model_set_backend(pcn_model *model, const pcn_backend_ops *ops);
// Moves the model's compute to backend `to` (pcn_model_to_device with any backend; tests
// run the device paths on an emulated device with it). Local.
pcn_status pcn_model_to_backend(pcn_model *model, const pcn_backend_ops *to, pcn_device dev);
// Device models: host copy -> device weights (push) and back (pull). No-ops on the host.
void pcn_model_push(pcn_model *model);
void pcn_model_pull(pcn_model *model);
// The device's weights changed (a learning phase ran): the host copy is refreshed when it is
// next read through an accessor, not before (a device run copies weights back only when a
// checkpoint or the caller reads them). No-op on a host backend. Local.
void pcn_model_host_stale(pcn_model *model);
// The CUDA backend after pcn_cuda_select(), else NULL (src/gpu).
const pcn_backend_ops *pcn_cuda_backend(void);
void pcn_history_set_running_accuracy(pcn_history *h, double acc);

#endif // PCN_CORE_H
