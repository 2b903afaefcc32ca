/*
 * train_impl.h — the trainer's workspace and what its files share (private to libpcn):
 * train.c (the loops, the generative batch, testing), train_disc.c (the discriminative
 * batch and test), schedule.c (learning-rate schedules).
 */
#ifndef PCN_TRAIN_IMPL_H
#define PCN_TRAIN_IMPL_H

#include "disc.h"
#include "phase.h"

typedef struct {
    pcn_model *m;            // writable for training; tests use it read-only
    const pcn_data *data;
    const pcn_train_params *p;
    const pcn_collectives *coll;
    pcn_history *h;
    const pcn_callbacks *cb;
    pcn_state *s;
    int K;
    int64_t *perm;           // (n) the epoch's order
    int64_t *rows;           // (local max batch) data rows of this process's slice
    int64_t *next_rows;      // (local max batch) the next batch's, for the source's prefetch
    float *x;                // (local max batch, d0)
    float *y;                // (local max batch, K) one-hot or targets
    float *dx, *dy;          // x and y in the backend's memory (== x, y on the host)
    float *yhat;             // (local max batch, K) host copy of the outputs (device only)
    int32_t *labels;         // (local max batch)
    float *targets;          // (local max batch, y_dim)
    float *stage;            // (model's weights) host copy of a device model's gradient for
                             //   sums without sum_f32_device, or NULL
    pcn_gram *gram;          // batch-space learning workspace, or NULL
    pcn_disc *disc;          // discriminative mode's workspace, or NULL
    pcn_gram_cost cost;      // what the learning planner charges (ranks, flops per byte)
    void *phases;            // the backend's workspace for the phases (ops->phase_init)
    int64_t gbatch;          // current global batch
    int64_t lo, count;       // this process's slice of it
    pcn_train_position pos;  // where training stands; also the schedule's state
} trainer;

// Global sums of n doubles (no-op on one process). Collective.
pcn_status pcn_trainer_sum(const trainer *t, double *v, int n);
// Local sums of squares -> global batch-mean energies 1/2 sum / B; PCN_EDIVERGED when one
// is not finite. Collective.
pcn_status pcn_trainer_energies(trainer *t, double *v, int n);
// The model's gradient buffer summed across processes (host, NCCL or staged). Collective.
pcn_status pcn_trainer_sum_gradient(trainer *t);
int pcn_trainer_argmax(const float *v, int n);
// Samples of this process's batch whose argmax of out (count, K; host) is their label.
double pcn_trainer_correct(const trainer *t, const float *out);
// Scores this process's batch from its outputs out (count, K; host): local[1] correct,
// local[2] top-k hits, the confusion counts (classification), local[3] the squared error
// (regression); the outputs to yhat (data order) unless NULL. Local.
void pcn_trainer_score(trainer *t, const float *out, double local[4], float *yhat);
bool pcn_trainer_in_top_k(const float *v, int n, int label, int k);

// ---- schedules (schedule.c) ------------------------------------------------------------
// The factor the large-batch rule applies to every learning rate the run is given.
double pcn_trainer_lr_scale(const pcn_train_params *p);
// The lr of the next weight update of batch (epoch, batch): manual steps and warm-up as
// before; cosine at optimizer step `step` of `total`. Calls on_lr_reduced on a manual step.
double pcn_trainer_lr(trainer *t, int epoch, int batch, int nbatches, int64_t step,
                      int64_t total);
// After a batch: reduce-on-plateau.
void pcn_trainer_plateau(trainer *t, double batch_energy);

// ---- the discriminative mode (train_disc.c) --------------------------------------------
pcn_status pcn_trainer_disc_batch(trainer *t, int epoch, int batch, int nbatches, int64_t pos);
// Scores one test batch (forward pass); adds global (energy * B, correct, top-k hits,
// squared error) to sums and the outputs to yhat (data order) unless NULL. Collective.
pcn_status pcn_trainer_disc_test(trainer *t, int batch, double sums[4], float *yhat);

#endif // PCN_TRAIN_IMPL_H
