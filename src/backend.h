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
 * Phases: the trainer hands a backend whole phases (phase.h) and the backend decides how to
 * run them: the CPU backend splits them over its threads (cpu_phases.c); the reference
 * backend and a device backend run the plain phases (phases.c), step by step.
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

// One weight-optimizer step (optim.c fills it; every backend's optim_step applies it).
typedef struct pcn_optim_step {
    pcn_optimizer kind;
    float lr;             // this step's scheduled lr
    float scale;          // the gradient buffer times this is the gradient (e.g. 1/B)
    float momentum;       // PCN_OPT_MOMENTUM
    float b1, b2, eps;    // PCN_OPT_ADAMW
    float c1, c2;         // adamw 1 - b1, 1 - b2 formed in double, then rounded (optax forms
                          //   1 - decay from Python floats; 1.0f - 0.999f is 1.3e-5 off)
    float bc1, bc2;       // adamw bias corrections 1 - b1^t, 1 - b2^t (t = step + 1)
    float wd;             // decoupled weight decay (times lr)
} pcn_optim_step;

struct pcn_phase_params;
struct pcn_infer_phase;
struct pcn_gram_phase;
struct pcn_disc_phase;

typedef struct pcn_backend_ops {
    const char *name;
    // C = alpha op(A) op(B) + beta C; op(A) is (m, k), op(B) is (k, n), C is (m, n).
    void (*gemm)(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc);
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

    // ---- discriminative mode (disc.c) ------------------------------------------------
    // a (rows, cols) = each row b (cols), or 0 where b is NULL.
    void (*fill_rows)(int rows, int cols, const float *b, float *a);
    // mu = f(a) over n elements (slope: leaky_relu's).
    void (*act_pass)(pcn_activation act, float slope, size_t n, const float *a, float *mu);
    // e = x - f(a); d = e f'(a) over n elements. Returns sum e^2 (see sums above).
    double (*disc_error)(pcn_activation act, float slope, size_t n, const float *x,
                         const float *a, float *e, float *d);
    // A latent step over n elements: g = e + t; with beta != 0 m = g + beta m and x -= lr m,
    // else x -= lr g (m unused, may be NULL).
    void (*latent_step)(size_t n, float lr, float beta, const float *e, const float *t, float *m,
                        float *x);
    // One optimizer step over n weights w with gradient scale * g; m and v are the moments
    // (momentum: m; adamw: m and v; sgd: neither, may be NULL).
    void (*optim_step)(const pcn_optim_step *o, size_t n, const float *g, float *m, float *v,
                       float *w);

    // ---- phases: how this backend runs the trainer's phases (phase.h) --------------------
    // A workspace for a trainer's phases (NULL on failure), and its release (accepts NULL).
    void *(*phase_init)(const pcn_model *m, const struct pcn_phase_params *p);
    void (*phase_free)(void *ws);
    // An inference phase; the batch-space learning phase of one process.
    pcn_status (*infer_phase)(void *ws, struct pcn_infer_phase *ph);
    pcn_status (*gram_phase)(void *ws, struct pcn_gram_phase *ph);
    // A discriminative inference phase (disc.h).
    pcn_status (*disc_phase)(void *ws, struct pcn_disc_phase *ph);
    // Whether gram_phase can split the output units across ranks (ph->ranks > 1); the
    // trainer then gathers the batch once per phase instead of H at every step.
    bool splits_units;

    // ---- memory: every engine buffer comes from here -----------------------------------
    bool on_device;                                  // buffers are not host-addressable
    void *(*alloc)(size_t bytes);                    // zeroed; NULL on failure or 0 bytes
    void (*release)(void *p);                        // accepts NULL
    void (*upload)(void *dst, const void *src, size_t bytes);   // host -> backend
    void (*download)(void *dst, const void *src, size_t bytes); // backend -> host (waits)
    // Host memory for staging: a device copies to and from it asynchronously (CUDA: pinned,
    // so an upload from it is queued without a host copy and reads it when it runs; the
    // caller keeps it unchanged until a wait). Host backends: pcn_alloc. NULL on failure or
    // 0 bytes; host_free accepts NULL and waits for queued copies first.
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
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

    // ---- events: a bounded queue of steps (pcn_backend_step_wait below) --------------------
    // mark(slot) records an event after the work queued so far (0 <= slot < PCN_MARK_SLOTS;
    // a new mark replaces the slot's last one); wait_mark(slot) waits until that work has
    // run. A device backend polls under its timeout and ends the run through its fatal
    // handler when the timeout passes (as its other waits do); host backends: no-ops, PCN_OK.
    void (*mark)(int slot);
    pcn_status (*wait_mark)(int slot);

    // ---- timers: the device time of queued operations -------------------------------------
    // timer_begin and timer_end, queued around an operation (pairs do not nest), time it
    // when it runs, as events on the stream do; timer_read waits for the last pair to have
    // run and returns the seconds of every pair since the last read, then forgets them.
    // A device backend waits as wait_mark does (under its timeout); host backends run
    // their operations at the call, so their callers time them with the clock: no-ops, 0.
    void (*timer_begin)(void);
    void (*timer_end)(void);
    double (*timer_read)(void);
} pcn_backend_ops;

