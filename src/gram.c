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
#include <string.h>

#include "gram.h"
#include "phase.h"

static bool distributed(const pcn_gram *gr) { return gr->coll && gr->coll->size > 1; }


// Floats of one packed row of the batch: the data, every latent, the target.
static size_t row_width(const pcn_model *m) {
    size_t w = (size_t)m->K;
    for (int l = 0; l <= m->L; l++) w += (size_t)m->dims[l];
    return w;
}

// The by-units buffers: the whole batch and the packed rows (host memory).
static bool alloc_by_units(pcn_gram *gr, const pcn_model *m) {
    const size_t bg = (size_t)gr->max_global, wn = m->woff[m->L + 1];
    gr->full = pcn_state_init(m, gr->max_global);
    gr->x = pcn_alloc(bg * (size_t)m->dims[0] * sizeof(float));
    gr->y = pcn_alloc(bg * (size_t)m->K * sizeof(float));
    gr->rows_mine = pcn_alloc((size_t)gr->max_local * row_width(m) * sizeof(float));
    gr->rows_all = pcn_alloc(bg * row_width(m) * sizeof(float));
    gr->wmine = pcn_alloc(wn * sizeof(float));
    gr->wall = pcn_alloc(wn * sizeof(float));
    gr->counts = malloc((size_t)gr->coll->size * sizeof *gr->counts);
    return gr->full && gr->x && gr->y && gr->rows_mine && gr->rows_all && gr->wmine &&
           gr->wall && gr->counts;
}

