/*
 * train_disc.c — a training batch and a test batch of the discriminative mode (disc.h has
 * the formulas; docs/DISCRIMINATIVE.md the semantics and PCX's differences).
 *
 * A training batch: on_batch_start; the start (forward pass, or random latents); train
 * accuracy scored on the forward pass's outputs, before the batch is learned; T_infer
 * inference steps with the output clamped to the target (with iPC a weight step after
 * each); the energy of the final latents; one optimizer step on the batch-mean weight
 * gradient at them (not with iPC); on_batch_end. Collectives per batch: one sum of the
 * gradient (T_infer with iPC) and one of the energy and counts, plus one per reported
 * step energy.
 *
 * The batch energy (PER_BATCH, and PER_BATCH_PRE_LEARN, equal to it) is that of the final
 * latents before the weight step: an energy after the step would cost a forward pass.
 * A test batch is one forward pass: prediction argmax mu_L, energy 1/2 ||y - mu_L||^2.
 */
#include <math.h>
#include <string.h>

#include "optim.h"
#include "train_impl.h"

typedef struct {
    trainer *t;
    int64_t total;  // optimizer steps of the whole run (the cosine's length)
    int epoch, batch, nbatches;
    bool report;    // step energies go to callbacks or the history
    double lr;      // the last weight step's lr
} disc_run;

static int64_t total_steps(const trainer *t, int nbatches) {
    const pcn_train_params *p = t->p;
    return (int64_t)nbatches * p->num_epochs * (p->ipc ? p->t_infer : 1);
}

// One weight step: the gradient in m->g (this process's rows' sum) summed across processes,
// then the optimizer with scale 1/B at the schedule's lr. Collective.
static pcn_status weight_step(disc_run *r) {
    trainer *t = r->t;
    pcn_status st = t->coll ? pcn_trainer_sum_gradient(t) : PCN_OK;
    if (st != PCN_OK) return st;
    r->lr = pcn_trainer_lr(t, r->epoch, r->batch, r->nbatches, t->pos.opt_steps, r->total);
    st = pcn_optim_apply(t->m, t->p, r->lr, 1.0 / (double)t->gbatch, t->pos.opt_steps);
    t->pos.opt_steps++;
    return st;
}

static pcn_status ipc_step(void *ctx, int step) {
    (void)step;
    return weight_step(ctx);
}

// A step's energy for the callbacks and the history. Collective.
static pcn_status watch(void *ctx, int step, double sumsq) {
    disc_run *r = ctx;
    trainer *t = r->t;
    double energy = sumsq;
    pcn_status st = pcn_trainer_energies(t, &energy, 1);
    if (st != PCN_OK) return st;
    if (t->cb->on_inference_step) t->cb->on_inference_step(t->cb->user, step, energy);
    if (t->p->keep_step_energies && t->h) pcn_history_append(t->h, PCN_HIST_STEP_INFER, energy);
    return PCN_OK;
}

// The outputs (rows, K) at out (backend memory) on the host.
static const float *outputs(trainer *t, const float *out) {
    const pcn_backend_ops *ops = t->m->ops;
    if (!ops->on_device) return out;
    ops->download(t->yhat, out, (size_t)t->count * t->K * sizeof(float));
    return t->yhat;
}

// A random start (the forward start is the phase's own), scoring the forward pass first
// when train accuracy is due: counts = (correct, scored).
static void start_random(trainer *t, int epoch, int64_t pos, bool score, double counts[2]) {
    const pcn_train_params *p = t->p;
    pcn_disc *w = t->disc;
    w->rows = (int)t->count;
    if (score) {
        pcn_disc_forward(w, t->m, t->dx, (int)t->count);
        counts[0] = pcn_trainer_correct(t, outputs(t, w->a[t->m->L]));
        counts[1] = (double)t->count;
    }
    const pcn_latent_key key = {p->seed, PCN_STREAM_TRAIN, (uint32_t)epoch, pos + t->lo};
    pcn_disc_random(w, t->m, t->dx, (int)t->count, &key, (float)p->latent_init_std);
}

