/*
 * learn_gram.c — the learning phase in batch space (one process).
 *
 * With the latents fixed, a learning step moves layer l's preactivation by
 *   A[l] += (lr/B) X[l+1] X[l+1]^T H[l] = (lr/B) G H[l],   G = X[l+1] X[l+1]^T  (B x B),
 * and the readout's output by Yhat -= (lr/B) G_L Esup. So T steps can run on A[l] and Yhat
 * alone, accumulating S = sum_t H_t (or sum_t Esup_t), and the weights move once at the end:
 *   W[l] += (lr/B) S^T X[l+1],   Wout -= (lr/B) Sout^T X[L]
 * — the same result as T per-step weight updates, up to rounding. Each layer's dynamics
 * are independent while the latents are fixed, so every layer (and the readout) takes
 * whichever path costs fewer flops for its shape, B and T (pcn_gram_plan). Energies are
 * those of the per-step path: every step reports the snapshot it starts from.
 *
 * Only for one process: across ranks the batch-space step would need every rank's H each
 * step (an all-gather of B x d_l) instead of one all-reduce of the gradient; the trainer
 * keeps the plain path there.
 */
#include <stdlib.h>
#include <string.h>

#include "pcn_impl.h"

struct pcn_gram {
    const pcn_backend_ops *ops; // owns the buffers
    int max_batch;
    float *g[PCN_MAX_LAYERS + 1]; // G of X[l+1] for layer l (l = L: X[L] for the readout)
    float *s[PCN_MAX_LAYERS + 1]; // accumulated H[l] (B, d_l); s[L]: accumulated Esup (B, K)
};

pcn_gram *pcn_gram_init(const pcn_model *m, int max_batch) {
    pcn_gram *gr = calloc(1, sizeof *gr);
    if (!gr) return NULL;
    gr->ops = m->ops;
    gr->max_batch = max_batch;
    size_t bb = (size_t)max_batch * max_batch;
    for (int l = 0; l <= m->L; l++) {
        int width = l < m->L ? m->dims[l] : m->K;
        gr->g[l] = gr->ops->alloc(bb * sizeof(float));
        gr->s[l] = gr->ops->alloc((size_t)max_batch * width * sizeof(float));
        if (!gr->g[l] || !gr->s[l]) {
            pcn_gram_free(gr);
            return NULL;
        }
    }
    return gr;
}

void pcn_gram_free(pcn_gram *gr) {
    for (int l = 0; gr && l <= PCN_MAX_LAYERS; l++) gr->ops->release(gr->g[l]), gr->ops->release(gr->s[l]);
    free(gr);
}

// ----------------------------------------------------------------------------------------

// Flops of T steps of layer l (l = L: readout) on each path; out/in are the matrix's shape.
static void costs(const pcn_model *m, int l, double B, double T, double *plain, double *gram) {
    double out = l < m->L ? m->dims[l] : m->K, in = l < m->L ? m->dims[l + 1] : m->dims[m->L];
    *plain = T * 4.0 * B * out * in;
    *gram = 2.0 * B * B * in + 4.0 * B * out * in + T * 2.0 * B * B * out;
}

void pcn_gram_plan(const pcn_model *m, int B, int T, pcn_learn_path path, bool *use) {
    for (int l = 0; l <= m->L; l++) {
        double plain, gram;
        costs(m, l, B, T, &plain, &gram);
        use[l] = path == PCN_LEARN_GRAM || (path == PCN_LEARN_AUTO && gram < plain);
    }
}

double pcn_learning_phase_flops(const pcn_model *m, int batch, int t_learn, pcn_learn_path path) {
    bool use[PCN_MAX_LAYERS + 1];
    pcn_gram_plan(m, batch, t_learn, path, use);
    double total = 0.0;
    for (int l = 0; l <= m->L; l++) {
        double plain, gram;
        costs(m, l, batch, t_learn, &plain, &gram);
        total += use[l] ? gram : plain;
    }
    return total;
}

// G = X X^T (B, B) of one latent, and the starting point of the layer: A[l] = X[l+1] W^T or
// Yhat = X[L] Wout^T. S starts at zero.
static void gram_setup(pcn_gram *gr, const pcn_model *m, pcn_state *s, int l) {
    const pcn_backend_ops *ops = m->ops;
    const int B = s->batch, in = m->dims[l < m->L ? l + 1 : m->L];
    const int out = l < m->L ? m->dims[l] : m->K;
    const float *x = s->x[l < m->L ? l + 1 : m->L];
    ops->gemm(false, true, B, B, in, 1.0f, x, in, x, in, 0.0f, gr->g[l], B);
    ops->gemm(false, true, B, out, in, 1.0f, x, in, m->w + m->woff[l], in, 0.0f,
              l < m->L ? s->a[l] : s->yhat, out);
    ops->zero((size_t)B * out, gr->s[l]);
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

// One layer's update at the end of a step: batch space (A or Yhat, and S) or the weights.
static void layer_update(pcn_gram *gr, pcn_model *m, pcn_state *s, int l, bool gram,
                         float alpha) {
    const pcn_backend_ops *ops = m->ops;
    const int B = s->batch, L = m->L, dL = m->dims[L];
    const int out = l < L ? m->dims[l] : m->K, in = l < L ? m->dims[l + 1] : dL;
    const float *d = l < L ? s->h[l] : s->esup;     // (B, out): H, or Esup for the readout
    const float sign = l < L ? 1.0f : -1.0f;
    if (gram) {
        ops->axpy((size_t)B * out, 1.0f, d, gr->s[l]);
        ops->gemm(false, false, B, out, B, sign * alpha, gr->g[l], B, d, out, 1.0f,
                  l < L ? s->a[l] : s->yhat, out);
    } else { // the per-step weight update, as pcn_step_gradient + pcn_step_apply
        ops->gemm(true, false, out, in, B, sign * alpha, d, out, s->x[l < L ? l + 1 : L], in,
                  1.0f, m->w + m->woff[l], in);
    }
}

pcn_status pcn_gram_learn(pcn_gram *gr, pcn_model *m, pcn_state *s, const float *x,
                          const float *y, int t_steps, float alpha, const bool *use,
                          pcn_status (*report)(void *ctx, int step, double sumsq), void *ctx) {
    const int L = m->L, B = s->batch;
    if (B > gr->max_batch) return pcn_set_error(PCN_EINVAL, "batch %d above the Gram workspace", B);
    for (int l = 0; l <= L; l++)
        if (use[l]) gram_setup(gr, m, s, l);
    for (int step = 0; step < t_steps; step++) {
        double sq = 0.0;
        if (report) m->ops->sum_begin();
        for (int l = 0; l <= L; l++) sq += layer_errors(m, s, x, y, l, use[l]);
        if (report) {
            m->ops->sum_finish();
            pcn_status st = report(ctx, step, sq + m->ops->sum_read());
            if (st != PCN_OK) return st;
        }
        for (int l = 0; l <= L; l++) layer_update(gr, m, s, l, use[l], alpha);
    }
    for (int l = 0; l <= L; l++) { // the weights move once: W += (lr/B) S^T X
        if (!use[l]) continue;
        const int out = l < L ? m->dims[l] : m->K, in = l < L ? m->dims[l + 1] : m->dims[L];
        m->ops->gemm(true, false, out, in, B, (l < L ? 1.0f : -1.0f) * alpha, gr->s[l], out,
                     s->x[l < L ? l + 1 : L], in, 1.0f, m->w + m->woff[l], in);
    }
    return PCN_OK;
}
