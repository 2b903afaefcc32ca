/*
 * test_dist.c — rank-count invariance of distributed training (run under mpirun -np P).
 *
 * Every rank also trains the same model in-process without communication (the P = 1
 * reference); the distributed run over P ranks must end with weights equal to 1e-5
 * relative and the same history (energies to 1e-5, step counts and train accuracy
 * exactly), and pcn_dist_test must score like pcn_test. Cases cover a last partial batch,
 * a global batch smaller than P (ranks holding zero rows), shuffling, early stopping,
 * reduce-on-plateau, regression. Then collective error agreement: bad data owned by one
 * rank makes every rank return the same status and message, with no hang.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "testutil.h"
#include "testutil_mpi.h"

enum { N = 23, D = 16, K = 3 };

static float X[N * D], T[N * K];
static int32_t Y[N];

static void make_data(void) { tu_blobs(N, D, K, 12345u, X, Y, T); }

static pcn_model *model(pcn_task task) {
    int dims[] = {D, 10, 6};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.mode = task, mp.seed = 77;
    mp.activation = PCN_ACT_TANH;
    return pcn_model_init(&mp);
}

static void compare_history(const char *label, const pcn_history *got, const pcn_history *ref) {
    for (int s = 0; s < PCN_HIST_COUNT; s++) {
        char name[96];
        snprintf(name, sizeof name, "%s %s", label, pcn_history_series_name((pcn_history_series)s));
        size_t n = pcn_history_len(ref, (pcn_history_series)s);
        TU_CHECK(pcn_history_len(got, (pcn_history_series)s) == n, "%s: length %zu vs %zu", name,
                 pcn_history_len(got, (pcn_history_series)s), n);
        if (n == pcn_history_len(got, (pcn_history_series)s))
            tu_close_d(name, pcn_history_data(got, (pcn_history_series)s),
                       pcn_history_data(ref, (pcn_history_series)s), n, 1e-6, 1e-5);
    }
}

static void run_case(pcn_comm *c, const char *label, pcn_train_params p) {
    bool reg = p.task == PCN_TASK_REGRESSION;
    pcn_arrays a = {X, reg ? NULL : Y, reg ? T : NULL, N, D, reg ? K : 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *ref = model(p.task), *dist = model(p.task);
    pcn_history *href = pcn_history_init(), *hdist = pcn_history_init();
    p.keep_step_energies = true;
    TU_CHECK(pcn_train(ref, &data, &p, href) == PCN_OK, "%s reference: %s", label, pcn_last_error());
    TU_CHECK(pcn_dist_train(dist, &data, &p, hdist, c) == PCN_OK, "%s: %s", label, pcn_last_error());
    char name[96];
    snprintf(name, sizeof name, "%s weights", label);
    tu_close_f(name, pcn_model_weights(dist), pcn_model_weights(ref), pcn_model_num_weights(ref),
               1e-6, 1e-5);
    compare_history(label, hdist, href);
    pcn_test_result r1, rp;
    TU_CHECK(pcn_test(ref, &data, &p, &r1, NULL) == PCN_OK, "%s test: %s", label, pcn_last_error());
    TU_CHECK(pcn_dist_test(ref, &data, &p, &rp, NULL, c) == PCN_OK, "%s dist test: %s", label, pcn_last_error());
    TU_CHECK(r1.samples == rp.samples && r1.accuracy == rp.accuracy && r1.top_k == rp.top_k,
             "%s: test accuracy %g/%g vs %g/%g", label, rp.accuracy, rp.top_k, r1.accuracy, r1.top_k);
    double got[2] = {rp.energy, rp.mse}, want[2] = {r1.energy, r1.mse};
    snprintf(name, sizeof name, "%s test energy/mse", label);
    tu_close_d(name, got, want, 2, 1e-7, 1e-5);
    pcn_history_free(href), pcn_history_free(hdist);
    pcn_model_free(ref), pcn_model_free(dist);
}

static pcn_train_params base(void) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 8, p.t_infer_test = 12, p.num_epochs = 2, p.batch_size = 10, p.lr_infer = 0.1;
    p.lr_learn = 0.05, p.seed = 5;
    return p;
}

// ---- bad data on one rank -----------------------------------------------------------------

static void test_agreement(pcn_comm *c) {
    float bad[N * D];
    memcpy(bad, X, sizeof bad);
    bad[22 * D + 3] = NAN; // row 22: the last batch's last row, owned by the last busy rank
    pcn_arrays a = {bad, Y, NULL, N, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *m = model(PCN_TASK_CLASSIFICATION);
    pcn_train_params p = base();
    p.shuffle = false;
    pcn_status st = pcn_dist_train(m, &data, &p, NULL, c);
    TU_CHECK(st == PCN_EDATA, "status %d: %s", (int)st, pcn_last_error());
    TU_CHECK(strstr(pcn_last_error(), "row 22, feature 3") != NULL, "message '%s'", pcn_last_error());
    pcn_model_free(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    make_data();
    pcn_train_params p = base();
    run_case(c, "partial batch", p);
    p = base(), p.batch_size = 2, p.shuffle = false;
    run_case(c, "batch 2 (< P)", p);
    p = base(), p.early_stop_threshold = 0.05, p.energy_window_size = 3;
    run_case(c, "early stop", p);
    p = base(), p.lr_schedule = PCN_LR_PLATEAU, p.lr_learn = 0.3, p.t_learn = 4;
    run_case(c, "plateau", p);
    p = base(), p.task = PCN_TASK_REGRESSION, p.batch_size = 7;
    run_case(c, "regression", p);
    test_agreement(c);

    return tu_mpi_finish(c, "test_dist");
}
