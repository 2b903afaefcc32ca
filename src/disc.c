/*
 * disc.c — the discriminative mode's engine over the backend's operations (see disc.h for
 * the formulas): the workspace, the forward and random starts, errors, the latents' back
 * products, the weight gradient and the plain inference phase, which every backend runs
 * (the CPU backend's split phase in disc_cpu.c is tested against it).
 *
 * Cost per inference step: a_1 = x_0 W_1^T + b_1 never changes within a batch (x_0 is
 * clamped and the weights move only between batches), so a step recomputes a_2..a_L and
 * the back products for l = 1..L-1: about 4 B (|W| - |W_1|) flops. iPC moves the weights
 * every step, so there a step also recomputes a_1.
 */
#include <stdlib.h>
#include <string.h>

#include "disc.h"

static const float *wmat(const pcn_model *m, int l) { return m->w + m->woff[l - 1]; } // W_l
static const float *bvec(const pcn_model *m, int l) {                                 // b_l
    return m->bias ? m->w + m->woff[m->L] + pcn_disc_bias_off(m, l - 1) : NULL;
}

pcn_disc *pcn_disc_init(const pcn_model *m, int max_rows) {
    pcn_disc *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->ops = m->ops;
    w->max_rows = max_rows;
    const int L = m->L;
    size_t total = (size_t)max_rows, units = 0;
    for (int l = 1; l <= L; l++) units += (size_t)m->dims[l];
    total += 6 * units * (size_t)max_rows; // x, a, e, d, t, m
    if (!(w->mem = m->ops->alloc(total * sizeof(float)))) {
        free(w);
        return NULL;
    }
    float *p = w->mem;
    w->ones = p, p += max_rows;
    for (int l = 1; l <= L; l++) {
        const size_t n = (size_t)max_rows * m->dims[l];
        w->x[l] = p, p += n;
        w->a[l] = p, p += n;
        w->e[l] = p, p += n;
        w->d[l] = p, p += n;
        w->t[l] = p, p += n;
        w->mom[l] = p, p += n;
    }
    w->out = w->t[L]; // t_L is never used
    float *ones = malloc((size_t)max_rows * sizeof *ones);
    if (!ones) {
        pcn_disc_free(w);
        return NULL;
    }
    for (int r = 0; r < max_rows; r++) ones[r] = 1.0f;
    m->ops->upload(w->ones, ones, (size_t)max_rows * sizeof *ones);
    free(ones);
    return w;
}

void pcn_disc_free(pcn_disc *w) {
    if (!w) return;
    w->ops->release(w->mem);
    pcn_free(w->pack);
    pcn_free(w->dt);
    free(w->part);
    free(w);
}

// ----------------------------------------------------------------------------------------
// Passes
// ----------------------------------------------------------------------------------------

// a_l = b_l + x_{l-1} W_l^T: (B, d_l) = (B, d_{l-1}) (d_l, d_{l-1})^T.
static void preact(pcn_disc *w, const pcn_model *m, int l) {
    const int B = w->rows, out = m->dims[l], in = m->dims[l - 1];
    const float *b = bvec(m, l);
    if (b) m->ops->fill_rows(B, out, b, w->a[l]);
    m->ops->gemm(false, true, B, out, in, 1.0f, w->x[l - 1], in, wmat(m, l), in,
                 b ? 1.0f : 0.0f, w->a[l], out);
}

void pcn_disc_preact(pcn_disc *w, const pcn_model *m, int from) {
    for (int l = from; l <= m->L; l++) preact(w, m, l);
}

void pcn_disc_forward(pcn_disc *w, const pcn_model *m, const float *x0, int rows) {
    w->rows = rows;
    w->x[0] = (float *)x0;
    for (int l = 1; l <= m->L; l++) {
        preact(w, m, l);
        if (l < m->L)
            m->ops->act_pass(m->act[l - 1], m->slope, (size_t)rows * m->dims[l], w->a[l],
                             w->x[l]);
    }
}

void pcn_disc_random(pcn_disc *w, const pcn_model *m, const float *x0, int rows,
                     const pcn_latent_key *key, float std) {
    const pcn_backend_ops *ops = m->ops;
    w->rows = rows;
    w->x[0] = (float *)x0;
    for (int l = 1; l < m->L; l++) { // drawn into the momentum buffer, then x = std * draw
        const size_t n = (size_t)rows * m->dims[l];
        uint32_t c1 = ((uint32_t)l << 8) | (uint32_t)key->stream;
        ops->normal_rows(key->seed, (uint32_t)key->first_row, c1, key->epoch, rows, m->dims[l],
                         w->mom[l]);
        ops->zero(n, w->x[l]);
        ops->axpy(n, std, w->mom[l], w->x[l]);
    }
    pcn_disc_preact(w, m, 1);
}

