/*
 * phase.h — the trainer's phases as a backend runs them (private to libpcn).
 *
 * The trainer (train.c) says what a phase computes; the backend decides how: the CPU
 * backend splits an inference phase's rows and a batch-space learning phase's output units
 * over its OpenMP threads (cpu_phases.c), every backend may run a phase step by step with
 * each product threading itself (phases.c, the reference the tests compare the splits
 * with), and a device backend replays each recorded step as a graph.
 *
 * A phase runs inside a workspace the backend makes once per trainer (phase_init): the CPU
 * backend's packed weights and per-thread blocks; none for the plain phases.
 */
#ifndef PCN_PHASE_H
#define PCN_PHASE_H

#include "gram.h"
#include "step.h"

// Up to `steps` inference steps on the state's rows, with the target y (backend memory) or
// without (NULL). After each step from sum_from on, watch(ctx, step, sumsq, &stop) sees
// the local sum of squared errors of the step's snapshot (before its update) and may end
// the phase (*stop) or fail it; it runs on the calling thread (MPI calls and callbacks may
// go there).
typedef struct pcn_infer_phase {
    const pcn_model *m;
    pcn_state *s;
    const float *x, *y;   // (batch, d0) and (batch, K) in the backend's memory; y may be NULL
    int steps;            // at most this many steps
    float lr;             // lr_infer
    pcn_precision precision; // of the inference products
    int sum_from;         // the first step whose sum goes to watch (steps: none)
    pcn_status (*watch)(void *ctx, int step, double sumsq, bool *stop);
    void *ctx;
    int taken;            // out: steps run
} pcn_infer_phase;

// The batch-space learning phase (gram.c plans it and owns gr): t_steps steps over a
// global batch of `global` rows (the state holds this process's) with alpha = lr/B;
// report(ctx, step, sumsq) sees the local sum of squares of each of the first report_steps
// steps before its update and may stop the phase with an error; after_sq, unless NULL,
// gets the sum of squares of the snapshot the phase ends on.
typedef struct pcn_gram_phase {
    pcn_gram *gr;         // set by pcn_gram_learn
    pcn_model *m;
    pcn_state *s;
    const float *x, *y;
    int global, t_steps, report_steps;
    float alpha;
    const bool *use;      // [L + 1] the layers on the batch-space path
    pcn_status (*report)(void *ctx, int step, double sumsq);
    void *ctx;
    double *comm_seconds; // seconds in collectives are added here
    double *after_sq;
    int rank, ranks;      // set by pcn_gram_learn: ranks > 1 when the phase splits the
                          //   output units across ranks (pcn_gram_unit_rows): the state,
                          //   x and y then hold the whole batch, and every sum is this
                          //   rank's part (its units' columns)
} pcn_gram_phase;

// What a trainer asks of its backend's phases.
typedef struct pcn_phase_params {
    int max_rows;         // rows of the largest state the phases will see
    bool split;           // the backend may split phases over its threads (the default;
                          //   false: step by step, every product threading itself)
    bool units;           // the batch-space learning phase will run on this process alone
} pcn_phase_params;

// ---- the plain phases every backend can run (phases.c) ---------------------------------

// A workspace for the plain phases (nothing to hold); never NULL.
void *pcn_phase_plain_init(const pcn_model *m, const pcn_phase_params *p);
void pcn_phase_plain_free(void *ws);
// Step by step through pcn_step_errors, each step through the backend's replay.
pcn_status pcn_phase_plain_infer(void *ws, pcn_infer_phase *ph);
// Step by step, layer by layer (gram.c).
pcn_status pcn_gram_phase_plain(void *ws, pcn_gram_phase *ph);

// ---- a step against weights held another way (the CPU's packed weights) ---------------

// The step's two products against layer l's weights M (W[l]; l = L: Wout):
//   xmt: C (B, out) = X (B, in) M^T;  dm: C (B, in) = alpha D (B, out) M + beta C.
typedef struct pcn_products {
    const void *ctx;
    void (*xmt)(const void *ctx, int l, int B, int out, int in, const float *x, float *c);
    void (*dm)(const void *ctx, int l, int B, int out, int in, float alpha, const float *d,
               float beta, float *c);
} pcn_products;

// pcn_step_errors with its products through prod.
double pcn_step_errors_with(const pcn_model *m, const pcn_products *prod, pcn_state *s,
                            const float *x, const float *y, float lr, bool need_top,
                            bool want_sum);

#endif // PCN_PHASE_H