// Events a backend keeps (mark's slots) and the steps a loop keeps in flight by default.
#define PCN_MARK_SLOTS 8
#define PCN_STEPS_IN_FLIGHT 4

// A loop that queues step after step on a device without reading a result in between
// (the per-step learning loop, the discriminative phase) keeps at most K steps queued:
// pcn_backend_step_wait before queuing step s waits for step s - K's mark, and
// pcn_backend_step_mark after queuing it marks it. A wait polls, so a dead peer in a
// collective ends the run after the timeout instead of blocking a launch. Local.
pcn_status pcn_backend_step_wait(const pcn_backend_ops *o, int step);
void pcn_backend_step_mark(const pcn_backend_ops *o, int step);
// Tests only: K (1..PCN_MARK_SLOTS; 0: unbounded, no waits). Default PCN_STEPS_IN_FLIGHT.
void pcn_backend_set_steps_in_flight(int k);

extern const pcn_backend_ops pcn_backend_cpu;
extern const pcn_backend_ops pcn_backend_ref;

// The first operation ops leaves NULL, or NULL when it has every one: every backend has
// every operation (backend_host.c; pcn_model_to_backend asserts it).
const char *pcn_backend_missing(const pcn_backend_ops *ops);

// The host backends' discriminative and optimizer kernels (backend_disc.c).
void pcn_host_fill_rows(int rows, int cols, const float *b, float *a);
void pcn_host_act_pass(pcn_activation act, float slope, size_t n, const float *a, float *mu);
double pcn_host_disc_error(pcn_activation act, float slope, size_t n, const float *x,
                           const float *a, float *e, float *d);
void pcn_host_latent_step(size_t n, float lr, float beta, const float *e, const float *t,
                          float *m, float *x);
void pcn_host_optim_step(const pcn_optim_step *o, size_t n, const float *g, float *m, float *v,
                         float *w);

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
void pcn_host_mark(int slot);
pcn_status pcn_host_wait_mark(int slot);
void pcn_host_timer_mark(void);
double pcn_host_timer_read(void);
#define PCN_HOST_BACKEND_COMMON                                                             \
    .zero = pcn_host_zero, .normal_rows = pcn_host_normal_rows, .on_device = false,           \
    .alloc = pcn_host_alloc, .release = pcn_host_release, .upload = pcn_host_copy,             \
    .download = pcn_host_copy, .host_alloc = pcn_host_alloc, .host_free = pcn_host_release,   \
    .sync = pcn_host_sync, .sum_begin = pcn_host_sum_mark,                                    \
    .sum_finish = pcn_host_sum_mark,                                                          \
    .sum_read = pcn_host_sum_read, .set_precision = pcn_host_set_precision,                    \
    .replay = pcn_host_replay, .fill_rows = pcn_host_fill_rows, .act_pass = pcn_host_act_pass,  \
    .disc_error = pcn_host_disc_error, .latent_step = pcn_host_latent_step,                      \
    .optim_step = pcn_host_optim_step, .mark = pcn_host_mark, .wait_mark = pcn_host_wait_mark,     \
    .timer_begin = pcn_host_timer_mark, .timer_end = pcn_host_timer_mark,                       \
    .timer_read = pcn_host_timer_read
pcn_status pcn_disc_phase_plain(void *ws, struct pcn_disc_phase *ph); // disc.c
pcn_status pcn_disc_phase_cpu(void *ws, struct pcn_disc_phase *ph);   // disc_cpu.c
// The plain phases (phases.c), for every backend without its own.
#define PCN_PLAIN_PHASES                                                                    \
    .phase_init = pcn_phase_plain_init, .phase_free = pcn_phase_plain_free,                  \
    .infer_phase = pcn_phase_plain_infer, .gram_phase = pcn_gram_phase_plain,                \
    .disc_phase = pcn_disc_phase_plain

#endif // PCN_BACKEND_H
