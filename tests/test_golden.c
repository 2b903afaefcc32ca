/*
 * test_golden.c — libpcn reproduces pcn-torch 1.1.0 itself.
 *
 * Each fixture in tests/golden/ (made by gen_golden.py, which drives pcn-torch) holds a
 * fixed initial state — data, weights, and every latent draw in init_latents call order —
 * and what pcn-torch recorded from it: every inference and learning step's energy, the
 * callback trace, the TrainHistory lists, the final weights, the test result and per-sample
 * test predictions. This test replays the state through pcn_train and pcn_test (latents
 * injected through params.latent_init) and requires every recorded number to match within
 * 1e-5 relative (plus a tiny absolute floor for values near zero), every count and event
 * to match exactly. Cases: classification/relu, regression/tanh with early stopping,
 * reduce-on-plateau firing, and the manual lr step list.
 *
 * Usage: test_golden FIXTURE.txt
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define RTOL 1e-5
#define ATOL 1e-6

// ---- what the callbacks record ------------------------------------------------------------

typedef struct {
    double *v;
    size_t n, cap;
} vec;

static void push(vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

typedef struct {
    vec events, infer, learn, lr_reduced, batch_end;
    const double *latents;   // fixture latents, consumed in call order
    size_t latents_n, used;
    int calls;
    const double *call_batch;
    size_t ncalls;
} recorder;

static void cb_train_start(void *u, const pcn_train_params *p, const pcn_history *h) {
    (void)p, (void)h;
    push(&((recorder *)u)->events, 0);
}
static void cb_epoch_start(void *u, int e, int n) { (void)e, (void)n; push(&((recorder *)u)->events, 1); }
static void cb_batch_start(void *u, int b, int n) { (void)b, (void)n; push(&((recorder *)u)->events, 2); }
static void cb_infer(void *u, int step, double e) {
    (void)step;
    push(&((recorder *)u)->events, 3);
    push(&((recorder *)u)->infer, e);
}
static void cb_learn(void *u, int step, double e) {
    (void)step;
    push(&((recorder *)u)->events, 4);
    push(&((recorder *)u)->learn, e);
}
static void cb_batch_end(void *u, int b, double e, double pre) {
    recorder *r = u;
    push(&r->events, 5);
    push(&r->batch_end, b);
    push(&r->batch_end, e);
    push(&r->batch_end, pre);
}
static void cb_epoch_end(void *u, int e, const pcn_history *h) { (void)e, (void)h; push(&((recorder *)u)->events, 6); }
static void cb_lr(void *u, double old, double new_lr) {
    recorder *r = u;
    push(&r->events, 7);
    push(&r->lr_reduced, old);
    push(&r->lr_reduced, new_lr);
}
static void cb_train_end(void *u, const pcn_history *h) { (void)h; push(&((recorder *)u)->events, 8); }

// pcn_model_dim needs the model; keep it next to the recorder.
static const pcn_model *g_model;

static void replay(void *u, pcn_state *s, const pcn_latent_request *req) {
    (void)req;
    recorder *r = u;
    int B = pcn_state_batch(s);
    if ((size_t)r->calls >= r->ncalls || r->call_batch[r->calls] != B) {
        fprintf(stderr, "FAIL latent call %d: batch %d, fixture expects %g\n", r->calls, B,
                (size_t)r->calls < r->ncalls ? r->call_batch[r->calls] : -1.0);
        tu_failures++;
        return;
    }
    r->calls++;
    int L = pcn_model_num_layers(g_model);
    for (int l = 1; l <= L; l++) {
        float *x = pcn_state_latent(s, l);
        size_t n = (size_t)B * pcn_model_dim(g_model, l);
        for (size_t i = 0; i < n && r->used < r->latents_n; i++) x[i] = (float)r->latents[r->used++];
    }
}

// ---- helpers ------------------------------------------------------------------------------

static float *to_float(const double *v, size_t n) {
    if (!v) n = 0;
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

static void expect_d(tu_fixture *f, const char *name, const double *got, size_t n) {
    size_t m;
    const double *want = tu_fixture_get(f, name, &m);
    TU_CHECK(m == n, "%s: %zu values, pcn-torch has %zu", name, n, m);
    if (want && m == n) tu_close_d(name, got, want, n, ATOL, RTOL);
}

static void expect_hist(tu_fixture *f, const char *name, const pcn_history *h,
                        pcn_history_series s) {
    expect_d(f, name, pcn_history_data(h, s), pcn_history_len(h, s));
}

// ---- the replay ---------------------------------------------------------------------------

// Builds the model from the fixture's initial weights; w[l] receive the layer copies.
static pcn_model *load_model(tu_fixture *f, const int *dims, int L, int K, pcn_task task,
                             float **w) {
    size_t n;
    pcn_layer_spec layers[16];
    char name[32];
    for (int l = 0; l < L; l++) {
        snprintf(name, sizeof name, "w%d", l);
        const double *wl = tu_fixture_get(f, name, &n);
        w[l] = to_float(wl, n);
        layers[l] = (pcn_layer_spec){dims[l + 1], dims[l],
                                     (pcn_activation)tu_fixture_scalar(f, "activation"), w[l]};
    }
    pcn_model *m = pcn_model_init_layers(layers, L, K, task, 0);
    TU_CHECK(m != NULL, "model: %s", pcn_last_error());
    if (!m) return NULL;
    g_model = m;
    const double *wout = tu_fixture_get(f, "wout", &n);
    for (size_t i = 0; i < n; i++) pcn_model_readout(m)[i] = (float)wout[i];
    return m;
}

// The train and test sets, with the arrays (their ctx) and host buffers behind them.
typedef struct {
    float *train_x, *test_x, *train_t, *test_t;
    int32_t *train_lab, *test_lab;
    int64_t n_train, n_test;
    pcn_arrays tr, te;
    pcn_data train, test;
} golden_data;

// Loads the fixture's train and test sets into d (labels or targets, as the task wants).
static void load_data(tu_fixture *f, pcn_task task, int D, int K, golden_data *d) {
    size_t nx, ny, ntx, nty;
    const double *dx = tu_fixture_get(f, "train_x", &nx), *dtx = tu_fixture_get(f, "test_x", &ntx);
    d->train_x = to_float(dx, nx), d->test_x = to_float(dtx, ntx);
    const double *train_y = tu_fixture_get(f, "train_y", &ny);
    const double *test_y = tu_fixture_get(f, "test_y", &nty);
    d->n_train = (int64_t)tu_fixture_scalar(f, "n_train");
    d->n_test = (int64_t)tu_fixture_scalar(f, "n_test");
    d->train_lab = malloc(ny * sizeof *d->train_lab);
    d->test_lab = malloc(nty * sizeof *d->test_lab);
    for (size_t i = 0; i < ny; i++) d->train_lab[i] = (int32_t)train_y[i];
    for (size_t i = 0; i < nty; i++) d->test_lab[i] = (int32_t)test_y[i];
    d->train_t = to_float(train_y, ny), d->test_t = to_float(test_y, nty);
    bool reg = task == PCN_TASK_REGRESSION;
    d->tr = (pcn_arrays){d->train_x, reg ? NULL : d->train_lab, reg ? d->train_t : NULL,
                         d->n_train, D, reg ? K : 0};
    d->te = (pcn_arrays){d->test_x, reg ? NULL : d->test_lab, reg ? d->test_t : NULL,
                         d->n_test, D, reg ? K : 0};
    d->train = pcn_data_from_arrays(&d->tr), d->test = pcn_data_from_arrays(&d->te);
}

// Frees the host buffers load_data allocated.
static void free_data(golden_data *d) {
    free(d->train_x), free(d->test_x), free(d->train_lab), free(d->test_lab);
    free(d->train_t), free(d->test_t);
}

// The fixture's training config, with the recorder's callbacks and latent replay; the lr
// step list goes into lr_steps (16 entries), which must outlive the params.
static pcn_train_params load_params(tu_fixture *f, pcn_task task, recorder *rec,
                                    pcn_lr_step *lr_steps) {
    pcn_train_params p = pcn_train_default_params();
    p.task = task;
    p.t_infer = (int)tu_fixture_scalar(f, "t_infer");
    p.t_infer_test = (int)tu_fixture_scalar(f, "t_infer_test");
    p.t_learn = (int)tu_fixture_scalar(f, "t_learn");
    p.lr_infer = tu_fixture_scalar(f, "lr_infer");
    p.lr_learn = tu_fixture_scalar(f, "lr_learn");
    p.num_epochs = (int)tu_fixture_scalar(f, "num_epochs");
    p.early_stop_threshold = tu_fixture_scalar(f, "early_stop_threshold");
    p.energy_window_size = (int)tu_fixture_scalar(f, "energy_window_size");
    p.lr_schedule = (pcn_lr_schedule)tu_fixture_scalar(f, "lr_schedule");
    p.lr_decay_factor = tu_fixture_scalar(f, "lr_decay_factor");
    p.lr_patience = (int)tu_fixture_scalar(f, "lr_patience");
    size_t nsteps;
    const double *steps = tu_fixture_get(f, "lr_steps", &nsteps);
    for (size_t i = 0; i + 2 < nsteps && i / 3 < 16; i += 3)
        lr_steps[i / 3] = (pcn_lr_step){(int)steps[i], (int)steps[i + 1], steps[i + 2]};
    p.lr_steps = nsteps ? lr_steps : NULL;
    p.n_lr_steps = (int)(nsteps / 3);
    p.batch_size = (int)tu_fixture_scalar(f, "batch_size");
    p.test_batch_size = (int)tu_fixture_scalar(f, "test_batch_size");
    p.shuffle = false;
    p.callbacks = (pcn_callbacks){rec, cb_train_start, cb_epoch_start, cb_batch_start, cb_infer,
                                  cb_learn, cb_batch_end, cb_epoch_end, cb_lr, cb_train_end};
    p.latent_init = replay;
    p.latent_user = rec;
    return p;
}

// Compares what training recorded (callbacks, history, final weights) with pcn-torch's.
static void compare_training(tu_fixture *f, const recorder *rec, const pcn_history *h,
                             pcn_model *m, int L) {
    size_t n;
    expect_d(f, "infer_energy", rec->infer.v, rec->infer.n);
    expect_d(f, "learn_energy", rec->learn.v, rec->learn.n);
    expect_d(f, "events", rec->events.v, rec->events.n);
    expect_d(f, "lr_reduced", rec->lr_reduced.v, rec->lr_reduced.n);
    expect_d(f, "batch_end", rec->batch_end.v, rec->batch_end.n);
    expect_hist(f, "infer_steps", h, PCN_HIST_INFER_STEPS);
    expect_hist(f, "per_batch", h, PCN_HIST_PER_BATCH);
    expect_hist(f, "per_batch_pre_learn", h, PCN_HIST_PER_BATCH_PRE_LEARN);
    expect_hist(f, "per_epoch", h, PCN_HIST_PER_EPOCH);
    expect_hist(f, "per_epoch_pre_learn", h, PCN_HIST_PER_EPOCH_PRE_LEARN);
    expect_hist(f, "train_loss", h, PCN_HIST_TRAIN_LOSS);
    expect_hist(f, "train_accuracy", h, PCN_HIST_TRAIN_ACCURACY);
    expect_hist(f, "test_loss", h, PCN_HIST_TEST_LOSS);
    expect_hist(f, "test_accuracy", h, PCN_HIST_TEST_ACCURACY);
    expect_hist(f, "lr_learn_per_epoch", h, PCN_HIST_LR_PER_EPOCH);
    for (int l = 0; l <= L; l++) {
        char fw[32];
        if (l < L) snprintf(fw, sizeof fw, "final_w%d", l);
        else snprintf(fw, sizeof fw, "final_wout");
        const double *want = tu_fixture_get(f, fw, &n);
        const float *got = l < L ? pcn_model_layer(m, l).weight : pcn_model_readout(m);
        float *wantf = to_float(want, n);
        tu_close_f(fw, got, wantf, n, ATOL, RTOL);
        free(wantf);
    }
}

// Compares the test result, outputs and (classification) predictions with pcn-torch's.
static void compare_test(tu_fixture *f, pcn_test_result *r, const float *yhat, int64_t n_test,
                         int K, bool reg) {
    size_t n;
    expect_d(f, "test_result_accuracy", &r->accuracy, 1);
    expect_d(f, "test_result_energy", &r->energy, 1);
    const double *want_yhat = tu_fixture_get(f, "test_yhat", &n);
    float *wy = to_float(want_yhat, n);
    TU_CHECK(n == (size_t)n_test * K, "test_yhat: %zu values", n);
    tu_close_f("test_yhat", yhat, wy, n, ATOL, RTOL);
    if (!reg) {
        const double *pred = tu_fixture_get(f, "test_pred", &n);
        for (size_t i = 0; i < n; i++) {
            int best = 0;
            for (int j = 1; j < K; j++)
                if (yhat[i * K + j] > yhat[i * K + best]) best = j;
            TU_CHECK(best == (int)pred[i], "test_pred[%zu]: %d, pcn-torch %d", i, best,
                     (int)pred[i]);
        }
    } else {
        expect_d(f, "test_mse", &r->mse, 1);
    }
    free(wy);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_golden FIXTURE.txt\n");
        return 2;
    }
    tu_fixture *f = tu_fixture_load(argv[1]);
    if (!f) return tu_finish(argv[1]);

    size_t ndims;
    const double *dd = tu_fixture_get(f, "dims", &ndims);
    int dims[16], L = (int)ndims - 1, K = (int)tu_fixture_scalar(f, "output_dim");
    for (size_t i = 0; i < ndims; i++) dims[i] = (int)dd[i];
    pcn_task task =
        tu_fixture_scalar(f, "task") == 1 ? PCN_TASK_REGRESSION : PCN_TASK_CLASSIFICATION;
    float *w[16];
    pcn_model *m = load_model(f, dims, L, K, task, w);
    if (!m) return tu_finish(argv[1]);

    // Data
    golden_data d;
    load_data(f, task, dims[0], K, &d);
    bool reg = task == PCN_TASK_REGRESSION;

    // Config
    recorder rec = {0};
    rec.latents = tu_fixture_get(f, "latents", &rec.latents_n);
    rec.call_batch = tu_fixture_get(f, "latent_batch", &rec.ncalls);
    pcn_lr_step lr_steps[16];
    pcn_train_params p = load_params(f, task, &rec, lr_steps);

    // Train and compare
    pcn_history *h = pcn_history_init();
    pcn_status st = pcn_train(m, &d.train, &p, h);
    TU_CHECK(st == PCN_OK, "pcn_train: %s", pcn_last_error());
    compare_training(f, &rec, h, m, L);

    // Test and compare
    int64_t n_test = d.n_test;
    float *yhat = calloc((size_t)n_test * K, sizeof *yhat);
    pcn_test_result r;
    st = pcn_test(m, &d.test, &p, &r, yhat);
    TU_CHECK(st == PCN_OK, "pcn_test: %s", pcn_last_error());
    TU_CHECK(rec.calls == (int)rec.ncalls, "latent calls %d, pcn-torch made %zu", rec.calls,
             rec.ncalls);
    TU_CHECK(rec.used == rec.latents_n, "used %zu of %zu latent values", rec.used, rec.latents_n);
    compare_test(f, &r, yhat, n_test, K, reg);
    printf("%s: %zu inference and %zu learning step energies, %zu events compared\n", argv[1],
           rec.infer.n, rec.learn.n, rec.events.n);

    free(yhat);
    free_data(&d);
    for (int l = 0; l < L; l++) free(w[l]);
    free(rec.events.v), free(rec.infer.v), free(rec.learn.v), free(rec.lr_reduced.v);
    free(rec.batch_end.v);
    pcn_history_free(h);
    pcn_model_free(m);
    tu_fixture_free(f);
    return tu_finish(argv[1]);
}
