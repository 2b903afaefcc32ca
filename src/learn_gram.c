/*
 * learn_gram.c — the learning phase in batch space, on one process or across ranks.
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
 * On one process with host memory the phase splits by output units over OpenMP threads,
 * every thread running all T steps on its own columns of every layer, both paths (see
 * "split by output units" below); the step-by-step loop at the end of this file, every
 * product threading itself, is the reference the tests compare it with (PCN_ROW_PATH=0)
 * and what runs across ranks and on devices.
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
 * gradient over shared memory); PCN_LEARN_FLOPS_PER_BYTE overrides it (a cluster's ratio
 * of one rank's flop rate to its network bandwidth). Per-collective latency is not
 * charged. The distributed path needs the collectives on host buffers: the trainer takes
 * it across ranks only for models in host memory.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_impl.h"

#define FLOPS_PER_BYTE 80.0 // see the header
#define PANEL 48            // columns of a batch-space layer's fused step (split phase)

struct pcn_gram {
    const pcn_backend_ops *ops;   // owns the buffers
    const pcn_collectives *coll;  // NULL: one process
    int max_local, max_global;
    float *g[PCN_MAX_LAYERS + 1];    // (B_r, B) own rows of G of X[l+1] (l = L: of X[L])
    float *s[PCN_MAX_LAYERS + 1];    // (B_r, d_l) accumulated own H[l]; s[L]: Esup (B_r, K)
    float *xall[PCN_MAX_LAYERS + 1]; // ranks > 1: (B, in) the gathered latent of layer l
    float *dall[PCN_MAX_LAYERS + 1]; // ranks > 1: (B, out) the step's gathered H (Esup)
    // The phase split by output units (one process, host; NULL otherwise): each thread's
    // columns [c0, c0 + w) of a layer as its own (B, w) block at offset c0 B of t, a and s
    // (s: S of a batch-space layer, H or Esup of a per-step layer).
    float *t[PCN_MAX_LAYERS + 1];    // (B, d_l) the target: the data, a latent or Y
    float *a[PCN_MAX_LAYERS + 1];    // (B, d_l) A (Yhat)
    float *xt[PCN_MAX_LAYERS + 1];   // (in, B) X^T of a per-step layer
    float *wt;                       // (model's weights) per-step layers' W rows transposed
    float *panel;                    // (OpenMP threads, B, PANEL) each thread's H panel
    double *part;                    // (OpenMP threads) each thread's sum of squares
    int part_max;
};

static bool distributed(const pcn_gram *gr) { return gr->coll && gr->coll->size > 1; }


double pcn_gram_flops_per_byte(void) {
    const char *v = getenv("PCN_LEARN_FLOPS_PER_BYTE");
    if (!v || !*v) return FLOPS_PER_BYTE;
    char *end;
    errno = 0;
    double f = strtod(v, &end);
    return errno == 0 && *end == '\0' && f >= 0.0 && isfinite(f) ? f : FLOPS_PER_BYTE;
}

pcn_gram *pcn_gram_init(const pcn_model *m, int max_local, int max_global,
                        const pcn_collectives *coll) {
    pcn_gram *gr = calloc(1, sizeof *gr);
    if (!gr) return NULL;
    gr->ops = m->ops, gr->coll = coll;
    gr->max_local = max_local, gr->max_global = max_global;
    gr->part_max = omp_get_max_threads();
    const bool split = !distributed(gr) && m->ops->gemm_inplace;
    const size_t bl = (size_t)max_local, bg = (size_t)max_global;
    bool ok = (gr->part = malloc((size_t)gr->part_max * sizeof *gr->part)) != NULL;
    if (split) {
        gr->wt = pcn_alloc((size_t)m->woff[m->L + 1] * sizeof(float));
        gr->panel = pcn_alloc((size_t)gr->part_max * bl * PANEL * sizeof(float));
        ok = ok && gr->wt && gr->panel;
    }
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
        if (split) {
            gr->t[l] = pcn_alloc(bl * out * sizeof(float));
            gr->a[l] = pcn_alloc(bl * out * sizeof(float));
            gr->xt[l] = pcn_alloc(bl * in * sizeof(float));
            ok = ok && gr->t[l] && gr->a[l] && gr->xt[l];
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
        pcn_free(gr->t[l]), pcn_free(gr->a[l]), pcn_free(gr->xt[l]);
    }
    pcn_free(gr->wt), pcn_free(gr->panel);
    free(gr->part);
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
    pcn_status st = gr->coll->sum_f32(gr->coll->ctx, v, n, gr->ops);
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

// ---- the phase on one process, split by output units ----------------------------------
//
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
// backend's gemm_inplace:
//   - a batch-space layer steps panel by panel, PANEL columns at a time: the panel's
//     errors (H into a panel of the thread's own, S += H), then A += (lr/B) G H with the
//     panel still in cache;
//   - a per-step layer holds its rows of W transposed, WT (in, w) in gr->wt, for the phase:
//     A = X WT, then WT += (lr/B) X^T H, X^T made once per phase; W takes WT back at the end.
// The state's A, E and H get the thread's columns back with the energy after the phase
// (E and H are not stored during the steps). The steps' float operations on an element do
// not depend on the team; A's start and the final S^T X go through the backend's gemm,
// whose BLAS may pick its kernels by shape.

#define UNIT 16 // floats of a unit: one cache line

static int team_last; // for the tests (pcn_gram_last_team)

int pcn_gram_split_threads(const pcn_model *m, int max) {
    int widest = m->K;
    for (int l = 0; l < m->L; l++) widest = m->dims[l] > widest ? m->dims[l] : widest;
    const int units = (widest + UNIT - 1) / UNIT;
    return units < max ? units : max;
}

int pcn_gram_last_team(void) { return team_last; }

typedef struct {
    pcn_gram *gr;
    pcn_model *m;
    pcn_state *s;
    const float *x, *y;
    int t_steps, report_steps;
    float alpha;
    const bool *use;
    pcn_status (*report)(void *ctx, int step, double sumsq);
    void *ctx;
    bool stop;     // set by the master, read by all after a barrier
    pcn_status st; // the master's status
} unit_phase;

typedef struct {
    int c0, w;          // the thread's columns [c0, c0 + w) of the layer's outputs
    float *t, *a, *s;   // (B, w) its blocks of gr->t, gr->a, gr->s
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
    const pcn_gram *gr = ph->gr;
    const int B = ph->s->batch;
    int first = 0; // the thread taking the layer's first extra unit
    for (int l = 0; l <= m->L; l++) {
        const int out = pcn_layer_out(m, l), in = pcn_layer_in(m, l);
        const int units = (out + UNIT - 1) / UNIT;
        int64_t u0, un;
        pcn_shard(units, (id - first + team) % team, team, &u0, &un);
        first = (first + units % team) % team;
        const int64_t end = (u0 + un) * UNIT < out ? (u0 + un) * UNIT : out;
        unit_cols *c = &u[l];
        c->c0 = (int)(u0 * UNIT), c->w = un > 0 ? (int)(end - u0 * UNIT) : 0;
        const size_t off = (size_t)c->c0 * B;
        c->t = gr->t[l] + off, c->a = gr->a[l] + off, c->s = gr->s[l] + off;
        c->wt = gr->wt + m->woff[l] + (size_t)c->c0 * in;
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
        m->ops->gemm_inplace(B, w, in, 1.0f, unit_input(ph, l), in, u->wt, w, 0.0f, u->a, w);
    float *s = acc ? u->s + p : NULL;
    if (l == m->L) return m->ops->sup_error_block(B, n, w, u->a + p, u->t + p, h, ldh, s);
    return m->ops->error_block(m->act[l], B, n, w, u->t + p, u->a + p, NULL, h, ldh, s);
}

// Columns [p, p + n) of u's block of layer l move with H (Esup) in h: A += (lr/B) G H, or
// WT += (lr/B) X^T H.
static void unit_update(const unit_phase *ph, int l, const unit_cols *u, int p, int n,
                        const float *h, int ldh) {
    const pcn_model *m = ph->m;
    const int B = ph->s->batch, in = pcn_layer_in(m, l);
    const float alpha = (l < m->L ? 1.0f : -1.0f) * ph->alpha;
    if (ph->use[l])
        m->ops->gemm_inplace(B, n, B, alpha, ph->gr->g[l], B, h, ldh, 1.0f, u->a + p, u->w);
    else
        m->ops->gemm_inplace(in, n, B, alpha, ph->gr->xt[l], B, h, ldh, 1.0f, u->wt + p, u->w);
}

// A step of u's columns of layer l that reports nothing; a batch-space layer panel by panel.
static void unit_step(const unit_phase *ph, int l, const unit_cols *u, int id) {
    if (!ph->use[l]) {
        unit_errors(ph, l, u, 0, u->w, u->s, u->w, false);
        unit_update(ph, l, u, 0, u->w, u->s, u->w);
        return;
    }
    float *hp = ph->gr->panel + (size_t)id * ph->gr->max_local * PANEL;
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
    ph->gr->part[id] = sq;
#pragma omp barrier
#pragma omp master
    {
        double total = 0.0;
        for (int i = 0; i < team; i++) total += ph->gr->part[i];
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
            m->ops->gemm_inplace(B, w, in, 1.0f, unit_input(ph, l), in, u[l].wt, w, 0.0f,
                                 u[l].a, w);
        float *a = (l < L ? s->a[l] : s->yhat) + c0;
        copy_block(B, w, u[l].a, w, a, out);
        sq += l == L ? m->ops->sup_error_block(B, w, out, a, ph->y + c0, s->esup + c0, out, NULL)
                     : m->ops->error_block(m->act[l], B, w, out, unit_target(ph, l) + c0, a,
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
    ph->gr->part[id] = unit_finish(ph, u, stopped, after);
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
            transpose(B, in, x, in, ph->gr->xt[l], B);
    }
#pragma omp parallel num_threads(threads)
    {
#pragma omp master
        team_last = omp_get_num_threads();
        unit_thread(ph, omp_get_thread_num(), omp_get_num_threads(), after_sq != NULL);
    }
    if (after_sq && ph->st == PCN_OK) {
        double total = 0.0;
        for (int i = 0; i < team_last; i++) total += ph->gr->part[i];
        *after_sq = total;
    }
    return ph->st;
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

pcn_status pcn_gram_learn(pcn_gram *gr, pcn_model *m, pcn_state *s, const float *x,
                          const float *y, int B, int t_steps, float alpha, const bool *use,
                          pcn_status (*report)(void *ctx, int step, double sumsq), void *ctx,
                          int report_steps, int threads, double *comm, double *after_sq) {
    const int L = m->L;
    if (s->batch > gr->max_local || B > gr->max_global)
        return pcn_set_error(PCN_EINVAL, "batch %d (%d here) above the Gram workspace", B,
                             s->batch);
    team_last = 0;
    if (threads > 0 && gr->wt) {
        unit_phase ph = {gr, m, s, x, y, t_steps, report_steps, alpha, use, report, ctx,
                         false, PCN_OK};
        return steps_split(&ph, threads < gr->part_max ? threads : gr->part_max, after_sq);
    }
    pcn_status st = PCN_OK;
    for (int l = 0; st == PCN_OK && l <= L; l++)
        if (use[l]) st = gram_setup(gr, m, s, l, B, comm);
    size_t poff[PCN_MAX_LAYERS + 1], plain_n = pack(m, use, false, poff);
    for (int step = 0; st == PCN_OK && step < t_steps; step++) {
        double sq = 0.0;
        const bool want = report && step < report_steps;
        if (want) m->ops->sum_begin();
        for (int l = 0; l <= L; l++) sq += layer_errors(m, s, x, y, l, use[l]);
        if (want) {
            m->ops->sum_finish();
            if ((st = report(ctx, step, sq + m->ops->sum_read())) != PCN_OK) return st;
        }
        for (int l = 0; st == PCN_OK && l <= L; l++)
            st = layer_update(gr, m, s, l, use[l], B, alpha, poff[l], comm);
        if (st == PCN_OK && distributed(gr))
            st = apply_packed(gr, m, use, false, poff, plain_n, alpha, comm);
    }
    return st == PCN_OK ? finish(gr, m, s, x, y, use, alpha, comm, after_sq) : st;
}