pcn_gram *pcn_gram_init(const pcn_model *m, int max_local, int max_global,
                        const pcn_collectives *coll, bool by_units) {
    pcn_gram *gr = calloc(1, sizeof *gr);
    if (!gr) return NULL;
    gr->ops = m->ops, gr->coll = coll;
    gr->max_local = max_local, gr->max_global = max_global;
    gr->by_units = by_units && distributed(gr);
    const size_t bg = (size_t)max_global, bl = gr->by_units ? bg : (size_t)max_local;
    bool ok = !gr->by_units || alloc_by_units(gr, m);
    for (int l = 0; ok && l <= m->L; l++) { // G: pcn_gram_reserve, where a plan wants it
        const size_t out = (size_t)pcn_layer_out(m, l), in = (size_t)pcn_layer_in(m, l);
        gr->s[l] = gr->ops->alloc(bl * out * sizeof(float));
        ok = gr->s[l] != NULL;
        if (distributed(gr) && !gr->by_units) {
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
    pcn_state_free(gr->full);
    pcn_free(gr->x), pcn_free(gr->y), pcn_free(gr->rows_mine), pcn_free(gr->rows_all);
    pcn_free(gr->wmine), pcn_free(gr->wall);
    free(gr->counts);
    free(gr);
}

// ----------------------------------------------------------------------------------------
// The planner
// ----------------------------------------------------------------------------------------

// Flop-equivalents of T steps of layer l (l = L: readout) on each path for the busiest
// rank (the header's formulas). At P = 1 the byte terms are exactly zero.
static void costs(const pcn_model *m, int l, double B, double T, const pcn_gram_cost *c,
                  double *plain, double *gram) {
    const double P = c && c->ranks > 1 ? c->ranks : 1.0, in = pcn_layer_in(m, l);
    if (P > 1 && c->by_units) { // the busiest rank's units over the whole batch; the
        const double out = ceil(pcn_layer_out(m, l) / P); // gathers do not depend on the path
        *plain = T * 4.0 * B * out * in;
        *gram = 2.0 * B * B * in + 4.0 * B * out * in + T * 2.0 * B * B * out;
        return;
    }
    const double out = pcn_layer_out(m, l), Br = ceil(B / P);
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

pcn_status pcn_gram_reserve(pcn_gram *gr, const pcn_model *m, bool *use) {
    const size_t bg = (size_t)gr->max_global, bl = gr->by_units ? bg : (size_t)gr->max_local;
    bool tried = false;
    double short_of[PCN_MAX_LAYERS + 1] = {0}; // 1: this rank's G of layer l did not fit
    for (int l = 0; l <= m->L; l++) {
        if (use[l] && gr->no_room[l]) use[l] = false;
        if (!use[l] || gr->g[l]) continue;
        tried = true;
        short_of[l] = !(gr->g[l] = gr->ops->alloc(bl * bg * sizeof(float)));
    }
    pcn_status st = PCN_OK;
    // By rows the path decides the collectives, so the ranks agree; by units each rank's
    // path stays its own (its rows only; the collectives are the same on both paths).
    if (tried && distributed(gr) && !gr->by_units)
        st = gr->coll->sum_f64(gr->coll->ctx, short_of, m->L + 1);
    for (int l = 0; st == PCN_OK && l <= m->L; l++) {
        if (short_of[l] == 0.0) continue;
        gr->ops->release(gr->g[l]);
        gr->g[l] = NULL, gr->no_room[l] = true, use[l] = false;
    }
    return st;
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

// ---- across ranks, split by output units ----------------------------------------------

void pcn_gram_unit_rows(const pcn_model *m, int l, int rank, int ranks, int *lo, int *count) {
    int64_t first, n;
    pcn_train_shard(pcn_layer_out(m, l), rank, ranks, &first, &n);
    *lo = (int)first, *count = (int)n;
}

static float *put(float *dst, const float *src, int n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return dst + n;
}

static const float *take(const float *src, float *dst, int n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
    return src + n;
}

// Before the phase: every rank gets the whole batch (data, every latent, targets) in one
// gather of packed rows. Collective.
static pcn_status gather_batch(pcn_gram *gr, const pcn_model *m, const pcn_gram_phase *ph) {
    const pcn_state *s = ph->s;
    const int L = m->L, d0 = m->dims[0], K = m->K;
    const size_t W = row_width(m);
    for (int r = 0; r < s->batch; r++) {
        float *row = put(gr->rows_mine + (size_t)r * W, ph->x + (size_t)r * d0, d0);
        for (int l = 1; l <= L; l++) row = put(row, s->x[l] + (size_t)r * m->dims[l], m->dims[l]);
        put(row, ph->y + (size_t)r * K, K);
    }
    pcn_status st = gather(gr, gr->rows_mine, gr->rows_all, ph->global, (int)W, ph->comm_seconds);
    if (st == PCN_OK) st = pcn_state_set_batch(gr->full, ph->global);
    if (st != PCN_OK) return st;
    for (int r = 0; r < ph->global; r++) {
        const float *row = take(gr->rows_all + (size_t)r * W, gr->x + (size_t)r * d0, d0);
        for (int l = 1; l <= L; l++)
            row = take(row, gr->full->x[l] + (size_t)r * m->dims[l], m->dims[l]);
        take(row, gr->y + (size_t)r * K, K);
    }
    gr->full->latents_ready = true;
    return PCN_OK;
}

// Rank r's rows of every layer, packed layer after layer: put copies them from the
// weights into buf, or else back. Returns the floats. Local.
static int64_t rank_rows(pcn_model *m, int r, int ranks, float *buf, bool put) {
    int64_t at = 0;
    for (int l = 0; l <= m->L; l++) {
        const int in = pcn_layer_in(m, l);
        int lo, n;
        pcn_gram_unit_rows(m, l, r, ranks, &lo, &n);
        float *w = m->w + m->woff[l] + (size_t)lo * in;
        const size_t bytes = (size_t)n * in * sizeof(float);
        if (buf) memcpy(put ? buf + at : w, put ? w : buf + at, bytes);
        at += (int64_t)n * in;
    }
    return at;
}

// After the phase: every rank's new rows of every layer to every rank, in one gather.
// Collective.
static pcn_status gather_weights(pcn_gram *gr, pcn_model *m, double *comm) {
    const int P = gr->coll->size;
    for (int r = 0; r < P; r++) gr->counts[r] = rank_rows(m, r, P, NULL, false);
    rank_rows(m, gr->coll->rank, P, gr->wmine, true);
    const double t0 = pcn_now();
    pcn_status st = gr->coll->gather_f32(gr->coll->ctx, gr->wmine, gr->wall, gr->counts);
    if (comm) *comm += pcn_now() - t0;
    if (st != PCN_OK) return st;
    int64_t at = 0;
    for (int r = 0; r < P; at += gr->counts[r], r++)
        if (r != gr->coll->rank) rank_rows(m, r, P, gr->wall + at, false);
    return PCN_OK;
}

// The phase split by output units across ranks: the whole batch gathered once, every rank
// steps its own units of every layer over it without a collective (but the sums of the
// reported steps), then the new weight rows are gathered. Collective.
static pcn_status learn_by_units(pcn_gram *gr, void *phase_ws, const pcn_gram_phase *ph) {
    pcn_status st = gather_batch(gr, ph->m, ph);
    if (st != PCN_OK) return st;
    pcn_gram_phase whole = *ph;
    whole.s = gr->full, whole.x = gr->x, whole.y = gr->y;
    whole.rank = gr->coll->rank, whole.ranks = gr->coll->size;
    if ((st = ph->m->ops->gram_phase(phase_ws, &whole)) != PCN_OK) return st;
    return gather_weights(gr, ph->m, ph->comm_seconds);
}

pcn_status pcn_gram_learn(pcn_gram *gr, void *phase_ws, pcn_gram_phase *ph) {
    if (ph->s->batch > gr->max_local || ph->global > gr->max_global)
        return pcn_set_error(PCN_EINVAL, "batch %d (%d here) above the Gram workspace",
                             ph->global, ph->s->batch);
    ph->gr = gr, ph->rank = 0, ph->ranks = 1;
    if (gr->by_units) return learn_by_units(gr, phase_ws, ph);
    // Across ranks by rows the phase gathers through host buffers step by step; on one
    // process the backend runs it its own way (the CPU splits it by output units).
    return distributed(gr) ? pcn_gram_phase_plain(phase_ws, ph)
                           : ph->m->ops->gram_phase(phase_ws, ph);
}
