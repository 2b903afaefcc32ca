/*
 * test_disc_train.c — whole training runs of the new modes on one process.
 *
 * Proves:
 *   1. The CPU backend (pcn_backend_cpu, pcn_train's default: OpenBLAS, its own phases) and
 *      the reference backend (pcn_backend_ref, textbook loops) train a discriminative model
 *      (gelu, biases, adamw with decay, cosine schedule, latent momentum 0.1; with and
 *      without iPC; forward and random latent starts) to the same weights, adamw moments
 *      and per-batch energies. This guards any faster CPU path for the discriminative
 *      phase. iPC from the forward start runs with the momentum optimizer, not adamw: there
 *      the hidden errors start at exactly 0, so after the first weight step the hidden
 *      layers' gradients are differences of O(1) activations at float noise level (~1e-7,
 *      as gW1_s2 in the PCX fixture), which adam normalizes to O(1) steps, so any two
 *      summation orders part by up to ~1e-4 (seen: 7.6e-5 here; with sgd the same run
 *      agrees to 1e-6). adamw with iPC is compared from the random start instead, where
 *      no gradient sits at noise level. The weights must also have moved (the comparison is not of two untouched
 *      models).
 *   2. The generative mode with the new optimizers: a run with optimizer momentum and one
 *      with adamw lower the epoch energy from the first epoch to the last; sgd with
 *      weight_decay 0 (the pcn-torch path, which the golden tests pin) equals sgd through
 *      the optimizer path (weight_decay 1e-30, which forces pcn_optim_apply and the
 *      per-step learning phase while changing no float: lr * 1e-30 * w underflows against
 *      w).
 *
 * Tolerances: CPU vs reference differ by float summation order in the products (~1e-7
 * relative); through 8-32 adam steps of lr 5e-3 the weights agree to ~1e-7-1e-6, so
 * atol 1e-6 + rtol 1e-5 (the bound the dist tests use for summation-order differences);
 * moments scaled to their own size as in test_disc_dist. Generative sgd paths: the gram
 * (batch-space) and per-step learning phases differ by summation order too, the same bound
 * as test_dist_learn (1e-6 + 1e-5).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "testutil.h"

enum { N = 37, D = 12, K = 3 };

static float X[N * D], T[N * K];
static int32_t Y[N];

static pcn_data data(void) {
    static pcn_arrays a;
    a = (pcn_arrays){X, Y, NULL, N, D, 0};
    return pcn_data_from_arrays(&a);
}

static pcn_model *disc_model(void) {
    int dims[] = {D, 10, 7, K};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4, mp.activation = PCN_ACT_GELU, mp.seed = 5;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true;
    return pcn_model_init(&mp);
}

static pcn_train_params disc_params(bool ipc, pcn_latent_start start) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 4, p.num_epochs = 2, p.batch_size = 10, p.lr_infer = 0.1, p.seed = 3;
    p.optimizer = PCN_OPT_ADAMW, p.lr_learn = 5e-3, p.weight_decay = 0.01;
    p.lr_schedule = PCN_LR_COSINE, p.lr_warmup_frac = 0.1, p.lr_peak_factor = 1.1;
    p.lr_final_factor = 0.1, p.infer_momentum = 0.1, p.ipc = ipc, p.latent_start = start;
    return p;
}

static void close_moments(const char *label, pcn_model *got, pcn_model *ref) {
    const size_t n = pcn_model_num_weights(ref);
    const int slots = pcn_model_optimizer_slots(ref);
    TU_CHECK(slots > 0 && pcn_model_optimizer_slots(got) == slots, "%s: optimizer slots %d, %d",
             label, pcn_model_optimizer_slots(got), slots);
    if (slots == 0 || pcn_model_optimizer_slots(got) != slots) return;
    for (int s = 0; s < slots; s++) {
        const float *g = pcn_model_optimizer_state(got) + s * n,
                    *r = pcn_model_optimizer_state(ref) + s * n;
        double big = 0.0;
        for (size_t i = 0; i < n; i++) big = fmax(big, fabs(r[i]));
        char name[160];
        snprintf(name, sizeof name, "%s moment %d", label, s + 1);
        tu_close_f(name, g, r, n, 1e-5 * big, 1e-4);
    }
}

static void cpu_vs_ref(bool ipc, pcn_latent_start start, pcn_optimizer o) {
    char label[96];
    snprintf(label, sizeof label, "cpu vs ref %s%s%s", pcn_optimizer_name(o), ipc ? " ipc" : "",
             start == PCN_LATENT_RANDOM ? " random start" : "");
    pcn_data d = data();
    pcn_train_params p = disc_params(ipc, start);
    if (o == PCN_OPT_MOMENTUM) p.optimizer = o, p.lr_learn = 0.02;
    pcn_model *cpu = disc_model(), *ref = disc_model();
    TU_CHECK(pcn_model_to_backend(ref, &pcn_backend_ref, PCN_DEVICE_CPU) == PCN_OK, "%s",
             pcn_last_error());
    const size_t n = pcn_model_num_weights(cpu);
    float *init = malloc(n * sizeof *init);
    memcpy(init, pcn_model_weights(cpu), n * sizeof *init);
    pcn_history *hc = pcn_history_init(), *hr = pcn_history_init();
    TU_CHECK(pcn_train(cpu, &d, &p, hc) == PCN_OK, "%s cpu: %s", label, pcn_last_error());
    TU_CHECK(pcn_train(ref, &d, &p, hr) == PCN_OK, "%s ref: %s", label, pcn_last_error());
    tu_close_f(label, pcn_model_weights(cpu), pcn_model_weights(ref), n, 1e-6, 1e-5);
    close_moments(label, cpu, ref);
    const size_t nb = pcn_history_len(hr, PCN_HIST_PER_BATCH);
    TU_CHECK(nb == 8 && pcn_history_len(hc, PCN_HIST_PER_BATCH) == nb, "%s: %zu batches", label,
             pcn_history_len(hc, PCN_HIST_PER_BATCH));
    if (nb == pcn_history_len(hc, PCN_HIST_PER_BATCH))
        tu_close_d(label, pcn_history_data(hc, PCN_HIST_PER_BATCH),
                   pcn_history_data(hr, PCN_HIST_PER_BATCH), nb, 1e-6, 1e-5);
    double moved = 0.0;
    for (size_t i = 0; i < n; i++) moved = fmax(moved, fabs(pcn_model_weights(cpu)[i] - init[i]));
    TU_CHECK(moved > 1e-3, "%s: the weights moved only %g", label, moved);
    free(init);
    pcn_history_free(hc), pcn_history_free(hr);
    pcn_model_free(cpu), pcn_model_free(ref);
}

// ---- the generative mode with the new optimizers ---------------------------------------------

static pcn_model *gen_model(void) {
    int dims[] = {D, 10, 6};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = PCN_ACT_TANH;
    mp.seed = 19;
    return pcn_model_init(&mp);
}

static pcn_train_params gen_params(pcn_optimizer o, double lr, double wd) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 10, p.t_learn = 5, p.num_epochs = 4, p.batch_size = 10, p.lr_infer = 0.1;
    p.lr_learn = lr, p.optimizer = o, p.weight_decay = wd, p.seed = 2;
    p.train_accuracy_every = 0;
    return p;
}

static void generative_lowers(pcn_optimizer o, double lr) {
    pcn_data d = data();
    pcn_train_params p = gen_params(o, lr, 1e-4);
    pcn_model *m = gen_model();
    pcn_history *h = pcn_history_init();
    TU_CHECK(pcn_train(m, &d, &p, h) == PCN_OK, "generative %s: %s", pcn_optimizer_name(o),
             pcn_last_error());
    const size_t n = pcn_history_len(h, PCN_HIST_PER_EPOCH);
    const double *e = pcn_history_data(h, PCN_HIST_PER_EPOCH);
    TU_CHECK(n == 4 && e[n - 1] < 0.9 * e[0], "generative %s: epoch energy %g -> %g",
             pcn_optimizer_name(o), n ? e[0] : NAN, n ? e[n - 1] : NAN);
    TU_CHECK(pcn_model_optimizer_slots(m) == (o == PCN_OPT_ADAMW ? 2 : 1),
             "generative %s: %d optimizer slots", pcn_optimizer_name(o),
             pcn_model_optimizer_slots(m));
    pcn_history_free(h);
    pcn_model_free(m);
}

static void generative_sgd_paths(void) {
    pcn_data d = data();
    pcn_train_params plain = gen_params(PCN_OPT_SGD, 0.05, 0.0),
                     optim = gen_params(PCN_OPT_SGD, 0.05, 1e-30);
    pcn_model *a = gen_model(), *b = gen_model();
    pcn_history *ha = pcn_history_init(), *hb = pcn_history_init();
    TU_CHECK(pcn_train(a, &d, &plain, ha) == PCN_OK, "sgd plain: %s", pcn_last_error());
    TU_CHECK(pcn_train(b, &d, &optim, hb) == PCN_OK, "sgd optimizer: %s", pcn_last_error());
    tu_close_f("generative sgd: optimizer path vs plain", pcn_model_weights(b),
               pcn_model_weights(a), pcn_model_num_weights(a), 1e-6, 1e-5);
    const size_t n = pcn_history_len(ha, PCN_HIST_PER_BATCH);
    TU_CHECK(n > 0 && pcn_history_len(hb, PCN_HIST_PER_BATCH) == n, "sgd: %zu batches", n);
    if (n && pcn_history_len(hb, PCN_HIST_PER_BATCH) == n)
        tu_close_d("generative sgd: batch energies", pcn_history_data(hb, PCN_HIST_PER_BATCH),
                   pcn_history_data(ha, PCN_HIST_PER_BATCH), n, 1e-6, 1e-5);
    pcn_history_free(ha), pcn_history_free(hb);
    pcn_model_free(a), pcn_model_free(b);
}

int main(void) {
    tu_blobs(N, D, K, 99u, X, Y, T);
    cpu_vs_ref(false, PCN_LATENT_FORWARD, PCN_OPT_ADAMW);
    cpu_vs_ref(true, PCN_LATENT_FORWARD, PCN_OPT_MOMENTUM);
    cpu_vs_ref(true, PCN_LATENT_RANDOM, PCN_OPT_ADAMW);
    cpu_vs_ref(false, PCN_LATENT_RANDOM, PCN_OPT_ADAMW);
    generative_lowers(PCN_OPT_MOMENTUM, 0.02);
    generative_lowers(PCN_OPT_ADAMW, 2e-3);
    generative_sgd_paths();
    return tu_finish("test_disc_train");
}
