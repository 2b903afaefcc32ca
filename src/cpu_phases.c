/*
 * cpu_phases.c — how the CPU backend runs the trainer's phases (phase.h): its OpenMP thread
 * teams, its packed weights, the row split of inference and the output-unit split of the
 * batch-space learning phase. Nothing outside the CPU backend sees these threads.
 *
 * Threads: OpenMP's when OpenBLAS runs on OpenMP (inside a parallel region it stays on the
 * calling thread; a pthread OpenBLAS would start its own threads in every one), else 1.
 * With pcn_phase_params.split false, or on a device, the plain phases run instead (every
 * product threading itself): the reference the tests compare the splits with.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "gram.h"
#include "phase.h"

#define SPLIT_MIN_ROWS 16 // rows of an inference phase's smallest share
#define PANEL 48          // columns of a batch-space layer's fused step (unit split)

typedef struct {
    bool split;
    int threads_max;                 // the most threads a split may take
    int max_rows;
    double *part;                    // (threads_max) each thread's sum of squares
    // The row split: every weight matrix packed for pcn_gemm_packed: wt[l] = W[l]^T (in,
    // out) for A = X W^T, wn[l] = W[l] (out, in) for X += lr H W (l = L: the readout).
    float *pack;
    float *wt[PCN_MAX_LAYERS + 1], *wn[PCN_MAX_LAYERS + 1];
    // The unit split (NULL unless asked for): each thread's columns [c0, c0 + w) of a
    // layer as its own (B, w) block at offset c0 B of t and a.
    float *t[PCN_MAX_LAYERS + 1];    // (B, d_l) the target: the data, a latent or Y
    float *a[PCN_MAX_LAYERS + 1];    // (B, d_l) A (Yhat)
    float *xt[PCN_MAX_LAYERS + 1];   // (in, B) X^T of a per-step layer
    float *wtu;                      // (model's weights) per-step layers' W rows transposed
    float *panel;                    // (threads_max, B, PANEL) each thread's H panel
    int units_team;                  // the team of the last unit split
} cpu_ws;

static int last_rows_team, last_units_team; // for the tests

int pcn_cpu_threads_max(void) {
#ifdef PCN_BLAS_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int pcn_cpu_rows_last_team(void) { return last_rows_team; }
bool pcn_cpu_phase_splits(const void *ws) { return ((const cpu_ws *)ws)->split; }
int pcn_cpu_units_last_team(void) { return last_units_team; }

// ----------------------------------------------------------------------------------------
// The workspace
// ----------------------------------------------------------------------------------------

static bool pack_alloc(cpu_ws *ws, const pcn_model *m) {
    size_t total = 0, at[2 * (PCN_MAX_LAYERS + 1)];
    for (int l = 0; l <= m->L; l++) {
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
        at[2 * l] = total, total += pcn_packed_size(in, out);
        at[2 * l + 1] = total, total += pcn_packed_size(out, in);
    }
    if (!(ws->pack = pcn_alloc(total * sizeof(float)))) return false;
    for (int l = 0; l <= m->L; l++)
        ws->wt[l] = ws->pack + at[2 * l], ws->wn[l] = ws->pack + at[2 * l + 1];
    return true;
}

static bool units_alloc(cpu_ws *ws, const pcn_model *m) {
    const size_t rows = (size_t)ws->max_rows;
    ws->wtu = pcn_alloc((size_t)m->woff[m->L + 1] * sizeof(float));
    ws->panel = pcn_alloc((size_t)ws->threads_max * rows * PANEL * sizeof(float));
    bool ok = ws->wtu && ws->panel;
    for (int l = 0; ok && l <= m->L; l++) {
        const size_t out = (size_t)pcn_layer_out(m, l), in = (size_t)pcn_layer_in(m, l);
        ws->t[l] = pcn_alloc(rows * out * sizeof(float));
        ws->a[l] = pcn_alloc(rows * out * sizeof(float));
        ws->xt[l] = pcn_alloc(rows * in * sizeof(float));
        ok = ws->t[l] && ws->a[l] && ws->xt[l];
    }
    return ok;
}

void pcn_cpu_phase_free(void *p) {
    cpu_ws *ws = p;
    if (!ws) return;
    for (int l = 0; l <= PCN_MAX_LAYERS; l++)
        pcn_free(ws->t[l]), pcn_free(ws->a[l]), pcn_free(ws->xt[l]);
    pcn_free(ws->wtu), pcn_free(ws->panel), pcn_free(ws->pack);
    free(ws->part);
    free(ws);
}

void *pcn_cpu_phase_init(const pcn_model *m, const pcn_phase_params *p) {
    cpu_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->split = p->split, ws->max_rows = p->max_rows > 0 ? p->max_rows : 1;
    ws->threads_max = pcn_cpu_threads_max();
    bool ok = (ws->part = malloc((size_t)ws->threads_max * sizeof *ws->part)) != NULL;
    if (ok && ws->split) ok = pack_alloc(ws, m) && (!p->units || units_alloc(ws, m));
    if (!ok) {
        pcn_cpu_phase_free(ws);
        return NULL;
    }
    return ws;
}

// ----------------------------------------------------------------------------------------
// Inference split by rows
// ----------------------------------------------------------------------------------------

static void pack_fill(cpu_ws *ws, const pcn_model *m) {
    for (int l = 0; l <= m->L; l++) {
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
        const float *w = m->w + m->woff[l];
        pcn_pack(true, in, out, w, in, ws->wt[l]);  // B = W^T (in, out)
        pcn_pack(false, out, in, w, in, ws->wn[l]); // B = W (out, in)
    }
}

static void packed_xmt(const void *ctx, int l, int B, int out, int in, const float *x,
                       float *c) {
    const cpu_ws *ws = ctx;
    pcn_gemm_packed(B, out, in, 1.0f, x, in, ws->wt[l], 0.0f, c, out);
}

static void packed_dm(const void *ctx, int l, int B, int out, int in, float alpha,
                      const float *d, float beta, float *c) {
    const cpu_ws *ws = ctx;
    pcn_gemm_packed(B, in, out, alpha, d, out, ws->wn[l], beta, c, in);
}

pcn_products pcn_cpu_packed_products(void *ws, const pcn_model *m) {
    pack_fill(ws, m);
    return (pcn_products){ws, packed_xmt, packed_dm};
}

// Inference is row-local, so each thread runs every step on its own contiguous rows, its
// products on itself alone (against the weights packed once for the phase); the team
// forks once per phase instead of at every product and pass. Threads meet only where a
// step's sum is wanted: the master sums their parts in thread order and calls watch. A
// team of one runs outside any parallel region, so the element-wise passes may still
// thread themselves.
typedef struct {
    cpu_ws *ws;
    pcn_infer_phase *ph;
    bool stop;     // the master's decision, read by every thread after a barrier
    pcn_status st; // the master's status
} rows_run;

static void rows_thread(rows_run *r, int id, int team) {
    pcn_infer_phase *ph = r->ph;
    const pcn_model *m = ph->m;
    const pcn_products prod = {r->ws, packed_xmt, packed_dm};
    int64_t r0, rows;
    pcn_train_shard(ph->s->batch, id, team, &r0, &rows);
    pcn_state v;
    pcn_state_rows(ph->s, (int)r0, (int)rows, &v);
    const float *x = ph->x + (size_t)r0 * m->dims[0];
    const float *y = ph->y ? ph->y + (size_t)r0 * m->K : NULL;
    for (int step = 0; step < ph->steps; step++) {
        const bool want = step >= ph->sum_from;
        double sq = pcn_step_errors_with(m, &prod, &v, x, y, ph->lr, true, want);
        if (!want) continue;
        r->ws->part[id] = sq;
#pragma omp barrier
#pragma omp master
        {
            double total = 0.0;
            for (int i = 0; i < team; i++) total += r->ws->part[i];
            r->st = ph->watch(ph->ctx, step, total, &r->stop);
            if (r->st != PCN_OK) r->stop = true;
            if (r->stop) ph->taken = step + 1;
        }
#pragma omp barrier
        if (r->stop) break;
    }
}

pcn_status pcn_cpu_infer_phase(void *p, pcn_infer_phase *ph) {
    cpu_ws *ws = p;
    if (!ws->split) return pcn_phase_plain_infer(ws, ph);
    rows_run r = {ws, ph, false, PCN_OK};
    const int fit = ph->s->batch / SPLIT_MIN_ROWS;
    const int n = fit < 1 ? 1 : fit < ws->threads_max ? fit : ws->threads_max;
    pack_fill(ws, ph->m);
    ph->taken = ph->steps;
    last_rows_team = 1;
    if (n == 1) {
        rows_thread(&r, 0, 1);
    } else {
#pragma omp parallel num_threads(n)
        {
#pragma omp master
            last_rows_team = omp_get_num_threads();
            rows_thread(&r, omp_get_thread_num(), omp_get_num_threads());
        }
    }
    ph->s->has_target = ph->y != NULL;
    return r.st;
}

// ----------------------------------------------------------------------------------------
// The batch-space learning phase on one process, split by output units
// ----------------------------------------------------------------------------------------

// With the latents fixed, column j of a layer's A (Yhat for the readout) depends on row j of
// its weights and column j of its H (Esup) alone, on either path: A[:, j] = X W[j, :]^T,
// W[j, :] += (lr/B) H[:, j]^T X; or A[:, j] += (lr/B) G H[:, j], W[j, :] += (lr/B) S[:, j]^T X
// at the end. So a thread that owns some output units of every layer (their columns of
// A, E, H, S and rows of W) runs all T steps, the final update and the energy after the
// phase without waiting for any other: threads meet only at steps whose energy is
// reported (then the master sums their parts in thread order and calls report).
//
// Units are whole 16-float vectors; the threads that take a layer's extra units follow on
// from the previous layer's. A thread copies its columns of the target and of A into
// blocks of its own, (B, w), and keeps S (a per-step layer: H) there: columns of shared
// rows would put the two threads' ends of every row into one pair of cache lines, which
// the hardware prefetchers pass back and forth (on the development VM that doubled the
// time of the error pass with two threads). Every product runs on its thread, in the
// in-place kernel (pcn_gemm_inplace):
//   - a batch-space layer steps panel by panel, PANEL columns at a time: the panel's
//     errors (H into a panel of the thread's own, S += H), then A += (lr/B) G H with the
//     panel still in cache;
//   - a per-step layer holds its rows of W transposed, WT (in, w) in ws->wt, for the phase:
//     A = X WT, then WT += (lr/B) X^T H, X^T made once per phase; W takes WT back at the end.
// The state's A, E and H get the thread's columns back with the energy after the phase
// (E and H are not stored during the steps). The steps' float operations on an element do
// not depend on the team; A's start and the final S^T X go through the backend's gemm,
// whose BLAS may pick its kernels by shape.

#define UNIT 16 // floats of a unit: one cache line

// Threads for this rank's units: at most max, each at least one unit of the widest layer.
static int unit_threads(const pcn_model *m, int rank, int ranks, int max) {
    int widest = 0;
    for (int l = 0; l <= m->L; l++) {
        int lo, count;
        pcn_gram_unit_rows(m, l, rank, ranks, &lo, &count);
        widest = count > widest ? count : widest;
    }
    const int units = (widest + UNIT - 1) / UNIT;
    return units < 1 ? 1 : units < max ? units : max;
}

int pcn_cpu_unit_threads(const pcn_model *m, int max) { return unit_threads(m, 0, 1, max); }

typedef struct {
    cpu_ws *ws;
    pcn_gram *gr;
    pcn_model *m;
    pcn_state *s;
    const float *x, *y;
    int t_steps, report_steps;
    float alpha;
    const bool *use;
    pcn_status (*report)(void *ctx, int step, double sumsq);
    void *ctx;
    int rank, ranks; // this rank's rows of every layer (pcn_gram_unit_rows)
    bool stop;       // set by the master, read by all after a barrier
    pcn_status st;   // the master's status
} unit_phase;

typedef struct {
    int c0, w;          // the thread's columns [c0, c0 + w) of the layer's outputs
    float *t, *a, *s;   // (B, w) its blocks of ws->t, ws->a and the learner's S
    float *wt;          // a per-step layer's (in, w) W rows transposed
} unit_cols;

// The target of layer l in the state's layout (leading dimension out).
static const float *unit_target(const unit_phase *ph, int l) {
    return l == ph->m->L ? ph->y : l == 0 ? ph->x : ph->s->x[l];
}

// The latent layer l's weights multiply (l = L: the readout's).
static const float *unit_input(const unit_phase *ph, int l) {
    return ph->s->x[l < ph->m->L ? l + 1 : ph->m->L];
}

// dst (cols, rows) = src (rows, cols) transposed, leading dimensions lds and ldd.
static void transpose(int rows, int cols, const float *src, int lds, float *dst, int ldd) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(size_t)j * ldd + i] = src[(size_t)i * lds + j];
}

// dst = src over rows x cols, leading dimensions lds and ldd.
static void copy_block(int rows, int cols, const float *src, int lds, float *dst, int ldd) {
    for (int i = 0; i < rows; i++)
        memcpy(dst + (size_t)i * ldd, src + (size_t)i * lds, (size_t)cols * sizeof(float));
}

// Every layer's columns for thread id of team, and their blocks set up: the target's
// columns copied, A's start (batch space) or WT (per step), S zero.
static void unit_setup(const unit_phase *ph, int id, int team, unit_cols *u) {
    const pcn_model *m = ph->m;
    const cpu_ws *ws = ph->ws;
    const int B = ph->s->batch;
    int first = 0; // the thread taking the layer's first extra unit
    for (int l = 0; l <= m->L; l++) {
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
        int lo, mine; // this rank's rows of the layer, split by the team in units
        pcn_gram_unit_rows(m, l, ph->rank, ph->ranks, &lo, &mine);
        const int units = (mine + UNIT - 1) / UNIT;
        int64_t u0, un;
        pcn_train_shard(units, (id - first + team) % team, team, &u0, &un);
        first = (first + units % team) % team;
        const int64_t end = lo + ((u0 + un) * UNIT < mine ? (u0 + un) * UNIT : mine);
        unit_cols *c = &u[l];
        c->c0 = (int)(lo + u0 * UNIT), c->w = un > 0 ? (int)(end - c->c0) : 0;
        const size_t off = (size_t)c->c0 * B;
        c->t = ws->t[l] + off, c->a = ws->a[l] + off, c->s = ph->gr->s[l] + off;
        c->wt = ws->wtu + m->woff[l] + (size_t)c->c0 * in;
        if (!c->w) continue;
        const float *w = m->w + m->woff[l] + (size_t)c->c0 * in;
        copy_block(B, c->w, unit_target(ph, l) + c->c0, out, c->t, c->w);
        if (ph->use[l]) {
            m->ops->gemm(false, true, B, c->w, in, 1.0f, unit_input(ph, l), in, w, in, 0.0f,
                         c->a, c->w);
            memset(c->s, 0, (size_t)B * c->w * sizeof(float));
        } else {
            transpose(c->w, in, w, in, c->wt, c->w);
        }
    }
}

// Errors of columns [p, p + n) of u's block of layer l (a per-step layer's A from WT
// first), H (Esup) into h with leading dimension ldh; acc: also S += H. Returns the sum of
// squares.
static double unit_errors(const unit_phase *ph, int l, const unit_cols *u, int p, int n,
                          float *h, int ldh, bool acc) {
    const pcn_model *m = ph->m;
    const int B = ph->s->batch, w = u->w, in = pcn_layer_in(m, l);
    if (!ph->use[l])
        pcn_gemm_inplace(B, w, in, 1.0f, unit_input(ph, l), in, u->wt, w, 0.0f, u->a, w);
    float *s = acc ? u->s + p : NULL;
    if (l == m->L) return pcn_cpu_sup_error_block(B, n, w, u->a + p, u->t + p, h, ldh, s);
    return pcn_cpu_error_block(m->act[l], B, n, w, u->t + p, u->a + p, NULL, h, ldh, s);
}

// Columns [p, p + n) of u's block of layer l move with H (Esup) in h: A += (lr/B) G H, or
// WT += (lr/B) X^T H.
static void unit_update(const unit_phase *ph, int l, const unit_cols *u, int p, int n,
                        const float *h, int ldh) {
    const pcn_model *m = ph->m;
    const int B = ph->s->batch, in = pcn_layer_in(m, l);
    const float alpha = (l < m->L ? 1.0f : -1.0f) * ph->alpha;
    if (ph->use[l])
        pcn_gemm_inplace(B, n, B, alpha, ph->gr->g[l], B, h, ldh, 1.0f, u->a + p, u->w);
    else
        pcn_gemm_inplace(in, n, B, alpha, ph->ws->xt[l], B, h, ldh, 1.0f, u->wt + p, u->w);
}

// A step of u's columns of layer l that reports nothing; a batch-space layer panel by panel.
static void unit_step(const unit_phase *ph, int l, const unit_cols *u, int id) {
    if (!ph->use[l]) {
        unit_errors(ph, l, u, 0, u->w, u->s, u->w, false);
        unit_update(ph, l, u, 0, u->w, u->s, u->w);
        return;
    }
    float *hp = ph->ws->panel + (size_t)id * ph->ws->max_rows * PANEL;
    for (int p = 0; p < u->w; p += PANEL) {
        const int n = u->w - p < PANEL ? u->w - p : PANEL;
        unit_errors(ph, l, u, p, n, hp, PANEL, true);
        unit_update(ph, l, u, p, n, hp, PANEL);
    }
}

// A step whose energy is reported: every error first, then the master reports the sum and
// may stop the phase (S, which already took H, is then never used); then the updates. A
// batch-space layer's H waits in the state's H (Esup). Returns false on a stop.
static bool unit_reported_step(unit_phase *ph, const unit_cols *u, int step, int id, int team) {
    const pcn_model *m = ph->m;
    const pcn_state *s = ph->s;
    const int L = m->L;
    double sq = 0.0;
    for (int l = 0; l <= L; l++) {
        if (!u[l].w) continue;
        float *h = (l < L ? s->h[l] : s->esup) + u[l].c0;
        sq += ph->use[l] ? unit_errors(ph, l, &u[l], 0, u[l].w, h, pcn_layer_out(m, l), true)
                         : unit_errors(ph, l, &u[l], 0, u[l].w, u[l].s, u[l].w, false);
    }
    ph->ws->part[id] = sq;
#pragma omp barrier
#pragma omp master
    {
        double total = 0.0;
        for (int i = 0; i < team; i++) total += ph->ws->part[i];
        if ((ph->st = ph->report(ph->ctx, step, total)) != PCN_OK) ph->stop = true;
    }
#pragma omp barrier
    if (ph->stop) return false;
    for (int l = 0; l <= L; l++) {
        if (!u[l].w) continue;
        const float *h = (l < L ? s->h[l] : s->esup) + u[l].c0;
        if (ph->use[l])
            unit_update(ph, l, &u[l], 0, u[l].w, h, pcn_layer_out(m, l));
        else
            unit_update(ph, l, &u[l], 0, u[l].w, u[l].s, u[l].w);
    }
    return true;
}

// The end of the phase for u's columns: the weights (a per-step layer's from WT; a
// batch-space layer's move once, W += (lr/B) S^T X, unless the phase stopped), then A back
// into the state and the energy the phase ends on (with E and H), if wanted.
static double unit_finish(const unit_phase *ph, const unit_cols *u, bool stopped, bool after) {
    const pcn_model *m = ph->m;
    const pcn_state *s = ph->s;
    const int B = s->batch, L = m->L;
    double sq = 0.0;
    for (int l = 0; l <= L; l++) {
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l), c0 = u[l].c0, w = u[l].w;
        float *wr = m->w + m->woff[l] + (size_t)c0 * in;
        if (!w) continue;
        if (!ph->use[l])
            transpose(in, w, u[l].wt, w, wr, in);
        else if (!stopped)
            m->ops->gemm(true, false, w, in, B, (l < L ? 1.0f : -1.0f) * ph->alpha, u[l].s, w,
                         unit_input(ph, l), in, 1.0f, wr, in);
        if (stopped || !after) continue;
        if (!ph->use[l]) // A from the final weights
            pcn_gemm_inplace(B, w, in, 1.0f, unit_input(ph, l), in, u[l].wt, w, 0.0f,
                                 u[l].a, w);
        float *a = (l < L ? s->a[l] : s->yhat) + c0;
        copy_block(B, w, u[l].a, w, a, out);
        sq += l == L ? pcn_cpu_sup_error_block(B, w, out, a, ph->y + c0, s->esup + c0, out, NULL)
                     : pcn_cpu_error_block(m->act[l], B, w, out, unit_target(ph, l) + c0, a,
                                           s->e[l] + c0, s->h[l] + c0, out, NULL);
    }
    return sq;
}

static void unit_thread(unit_phase *ph, int id, int team, bool after) {
    const int L = ph->m->L;
    unit_cols u[PCN_MAX_LAYERS + 1];
    unit_setup(ph, id, team, u);
    bool stopped = false;
    for (int step = 0; !stopped && step < ph->t_steps; step++) {
        if (ph->report && step < ph->report_steps) {
            stopped = !unit_reported_step(ph, u, step, id, team);
            continue;
        }
        for (int l = 0; l <= L; l++)
            if (u[l].w) unit_step(ph, l, &u[l], id);
    }
    // On a stop the per-step layers keep their updates so far, as on the plain path.
    ph->ws->part[id] = unit_finish(ph, u, stopped, after);
}

static pcn_status steps_split(unit_phase *ph, int threads, double *after_sq) {
    const pcn_model *m = ph->m;
    const int B = ph->s->batch;
    for (int l = 0; l <= m->L; l++) { // G of the batch-space layers, X^T of the others
        const int in = pcn_layer_in(m, l);
        const float *x = unit_input(ph, l);
        if (ph->use[l])
            m->ops->gemm(false, true, B, B, in, 1.0f, x, in, x, in, 0.0f, ph->gr->g[l], B);
        else
            transpose(B, in, x, in, ph->ws->xt[l], B);
    }
#pragma omp parallel num_threads(threads)
    {
#pragma omp master
        ph->ws->units_team = omp_get_num_threads();
        unit_thread(ph, omp_get_thread_num(), omp_get_num_threads(), after_sq != NULL);
    }
    if (after_sq && ph->st == PCN_OK) {
        double total = 0.0;
        for (int i = 0; i < ph->ws->units_team; i++) total += ph->ws->part[i];
        *after_sq = total;
    }
    return ph->st;
}


pcn_status pcn_cpu_gram_phase(void *p, pcn_gram_phase *g) {
    cpu_ws *ws = p;
    last_units_team = 0;
    if (!ws->split || !ws->wtu) {
        PCN_ASSERT(g->ranks == 1); // the trainer splits units across ranks only with the split
        return pcn_gram_phase_plain(ws, g);
    }
    unit_phase ph = {.ws = ws, .gr = g->gr, .m = g->m, .s = g->s, .x = g->x, .y = g->y,
                     .t_steps = g->t_steps, .report_steps = g->report_steps,
                     .alpha = g->alpha, .use = g->use, .report = g->report, .ctx = g->ctx,
                     .rank = g->rank, .ranks = g->ranks, .st = PCN_OK};
    const int team = unit_threads(g->m, g->rank, g->ranks, ws->threads_max);
    pcn_status st = steps_split(&ph, team, g->after_sq);
    last_units_team = ws->units_team;
    return st;
}
