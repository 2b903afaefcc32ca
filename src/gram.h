/*
 * gram.h — the batch-space learner (gram.c): its planner, its phase and its workspace,
 * whose G and S the CPU backend's phase split by output units (cpu_phases.c) steps by
 * columns. Private to libpcn.
 */
#ifndef PCN_GRAM_H
#define PCN_GRAM_H

#include "core.h"

typedef struct pcn_gram pcn_gram;

struct pcn_gram {
    const pcn_backend_ops *ops;   // owns the buffers
    const pcn_collectives *coll;  // NULL: one process
    int max_local, max_global;
    bool by_units;                // across ranks, split by output units (else by rows)
    // By rows (and on one process, where B_r = B):
    float *g[PCN_MAX_LAYERS + 1];    // (B_r, B) own rows of G of X[l+1] (l = L: of X[L]);
                                     //   by units (B, B); allocated when a plan first puts
                                     //   the layer in batch space (pcn_gram_reserve)
    bool no_room[PCN_MAX_LAYERS + 1]; // G did not fit: the layer stays on the per-step path
    float *s[PCN_MAX_LAYERS + 1];    // (B_r, d_l) accumulated own H[l]; s[L]: Esup (B_r, K);
                                     //   by units (B, d_l)
    float *xall[PCN_MAX_LAYERS + 1]; // by rows: (B, in) the gathered latent of layer l
    float *dall[PCN_MAX_LAYERS + 1]; // by rows: (B, out) the step's gathered H (Esup)
    // By units: the whole batch, gathered once per phase, and the phase's send buffers.
    pcn_state *full;                 // (B) every latent of the batch
    float *x, *y;                    // (B, d0), (B, K) the batch's data and targets
    float *rows_mine, *rows_all;     // (B_r or B, d0 + d1 + ... + dL + K) packed rows
    float *wmine, *wall;             // (the model's weights) this rank's rows, everyone's
    int64_t *counts;                 // (ranks) floats of each rank's rows
};

// ----------------------------------------------------------------------------------------
// Batch-space learning (gram.c), one process or several on host memory
// ----------------------------------------------------------------------------------------


// What the planner charges for communication. A rank's flops and the bytes it sends in
// collectives are added as flops + flops_per_byte * bytes.
typedef struct {
    int ranks;              // P, >= 1; 1: no communication
    double flops_per_byte;  // flop-equivalents of one byte sent (learn_flops_per_byte)
    bool by_units;          // ranks split the output units (no collective per step)
} pcn_gram_cost;
// A workspace for batches of up to max_global rows over coll's ranks (NULL: one process)
// of which this process holds up to max_local; by_units: across ranks the phase splits the
// output units (the backend's ops->splits_units), else the rows. Local.
pcn_gram *pcn_gram_init(const pcn_model *m, int max_local, int max_global,
                        const pcn_collectives *coll, bool by_units);
// Rank `rank` of `ranks`' output units of layer l when a phase splits them across ranks:
// rows [*lo, *lo + *count) of W[l] (pcn_train_shard of the layer's outputs). Local.
void pcn_gram_unit_rows(const pcn_model *m, int l, int rank, int ranks, int *lo, int *count);
void pcn_gram_free(pcn_gram *gr);
// use[l], l = 0..L (L: readout): whether layer l takes the batch-space path for a global
// batch of B rows and T learning steps; cost NULL means one process. Local, and the same
// on every rank for the same arguments.
void pcn_gram_plan(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                   pcn_learn_path path, bool *use);
// Allocates G of every layer use[] puts in batch space that has none yet (B x B floats
// each, so only where a plan uses it). A layer whose G does not fit in the backend's
// memory takes the per-step path from then on (use[l] cleared; results equal up to
// rounding); across ranks split by rows the ranks agree, so every rank clears the same
// layers (by units a rank's path is its own). Collective over gr's ranks when it allocates
// across ranks split by rows, Local otherwise.
pcn_status pcn_gram_reserve(pcn_gram *gr, const pcn_model *m, bool *use);
// The flop-equivalents (flops plus charged bytes) of the busiest rank in one learning phase
// on the plan pcn_gram_plan makes. Local.
double pcn_gram_phase_cost(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                           pcn_learn_path path);
// A learning phase (phase.h's pcn_gram_phase; gr is set here) on the plan pcn_gram_plan
// made: across ranks step by step, on one process as the model's backend runs it in
// phase_ws (its ops->phase_init workspace). Collective over the workspace's ranks.
struct pcn_gram_phase;
pcn_status pcn_gram_learn(pcn_gram *gr, void *phase_ws, struct pcn_gram_phase *ph);

#endif // PCN_GRAM_H
