/*
 * test_disc_golden.c — the discriminative engine reproduces PCX 0.6.3 itself, step by step.
 *
 * tests/golden/pcx_disc_small.txt (gen_pcx_golden.py drives PCX's own modules; see
 * tests/golden/README.md) holds a tiny network (6-5-4-3, gelu, biases, batch 4, output
 * clamped to exactly y), its weights, input and target, and what PCX computed from them in
 * three variants: mom_ (latent momentum 0.1), m0_ (momentum 0) and ipc_ (an adamw weight
 * step after every inference step). From the recorded weights and input this test runs
 * pcn_disc_forward and the inference steps with the engine's primitives (pcn_disc_errors,
 * pcn_disc_back, the backend's latent_step, pcn_disc_preact; with iPC pcn_disc_gradient and
 * pcn_optim_apply between back and the latent step, as PCX's iPC script orders them) and
 * compares: the forward latents and outputs, the energy (batch mean and per sample) at
 * every state and the energy each step started from, every step's latent gradients and
 * latents, the batch-mean weight and bias gradients (the engine's batch SUM / B) at the
 * final latents (iPC: at every step) and the weights and biases after one adamw step
 * (pcn_optim_apply with scale 1/B, step 0; iPC: after every step, state carried). Then the
 * same inference through pcn_disc_phase_plain (a watch callback taking the energies, a
 * weights callback stepping adamw) must end at the same latents (and iPC weights).
 *
 * Tolerance: both sides are float32 on the same float inputs; they differ by summation
 * order and by XLA's vs libm's tanh (a few ulps), so values of O(0.01-1) agree to ~1e-7
 * absolute. |got - want| <= 1e-6 + 1e-5 |want| is a 10x margin, and far below any wrong
 * reduction (B = 4), momentum, order of the iPC update or decay on the biases. Adam's
 * first step moves each weight by lr (m/sqrt(v) = sign(g)), which stays well conditioned
 * because no recorded gradient is within 1e-4 of zero unless it is exactly zero on both
 * sides (grad_x1_s1: e_1 = e_2 = 0 at the forward start).
 *
 * Usage: test_disc_golden FIXTURE.txt
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "disc.h"
#include "optim.h"
#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6

static tu_fixture *F;
static int L, B, T;
static int DIMS[PCN_MAX_LAYERS + 1];

// The fixture's array `name` as floats (n values expected).
static void getf(const char *name, float *out, size_t n) {
    size_t got = 0;
    const double *v = tu_fixture_get(F, name, &got);
    TU_CHECK(v && got == n, "%s: %zu values, want %zu", name, got, n);
    for (size_t i = 0; v && i < n && i < got; i++) out[i] = (float)v[i];
}

static void cmp_f(const char *name, const float *got, size_t n) {
    size_t nw = 0;
    const double *want = tu_fixture_get(F, name, &nw);
    TU_CHECK(want && nw == n, "%s: fixture has %zu values, want %zu", name, nw, n);
    if (!want || nw != n) return;
    double *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) g[i] = got[i];
    tu_close_d(name, g, want, n, ATOL, RTOL);
    free(g);
}

static void cmp_d(const char *name, double got) {
    const double want = tu_fixture_scalar(F, name);
    tu_close_d(name, &got, &want, 1, ATOL, RTOL);
}

static pcn_model *build(void) {
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = DIMS, mp.n_dims = L + 1, mp.activation = PCN_ACT_GELU;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true;
    pcn_model *m = pcn_model_init(&mp);
    TU_CHECK(m != NULL, "model: %s", pcn_last_error());
    char name[32];
    for (int l = 1; m && l <= L; l++) { // model layer l-1 is W_l (d_l, d_{l-1}), as PCX's
        snprintf(name, sizeof name, "W%d", l);
        getf(name, pcn_model_layer(m, l - 1).weight, (size_t)DIMS[l] * DIMS[l - 1]);
        snprintf(name, sizeof name, "b%d", l);
        getf(name, pcn_model_bias(m, l), (size_t)DIMS[l]);
    }
    return m;
}

static pcn_train_params adamw(void) {
    pcn_train_params p = pcn_train_default_params();
    p.optimizer = PCN_OPT_ADAMW;
    p.lr_learn = tu_fixture_scalar(F, "adam_learning_rate");
    p.beta1 = tu_fixture_scalar(F, "adam_b1"), p.beta2 = tu_fixture_scalar(F, "adam_b2");
    p.eps = tu_fixture_scalar(F, "adam_eps");
    p.weight_decay = tu_fixture_scalar(F, "adam_weight_decay");
    TU_CHECK(tu_fixture_scalar(F, "adam_eps_root") == 0.0, "eps_root must be 0");
    return p;
}

// ---- comparisons of one state ----------------------------------------------------------------

// Energies at the current errors: batch mean `energy_<sfx>` from the returned sum and per
// sample `energy_ps_<sfx>` from the error buffers.
static void cmp_energies(const char *pre, const char *sfx, const pcn_model *m,
                         const pcn_disc *w, double sq) {
    char name[64];
    snprintf(name, sizeof name, "%senergy_%s", pre, sfx);
    cmp_d(name, 0.5 * sq / B);
    float ps[64] = {0};
    for (int l = 1; l <= L; l++)
        for (int r = 0; r < B; r++)
            for (int j = 0; j < DIMS[l]; j++) {
                const float e = w->e[l][(size_t)r * DIMS[l] + j];
                ps[r] += 0.5f * e * e;
            }
    snprintf(name, sizeof name, "%senergy_ps_%s", pre, sfx);
    cmp_f(name, ps, (size_t)B);
    (void)m;
}

// The weight and bias gradients in m->g (batch sums) / B against <pre>gW<l><sfx>, gb.
static void cmp_gradients(const char *pre, const char *sfx, pcn_model *m) {
    char name[64];
    for (int l = 1; l <= L; l++) {
        const size_t nw = (size_t)DIMS[l] * DIMS[l - 1];
        float *g = malloc((nw + DIMS[l]) * sizeof *g);
        const float *gw = m->g + m->woff[l - 1], *gb = m->g + m->woff[L] + pcn_disc_bias_off(m, l - 1);
        for (size_t i = 0; i < nw; i++) g[i] = gw[i] / (float)B;
        for (int j = 0; j < DIMS[l]; j++) g[nw + j] = gb[j] / (float)B;
        snprintf(name, sizeof name, "%sgW%d%s", pre, l, sfx);
        cmp_f(name, g, nw);
        snprintf(name, sizeof name, "%sgb%d%s", pre, l, sfx);
        cmp_f(name, g + nw, (size_t)DIMS[l]);
        free(g);
    }
}

// Whether a weight's recorded gradient at some iPC step up to s is non-zero but at float32
// noise level (|g| < 1e-5; here a difference of O(1) activations, ~1e-7 absolute, i.e.
// ~1e-3 relative): adam normalizes it, so its weight carries lr * 1e-3 of that noise.
static bool noisy(const char *pre, const char *kind, int l, size_t i, int s) {
    char name[64];
    for (int k = 1; k <= s; k++) {
        snprintf(name, sizeof name, "%sg%s%d_s%d", pre, kind, l, k);
        size_t n = 0;
        const double *g = tu_fixture_get(F, name, &n);
        if (g && i < n && g[i] != 0.0 && fabs(g[i]) < 1e-5) return true;
    }
    return false;
}

// <pre><kind><l><sfx> against got; iPC (s > 0) splits off the noisy entries (atol lr 1e-3).
static void cmp_param(const char *pre, const char *kind, int l, const char *sfx, int s,
                      const float *got, size_t n) {
    char name[64];
    snprintf(name, sizeof name, "%s%s%d%s", pre, kind, l, sfx);
    size_t nw = 0;
    const double *want = tu_fixture_get(F, name, &nw);
    TU_CHECK(want && nw == n, "%s: %zu values, want %zu", name, nw, n);
    if (!want || nw != n) return;
    double *g = malloc(4 * n * sizeof *g), *w = g + n, *gn = g + 2 * n, *wn = g + 3 * n;
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (s > 0 && noisy(pre, kind, l, i, s)) gn[b] = got[i], wn[b++] = want[i];
        else g[a] = got[i], w[a++] = want[i];
    }
    tu_close_d(name, g, w, a, ATOL, RTOL);
    strcat(name, " (noisy gradients)");
    tu_close_d(name, gn, wn, b, 1e-3 * tu_fixture_scalar(F, "adam_learning_rate"), RTOL);
    free(g);
}

static void cmp_weights(const char *pre, const char *sfx, int s, pcn_model *m) {
    for (int l = 1; l <= L; l++) {
        cmp_param(pre, "W", l, sfx, s, pcn_model_layer(m, l - 1).weight,
                  (size_t)DIMS[l] * DIMS[l - 1]);
        cmp_param(pre, "b", l, sfx, s, pcn_model_bias(m, l), (size_t)DIMS[l]);
    }
}

static void cmp_latents(const char *pre, int s, const pcn_disc *w) {
    char name[64];
    for (int l = 1; l < L; l++) {
        snprintf(name, sizeof name, "%sx%d_s%d", pre, l, s);
        cmp_f(name, w->x[l], (size_t)B * DIMS[l]);
    }
}

// ---- one variant by hand ---------------------------------------------------------------------

typedef struct {
    const char *pre;
    float beta;
    bool ipc;
} variant;

// Forward start from the recorded weights; checks the s0 state.
static pcn_disc *start(const variant *v, pcn_model *m, const float *x0, const float *y) {
    pcn_disc *w = pcn_disc_init(m, B);
    pcn_disc_forward(w, m, x0, B);
    char name[64];
    snprintf(name, sizeof name, "%smu%d_s0", v->pre, L);
    cmp_f(name, w->a[L], (size_t)B * DIMS[L]);
    snprintf(name, sizeof name, "%sx%d_clamped", v->pre, L);
    cmp_f(name, y, (size_t)B * DIMS[L]); // the fixture clamps to exactly y
    cmp_latents(v->pre, 0, w);
    return w;
}

static void by_hand(const variant *v, const float *x0, const float *y) {
    pcn_model *m = build();
    if (!m) return;
    const pcn_train_params p = adamw();
    const float lr_x = (float)tu_fixture_scalar(F, "lr_infer");
    pcn_disc *w = start(v, m, x0, y);
    for (int l = 1; l < L; l++) memset(w->mom[l], 0, (size_t)B * DIMS[l] * sizeof(float));
    cmp_energies(v->pre, "s0", m, w, pcn_disc_errors(w, m, y, true));
    char name[64], sfx[16];
    for (int s = 1; s <= T; s++) {
        snprintf(name, sizeof name, "%senergy_used_s%d", v->pre, s);
        cmp_d(name, 0.5 * pcn_disc_errors(w, m, y, true) / B);
        pcn_disc_back(w, m);
        for (int l = 1; l < L; l++) {
            const size_t n = (size_t)B * DIMS[l];
            float *g = malloc(n * sizeof *g);
            for (size_t i = 0; i < n; i++) g[i] = w->e[l][i] + w->t[l][i];
            snprintf(name, sizeof name, "%sgrad_x%d_s%d", v->pre, l, s);
            cmp_f(name, g, n);
            free(g);
        }
        snprintf(sfx, sizeof sfx, "_s%d", s);
        if (v->ipc) { // one gradient at this step's latents: weights step before latents
            pcn_disc_gradient(w, m);
            cmp_gradients(v->pre, sfx, m);
            TU_CHECK(pcn_optim_apply(m, &p, p.lr_learn, 1.0 / B, s - 1) == PCN_OK, "%s",
                     pcn_last_error());
            cmp_weights(v->pre, sfx, s, m);
        }
        for (int l = 1; l < L; l++)
            m->ops->latent_step((size_t)B * DIMS[l], lr_x, v->beta, w->e[l], w->t[l],
                                w->mom[l], w->x[l]);
        pcn_disc_preact(w, m, v->ipc ? 1 : 2);
        cmp_latents(v->pre, s, w);
        cmp_energies(v->pre, sfx + 1, m, w, pcn_disc_errors(w, m, y, true));
    }
    if (!v->ipc) { // the errors of the final latents are in place
        pcn_disc_gradient(w, m);
        cmp_gradients(v->pre, "", m);
        TU_CHECK(pcn_optim_apply(m, &p, p.lr_learn, 1.0 / B, 0) == PCN_OK, "%s",
                 pcn_last_error());
        cmp_weights(v->pre, "_new", 0, m);
    }
    pcn_disc_free(w);
    pcn_model_free(m);
}

// ---- the same through pcn_disc_phase_plain ----------------------------------------------------

typedef struct {
    const variant *v;
    pcn_model *m;
    pcn_train_params p;
    int watched, stepped;
} phase_ctx;

static pcn_status watch(void *ctx, int step, double sumsq) {
    phase_ctx *c = ctx;
    char name[64];
    snprintf(name, sizeof name, "%senergy_used_s%d", c->v->pre, step + 1);
    cmp_d(name, 0.5 * sumsq / B);
    c->watched++;
    return PCN_OK;
}

static pcn_status weights(void *ctx, int step) {
    phase_ctx *c = ctx;
    c->stepped++;
    return pcn_optim_apply(c->m, &c->p, c->p.lr_learn, 1.0 / B, step);
}

static void by_phase(const variant *v, const float *x0, const float *y) {
    pcn_model *m = build();
    if (!m) return;
    pcn_disc *w = start(v, m, x0, y);
    phase_ctx c = {v, m, adamw(), 0, 0};
    pcn_disc_phase ph = {.m = m, .w = w, .x0 = x0, .y = y, .steps = T,
                         .lr = (float)tu_fixture_scalar(F, "lr_infer"), .beta = v->beta,
                         .ipc = v->ipc, .sum_from = 0, .watch = watch, .weights = weights,
                         .ctx = &c};
    TU_CHECK(pcn_disc_phase_plain(NULL, &ph) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(c.watched == T && c.stepped == (v->ipc ? T : 0), "%sphase: %d energies, %d "
             "weight steps", v->pre, c.watched, c.stepped);
    cmp_latents(v->pre, T, w);
    char sfx[16];
    snprintf(sfx, sizeof sfx, "_s%d", T);
    if (v->ipc) cmp_weights(v->pre, sfx, T, m);
    pcn_disc_free(w);
    pcn_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_disc_golden FIXTURE.txt\n");
        return 2;
    }
    if (!(F = tu_fixture_load(argv[1]))) return 1;
    size_t nd = 0;
    const double *d = tu_fixture_get(F, "dims", &nd);
    L = (int)nd - 1, B = (int)tu_fixture_scalar(F, "batch"), T = (int)tu_fixture_scalar(F, "t_infer");
    for (size_t i = 0; d && i < nd; i++) DIMS[i] = (int)d[i];
    TU_CHECK(tu_fixture_scalar(F, "gelu_approximate") == 1.0, "the fixture's gelu is not "
             "the tanh form");
    float *x0 = malloc((size_t)B * DIMS[0] * sizeof *x0), *y = malloc((size_t)B * DIMS[L] * sizeof *y);
    getf("x0", x0, (size_t)B * DIMS[0]);
    getf("y", y, (size_t)B * DIMS[L]);
    const float mom = (float)tu_fixture_scalar(F, "momentum");
    const variant vs[3] = {{"mom_", mom, false}, {"m0_", 0.0f, false}, {"ipc_", mom, true}};
    for (int i = 0; i < 3; i++) {
        by_hand(&vs[i], x0, y);
        by_phase(&vs[i], x0, y);
    }
    free(x0), free(y);
    tu_fixture_free(F);
    return tu_finish("test_disc_golden");
}
