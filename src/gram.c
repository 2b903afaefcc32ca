/*
 * gram.c — the learning phase in batch space, on one process or across ranks.
 *
 * With the latents fixed, a learning step moves layer l's preactivation by
 *   A[l] += (lr/B) X[l+1] X[l+1]^T H[l] = (lr/B) G H[l],   G = X[l+1] X[l+1]^T  (B x B),
 * and the readout's output by Yhat -= (lr/B) G_L Esup. So T steps can run on A[l] and Yhat
 * alone, accumulating S = sum_t H_t (or sum_t Esup_t), and the weights move once at the end:
 *   W[l] += (lr/B) S^T X[l+1],   Wout -= (lr/B) Sout^T X[L]
 * — the same result as T per-step weight updates, up to rounding. Each layer's dynamics
 * are independent while the latents are fixed, so every layer (and the readout) takes
 * whichever path costs less for its shape, B, T and rank count (pcn_gram_plan). Energies
 * are those of the per-step path: every step reports the snapshot it starts from.
 *
 * On one process the backend runs the phase its own way (ops->gram_phase): the CPU
 * backend splits it by output units over its threads, every thread running all T steps on
 * its own columns of every layer, both paths (cpu_phases.c); the step-by-step loop at the
 * end of this file (pcn_gram_phase_plain), every product threading itself, is the
 * reference the tests compare that with, and what runs across ranks and on devices.
 *
 * Across P ranks (rank r holds rows R_r of the batch): A_r += (lr/B) sum_s (X_r X_s^T) H_s.
 * Once per batch each batch-space layer all-gathers its latent X (B, in) and forms its own
 * rows of G, G_r = X_r X^T (B_r, B); every step it all-gathers H (B, out; Esup for the
 * readout) and updates A_r += (lr/B) G_r H; S_r accumulates its own rows of H. At the end
 * each rank computes S_r^T X_r (out, in) and one all-reduce (all batch-space layers packed
 * together in the model's gradient buffer) gives every rank the same update, as the
 * per-step path's all-reduce does: weights stay identical on every rank, and the final
 * product costs 2 B_r out in flops instead of 2 B out in (a redundant full S^T X on every
 * rank would cost a quarter of the phase at P = 64 with the CIFAR config). Layers on the
 * per-step path still sum their gradients every step, all of them packed into one
 * contiguous prefix of the gradient buffer and summed in one collective: the sum carries
 * exactly their floats and no zeros of the batch-space layers in between.
 *
 * The planner charges each path the flops of the busiest rank (B_r = ceil(B/P) rows) plus
 * flops_per_byte times the bytes it sends: an all-reduce of n floats sends 2 (P-1)/P 4n
 * bytes (ring), an all-gather of a result of n floats (P-1)/P 4n. Per layer and T steps:
 *   plain: T (4 B_r out in + allreduce(out in))
 *   gram:  2 B_r B in + gather(B in)                      G_r
 *        + 4 B_r out in + allreduce(out in)               A_r at the start, S_r^T X_r
 *        + T (2 B_r B out + gather(B out))                the steps
 * At P = 1 the byte terms vanish and these are the one-process flop counts. The default
 * flops_per_byte, 80, is what the development machine measured (2 ranks of one thread:
 * 72 GFLOP/s sgemm per rank against 0.9 GB/s per rank in a ring all-reduce of the CIFAR
 * gradient over shared memory); pcn_train_params.learn_flops_per_byte sets it (a cluster's
 * ratio of one rank's flop rate to its network bandwidth). Per-collective latency is not
 * charged. The distributed path needs the collectives on host buffers: the trainer takes
 * it across ranks only for models in host memory.
 */
#include <math.h>
#include <stdlib.h>

#include "gram.h"
#include "phase.h"

static bool distributed(const pcn_gram *gr) { return gr->coll && gr->coll->size > 1; }


