/*
 * train.c — training and test loops (pcn-torch train_pcn, test_pcn), their configuration
 * and its validation.
 *
 * The global batch is the unit of the algorithm: with collectives, this process takes a
 * contiguous, balanced slice of every global batch (pcn_train_shard), and every sum over the
 * batch (energies, gradients, correct counts) is made global before it is used, so all
 * processes take the same decisions (early stop, schedule, divergence). Every buffer is
 * allocated once before the epoch loop; nothing is allocated inside the step loops.
 *
 * On a GPU (the model's backend is on the device) the batch's x and Y are copied to device
 * buffers once per batch, repeated inference steps replay a recorded graph, and the host
 * waits for the device only where a value is needed: step energies only when a callback,
 * the history or early stopping wants them, otherwise the batch energies before and after
 * learning and the outputs that are scored.
 *
 * Order inside a training batch, as pcn-torch 1.1.0:
 *   on_batch_start; T_infer supervised inference steps (early stop on |E_t - E_{t-1}|);
 *   manual lr step (on_lr_reduced); pre-learn energy; T_learn learning steps; batch energy;
 *   reduce-on-plateau (earlier pcn-torch revisions); train-accuracy free inference with
 *   fresh latents (T_infer_test steps, no early stop); on_batch_end.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "optim.h"
#include "train_impl.h"

// ----------------------------------------------------------------------------------------
// Collectives (a single process when coll is NULL)
// ----------------------------------------------------------------------------------------

void pcn_train_shard(int64_t global, int rank, int size, int64_t *lo, int64_t *count) {
    int64_t base = global / size, extra = global % size;
    *count = base + (rank < extra ? 1 : 0);
    *lo = rank * base + (rank < extra ? rank : extra);
}

static pcn_status gsum64(const pcn_collectives *c, double *v, int n) {
    return c ? c->sum_f64(c->ctx, v, n) : PCN_OK;
}

pcn_status pcn_trainer_sum(const trainer *t, double *v, int n) { return gsum64(t->coll, v, n); }

static pcn_status agree(const pcn_collectives *c, pcn_status st) {
    return c ? c->agree(c->ctx, st) : st;
}

// ----------------------------------------------------------------------------------------
// The trainer's workspace
// ----------------------------------------------------------------------------------------


static pcn_status check_shapes(const pcn_model *m, const pcn_data *d, pcn_task task,
                               const char *what) {
    if (!d || !d->read) return pcn_set_error(PCN_EINVAL, "%s data: no data source", what);
    if (d->n < 1) return pcn_set_error(PCN_EDATA, "%s data has no samples", what);
    if (d->x_dim != m->dims[0])
        return pcn_set_error(PCN_EDATA,
                             "%s data has %d features per sample but dims[0] is %d", what,
                             d->x_dim, m->dims[0]);
    if (task == PCN_TASK_REGRESSION && d->y_dim != m->K)
        return pcn_set_error(PCN_EDATA,
                             "%s data: regression needs targets of width output_dim = %d, the "
                             "data has %s%d",
                             what, m->K, d->y_dim ? "width " : "integer labels, y_dim ",
                             d->y_dim);
    if (task == PCN_TASK_CLASSIFICATION && d->y_dim != 0 && d->y_dim != m->K)
        return pcn_set_error(PCN_EDATA,
                             "%s data: classification needs integer labels or one-hot targets "
                             "of width output_dim = %d, the data has width %d",
                             what, m->K, d->y_dim);
    return PCN_OK;
}

// pcn-torch's update w += (lr/B) H^T X: every learning path can take it; other optimizers
// and weight decay step the per-step gradient.
static bool plain_update(const pcn_train_params *p) {
    return p->optimizer == PCN_OPT_SGD && p->weight_decay == 0.0;
}

static void trainer_free(trainer *t) {
    pcn_state_free(t->s);
    free(t->perm);
    free(t->rows);
    free(t->next_rows);
    if (t->dx != t->x) t->m->ops->release(t->dx);
    if (t->dy != t->y) t->m->ops->release(t->dy);
    pcn_free(t->yhat);
    pcn_free(t->x);
    pcn_free(t->y);
    free(t->labels);
    pcn_free(t->targets);
    if (t->stage) t->m->ops->host_free(t->stage);
    if (t->phases) t->m->ops->phase_free(t->phases);
    pcn_gram_free(t->gram);
    pcn_disc_free(t->disc);
}

static pcn_status trainer_init(trainer *t, pcn_model *m, const pcn_data *d,
                               const pcn_train_params *p, int batch,
                               const pcn_collectives *coll) {
    memset(t, 0, sizeof *t);
    t->m = m, t->data = d, t->p = p, t->coll = coll, t->cb = &p->callbacks, t->K = m->K;
    int64_t gmax = batch < d->n ? batch : d->n, lo, local;
    pcn_train_shard(gmax, coll ? coll->rank : 0, coll ? coll->size : 1, &lo, &local);
    int64_t cap = local > 0 ? local : 1;
    t->s = pcn_state_init(m, (int)cap);
    t->perm = malloc((size_t)d->n * sizeof *t->perm);
    t->rows = malloc((size_t)cap * sizeof *t->rows);
    t->next_rows = malloc((size_t)cap * sizeof *t->next_rows);
    t->x = pcn_alloc((size_t)cap * m->dims[0] * sizeof(float));
    t->y = pcn_alloc((size_t)cap * m->K * sizeof(float));
    t->labels = malloc((size_t)cap * sizeof *t->labels);
    t->targets = pcn_alloc((size_t)cap * (d->y_dim > 0 ? d->y_dim : 1) * sizeof(float));
    const pcn_backend_ops *ops = m->ops;
    // Across ranks batch space gathers through host buffers: device models there keep the
    // per-step path (its gradient sum stages through the host or goes through NCCL). A
    // backend that splits output units takes them across ranks too: the batch is gathered
    // once per phase, and every rank steps its units over all of it.
    const bool disc = m->dir == PCN_DIR_DISCRIMINATIVE;
    const bool one = !coll || coll->size == 1, gram = (one || !ops->on_device) && !disc &&
                                                     p->learn_path != PCN_LEARN_PLAIN &&
                                                     plain_update(p);
    const bool by_units = gram && !one && ops->splits_units && p->split_phases;
    const pcn_phase_params phases = {(int)(by_units ? gmax : cap), p->split_phases,
                                     (one && gram) || by_units};
    t->phases = ops->phase_init(m, &phases);
    t->dx = ops->on_device ? ops->alloc((size_t)cap * m->dims[0] * sizeof(float)) : t->x;
    t->dy = ops->on_device ? ops->alloc((size_t)cap * m->K * sizeof(float)) : t->y;
    t->yhat = ops->on_device ? pcn_alloc((size_t)cap * m->K * sizeof(float)) : NULL;
    const bool stage = ops->on_device && !one && !coll->sum_f32_device;
    // The staging buffer is the backend's host memory (pinned on a GPU): copies through it
    // are asynchronous, without a bounce through pageable memory inside the driver.
    t->stage = stage ? ops->host_alloc(m->woff[m->L + 1] * sizeof(float)) : NULL;
    if (!t->s || !t->perm || !t->rows || !t->next_rows || !t->x || !t->y || !t->labels ||
        !t->targets || !t->phases || !t->dx || !t->dy || (ops->on_device && !t->yhat) ||
        (stage && !t->stage) || (disc && !(t->disc = pcn_disc_init(m, (int)cap)))) {
        trainer_free(t);
        return pcn_set_error(PCN_ENOMEM, "out of memory allocating the trainer's buffers");
    }
    for (int64_t i = 0; i < d->n; i++) t->perm[i] = i;
    t->cost = (pcn_gram_cost){one ? 1 : coll->size, p->learn_flops_per_byte, by_units};
    if (gram && !(t->gram = pcn_gram_init(m, (int)cap, (int)gmax, coll, by_units))) {
        trainer_free(t);
        return pcn_set_error(PCN_ENOMEM, "out of memory allocating the batch-space learner");
    }
    return PCN_OK;
}

// Every rank plans the learning phase with rank 0's flops per byte (settings that differ
// between ranks must not split the plan). Collective.
static pcn_status agree_costs(trainer *t) {
    double v = !t->coll || t->coll->rank == 0 ? t->cost.flops_per_byte : 0.0;
    pcn_status st = gsum64(t->coll, &v, 1);
    t->cost.flops_per_byte = v;
    return st;
}

// Fisher-Yates on Philox draws of (seed, epoch): the same order on every process.
static void shuffle(int64_t *perm, int64_t n, uint64_t seed, int epoch) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t r = pcn_rng_u64(seed, (uint32_t)epoch, PCN_RNG_SHUFFLE, 0, (uint64_t)i);
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
}

// Reads this process's slice of the global batch at epoch position pos, validates it and
// builds Y. Collective: every process returns the same status.
static pcn_status read_batch(trainer *t, int64_t pos, int64_t gbatch, pcn_task task,
                             const char *what) {
    const pcn_data *d = t->data;
    const int D = t->m->dims[0], K = t->K;
    t->gbatch = gbatch;
    pcn_train_shard(gbatch, t->coll ? t->coll->rank : 0, t->coll ? t->coll->size : 1, &t->lo,
              &t->count);
    for (int64_t i = 0; i < t->count; i++) t->rows[i] = t->perm[pos + t->lo + i];
    // Every process calls read, even with no rows: a source may read collectively.
    double t0 = pcn_now();
    pcn_status st = d->read(d->ctx, t->rows, (int)t->count, t->x, t->labels, t->targets);
    t->pos.seconds.data += pcn_now() - t0;
    for (int64_t i = 0; st == PCN_OK && i < t->count; i++) {
        const float *xi = t->x + (size_t)i * D;
        float *yi = t->y + (size_t)i * K;
        for (int j = 0; j < D; j++)
            if (!isfinite(xi[j])) {
                st = pcn_set_error(PCN_EDATA, "%s data: non-finite value (%g) at row %lld, "
                                   "feature %d", what, xi[j], (long long)t->rows[i], j);
                break;
            }
        if (st != PCN_OK) break;
        if (d->y_dim == 0) {
            int32_t c = t->labels[i];
            if (c < 0 || c >= K) {
                st = pcn_set_error(PCN_EDATA, "%s data: label %d at row %lld is outside "
                                   "[0, %d)", what, (int)c, (long long)t->rows[i], K);
                break;
            }
            memset(yi, 0, (size_t)K * sizeof(float));
            yi[c] = 1.0f;
        } else {
            const float *ti = t->targets + (size_t)i * d->y_dim;
            for (int j = 0; j < K; j++) {
                if (!isfinite(ti[j])) {
                    st = pcn_set_error(PCN_EDATA, "%s data: non-finite target (%g) at row "
                                       "%lld, output %d", what, ti[j], (long long)t->rows[i], j);
                    break;
                }
                yi[j] = ti[j];
            }
            if (st != PCN_OK) break;
            if (task == PCN_TASK_CLASSIFICATION) { // pre-encoded one-hot: label = argmax
                int best = 0;
                for (int j = 1; j < K; j++)
                    if (ti[j] > ti[best]) best = j;
                t->labels[i] = best;
            }
        }
    }
    if (st == PCN_OK) {
        pcn_state_set_batch(t->s, (int)t->count);
        t->m->ops->upload(t->dx, t->x, (size_t)t->count * D * sizeof(float));
        t->m->ops->upload(t->dy, t->y, (size_t)t->count * K * sizeof(float));
    }
    return agree(t->coll, st);
}

// Tells the source which rows this process's slice of the next global batch (at epoch
// position pos, gbatch rows, same order) will need, so it can fetch them meanwhile. Local.
static void prefetch_next(trainer *t, int64_t pos, int64_t gbatch) {
    const pcn_data *d = t->data;
    if (!d->prefetch || pos >= d->n) return;
    int64_t lo, count;
    pcn_train_shard(gbatch, t->coll ? t->coll->rank : 0, t->coll ? t->coll->size : 1, &lo, &count);
    for (int64_t i = 0; i < count; i++) t->next_rows[i] = t->perm[pos + lo + i];
    d->prefetch(d->ctx, t->next_rows, (int)count);
}

static void init_latents(trainer *t, pcn_stream stream, int epoch, int batch, int64_t pos) {
    const pcn_train_params *p = t->p;
    int64_t first = pos + t->lo;
    if (p->latent_init) {
        pcn_latent_request req = {stream, epoch, batch, first};
        p->latent_init(p->latent_user, t->s, &req);
        pcn_state_push_latents(t->s); // a device state's latents, from the host
        t->s->latents_ready = true;
    } else {
        pcn_latent_key key = {p->seed, stream, (uint32_t)epoch, first};
        pcn_init_latents(t->s, &key);
    }
}

// Turns a local sum of squares into the global batch-mean energy. Collective.
pcn_status pcn_trainer_energies(trainer *t, double *v, int n) {
    const double t0 = pcn_now();
    pcn_status st = gsum64(t->coll, v, n);
    t->pos.seconds.collectives += pcn_now() - t0;
    for (int i = 0; i < n; i++) {
        v[i] = 0.5 * v[i] / (double)t->gbatch;
        if (st == PCN_OK && !isfinite(v[i]))
            st = pcn_set_error(PCN_EDIVERGED, "energy became %g: training diverged; lower "
                               "lr_infer or lr_learn", v[i]);
    }
    return st;
}

static pcn_status energy_of(trainer *t, double local_sq, double *energy) {
    *energy = local_sq;
    return pcn_trainer_energies(t, energy, 1);
}

// ----------------------------------------------------------------------------------------
// Phases
// ----------------------------------------------------------------------------------------

// Up to t_steps inference steps, with the target (y) or without (NULL). Early stopping as
// pcn-torch: after a step's update, stop when the window holds >= 2 energies and the last
// two differ by less than the threshold. Reports each step's energy when report is set.
typedef struct {
    bool report, stop_on; // report each energy; early stopping is on
    double prev;          // the previous step's energy
    int filled;           // energies seen, up to the window
} infer_watch;

typedef struct {
    trainer *t;
    infer_watch w;
} infer_run;

// After a step run with its energy wanted (ctx: infer_run): the global energy, its reports,
// and whether early stopping ends the phase (*stop). Collective.
static pcn_status watch_step(void *ctx, int step, double local_sq, bool *stop) {
    trainer *t = ((infer_run *)ctx)->t;
    infer_watch *w = &((infer_run *)ctx)->w;
    const pcn_train_params *p = t->p;
    double energy;
    pcn_status st = energy_of(t, local_sq, &energy);
    if (st != PCN_OK) return st;
    if (w->report) {
        if (t->cb->on_inference_step) t->cb->on_inference_step(t->cb->user, step, energy);
        if (p->keep_step_energies && t->h) pcn_history_append(t->h, PCN_HIST_STEP_INFER, energy);
    }
    bool converged = w->filled >= 1 && fabs(energy - w->prev) < p->early_stop_threshold;
    w->prev = energy;
    w->filled = w->filled < p->energy_window_size ? w->filled + 1 : p->energy_window_size;
    *stop = w->stop_on && converged;
    return PCN_OK;
}

static pcn_precision inference_precision(const pcn_train_params *p) {
    return p->use_mixed_precision ? p->mixed_precision : PCN_PRECISION_FP32;
}

static pcn_status infer(trainer *t, const float *y, int t_steps, bool early_stop, bool report,
                        int *steps_taken) {
    const pcn_train_params *p = t->p;
    infer_run r = {t, {0}};
    r.w.stop_on = early_stop && p->early_stop_threshold > 0.0 && p->energy_window_size >= 2;
    r.w.report = report && (t->cb->on_inference_step || (p->keep_step_energies && t->h));
    pcn_infer_phase ph = {t->m, t->s, t->dx, y, t_steps, (float)p->lr_infer,
                          inference_precision(p), r.w.report || r.w.stop_on ? 0 : t_steps,
                          watch_step, &r, 0};
    t->m->ops->set_precision(ph.precision);
    pcn_status st = t->m->ops->infer_phase(t->phases, &ph);
    *steps_taken = ph.taken;
    return st;
}

// The energy of the current snapshot with the target (no update), in float32. Collective.
static pcn_status snapshot_energy(trainer *t, double *energy) {
    t->m->ops->set_precision(PCN_PRECISION_FP32);
    double sq = pcn_step_errors(t->m, t->s, t->dx, t->dy, 0.0f, false, true);
    return energy_of(t, pcn_step_sum(t->m, sq), energy);
}

// One learning step's energy: step 0's is the batch energy before learning (its snapshot
// is the one inference left, with the weights not yet moved); every step's goes to the
// callbacks and the history when they want it. Collective.
typedef struct {
    trainer *t;
    bool every;  // callbacks or history want each step
    double pre;  // step 0's energy
    double pre_sq; // step 0's local sum of squares (batch-space phases, every false)
} learn_watch;

// Step 0 alone reported (no callback or history wants each step): its sum waits for the
// phase's end, where one collective sums it with the energy after learning.
static pcn_status keep_pre(void *ctx, int step, double sumsq) {
    (void)step;
    ((learn_watch *)ctx)->pre_sq = sumsq;
    return PCN_OK;
}

static pcn_status watch_learning(void *ctx, int step, double sumsq) {
    learn_watch *w = ctx;
    trainer *t = w->t;
    double energy;
    pcn_status st = energy_of(t, sumsq, &energy);
    if (st != PCN_OK) return st;
    if (step == 0) w->pre = energy;
    if (!w->every) return PCN_OK;
    if (t->cb->on_learning_step) t->cb->on_learning_step(t->cb->user, step, energy);
    if (t->p->keep_step_energies && t->h) pcn_history_append(t->h, PCN_HIST_STEP_LEARN, energy);
    return PCN_OK;
}

// Whether the gradient's sums go through the GPU's own collectives, which only queue the
// sum: the device times them (timer_begin/timer_end) and device_seconds collects the time.
static bool device_sums(const trainer *t) {
    return t->coll && t->m->ops->on_device && t->coll->sum_f32_device;
}

// Adds the device time of the collectives queued since the last call to
// pos.seconds.collectives (waits for them: call it where the batch waits anyway). Local.
static void device_seconds(trainer *t) {
    if (device_sums(t)) t->pos.seconds.collectives += t->m->ops->timer_read();
}

// The gradient's global sum: a host model's directly; a device model's through the GPU's
// own sums (NCCL; also on one rank, so that path always runs; timed on the device) or
// staged through host memory. Collective.
pcn_status pcn_trainer_sum_gradient(trainer *t) {
    const pcn_collectives *c = t->coll;
    const pcn_backend_ops *ops = t->m->ops;
    float *g = t->m->g;
    const size_t n = t->m->woff[t->m->L + 1];
    const double t0 = pcn_now();
    pcn_status st = PCN_OK;
    if (!ops->on_device) {
        st = c->sum_f32(c->ctx, g, n);
    } else if (c->sum_f32_device) { // queued: the clock here would time the queuing alone
        ops->timer_begin();
        st = c->sum_f32_device(c->ctx, g, n);
        ops->timer_end();
        return st;
    } else if (t->stage) {
        ops->download(t->stage, g, n * sizeof(float)); // waits: the sum reads the copy
        st = c->sum_f32(c->ctx, t->stage, n);
        ops->upload(g, t->stage, n * sizeof(float));
    }
    t->pos.seconds.collectives += pcn_now() - t0;
    return st;
}

// The per-step learning path: t_steps steps, the first `reported` with their energies.
// On a device at most PCN_STEPS_IN_FLIGHT steps are queued at once (backend.h), so that
// a wait, which polls, comes at least every few steps. Collective.
static pcn_status learn_steps(trainer *t, learn_watch *w, int t_steps, int reported, double lr,
                              float alpha) {
    const pcn_train_params *p = t->p;
    const pcn_backend_ops *ops = t->m->ops;
    pcn_status st = PCN_OK;
    for (int step = 0; step < t_steps && st == PCN_OK; step++) {
        const bool want = step < reported;
        if ((st = pcn_backend_step_wait(ops, step)) != PCN_OK) break;
        double sq = pcn_step_errors(t->m, t->s, t->dx, t->dy, 0.0f, false, want);
        if (want && (st = watch_learning(w, step, pcn_step_sum(t->m, sq))) != PCN_OK) break;
        pcn_step_gradient(t->m, t->s, true);
        if (t->coll) st = pcn_trainer_sum_gradient(t);
        if (st == PCN_OK && plain_update(p)) pcn_step_apply(t->m, alpha);
        else if (st == PCN_OK) // g = -B times the gradient of the batch-mean energy
            st = pcn_optim_apply(t->m, p, lr, -1.0 / (double)t->gbatch, t->pos.opt_steps++);
        pcn_backend_step_mark(ops, step);
    }
    return st;
}

// The learning phase in float32; *pre and *post get the batch energies before and after
// it (after a batch-space phase, from the preactivations it tracked for its batch-space
// layers: equal to a recomputation up to rounding). Other step energies are computed only
// when a callback or the history wants them (a diverging step still shows in the batch
// energy after learning). Collective.
static pcn_status learn(trainer *t, int t_steps, double lr, double *pre, double *post) {
    const pcn_train_params *p = t->p;
    const float alpha = (float)(lr / (double)t->gbatch);
    learn_watch w = {t, t->cb->on_learning_step || (p->keep_step_energies && t->h), 0.0, 0.0};
    const int reported = w.every ? t_steps : 1;
    bool use[PCN_MAX_LAYERS + 1], any = false;
    pcn_status st = PCN_OK;
    t->m->ops->set_precision(PCN_PRECISION_FP32);
    if (t->gram) { // the batch-space path where it is cheaper (gram.c); split by units
        pcn_gram_plan(t->m, (int)t->gbatch, t_steps, &t->cost, p->learn_path, use);
        if ((st = pcn_gram_reserve(t->gram, t->m, use)) != PCN_OK) return st;
        any = t->cost.by_units; // across ranks, gram.c runs every plan (no per-step sums)
        for (int l = 0; l <= t->m->L; l++) any |= use[l];
    }
    if (any) {
        double after = 0.0;
        pcn_gram_phase ph = {.m = t->m, .s = t->s, .x = t->dx, .y = t->dy,
                             .global = (int)t->gbatch, .t_steps = t_steps,
                             .report_steps = reported, .alpha = alpha, .use = use,
                             .report = w.every ? watch_learning : keep_pre, .ctx = &w,
                             .comm_seconds = &t->pos.seconds.collectives, .after_sq = &after};
        if ((st = pcn_gram_learn(t->gram, t->phases, &ph)) != PCN_OK) return st;
        if (w.every) {
            *pre = w.pre;
            return energy_of(t, after, post);
        }
        double e[2] = {w.pre_sq, after}; // before and after learning, in one sum
        st = pcn_trainer_energies(t, e, 2);
        *pre = e[0], *post = e[1];
        return st;
    }
    if ((st = learn_steps(t, &w, t_steps, reported, lr, alpha)) != PCN_OK) return st;
    *pre = w.pre;
    return snapshot_energy(t, post);
}

double pcn_trainer_correct(const trainer *t, const float *out) {
    double n = 0.0;
    for (int64_t i = 0; i < t->count; i++)
        n += pcn_trainer_argmax(out + (size_t)i * t->K, t->K) == t->labels[i];
    return n;
}

int pcn_trainer_argmax(const float *v, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

// Whether label is among the k largest outputs (ties broken towards the lower index).
bool pcn_trainer_in_top_k(const float *v, int n, int label, int k) {
    int better = 0;
    for (int j = 0; j < n; j++)
        if (v[j] > v[label] || (v[j] == v[label] && j < label)) better++;
    return better < k;
}

// ----------------------------------------------------------------------------------------
// Training
// ----------------------------------------------------------------------------------------

// The outputs of the state's rows on the host.
static const float *host_outputs(trainer *t) {
    pcn_step_predict(t->m, t->s);
    if (!t->m->ops->on_device) return t->s->yhat;
    t->m->ops->download(t->yhat, t->s->yhat, (size_t)t->count * t->K * sizeof(float));
    return t->yhat;
}

// Free inference from fresh latents, then argmax vs label; adds the global counts to sums.
static pcn_status train_accuracy(trainer *t, int epoch, int batch, int64_t pos,
                                 pcn_epoch_sums *sums) {
    const pcn_train_params *p = t->p;
    int steps;
    init_latents(t, PCN_STREAM_ACCURACY, epoch, batch, pos);
    pcn_status st = infer(t, NULL, p->t_infer_test ? p->t_infer_test : 10 * p->t_infer, false,
                          false, &steps);
    if (st != PCN_OK) return st;
    double counts[2] = {pcn_trainer_correct(t, host_outputs(t)), (double)t->count};
    st = gsum64(t->coll, counts, 2);
    sums->correct += counts[0];
    sums->scored += counts[1];
    return st;
}

static pcn_status train_batch(trainer *t, int epoch, int batch, int nbatches, int64_t pos) {
    const pcn_train_params *p = t->p;
    const pcn_callbacks *cb = t->cb;
    pcn_epoch_sums *sums = &t->pos.sums;
    pcn_train_seconds *sec = &t->pos.seconds;
    int64_t gb = t->gbatch;
    if (cb->on_batch_start) cb->on_batch_start(cb->user, batch, nbatches);
    double t0 = pcn_now();
    init_latents(t, PCN_STREAM_TRAIN, epoch, batch, pos);
    int steps;
    pcn_status st = infer(t, t->dy, p->t_infer, true, true, &steps);
    if (st != PCN_OK) return st;
    if (t->h) pcn_history_append(t->h, PCN_HIST_INFER_STEPS, steps);
    const int64_t at = (int64_t)epoch * nbatches + batch; // the cosine runs per batch here
    double lr = pcn_trainer_lr(t, epoch, batch, nbatches, at, (int64_t)nbatches * p->num_epochs);
    t->m->ops->sync();
    double pre, post, t1 = pcn_now();
    if ((st = learn(t, p->t_learn ? p->t_learn : (int)gb, lr, &pre, &post)) != PCN_OK)
        return st; // (the energies wait for the device)
    double t2 = pcn_now();
    if (t->h) {
        pcn_history_append(t->h, PCN_HIST_PER_BATCH_PRE_LEARN, pre);
        pcn_history_append(t->h, PCN_HIST_PER_BATCH, post);
    }
    sums->energy += post * gb;
    sums->pre_learn += pre * gb;
    pcn_trainer_plateau(t, post);
    if (p->task == PCN_TASK_CLASSIFICATION && p->train_accuracy_every > 0 &&
        batch % p->train_accuracy_every == 0) {
        if ((st = train_accuracy(t, epoch, batch, pos, sums)) != PCN_OK) return st;
        if (t->h) pcn_history_set_running_accuracy(t->h, sums->correct / sums->scored);
    }
    sec->inference += (t1 - t0) + (pcn_now() - t2); // supervised and train-accuracy inference
    sec->learning += t2 - t1;
    t->pos.samples += gb;
    if (cb->on_batch_end) cb->on_batch_end(cb->user, batch, post, pre);
    return PCN_OK;
}

static void end_epoch(trainer *t, int epoch) {
    const pcn_epoch_sums *sums = &t->pos.sums;
    const double n = (double)t->data->n;
    if (t->h) {
        pcn_history_append(t->h, PCN_HIST_PER_EPOCH, sums->energy / n);
        pcn_history_append(t->h, PCN_HIST_PER_EPOCH_PRE_LEARN, sums->pre_learn / n);
        pcn_history_append(t->h, PCN_HIST_TRAIN_LOSS, sums->energy / n);
        if (sums->scored > 0)
            pcn_history_append(t->h, PCN_HIST_TRAIN_ACCURACY, sums->correct / sums->scored);
        pcn_history_append(t->h, PCN_HIST_LR_PER_EPOCH, t->pos.lr);
    }
    if (t->cb->on_epoch_end) t->cb->on_epoch_end(t->cb->user, epoch, t->h);
}

// After a batch (and, after an epoch's last batch, the epoch's end): the hook sees the
// position of the next batch.
static pcn_status after_batch(trainer *t, bool *stop) {
    const pcn_train_params *p = t->p;
    if (!p->batch_hook) return PCN_OK;
    // The hook sees the current weights through the accessors, which copy them back from a
    // device only if it reads them (a checkpoint), not after every batch.
    pcn_model_host_stale(t->m);
    return p->batch_hook(p->batch_hook_user, t->m, t->h, &t->pos, stop);
}

static pcn_status train_epochs(trainer *t) {
    const pcn_train_params *p = t->p;
    const pcn_callbacks *cb = t->cb;
    const int64_t n = t->data->n, B = p->batch_size;
    const int nbatches = (int)((n + B - 1) / B);
    if (cb->on_train_start) cb->on_train_start(cb->user, p, t->h);
    for (int epoch = t->pos.epoch; epoch < p->num_epochs; epoch++) {
        if (cb->on_epoch_start) cb->on_epoch_start(cb->user, epoch, p->num_epochs);
        if (p->shuffle) shuffle(t->perm, n, p->seed, epoch);
        const pcn_epoch_sums *sums = &t->pos.sums;
        if (t->h)
            pcn_history_set_running_accuracy(t->h,
                                             sums->scored > 0 ? sums->correct / sums->scored : 0.0);
        for (int batch = t->pos.batch; batch < nbatches; batch++) {
            int64_t pos = (int64_t)batch * B, gb = n - pos < B ? n - pos : B;
            pcn_status st = read_batch(t, pos, gb, p->task, "training");
            if (st == PCN_OK) prefetch_next(t, pos + B, n - pos - B < B ? n - pos - B : B);
            if (st == PCN_OK)
                st = t->disc ? pcn_trainer_disc_batch(t, epoch, batch, nbatches, pos)
                             : train_batch(t, epoch, batch, nbatches, pos);
            if (st != PCN_OK) return st;
            device_seconds(t); // a generative batch waited already (its energies)
            t->pos.batch = batch + 1;
            if (batch + 1 == nbatches) {
                end_epoch(t, epoch);
                t->pos.epoch = epoch + 1, t->pos.batch = 0;
                memset(&t->pos.sums, 0, sizeof t->pos.sums);
            }
            bool stop = false;
            if ((st = after_batch(t, &stop)) != PCN_OK) return st;
            if (stop) return PCN_STOPPED;
        }
    }
    if (cb->on_train_end) cb->on_train_end(cb->user, t->h);
    return PCN_OK;
}

static pcn_status check_resume(const pcn_train_params *p, int64_t n) {
    const pcn_train_position *r = p->resume;
    if (!r) return PCN_OK;
    int nbatches = (int)((n + p->batch_size - 1) / p->batch_size);
    if (r->epoch < 0 || r->batch < 0 || r->batch >= nbatches)
        return pcn_set_error(PCN_EINVAL, "resume position epoch %d batch %d is outside the run "
                             "(%d batches per epoch)", r->epoch, r->batch, nbatches);
    if (!(isfinite(r->lr) && r->lr > 0.0))
        return pcn_set_error(PCN_EINVAL, "resume lr %g is not > 0", r->lr);
    return PCN_OK;
}

static pcn_status check_run(const pcn_model *m, const pcn_data *d, const pcn_train_params *p,
                            const char *what) {
    if (!m) return pcn_set_error(PCN_EINVAL, "model is NULL");
    pcn_status st = pcn_train_params_validate(p);
    if (st != PCN_OK) return st;
    if (p->task != m->mode)
        return pcn_set_error(PCN_EINVAL, "task %s differs from the model's mode %s",
                             pcn_task_name(p->task), pcn_task_name(m->mode));
    const bool disc = m->dir == PCN_DIR_DISCRIMINATIVE;
    if (disc && p->early_stop_threshold > 0.0)
        return pcn_set_error(PCN_EINVAL, "early stopping (early_stop_threshold %g) is a "
                             "generative-mode option: discriminative inference runs exactly "
                             "t_infer steps", p->early_stop_threshold);
    if (!disc && (p->ipc || p->infer_momentum != 0.0 || p->latent_start != PCN_LATENT_FORWARD))
        return pcn_set_error(PCN_EINVAL, "ipc, infer_momentum and latent_start are "
                             "discriminative-mode options; this model is generative");
    return check_shapes(m, d, p->task, what);
}

pcn_status pcn_train_sharded(pcn_model *m, const pcn_data *d, const pcn_train_params *p,
                          pcn_history *h, const pcn_collectives *coll) {
    pcn_status st = check_run(m, d, p, "training");
    if (st == PCN_OK) st = check_resume(p, d->n);
    st = agree(coll, st);
    if (st != PCN_OK) return st;
    trainer t;
    // A history of our own keeps the running accuracy when the caller passes none.
    pcn_history *own = h ? NULL : pcn_history_init();
    st = trainer_init(&t, m, d, p, p->batch_size, coll);
    st = agree(coll, st);
    if (st == PCN_OK) st = agree_costs(&t);
    if (st == PCN_OK) {
        t.h = h ? h : own;
        if (p->resume) {
            t.pos = *p->resume;
            t.pos.samples = 0;
            t.pos.seconds = (pcn_train_seconds){0};
        } else {
            t.pos = (pcn_train_position){.lr = p->lr_learn * pcn_trainer_lr_scale(p),
                                         .plateau_best = INFINITY};
        }
        pcn_model_push(m);
        if (device_sums(&t)) (void)m->ops->timer_read(); // forget an earlier run's pairs
        st = train_epochs(&t);
        pcn_model_pull(m);
        trainer_free(&t);
    }
    pcn_history_free(own);
    return st;
}

pcn_status pcn_train(pcn_model *m, const pcn_data *d, const pcn_train_params *p,
                     pcn_history *h) {
    return pcn_train_sharded(m, d, p, h, NULL);
}

// ----------------------------------------------------------------------------------------
// Testing
// ----------------------------------------------------------------------------------------

void pcn_trainer_score(trainer *t, const float *out, double local[4], float *yhat) {
    const pcn_train_params *p = t->p;
    const int K = t->K;
    for (int64_t i = 0; i < t->count; i++) {
        const float *yh = out + (size_t)i * K, *yi = t->y + (size_t)i * K;
        if (p->task == PCN_TASK_CLASSIFICATION) {
            const int pred = pcn_trainer_argmax(yh, K);
            local[1] += pred == t->labels[i];
            if (p->confusion) p->confusion[(size_t)t->labels[i] * K + pred]++;
            local[2] += pcn_trainer_in_top_k(yh, K, t->labels[i], p->top_k);
        } else {
            for (int j = 0; j < K; j++) local[3] += ((double)yh[j] - yi[j]) * (yh[j] - yi[j]);
        }
        if (yhat) memcpy(yhat + (size_t)t->rows[i] * K, yh, (size_t)K * sizeof(float));
    }
}

// Scores one test batch; adds global (energy * B, correct, top-k hits, squared error) to sums.
static pcn_status test_batch(trainer *t, int batch, int64_t pos, double sums[4], float *yhat) {
    const pcn_train_params *p = t->p;
    int steps;
    init_latents(t, PCN_STREAM_TEST, 0, batch, pos);
    pcn_status st = infer(t, NULL, p->t_infer_test ? p->t_infer_test : 10 * p->t_infer, true,
                          false, &steps);
    if (st != PCN_OK) return st;
    double sq = pcn_step_errors(t->m, t->s, t->dx, NULL, 0.0f, false, true);
    double local[4] = {pcn_step_sum(t->m, sq), 0, 0, 0};
    pcn_trainer_score(t, host_outputs(t), local, yhat);
    st = gsum64(t->coll, local, 4);
    sums[0] += 0.5 * local[0]; // already a sum over the batch: energy * B
    for (int k = 1; k < 4; k++) sums[k] += local[k];
    return st;
}

// Global sums of n counts (exact in doubles up to 2^53). Collective.
static pcn_status sum_counts(const pcn_collectives *c, int64_t *v, size_t n) {
    double *d = c ? malloc(n * sizeof *d) : NULL;
    if (c && !d) return pcn_set_error(PCN_ENOMEM, "out of memory summing %zu counts", n);
    for (size_t i = 0; d && i < n; i++) d[i] = (double)v[i];
    pcn_status st = d ? gsum64(c, d, (int)n) : PCN_OK;
    for (size_t i = 0; d && i < n; i++) v[i] = (int64_t)d[i];
    free(d);
    return st;
}

pcn_status pcn_test_sharded(const pcn_model *m, const pcn_data *d, const pcn_train_params *p,
                         pcn_test_result *r, float *yhat, const pcn_collectives *coll) {
    pcn_status st = agree(coll, check_run(m, d, p, "test"));
    if (st != PCN_OK) return st;
    const int64_t n = d->n, B = p->test_batch_size ? p->test_batch_size : p->batch_size;
    trainer t;
    // The model is only read: trainer keeps a writable pointer for the training path.
    st = agree(coll, trainer_init(&t, (pcn_model *)m, d, p, (int)B, coll));
    if (st != PCN_OK) return st;
    // The host copy is the model's truth between calls; inside a batch hook the device's
    // weights are newer (host_stale): they come to the host first, so the push that follows
    // writes them back unchanged instead of rolling the run back to an older copy.
    if (m->host_stale) pcn_model_pull((pcn_model *)m);
    pcn_model_push((pcn_model *)m);
    if (p->confusion) memset(p->confusion, 0, (size_t)m->K * m->K * sizeof *p->confusion);
    double sums[4] = {0};
    for (int64_t pos = 0, batch = 0; st == PCN_OK && pos < n; pos += B, batch++) {
        st = read_batch(&t, pos, n - pos < B ? n - pos : B, p->task, "test");
        if (st == PCN_OK) prefetch_next(&t, pos + B, n - pos - B < B ? n - pos - B : B);
        if (st == PCN_OK)
            st = t.disc ? pcn_trainer_disc_test(&t, (int)batch, sums, yhat)
                        : test_batch(&t, (int)batch, pos, sums, yhat);
    }
    trainer_free(&t);
    if (st == PCN_OK && p->confusion && p->task == PCN_TASK_CLASSIFICATION)
        st = sum_counts(coll, p->confusion, (size_t)m->K * m->K);
    if (st != PCN_OK) return st;
    bool cls = p->task == PCN_TASK_CLASSIFICATION;
    *r = (pcn_test_result){
        .accuracy = cls ? sums[1] / n : 0.0,
        .top_k = cls ? sums[2] / n : 0.0,
        .k = p->top_k,
        .energy = sums[0] / n,
        .mse = cls ? 0.0 : sums[3] / ((double)n * m->K),
        .samples = n,
    };
    return PCN_OK;
}

pcn_status pcn_test(const pcn_model *m, const pcn_data *d, const pcn_train_params *p,
                    pcn_test_result *r, float *yhat) {
    return pcn_test_sharded(m, d, p, r, yhat, NULL);
}
