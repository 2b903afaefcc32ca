/*
 * test_disc.c — the discriminative mode's gradients, activations, optimizers and cosine
 * schedule against formulas written here in double precision (white box: src/disc.h,
 * src/optim.h).
 *
 * What is proved:
 *   1. For a network 5-4-3-3 with biases, batch 3, and every activation (relu, tanh,
 *      sigmoid, identity, gelu, leaky_relu with slope 0.1, hard_tanh) on the hidden layers:
 *      pcn_disc_forward's latents and outputs equal a double forward pass; the energy sum
 *      pcn_disc_errors returns equals 2 E with E = sum_rows sum_l 1/2 ||x_l - mu_l||^2
 *      written here; the latent gradient g_l = e_l + t_l (pcn_disc_errors, pcn_disc_back)
 *      equals central differences of E w.r.t. every latent; the weight and bias gradient
 *      m->g (pcn_disc_gradient, the batch SUM) equals central differences of E w.r.t.
 *      every weight and bias. Inputs are redrawn until every hidden preactivation lies at
 *      least 0.02 from the activation's kinks (0 for relu/leaky_relu, +-1 for hard_tanh).
 *   2. gelu equals jax.nn.gelu's formula (approximate=True) x/2 (1 + tanh(sqrt(2/pi)
 *      (x + 0.044715 x^3))) in double; every activation's value equals its double formula
 *      and its derivative equals central differences of that formula and of the library's
 *      own float function (pcn_activation_apply_slope / pcn_activation_deriv_slope).
 *   3. Three steps of sgd, momentum and adamw (weight decay on, gradient scale 1/4,
 *      a different lr per step) through pcn_optim_apply equal the formulas in double
 *      (optax adamw with t = step + 1), weights and moments; pcn_lr_cosine equals optax's
 *      warmup_cosine_decay_schedule formula and its anchors (lr at s = 0, the peak at the
 *      warm-up's end, the mean of peak and end half-way, the end value at s = total).
 *
 * Tolerances. FD: the energy is double and so are its central differences (h = 1e-6:
 * truncation ~h^2 |E'''| ~ 1e-12, rounding ~1e-16 |E| / h ~ 1e-10). The engine computes in
 * float32 on the same float values: every gradient entry is a sum of a few (<= 5) products
 * of O(1) numbers, so it carries a few float ulps of O(1), ~1e-6 absolute, whatever the BLAS
 * kernel's summation order or the libm's tanhf/expf (each within ~2 ulp). atol 1e-5 +
 * rtol 1e-4 is a 10x margin over that and far below any wrong sign, missing term, factor of
 * f' or slope (gradients are O(0.1-1)). The other tolerances are justified where used.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "disc.h"
#include "optim.h"
#include "testutil.h"

#define PI_D 3.14159265358979323846
#define SLOPE 0.1
#define FD_H 1e-6
#define FD_ATOL 1e-5
#define FD_RTOL 1e-4

enum { L = 3, B = 3, MAXD = 5, NW = 5 * 4 + 4 * 3 + 3 * 3 + 4 + 3 + 3 };
static const int DIMS[L + 1] = {5, 4, 3, 3};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static double urand(double lo, double hi) {
    return lo + (hi - lo) * ((double)(tu_rng_next(&rng_state) >> 11) / 9007199254740992.0);
}

// ---- activations in double ------------------------------------------------------------------

static double gelu_jax(double x) { // jax.nn.gelu(approximate=True)
    return x * 0.5 * (1.0 + tanh(sqrt(2.0 / PI_D) * (x + 0.044715 * x * x * x)));
}

static double f_d(pcn_activation act, double a) {
    switch (act) {
    case PCN_ACT_RELU: return a > 0.0 ? a : 0.0;
    case PCN_ACT_TANH: return tanh(a);
    case PCN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-a));
    case PCN_ACT_GELU: return gelu_jax(a);
    case PCN_ACT_LEAKY_RELU: return a > 0.0 ? a : SLOPE * a;
    case PCN_ACT_HARD_TANH: return a > 1.0 ? 1.0 : a < -1.0 ? -1.0 : a;
    default: return a;
    }
}

// Distance of a from act's kinks (infinite for smooth activations).
static double kink_distance(pcn_activation act, double a) {
    if (act == PCN_ACT_RELU || act == PCN_ACT_LEAKY_RELU) return fabs(a);
    if (act == PCN_ACT_HARD_TANH) return fmin(fabs(a - 1.0), fabs(a + 1.0));
    return INFINITY;
}

// ---- the problem in double: parameters in the model's layout, latents, input, target -----

typedef struct {
    pcn_activation act;
    double p[NW];                 // W_1..W_L (d_l, d_{l-1}) row-major, then b_1..b_L
    double x[L + 1][B * MAXD];    // x[0] input, x[1..L-1] latents, x[L] the target
} problem;

static size_t WOFF[L + 1], BOFF[L + 1]; // offsets of W_l and b_l in p

static void offsets(void) {
    size_t o = 0;
    for (int l = 1; l <= L; l++) WOFF[l] = o, o += (size_t)DIMS[l] * DIMS[l - 1];
    for (int l = 1; l <= L; l++) BOFF[l] = o, o += (size_t)DIMS[l];
}

static double preact(const problem *q, int l, int r, int j, const double *below) {
    const int in = DIMS[l - 1];
    double a = q->p[BOFF[l] + j];
    for (int k = 0; k < in; k++) a += q->p[WOFF[l] + (size_t)j * in + k] * below[r * in + k];
    return a;
}

static double mu_of(const problem *q, int l, double a) { return l < L ? f_d(q->act, a) : a; }

// E = sum_rows sum_l 1/2 ||x_l - mu_l||^2.
static double energy(const problem *q) {
    double E = 0.0;
    for (int l = 1; l <= L; l++)
        for (int r = 0; r < B; r++)
            for (int j = 0; j < DIMS[l]; j++) {
                const double e = q->x[l][r * DIMS[l] + j] - mu_of(q, l, preact(q, l, r, j, q->x[l - 1]));
                E += 0.5 * e * e;
            }
    return E;
}

static double fd(problem *q, double *v) {
    const double keep = *v;
    *v = keep + FD_H;
    const double up = energy(q);
    *v = keep - FD_H;
    const double down = energy(q);
    *v = keep;
    return (up - down) / (2.0 * FD_H);
}

static float rnd_f(double lo, double hi) { return (float)urand(lo, hi); }

// Draws float-representable values: weights, biases, input, target and latents that are
// the forward values plus noise (so every error is non-zero). Returns the smallest
// distance of a hidden preactivation (at the drawn latents) from a kink.
static double draw(problem *q) {
    for (int i = 0; i < NW; i++) q->p[i] = rnd_f(-1.0, 1.0);
    for (int i = 0; i < B * DIMS[0]; i++) q->x[0][i] = rnd_f(-1.0, 1.0);
    for (int i = 0; i < B * DIMS[L]; i++) q->x[L][i] = rnd_f(0.0, 1.0);
    double dist = INFINITY;
    for (int l = 1; l < L; l++)
        for (int r = 0; r < B; r++)
            for (int j = 0; j < DIMS[l]; j++) {
                double a = preact(q, l, r, j, q->x[l - 1]);
                dist = fmin(dist, kink_distance(q->act, a));
                q->x[l][r * DIMS[l] + j] = (float)(f_d(q->act, a) + urand(-0.4, 0.4));
            }
    return dist;
}

static pcn_model *disc_model(pcn_activation act, const int *dims, int n_dims) {
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = n_dims, mp.activation = act;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true, mp.leaky_slope = (float)SLOPE;
    mp.seed = 3;
    pcn_model *m = pcn_model_init(&mp);
    TU_CHECK(m != NULL, "model: %s", pcn_last_error());
    return m;
}

static void to_float(const double *v, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)v[i];
}

// ---- 1. forward pass, energy, latent and weight gradients vs FD ----------------------------

// pcn_disc_forward from the input: x_l = mu_l (l < L) and a_L = mu_L as a double forward pass.
static void check_forward(const problem *q, pcn_disc *w, const char *name) {
    double fx[L + 1][B * MAXD], got[B * MAXD];
    memcpy(fx[0], q->x[0], sizeof fx[0]);
    for (int l = 1; l <= L; l++) {
        for (int r = 0; r < B; r++)
            for (int j = 0; j < DIMS[l]; j++)
                fx[l][r * DIMS[l] + j] = mu_of(q, l, preact(q, l, r, j, fx[l - 1]));
        for (int i = 0; i < B * DIMS[l]; i++) got[i] = l < L ? w->x[l][i] : w->a[l][i];
        char label[96];
        snprintf(label, sizeof label, "%s forward %s%d", name, l < L ? "x" : "mu", l);
        // float32 vs double on O(1) values through <= 5-term sums: a few ulps (~1e-6)
        tu_close_d(label, got, fx[l], (size_t)B * DIMS[l], 1e-5, 1e-5);
    }
}

// The engine on problem q: forward check, then the drawn latents, errors, back, gradient.
static void check_gradients(problem *q, const char *name) {
    pcn_model *m = disc_model(q->act, DIMS, L + 1);
    if (!m) return;
    TU_CHECK(pcn_model_num_weights(m) == NW, "%s: %zu weights", name, pcn_model_num_weights(m));
    to_float(q->p, pcn_model_weights(m), NW);
    pcn_disc *w = pcn_disc_init(m, B);
    float x0[B * MAXD], y[B * MAXD];
    to_float(q->x[0], x0, (size_t)B * DIMS[0]);
    to_float(q->x[L], y, (size_t)B * DIMS[L]);
    pcn_disc_forward(w, m, x0, B);
    check_forward(q, w, name);
    for (int l = 1; l < L; l++) to_float(q->x[l], w->x[l], (size_t)B * DIMS[l]);
    pcn_disc_preact(w, m, 1);
    const double sq = pcn_disc_sum(m, pcn_disc_errors(w, m, y, true)), E = energy(q);
    char label[96];
    snprintf(label, sizeof label, "%s energy", name);
    double half = 0.5 * sq;
    tu_close_d(label, &half, &E, 1, 1e-6, 1e-5); // a double sum of float errors: ~1e-7 rel
    pcn_disc_back(w, m);
    for (int l = 1; l < L; l++) { // (a) g_l = e_l + t_l vs dE/dx_l
        double got[B * MAXD], want[B * MAXD];
        for (int i = 0; i < B * DIMS[l]; i++) {
            got[i] = (double)w->e[l][i] + w->t[l][i];
            want[i] = fd(q, &q->x[l][i]);
        }
        snprintf(label, sizeof label, "%s dE/dx%d", name, l);
        tu_close_d(label, got, want, (size_t)B * DIMS[l], FD_ATOL, FD_RTOL);
    }
    pcn_disc_gradient(w, m); // (b) m->g vs dE/dW, dE/db
    double got[NW], want[NW];
    for (int i = 0; i < NW; i++) got[i] = m->g[i], want[i] = fd(q, &q->p[i]);
    snprintf(label, sizeof label, "%s dE/dW,b", name);
    tu_close_d(label, got, want, NW, FD_ATOL, FD_RTOL);
    double gmax = 0.0; // a test that cannot fail: the gradients must not all be ~0
    for (int i = 0; i < NW; i++) gmax = fmax(gmax, fabs(want[i]));
    TU_CHECK(gmax > 0.05, "%s: the largest weight gradient is only %g", name, gmax);
    pcn_disc_free(w);
    pcn_model_free(m);
}

static void test_gradients(void) {
    for (int act = 0; act < PCN_ACT_COUNT; act++) {
        problem q = {.act = (pcn_activation)act};
        double dist = 0.0;
        int tries = 0;
        while (dist < 0.02 && tries++ < 200) dist = draw(&q);
        TU_CHECK(dist >= 0.02, "%s: no draw keeps the preactivations off the kinks",
                 pcn_activation_name(q.act));
        check_gradients(&q, pcn_activation_name(q.act));
        if (act == PCN_ACT_HARD_TANH) { // both of hard_tanh's regions were exercised
            int out = 0;
            for (int l = 1; l < L; l++)
                for (int r = 0; r < B; r++)
                    for (int j = 0; j < DIMS[l]; j++)
                        out += fabs(preact(&q, l, r, j, q.x[l - 1])) > 1.0;
            TU_CHECK(out > 0 && out < B * (DIMS[1] + DIMS[2]), "hard_tanh: %d of the "
                     "preactivations saturate", out);
        }
    }
}

// ---- 2. activations --------------------------------------------------------------------------

// Value vs the double formula (gelu: jax's), derivative vs central differences of the
// double formula (h 1e-6) and of the library's own float function (h 2^-6).
static void test_activations(void) {
    enum { NP = 41 };
    for (int act = 0; act < PCN_ACT_COUNT; act++) {
        const pcn_activation a = (pcn_activation)act;
        double f[NP], fr[NP], d[NP], dr[NP], dl[NP];
        int n = 0;
        for (int i = 0; i < NP; i++) {
            const float x = -4.0f + 0.2f * (float)i + 0.0137f;
            const double hf = 1.0 / 64.0;
            if (kink_distance(a, x) < 2.0 * hf) continue;
            f[n] = pcn_activation_apply_slope(a, (float)SLOPE, x);
            fr[n] = f_d(a, x);
            d[n] = pcn_activation_deriv_slope(a, (float)SLOPE, x);
            dr[n] = (f_d(a, x + 1e-6) - f_d(a, x - 1e-6)) / 2e-6;
            dl[n] = ((double)pcn_activation_apply_slope(a, (float)SLOPE, (float)(x + hf)) -
                     pcn_activation_apply_slope(a, (float)SLOPE, (float)(x - hf))) / (2.0 * hf);
            n++;
        }
        TU_CHECK(n > NP / 2, "%s: only %d points", pcn_activation_name(a), n);
        char label[96];
        // float tanhf/expf are within ~2 ulp; gelu's 1 + tanh cancels for x < 0 but stays
        // ~1e-7 absolute: 1e-6 absolute is a 10x margin
        snprintf(label, sizeof label, "%s value", pcn_activation_name(a));
        tu_close_d(label, f, fr, (size_t)n, 1e-6, 1e-6);
        snprintf(label, sizeof label, "%s derivative vs double FD", pcn_activation_name(a));
        tu_close_d(label, d, dr, (size_t)n, 2e-6, 1e-5);
        // float FD at h = 2^-6: truncation h^2/6 |f'''| <= 1e-4 (|f'''| <= 2 here), rounding
        // 2 ulp(4) / 2h ~ 6e-5
        snprintf(label, sizeof label, "%s derivative vs float FD", pcn_activation_name(a));
        tu_close_d(label, d, dl, (size_t)n, 5e-4, 1e-4);
    }
    // the slope is the one given, not leaky_relu's default 0.01
    TU_CHECK(pcn_activation_apply_slope(PCN_ACT_LEAKY_RELU, 0.1f, -2.0f) == -0.2f &&
             pcn_activation_deriv_slope(PCN_ACT_LEAKY_RELU, 0.1f, -2.0f) == 0.1f,
             "leaky_relu slope 0.1 at -2: %g, %g",
             pcn_activation_apply_slope(PCN_ACT_LEAKY_RELU, 0.1f, -2.0f),
             pcn_activation_deriv_slope(PCN_ACT_LEAKY_RELU, 0.1f, -2.0f));
}

// ---- 3. optimizers and the cosine schedule ---------------------------------------------------

enum { ON = 3 * 2 + 2 * 2 + 2 + 2 }; // dims 3-2-2 with biases

typedef struct {
    double w[ON], m[ON], v[ON];
} opt_ref;

// One step in double: optax sgd / sgd(momentum) / adamw with decoupled decay times lr.
static void ref_step(opt_ref *r, const pcn_train_params *p, const double *g, double lr,
                     double scale, int t) {
    for (int i = 0; i < ON; i++) {
        const double gi = scale * g[i];
        double u = gi;
        if (p->optimizer == PCN_OPT_MOMENTUM) {
            r->m[i] = gi + p->momentum * r->m[i];
            u = r->m[i];
        } else if (p->optimizer == PCN_OPT_ADAMW) {
            r->m[i] = p->beta1 * r->m[i] + (1.0 - p->beta1) * gi;
            r->v[i] = p->beta2 * r->v[i] + (1.0 - p->beta2) * gi * gi;
            const double mh = r->m[i] / (1.0 - pow(p->beta1, t)),
                         vh = r->v[i] / (1.0 - pow(p->beta2, t));
            u = mh / (sqrt(vh) + p->eps);
        }
        r->w[i] -= lr * (u + p->weight_decay * r->w[i]);
    }
}

static void check_optimizer(pcn_optimizer kind) {
    static const int dims[] = {3, 2, 2};
    pcn_model *m = disc_model(PCN_ACT_TANH, dims, 3);
    if (!m) return;
    pcn_train_params p = pcn_train_default_params();
    p.optimizer = kind, p.momentum = 0.8, p.beta1 = 0.9, p.beta2 = 0.999, p.eps = 1e-8;
    p.weight_decay = 0.05;
    opt_ref r = {{0}, {0}, {0}};
    float *w = pcn_model_weights(m);
    for (int i = 0; i < ON; i++) r.w[i] = w[i];
    const double lrs[3] = {0.1, 0.05, 0.02}, scale = 0.25;
    const char *name = pcn_optimizer_name(kind);
    char label[96];
    for (int t = 0; t < 3; t++) {
        double g[ON];
        for (int i = 0; i < ON; i++) { // |g| >= 0.1: adam's m/sqrt(v) is well conditioned
            g[i] = urand(0.1, 1.0) * (tu_rng_next(&rng_state) & 1 ? 1.0 : -1.0);
            m->g[i] = (float)g[i];
            g[i] = m->g[i];
        }
        TU_CHECK(pcn_optim_apply(m, &p, lrs[t], scale, t) == PCN_OK, "%s", pcn_last_error());
        ref_step(&r, &p, g, lrs[t], scale, t + 1);
        // float32 state: w ~ 1 and updates ~ lr carry a few ulps (~3e-7); a wrong t, scale,
        // lr, decay or moment moves w by >= 1e-4
        double got[ON];
        for (int i = 0; i < ON; i++) got[i] = w[i];
        snprintf(label, sizeof label, "%s weights after step %d", name, t + 1);
        tu_close_d(label, got, r.w, ON, 2e-6, 2e-6);
        const int slots = pcn_optim_slots(kind);
        TU_CHECK(pcn_model_optimizer_slots(m) == slots, "%s: %d slots", name,
                 pcn_model_optimizer_slots(m));
        const float *st = pcn_model_optimizer_state(m);
        for (int s = 0; s < slots && st; s++) {
            for (int i = 0; i < ON; i++) got[i] = st[(size_t)s * ON + i];
            snprintf(label, sizeof label, "%s moment %d after step %d", name, s + 1, t + 1);
            // m ~ 0.1-1, v ~ 1e-5-1e-3: float ulps, relative
            tu_close_d(label, got, s ? r.v : r.m, ON, 1e-12, 1e-5);
        }
    }
    pcn_model_free(m);
}

// optax.warmup_cosine_decay_schedule(init, peak, warmup_steps W, decay_steps D, end):
// join of linear_schedule(init, peak, W) and cosine_decay_schedule(peak, D - W,
// alpha = end / peak) at W.
static double optax_cosine(double init, double peak, double end, double W, double D, double s) {
    if (s < W) return init + (peak - init) * s / W;
    const double c = fmin(s - W, D - W), alpha = end / peak;
    return peak * ((1.0 - alpha) * 0.5 * (1.0 + cos(PI_D * c / (D - W))) + alpha);
}

static void test_cosine(void) {
    pcn_train_params p = pcn_train_default_params();
    p.lr_schedule = PCN_LR_COSINE, p.lr_warmup_frac = 0.1, p.lr_peak_factor = 1.1;
    p.lr_final_factor = 0.1;
    const double lr = 3e-4;
    const int64_t totals[2] = {100, 37}; // W = 10 (whole), 3.7 (fractional, as PCX's 1170.0)
    for (int k = 0; k < 2; k++) {
        const int64_t D = totals[k];
        const double W = 0.1 * (double)D;
        int64_t steps[] = {0, 1, 3, 4, 9, 10, 11, D / 2, D - 1, D, D + 7};
        for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
            const double got = pcn_lr_cosine(&p, lr, steps[i], D),
                         want = optax_cosine(lr, 1.1 * lr, 0.1 * lr, W, (double)D,
                                             (double)steps[i]);
            char label[64];
            snprintf(label, sizeof label, "cosine total %lld s %lld", (long long)D,
                     (long long)steps[i]);
            tu_close_d(label, &got, &want, 1, 0.0, 1e-12); // double vs double, libm cos ulps
        }
    }
    // anchors that do not depend on the formula's shape
    const double anchors[4][2] = {{pcn_lr_cosine(&p, lr, 0, 100), lr},
                                  {pcn_lr_cosine(&p, lr, 10, 100), 1.1 * lr},
                                  {pcn_lr_cosine(&p, lr, 55, 100), 0.5 * (1.1 + 0.1) * lr},
                                  {pcn_lr_cosine(&p, lr, 100, 100), 0.1 * lr}};
    for (int i = 0; i < 4; i++) {
        char label[64];
        snprintf(label, sizeof label, "cosine anchor %d", i);
        tu_close_d(label, &anchors[i][0], &anchors[i][1], 1, 0.0, 1e-12);
    }
    p.lr_warmup_frac = 0.0; // no warm-up: the first step is at the peak
    const double got = pcn_lr_cosine(&p, lr, 0, 50), want = 1.1 * lr;
    tu_close_d("cosine without warm-up at s = 0", &got, &want, 1, 0.0, 1e-12);
}

int main(void) {
    offsets();
    test_gradients();
    test_activations();
    check_optimizer(PCN_OPT_SGD);
    check_optimizer(PCN_OPT_MOMENTUM);
    check_optimizer(PCN_OPT_ADAMW);
    test_cosine();
    return tu_finish("test_disc");
}
