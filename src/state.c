/*
 * state.c — latents and error signals of one batch (pcn-torch init_latents,
 * compute_errors, predict) and the public single-process steps, on the step kernels of
 * step.c.
 */
#include <math.h>
#include <string.h>

#include "phase.h"

pcn_state *pcn_state_init(const pcn_model *m, int max_batch) {
    if (!m) {
        pcn_set_error(PCN_EINVAL, "state: model is NULL");
        return NULL;
    }
    if (max_batch < 1) {
        pcn_set_error(PCN_EINVAL, "state: max_batch must be >= 1, got %d", max_batch);
        return NULL;
    }
    pcn_state *s = pcn_alloc(sizeof *s);
    if (!s) {
        pcn_set_error(PCN_ENOMEM, "out of memory allocating a batch state");
        return NULL;
    }
    s->model = m;
    s->ops = m->ops;
    s->max_batch = max_batch;
    size_t rows = (size_t)max_batch, total = 0;
    size_t sz_x[PCN_MAX_LAYERS + 1];
    for (int l = 0; l <= m->L; l++) {
        sz_x[l] = (rows * m->dims[l] + 15) / 16 * 16; // 64-byte aligned starts
        total += (l > 0 ? sz_x[l] : 0) + 2 * sz_x[l] + (l < m->L ? sz_x[l] : 0);
    }
    size_t sz_k = (rows * m->K + 15) / 16 * 16;
    total += 2 * sz_k;
    s->mem = m->ops->alloc(total * sizeof(float));
    if (!s->mem) {
        pcn_free(s);
        pcn_set_error(PCN_ENOMEM, "out of memory allocating a batch state of %zu floats", total);
        return NULL;
    }
    float *p = s->mem;
    for (int l = 0; l <= m->L; l++) {
        if (l > 0) s->x[l] = p, p += sz_x[l];
        s->e[l] = p, p += sz_x[l];
        if (l < m->L) s->a[l] = p, p += sz_x[l], s->h[l] = p, p += sz_x[l];
        else p += sz_x[l]; // keeps the count above simple: one spare block at the top
    }
    s->yhat = p, p += sz_k;
    s->esup = p;
    s->batch = max_batch;
    return s;
}

void pcn_state_free(pcn_state *s) {
    if (!s) return;
    for (int l = 0; l <= PCN_MAX_LAYERS; l++) pcn_free(s->staged[l]);
    s->ops->release(s->mem);
    pcn_free(s);
}

pcn_status pcn_state_set_batch(pcn_state *s, int batch) {
    if (batch < 0 || batch > s->max_batch)
        return pcn_set_error(PCN_EINVAL, "state: batch %d outside [0, %d]", batch, s->max_batch);
    s->batch = batch;
    s->latents_ready = false;
    return PCN_OK;
}

int pcn_state_batch(const pcn_state *s) { return s->batch; }

float *pcn_state_latent(pcn_state *s, int l) {
    if (l < 1 || l > s->model->L) return NULL;
    s->latents_ready = true; // the caller sets them by hand
    if (!s->ops->on_device) return s->x[l];
    // On a device: a host buffer of the layer, uploaded by pcn_state_push_latents.
    const size_t bytes = (size_t)s->max_batch * s->model->dims[l] * sizeof(float);
    if (!s->staged[l]) s->staged[l] = pcn_alloc(bytes);
    return s->staged[l];
}

void pcn_state_push_latents(pcn_state *s) {
    if (!s->ops->on_device) return;
    for (int l = 1; l <= s->model->L; l++) {
        if (!s->staged[l]) continue;
        const size_t bytes = (size_t)s->batch * s->model->dims[l] * sizeof(float);
        s->ops->upload(s->x[l], s->staged[l], bytes);
        pcn_free(s->staged[l]);
        s->staged[l] = NULL;
    }
}

void pcn_init_latents(pcn_state *s, const pcn_latent_key *key) {
    const pcn_model *m = s->model;
    for (int l = 1; l <= m->L; l++) {
        uint32_t c1 = ((uint32_t)l << 8) | (uint32_t)key->stream;
        s->ops->normal_rows(key->seed, (uint32_t)key->first_row, c1, key->epoch, s->batch,
                            m->dims[l], s->x[l]);
    }
    s->latents_ready = true;
}

void pcn_state_rows(const pcn_state *s, int r0, int rows, pcn_state *view) {
    const pcn_model *m = s->model;
    *view = *s;
    view->batch = view->max_batch = rows;
    for (int l = 0; l <= m->L; l++) {
        const size_t off = (size_t)r0 * m->dims[l];
        if (l > 0) view->x[l] = s->x[l] + off;
        view->e[l] = s->e[l] + off;
        if (l < m->L) view->a[l] = s->a[l] + off, view->h[l] = s->h[l] + off;
    }
    view->yhat = s->yhat + (size_t)r0 * m->K;
    view->esup = s->esup + (size_t)r0 * m->K;
}

