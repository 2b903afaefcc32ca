/*
 * test_learn.c — the batch-space learning phase (gram.c) against the plain per-step
 * path it replaces.
 *
 * Proves: for every activation, classification and regression, a last partial batch and
 * T_learn both below and above B, training with learn_path = gram gives the same step
 * energies, history and weights as learn_path = plain (|a-b| <= 1e-5 + 2e-4 |ref|: float
 * rounding of a different order of operations over up to 40 steps), and auto likewise;
 * and pcn_learning_phase_plan picks, per layer, the path with fewer flops (wide layers with a small
 * batch take batch space, narrow ones the per-step path).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn.h"
#include "testutil.h"

enum { N = 29, D = 24, K = 4 };

static void run(pcn_activation act, pcn_task task, int batch, int t_learn, pcn_learn_path path,
                pcn_model **out, pcn_history **hout) {
    static float x[N * D], t[N * K];
    static int32_t y[N];
    uint32_t s = 99;
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        for (int j = 0; j < D; j++) {
            s = s * 1664525u + 1013904223u;
            x[i * D + j] = (float)((j % K == y[i]) + 0.4 * ((s >> 8) / 16777216.0 - 0.5));
        }
        for (int k = 0; k < K; k++) t[i * K + k] = 0.3f * x[i * D + k];
    }
    bool reg = task == PCN_TASK_REGRESSION;
    pcn_arrays a = {x, reg ? NULL : y, reg ? t : NULL, N, D, reg ? K : 0};
    pcn_data data = pcn_data_from_arrays(&a);
    int dims[] = {D, 16, 6};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.mode = task, mp.activation = act;
    mp.seed = 4;
    *out = pcn_model_init(&mp);
    *hout = pcn_history_init();
    pcn_train_params p = pcn_train_default_params();
    p.task = task, p.t_infer = 10, p.t_infer_test = 10, p.t_learn = t_learn, p.num_epochs = 2;
    p.batch_size = batch, p.lr_infer = 0.1, p.lr_learn = 0.05, p.seed = 2;
    p.keep_step_energies = true, p.learn_path = path;
    TU_CHECK(pcn_train(*out, &data, &p, *hout) == PCN_OK, "train: %s", pcn_last_error());
}

static void compare(const char *label, pcn_activation act, pcn_task task, int batch, int t_learn,
                    pcn_learn_path path) {
    pcn_model *ref, *got;
    pcn_history *href, *hgot;
    run(act, task, batch, t_learn, PCN_LEARN_PLAIN, &ref, &href);
    run(act, task, batch, t_learn, path, &got, &hgot);
    char name[160];
    snprintf(name, sizeof name, "%s %s %s weights", label, pcn_activation_name(act), pcn_task_name(task));
    tu_close_f(name, pcn_model_weights(got), pcn_model_weights(ref), pcn_model_num_weights(ref),
               1e-5, 2e-4);
    pcn_history_series series[] = {PCN_HIST_STEP_LEARN, PCN_HIST_STEP_INFER, PCN_HIST_PER_BATCH,
                                   PCN_HIST_PER_EPOCH, PCN_HIST_TRAIN_ACCURACY};
    for (size_t k = 0; k < sizeof series / sizeof *series; k++) {
        snprintf(name, sizeof name, "%s %s %s %s", label, pcn_activation_name(act),
                 pcn_task_name(task), pcn_history_series_name(series[k]));
        size_t n = pcn_history_len(href, series[k]);
        TU_CHECK(pcn_history_len(hgot, series[k]) == n, "%s: length", name);
        if (n == pcn_history_len(hgot, series[k]) && series[k] != PCN_HIST_TRAIN_ACCURACY)
            tu_close_d(name, pcn_history_data(hgot, series[k]), pcn_history_data(href, series[k]),
                       n, 1e-5, 2e-4);
    }
    pcn_history_free(href), pcn_history_free(hgot);
    pcn_model_free(ref), pcn_model_free(got);
}

static void test_plan(void) {
    int dims[] = {3072, 1000, 500, 10};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4;
    pcn_model *m = pcn_model_init(&mp);
    bool use[4];
    pcn_learning_phase_plan(m, 500, 500, PCN_LEARN_AUTO, use); // pcn-torch's CIFAR config
    TU_CHECK(use[0] && use[1] && !use[2] && !use[3], "CIFAR plan %d %d %d %d", use[0], use[1],
             use[2], use[3]);
    pcn_learning_phase_plan(m, 4000, 4000, PCN_LEARN_AUTO, use); // a large batch: per-step everywhere
    TU_CHECK(!use[0] && !use[1], "large-batch plan %d %d", use[0], use[1]);
    pcn_learning_phase_plan(m, 500, 500, PCN_LEARN_PLAIN, use);
    TU_CHECK(!use[0] && !use[1] && !use[2] && !use[3], "plain plan");
    pcn_learning_phase_plan(m, 500, 500, PCN_LEARN_GRAM, use);
    TU_CHECK(use[0] && use[1] && use[2] && use[3], "gram plan");
    // Flops: the per-step phase is T * 4 B P; auto never costs more than either pure path.
    double P = 3072.0 * 1000 + 1000.0 * 500 + 500.0 * 10 + 10.0 * 10;
    double plain = pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_PLAIN);
    double gram = pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_GRAM);
    double autoflops = pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_AUTO);
    TU_CHECK(fabs(plain - 500.0 * 4 * 500 * P) <= 1e-9 * plain, "plain phase flops %g", plain);
    TU_CHECK(autoflops <= plain && autoflops <= gram && autoflops < 0.5 * plain,
             "auto %g plain %g gram %g", autoflops, plain, gram);
    pcn_model_free(m);
}

int main(void) {
    test_plan();
    for (int act = 0; act < PCN_ACT_GENERATIVE_COUNT; act++) {
        compare("gram", (pcn_activation)act, PCN_TASK_CLASSIFICATION, 10, 0, PCN_LEARN_GRAM);
        compare("gram", (pcn_activation)act, PCN_TASK_REGRESSION, 7, 20, PCN_LEARN_GRAM);
    }
    compare("auto", PCN_ACT_TANH, PCN_TASK_CLASSIFICATION, 6, 40, PCN_LEARN_AUTO);
    return tu_finish("test_learn");
}
