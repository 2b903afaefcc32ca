/*
 * disc.h — the discriminative mode's engine (disc.c, disc_cpu.c; private to libpcn).
 *
 * Layers x_0 (input, clamped), latents x_1..x_{L-1}, output x_L; W_l (d_l, d_{l-1}) is the
 * model's layer l-1, b_l its bias. a_l = x_{l-1} W_l^T + b_l, mu_l = f_l(a_l) (identity at
 * l = L), e_l = x_l - mu_l, d_l = e_l f_l'(a_l). Energy per sample sum_l 1/2 ||e_l||^2.
 * Latent gradient (per sample, not divided by B): g_l = e_l - d_{l+1} W_{l+1}, l < L.
 * Weight gradient of the batch SUM: dE/dW_l = -d_l^T x_{l-1}, dE/db_l = -sum_rows d_l; the
 * trainer sums it across ranks and the optimizer scales it by 1/B (the batch mean).
 *
 * A workspace holds one batch's tensors (every buffer in the model's backend memory, one
 * allocation); x_0 and, in training, x_L are the trainer's input and target buffers.
 * Sums of squares follow backend.h: a host backend returns them, a device backend keeps
 * them until pcn_disc_sum reads them.
 */
#ifndef PCN_DISC_H
#define PCN_DISC_H

#include "core.h"

typedef struct pcn_disc {
    const pcn_backend_ops *ops;     // the backend that owns mem
    int max_rows, rows;
    float *mem;
    float *x[PCN_MAX_LAYERS + 1];   // x[1..L-1] latents (rows, d_l); x[0], x[L] set per batch
    float *a[PCN_MAX_LAYERS + 1];   // a[1..L] preactivations (rows, d_l); a[L] = mu_L
    float *e[PCN_MAX_LAYERS + 1];   // e[1..L] errors
    float *d[PCN_MAX_LAYERS + 1];   // d[1..L] = e f'(a)
    float *t[PCN_MAX_LAYERS + 1];   // t[1..L-1] = -d_{l+1} W_{l+1}
    float *out;                     // (rows, d_L): a place for the forward pass's outputs
    float *mom[PCN_MAX_LAYERS + 1]; // m[1..L-1] latent momentum
    float *ones;                    // (max_rows) ones, for the bias gradient
    // Host backends: the weights packed for the CPU's split phase (disc_cpu.c), once per
    // phase: wt[l] = W_l^T for a_l = x_{l-1} W_l^T, wn[l] = W_l for t_{l-1} = -d_l W_l.
    float *pack;
    float *wt[PCN_MAX_LAYERS + 1], *wn[PCN_MAX_LAYERS + 1];
    double *part;                   // (threads, steps + 1) each thread's sum per step
    int part_cap;
    float *dt;                      // (threads, max d_l, max_rows) each thread's d^T block
    size_t dt_stride;               // floats between two threads' blocks
    int dt_threads;
} pcn_disc;

// A workspace for batches of up to max_rows rows of m (on m's backend); NULL on failure.
pcn_disc *pcn_disc_init(const pcn_model *m, int max_rows);
void pcn_disc_free(pcn_disc *w);

// The forward pass over `rows` rows of input x0 (backend memory): a_1..a_L and the latents
// x_l = mu_l (the forward start; a test's forward pass). The outputs mu_L are w->a[L].
void pcn_disc_forward(pcn_disc *w, const pcn_model *m, const float *x0, int rows);
// The random start: x_l ~ N(0, std^2) for l = 1..L-1 (Philox on seed, stream, epoch and
// the rows' global positions, as pcn_init_latents), then a_1..a_L from them.
void pcn_disc_random(pcn_disc *w, const pcn_model *m, const float *x0, int rows,
                     const pcn_latent_key *key, float std);

// A training batch's phase on the workspace's rows (w->rows), the target y clamping x_L:
//   [forward: the forward start from x0; out0, unless NULL, gets mu_L (rows, K) of it]
//   `steps` steps of: errors (sum to watch from sum_from on) -> t_l = -d_{l+1} W_{l+1}
//     -> [ipc: gradient into m->g, then weights(ctx, step) sums it and steps the optimizer]
//     -> m_l = g_l + beta m_l, x_l -= lr m_l -> a_l recomputed from the new latents;
//   the errors of the final latents (final_sq: their sum of squares, complete);
//   [gradient: m->g = the gradient of the rows' energy sum at the final latents].
// Without forward the latents and a_1..a_L must be set (pcn_disc_random).
typedef struct pcn_disc_phase {
    pcn_model *m;
    pcn_disc *w;
    const float *x0, *y;  // (rows, d0), (rows, K) in the backend's memory
    bool forward;         // start with the forward pass
    float *out0;          // (rows, K) backend memory: mu_L of the forward pass, or NULL
    int steps;
    float lr, beta;       // lr_infer, infer_momentum
    bool ipc;
    bool gradient;        // end with the weight gradient
    int sum_from;         // the first step whose sum goes to watch (steps: none)
    pcn_status (*watch)(void *ctx, int step, double sumsq);
    pcn_status (*weights)(void *ctx, int step); // ipc only
    void *ctx;
    double final_sq;      // out
} pcn_disc_phase;

// The CPU backend's phase (disc_cpu.c): each OpenMP thread runs the steps on its own rows
// with the weights packed once (cpu.h's kernel; with iPC packed again after every weight
// step), the gradient split by output units; with split off, the plain phase.
pcn_status pcn_disc_phase_cpu(void *ws, pcn_disc_phase *ph);

// The phase step by step with each product threading itself (every backend; the
// reference the CPU's split phase is tested against).
pcn_status pcn_disc_phase_plain(void *ws, pcn_disc_phase *ph);

// Errors e_l, d_l of the current state with x_L = y; returns the sum of e^2 when want_sum
// (pcn_disc_sum completes it on a device).
double pcn_disc_errors(pcn_disc *w, const pcn_model *m, const float *y, bool want_sum);
// The same for layers lo..L, with e_l = d_l = 0 below lo (right after the forward start
// every hidden error is exactly 0: x_l = mu_l).
double pcn_disc_errors_from(pcn_disc *w, const pcn_model *m, const float *y, int lo,
                            bool want_sum);
double pcn_disc_sum(const pcn_model *m, double returned);
// After pcn_disc_errors: t_l = -d_{l+1} W_{l+1}, l = 1..L-1.
void pcn_disc_back(pcn_disc *w, const pcn_model *m);
// After pcn_disc_errors: m->g = the gradient of the rows' energy SUM w.r.t. W and b.
void pcn_disc_gradient(pcn_disc *w, pcn_model *m);
// a_l = x_{l-1} W_l^T + b_l for l = from..L.
void pcn_disc_preact(pcn_disc *w, const pcn_model *m, int from);

#endif // PCN_DISC_H