double pcn_disc_errors(pcn_disc *w, const pcn_model *m, const float *y, bool want_sum) {
    return pcn_disc_errors_from(w, m, y, 1, want_sum);
}

double pcn_disc_errors_from(pcn_disc *w, const pcn_model *m, const float *y, int lo,
                            bool want_sum) {
    const pcn_backend_ops *ops = m->ops;
    const int L = m->L;
    w->x[L] = (float *)y;
    double sq = 0.0;
    for (int l = 1; l < lo; l++) {
        ops->zero((size_t)w->rows * m->dims[l], w->e[l]);
        ops->zero((size_t)w->rows * m->dims[l], w->d[l]);
    }
    if (want_sum) ops->sum_begin();
    for (int l = lo; l <= L; l++)
        sq += ops->disc_error(m->act[l - 1], m->slope, (size_t)w->rows * m->dims[l], w->x[l],
                              w->a[l], w->e[l], w->d[l]);
    if (want_sum) ops->sum_finish();
    return sq;
}

double pcn_disc_sum(const pcn_model *m, double returned) {
    return m->ops->on_device ? m->ops->sum_read() : returned;
}

void pcn_disc_back(pcn_disc *w, const pcn_model *m) {
    const int B = w->rows;
    for (int l = 1; l < m->L; l++) { // (B, d_l) = -(B, d_{l+1}) (d_{l+1}, d_l)
        const int out = m->dims[l + 1], in = m->dims[l];
        m->ops->gemm(false, false, B, in, out, -1.0f, w->d[l + 1], out, wmat(m, l + 1), in, 0.0f,
                     w->t[l], in);
    }
}

void pcn_disc_gradient(pcn_disc *w, pcn_model *m) {
    const pcn_backend_ops *ops = m->ops;
    const int B = w->rows, L = m->L;
    for (int l = 1; l <= L; l++) {
        const int out = m->dims[l], in = m->dims[l - 1];
        // (d_l, d_{l-1}) = -(B, d_l)^T (B, d_{l-1})
        ops->gemm(true, false, out, in, B, -1.0f, w->d[l], out, w->x[l - 1], in, 0.0f,
                  m->g + m->woff[l - 1], in);
        if (m->bias) // (1, d_l) = -(B, 1)^T (B, d_l)
            ops->gemm(true, false, 1, out, B, -1.0f, w->ones, 1, w->d[l], out, 0.0f,
                      m->g + m->woff[L] + pcn_disc_bias_off(m, l - 1), out);
    }
}

// ----------------------------------------------------------------------------------------
// The plain phase
// ----------------------------------------------------------------------------------------

static void latents(pcn_disc *w, const pcn_model *m, float lr, float beta) {
    for (int l = 1; l < m->L; l++)
        m->ops->latent_step((size_t)w->rows * m->dims[l], lr, beta, w->e[l], w->t[l], w->mom[l],
                            w->x[l]);
}

pcn_status pcn_disc_phase_plain(void *ws, pcn_disc_phase *ph) {
    (void)ws;
    pcn_disc *w = ph->w;
    pcn_model *m = ph->m;
    const pcn_backend_ops *ops = m->ops;
    if (ph->forward) pcn_disc_forward(w, m, ph->x0, w->rows);
    if (ph->forward && ph->out0) {
        const size_t n = (size_t)w->rows * m->dims[m->L];
        ops->zero(n, ph->out0);
        ops->axpy(n, 1.0f, w->a[m->L], ph->out0);
    }
    if (ph->beta != 0.0f)
        for (int l = 1; l < m->L; l++) m->ops->zero((size_t)w->rows * m->dims[l], w->mom[l]);
    for (int step = 0; step < ph->steps; step++) { // at most K steps queued (backend.h)
        const bool want = step >= ph->sum_from;
        pcn_status st = pcn_backend_step_wait(ops, step);
        if (st != PCN_OK) return st;
        // right after the forward start only the output's error is not exactly 0
        const int lo = ph->forward && step == 0 ? m->L : 1;
        double sq = pcn_disc_errors_from(w, m, ph->y, lo, want);
        if (want && (st = ph->watch(ph->ctx, step, pcn_disc_sum(m, sq))) != PCN_OK) return st;
        pcn_disc_back(w, m);
        if (ph->ipc) {
            pcn_disc_gradient(w, m);
            if ((st = ph->weights(ph->ctx, step)) != PCN_OK) return st;
        }
        latents(w, m, ph->lr, ph->beta);
        pcn_disc_preact(w, m, ph->ipc ? 1 : 2);
        pcn_backend_step_mark(ops, step);
    }
    ph->final_sq = pcn_disc_sum(m, pcn_disc_errors(w, m, ph->y, true));
    if (ph->gradient) pcn_disc_gradient(w, m);
    return PCN_OK;
}