pcn_status pcn_trainer_disc_batch(trainer *t, int epoch, int batch, int nbatches, int64_t pos) {
    const pcn_train_params *p = t->p;
    const pcn_callbacks *cb = t->cb;
    const int64_t gb = t->gbatch;
    if (cb->on_batch_start) cb->on_batch_start(cb->user, batch, nbatches);
    const double t0 = pcn_now();
    const bool score = p->task == PCN_TASK_CLASSIFICATION && p->train_accuracy_every > 0 &&
                       batch % p->train_accuracy_every == 0;
    double v[3] = {0.0, 0.0, 0.0}; // sum e^2, correct, scored
    const bool forward = p->latent_start == PCN_LATENT_FORWARD;
    t->disc->rows = (int)t->count;
    if (!forward) start_random(t, epoch, pos, score, v + 1);
    disc_run r = {t, total_steps(t, nbatches), epoch, batch, nbatches,
                  cb->on_inference_step || (p->keep_step_energies && t->h), t->pos.lr};
    pcn_disc_phase ph = {.m = t->m, .w = t->disc, .x0 = t->dx, .y = t->dy,
                         .forward = forward, .out0 = forward && score ? t->disc->out : NULL,
                         .steps = p->t_infer, .lr = (float)p->lr_infer,
                         .beta = (float)p->infer_momentum, .ipc = p->ipc, .gradient = !p->ipc,
                         .sum_from = r.report ? 0 : p->t_infer, .watch = watch,
                         .weights = ipc_step, .ctx = &r};
    pcn_status st = t->m->ops->disc_phase(t->phases, &ph);
    if (st != PCN_OK) return st;
    if (ph.out0) v[1] = pcn_trainer_correct(t, outputs(t, ph.out0)), v[2] = (double)t->count;
    const double t1 = pcn_now();
    v[0] = ph.final_sq;
    if (!p->ipc && (st = weight_step(&r)) != PCN_OK) return st;
    const double t2 = pcn_now();
    if ((st = pcn_trainer_sum(t, v, 3)) != PCN_OK) return st;
    double energy = 0.5 * v[0] / (double)gb;
    if (!isfinite(energy))
        return pcn_set_error(PCN_EDIVERGED, "energy became %g: training diverged; lower "
                             "lr_infer or lr_learn", energy);
    if (t->h) {
        pcn_history_append(t->h, PCN_HIST_INFER_STEPS, p->t_infer);
        pcn_history_append(t->h, PCN_HIST_PER_BATCH_PRE_LEARN, energy);
        pcn_history_append(t->h, PCN_HIST_PER_BATCH, energy);
    }
    pcn_epoch_sums *sums = &t->pos.sums;
    sums->energy += energy * gb, sums->pre_learn += energy * gb;
    pcn_trainer_plateau(t, energy);
    if (score) {
        sums->correct += v[1], sums->scored += v[2];
        if (t->h) pcn_history_set_running_accuracy(t->h, sums->correct / sums->scored);
    }
    t->pos.seconds.inference += t1 - t0;
    t->pos.seconds.learning += t2 - t1;
    t->pos.samples += gb;
    if (cb->on_batch_end) cb->on_batch_end(cb->user, batch, energy, energy);
    return PCN_OK;
}

pcn_status pcn_trainer_disc_test(trainer *t, int batch, double sums[4], float *yhat) {
    (void)batch;
    const int K = t->K;
    pcn_disc_forward(t->disc, t->m, t->dx, (int)t->count);
    const float *out = outputs(t, t->disc->a[t->m->L]);
    double local[4] = {0, 0, 0, 0}; // local[0]: sum ||y - mu_L||^2
    for (size_t i = 0; i < (size_t)t->count * K; i++)
        local[0] += ((double)t->y[i] - out[i]) * (t->y[i] - out[i]);
    pcn_trainer_score(t, out, local, yhat);
    pcn_status st = pcn_trainer_sum(t, local, 4);
    sums[0] += 0.5 * local[0];
    for (int k = 1; k < 4; k++) sums[k] += local[k];
    return st;
}