pcn_gram *pcn_gram_init(const pcn_model *m, int max_local, int max_global,
                        const pcn_collectives *coll) {
    pcn_gram *gr = calloc(1, sizeof *gr);
    if (!gr) return NULL;
    gr->ops = m->ops, gr->coll = coll;
    gr->max_local = max_local, gr->max_global = max_global;
    const size_t bl = (size_t)max_local, bg = (size_t)max_global;
    bool ok = true;
    for (int l = 0; ok && l <= m->L; l++) {
        const size_t out = (size_t)pcn_layer_out(m, l), in = (size_t)pcn_layer_in(m, l);
        gr->g[l] = gr->ops->alloc(bl * bg * sizeof(float));
        gr->s[l] = gr->ops->alloc(bl * out * sizeof(float));
        ok = gr->g[l] && gr->s[l];
        if (distributed(gr)) {
            gr->xall[l] = gr->ops->alloc(bg * in * sizeof(float));
            gr->dall[l] = gr->ops->alloc(bg * out * sizeof(float));
            ok = ok && gr->xall[l] && gr->dall[l];
        }
    }
    if (!ok) {
        pcn_gram_free(gr);
        return NULL;
    }
    return gr;
}

void pcn_gram_free(pcn_gram *gr) {
    if (!gr) return;
    for (int l = 0; l <= PCN_MAX_LAYERS; l++) {
        gr->ops->release(gr->g[l]), gr->ops->release(gr->s[l]);
        gr->ops->release(gr->xall[l]), gr->ops->release(gr->dall[l]);
    }
    free(gr);
}

// ----------------------------------------------------------------------------------------
// The planner
// ----------------------------------------------------------------------------------------

// Flop-equivalents of T steps of layer l (l = L: readout) on each path for the busiest
// rank (the header's formulas). At P = 1 the byte terms are exactly zero.
static void costs(const pcn_model *m, int l, double B, double T, const pcn_gram_cost *c,
                  double *plain, double *gram) {
    const double out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
    const double P = c && c->ranks > 1 ? c->ranks : 1.0, Br = ceil(B / P);
    const double gather = P > 1 ? c->flops_per_byte * 4.0 * (P - 1.0) / P : 0.0; // per float
    const double reduce = 2.0 * gather;
    *plain = T * 4.0 * Br * out * in + T * reduce * out * in;
    *gram = 2.0 * Br * B * in + 4.0 * Br * out * in + T * 2.0 * Br * B * out +
            (gather * B * in + reduce * out * in + T * gather * B * out);
}

void pcn_gram_plan(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                   pcn_learn_path path, bool *use) {
    for (int l = 0; l <= m->L; l++) {
        double plain, gram;
        costs(m, l, B, T, cost, &plain, &gram);
        use[l] = path == PCN_LEARN_GRAM || (path == PCN_LEARN_AUTO && gram < plain);
    }
}

double pcn_gram_phase_cost(const pcn_model *m, int B, int T, const pcn_gram_cost *cost,
                           pcn_learn_path path) {
    bool use[PCN_MAX_LAYERS + 1];
    pcn_gram_plan(m, B, T, cost, path, use);
    double total = 0.0;
    for (int l = 0; l <= m->L; l++) {
        double plain, gram;
        costs(m, l, B, T, cost, &plain, &gram);
        total += use[l] ? gram : plain;
    }
    return total;
}

void pcn_learning_phase_plan(const pcn_model *m, int batch, int t_learn, pcn_learn_path path,
                             bool *batch_space) {
    pcn_gram_plan(m, batch, t_learn, NULL, path, batch_space);
}

double pcn_learning_phase_flops(const pcn_model *m, int batch, int t_learn, pcn_learn_path path) {
    return pcn_gram_phase_cost(m, batch, t_learn, NULL, path);
}

// ----------------------------------------------------------------------------------------
// The phase
// ----------------------------------------------------------------------------------------

// A collective of the phase, timed into *seconds.
static pcn_status gather(pcn_gram *gr, const float *mine, float *all, int B, int width,
                         double *seconds) {
    double t0 = pcn_now();
    pcn_status st = gr->coll->gather_rows_f32(gr->coll->ctx, mine, all, B, width);
    if (seconds) *seconds += pcn_now() - t0;
    return st;
}

static pcn_status sum(pcn_gram *gr, float *v, size_t n, double *seconds) {
    double t0 = pcn_now();
    pcn_status st = gr->coll->sum_f32(gr->coll->ctx, v, n); // host memory (across ranks)
    if (seconds) *seconds += pcn_now() - t0;
    return st;
}

