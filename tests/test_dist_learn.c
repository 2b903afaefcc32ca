/*
 * test_dist_learn.c — the learning phase's paths across ranks (run under mpirun -np P).
 *
 * Proves: over P ranks, training with learn_path = gram (batch space for every layer),
 * auto (the planner's per-layer mix) and plain (per-step all-reduce) ends with the weights
 * and history of the single-process per-step path (|a-b| <= 1e-6 + 1e-5 |ref|; step counts
 * exactly), with bitwise-identical weights on every rank; for a last partial batch, a
 * global batch below P (ranks holding zero rows), regression, T_learn above B, step
 * energies kept or not, and two models whose auto plan mixes both paths (checked, so the
 * packed per-step sum next to batch-space layers is exercised). Also the row all-gather
 * itself on uneven shards, and the planner across ranks: P = 1 plans by flops alone
 * whatever bytes cost, bytes add to the phase's cost at P > 1, and the plans at any P and
 * flops per byte equal the one-process plans (both paths' bytes are proportional to their
 * flops, see gram.c). Batch space across ranks runs split by output units (the default:
 * split_phases) and by rows (the reference); both against the same single-process run.
 * Split by units, an epoch makes the same number of collectives at T_learn 5 and 50; by
 * rows, at least one more per extra step and batch (pcn_dist_traffic).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "gram.h"
#include "testutil.h"
#include "testutil_mpi.h"

enum { N = 23, D = 16, K = 3 };

static float X[N * D], T[N * K];
static int32_t Y[N];

static void make_data(void) { tu_blobs(N, D, K, 2024u, X, Y, T); }

static pcn_model *model(pcn_task task, int hidden0, int hidden1) {
    int dims[] = {D, hidden0, hidden1};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.mode = task, mp.seed = 31;
    mp.activation = PCN_ACT_TANH;
    return pcn_model_init(&mp);
}

static pcn_train_params base(void) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 6, p.t_infer_test = 6, p.num_epochs = 2, p.batch_size = 10, p.lr_infer = 0.1;
    p.lr_learn = 0.05, p.seed = 9, p.keep_step_energies = true;
    p.train_accuracy_every = 0;
    return p;
}

// Whether every rank holds rank 0's weights bit for bit.
static bool same_on_every_rank(pcn_comm *c, pcn_model *m) {
    size_t n = pcn_model_num_weights(m);
    float *w0 = malloc(n * sizeof *w0);
    memcpy(w0, pcn_model_weights(m), n * sizeof *w0);
    MPI_Bcast(w0, (int)n, MPI_FLOAT, 0, pcn_dist_mpi(c));
    int same = memcmp(w0, pcn_model_weights(m), n * sizeof *w0) == 0, all = 0;
    MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, pcn_dist_mpi(c));
    free(w0);
    return all != 0;
}

// The single-process per-step run against the distributed run on each path.
static void run_case(pcn_comm *c, const char *label, pcn_train_params p, int h0, int h1) {
    bool reg = p.task == PCN_TASK_REGRESSION;
    pcn_arrays a = {X, reg ? NULL : Y, reg ? T : NULL, N, D, reg ? K : 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *ref = model(p.task, h0, h1);
    pcn_history *href = pcn_history_init();
    p.learn_path = PCN_LEARN_PLAIN;
    TU_CHECK(pcn_train(ref, &data, &p, href) == PCN_OK, "%s reference: %s", label, pcn_last_error());
    const pcn_learn_path paths[] = {PCN_LEARN_GRAM, PCN_LEARN_AUTO, PCN_LEARN_PLAIN,
                                    PCN_LEARN_GRAM, PCN_LEARN_AUTO};
    const char *names[] = {"gram by units", "auto by units", "plain", "gram by rows",
                           "auto by rows"};
    for (int k = 0; k < 5; k++) {
        pcn_model *m = model(p.task, h0, h1);
        pcn_history *h = pcn_history_init();
        p.learn_path = paths[k];
        p.split_phases = k < 3; // batch space across ranks: by output units, or by rows
        TU_CHECK(pcn_dist_train(m, &data, &p, h, c) == PCN_OK, "%s %s: %s", label, names[k],
                 pcn_last_error());
        char name[128];
        snprintf(name, sizeof name, "%s %s weights", label, names[k]);
        tu_close_f(name, pcn_model_weights(m), pcn_model_weights(ref), pcn_model_num_weights(ref),
                   1e-6, 1e-5);
        TU_CHECK(same_on_every_rank(c, m), "%s %s: weights differ between ranks", label, names[k]);
        for (int s = 0; s < PCN_HIST_COUNT; s++) {
            snprintf(name, sizeof name, "%s %s %s", label, names[k],
                     pcn_history_series_name((pcn_history_series)s));
            size_t n = pcn_history_len(href, (pcn_history_series)s);
            TU_CHECK(pcn_history_len(h, (pcn_history_series)s) == n, "%s: length %zu vs %zu",
                     name, pcn_history_len(h, (pcn_history_series)s), n);
            if (n == pcn_history_len(h, (pcn_history_series)s))
                tu_close_d(name, pcn_history_data(h, (pcn_history_series)s),
                           pcn_history_data(href, (pcn_history_series)s), n, 1e-6, 1e-5);
        }
        pcn_history_free(h);
        pcn_model_free(m);
    }
    pcn_history_free(href);
    pcn_model_free(ref);
}

// The auto plan of the first batch on this many ranks, as the trainer makes it (split by
// output units or by rows across ranks).
static void plan(pcn_comm *c, int h0, int h1, int B, bool by_units, bool *use) {
    pcn_model *m = model(PCN_TASK_CLASSIFICATION, h0, h1);
    pcn_gram_cost cost = {pcn_dist_size(c), pcn_train_default_params().learn_flops_per_byte,
                          by_units};
    pcn_gram_plan(m, B, B, &cost, PCN_LEARN_AUTO, use);
    pcn_model_free(m);
}

static void mixed_case(pcn_comm *c, const char *label, int h0, int h1) {
    for (int by_units = 0; by_units < 2; by_units++) {
        bool use[3];
        plan(c, h0, h1, 10, by_units, use);
        TU_CHECK((use[0] || use[1] || use[2]) && !(use[0] && use[1] && use[2]),
                 "%s: the auto plan %s is not mixed (%d %d %d)", label,
                 by_units ? "by units" : "by rows", use[0], use[1], use[2]);
    }
    pcn_train_params p = base();
    run_case(c, label, p, h0, h1);
    p.keep_step_energies = false; // no per-step energies: the phase reports nothing
    char name[96];
    snprintf(name, sizeof name, "%s, no step energies", label);
    run_case(c, name, p, h0, h1);
}

// ---- collectives per batch ------------------------------------------------------------------

// Collectives of one epoch (3 batches) at T_learn t, split by output units or by rows.
static int64_t epoch_calls(pcn_comm *c, int t, bool by_units, pcn_learn_path path) {
    pcn_arrays a = {X, Y, NULL, N, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *m = model(PCN_TASK_CLASSIFICATION, 10, 6);
    pcn_train_params p = base();
    p.num_epochs = 1, p.keep_step_energies = false, p.t_learn = t;
    p.learn_path = path, p.split_phases = by_units;
    int64_t calls0, calls1, bytes;
    pcn_dist_traffic(c, &calls0, &bytes);
    TU_CHECK(pcn_dist_train(m, &data, &p, NULL, c) == PCN_OK, "traffic run: %s",
             pcn_last_error());
    pcn_dist_traffic(c, &calls1, &bytes);
    pcn_model_free(m);
    return calls1 - calls0;
}

// Split by output units, a learning phase makes the same collectives whatever T_learn (the
// batch gathered once, the weights once, the reported energies); by rows, every step
// gathers (batch space) or sums (per step).
static void test_traffic(pcn_comm *c) {
    if (pcn_dist_size(c) == 1) return;
    const pcn_learn_path paths[] = {PCN_LEARN_GRAM, PCN_LEARN_AUTO};
    for (int k = 0; k < 2; k++) {
        int64_t u5 = epoch_calls(c, 5, true, paths[k]), u50 = epoch_calls(c, 50, true, paths[k]);
        int64_t r5 = epoch_calls(c, 5, false, paths[k]), r50 = epoch_calls(c, 50, false, paths[k]);
        TU_CHECK(u5 == u50 && u5 > 0, "by units (path %d): %lld collectives at T_learn 5, "
                 "%lld at 50", (int)paths[k], (long long)u5, (long long)u50);
        TU_CHECK(r50 >= r5 + 3 * 45, "by rows (path %d): %lld collectives at T_learn 5, %lld "
                 "at 50 (at least one more per extra step and batch)", (int)paths[k],
                 (long long)r5, (long long)r50);
        if (pcn_dist_rank(c) == 0)
            printf("collectives per epoch (3 batches), learn path %d, T_learn 5 and 50: by "
                   "units %lld and %lld, by rows %lld and %lld\n", (int)paths[k], (long long)u5,
                   (long long)u50, (long long)r5, (long long)r50);
    }
}

// ---- the all-gather and the planner -------------------------------------------------------

static void test_gather(pcn_comm *c) {
    enum { W = 3 };
    const int64_t globals[] = {7, 2, 1, 5};
    for (size_t g = 0; g < sizeof globals / sizeof *globals; g++) {
        int64_t B = globals[g], lo, count;
        pcn_dist_shard(B, pcn_dist_rank(c), pcn_dist_size(c), &lo, &count);
        float mine[8 * W], all[8 * W];
        for (int64_t i = 0; i < count * W; i++) mine[i] = (float)(lo * W + i) + 0.5f;
        for (int i = 0; i < 8 * W; i++) all[i] = -1.0f;
        TU_CHECK(pcn_dist_gather_rows_f32(c, mine, all, B, W) == PCN_OK, "gather: %s",
                 pcn_last_error());
        for (int64_t i = 0; i < B * W; i++)
            TU_CHECK(all[i] == (float)i + 0.5f, "gather of %lld rows: value %lld is %g",
                     (long long)B, (long long)i, all[i]);
        TU_CHECK(all[B * W] == -1.0f, "gather of %lld rows wrote past them", (long long)B);
    }
}

// P = 1 with any flops per byte is the one-process plan.
static void check_plan_one_rank(pcn_model *m) {
    bool use[4], one[4];
    pcn_gram_cost c1 = {1, 1e6, false};
    for (int T = 1; T <= 1000; T *= 10) {
        pcn_gram_plan(m, 500, T, &c1, PCN_LEARN_AUTO, use);
        pcn_gram_plan(m, 500, T, NULL, PCN_LEARN_AUTO, one);
        TU_CHECK(!memcmp(use, one, sizeof use), "P = 1 plan differs at T = %d", T);
        TU_CHECK(pcn_gram_phase_cost(m, 500, T, &c1, PCN_LEARN_AUTO) ==
                 pcn_learning_phase_flops(m, 500, T, PCN_LEARN_AUTO), "P = 1 cost, T = %d", T);
    }
}

// Plans at P = 2..8 for several B, T and flops per byte equal the one-process plans.
static void check_plan_any_ranks(pcn_model *m) {
    bool use[4], one[4];
    // Each collective moves one float per 2 B_r flops of the product it feeds, on both paths,
    // so charging bytes scales both costs alike: plans equal the one-process plans for any
    // P and flops per byte (gram.c), while the phase costs more as bytes get dearer.
    const int Bs[] = {7, 64, 500, 4000}, Ts[] = {1, 2, 50, 500};
    const double fs[] = {0.0, 80.0, 1e4};
    for (int P = 2; P <= 8; P++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 3; k++) {
                    pcn_gram_cost cp = {P, fs[k], false};
                    pcn_gram_plan(m, Bs[i], Ts[j], &cp, PCN_LEARN_AUTO, use);
                    pcn_gram_plan(m, Bs[i], Ts[j], NULL, PCN_LEARN_AUTO, one);
                    TU_CHECK(!memcmp(use, one, sizeof use), "plan at P = %d, B = %d, T = %d, "
                             "%g flops/byte differs from P = 1", P, Bs[i], Ts[j], fs[k]);
                }
}

// The phase costs when the ranks split the output units instead of the rows.
static void check_plan_by_units(pcn_model *m) {
    // Split by output units: no bytes charged (the phase's two gathers do not depend on the
    // path), every rank steps a quarter of the units over the whole batch (the widths here
    // split evenly: 1000, 500 and 10 over 2), and P = 1 is the one-process plan again.
    pcn_gram_cost u1 = {1, 1000.0, true}, u2 = {2, 1000.0, true}, u2free = {2, 0.0, true};
    TU_CHECK(pcn_gram_phase_cost(m, 500, 500, &u1, PCN_LEARN_PLAIN) ==
                 pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_PLAIN),
             "by units at P = 1 is not the one-process cost");
    TU_CHECK(pcn_gram_phase_cost(m, 500, 500, &u2, PCN_LEARN_PLAIN) ==
                 pcn_gram_phase_cost(m, 500, 500, &u2free, PCN_LEARN_PLAIN),
             "by units, bytes must not be charged");
    double p2 = pcn_gram_phase_cost(m, 500, 500, &u2, PCN_LEARN_PLAIN);
    double p1 = pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_PLAIN);
    TU_CHECK(fabs(p2 - 0.5 * p1) <= 1e-12 * p1, "by units, P = 2 plain flops %g vs %g / 2", p2,
             p1);
}

static void test_plan(void) {
    int dims[] = {3072, 1000, 500, 10};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4;
    pcn_model *m = pcn_model_init(&mp);
    bool use[4];
    check_plan_one_rank(m);
    // The CIFAR config at P = 2, B = T = 500: batch space for the two wide layers.
    pcn_gram_cost c2 = {2, 80.0, false};
    pcn_gram_plan(m, 500, 500, &c2, PCN_LEARN_AUTO, use);
    TU_CHECK(use[0] && use[1] && !use[2] && !use[3], "CIFAR P = 2 plan %d %d %d %d", use[0],
             use[1], use[2], use[3]);
    check_plan_any_ranks(m);
    pcn_gram_cost cheap = {4, 0.0, false}, dear = {4, 1000.0, false};
    const pcn_learn_path paths[] = {PCN_LEARN_PLAIN, PCN_LEARN_GRAM, PCN_LEARN_AUTO};
    for (int k = 0; k < 3; k++)
        TU_CHECK(pcn_gram_phase_cost(m, 500, 500, &dear, paths[k]) >
                     pcn_gram_phase_cost(m, 500, 500, &cheap, paths[k]),
                 "bytes must cost something at P = 4 (path %d)", (int)paths[k]);
    // Free bytes at P = 4: a quarter of the one-process flops (B = 500 splits evenly).
    double f4 = pcn_gram_phase_cost(m, 500, 500, &cheap, PCN_LEARN_AUTO);
    double f1 = pcn_learning_phase_flops(m, 500, 500, PCN_LEARN_AUTO);
    TU_CHECK(fabs(f4 - 0.25 * f1) <= 1e-12 * f1, "P = 4 flops %g vs %g / 4", f4, f1);
    check_plan_by_units(m);
    pcn_model_free(m);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    make_data();
    test_gather(c);
    test_plan();
    test_traffic(c);
    pcn_train_params p = base(); // 10, 10, 3: an uneven last batch (zero rows at P = 4)
    run_case(c, "partial batch", p, 10, 6);
    p = base(), p.batch_size = 2, p.shuffle = false; // below P: ranks with zero rows
    run_case(c, "batch 2 (< P)", p, 10, 6);
    p = base(), p.task = PCN_TASK_REGRESSION, p.batch_size = 7, p.t_learn = 12;
    run_case(c, "regression, T_learn > B", p, 10, 6);
    mixed_case(c, "mixed 16-40-4", 40, 4);
    mixed_case(c, "mixed 16-4-40", 4, 40);

    return tu_mpi_finish(c, "test_dist_learn");
}