// ----------------------------------------------------------------------------------------
// Public single-process API
// ----------------------------------------------------------------------------------------

static pcn_status check_ready(const pcn_model *m, const pcn_state *s, const float *x) {
    if (!m || !s) return pcn_set_error(PCN_EINVAL, "model and state must not be NULL");
    if (m->ops->on_device)
        return pcn_set_error(PCN_EINVAL, "the step-level API runs on CPU models; this model "
                             "is on a GPU (pcn_train and pcn_test run there)");
    if (s->model != m)
        return pcn_set_error(PCN_EINVAL, "state was made for another model");
    if (!s->latents_ready)
        return pcn_set_error(PCN_ESTATE,
                             "latents not initialised: call pcn_init_latents() first");
    if (!x && s->batch > 0) return pcn_set_error(PCN_EINVAL, "input x must not be NULL");
    return PCN_OK;
}

pcn_status pcn_compute_errors(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                              pcn_errors *out) {
    pcn_status st = check_ready(m, s, x);
    if (st != PCN_OK) return st;
    pcn_step_errors(m, s, x, y, 0.0f, true, true);
    *out = (pcn_errors){
        .n_layers = m->L,
        .batch = s->batch,
        .dims = m->dims,
        .output_dim = m->K,
        .errors = s->e,
        .gm_errors = s->h,
        .supervised_error = y ? s->esup : NULL,
        .top_error = y ? s->e[m->L] : NULL,
    };
    return PCN_OK;
}

static double sumsq(const float *v, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += (double)v[i] * v[i];
    return acc;
}

int pcn_compute_energy_per_layer(const pcn_errors *e, double *out) {
    int n = 0;
    double inv = e->batch > 0 ? 0.5 / e->batch : 0.0;
    for (int l = 0; l < e->n_layers; l++)
        out[n++] = inv * sumsq(e->errors[l], (size_t)e->batch * e->dims[l]);
    if (e->supervised_error)
        out[n++] = inv * sumsq(e->supervised_error, (size_t)e->batch * e->output_dim);
    return n;
}

double pcn_compute_energy(const pcn_errors *e) {
    double terms[PCN_MAX_LAYERS + 1], total = 0.0;
    int n = pcn_compute_energy_per_layer(e, terms);
    for (int i = 0; i < n; i++) total += terms[i];
    return total;
}

pcn_status pcn_predict(const pcn_model *m, const pcn_state *s, float *yhat) {
    pcn_status st = check_ready(m, s, (const float *)1);
    if (st != PCN_OK) return st;
    const int L = m->L, dL = m->dims[L];
    m->ops->gemm(false, true, s->batch, m->K, dL, 1.0f, s->x[L], dL, m->w + m->woff[L], dL,
                 0.0f, yhat, m->K);
    return PCN_OK;
}

double pcn_inference_step(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                          float lr_infer) {
    if (check_ready(m, s, x) != PCN_OK) return NAN;
    double sq = pcn_step_errors(m, s, x, y, lr_infer, true, true);
    return s->batch > 0 ? 0.5 * sq / s->batch : 0.0;
}

static pcn_status keep_sum(void *ctx, int step, double sumsq, bool *stop) {
    (void)step, (void)stop;
    *(double *)ctx = sumsq;
    return PCN_OK;
}

double pcn_inference_steps(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                           float lr_infer, int steps, bool split) {
    if (check_ready(m, s, x) != PCN_OK) return NAN;
    if (steps < 1) return pcn_set_error(PCN_EINVAL, "steps must be >= 1, got %d", steps), NAN;
    const pcn_phase_params pp = {s->batch, split, false};
    void *ws = m->ops->phase_init(m, &pp);
    if (!ws) return pcn_set_error(PCN_ENOMEM, "out of memory for an inference phase"), NAN;
    double sq = NAN;
    pcn_infer_phase ph = {m, s, x, y, steps, lr_infer, PCN_PRECISION_FP32, steps - 1, keep_sum,
                          &sq, 0};
    pcn_status st = m->ops->infer_phase(ws, &ph);
    m->ops->phase_free(ws);
    return st != PCN_OK ? NAN : s->batch > 0 ? 0.5 * sq / s->batch : 0.0;
}

double pcn_learning_step(pcn_model *m, pcn_state *s, const float *x, const float *y,
                         float lr_learn) {
    if (check_ready(m, s, x) != PCN_OK) return NAN;
    double sq = pcn_step_errors(m, s, x, y, 0.0f, false, true);
    if (s->batch == 0) return 0.0;
    pcn_step_gradient(m, s, y != NULL);
    pcn_step_apply(m, lr_learn / (float)s->batch);
    return 0.5 * sq / s->batch;
}
