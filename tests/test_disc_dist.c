/*
 * test_disc_dist.c — the discriminative mode across ranks and across a stop (run under
 * mpirun -np P).
 *
 * Proves, for a model 12-8-6-3 with gelu and biases, adamw with weight decay, the cosine
 * schedule with warm-up, latent momentum 0.1, a last partial batch and shuffling, with and
 * without iPC:
 *   1. Rank invariance: pcn_dist_train over P ranks ends with the weights AND the adamw
 *      moments of the single-process pcn_train run every rank also makes (they differ only
 *      by the float summation order of the gradient sum), the same per-batch energies, and
 *      the same on every rank bit for bit.
 *   2. Bitwise resume: at this P, a run stopped by a batch_hook after k batches (k = 2,
 *      mid-epoch, and k = 4, the first batch of the second epoch) and resumed from the
 *      hook's position into a fresh model holding the copied weights and optimizer state,
 *      with the same history, ends memcmp-equal to an unbroken run: weights, moments and
 *      every history series.
 *
 * Tolerance of 1: the gradient sums differ by float rounding (~1e-7 relative of the sum of
 * |terms|); the weights move by lr ~ 5e-3 per adam step, whose normalized size m/sqrt(v)
 * carries that rounding, so after 8-24 steps the weights agree to ~1e-7-1e-6; atol 1e-6 +
 * rtol 1e-5 (the dist tests' bound) on the weights. The moments are compared relative to
 * their own scale: m to 1e-5 of max|m| + 1e-4 relative, v likewise (v ~ g^2 carries twice
 * g's relative rounding). iPC's invariance runs from the random latent start (drawn per
 * global row, so it is itself rank invariant): from the forward start the hidden errors
 * begin at exactly 0 and the next steps' hidden gradients sit at float noise level, which
 * adam normalizes to O(1) steps, so there the comparison would hold only where the BLAS
 * computes every row bit for bit alike at every shard size (test_disc_train.c has the
 * numbers). The resume cases keep the forward start: they are bitwise at one P anyway.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "testutil.h"
#include "testutil_mpi.h"

enum { N = 29, D = 12, K = 3 };

static float X[N * D], T[N * K];
static int32_t Y[N];

static pcn_model *model(void) {
    int dims[] = {D, 8, 6, K};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4, mp.activation = PCN_ACT_GELU, mp.seed = 41;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true;
    return pcn_model_init(&mp);
}

static pcn_train_params base(bool ipc) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 4, p.num_epochs = 2, p.batch_size = 8, p.lr_infer = 0.1, p.seed = 7;
    p.optimizer = PCN_OPT_ADAMW, p.lr_learn = 5e-3, p.weight_decay = 0.01;
    p.lr_schedule = PCN_LR_COSINE, p.lr_warmup_frac = 0.2, p.lr_peak_factor = 1.1;
    p.lr_final_factor = 0.1, p.infer_momentum = 0.1, p.ipc = ipc;
    p.keep_step_energies = true;
    return p;
}

static pcn_data data(void) {
    static pcn_arrays a;
    a = (pcn_arrays){X, Y, NULL, N, D, 0};
    return pcn_data_from_arrays(&a);
}

static size_t state_len(pcn_model *m) {
    return (size_t)pcn_model_optimizer_slots(m) * pcn_model_num_weights(m);
}

// The moments scaled: |got - ref| <= 1e-5 max|ref| + 1e-4 |ref| per slot.
static void close_state(const char *label, pcn_model *got, pcn_model *ref) {
    const size_t n = pcn_model_num_weights(ref);
    TU_CHECK(pcn_model_optimizer_slots(got) == 2 && pcn_model_optimizer_slots(ref) == 2,
             "%s: slots %d, %d", label, pcn_model_optimizer_slots(got),
             pcn_model_optimizer_slots(ref));
    if (state_len(got) != 2 * n || state_len(ref) != 2 * n) return;
    for (int s = 0; s < 2; s++) {
        const float *g = pcn_model_optimizer_state(got) + s * n,
                    *r = pcn_model_optimizer_state(ref) + s * n;
        double big = 0.0;
        for (size_t i = 0; i < n; i++) big = fmax(big, fabs(r[i]));
        char name[160];
        snprintf(name, sizeof name, "%s moment %d", label, s + 1);
        TU_CHECK(big > 0.0, "%s is all zero", name);
        tu_close_f(name, g, r, n, 1e-5 * big, 1e-4);
    }
}

// Whether every rank holds rank 0's weights and moments bit for bit.
static void same_on_ranks(pcn_comm *c, const char *label, pcn_model *m) {
    const size_t n = pcn_model_num_weights(m), ns = state_len(m);
    float *buf = malloc((n + ns) * sizeof *buf), *mine = malloc((n + ns) * sizeof *mine);
    memcpy(mine, pcn_model_weights(m), n * sizeof *mine);
    if (ns) memcpy(mine + n, pcn_model_optimizer_state(m), ns * sizeof *mine);
    memcpy(buf, mine, (n + ns) * sizeof *buf);
    MPI_Bcast(buf, (int)(n + ns), MPI_FLOAT, 0, pcn_dist_mpi(c));
    TU_CHECK(memcmp(buf, mine, (n + ns) * sizeof *buf) == 0, "%s: rank %d differs from rank 0",
             label, pcn_dist_rank(c));
    free(buf), free(mine);
}

static void invariance(pcn_comm *c, bool ipc) {
    const char *label = ipc ? "ipc" : "adamw";
    pcn_data d = data();
    pcn_train_params p = base(ipc);
    if (ipc) p.latent_start = PCN_LATENT_RANDOM; // see the header comment
    pcn_model *ref = model(), *dist = model();
    pcn_history *href = pcn_history_init(), *hdist = pcn_history_init();
    TU_CHECK(pcn_train(ref, &d, &p, href) == PCN_OK, "%s reference: %s", label, pcn_last_error());
    TU_CHECK(pcn_dist_train(dist, &d, &p, hdist, c) == PCN_OK, "%s: %s", label, pcn_last_error());
    char name[96];
    snprintf(name, sizeof name, "%s weights at P = %d", label, pcn_dist_size(c));
    tu_close_f(name, pcn_model_weights(dist), pcn_model_weights(ref), pcn_model_num_weights(ref),
               1e-6, 1e-5);
    snprintf(name, sizeof name, "%s at P = %d", label, pcn_dist_size(c));
    close_state(name, dist, ref);
    const size_t nb = pcn_history_len(href, PCN_HIST_PER_BATCH);
    TU_CHECK(nb == 8 && pcn_history_len(hdist, PCN_HIST_PER_BATCH) == nb, "%s: %zu batches",
             label, pcn_history_len(hdist, PCN_HIST_PER_BATCH));
    if (nb == pcn_history_len(hdist, PCN_HIST_PER_BATCH))
        tu_close_d(name, pcn_history_data(hdist, PCN_HIST_PER_BATCH),
                   pcn_history_data(href, PCN_HIST_PER_BATCH), nb, 1e-6, 1e-5);
    same_on_ranks(c, label, dist);
    pcn_history_free(href), pcn_history_free(hdist);
    pcn_model_free(ref), pcn_model_free(dist);
}

// ---- stop and resume ---------------------------------------------------------------------

typedef struct {
    int after, seen;
    pcn_train_position pos;
} stopper;

static pcn_status stop_hook(void *user, pcn_model *m, const pcn_history *h,
                            const pcn_train_position *next, bool *stop) {
    (void)m, (void)h;
    stopper *s = user;
    if (++s->seen == s->after) {
        s->pos = *next;
        *stop = true;
    }
    return PCN_OK;
}

// A fresh model holding m's weights and optimizer state (what a checkpoint carries).
static pcn_model *copy_model(pcn_model *m) {
    pcn_model *c = model();
    memcpy(pcn_model_weights(c), pcn_model_weights(m), pcn_model_num_weights(m) * sizeof(float));
    TU_CHECK(pcn_model_optimizer_reserve(c, pcn_model_optimizer_slots(m)) == PCN_OK, "%s",
             pcn_last_error());
    if (state_len(m))
        memcpy(pcn_model_optimizer_state(c), pcn_model_optimizer_state(m),
               state_len(m) * sizeof(float));
    pcn_model_optimizer_loaded(c);
    return c;
}

static void same_bits(const char *label, pcn_model *got, pcn_model *ref, const pcn_history *hg,
                      const pcn_history *hr) {
    TU_CHECK(memcmp(pcn_model_weights(got), pcn_model_weights(ref),
                    pcn_model_num_weights(ref) * sizeof(float)) == 0,
             "%s: weights differ from the unbroken run", label);
    TU_CHECK(state_len(got) == state_len(ref) && state_len(ref) > 0 &&
                 memcmp(pcn_model_optimizer_state(got), pcn_model_optimizer_state(ref),
                        state_len(ref) * sizeof(float)) == 0,
             "%s: optimizer state differs from the unbroken run", label);
    for (int s = 0; s < PCN_HIST_COUNT; s++) {
        const size_t n = pcn_history_len(hr, (pcn_history_series)s);
        TU_CHECK(pcn_history_len(hg, (pcn_history_series)s) == n &&
                     (n == 0 || memcmp(pcn_history_data(hg, (pcn_history_series)s),
                                       pcn_history_data(hr, (pcn_history_series)s),
                                       n * sizeof(double)) == 0),
                 "%s: history %s differs", label, pcn_history_series_name((pcn_history_series)s));
    }
}

static void resume(pcn_comm *c, bool ipc, int k) {
    char label[96];
    snprintf(label, sizeof label, "%s resumed after %d batches at P = %d", ipc ? "ipc" : "adamw",
             k, pcn_dist_size(c));
    pcn_data d = data();
    pcn_train_params p = base(ipc);
    pcn_model *whole = model(), *first = model();
    pcn_history *hw = pcn_history_init(), *hs = pcn_history_init();
    TU_CHECK(pcn_dist_train(whole, &d, &p, hw, c) == PCN_OK, "%s: %s", label, pcn_last_error());
    stopper s = {k, 0, {0}};
    pcn_train_params ps = p;
    ps.batch_hook = stop_hook, ps.batch_hook_user = &s;
    TU_CHECK(pcn_dist_train(first, &d, &ps, hs, c) == PCN_STOPPED, "%s: not stopped: %s", label,
             pcn_last_error());
    TU_CHECK(s.pos.opt_steps == (int64_t)k * (ipc ? p.t_infer : 1), "%s: %lld optimizer steps",
             label, (long long)s.pos.opt_steps);
    pcn_model *second = copy_model(first);
    pcn_train_params pr = p;
    pr.resume = &s.pos;
    TU_CHECK(pcn_dist_train(second, &d, &pr, hs, c) == PCN_OK, "%s: %s", label, pcn_last_error());
    same_bits(label, second, whole, hs, hw);
    pcn_history_free(hw), pcn_history_free(hs);
    pcn_model_free(whole), pcn_model_free(first), pcn_model_free(second);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    tu_blobs(N, D, K, 777u, X, Y, T);
    for (int ipc = 0; ipc < 2; ipc++) {
        invariance(c, ipc);
        resume(c, ipc, 2);
        resume(c, ipc, 4);
    }
    return tu_mpi_finish(c, "test_disc_dist");
}
