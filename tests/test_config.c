/*
 * test_config.c — bad configuration and bad data are refused with a message naming the
 * problem, and never reach the arithmetic.
 *
 * Proves: pcn_train_params_validate refuses every invalid field, naming it; model params
 * (dims, activation, layer chaining) are checked; pcn_train / pcn_test refuse data with NaN
 * or Inf, labels outside [0, output_dim), widths that do not match dims[0] or output_dim,
 * empty data, and a task that differs from the model's mode — each with PCN_EDATA or
 * PCN_EINVAL and a message containing the offending name or value; a diverging run stops
 * with PCN_EDIVERGED instead of producing NaN weights silently.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void expect_msg(pcn_status got, pcn_status want, const char *needle, const char *what) {
    TU_CHECK(got == want, "%s: status %d (%s), want %d", what, (int)got, pcn_last_error(), (int)want);
    TU_CHECK(strstr(pcn_last_error(), needle) != NULL, "%s: message '%s' does not mention '%s'",
             what, pcn_last_error(), needle);
}

// ---- params -------------------------------------------------------------------------------

typedef struct {
    const char *field;
    void (*set)(pcn_train_params *);
} bad_case;


static void s_task(pcn_train_params *p) { p->task = (pcn_task)7; }
static void s_t_infer(pcn_train_params *p) { p->t_infer = 0; }
static void s_t_infer_test(pcn_train_params *p) { p->t_infer_test = -1; }
static void s_t_learn(pcn_train_params *p) { p->t_learn = -3; }
static void s_lr_infer(pcn_train_params *p) { p->lr_infer = 0.0; }
static void s_lr_infer_nan(pcn_train_params *p) { p->lr_infer = NAN; }
static void s_lr_learn(pcn_train_params *p) { p->lr_learn = -1e-3; }
static void s_lr_learn_inf(pcn_train_params *p) { p->lr_learn = INFINITY; }
static void s_epochs(pcn_train_params *p) { p->num_epochs = -1; }
static void s_early(pcn_train_params *p) { p->early_stop_threshold = -0.1; }
static void s_early_nan(pcn_train_params *p) { p->early_stop_threshold = NAN; }
static void s_window(pcn_train_params *p) { p->energy_window_size = 0; }
static void s_schedule(pcn_train_params *p) { p->lr_schedule = (pcn_lr_schedule)9; }
static void s_decay0(pcn_train_params *p) { p->lr_decay_factor = 0.0; }
static void s_decay1(pcn_train_params *p) { p->lr_decay_factor = 1.0; }
static void s_patience(pcn_train_params *p) { p->lr_patience = 0; }
static void s_steps_empty(pcn_train_params *p) { p->lr_schedule = PCN_LR_STEPS; }
static const pcn_lr_step bad_epoch[] = {{-1, 0, 0.1}};
static const pcn_lr_step bad_batch[] = {{0, -2, 0.1}};
static const pcn_lr_step bad_lr[] = {{0, 0, 0.0}};
static void s_step_epoch(pcn_train_params *p) { p->lr_schedule = PCN_LR_STEPS, p->lr_steps = bad_epoch, p->n_lr_steps = 1; }
static void s_step_batch(pcn_train_params *p) { p->lr_schedule = PCN_LR_STEPS, p->lr_steps = bad_batch, p->n_lr_steps = 1; }
static void s_step_lr(pcn_train_params *p) { p->lr_schedule = PCN_LR_STEPS, p->lr_steps = bad_lr, p->n_lr_steps = 1; }
static void s_batch(pcn_train_params *p) { p->batch_size = 0; }
static void s_test_batch(pcn_train_params *p) { p->test_batch_size = -5; }
static void s_acc(pcn_train_params *p) { p->train_accuracy_every = -1; }
static void s_topk(pcn_train_params *p) { p->top_k = 0; }

static void test_params(void) {
    pcn_train_params d = pcn_train_default_params();
    TU_CHECK(pcn_train_params_validate(&d) == PCN_OK, "defaults invalid: %s", pcn_last_error());
    // pcn-torch 1.1.0 defaults
    TU_CHECK(d.t_infer == 50 && d.lr_infer == 0.05 && d.lr_learn == 0.005 && d.num_epochs == 4 &&
                 d.energy_window_size == 10 && d.use_mixed_precision && d.t_learn == 0 &&
                 d.t_infer_test == 0 && d.lr_schedule == PCN_LR_NONE &&
                 d.early_stop_threshold == 0.0 && d.task == PCN_TASK_CLASSIFICATION,
             "defaults differ from pcn-torch 1.1.0");
    const bad_case cases[] = {
        {"task", s_task}, {"t_infer", s_t_infer}, {"t_infer_test", s_t_infer_test},
        {"t_learn", s_t_learn}, {"lr_infer", s_lr_infer}, {"lr_infer", s_lr_infer_nan},
        {"lr_learn", s_lr_learn}, {"lr_learn", s_lr_learn_inf}, {"num_epochs", s_epochs},
        {"early_stop_threshold", s_early}, {"early_stop_threshold", s_early_nan},
        {"energy_window_size", s_window}, {"lr_schedule", s_schedule},
        {"lr_decay_factor", s_decay0}, {"lr_decay_factor", s_decay1},
        {"lr_patience", s_patience}, {"lr_steps", s_steps_empty},
        {"lr_steps[0] epoch", s_step_epoch}, {"lr_steps[0] batch", s_step_batch},
        {"lr_steps[0] lr", s_step_lr}, {"batch_size", s_batch},
        {"test_batch_size", s_test_batch}, {"train_accuracy_every", s_acc}, {"top_k", s_topk},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pcn_train_params p = pcn_train_default_params();
        cases[i].set(&p);
        expect_msg(pcn_train_params_validate(&p), PCN_EINVAL, cases[i].field, cases[i].field);
    }
}

// ---- model params -------------------------------------------------------------------------

static void test_model_params(void) {
    pcn_model_params mp = pcn_model_default_params();
    TU_CHECK(pcn_model_init(&mp) == NULL, "model without dims accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "dims", "no dims");
    int one[] = {5};
    mp.dims = one, mp.n_dims = 1;
    TU_CHECK(pcn_model_init(&mp) == NULL, "one dim accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "at least 2", "one dim");
    int zero[] = {5, 0, 3};
    mp.dims = zero, mp.n_dims = 3;
    TU_CHECK(pcn_model_init(&mp) == NULL, "zero width accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "dims[1]", "zero width");
    int ok[] = {5, 4, 3};
    mp.dims = ok, mp.output_dim = -2;
    TU_CHECK(pcn_model_init(&mp) == NULL, "negative output_dim accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "output_dim", "output_dim");
    mp.output_dim = 0, mp.activation = (pcn_activation)17;
    TU_CHECK(pcn_model_init(&mp) == NULL, "bad activation accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "activation", "activation");
    pcn_layer_spec chain[] = {{4, 5, PCN_ACT_RELU, NULL}, {2, 3, PCN_ACT_TANH, NULL}};
    TU_CHECK(pcn_model_init_layers(chain, 2, 0, PCN_TASK_CLASSIFICATION, 0) == NULL,
             "mismatched layers accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "layer 0 in_features=4 != layer 1 out_features=3", "chain");
    TU_CHECK(pcn_model_init_layers(chain, 0, 0, PCN_TASK_CLASSIFICATION, 0) == NULL,
             "empty layers accepted");
    expect_msg(PCN_EINVAL, PCN_EINVAL, "empty", "empty layers");
    pcn_activation act;
    expect_msg(pcn_activation_from_name("swish", &act), PCN_EINVAL, "swish", "activation name");
    pcn_task task;
    expect_msg(pcn_task_from_name("ranking", &task), PCN_EINVAL, "ranking", "task name");
}

// ---- data ---------------------------------------------------------------------------------

enum { N = 10, D = 6, K = 3 };

typedef struct {
    float x[N * D];
    int32_t lab[N];
    float tgt[N * K];
} dataset;

static void fill(dataset *ds) {
    for (int i = 0; i < N * D; i++) ds->x[i] = (float)((i * 37 % 11) / 11.0);
    for (int i = 0; i < N; i++) ds->lab[i] = i % K;
    for (int i = 0; i < N * K; i++) ds->tgt[i] = (float)(i % 5) * 0.1f;
}

static pcn_status run(pcn_task task, const pcn_arrays *a, pcn_train_params *p) {
    int dims[] = {D, 5, 4};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.mode = task;
    pcn_model *m = pcn_model_init(&mp);
    pcn_data data = pcn_data_from_arrays(a);
    pcn_status st = pcn_train(m, &data, p, NULL);
    if (st == PCN_OK) {
        pcn_test_result r;
        st = pcn_test(m, &data, p, &r, NULL);
    }
    pcn_model_free(m);
    return st;
}

static pcn_train_params small_params(pcn_task task) {
    pcn_train_params p = pcn_train_default_params();
    p.task = task, p.t_infer = 3, p.t_learn = 2, p.num_epochs = 1, p.batch_size = 4;
    p.t_infer_test = 3;
    return p;
}

static void test_data(void) {
    dataset ds;
    fill(&ds);
    pcn_train_params pc = small_params(PCN_TASK_CLASSIFICATION);
    pcn_train_params pr = small_params(PCN_TASK_REGRESSION);
    pcn_arrays ok = {ds.x, ds.lab, NULL, N, D, 0};
    TU_CHECK(run(PCN_TASK_CLASSIFICATION, &ok, &pc) == PCN_OK, "clean data refused: %s", pcn_last_error());
    pcn_arrays okr = {ds.x, NULL, ds.tgt, N, D, K};
    TU_CHECK(run(PCN_TASK_REGRESSION, &okr, &pr) == PCN_OK, "clean regression refused: %s", pcn_last_error());

    ds.x[7 * D + 2] = NAN;
    expect_msg(run(PCN_TASK_CLASSIFICATION, &ok, &pc), PCN_EDATA, "row 7, feature 2", "NaN x");
    ds.x[7 * D + 2] = INFINITY;
    expect_msg(run(PCN_TASK_CLASSIFICATION, &ok, &pc), PCN_EDATA, "non-finite", "Inf x");
    fill(&ds);
    ds.lab[5] = K;
    expect_msg(run(PCN_TASK_CLASSIFICATION, &ok, &pc), PCN_EDATA, "label 3 at row 5", "label K");
    ds.lab[5] = -1;
    expect_msg(run(PCN_TASK_CLASSIFICATION, &ok, &pc), PCN_EDATA, "label -1", "label -1");
    fill(&ds);
    ds.tgt[4] = NAN;
    expect_msg(run(PCN_TASK_REGRESSION, &okr, &pr), PCN_EDATA, "non-finite target", "NaN target");
    fill(&ds);
    pcn_arrays wide = {ds.x, ds.lab, NULL, N, D - 1, 0};
    expect_msg(run(PCN_TASK_CLASSIFICATION, &wide, &pc), PCN_EDATA, "dims[0] is 6", "width");
    pcn_arrays narrow_y = {ds.x, NULL, ds.tgt, N, D, K - 1};
    expect_msg(run(PCN_TASK_REGRESSION, &narrow_y, &pr), PCN_EDATA, "output_dim = 3", "y width");
    pcn_arrays labels_for_reg = {ds.x, ds.lab, NULL, N, D, 0};
    expect_msg(run(PCN_TASK_REGRESSION, &labels_for_reg, &pr), PCN_EDATA, "integer labels", "labels for regression");
    pcn_arrays empty = {ds.x, ds.lab, NULL, 0, D, 0};
    expect_msg(run(PCN_TASK_CLASSIFICATION, &empty, &pc), PCN_EDATA, "no samples", "empty");
    expect_msg(run(PCN_TASK_REGRESSION, &ok, &pc), PCN_EINVAL, "differs from the model's mode", "task vs mode");
    pc.lr_infer = 1e6;
    expect_msg(run(PCN_TASK_CLASSIFICATION, &ok, &pc), PCN_EDIVERGED, "diverged", "divergence");
}

// ---- step API misuse ----------------------------------------------------------------------

static void test_state(void) {
    int dims[] = {4, 3};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 2;
    pcn_model *m = pcn_model_init(&mp);
    pcn_state *s = pcn_state_init(m, 2);
    float x[8] = {0}, yhat[6];
    pcn_errors e;
    expect_msg(pcn_compute_errors(m, s, x, NULL, &e), PCN_ESTATE, "pcn_init_latents", "no latents");
    expect_msg(pcn_predict(m, s, yhat), PCN_ESTATE, "pcn_init_latents", "predict before init");
    TU_CHECK(isnan(pcn_inference_step(m, s, x, NULL, 0.1f)), "inference step without latents");
    expect_msg(pcn_state_set_batch(s, 3), PCN_EINVAL, "batch 3", "batch above max");
    TU_CHECK(pcn_state_init(m, 0) == NULL, "max_batch 0 accepted");
    pcn_state_free(s);
    pcn_model_free(m);
    pcn_model_free(NULL), pcn_state_free(NULL), pcn_history_free(NULL), pcn_progress_free(NULL);
}

int main(void) {
    test_params();
    test_model_params();
    test_data();
    test_state();
    return tu_finish("test_config");
}
