/*
 * disc_cpu.c — the CPU backend's discriminative inference phase: split by rows over its
 * OpenMP threads, the weights packed once per phase.
 *
 * Inference is row-local (each sample's latents step on that sample's errors alone), so
 * each thread runs all T steps on its own contiguous rows with no barrier between steps:
 * per step the fused error pass of every layer, the back products t_l = -d_{l+1} W_{l+1},
 * the latent step, and the preactivations a_2..a_L of the new latents, each product through
 * pcn_gemm_packed (cpu.h) against the packed weights. Each thread keeps its sum of squares
 * per step; the watch callback (collective) runs after the parallel region, in step
 * order, on the calling thread. a_1 does not change within the phase (x_0 is clamped and
 * the weights move only between batches), so it is never recomputed here.
 *
 * Threads: as cpu_phases.c (OpenMP's with an OpenMP OpenBLAS, else 1), at most one per
 * SPLIT_MIN_ROWS rows. iPC moves the weights every step (a global gradient sum each
 * step), so it runs the plain phase; so does a workspace made with split off (the plain
 * path, PCN_ROW_PATH=0 in pcn_dist).
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "disc.h"
#include "disc_kernels.h"

#define SPLIT_MIN_ROWS 16

// Packs W_2..W_L twice (see disc.h; W_1 takes part in no product of the phase); allocates
// the buffer on first use.
static bool pack(pcn_disc *w, const pcn_model *m) {
    const int L = m->L;
    if (!w->pack) {
        size_t total = 0, at[2 * (PCN_MAX_LAYERS + 1)];
        for (int l = 2; l <= L; l++) {
            const int out = m->dims[l], in = m->dims[l - 1];
            at[2 * l] = total, total += pcn_packed_size(in, out);
            at[2 * l + 1] = total, total += pcn_packed_size(out, in);
        }
        if (!(w->pack = pcn_alloc(total * sizeof(float)))) return false;
        for (int l = 2; l <= L; l++) w->wt[l] = w->pack + at[2 * l], w->wn[l] = w->pack + at[2 * l + 1];
    }
    for (int l = 2; l <= L; l++) {
        const int out = m->dims[l], in = m->dims[l - 1];
        const float *wl = m->w + m->woff[l - 1];
        pcn_pack(true, in, out, wl, in, w->wt[l]);  // B = W_l^T (in, out)
        pcn_pack(false, out, in, wl, in, w->wn[l]); // B = W_l (out, in)
    }
    return true;
}

// Rows [r0, r0 + rows) through every step; part[step] gets their sum of squares.
static void run_rows(const pcn_disc_phase *ph, int r0, int rows, double *part) {
    const pcn_model *m = ph->m;
    pcn_disc *w = ph->w;
    const int L = m->L;
    float *x[PCN_MAX_LAYERS + 1], *a[PCN_MAX_LAYERS + 1], *e[PCN_MAX_LAYERS + 1];
    float *d[PCN_MAX_LAYERS + 1], *t[PCN_MAX_LAYERS + 1], *mo[PCN_MAX_LAYERS + 1];
    for (int l = 0; l <= L; l++) {
        const size_t off = (size_t)r0 * m->dims[l];
        x[l] = (l == 0 ? (float *)ph->x0 : l == L ? (float *)ph->y : w->x[l]) + off;
        if (l == 0) continue;
        a[l] = w->a[l] + off, e[l] = w->e[l] + off, d[l] = w->d[l] + off;
        t[l] = w->t[l] + off, mo[l] = w->mom[l] + off;
    }
    if (ph->beta != 0.0f)
        for (int l = 1; l < L; l++) memset(mo[l], 0, (size_t)rows * m->dims[l] * sizeof(float));
    for (int step = 0; step < ph->steps; step++) {
        double sq = 0.0;
        for (int l = 1; l <= L; l++)
            sq += pcn_disc_error_block(m->act[l - 1], m->slope, (size_t)rows * m->dims[l], x[l],
                                       a[l], e[l], d[l]);
        part[step] = sq;
        for (int l = 1; l < L; l++) { // t_l = -d_{l+1} W_{l+1}, then the latent step
            pcn_gemm_packed(rows, m->dims[l], m->dims[l + 1], -1.0f, d[l + 1], m->dims[l + 1],
                            w->wn[l + 1], 0.0f, t[l], m->dims[l]);
            pcn_disc_latent_block((size_t)rows * m->dims[l], ph->lr, ph->beta, e[l], t[l], mo[l],
                                  x[l]);
        }
        for (int l = 2; l <= L; l++) { // a_l = b_l + x_{l-1} W_l^T
            const float *b = m->bias ? m->w + m->woff[L] + pcn_disc_bias_off(m, l - 1) : NULL;
            for (int r = 0; b && r < rows; r++)
                memcpy(a[l] + (size_t)r * m->dims[l], b, (size_t)m->dims[l] * sizeof(float));
            pcn_gemm_packed(rows, m->dims[l], m->dims[l - 1], 1.0f, x[l - 1], m->dims[l - 1],
                            w->wt[l], b ? 1.0f : 0.0f, a[l], m->dims[l]);
        }
    }
}

pcn_status pcn_disc_phase_cpu(void *ws, pcn_disc_phase *ph) {
    pcn_disc *w = ph->w;
    const int rows = w->rows;
    int n = pcn_cpu_threads_max();
    if (n > rows / SPLIT_MIN_ROWS) n = rows / SPLIT_MIN_ROWS;
    if (n < 1) n = 1;
    if (!pcn_cpu_phase_splits(ws) || ph->ipc || ph->steps < 1 || ph->m->L < 2 ||
        !pack(w, ph->m))
        return pcn_disc_phase_plain(ws, ph);
    if (w->part_cap < n * ph->steps) {
        free(w->part);
        w->part_cap = 0;
        if (!(w->part = malloc((size_t)n * ph->steps * sizeof *w->part)))
            return pcn_set_error(PCN_ENOMEM, "out of memory for the phase's sums");
        w->part_cap = n * ph->steps;
    }
    int team = 1;
#pragma omp parallel num_threads(n)
    {
        const int id = omp_get_thread_num(), k = omp_get_num_threads();
#pragma omp master
        team = k;
        const int base = rows / k, extra = rows % k;
        const int r0 = id * base + (id < extra ? id : extra);
        run_rows(ph, r0, base + (id < extra ? 1 : 0), w->part + (size_t)id * ph->steps);
    }
    for (int step = ph->sum_from; step < ph->steps; step++) {
        double sq = 0.0;
        for (int i = 0; i < team; i++) sq += w->part[(size_t)i * ph->steps + step];
        pcn_status st = ph->watch(ph->ctx, step, sq);
        if (st != PCN_OK) return st;
    }
    return PCN_OK;
}
