/*
 * test_devpath.c — the trainer's device paths, run on every machine: an emulated device
 * backend (the CPU backend's arithmetic behind the device contract of backend.h) trains
 * exactly like the CPU backend, on one process and across ranks.
 *
 * The emulated device keeps what makes the device paths different and could hide bugs on
 * a machine without a GPU:
 *   - its buffers are its own allocations; the model's host copy (pcn_model_weights) is a
 *     separate buffer that only push/pull connect, so a missed push or pull shows;
 *   - its passes return 0: sums exist only between sum_begin and sum_finish and come back
 *     through sum_read, so a step whose energy the trainer needs but did not ask for reads
 *     a stale value (poisoned with NaN after every read);
 *   - replay runs a recorded step's body again, like a graph replay, while the host-side
 *     value it returns is ignored (a graph returns nothing to the host);
 *   - gradients across ranks are staged through the collectives' host buffer (where =
 *     this backend), as --comm mpi does with a GPU.
 * The batch-space learner allocates its B x B buffer G only for the layers its plan puts in
 * batch space, and a device with no room for G trains on the per-step path instead (like
 * the CPU's plain path, bitwise).
 * A batch hook that does not read the weights costs no weight copy to the host; one that
 * reads them (a checkpoint) sees exactly the CPU run's weights after that batch.
 * Since the arithmetic is the CPU backend's, in the same order, the result must be
 * bitwise the CPU run's: weights, per-batch energies and test outputs, for classification
 * with per-step callbacks and early stopping, regression, the batch-space and the per-step
 * learning paths. Run under mpirun with P = 1, 2, 3 (CTest); at P > 1 a device model takes
 * the per-step path with staged sums (the CPU reference is told to take it too).
 *
 * Usage: mpirun -np P test_devpath
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "gram.h"
#include "phase.h"
#include "testutil.h"

// ---- the emulated device ------------------------------------------------------------------

static struct {
    bool summing;
    double acc, total;
    int replays, uploads, downloads;
    const void *weights;  // the device model's weights: a download from them is a weight copy
    int weight_downloads; // how many
    size_t gram_bytes;    // the size of a batch-space learner's G (B x B floats): counted
    int gram_allocs;      //   here,
    bool gram_no_room;    //   and refused when set, as a full device refuses
} emu;

static void *emu_alloc(size_t bytes) {
    if (bytes && bytes == emu.gram_bytes) {
        emu.gram_allocs++;
        if (emu.gram_no_room) return NULL;
    }
    return bytes ? calloc(1, bytes) : NULL;
}
static void emu_release(void *p) { free(p); }
static void emu_upload(void *d, const void *s, size_t n) {
    emu.uploads++;
    if (n) memcpy(d, s, n);
}
static void emu_download(void *d, const void *s, size_t n) {
    emu.downloads++;
    emu.weight_downloads += s == emu.weights;
    if (n) memcpy(d, s, n);
}
static void emu_sync(void) {}

static double emu_error_pass(pcn_activation act, size_t n, float *x, const float *a, float *e,
                             float *h, float lr) {
    double s = pcn_backend_cpu.error_pass(act, n, x, a, e, h, lr);
    if (emu.summing) emu.acc += s;
    return 0.0;
}
static double emu_sup_error(size_t n, const float *yhat, const float *y, float *esup) {
    double s = pcn_backend_cpu.sup_error(n, yhat, y, esup);
    if (emu.summing) emu.acc += s;
    return 0.0;
}
static void emu_sum_begin(void) { emu.summing = true, emu.acc = 0.0; }
static void emu_sum_finish(void) { emu.summing = false, emu.total = emu.acc; }
static double emu_sum_read(void) {
    double v = emu.total;
    emu.total = NAN; // read once: a second read without a new sum is a bug
    return v;
}
static void emu_replay(const void *key, size_t len, void (*body)(void *), void *ctx) {
    (void)key, (void)len;
    emu.replays++;
    body(ctx);
}

static pcn_backend_ops emu_ops(void) {
    pcn_backend_ops o = pcn_backend_cpu;
    o.name = "emulated device";
    o.on_device = true;
    o.alloc = emu_alloc, o.release = emu_release;
    o.upload = emu_upload, o.download = emu_download, o.sync = emu_sync;
    o.error_pass = emu_error_pass, o.sup_error = emu_sup_error;
    o.sum_begin = emu_sum_begin, o.sum_finish = emu_sum_finish, o.sum_read = emu_sum_read;
    o.replay = emu_replay;
    // A device's phases: the plain ones, as the CUDA loader gives the CUDA module's table.
    o.phase_init = pcn_phase_plain_init, o.phase_free = pcn_phase_plain_free;
    o.infer_phase = pcn_phase_plain_infer, o.gram_phase = pcn_gram_phase_plain;
    return o;
}

// ---- runs ---------------------------------------------------------------------------------

// A batch hook that reads the weights after one batch (as a checkpoint does) into a copy.
typedef struct {
    int batches, read_at; // batches seen; the batch after which the weights are read
    float *copy;          // (num_weights) what the accessor returned then
} weight_reader;

static pcn_status read_weights_hook(void *u, pcn_model *m, const pcn_history *h,
                                    const pcn_train_position *next, bool *stop) {
    (void)h, (void)next, (void)stop;
    weight_reader *r = u;
    if (++r->batches == r->read_at)
        memcpy(r->copy, pcn_model_weights(m), pcn_model_num_weights(m) * sizeof(float));
    return PCN_OK;
}

static int inference_calls;
static void on_step(void *u, int s, double e) {
    (void)u, (void)s;
    TU_CHECK(isfinite(e), "a step energy is %g", e);
    inference_calls++;
}

typedef struct {
    const char *name;
    pcn_task task;
    pcn_learn_path path;
    bool callbacks;
    double early_stop;
    int train_accuracy_every;
    bool own_latents; // a latent_init callback sets every latent through pcn_state_latent
} run_case;

// A latent_init that writes every latent by hand (values from the row and the request).
static void own_latents(void *user, pcn_state *s, const pcn_latent_request *req) {
    (void)user;
    const pcn_model *m = s->model; // white-box: the state's model
    for (int l = 1; l <= pcn_model_num_layers(m); l++) {
        float *x = pcn_state_latent(s, l);
        TU_CHECK(x != NULL, "latent_init: pcn_state_latent(%d) is NULL", l);
        if (!x) return;
        const int d = pcn_model_dim(m, l);
        for (int64_t i = 0; i < (int64_t)pcn_state_batch(s) * d; i++)
            x[i] = (float)(0.3 * sin(0.7 * (double)(req->first_row * d + i) + l + req->epoch));
    }
}

// Fills n rows of inputs x (d wide), labels lab and targets t (K wide) from fixed formulas.
static void fill_case_data(int64_t n, int d, int K, float *x, int32_t *lab, float *t) {
    for (int64_t i = 0; i < n; i++) {
        lab[i] = (int32_t)((i * 5 + i / 7) % K);
        for (int j = 0; j < d; j++)
            x[i * d + j] = (float)(0.5 * sin(0.91 * (double)(i * d + j))) + (j % K == lab[i]);
        for (int k = 0; k < K; k++) t[i * K + k] = (float)cos(0.3 * (double)(i + k));
    }
}

// The training config of a case.
static pcn_train_params case_params(run_case rc) {
    pcn_train_params p = pcn_train_default_params();
    p.task = rc.task, p.t_infer = 9, p.t_learn = 7, p.t_infer_test = 12, p.batch_size = 30;
    p.lr_infer = 0.1, p.lr_learn = 0.05, p.num_epochs = 2, p.seed = 3, p.learn_path = rc.path;
    p.early_stop_threshold = rc.early_stop, p.lr_schedule = PCN_LR_PLATEAU;
    p.train_accuracy_every = rc.train_accuracy_every;
    if (rc.own_latents) p.latent_init = own_latents;
    // The CPU reference takes the plain phases, whose passes the emulated device runs one
    // for one (the CPU's split phases sum their energies in other groupings; test_rows
    // checks them against the plain phases).
    p.split_phases = false;
    if (rc.callbacks)
        p.callbacks.on_inference_step = on_step, p.callbacks.on_learning_step = on_step;
    return p;
}

// Trains the CPU reference and the device model; checks the callbacks and device paths ran.
static void train_both(pcn_comm *c, pcn_model *cpu, pcn_model *dev, pcn_data dtr,
                       pcn_train_params p, pcn_train_params pd, pcn_history *hc,
                       pcn_history *hd, run_case rc) {
    inference_calls = 0;
    // Across ranks a device model keeps the per-step path (batch space gathers through host
    // buffers), so the CPU reference takes it too there.
    pcn_train_params pc = p;
    if (pcn_dist_size(c) > 1) pc.learn_path = PCN_LEARN_PLAIN;
    TU_CHECK(pcn_dist_train(cpu, &dtr, &pc, hc, c) == PCN_OK, "%s cpu: %s", rc.name,
             pcn_last_error());
    int cpu_calls = inference_calls;
    inference_calls = 0;
    emu.replays = emu.uploads = emu.downloads = emu.weight_downloads = 0;
    TU_CHECK(pcn_dist_train(dev, &dtr, &pd, hd, c) == PCN_OK, "%s dev: %s", rc.name,
             pcn_last_error());
    // One copy for the hook's read, one at the end: none for the other batches.
    TU_CHECK(emu.weight_downloads == 2, "%s: %d weight copies to the host, want 2 (the hook's "
             "read and the end)", rc.name, emu.weight_downloads);
    TU_CHECK(inference_calls == cpu_calls, "%s: %d callbacks, CPU %d", rc.name, inference_calls,
             cpu_calls);
    TU_CHECK(emu.replays > 0 && emu.uploads > 0 && emu.downloads > 0,
             "%s: the device paths did not run (%d replays, %d uploads, %d downloads)", rc.name,
             emu.replays, emu.uploads, emu.downloads);
}

// Requires bitwise equal weights and histories of the device model and the CPU reference.
static void compare_trained(pcn_model *cpu, pcn_model *dev, const pcn_history *hc,
                            const pcn_history *hd, run_case rc) {
    char label[160];
    snprintf(label, sizeof label, "%s: weights (bitwise)", rc.name);
    tu_close_f(label, pcn_model_weights(dev), pcn_model_weights(cpu), pcn_model_num_weights(cpu),
               0, 0);
    for (int s = 0; s < PCN_HIST_COUNT; s++) {
        size_t len = pcn_history_len(hc, (pcn_history_series)s);
        TU_CHECK(len == pcn_history_len(hd, (pcn_history_series)s), "%s: %s lengths", rc.name,
                 pcn_history_series_name((pcn_history_series)s));
        snprintf(label, sizeof label, "%s: %s (bitwise)", rc.name,
                 pcn_history_series_name((pcn_history_series)s));
        if (len == pcn_history_len(hd, (pcn_history_series)s))
            tu_close_d(label, pcn_history_data(hd, (pcn_history_series)s),
                       pcn_history_data(hc, (pcn_history_series)s), len, 0, 0);
    }
}

// Tests both models on dte; requires bitwise equal outputs, energies and scores.
static void compare_tests(pcn_comm *c, pcn_model *cpu, pcn_model *dev, pcn_data dte,
                          pcn_train_params p, int64_t ntest, int K, run_case rc) {
    char label[160];
    pcn_test_result rcpu, rdev;
    float *ycpu = calloc((size_t)ntest * K, sizeof(float));
    float *ydev = calloc((size_t)ntest * K, sizeof(float));
    TU_CHECK(pcn_dist_test(cpu, &dte, &p, &rcpu, ycpu, c) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(pcn_dist_test(dev, &dte, &p, &rdev, ydev, c) == PCN_OK, "%s", pcn_last_error());
    snprintf(label, sizeof label, "%s: test outputs (bitwise)", rc.name);
    tu_close_f(label, ydev, ycpu, (size_t)ntest * K, 0, 0);
    tu_close_d(label, &rdev.energy, &rcpu.energy, 1, 0, 0);
    TU_CHECK(rdev.accuracy == rcpu.accuracy && rdev.mse == rcpu.mse, "%s: test scores differ",
             rc.name);
    free(ycpu), free(ydev);
}

static void check_case(pcn_comm *c, const pcn_backend_ops *emu_backend, run_case rc) {
    const int dims[] = {24, 16, 10}, K = 4;
    const int64_t n = 133, ntest = 41;
    bool cls = rc.task == PCN_TASK_CLASSIFICATION;
    float *x = malloc(n * dims[0] * sizeof(float)), *t = malloc(n * K * sizeof(float));
    int32_t *lab = malloc(n * sizeof(int32_t));
    fill_case_data(n, dims[0], K, x, lab, t);
    pcn_arrays atr = {x, cls ? lab : NULL, cls ? NULL : t, n, dims[0], cls ? 0 : K};
    pcn_arrays ate = {x + (n - ntest) * dims[0], cls ? lab + (n - ntest) : NULL,
                      cls ? NULL : t + (n - ntest) * K, ntest, dims[0], cls ? 0 : K};
    pcn_data dtr = pcn_data_from_arrays(&atr), dte = pcn_data_from_arrays(&ate);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = PCN_ACT_TANH;
    mp.mode = rc.task, mp.seed = 21;
    pcn_model *cpu = pcn_model_init(&mp), *dev = pcn_model_init(&mp);
    TU_CHECK(pcn_model_to_backend(dev, emu_backend, PCN_DEVICE_CUDA) == PCN_OK, "%s",
             pcn_last_error());
    TU_CHECK(pcn_model_weights(dev) != dev->w, "%s: the host copy is the device buffer", rc.name);
    pcn_train_params p = case_params(rc);
    pcn_history *hc = pcn_history_init(), *hd = pcn_history_init();
    const size_t nw = pcn_model_num_weights(cpu);
    emu.weights = dev->w;
    weight_reader rcpu = {0, 3, calloc(nw, sizeof(float))}, rdev = {0, 3, calloc(nw, sizeof(float))};
    p.batch_hook = read_weights_hook, p.batch_hook_user = &rcpu;
    pcn_train_params pd = p;
    pd.batch_hook_user = &rdev;
    train_both(c, cpu, dev, dtr, p, pd, hc, hd, rc);
    char label[160];
    snprintf(label, sizeof label, "%s: weights a batch hook read after batch 3 (bitwise)", rc.name);
    tu_close_f(label, rdev.copy, rcpu.copy, nw, 0, 0);
    free(rcpu.copy), free(rdev.copy);
    compare_trained(cpu, dev, hc, hd, rc);
    compare_tests(c, cpu, dev, dte, p, ntest, K, rc);
    pcn_history_free(hc), pcn_history_free(hd);
    pcn_model_free(cpu), pcn_model_free(dev);
    free(x), free(t), free(lab);
}

// One process: G (B x B floats) exists only for the layers the plan puts in batch space (the
// auto plan of this shape is mixed: layer 0 only), and a device without room for G trains on
// the per-step path bitwise like the CPU's plain path.
static void check_gram_buffers(pcn_comm *c, const pcn_backend_ops *emu_backend) {
    enum { N = 128, B = 64, K = 4 };
    const int dims[] = {100, 48, 16};
    float *x = malloc(N * dims[0] * sizeof(float)), *t = malloc(N * K * sizeof(float));
    int32_t *lab = malloc(N * sizeof(int32_t));
    fill_case_data(N, dims[0], K, x, lab, t);
    pcn_arrays a = {x, lab, NULL, N, dims[0], 0};
    pcn_data d = pcn_data_from_arrays(&a);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = PCN_ACT_TANH, mp.seed = 5;
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 4, p.t_learn = B, p.batch_size = B, p.num_epochs = 1, p.lr_infer = 0.1;
    p.lr_learn = 0.05, p.train_accuracy_every = 0, p.split_phases = false;
    pcn_model *probe = pcn_model_init(&mp);
    bool use[PCN_MAX_LAYERS + 1];
    pcn_gram_plan(probe, B, B, NULL, PCN_LEARN_AUTO, use);
    TU_CHECK(use[0] && !use[1] && !use[2], "the auto plan is not mixed: %d %d %d", use[0], use[1],
             use[2]);
    pcn_model_free(probe);
    emu.gram_bytes = (size_t)B * B * sizeof(float);
    for (int no_room = 0; no_room < 2; no_room++) {
        pcn_model *cpu = pcn_model_init(&mp), *dev = pcn_model_init(&mp);
        TU_CHECK(pcn_model_to_backend(dev, emu_backend, PCN_DEVICE_CUDA) == PCN_OK, "%s",
                 pcn_last_error());
        emu.gram_allocs = 0, emu.gram_no_room = no_room;
        pcn_train_params pc = p;
        if (no_room) pc.learn_path = PCN_LEARN_PLAIN; // what the device falls back to
        TU_CHECK(pcn_dist_train(cpu, &d, &pc, NULL, c) == PCN_OK, "%s", pcn_last_error());
        TU_CHECK(pcn_dist_train(dev, &d, &p, NULL, c) == PCN_OK, "no room %d: %s", no_room,
                 pcn_last_error());
        TU_CHECK(emu.gram_allocs == 1, "no room %d: %d allocations of G, want 1 (layer 0's)",
                 no_room, emu.gram_allocs);
        tu_close_f(no_room ? "weights, per-step fall-back against the CPU's plain path (bitwise)"
                           : "weights, mixed plan (bitwise)",
                   pcn_model_weights(dev), pcn_model_weights(cpu), pcn_model_num_weights(cpu), 0, 0);
        pcn_model_free(cpu), pcn_model_free(dev);
    }
    emu.gram_bytes = 0, emu.gram_no_room = false;
    free(x), free(t), free(lab);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    pcn_backend_ops ops = emu_ops();
    check_case(c, &ops, (run_case){"cls auto, train accuracy", PCN_TASK_CLASSIFICATION, PCN_LEARN_AUTO, false, 0, 1, false});
    check_case(c, &ops, (run_case){"cls gram, callbacks", PCN_TASK_CLASSIFICATION, PCN_LEARN_GRAM, true, 0, 2, false});
    check_case(c, &ops, (run_case){"cls plain, early stop", PCN_TASK_CLASSIFICATION, PCN_LEARN_PLAIN, false, 1e-3, 0, false});
    check_case(c, &ops, (run_case){"reg plain, callbacks, early stop", PCN_TASK_REGRESSION, PCN_LEARN_PLAIN, true, 1e-3, 0, false});
    check_case(c, &ops, (run_case){"cls auto, own latents", PCN_TASK_CLASSIFICATION, PCN_LEARN_AUTO, false, 0, 1, true});
    if (pcn_dist_size(c) == 1) check_gram_buffers(c, &ops);
    int failed = tu_failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (pcn_dist_rank(c) == 0)
        printf("test_devpath: %d ranks: %s\n", pcn_dist_size(c), any ? "FAILED" : "all checks passed");
    pcn_dist_free(c);
    MPI_Finalize();
    return any ? 1 : 0;
}