// Own rows of G = X X^T (B_r, B) of one layer's latent (gathered first across ranks), and
// the starting point of the layer: A[l] = X[l+1] W^T or Yhat = X[L] Wout^T. S starts at 0.
static pcn_status gram_setup(pcn_gram *gr, const pcn_model *m, pcn_state *s, int l, int B,
                             double *comm) {
    const pcn_backend_ops *ops = m->ops;
    const int Br = s->batch, in = pcn_layer_in(m, l), out = pcn_layer_out(m, l);
    const float *x = s->x[l < m->L ? l + 1 : m->L], *xall = x;
    if (distributed(gr)) {
        pcn_status st = gather(gr, x, gr->xall[l], B, in, comm);
        if (st != PCN_OK) return st;
        xall = gr->xall[l];
    }
    ops->gemm(false, true, Br, B, in, 1.0f, x, in, xall, in, 0.0f, gr->g[l], B);
    ops->gemm(false, true, Br, out, in, 1.0f, x, in, m->w + m->woff[l], in, 0.0f,
              l < m->L ? s->a[l] : s->yhat, out);
    ops->zero((size_t)Br * out, gr->s[l]);
    return PCN_OK;
}

// Errors of one layer at the current step: plain layers recompute A from the weights.
static double layer_errors(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                           int l, bool gram) {
    const pcn_backend_ops *ops = m->ops;
    const int B = s->batch, L = m->L, dL = m->dims[L];
    if (l == L) {
        if (!gram)
            ops->gemm(false, true, B, m->K, dL, 1.0f, s->x[L], dL, m->w + m->woff[L], dL, 0.0f,
                      s->yhat, m->K);
        return ops->sup_error((size_t)B * m->K, s->yhat, y, s->esup);
    }
    if (!gram)
        ops->gemm(false, true, B, m->dims[l], m->dims[l + 1], 1.0f, s->x[l + 1], m->dims[l + 1],
                  m->w + m->woff[l], m->dims[l + 1], 0.0f, s->a[l], m->dims[l]);
    float *target = l == 0 ? (float *)x : s->x[l]; // read only: lr = 0
    return ops->error_pass(m->act[l], (size_t)B * m->dims[l], target, s->a[l], s->e[l], s->h[l],
                           0.0f);
}

// One layer's update at the end of a step: batch space (A or Yhat, and S; H gathered
// across ranks first), or the weights — on one process directly, across ranks the
// layer's gradient into the packed gradient buffer at goff (summed by the caller).
static pcn_status layer_update(pcn_gram *gr, pcn_model *m, pcn_state *s, int l, bool gram,
                               int B, float alpha, size_t goff, double *comm) {
    const pcn_backend_ops *ops = m->ops;
    const int Br = s->batch, L = m->L, out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
    const float *d = l < L ? s->h[l] : s->esup; // (B_r, out): H, or Esup for the readout
    const float *x = s->x[l < L ? l + 1 : L];
    const float sign = l < L ? 1.0f : -1.0f;
    if (gram) {
        ops->axpy((size_t)Br * out, 1.0f, d, gr->s[l]);
        const float *dall = d;
        if (distributed(gr)) {
            pcn_status st = gather(gr, d, gr->dall[l], B, out, comm);
            if (st != PCN_OK) return st;
            dall = gr->dall[l];
        }
        ops->gemm(false, false, Br, out, B, sign * alpha, gr->g[l], B, dall, out, 1.0f,
                  l < L ? s->a[l] : s->yhat, out);
    } else if (distributed(gr)) { // as pcn_step_gradient, into the packed buffer
        ops->gemm(true, false, out, in, Br, sign, d, out, x, in, 0.0f, m->g + goff, in);
    } else { // the per-step weight update, as pcn_step_gradient + pcn_step_apply
        ops->gemm(true, false, out, in, Br, sign * alpha, d, out, x, in, 1.0f,
                  m->w + m->woff[l], in);
    }
    return PCN_OK;
}

// Offsets of the layers with use[l] == want packed from the start of the gradient buffer;
// returns their total size.
static size_t pack(const pcn_model *m, const bool *use, bool want, size_t *off) {
    size_t n = 0;
    for (int l = 0; l <= m->L; l++) {
        off[l] = n;
        if (use[l] == want) n += (size_t)pcn_layer_out(m, l) * pcn_layer_in(m, l);
    }
    return n;
}

// Across ranks: w += alpha g for the layers packed at off (after the sum of g[0..n)).
static pcn_status apply_packed(pcn_gram *gr, pcn_model *m, const bool *use, bool want,
                               const size_t *off, size_t n, float alpha, double *comm) {
    if (n == 0) return PCN_OK;
    pcn_status st = sum(gr, m->g, n, comm);
    for (int l = 0; st == PCN_OK && l <= m->L; l++)
        if (use[l] == want)
            m->ops->axpy((size_t)pcn_layer_out(m, l) * pcn_layer_in(m, l), alpha, m->g + off[l],
                         m->w + m->woff[l]);
    return st;
}

