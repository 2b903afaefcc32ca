/*
 * test_math.c — libpcn's steps are gradient descent on the PCN energy, proved without
 * pcn-torch: against a plain double-precision energy written here and central finite
 * differences of it.
 *
 * The energy (DESIGN.md, "The algorithm"), summed over the batch:
 *   A[l] = X[l+1] W[l]^T, E[l] = X[l] - f_l(A[l]), Esup = X[L] Wout^T - Y,
 *   F = 1/2 sum_l ||E[l]||^2 + 1/2 ||Esup||^2   (F0: the same without the Esup term),
 * and the reported energy is F / B.
 *
 * What is proved, for relu, tanh, sigmoid, identity and a mixed-activation network:
 *   1. The analytic gradients of the double reference (dF/dX[l] = E[l] - H[l-1] W[l-1],
 *      top E[L] = Esup Wout; dF/dW[l] = -H[l]^T X[l+1]; dF/dWout = Esup^T X[L]) equal central
 *      finite differences of F to 1e-6 relative: the reference itself is right.
 *   2. pcn_inference_step: (X_before - X_after) / lr = dF/dX (FD) for every latent unit, with
 *      and without a target (without: F0, E[L] = 0); the weights and the input stay as they
 *      were; the returned energy is the reference F / B of the snapshot before the update.
 *   3. pcn_learning_step: (W_after - W_before) / lr = -d(F/B)/dW (FD) for every weight of every
 *      layer and the readout; without a target the readout does not move; latents stay fixed.
 *   4. pcn_compute_errors' E[l], H[l], Esup, E[L] equal the reference's.
 *   5. With small rates the energy never rises over 50 inference steps and 50 learning steps
 *      (and falls overall), for each activation, with and without a target.
 *   6. pcn_activation_deriv equals central FD of pcn_activation_apply; pcn_get_activation
 *      returns the same functions; an unknown name fails with PCN_EINVAL naming the choices.
 *   7. Xavier init: bounds, variance a^2/3, extremes near the bounds, readout U(+-1/sqrt(dL)),
 *      seed determinism.
 *   8. pcn_compute_energy_per_layer has L+1 terms with a target, L without, summing to
 *      pcn_compute_energy.
 *
 * Tolerances. The reference and its finite differences are double: FD with h = 1e-5 has a
 * truncation error ~h^2 |F'''| ~ 1e-10 and a rounding error ~1e-16 |F| / h ~ 1e-10, so 1e-6
 * relative (plus 1e-8 absolute for gradients near zero) is tight yet a 100x margin. The
 * library computes in float on float inputs; each quantity carries a few float ulps
 * (~1e-7 relative) of its magnitude (|X|, |W|, |E| <~ 5 here), and the step is recovered as a
 * difference divided by lr (0.25 here, chosen large so that the ulps of X_after are not
 * amplified), so the expected error is <~1e-6 absolute (observed: at most 3.3e-7). We allow
 * atol 1e-5 + rtol 1e-5: a 30x margin over what was seen, yet far below the size of any
 * missing or wrongly signed term, a missing 1/B, or a stale snapshot (gradients are O(0.1-1)).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAXL 6

// Library vs double reference (see the header comment).
#define LIB_ATOL 1e-5
#define LIB_RTOL 1e-5
// Double analytic gradient vs double finite differences.
#define FD_H 1e-5
#define FD_ATOL 1e-8
#define FD_RTOL 1e-6

// ---- deterministic randomness (splitmix64) ------------------------------------------------

static uint64_t rng_s = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void) { return tu_rng_next(&rng_s); }
static double urand(double lo, double hi) {
    return lo + (hi - lo) * ((rng_next() >> 11) * (1.0 / 9007199254740992.0));
}
static double nrand(void) {
    double u1 = urand(1e-12, 1.0), u2 = urand(0.0, 1.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
// A float-representable double, so that the library and the reference see the same value.
static double fl(double v) { return (double)(float)v; }

// ---- the double-precision reference -------------------------------------------------------

typedef struct {
    int L, K, B;
    int dims[MAXL + 1];
    pcn_activation act[MAXL];
    double *w[MAXL + 1]; // w[l] (d_l, d_{l+1}), l < L; w[L] = Wout (K, dL)
    double *x[MAXL + 1]; // x[0] input (B, d0); x[l] latents (B, d_l)
    double *y;           // (B, K), or NULL for free inference
    double *y_store;     // the target, kept while y is switched off
} net;

static size_t wsize(const net *n, int l) {
    return l < n->L ? (size_t)n->dims[l] * n->dims[l + 1] : (size_t)n->K * n->dims[n->L];
}
static size_t xsize(const net *n, int l) { return (size_t)n->B * n->dims[l]; }

static double f_d(pcn_activation act, double a) {
    switch (act) {
    case PCN_ACT_RELU: return a > 0 ? a : 0;
    case PCN_ACT_TANH: return tanh(a);
    case PCN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-a));
    default: return a;
    }
}
static double df_d(pcn_activation act, double a) {
    switch (act) {
    case PCN_ACT_RELU: return a > 0 ? 1 : 0;
    case PCN_ACT_TANH: return 1.0 - tanh(a) * tanh(a);
    case PCN_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-a));
        return s * (1.0 - s);
    }
    default: return 1.0;
    }
}

// out (B, n_out) = x (B, n_in) w^T, w (n_out, n_in)
static void mul_nt(int B, int n_out, int n_in, const double *x, const double *w, double *out) {
    for (int b = 0; b < B; b++)
        for (int j = 0; j < n_out; j++) {
            double acc = 0;
            for (int i = 0; i < n_in; i++) acc += x[(size_t)b * n_in + i] * w[(size_t)j * n_in + i];
            out[(size_t)b * n_out + j] = acc;
        }
}

// Errors of the snapshot: e[l], h[l] (B, d_l) for l < L, e[L] = Esup Wout (B, dL) or 0,
// esup (B, K). Returns F (batch sum, not divided by B).
static double ref_errors(const net *n, double **e, double **h, double *esup) {
    double F = 0;
    for (int l = 0; l < n->L; l++) {
        size_t sz = xsize(n, l);
        double *a = malloc(sz * sizeof *a);
        mul_nt(n->B, n->dims[l], n->dims[l + 1], n->x[l + 1], n->w[l], a);
        for (size_t i = 0; i < sz; i++) {
            e[l][i] = n->x[l][i] - f_d(n->act[l], a[i]);
            h[l][i] = e[l][i] * df_d(n->act[l], a[i]);
            F += 0.5 * e[l][i] * e[l][i];
        }
        free(a);
    }
    int L = n->L, K = n->K, dL = n->dims[L];
    memset(e[L], 0, xsize(n, L) * sizeof(double));
    memset(esup, 0, (size_t)n->B * K * sizeof(double));
    if (n->y) {
        mul_nt(n->B, K, dL, n->x[L], n->w[L], esup);
        for (size_t i = 0; i < (size_t)n->B * K; i++) {
            esup[i] -= n->y[i];
            F += 0.5 * esup[i] * esup[i];
        }
        for (int b = 0; b < n->B; b++)
            for (int j = 0; j < dL; j++) {
                double acc = 0;
                for (int k = 0; k < K; k++) acc += esup[b * K + k] * n->w[L][(size_t)k * dL + j];
                e[L][(size_t)b * dL + j] = acc;
            }
    }
    return F;
}

typedef struct {
    double *e[MAXL + 1], *h[MAXL], *esup;
} ref_buf;

static ref_buf buf_alloc(const net *n) {
    ref_buf r;
    for (int l = 0; l <= n->L; l++) r.e[l] = calloc(xsize(n, l), sizeof(double));
    for (int l = 0; l < n->L; l++) r.h[l] = calloc(xsize(n, l), sizeof(double));
    r.esup = calloc((size_t)n->B * n->K, sizeof(double));
    return r;
}
static void buf_free(const net *n, ref_buf *r) {
    for (int l = 0; l <= n->L; l++) free(r->e[l]);
    for (int l = 0; l < n->L; l++) free(r->h[l]);
    free(r->esup);
}

static double ref_energy(const net *n) {
    ref_buf r = buf_alloc(n);
    double F = ref_errors(n, r.e, r.h, r.esup);
    buf_free(n, &r);
    return F;
}

// Analytic gradients of F: gx[l] (l = 1..L) and gw[l] (l = 0..L, L = readout).
static void ref_grads(const net *n, double **gx, double **gw) {
    ref_buf r = buf_alloc(n);
    ref_errors(n, r.e, r.h, r.esup);
    const int L = n->L, B = n->B;
    for (int l = 1; l <= L; l++) { // E[l] - H[l-1] W[l-1]
        int dl = n->dims[l], dm = n->dims[l - 1];
        for (int b = 0; b < B; b++)
            for (int j = 0; j < dl; j++) {
                double acc = 0;
                for (int i = 0; i < dm; i++)
                    acc += r.h[l - 1][(size_t)b * dm + i] * n->w[l - 1][(size_t)i * dl + j];
                gx[l][(size_t)b * dl + j] = r.e[l][(size_t)b * dl + j] - acc;
            }
    }
    for (int l = 0; l < L; l++) { // -H[l]^T X[l+1]
        int dout = n->dims[l], din = n->dims[l + 1];
        for (int o = 0; o < dout; o++)
            for (int i = 0; i < din; i++) {
                double acc = 0;
                for (int b = 0; b < B; b++)
                    acc += r.h[l][(size_t)b * dout + o] * n->x[l + 1][(size_t)b * din + i];
                gw[l][(size_t)o * din + i] = -acc;
            }
    }
    int K = n->K, dL = n->dims[L]; // Esup^T X[L]
    for (int k = 0; k < K; k++)
        for (int i = 0; i < dL; i++) {
            double acc = 0;
            for (int b = 0; b < B; b++) acc += r.esup[b * K + k] * n->x[L][(size_t)b * dL + i];
            gw[L][(size_t)k * dL + i] = acc;
        }
    buf_free(n, &r);
}

// Central difference of F in the value *p.
static double fd(net *n, double *p) {
    double v = *p;
    *p = v + FD_H;
    double fp = ref_energy(n);
    *p = v - FD_H;
    double fm = ref_energy(n);
    *p = v;
    return (fp - fm) / (2 * FD_H);
}

// A random network. Weights U(-0.8, 0.8), input, latents and target N(0, 1), all
// float-representable. Rows of W[l] are redrawn until every preactivation is at least
// `margin` away from 0, so that finite differences never straddle relu's kink.
static void net_make(net *n, const int *dims, int L, int K, int B, const pcn_activation *act,
                     double margin) {
    memset(n, 0, sizeof *n);
    n->L = L, n->K = K, n->B = B;
    memcpy(n->dims, dims, (size_t)(L + 1) * sizeof *dims);
    memcpy(n->act, act, (size_t)L * sizeof *act);
    for (int l = 0; l <= L; l++) {
        n->x[l] = malloc(xsize(n, l) * sizeof(double));
        for (size_t i = 0; i < xsize(n, l); i++) n->x[l][i] = fl(nrand());
        n->w[l] = malloc(wsize(n, l) * sizeof(double));
        for (size_t i = 0; i < wsize(n, l); i++) n->w[l][i] = fl(urand(-0.8, 0.8));
    }
    n->y_store = malloc((size_t)B * K * sizeof(double));
    for (int i = 0; i < B * K; i++) n->y_store[i] = fl(nrand());
    n->y = n->y_store;
    for (int l = 0; l < L; l++) {
        int dout = dims[l], din = dims[l + 1];
        for (int o = 0; o < dout; o++) {
            for (int tries = 0;; tries++) {
                double amin = INFINITY;
                for (int b = 0; b < B; b++) {
                    double acc = 0;
                    for (int i = 0; i < din; i++)
                        acc += n->x[l + 1][(size_t)b * din + i] * n->w[l][(size_t)o * din + i];
                    amin = fmin(amin, fabs(acc));
                }
                if (amin >= margin) break;
                TU_CHECK(tries < 10000, "could not draw preactivations away from 0");
                if (tries >= 10000) break;
                for (int i = 0; i < din; i++) n->w[l][(size_t)o * din + i] = fl(urand(-0.8, 0.8));
            }
        }
    }
}

static void net_free(net *n) {
    for (int l = 0; l <= n->L; l++) free(n->x[l]), free(n->w[l]);
    free(n->y_store);
}

// ---- the same network in libpcn -----------------------------------------------------------

typedef struct {
    pcn_model *m;
    pcn_state *s;
    float *x0, *y;
} lib;

static float *to_f(const double *v, size_t n) {
    float *out = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) out[i] = (float)v[i];
    return out;
}

static lib lib_make(const net *n) {
    lib b = {0};
    pcn_layer_spec spec[MAXL];
    float *wf[MAXL];
    for (int l = 0; l < n->L; l++) {
        wf[l] = to_f(n->w[l], wsize(n, l));
        spec[l] = (pcn_layer_spec){.in_features = n->dims[l + 1],
                                   .out_features = n->dims[l],
                                   .activation = n->act[l],
                                   .weight = wf[l]};
    }
    b.m = pcn_model_init_layers(spec, n->L, n->K, PCN_TASK_REGRESSION, 1);
    TU_CHECK(b.m != NULL, "pcn_model_init_layers: %s", pcn_last_error());
    for (int l = 0; l < n->L; l++) {
        pcn_layer_view v = pcn_model_layer(b.m, l);
        TU_CHECK(v.out_features == n->dims[l] && v.in_features == n->dims[l + 1] &&
                     v.activation == n->act[l] &&
                     memcmp(v.weight, wf[l], wsize(n, l) * sizeof(float)) == 0,
                 "layer %d view differs from the spec it was built from", l);
        free(wf[l]);
    }
    float *ro = pcn_model_readout(b.m);
    for (size_t i = 0; i < wsize(n, n->L); i++) ro[i] = (float)n->w[n->L][i];
    b.s = pcn_state_init(b.m, n->B);
    TU_CHECK(b.s != NULL, "pcn_state_init: %s", pcn_last_error());
    for (int l = 1; l <= n->L; l++) {
        float *xl = pcn_state_latent(b.s, l);
        for (size_t i = 0; i < xsize(n, l); i++) xl[i] = (float)n->x[l][i];
    }
    b.x0 = to_f(n->x[0], xsize(n, 0));
    b.y = n->y ? to_f(n->y, (size_t)n->B * n->K) : NULL;
    return b;
}

static void lib_free(lib *b) {
    pcn_state_free(b->s);
    pcn_model_free(b->m);
    free(b->x0);
    free(b->y);
}

// ---- 1. the reference's analytic gradients against its finite differences -----------------

static void check_reference(net *n, const char *tag) {
    double *gx[MAXL + 1] = {0}, *gw[MAXL + 1];
    for (int l = 1; l <= n->L; l++) gx[l] = malloc(xsize(n, l) * sizeof(double));
    for (int l = 0; l <= n->L; l++) gw[l] = malloc(wsize(n, l) * sizeof(double));
    ref_grads(n, gx, gw);
    char label[128];
    for (int l = 1; l <= n->L; l++) {
        double *f = malloc(xsize(n, l) * sizeof(double));
        for (size_t i = 0; i < xsize(n, l); i++) f[i] = fd(n, &n->x[l][i]);
        snprintf(label, sizeof label, "%s ref dF/dX[%d] vs FD", tag, l);
        tu_close_d(label, gx[l], f, xsize(n, l), FD_ATOL, FD_RTOL);
        free(f);
    }
    for (int l = 0; l <= n->L; l++) {
        double *f = malloc(wsize(n, l) * sizeof(double));
        for (size_t i = 0; i < wsize(n, l); i++) f[i] = fd(n, &n->w[l][i]);
        snprintf(label, sizeof label, "%s ref dF/dW[%d] vs FD", tag, l);
        tu_close_d(label, gw[l], f, wsize(n, l), FD_ATOL, FD_RTOL);
        free(f);
    }
    for (int l = 1; l <= n->L; l++) free(gx[l]);
    for (int l = 0; l <= n->L; l++) free(gw[l]);
}

// ---- 2. inference step against dF/dX -------------------------------------------------------

static void check_inference(net *n, const char *tag) {
    const float lr = 0.25f;
    lib b = lib_make(n);
    if (!b.m || !b.s) return;
    size_t nw = pcn_model_num_weights(b.m);
    float *w0 = malloc(nw * sizeof(float));
    memcpy(w0, pcn_model_weights(b.m), nw * sizeof(float));
    float *x0_copy = to_f(n->x[0], xsize(n, 0));

    double e = pcn_inference_step(b.m, b.s, b.x0, b.y, lr);
    double F = ref_energy(n);
    char label[128];
    snprintf(label, sizeof label, "%s inference step energy vs F/B", tag);
    double want = F / n->B;
    tu_close_d(label, &e, &want, 1, 1e-6, LIB_RTOL);

    for (int l = 1; l <= n->L; l++) {
        const float *xl = pcn_state_latent(b.s, l);
        double *got = malloc(xsize(n, l) * sizeof(double));
        double *ref = malloc(xsize(n, l) * sizeof(double));
        for (size_t i = 0; i < xsize(n, l); i++) {
            got[i] = ((double)(float)n->x[l][i] - (double)xl[i]) / lr;
            ref[i] = fd(n, &n->x[l][i]);
        }
        snprintf(label, sizeof label, "%s inference (X-X')/lr vs dF/dX[%d] FD", tag, l);
        tu_close_d(label, got, ref, xsize(n, l), LIB_ATOL, LIB_RTOL);
        free(got), free(ref);
    }
    TU_CHECK(memcmp(w0, pcn_model_weights(b.m), nw * sizeof(float)) == 0,
             "%s: an inference step changed the weights", tag);
    TU_CHECK(memcmp(x0_copy, b.x0, xsize(n, 0) * sizeof(float)) == 0,
             "%s: an inference step wrote the input X[0]", tag);
    free(w0), free(x0_copy);
    lib_free(&b);
}

// ---- 3. learning step against -d(F/B)/dW ---------------------------------------------------

static void check_learning(net *n, const char *tag) {
    const float lr = 0.25f;
    lib b = lib_make(n);
    if (!b.m || !b.s) return;
    size_t nw = pcn_model_num_weights(b.m);
    float *w0 = malloc(nw * sizeof(float));
    memcpy(w0, pcn_model_weights(b.m), nw * sizeof(float));
    float *lat0[MAXL + 1];
    for (int l = 1; l <= n->L; l++) lat0[l] = to_f(n->x[l], xsize(n, l));

    double e = pcn_learning_step(b.m, b.s, b.x0, b.y, lr);
    double want = ref_energy(n) / n->B;
    char label[128];
    snprintf(label, sizeof label, "%s learning step energy vs F/B", tag);
    tu_close_d(label, &e, &want, 1, 1e-6, LIB_RTOL);

    const float *w1 = pcn_model_weights(b.m);
    for (int l = 0; l <= n->L; l++) {
        size_t off = pcn_model_weight_offset(b.m, l), sz = wsize(n, l);
        double *got = malloc(sz * sizeof(double)), *ref = malloc(sz * sizeof(double));
        for (size_t i = 0; i < sz; i++) {
            got[i] = ((double)w1[off + i] - (double)w0[off + i]) / lr;
            ref[i] = -fd(n, &n->w[l][i]) / n->B;
        }
        snprintf(label, sizeof label, "%s learning (W'-W)/lr vs -d(F/B)/dW[%d] FD%s", tag, l,
                 l == n->L ? " (readout)" : "");
        tu_close_d(label, got, ref, sz, LIB_ATOL, LIB_RTOL);
        if (l == n->L && !n->y)
            TU_CHECK(memcmp(w1 + off, w0 + off, sz * sizeof(float)) == 0,
                     "%s: learning without a target moved the readout", tag);
        free(got), free(ref);
    }
    for (int l = 1; l <= n->L; l++) {
        TU_CHECK(memcmp(lat0[l], pcn_state_latent(b.s, l), xsize(n, l) * sizeof(float)) == 0,
                 "%s: a learning step changed latent X[%d]", tag, l);
        free(lat0[l]);
    }
    free(w0);
    lib_free(&b);
}

// ---- 4. the error signals themselves -------------------------------------------------------

static void check_errors(net *n, const char *tag) {
    lib b = lib_make(n);
    if (!b.m || !b.s) return;
    ref_buf r = buf_alloc(n);
    double F = ref_errors(n, r.e, r.h, r.esup);
    pcn_errors pe;
    pcn_status st = pcn_compute_errors(b.m, b.s, b.x0, b.y, &pe);
    TU_CHECK(st == PCN_OK, "%s: pcn_compute_errors: %s", tag, pcn_last_error());
    if (st == PCN_OK) {
        char label[128];
        for (int l = 0; l < n->L; l++) {
            double *g = malloc(xsize(n, l) * sizeof(double));
            for (size_t i = 0; i < xsize(n, l); i++) g[i] = pe.errors[l][i];
            snprintf(label, sizeof label, "%s E[%d]", tag, l);
            tu_close_d(label, g, r.e[l], xsize(n, l), LIB_ATOL, LIB_RTOL);
            for (size_t i = 0; i < xsize(n, l); i++) g[i] = pe.gm_errors[l][i];
            snprintf(label, sizeof label, "%s H[%d]", tag, l);
            tu_close_d(label, g, r.h[l], xsize(n, l), LIB_ATOL, LIB_RTOL);
            free(g);
        }
        if (n->y) {
            TU_CHECK(pe.supervised_error && pe.top_error, "%s: target given, no Esup/E[L]", tag);
            size_t nk = (size_t)n->B * n->K, nl = xsize(n, n->L);
            double *g = malloc((nk > nl ? nk : nl) * sizeof(double));
            for (size_t i = 0; pe.supervised_error && i < nk; i++) g[i] = pe.supervised_error[i];
            snprintf(label, sizeof label, "%s Esup", tag);
            if (pe.supervised_error) tu_close_d(label, g, r.esup, nk, LIB_ATOL, LIB_RTOL);
            for (size_t i = 0; pe.top_error && i < nl; i++) g[i] = pe.top_error[i];
            snprintf(label, sizeof label, "%s E[L] = Esup Wout", tag);
            if (pe.top_error) tu_close_d(label, g, r.e[n->L], nl, LIB_ATOL, LIB_RTOL);
            free(g);
        } else {
            TU_CHECK(!pe.supervised_error && !pe.top_error,
                     "%s: no target, yet Esup or E[L] is reported", tag);
        }
        double e = pcn_compute_energy(&pe), want = F / n->B;
        snprintf(label, sizeof label, "%s pcn_compute_energy vs F/B", tag);
        tu_close_d(label, &e, &want, 1, 1e-6, LIB_RTOL);
        // 8. per-layer terms
        double terms[MAXL + 2], sum = 0;
        int cnt = pcn_compute_energy_per_layer(&pe, terms);
        TU_CHECK(cnt == n->L + (n->y ? 1 : 0), "%s: %d per-layer terms, want %d", tag, cnt,
                 n->L + (n->y ? 1 : 0));
        for (int i = 0; i < cnt; i++) sum += terms[i];
        snprintf(label, sizeof label, "%s sum of per-layer energies", tag);
        tu_close_d(label, &sum, &e, 1, 0, 1e-12);
        for (int l = 0; l < n->L && l < cnt; l++) {
            double t = 0;
            for (size_t i = 0; i < xsize(n, l); i++) t += 0.5 * r.e[l][i] * r.e[l][i];
            t /= n->B;
            snprintf(label, sizeof label, "%s per-layer energy term %d", tag, l);
            tu_close_d(label, &terms[l], &t, 1, 1e-6, LIB_RTOL);
        }
    }
    buf_free(n, &r);
    lib_free(&b);
}

static void check_gradients(void) {
    static const int dims[] = {6, 5, 4, 3};
    const int L = 3, K = 2, B = 3;
    static const pcn_activation cases[][3] = {
        {PCN_ACT_RELU, PCN_ACT_RELU, PCN_ACT_RELU},
        {PCN_ACT_TANH, PCN_ACT_TANH, PCN_ACT_TANH},
        {PCN_ACT_SIGMOID, PCN_ACT_SIGMOID, PCN_ACT_SIGMOID},
        {PCN_ACT_IDENTITY, PCN_ACT_IDENTITY, PCN_ACT_IDENTITY},
        {PCN_ACT_TANH, PCN_ACT_RELU, PCN_ACT_SIGMOID}, // per-layer activations
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        net n;
        net_make(&n, dims, L, K, B, cases[c], 0.05);
        for (int sup = 1; sup >= 0; sup--) {
            n.y = sup ? n.y_store : NULL;
            char tag[64];
            snprintf(tag, sizeof tag, "[%s%s, %s]", pcn_activation_name(cases[c][0]),
                     c == 4 ? "/relu/sigmoid" : "", sup ? "target" : "no target");
            int before = tu_failures;
            check_reference(&n, tag);
            check_inference(&n, tag);
            check_learning(&n, tag);
            check_errors(&n, tag);
            printf("gradients %-36s %s\n", tag, tu_failures == before ? "ok" : "FAILED");
        }
        net_free(&n);
    }
}

// ---- 5. descent: the energy never rises ----------------------------------------------------

static double lib_energy(lib *b) {
    pcn_errors pe;
    if (pcn_compute_errors(b->m, b->s, b->x0, b->y, &pe) != PCN_OK) return NAN;
    return pcn_compute_energy(&pe);
}

// Sign pattern of every preactivation A[l] = X[l+1] W[l]^T (relu's kinks); returns how many
// entries of `sign` changed (sign is updated).
static size_t kink_flips(lib *b, signed char *sign, bool first) {
    const pcn_model *m = b->m;
    size_t k = 0, flips = 0;
    int B = pcn_state_batch(b->s);
    for (int l = 0; l < pcn_model_num_layers(m); l++) {
        pcn_layer_view v = pcn_model_layer(b->m, l);
        const float *x = pcn_state_latent(b->s, l + 1);
        for (int r = 0; r < B; r++)
            for (int o = 0; o < v.out_features; o++, k++) {
                double acc = 0;
                for (int i = 0; i < v.in_features; i++)
                    acc += (double)x[(size_t)r * v.in_features + i] *
                           v.weight[(size_t)o * v.in_features + i];
                signed char sg = acc > 0 ? 1 : -1;
                if (!first && sg != sign[k]) flips++;
                sign[k] = sg;
            }
    }
    return flips;
}

// Steps with small rates. The energy is C^2 in X and W for tanh, sigmoid and identity, so a
// small enough gradient step never raises it: we require E_{t+1} <= E_t up to the float
// rounding of the snapshot (1e-6 relative). With relu, F is only piecewise smooth: a step
// that moves a preactivation across 0 may cross a convex kink of F and raise it by O(lr^2)
// (at pcn-torch's default lr_infer 0.05 relu inference does: in 3 of 50 steps, by < 1%,
// while every step crosses some kink). So for relu inference we take lr 0.02, keep the strict
// rule for steps that cross no kink, and allow a kink-crossing step a rise of at most 1e-3
// relative (none rises at all here). Also: the step's returned energy is its starting
// snapshot's, and the energy fell overall by at least 1% (so the check is not vacuous).
static void descend(lib *b, bool learning, float lr, int steps, const char *tag) {
    double prev = lib_energy(b), first = prev, worst_rise = 0;
    int rises = 0, crossing = 0, crossing_rises = 0;
    signed char sign[4096];
    kink_flips(b, sign, true);
    for (int t = 0; t < steps; t++) {
        double ret = learning ? pcn_learning_step(b->m, b->s, b->x0, b->y, lr)
                              : pcn_inference_step(b->m, b->s, b->x0, b->y, lr);
        // 1e-6: the step's own energy sums squares in float blocks (backend_cpu.c), the
        // snapshot's in double; the two differ by float rounding only (seen: < 1e-7).
        if (!(fabs(ret - prev) <= 1e-6 * prev)) {
            TU_CHECK(false, "%s %s step %d returned energy %.10g, its snapshot has %.10g", tag,
                     learning ? "learning" : "inference", t, ret, prev);
        }
        double cur = lib_energy(b);
        bool kinked = kink_flips(b, sign, false) > 0 &&
                      pcn_model_layer(b->m, 0).activation == PCN_ACT_RELU;
        crossing += kinked;
        bool rose = !(cur <= prev * (1 + 1e-6));
        if (rose && kinked && cur <= prev * (1 + 1e-3)) {
            crossing_rises++;
        } else if (rose) {
            if (rises++ < 3)
                fprintf(stderr, "  %s %s step %d: energy rose %.10g -> %.10g\n", tag,
                        learning ? "learning" : "inference", t, prev, cur);
            worst_rise = fmax(worst_rise, (cur - prev) / prev);
        }
        prev = cur;
    }
    TU_CHECK(rises == 0, "%s: energy rose in %d of %d %s steps", tag, rises, steps,
             learning ? "learning" : "inference");
    TU_CHECK(prev < 0.99 * first, "%s: %s barely lowered the energy: %.6g -> %.6g", tag,
             learning ? "learning" : "inference", first, prev);
    printf("descent %-22s %-9s lr %-5g E %9.5f -> %8.5f; kink-crossing steps %d (%d rose)\n",
           tag, learning ? "learning" : "inference", lr, first, prev, crossing, crossing_rises);
}

static void check_descent(void) {
    static const int dims[] = {8, 7, 6, 5};
    for (int a = 0; a < PCN_ACT_GENERATIVE_COUNT; a++) {
        pcn_activation act[3] = {a, a, a};
        net n;
        net_make(&n, dims, 3, 4, 6, act, 0.0);
        for (int sup = 1; sup >= 0; sup--) {
            n.y = sup ? n.y_store : NULL;
            char tag[64];
            snprintf(tag, sizeof tag, "[%s, %s]", pcn_activation_name(act[0]),
                     sup ? "target" : "no target");
            lib b = lib_make(&n);
            if (!b.m || !b.s) continue;
            // pcn-torch's default lr_infer, 0.02 for relu (see descend)
            descend(&b, false, a == PCN_ACT_RELU ? 0.02f : 0.05f, 50, tag);
            descend(&b, true, 0.01f, 50, tag);
            lib_free(&b);
        }
        net_free(&n);
    }
}

// ---- 6. activations ------------------------------------------------------------------------

// Compares act's derivative with a central difference of apply and the double closed form.
static void check_deriv(int act, const char *name) {
    // Grid points a = k/64 and h = 1/128 are exact in float, so the only FD error is the
    // rounding of f (<= ulp(|f|) / (2h) ~ 3e-5 for |f| <= 8) and truncation
    // h^2/6 |f'''| <= 1e-5; hence atol 2e-4.
    const double h = 1.0 / 128;
    double got[1025], ref[1025], exact[1025]; // k = -512..512
    size_t cnt = 0;
    for (int k = -512; k <= 512; k++) {
        double a = k / 64.0;
        if (act == PCN_ACT_RELU && fabs(a) < 2 * h) continue; // the kink
        float fp = pcn_activation_apply(act, (float)(a + h));
        float fm = pcn_activation_apply(act, (float)(a - h));
        got[cnt] = pcn_activation_deriv(act, (float)a);
        ref[cnt] = ((double)fp - (double)fm) / (2 * h);
        exact[cnt] = df_d(act, a);
        cnt++;
    }
    char label[96];
    snprintf(label, sizeof label, "%s: deriv vs central FD of apply", name);
    tu_close_d(label, got, ref, cnt, 2e-4, 1e-4);
    snprintf(label, sizeof label, "%s: deriv vs double closed form", name);
    tu_close_d(label, got, exact, cnt, 1e-6, 1e-6);
}

// Compares act's apply with the double closed form on the grid a = k/64.
static void check_apply(int act, const char *name) {
    for (int k = -512; k <= 512; k++) {
        double a = k / 64.0;
        TU_CHECK(fabs(pcn_activation_apply(act, (float)a) - f_d(act, a)) <=
                     1e-6 * (1 + fabs(a)),
                 "%s(%g) = %.9g, want %.9g", name, a, pcn_activation_apply(act, (float)a),
                 f_d(act, a));
    }
}

// pcn_get_activation and pcn_activation_from_name agree with the enum functions.
static void check_lookup(int act, const char *name) {
    pcn_act_fn fn = NULL, dfn = NULL;
    pcn_activation back = PCN_ACT_COUNT;
    TU_CHECK(pcn_get_activation(name, &fn, &dfn) == PCN_OK && fn && dfn,
             "pcn_get_activation(\"%s\") failed: %s", name, pcn_last_error());
    TU_CHECK(pcn_activation_from_name(name, &back) == PCN_OK && (int)back == act,
             "pcn_activation_from_name(\"%s\") gave %d", name, (int)back);
    for (int k = -300; fn && dfn && k <= 300; k++) {
        float a = k / 37.0f;
        TU_CHECK(fn(a) == pcn_activation_apply(act, a) &&
                     dfn(a) == pcn_activation_deriv(act, a),
                 "pcn_get_activation(\"%s\") differs from the enum at %g", name, a);
    }
}

// Unknown activation names are refused with a message naming the available ones.
static void check_bad_names(void) {
    const char *bad[] = {"swish", "Tanh", "", NULL};
    for (int i = 0; i < 4; i++) {
        pcn_act_fn fn = NULL, dfn = NULL;
        pcn_status st = pcn_get_activation(bad[i], &fn, &dfn);
        const char *msg = pcn_last_error();
        TU_CHECK(st == PCN_EINVAL, "pcn_get_activation(\"%s\") returned %s",
                 bad[i] ? bad[i] : "NULL",
                 pcn_status_name(st));
        TU_CHECK(strstr(msg, "relu") && strstr(msg, "tanh") && strstr(msg, "sigmoid") &&
                     strstr(msg, "identity"),
                 "error message should name the available activations: \"%s\"", msg);
        if (bad[i] && bad[i][0])
            TU_CHECK(strstr(msg, bad[i]) != NULL, "error message should name '%s': \"%s\"",
                     bad[i], msg);
    }
    pcn_activation out;
    TU_CHECK(pcn_activation_from_name("softmax", &out) == PCN_EINVAL,
             "pcn_activation_from_name accepted softmax");
}

static void check_activations(void) {
    for (int act = 0; act < PCN_ACT_GENERATIVE_COUNT; act++) {
        const char *name = pcn_activation_name(act);
        check_deriv(act, name);
        check_apply(act, name);
        check_lookup(act, name);
    }
    // pcn-torch: relu' = (a > 0), so 0 at the kink; relu(-0.5) = 0.
    TU_CHECK(pcn_activation_deriv(PCN_ACT_RELU, 0.0f) == 0.0f, "relu'(0) must be 0");
    TU_CHECK(pcn_activation_apply(PCN_ACT_RELU, -0.5f) == 0.0f, "relu(-0.5) must be 0");
    TU_CHECK(pcn_activation_deriv(PCN_ACT_RELU, -0.5f) == 0.0f, "relu'(-0.5) must be 0");
    check_bad_names();
}

// ---- 7. Xavier initialisation --------------------------------------------------------------

// Checks that v[0..n) look like U(-a, a): inside the bounds, variance a^2/3 within 3%
// (the sampling error of the variance is 0.3/sqrt(n) relative: 1.2% at n = 10000, so this
// is > 2.5 sigma even for the smallest tensor), mean ~0, extremes within 1% of a.
static void check_uniform(const char *label, const float *v, size_t n, double a) {
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    size_t outside = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabsf(v[i]) <= (float)a)) outside++;
        sum += v[i], sq += (double)v[i] * v[i];
        lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    double mean = sum / n, var = sq / n - mean * mean, want = a * a / 3;
    TU_CHECK(outside == 0, "%s: %zu of %zu entries outside +-%.6g", label, outside, n, a);
    TU_CHECK(fabs(var - want) <= 0.03 * want, "%s: variance %.6g, want a^2/3 = %.6g", label, var,
             want);
    TU_CHECK(fabs(mean) <= 5 * a / sqrt(3.0 * n), "%s: mean %.3g is not ~0", label, mean);
    TU_CHECK(hi >= 0.99 * a && lo <= -0.99 * a, "%s: range [%.6g, %.6g], bound %.6g", label, lo,
             hi, a);
    printf("init %-22s n %6zu bound %.5f var/(a^2/3) %.4f range [%.5f, %.5f]\n", label, n, a,
           var / want, lo, hi);
}

static void check_init(void) {
    static const int dims[] = {300, 200, 100};
    pcn_model_params p = pcn_model_default_params();
    p.n_dims = 3, p.dims = dims, p.seed = 1234;
    pcn_model *m = pcn_model_init(&p), *m2 = pcn_model_init(&p);
    p.seed = 1235;
    pcn_model *m3 = pcn_model_init(&p);
    TU_CHECK(m && m2 && m3, "pcn_model_init: %s", pcn_last_error());
    if (!m || !m2 || !m3) goto done;
    TU_CHECK(pcn_model_output_dim(m) == 100, "output_dim 0 should mean dL");
    for (int l = 0; l < 2; l++) {
        pcn_layer_view v = pcn_model_layer(m, l);
        char label[32];
        snprintf(label, sizeof label, "W[%d] (%dx%d)", l, v.out_features, v.in_features);
        check_uniform(label, v.weight, (size_t)v.out_features * v.in_features,
                      sqrt(6.0 / (dims[l] + dims[l + 1])));
    }
    check_uniform("readout (100x100)", pcn_model_readout(m), 100 * 100, 1.0 / sqrt(100.0));
    size_t nw = pcn_model_num_weights(m), differ = 0;
    TU_CHECK(nw == 300 * 200 + 200 * 100 + 100 * 100, "num_weights %zu", nw);
    TU_CHECK(memcmp(pcn_model_weights(m), pcn_model_weights(m2), nw * sizeof(float)) == 0,
             "same seed gave different weights");
    for (size_t i = 0; i < nw; i++) differ += pcn_model_weights(m)[i] != pcn_model_weights(m3)[i];
    TU_CHECK(differ > nw * 99 / 100, "another seed changed only %zu of %zu weights", differ, nw);
    // Layers given without weights get the same Xavier init.
    pcn_layer_spec spec[2] = {{200, 300, PCN_ACT_TANH, NULL}, {100, 200, PCN_ACT_TANH, NULL}};
    pcn_model *m4 = pcn_model_init_layers(spec, 2, 10, PCN_TASK_CLASSIFICATION, 7);
    TU_CHECK(m4 != NULL, "pcn_model_init_layers: %s", pcn_last_error());
    if (m4) {
        check_uniform("layers W[0] (300x200)", pcn_model_layer(m4, 0).weight, 300 * 200,
                      sqrt(6.0 / 500));
        const float *ro = pcn_model_readout(m4);
        size_t outside = 0;
        for (size_t i = 0; i < 10 * 100; i++) outside += !(fabsf(ro[i]) <= 0.1f);
        TU_CHECK(outside == 0, "layers readout (10x100): %zu entries outside +-0.1", outside);
    }
    pcn_model_free(m4);
done:
    pcn_model_free(m), pcn_model_free(m2), pcn_model_free(m3);
}

int main(void) {
    check_gradients();
    check_descent();
    check_activations();
    check_init();
    return tu_finish("test_math");
}
