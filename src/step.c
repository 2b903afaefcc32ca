/*
 * step.c — the inference and learning steps built on the backend interface (the step
 * bodies of pcn-torch's train_pcn), for the trainer's phases and the public steps.
 *
 * Order inside an inference step (all errors come from one snapshot, as in pcn-torch):
 *   1. A[l] = X[l+1] W[l]^T for every l, Yhat = X[L] Wout^T        (matrix products)
 *   2. Esup = Yhat - Y, E[L] = Esup Wout                             (with a target)
 *   3. per layer, one fused pass: E[l], H[l], sum E^2 and X[l] -= lr E[l]
 *   4. X[L] -= lr E[L]; X[l] += lr H[l-1] W[l-1] for l = 1..L        (matrix products)
 * Step 3 may write X[l] because every product that reads X[l] ran in step 1.
 */
#include "phase.h"

// The step's products through the backend's gemm, each threading itself.
static void gemm_xmt(const void *ctx, int l, int B, int out, int in, const float *x, float *c) {
    const pcn_model *m = ctx;
    m->ops->gemm(false, true, B, out, in, 1.0f, x, in, m->w + m->woff[l], in, 0.0f, c, out);
}

static void gemm_dm(const void *ctx, int l, int B, int out, int in, float alpha, const float *d,
                    float beta, float *c) {
    const pcn_model *m = ctx;
    m->ops->gemm(false, false, B, in, out, alpha, d, out, m->w + m->woff[l], in, beta, c, in);
}

double pcn_step_errors_with(const pcn_model *m, const pcn_products *prod, pcn_state *s,
                            const float *x, const float *y, float lr, bool need_top,
                            bool want_sum) {
    const pcn_backend_ops *ops = m->ops;
    const int B = s->batch, L = m->L, K = m->K, dL = m->dims[L];
    double sq = 0.0;
    if (want_sum) ops->sum_begin();
    for (int l = 0; l < L; l++) // (B, d_l) = (B, d_{l+1}) (d_l, d_{l+1})^T
        prod->xmt(prod->ctx, l, B, m->dims[l], m->dims[l + 1], s->x[l + 1], s->a[l]);
    if (y) {
        prod->xmt(prod->ctx, L, B, K, dL, s->x[L], s->yhat);
        sq += ops->sup_error((size_t)B * K, s->yhat, y, s->esup);
        if (need_top) // (B, dL) = (B, K) (K, dL)
            prod->dm(prod->ctx, L, B, K, dL, 1.0f, s->esup, 0.0f, s->e[L]);
    }
    s->has_target = y != NULL;
    // The input X[0] is never written: its pass runs with lr = 0.
    sq += ops->error_pass(m->act[0], (size_t)B * m->dims[0], (float *)x, s->a[0], s->e[0],
                          s->h[0], 0.0f);
    for (int l = 1; l < L; l++)
        sq += ops->error_pass(m->act[l], (size_t)B * m->dims[l], s->x[l], s->a[l], s->e[l],
                              s->h[l], lr);
    if (want_sum) ops->sum_finish();
    if (lr != 0.0f) {
        if (y) ops->axpy((size_t)B * dL, -lr, s->e[L], s->x[L]);
        for (int l = 1; l <= L; l++) // (B, d_l) += lr (B, d_{l-1}) (d_{l-1}, d_l)
            prod->dm(prod->ctx, l - 1, B, m->dims[l - 1], m->dims[l], lr, s->h[l - 1], 1.0f,
                    s->x[l]);
    }
    return sq;
}

double pcn_step_errors(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                       float lr, bool need_top, bool want_sum) {
    const pcn_products prod = {m, gemm_xmt, gemm_dm};
    return pcn_step_errors_with(m, &prod, s, x, y, lr, need_top, want_sum);
}

double pcn_step_sum(const pcn_model *m, double returned) { return returned + m->ops->sum_read(); }

void pcn_step_gradient(pcn_model *m, const pcn_state *s, bool has_target) {
    const pcn_backend_ops *ops = m->ops;
    const int B = s->batch, L = m->L, K = m->K, dL = m->dims[L];
    for (int l = 0; l < L; l++) // (d_l, d_{l+1}) = (B, d_l)^T (B, d_{l+1})
        ops->gemm(true, false, m->dims[l], m->dims[l + 1], B, 1.0f, s->h[l], m->dims[l],
                  s->x[l + 1], m->dims[l + 1], 0.0f, m->g + m->woff[l], m->dims[l + 1]);
    if (has_target) // (K, dL) = -(B, K)^T (B, dL)
        ops->gemm(true, false, K, dL, B, -1.0f, s->esup, K, s->x[L], dL, 0.0f,
                  m->g + m->woff[L], dL);
    else
        ops->zero((size_t)K * dL, m->g + m->woff[L]);
}

void pcn_step_apply(pcn_model *m, float alpha) {
    m->ops->axpy(m->woff[m->L + 1], alpha, m->g, m->w);
}

void pcn_step_predict(const pcn_model *m, pcn_state *s) {
    const int L = m->L, dL = m->dims[L];
    m->ops->gemm(false, true, s->batch, m->K, dL, 1.0f, s->x[L], dL, m->w + m->woff[L], dL,
                 0.0f, s->yhat, m->K);
}