// The weights move once: W += (lr/B) S^T X; across ranks each rank's rows, then one sum.
static pcn_status final_update(pcn_gram *gr, pcn_model *m, pcn_state *s, const bool *use,
                               float alpha, double *comm) {
    const int L = m->L, Br = s->batch;
    size_t off[PCN_MAX_LAYERS + 1], n = pack(m, use, true, off);
    for (int l = 0; l <= L; l++) {
        if (!use[l]) continue;
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
        const float sign = l < L ? 1.0f : -1.0f, *x = s->x[l < L ? l + 1 : L];
        if (distributed(gr))
            m->ops->gemm(true, false, out, in, Br, sign, gr->s[l], out, x, in, 0.0f,
                         m->g + off[l], in);
        else
            m->ops->gemm(true, false, out, in, Br, sign * alpha, gr->s[l], out, x, in, 1.0f,
                         m->w + m->woff[l], in);
    }
    return distributed(gr) ? apply_packed(gr, m, use, true, off, n, alpha, comm) : PCN_OK;
}

// The weights move once; then, if wanted, the sum of squared errors of the snapshot the
// phase ends on: batch-space layers from the preactivations they tracked, the others from
// their weights (what a next step would report).
static pcn_status finish(pcn_gram *gr, pcn_model *m, pcn_state *s, const float *x,
                         const float *y, const bool *use, float alpha, double *comm,
                         double *after_sq) {
    pcn_status st = final_update(gr, m, s, use, alpha, comm);
    if (st != PCN_OK || !after_sq) return st;
    double sq = 0.0;
    m->ops->sum_begin();
    for (int l = 0; l <= m->L; l++) sq += layer_errors(m, s, x, y, l, use[l]);
    m->ops->sum_finish();
    *after_sq = sq + m->ops->sum_read();
    return PCN_OK;
}

// The step-by-step loop: every rank count, every backend.
pcn_status pcn_gram_phase_plain(void *ws, pcn_gram_phase *ph) {
    (void)ws;
    pcn_gram *gr = ph->gr;
    pcn_model *m = ph->m;
    pcn_state *s = ph->s;
    const int L = m->L, B = ph->global;
    pcn_status st = PCN_OK;
    for (int l = 0; st == PCN_OK && l <= L; l++)
        if (ph->use[l]) st = gram_setup(gr, m, s, l, B, ph->comm_seconds);
    size_t poff[PCN_MAX_LAYERS + 1], plain_n = pack(m, ph->use, false, poff);
    for (int step = 0; st == PCN_OK && step < ph->t_steps; step++) {
        double sq = 0.0;
        const bool want = ph->report && step < ph->report_steps;
        if (want) m->ops->sum_begin();
        for (int l = 0; l <= L; l++) sq += layer_errors(m, s, ph->x, ph->y, l, ph->use[l]);
        if (want) {
            m->ops->sum_finish();
            if ((st = ph->report(ph->ctx, step, sq + m->ops->sum_read())) != PCN_OK) return st;
        }
        for (int l = 0; st == PCN_OK && l <= L; l++)
            st = layer_update(gr, m, s, l, ph->use[l], B, ph->alpha, poff[l], ph->comm_seconds);
        if (st == PCN_OK && distributed(gr))
            st = apply_packed(gr, m, ph->use, false, poff, plain_n, ph->alpha, ph->comm_seconds);
    }
    return st == PCN_OK ? finish(gr, m, s, ph->x, ph->y, ph->use, ph->alpha, ph->comm_seconds,
                                 ph->after_sq)
                        : st;
}

pcn_status pcn_gram_learn(pcn_gram *gr, void *phase_ws, pcn_gram_phase *ph) {
    if (ph->s->batch > gr->max_local || ph->global > gr->max_global)
        return pcn_set_error(PCN_EINVAL, "batch %d (%d here) above the Gram workspace",
                             ph->global, ph->s->batch);
    ph->gr = gr;
    // Across ranks the phase gathers through host buffers step by step; on one process the
    // backend runs it its own way (the CPU splits it by output units).
    return distributed(gr) ? pcn_gram_phase_plain(phase_ws, ph)
                           : ph->m->ops->gram_phase(phase_ws, ph);
}
