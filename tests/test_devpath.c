/*
 * test_devpath.c — the trainer's device paths, run on every machine: an emulated device
 * backend (the CPU backend's arithmetic behind the device contract of backend.h) trains
 * exactly like the CPU backend, on one process and across ranks.
 *
 * The emulated device (emu_device.h) keeps what makes the device paths different and could
 * hide bugs on a machine without a GPU:
 *   - it is asynchronous: every stream operation is queued and runs only at a sync point
 *     (sync, download, sum_read, release, wait_mark), so a path that reads a result
 *     without waiting sees stale data (check_queue proves the queue defers);
 *   - its buffers are its own allocations; the model's host copy (pcn_model_weights) is a
 *     separate buffer that only push/pull connect, so a missed push or pull shows;
 *   - its passes return 0: sums exist only between sum_begin and sum_finish and come back
 *     through sum_read, so a step whose energy the trainer needs but did not ask for reads
 *     a stale value (poisoned with NaN after every read);
 *   - replay is a graph: the first call for a key captures what the body queues, later
 *     calls queue the captured operations without running the body's host code (host
 *     values frozen at capture; check_queue proves it); a wait inside a capture fails;
 *   - gradients across ranks are staged through the collectives' host buffer (where =
 *     this backend), as --comm mpi does with a GPU; that buffer is the backend's pinned
 *     memory (host_alloc), whose uploads read it when they run (train_both counts the
 *     round trips through pinned and pageable memory).
 * The per-step learning loop keeps at most PCN_STEPS_IN_FLIGHT steps queued (marks and
 * waits, backend.h): check_bounded_queue counts the steps in flight on the device.
 * Gradient sums through sum_f32_device (NCCL's path) are only queued: at P = 1 an
 * emulated one that takes EMU_NCCL_SECONDS when it runs must count in the position's
 * seconds.collectives (check_device_collectives), through the backend's timers.
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
 * The discriminative mode (biases, gelu, adamw, latent momentum; with and without iPC) runs
 * the device's error passes (sums deferred), optimizer steps and the plain phase: bitwise
 * like the CPU backend, and within 1e-5 of max |value| of the reference backend.
 *
 * Usage: mpirun -np P test_devpath
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "gram.h"
#include "phase.h"
#include "emu_device.h"
#include "testutil.h"

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

// A classification data set of n rows of d features and K classes from fill_case_data,
// and its source (which points into the struct: keep it in place while d is used).
typedef struct {
    float *x, *t;
    int32_t *lab;
    pcn_arrays a;
    pcn_data d;
} case_data;

static void case_data_init(case_data *c, int64_t n, int d, int K) {
    c->x = malloc((size_t)n * d * sizeof(float)), c->t = malloc((size_t)n * K * sizeof(float));
    c->lab = malloc((size_t)n * sizeof(int32_t));
    fill_case_data(n, d, K, c->x, c->lab, c->t);
    c->a = (pcn_arrays){c->x, c->lab, NULL, n, d, 0};
    c->d = pcn_data_from_arrays(&c->a);
}

static void case_data_free(case_data *c) { free(c->x), free(c->t), free(c->lab); }

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
    emu.stage_pinned = emu.stage_pageable = 0;
    TU_CHECK(pcn_dist_train(dev, &dtr, &pd, hd, c) == PCN_OK, "%s dev: %s", rc.name,
             pcn_last_error());
    // Across ranks the gradient sums stage through the trainer's host buffer: the backend's
    // pinned memory, none through pageable memory; the upload from it reads it when it runs,
    // and the weights compared below still match bitwise.
    TU_CHECK(pcn_dist_size(c) == 1 || (emu.stage_pinned > 0 && emu.stage_pageable == 0),
             "%s: %d staged sums through pinned memory, %d through pageable (want > 0 and 0)",
             rc.name, emu.stage_pinned, emu.stage_pageable);
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
    case_data cd;
    case_data_init(&cd, N, dims[0], K);
    const pcn_data d = cd.d;
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
    case_data_free(&cd);
}

// ---- the emulated device itself ---------------------------------------------------------

typedef struct {
    const pcn_backend_ops *ops;
    const float *x;
    float *y;
    float alpha; // a host value the body reads: frozen at capture
    int runs;    // how often the body's host code ran
} replay_ctx;

static void replay_body(void *u) {
    replay_ctx *r = u;
    r->runs++;
    r->ops->axpy(4, r->alpha, r->x, r->y);
}

// The queue defers work: an operation's result is not in the buffer (read here through the
// emulator's host pointer, the read a device forbids) until a sync point; wait_mark runs the
// queue up to the mark only; a replayed graph runs its captured arguments, not its body.
static void check_queue(const pcn_backend_ops *o) {
    const float ones[4] = {1, 1, 1, 1};
    float *x = o->alloc(4 * sizeof(float)), *y = o->alloc(4 * sizeof(float)), back[4];
    o->upload(x, ones, sizeof ones);
    o->axpy(4, 2.0f, x, y);
    TU_CHECK(y[0] == 0.0f && emu_device_pending() == 2,
             "queue: y = %g right after a queued axpy (want the stale 0), %zu pending", y[0],
             emu_device_pending());
    o->download(back, y, sizeof back);
    TU_CHECK(back[0] == 2.0f && emu_device_pending() == 0, "queue: download read %g, want 2",
             back[0]);
    o->axpy(4, 1.0f, x, y), o->mark(3), o->axpy(4, 1.0f, x, y);
    TU_CHECK(o->wait_mark(3) == PCN_OK && y[0] == 3.0f && emu_device_pending() == 1,
             "queue: after wait_mark y = %g (want 3), %zu pending (want 1)", y[0],
             emu_device_pending());
    o->sync();
    replay_ctx r = {o, x, y, 1.0f, 0};
    const int key = 7;
    o->replay(&key, sizeof key, replay_body, &r); // captured with alpha 1
    r.alpha = 100.0f;                              // host code a graph never sees again
    o->replay(&key, sizeof key, replay_body, &r);
    o->sync();
    TU_CHECK(r.runs == 1 && y[0] == 6.0f, "replay: the body ran %d times (want 1), y = %g "
             "(want 6: the captured alpha twice)", r.runs, y[0]);
    o->release(x), o->release(y);
}

// The per-step learning path (T_learn = 20) keeps at most PCN_STEPS_IN_FLIGHT steps queued
// on the device, counted as queued updates of the weights; unbounded, all 20 are queued
// before anything waits, and the weights are bitwise the same either way. One process
// (across ranks the staged gradient sum waits at every step).
static void check_bounded_queue(pcn_comm *c, const pcn_backend_ops *emu_backend) {
    enum { N = 40, B = 20, T = 20, K = 4 };
    const int dims[] = {24, 16, 10};
    case_data cd;
    case_data_init(&cd, N, dims[0], K);
    const pcn_data d = cd.d;
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = PCN_ACT_TANH, mp.seed = 5;
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 3, p.t_learn = T, p.batch_size = B, p.num_epochs = 1, p.lr_infer = 0.1;
    p.lr_learn = 0.05, p.train_accuracy_every = 0, p.learn_path = PCN_LEARN_PLAIN;
    float *w[2] = {NULL, NULL};
    for (int bounded = 1; bounded >= 0; bounded--) {
        pcn_backend_set_steps_in_flight(bounded ? PCN_STEPS_IN_FLIGHT : 0);
        pcn_model *dev = pcn_model_init(&mp);
        TU_CHECK(pcn_model_to_backend(dev, emu_backend, PCN_DEVICE_CUDA) == PCN_OK, "%s",
                 pcn_last_error());
        emu.weights = dev->w;
        emu_device_reset_depth();
        TU_CHECK(pcn_dist_train(dev, &d, &p, NULL, c) == PCN_OK, "%s", pcn_last_error());
        const int want = bounded ? PCN_STEPS_IN_FLIGHT : T;
        TU_CHECK(emu.max_weight_steps == want && (!bounded || emu.max_marks <= want),
                 "%s queue: %d learning steps in flight at most (want %d), %d marks",
                 bounded ? "bounded" : "unbounded", emu.max_weight_steps, want, emu.max_marks);
        const size_t nw = pcn_model_num_weights(dev);
        w[bounded] = malloc(nw * sizeof(float));
        memcpy(w[bounded], pcn_model_weights(dev), nw * sizeof(float));
        if (!bounded) tu_close_f("weights, bounded against unbounded queue (bitwise)", w[1], w[0],
                                 nw, 0, 0);
        pcn_model_free(dev);
    }
    pcn_backend_set_steps_in_flight(PCN_STEPS_IN_FLIGHT);
    emu.weights = NULL;
    free(w[0]), free(w[1]), case_data_free(&cd);
}

// ---- the collectives' time on a device ------------------------------------------------------

// One rank's collectives with the emulated device's NCCL-like sum (sum_f32_device).
static pcn_status one_f64(void *ctx, double *v, int n) {
    (void)ctx, (void)v, (void)n;
    return PCN_OK;
}
static pcn_status one_f32(void *ctx, float *v, size_t n) {
    (void)ctx, (void)v, (void)n;
    return PCN_OK;
}
static pcn_status one_device(void *ctx, float *v, size_t n) {
    (void)ctx;
    return emu_device_nccl_sum(v, n);
}
static pcn_status one_agree(void *ctx, pcn_status local) { (void)ctx; return local; }
static pcn_status one_rows(void *ctx, const float *mine, float *all, int64_t global, int width) {
    (void)ctx;
    memcpy(all, mine, (size_t)global * (size_t)width * sizeof(float));
    return PCN_OK;
}
static pcn_status one_gather(void *ctx, const float *mine, float *all, const int64_t *counts) {
    (void)ctx;
    memcpy(all, mine, (size_t)counts[0] * sizeof(float));
    return PCN_OK;
}

static pcn_train_params disc_params(bool ipc); // the discriminative mode's, below

static pcn_status keep_position(void *u, pcn_model *m, const pcn_history *h,
                                const pcn_train_position *next, bool *stop) {
    (void)m, (void)h, (void)stop;
    *(pcn_train_position *)u = *next;
    return PCN_OK;
}

// The gradient sums through sum_f32_device are only queued: pos.seconds.collectives must hold
// the time they take when they run (EMU_NCCL_SECONDS each), not the time of their queuing.
// The bound is the emulated wait's own, so it holds on any machine. One process.
static void check_device_collectives(const pcn_backend_ops *emu_backend, bool disc) {
    enum { N = 40, B = 10, K = 4 };
    const int dims[] = {24, 16, disc ? K : 10}; // a discriminative model's last is its output
    case_data cd;
    case_data_init(&cd, N, dims[0], K);
    const pcn_data d = cd.d;
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = PCN_ACT_TANH, mp.seed = 5;
    if (disc) mp.direction = PCN_DIR_DISCRIMINATIVE;
    pcn_train_params p = disc ? disc_params(false) : pcn_train_default_params();
    if (!disc) p.t_infer = 3, p.t_learn = 3, p.lr_infer = 0.1, p.lr_learn = 0.05;
    p.batch_size = B, p.num_epochs = 1, p.train_accuracy_every = 0;
    p.learn_path = PCN_LEARN_PLAIN;
    pcn_train_position pos = {0};
    p.batch_hook = keep_position, p.batch_hook_user = &pos;
    const pcn_collectives coll = {NULL, 0, 1, one_f64, one_f32, one_device, one_agree, one_rows,
                                  one_gather};
    pcn_model *dev = pcn_model_init(&mp);
    TU_CHECK(dev && pcn_model_to_backend(dev, emu_backend, PCN_DEVICE_CUDA) == PCN_OK, "%s",
             pcn_last_error());
    if (!dev) return;
    emu.nccl_sums = 0;
    TU_CHECK(pcn_train_sharded(dev, &d, &p, NULL, &coll) == PCN_OK, "%s", pcn_last_error());
    const double want = 0.9 * EMU_NCCL_SECONDS * emu.nccl_sums;
    printf("device collectives (%s): %d emulated sums, %.6f s counted (want >= %.6f)\n",
           disc ? "disc" : "gen", emu.nccl_sums, pos.seconds.collectives, want);
    TU_CHECK(emu.nccl_sums >= N / B && pos.seconds.collectives >= want,
             "%s: %d emulated NCCL sums of %g s ran, the position counts %g s in collectives "
             "(want >= %g)", disc ? "disc" : "gen", emu.nccl_sums, EMU_NCCL_SECONDS,
             pos.seconds.collectives, want);
    pcn_model_free(dev);
    case_data_free(&cd);
}

// ---- the discriminative mode ------------------------------------------------------------------

// |got - ref| <= 1e-5 max |ref| over n values: both runs are float32, but the emulated
// device's products are OpenBLAS's and the reference's plain loops, so they round apart.
static void close_to_max(const char *label, const float *got, const float *ref, size_t n) {
    double big = 0.0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(ref[i]));
    tu_close_f(label, got, ref, n, 1e-5 * (big > 0.0 ? big : 1.0), 0.0);
}

// The training config of a discriminative case: adamw, latent momentum, train accuracy on
// the forward pass, 8 batches (two epochs, the last batch of each partial).
// Weight decay only without iPC: with iPC from the forward start, a hidden layer's error at
// the second step is x - f(a) after the decay alone moved a by lr * wd (1e-5) relative, so
// its gradient is mostly rounding, and adam's normalised step turns rounding into O(lr)
// weight differences between any two float32 backends (5e-4 of max |w| measured here,
// against ~1e-6 without decay; the device run is bitwise the CPU's either way). Likewise
// adam's eps is 1e-6, not 1e-8: a weight whose batch gradient is near eps (cancellation over
// the batch) moves by lr g / (|g| + eps), whose rounding is O(lr) there (8% of lr, one
// weight of 2254, in test_gpu's run on the CPU backend against the reference).
static pcn_train_params disc_params(bool ipc) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 6, p.batch_size = 25, p.num_epochs = 2, p.seed = 4;
    p.lr_infer = 0.1, p.lr_learn = 1e-3, p.optimizer = PCN_OPT_ADAMW, p.eps = 1e-6;
    p.weight_decay = ipc ? 0.0 : 1e-2;
    p.infer_momentum = 0.1, p.ipc = ipc, p.train_accuracy_every = 1;
    // The CPU reference runs the plain phase, whose products are the same cpu_gemm calls the
    // device queues: bitwise equal with any OpenBLAS kernel. (Its split phase multiplies with
    // its own packed kernel, whose summation order matches OpenBLAS's only on some cores;
    // test_disc_train compares it with the reference backend to a tolerance.)
    p.split_phases = false;
    return p;
}

typedef struct {
    pcn_model *m;
    pcn_history *h;
    float *y; // (N, K) test outputs
} disc_run;

// Trains a discriminative model (biases, gelu, 3 layers) on backend `ops` and tests it on
// the training data.
static disc_run train_disc(pcn_comm *c, const pcn_backend_ops *ops, pcn_device dev,
                           const pcn_data *d, const pcn_train_params *p, int K) {
    const int dims[] = {20, 16, 12, K};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4, mp.output_dim = K, mp.activation = PCN_ACT_GELU;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true, mp.seed = 9;
    disc_run r = {pcn_model_init(&mp), pcn_history_init(), calloc((size_t)d->n * K, sizeof(float))};
    TU_CHECK(r.m && pcn_model_to_backend(r.m, ops, dev) == PCN_OK, "disc model on %s: %s",
             ops->name, pcn_last_error());
    if (ops->on_device) emu.weights = r.m->w, emu_device_reset_depth();
    pcn_test_result res;
    TU_CHECK(pcn_dist_train(r.m, d, p, r.h, c) == PCN_OK, "disc %s: %s", ops->name,
             pcn_last_error());
    TU_CHECK(pcn_dist_test(r.m, d, p, &res, r.y, c) == PCN_OK, "disc %s: %s", ops->name,
             pcn_last_error());
    return r;
}

// Weights, adamw moments, batch energies and test outputs of run `got` against `ref`:
// bitwise when exact, else to 1e-5 of their largest magnitude (energies 1e-5 relative).
static void compare_disc(const char *name, disc_run got, disc_run ref, size_t nout, bool exact) {
    char label[160];
    const char *how = exact ? "bitwise" : "1e-5 of max";
    const size_t nw = pcn_model_num_weights(ref.m), len = pcn_history_len(ref.h, PCN_HIST_PER_BATCH);
    TU_CHECK(pcn_model_optimizer_slots(got.m) == 2 && pcn_model_optimizer_slots(ref.m) == 2,
             "%s: adamw has %d and %d moment slots", name, pcn_model_optimizer_slots(got.m),
             pcn_model_optimizer_slots(ref.m));
    TU_CHECK(len > 0 && pcn_history_len(got.h, PCN_HIST_PER_BATCH) == len,
             "%s: %zu and %zu batch energies", name, pcn_history_len(got.h, PCN_HIST_PER_BATCH), len);
    const float *f[3][2] = {{pcn_model_weights(got.m), pcn_model_weights(ref.m)},
                            {pcn_model_optimizer_state(got.m), pcn_model_optimizer_state(ref.m)},
                            {got.y, ref.y}};
    const char *what[3] = {"weights", "adamw moments", "test outputs"};
    const size_t n[3] = {nw, 2 * nw, nout};
    for (int k = 0; k < 3; k++) {
        snprintf(label, sizeof label, "%s: %s (%s)", name, what[k], how);
        if (exact) tu_close_f(label, f[k][0], f[k][1], n[k], 0, 0);
        else close_to_max(label, f[k][0], f[k][1], n[k]);
    }
    snprintf(label, sizeof label, "%s: batch energies (%s)", name, exact ? how : "1e-5");
    if (pcn_history_len(got.h, PCN_HIST_PER_BATCH) == len)
        tu_close_d(label, pcn_history_data(got.h, PCN_HIST_PER_BATCH),
                   pcn_history_data(ref.h, PCN_HIST_PER_BATCH), len, exact ? 0 : 1e-7,
                   exact ? 0 : 1e-5);
}

static void free_disc(disc_run r) {
    pcn_model_free(r.m), pcn_history_free(r.h), free(r.y);
}

// A discriminative model (biases, gelu; adamw with decay; latent momentum 0.1; iPC when
// asked) trained and tested on the emulated device runs the device's discriminative passes
// and optimizer steps, and ends bitwise like the CPU backend (the same arithmetic, in the
// same order) and within 1e-5 of max |value| of the reference backend (plain loops).
static void check_disc(pcn_comm *c, const pcn_backend_ops *emu_backend, bool ipc) {
    enum { N = 97, K = 4, D = 20 };
    case_data cd;
    case_data_init(&cd, N, D, K);
    const pcn_data d = cd.d;
    const pcn_train_params p = disc_params(ipc);
    const char *name = ipc ? "disc gelu adamw ipc" : "disc gelu adamw";
    disc_run ref = train_disc(c, &pcn_backend_ref, PCN_DEVICE_CPU, &d, &p, K);
    disc_run cpu = train_disc(c, &pcn_backend_cpu, PCN_DEVICE_CPU, &d, &p, K);
    emu.disc_errors = emu.optim_steps = 0;
    disc_run dev = train_disc(c, emu_backend, PCN_DEVICE_CUDA, &d, &p, K);
    const int batches = p.num_epochs * ((N + p.batch_size - 1) / p.batch_size);
    const int steps = ipc ? batches * p.t_infer : batches;
    TU_CHECK(emu.optim_steps == steps && emu.disc_errors >= batches * p.t_infer * 3,
             "%s: the device ran %d optimizer steps (want %d) and %d error passes", name,
             emu.optim_steps, steps, emu.disc_errors);
    // iPC updates the weights at every step: at most K steps queued, and K reached (t_infer
    // is 6; without the bound all 6 are queued before the batch's energy is read). One
    // process: across ranks the staged gradient sum waits at every step.
    TU_CHECK(!ipc || pcn_dist_size(c) > 1 || emu.max_weight_steps == PCN_STEPS_IN_FLIGHT,
             "%s: %d steps in flight at most, want %d", name, emu.max_weight_steps,
             PCN_STEPS_IN_FLIGHT);
    emu.weights = NULL;
    compare_disc(name, dev, cpu, (size_t)N * K, true);
    compare_disc(name, dev, ref, (size_t)N * K, false);
    free_disc(ref), free_disc(cpu), free_disc(dev);
    case_data_free(&cd);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    pcn_backend_ops ops = emu_device_ops();
    check_queue(&ops);
    check_case(c, &ops, (run_case){"cls auto, train accuracy", PCN_TASK_CLASSIFICATION, PCN_LEARN_AUTO, false, 0, 1, false});
    check_case(c, &ops, (run_case){"cls gram, callbacks", PCN_TASK_CLASSIFICATION, PCN_LEARN_GRAM, true, 0, 2, false});
    check_case(c, &ops, (run_case){"cls plain, early stop", PCN_TASK_CLASSIFICATION, PCN_LEARN_PLAIN, false, 1e-3, 0, false});
    check_case(c, &ops, (run_case){"reg plain, callbacks, early stop", PCN_TASK_REGRESSION, PCN_LEARN_PLAIN, true, 1e-3, 0, false});
    check_case(c, &ops, (run_case){"cls auto, own latents", PCN_TASK_CLASSIFICATION, PCN_LEARN_AUTO, false, 0, 1, true});
    if (pcn_dist_size(c) == 1) check_gram_buffers(c, &ops);
    if (pcn_dist_size(c) == 1) check_bounded_queue(c, &ops);
    if (pcn_dist_size(c) == 1) check_device_collectives(&ops, false);
    if (pcn_dist_size(c) == 1) check_device_collectives(&ops, true);
    check_disc(c, &ops, false);
    check_disc(c, &ops, true);
    TU_CHECK(emu.captures > 0 && emu.sync_in_capture == 0,
             "graphs: %d captured, %d waits inside a capture (want none)", emu.captures,
             emu.sync_in_capture);
    int failed = tu_failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (pcn_dist_rank(c) == 0)
        printf("test_devpath: %d ranks: %s\n", pcn_dist_size(c), any ? "FAILED" : "all checks passed");
    pcn_dist_free(c);
    MPI_Finalize();
    return any ? 1 : 0;
}
