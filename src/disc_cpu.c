/*
 * disc_cpu.c — the CPU backend's discriminative batch phase (disc.h): split over its
 * OpenMP threads, every product against weights packed once per phase.
 *
 * Inference is row-local (each sample's latents step on that sample's errors alone), so
 * in one parallel region each thread runs, on its own contiguous rows and with no barrier,
 * the forward start, all T steps (per step: the fused error pass of every layer, the back
 * products t_l = -d_{l+1} W_{l+1}, the latent step, the preactivations a_2..a_L of the new
 * latents) and the final errors, keeping its sum of squares per step. One barrier, then the
 * weight gradient split by output units: each thread transposes its units' columns of d_l
 * and multiplies them by x_{l-1} (pcn_gemm_inplace), and sums them for the bias. The watch
 * callback (collective) runs after the region, in step order, on the calling thread. a_1
 * does not change within the phase (x_0 is clamped and the weights move only between
 * batches), so it is computed once, by the forward start.
 *
 * iPC moves the weights every step: each step's errors and back products (rows), the
 * gradient (units), the weight step on the calling thread (a collective sum across ranks
 * and the optimizer; MPI is called from the main thread only, MPI_THREAD_FUNNELED), the
 * weights packed again, the latent steps and every preactivation (rows), barriers between.
 *
 * Threads: as cpu_phases.c (OpenMP's with an OpenMP OpenBLAS, else 1), at most one per
 * SPLIT_MIN_ROWS rows. A workspace made with split off runs the plain phase (the plain
 * path, PCN_ROW_PATH=0 in pcn_dist).
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "disc.h"
#include "disc_kernels.h"

#define SPLIT_MIN_ROWS 16

// The packs (see disc.h; wn[1] is never used) and each thread's d^T block for the
// gradient, allocated on first use.
static bool reserve(pcn_disc *w, const pcn_model *m, int threads) {
    const int L = m->L;
    if (!w->pack) {
        size_t total = 0, at[2 * (PCN_MAX_LAYERS + 1)];
        for (int l = 1; l <= L; l++) {
            const int out = m->dims[l], in = m->dims[l - 1];
            at[2 * l] = total, total += pcn_packed_size(in, out);
            at[2 * l + 1] = total, total += l > 1 ? pcn_packed_size(out, in) : 0;
        }
        if (!(w->pack = pcn_alloc(total * sizeof(float)))) return false;
        for (int l = 1; l <= L; l++) w->wt[l] = w->pack + at[2 * l], w->wn[l] = w->pack + at[2 * l + 1];
    }
    if (w->dt_threads < threads) {
        int widest = 1;
        for (int l = 1; l <= L; l++) widest = m->dims[l] > widest ? m->dims[l] : widest;
        pcn_free(w->dt);
        w->dt_threads = 0;
        w->dt_stride = (size_t)widest * w->max_rows;
        if (!(w->dt = pcn_alloc((size_t)threads * w->dt_stride * sizeof(float)))) return false;
        w->dt_threads = threads;
    }
    return true;
}

// Thread id of k packs its share of every layer's packed rows: wt[l] = W_l^T (in, out),
// wn[l] = W_l (out, in).
static void pack_share(pcn_disc *w, const pcn_model *m, int id, int k) {
    for (int l = 1; l <= m->L; l++) {
        const int out = m->dims[l], in = m->dims[l - 1];
        const float *wl = m->w + m->woff[l - 1];
        pcn_pack_range(true, in, out, wl, in, w->wt[l], in * id / k, in * (id + 1) / k);
        if (l > 1)
            pcn_pack_range(false, out, in, wl, in, w->wn[l], out * id / k, out * (id + 1) / k);
    }
}

// One thread's view of the workspace: its rows' slices of every tensor.
typedef struct {
    float *x[PCN_MAX_LAYERS + 1], *a[PCN_MAX_LAYERS + 1], *e[PCN_MAX_LAYERS + 1];
    float *d[PCN_MAX_LAYERS + 1], *t[PCN_MAX_LAYERS + 1], *mo[PCN_MAX_LAYERS + 1];
    int rows;
} rows_view;

static void view_rows(const pcn_disc_phase *ph, int r0, int rows, rows_view *v) {
    const pcn_model *m = ph->m;
    pcn_disc *w = ph->w;
    v->rows = rows;
    for (int l = 0; l <= m->L; l++) {
        const size_t off = (size_t)r0 * m->dims[l];
        v->x[l] = (l == 0 ? (float *)ph->x0 : l == m->L ? (float *)ph->y : w->x[l]) + off;
        if (l == 0) continue;
        v->a[l] = w->a[l] + off, v->e[l] = w->e[l] + off, v->d[l] = w->d[l] + off;
        v->t[l] = w->t[l] + off, v->mo[l] = w->mom[l] + off;
    }
}

// a_l = b_l + x_{l-1} W_l^T on the view's rows (x_{l-1}: the input, a latent, or mu).
static void preact_rows(const pcn_model *m, const pcn_disc *w, const rows_view *v, int l,
                        const float *xin) {
    const int out = m->dims[l], in = m->dims[l - 1];
    const float *b = m->bias ? m->w + m->woff[m->L] + pcn_disc_bias_off(m, l - 1) : NULL;
    for (int r = 0; b && r < v->rows; r++)
        memcpy(v->a[l] + (size_t)r * out, b, (size_t)out * sizeof(float));
    pcn_gemm_packed(v->rows, out, in, 1.0f, xin, in, w->wt[l], b ? 1.0f : 0.0f, v->a[l], out);
}

// The forward start on the view's rows; out0 (if any) gets mu_L.
static void forward_rows(const pcn_disc_phase *ph, const rows_view *v, int r0) {
    const pcn_model *m = ph->m;
    const int L = m->L;
    for (int l = 1; l <= L; l++) {
        preact_rows(m, ph->w, v, l, l == 1 ? v->x[0] : ph->w->x[l - 1] + (size_t)r0 * m->dims[l - 1]);
        if (l < L)
            pcn_disc_act_block(m->act[l - 1], m->slope, (size_t)v->rows * m->dims[l], v->a[l],
                               ph->w->x[l] + (size_t)r0 * m->dims[l]);
    }
    if (ph->out0)
        memcpy(ph->out0 + (size_t)r0 * m->dims[L], v->a[L],
               (size_t)v->rows * m->dims[L] * sizeof(float));
}

// The errors of layers lo..L on the view's rows (those below lo set to 0); returns their sum
// of squares.
static double errors_rows(const pcn_model *m, const rows_view *v, int lo) {
    double sq = 0.0;
    for (int l = 1; l < lo; l++) { // exactly 0: the layer has not moved since the forward start
        memset(v->e[l], 0, (size_t)v->rows * m->dims[l] * sizeof(float));
        memset(v->d[l], 0, (size_t)v->rows * m->dims[l] * sizeof(float));
    }
    for (int l = lo; l <= m->L; l++)
        sq += pcn_disc_error_block(m->act[l - 1], m->slope, (size_t)v->rows * m->dims[l], v->x[l],
                                   v->a[l], v->e[l], v->d[l]);
    return sq;
}

// A step's first half on the view's rows: the errors of layers lo..L (below lo: 0; their
// sum of squares returned) and the back products t_l = -d_{l+1} W_{l+1}, l = move..L-1.
static double step_errors(const pcn_disc_phase *ph, const rows_view *v, int lo, int move) {
    const pcn_model *m = ph->m;
    const double sq = errors_rows(m, v, lo);
    for (int l = move; l < m->L; l++)
        pcn_gemm_packed(v->rows, m->dims[l], m->dims[l + 1], -1.0f, v->d[l + 1], m->dims[l + 1],
                        ph->w->wn[l + 1], 0.0f, v->t[l], m->dims[l]);
    return sq;
}

// Its second half: the latent steps of layers lo..L-1, then the preactivations a_l of
// l = from..L from the new latents.
static void step_latents(const pcn_disc_phase *ph, const rows_view *v, int lo, int from) {
    const pcn_model *m = ph->m;
    for (int l = lo; l < m->L; l++)
        pcn_disc_latent_block((size_t)v->rows * m->dims[l], ph->lr, ph->beta, v->e[l], v->t[l],
                              v->mo[l], v->x[l]);
    for (int l = from; l <= m->L; l++) preact_rows(m, ph->w, v, l, v->x[l - 1]);
}

static void zero_momentum(const pcn_disc_phase *ph, const rows_view *v) {
    for (int l = 1; ph->beta != 0.0f && l < ph->m->L; l++)
        memset(v->mo[l], 0, (size_t)v->rows * ph->m->dims[l] * sizeof(float));
}

// Rows [r0, r0 + rows): the start, every step, the final errors; part[step] gets each
// step's sum of squares, part[steps] the final one.
static void run_rows(const pcn_disc_phase *ph, int r0, int rows, double *part) {
    const int L = ph->m->L;
    rows_view v;
    view_rows(ph, r0, rows, &v);
    if (ph->forward) forward_rows(ph, &v, r0);
    zero_momentum(ph, &v);
    for (int step = 0; step < ph->steps; step++) {
        // From the forward start, the errors of step s are exactly 0 below layer L - s
        // (x_l = mu_l still) and it moves only x_l for l >= L - 1 - s, so the step skips
        // the other layers' passes and products, which would give 0 up to rounding.
        const int lo = ph->forward && L - step > 1 ? L - step : 1;
        const int move = lo > 1 ? lo - 1 : 1;
        part[step] = step_errors(ph, &v, lo, move);
        step_latents(ph, &v, move, move + 1 > 2 ? move + 1 : 2);
    }
    part[ph->steps] = errors_rows(ph->m, &v, 1);
}

// Thread id of k's share of the gradient, split by output units: for every layer its
// units [j0, j1) as d^T (units, B) times x_{l-1} (B, d_{l-1}), and their bias sums.
static void gradient_units(const pcn_disc_phase *ph, int id, int k) {
    pcn_model *m = ph->m;
    const pcn_disc *w = ph->w;
    const int B = w->rows, L = m->L;
    for (int l = 1; l <= L; l++) {
        const int out = m->dims[l], in = m->dims[l - 1];
        const int base = out / k, extra = out % k;
        const int j0 = id * base + (id < extra ? id : extra), n = base + (id < extra ? 1 : 0);
        if (n == 0) continue;
        float *dt = w->dt + (size_t)id * w->dt_stride, *g = m->g + m->woff[l - 1];
        const float *d = w->d[l], *x = l == 1 ? ph->x0 : w->x[l - 1];
        for (int j = 0; j < n; j++)
            for (int r = 0; r < B; r++) dt[(size_t)j * B + r] = d[(size_t)r * out + j0 + j];
        if (B == 0) memset(g + (size_t)j0 * in, 0, (size_t)n * in * sizeof(float));
        else pcn_gemm_inplace(n, in, B, -1.0f, dt, B, x, in, 0.0f, g + (size_t)j0 * in, in);
        float *gb = m->bias ? m->g + m->woff[L] + pcn_disc_bias_off(m, l - 1) + j0 : NULL;
        for (int j = 0; gb && j < n; j++) {
            float sum = 0.0f;
            for (int r = 0; r < B; r++) sum += dt[(size_t)j * B + r];
            gb[j] = -sum;
        }
    }
}

static int team_size(const pcn_disc_phase *ph) {
    int n = pcn_cpu_threads_max();
    if (n > ph->w->rows / SPLIT_MIN_ROWS) n = ph->w->rows / SPLIT_MIN_ROWS;
    return n < 1 ? 1 : n;
}

static bool reserve_part(pcn_disc *w, int n) {
    if (w->part_cap >= n) return true;
    free(w->part);
    w->part_cap = 0;
    if (!(w->part = malloc((size_t)n * sizeof *w->part))) return false;
    w->part_cap = n;
    return true;
}

// iPC: every step's weight gradient (output units split), then the weight step on the
// calling thread (ph->weights: a collective sum and the optimizer), the weights packed
// again, and every preactivation recomputed, a_1 included. Barriers between. Returns the
// first failure of a weight step (every thread stops there).
static pcn_status ipc_rows(const pcn_disc_phase *ph, int id, int k, int r0, int rows,
                           double *part, pcn_status *st) {
    rows_view v;
    view_rows(ph, r0, rows, &v);
    if (ph->forward) forward_rows(ph, &v, r0);
    zero_momentum(ph, &v);
    for (int step = 0; step < ph->steps; step++) {
        // the forward start's hidden errors are exactly 0 (and so their gradient)
        part[step] = step_errors(ph, &v, ph->forward && step == 0 ? ph->m->L : 1, 1);
#pragma omp barrier
        gradient_units(ph, id, k);
#pragma omp barrier
#pragma omp master
        *st = ph->weights(ph->ctx, step);
#pragma omp barrier
        if (*st != PCN_OK) return *st;
        pack_share(ph->w, ph->m, id, k);
#pragma omp barrier
        step_latents(ph, &v, 1, 1);
    }
    part[ph->steps] = errors_rows(ph->m, &v, 1);
    return PCN_OK;
}

pcn_status pcn_disc_phase_cpu(void *ws, pcn_disc_phase *ph) {
    pcn_disc *w = ph->w;
    const int rows = w->rows, n = team_size(ph), S = ph->steps + 1;
    if (!pcn_cpu_phase_splits(ws) || ph->m->L < 2 || !reserve(w, ph->m, n))
        return pcn_disc_phase_plain(ws, ph);
    pcn_status st = PCN_OK;
    if (!reserve_part(w, n * S))
        return pcn_set_error(PCN_ENOMEM, "out of memory for the phase's sums");
    int team = 1;
#pragma omp parallel num_threads(n)
    {
        const int id = omp_get_thread_num(), k = omp_get_num_threads();
#pragma omp master
        team = k;
        const int base = rows / k, extra = rows % k;
        const int r0 = id * base + (id < extra ? id : extra);
        pack_share(w, ph->m, id, k);
#pragma omp barrier
        if (ph->ipc)
            ipc_rows(ph, id, k, r0, base + (id < extra ? 1 : 0), w->part + (size_t)id * S, &st);
        else
            run_rows(ph, r0, base + (id < extra ? 1 : 0), w->part + (size_t)id * S);
        if (ph->gradient && st == PCN_OK) {
#pragma omp barrier
            gradient_units(ph, id, k);
        }
    }
    if (st != PCN_OK) return st;
    ph->final_sq = 0.0;
    for (int i = 0; i < team; i++) ph->final_sq += w->part[(size_t)i * S + ph->steps];
    for (int step = ph->sum_from; step < ph->steps; step++) {
        double sq = 0.0;
        for (int i = 0; i < team; i++) sq += w->part[(size_t)i * S + step];
        pcn_status st = ph->watch(ph->ctx, step, sq);
        if (st != PCN_OK) return st;
    }
    return PCN_OK;
}
