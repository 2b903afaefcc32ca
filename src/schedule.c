/*
 * schedule.c — the trainer's learning-rate schedules: large-batch scaling, warm-up batches,
 * pcn-torch's manual steps and reduce-on-plateau, and the cosine schedule (optim.c's
 * pcn_lr_cosine) over the run's optimizer steps. The position's lr is the lr of the last
 * update, which the checkpoint keeps and the history reports per epoch.
 */
#include <math.h>

#include "train_impl.h"

double pcn_trainer_lr_scale(const pcn_train_params *p) {
    double r = p->lr_ref_batch > 0 ? (double)p->batch_size / p->lr_ref_batch : 1.0;
    return p->lr_scaling == PCN_LR_SCALE_LINEAR ? r
         : p->lr_scaling == PCN_LR_SCALE_SQRT   ? sqrt(r) : 1.0;
}

// Warm-up: the k-th batch of the run (k from 0, counted from epoch 0) learns with
// lr * (k+1)/N for k < N.
static double warmup(const trainer *t, int epoch, int batch, int nbatches) {
    const int N = t->p->lr_warmup_batches;
    int64_t k = (int64_t)epoch * nbatches + batch;
    return k < N ? (double)(k + 1) / N : 1.0;
}

static void lr_change(trainer *t, double lr) {
    double old = t->pos.lr;
    t->pos.lr = lr;
    if (t->cb->on_lr_reduced) t->cb->on_lr_reduced(t->cb->user, old, lr);
}

// Manual steps, looked up before the learning phase; the last entry for a position wins.
static void schedule_steps(trainer *t, int epoch, int batch) {
    const pcn_train_params *p = t->p;
    const pcn_lr_step *hit = NULL;
    for (int i = 0; i < p->n_lr_steps; i++)
        if (p->lr_steps[i].epoch == epoch && p->lr_steps[i].batch == batch) hit = &p->lr_steps[i];
    const double scale = pcn_trainer_lr_scale(p);
    if (hit && hit->lr * scale != t->pos.lr) lr_change(t, hit->lr * scale);
}

double pcn_trainer_lr(trainer *t, int epoch, int batch, int nbatches, int64_t step,
                      int64_t total) {
    const pcn_train_params *p = t->p;
    if (p->lr_schedule == PCN_LR_STEPS) schedule_steps(t, epoch, batch);
    if (p->lr_schedule == PCN_LR_COSINE)
        t->pos.lr = pcn_lr_cosine(p, p->lr_learn * pcn_trainer_lr_scale(p), step, total);
    return t->pos.lr * warmup(t, epoch, batch, nbatches);
}

void pcn_trainer_plateau(trainer *t, double batch_energy) {
    const pcn_train_params *p = t->p;
    if (p->lr_schedule != PCN_LR_PLATEAU) return;
    if (batch_energy < t->pos.plateau_best) {
        t->pos.plateau_best = batch_energy;
        t->pos.plateau_patience = 0;
    } else if (++t->pos.plateau_patience >= p->lr_patience) {
        t->pos.plateau_patience = 0;
        lr_change(t, t->pos.lr * p->lr_decay_factor);
    }
}
