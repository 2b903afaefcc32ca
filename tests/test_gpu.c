/*
 * test_gpu.c — the CUDA backend computes what the plain reference backend computes
 * (STYLE rule 10), op by op and over whole training runs. Exits 77 (CTest: not run) when
 * no CUDA device is visible or libpcn was built without CUDA.
 *
 * What is proved (every input fresh random data, every output poisoned with NaN first so
 * an element the device skips shows up):
 *   ops    gemm in all four transpose combinations, alphas/betas, padded leading dimensions
 *          (padding untouched), k = 0 (C = beta C) and m = 0, in fp32 and in tf32/bf16/fp16
 *          (those against the float32 reference within the format's rounding); the fused
 *          error pass for every activation with lr = 0 and lr != 0 (e, h, x, and the sum of
 *          e^2 read back through sum_begin/sum_finish/sum_read); sup_error and its sum; axpy;
 *          zero; Philox latents (equal to the host draws up to libm rounding); the sums are
 *          bitwise repeatable.
 *   train  pcn_train on the GPU in float32 against the same run on the CPU: every layer's
 *          weights, the per-batch energies and the test accuracy agree to 1e-4 relative;
 *          with per-step callbacks and early stopping (step energies read back each step),
 *          with the batch-space learning path and with the per-step path, classification
 *          and regression, relu and tanh. Run once with graphs and once with
 *          PCN_CUDA_GRAPHS=0 (CTest runs both).
 *   disc   the discriminative mode against the reference backend: fill_rows (with and
 *          without b), act_pass and disc_error for every activation (kinks included; the sum
 *          of e^2 read back and bitwise repeatable), latent_step with and without momentum,
 *          optim_step for sgd, momentum and adamw with weight decay over three steps (the
 *          bias corrections move); short training runs (biases; gelu + adamw, with and
 *          without iPC; leaky_relu + momentum from random latents with a cosine schedule and
 *          per-step energies; hard_tanh + sgd): weights, optimizer moments, per-batch and
 *          per-step energies and test outputs to 1e-4 (of max |value| for tensors).
 *          "disc-host" runs the same checks with the CPU backend standing in for the GPU
 *          (every machine): the checks themselves work (CTest gpu_disc_checks_on_cpu).
 *   quick  the ops of "ops" and "disc" with small sizes only (no whole runs): what
 *          jobs/gpu_check.sh runs under compute-sanitizer memcheck and racecheck.
 *
 * Tolerances (|got - ref| <= atol + rtol |ref|):
 *   gemm fp32: 2e-6 sqrt(k) as test_backend (cuBLAS accumulates in float32 in another order);
 *   tf32 (10-bit mantissa): 2e-3 sqrt(k); bf16 (7-bit): 1.6e-2 sqrt(k); fp16 (10-bit inputs):
 *   2e-3 sqrt(k) — the input rounding (2^-11 / 2^-8 relative per factor) grows like sqrt(k)
 *   on U(-1, 1) data; a wrong operand order or transpose gives O(1) errors.
 *   element-wise: 1e-6 (CUDA's tanhf/expf may differ from glibc's by an ulp or two); sums:
 *   1e-6 relative (float per thread, double across blocks). Latents: 1e-6 (double-precision
 *   Box-Muller on both sides, rounded to float).
 *   training: 1e-4 relative with atol 1e-6 (the bar; observed differences are
 *   rounding carried through the steps).
 *
 * Without a usable device it exits 77, but 1 (failed, with the reason) on a machine with an
 * NVIDIA device node (tu_gpu_absent).
 *   select the loader's pure decisions on any machine: which compute capabilities a build for
 *          CMAKE_CUDA_ARCHITECTURES runs on (machine code within a major, PTX upwards) and the
 *          refusal's words; the reason worded from a failed probe (driver older than the
 *          runtime, the stub driver, no device).
 *
 * Usage: test_gpu [ops|train|disc|quick|all|disc-host|select|count|gate|module]   ("count" prints
 * the visible device count; "gate" exits as a GPU test without a GPU would, 0 with one; "module" exits 0
 * when the CUDA module loads, which CTest checks against the toolkit's stub driver on
 * machines without a GPU)
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "gpu/gpu_module.h"
#include "testutil.h"

static uint64_t rng_s = 7;
static uint64_t rng_next(void) { return tu_rng_next(&rng_s); }
static float urand(float lo, float hi) {
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}
static float *rand_u(size_t n, float lo, float hi) {
    float *v = calloc(n ? n : 1, sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = urand(lo, hi);
    return v;
}
static float *nan_f(size_t n) {
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = NAN;
    return v;
}

static const pcn_backend_ops *REF = &pcn_backend_ref, *GPU;

// Device copies of host arrays, and back.
static float *to_dev(const float *h, size_t n) {
    float *d = GPU->alloc((n ? n : 1) * sizeof(float));
    GPU->upload(d, h, n * sizeof(float));
    return d;
}
static void to_host(float *h, const float *d, size_t n) { GPU->download(h, d, n * sizeof(float)); }

// ---- ops ------------------------------------------------------------------------------------

static void check_gemm(int m, int n, int k, bool ta, bool tb, float alpha, float beta, int pad,
                       pcn_precision prec) {
    int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
    lda = lda < 1 ? 1 : lda, ldb = ldb < 1 ? 1 : ldb, ldc = ldc < 1 ? 1 : ldc;
    size_t na = (size_t)a_rows * lda, nb = (size_t)b_rows * ldb, nc = (size_t)m * ldc;
    float *a = rand_u(na, -1, 1), *b = rand_u(nb, -1, 1), *c0 = rand_u(nc, -1, 1);
    float *ref = malloc((nc ? nc : 1) * sizeof(float)), *got = nan_f(nc);
    memcpy(ref, c0, nc * sizeof(float));
    REF->gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, ref, ldc);
    float *da = to_dev(a, na), *db = to_dev(b, nb), *dc = to_dev(c0, nc);
    GPU->set_precision(prec);
    GPU->gemm(ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc);
    GPU->set_precision(PCN_PRECISION_FP32);
    to_host(got, dc, nc);
    static const double unit[] = {2e-6, 2e-3, 1.6e-2, 2e-3};
    double tol = unit[prec] * sqrt(k > 1 ? (double)k : 1.0);
    char label[160];
    snprintf(label, sizeof label, "gemm[%d] %c%c m=%d n=%d k=%d alpha=%g beta=%g pad=%d", prec,
             ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, beta, pad);
    tu_close_f(label, got, ref, nc, tol, tol);
    size_t pad_bad = 0;
    for (int i = 0; i < m; i++)
        for (int j = n; j < ldc; j++) pad_bad += got[(size_t)i * ldc + j] != c0[(size_t)i * ldc + j];
    TU_CHECK(pad_bad == 0, "%s: %zu padding entries written", label, pad_bad);
    GPU->release(da), GPU->release(db), GPU->release(dc);
    free(a), free(b), free(c0), free(ref), free(got);
}

// `test_gpu quick`: the per-op checks with small sizes only (for compute-sanitizer).
static bool quick = false;

static void check_gemms(void) {
    static const int shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {33, 17, 9}, {4, 3, 70},
                                    {256, 160, 96}, {500, 300, 1000}, {48, 784, 64}};
    static const float ab[][2] = {{1, 0}, {1, 1}, {0.5f, 0.75f}, {-1.25f, 1}};
    for (size_t s = 0; s < (quick ? 4 : sizeof shapes / sizeof shapes[0]); s++)
        for (int t = 0; t < 4; t++)
            for (size_t q = 0; q < 4; q++)
                check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, ab[q][0],
                           ab[q][1], (int)(s + q) % 3 == 0 ? 0 : 3, PCN_PRECISION_FP32);
    for (int t = 0; t < 4; t++) {
        check_gemm(6, 5, 0, t & 1, t >> 1, 1, 0, 0, PCN_PRECISION_FP32);
        check_gemm(6, 5, 0, t & 1, t >> 1, 1, 0.5f, 2, PCN_PRECISION_FP32);
        check_gemm(0, 5, 4, t & 1, t >> 1, 1, 0, 0, PCN_PRECISION_FP32);
    }
    for (int prec = PCN_PRECISION_TF32; prec <= PCN_PRECISION_FP16; prec++)
        for (int t = 0; t < 4; t++) {
            if (!quick) check_gemm(500, 300, 1000, t & 1, t >> 1, 1, 0, 0, (pcn_precision)prec);
            check_gemm(33, 17, 9, t & 1, t >> 1, -1.25f, 1, 3, (pcn_precision)prec);
        }
}

// The sum of one pass read back the way the engine reads it.
static double read_sum(void) {
    GPU->sum_finish();
    return GPU->sum_read();
}

static void check_error_pass(pcn_activation act, size_t n, float lr) {
    float *x = rand_u(n, -2, 2), *a = rand_u(n, -3, 3);
    for (size_t i = 0; i < n && i < 4; i++) a[i] = i % 2 ? 0.0f : -0.0f; // relu's kink
    float *xr = malloc(n * sizeof(float)), *er = nan_f(n), *hr = nan_f(n);
    memcpy(xr, x, n * sizeof(float));
    double sref = REF->error_pass(act, n, xr, a, er, hr, lr);
    float *poison = nan_f(n);
    float *dx = to_dev(x, n), *da = to_dev(a, n), *de = to_dev(poison, n), *dh = to_dev(poison, n);
    free(poison);
    GPU->sum_begin();
    double ret = GPU->error_pass(act, n, dx, da, de, dh, lr);
    double sum = ret + read_sum();
    float *got = nan_f(n);
    char label[96];
    snprintf(label, sizeof label, "error_pass %s n=%zu lr=%g", pcn_activation_name(act), n, lr);
    to_host(got, de, n), tu_close_f(label, got, er, n, 1e-6, 1e-6);
    to_host(got, dh, n), tu_close_f(label, got, hr, n, 1e-6, 1e-6);
    to_host(got, dx, n), tu_close_f(label, got, xr, n, 1e-6, 1e-6);
    tu_close_d(label, &sum, &sref, 1, 1e-9, 1e-6);
    // Bitwise repeatable: the same pass again gives the same sum.
    GPU->upload(dx, x, n * sizeof(float));
    GPU->sum_begin();
    GPU->error_pass(act, n, dx, da, de, dh, lr);
    double again = read_sum();
    TU_CHECK(again == sum - ret, "%s: sum not repeatable (%.17g vs %.17g)", label, again, sum - ret);
    GPU->release(dx), GPU->release(da), GPU->release(de), GPU->release(dh);
    free(x), free(a), free(xr), free(er), free(hr), free(got);
}

static void check_small_ops(size_t n) {
    float *yh = rand_u(n, -1, 1), *y = rand_u(n, -1, 1), *er = nan_f(n), *got = nan_f(n);
    double sref = REF->sup_error(n, yh, y, er);
    float *dyh = to_dev(yh, n), *dy = to_dev(y, n), *de = to_dev(got, n);
    GPU->sum_begin();
    GPU->sup_error(n, dyh, dy, de);
    double sum = read_sum();
    to_host(got, de, n);
    tu_close_f("sup_error", got, er, n, 1e-7, 1e-7);
    tu_close_d("sup_error sum", &sum, &sref, 1, 1e-9, 1e-6);
    // axpy, then zero
    float *yr = malloc(n * sizeof(float));
    memcpy(yr, y, n * sizeof(float));
    REF->axpy(n, -0.37f, yh, yr);
    GPU->axpy(n, -0.37f, dyh, dy);
    to_host(got, dy, n), tu_close_f("axpy", got, yr, n, 1e-7, 1e-7);
    GPU->zero(n, dy);
    to_host(got, dy, n);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += got[i] != 0.0f;
    TU_CHECK(nonzero == 0, "zero left %zu entries", nonzero);
    GPU->release(dyh), GPU->release(dy), GPU->release(de);
    free(yh), free(y), free(er), free(got), free(yr);
}

static void check_latents(int rows, int dim) {
    size_t n = (size_t)rows * dim;
    float *ref = nan_f(n), *got = nan_f(n), *d = to_dev(got, n);
    REF->normal_rows(42, 1000, (3u << 8) | 1u, 2, rows, dim, ref);
    GPU->normal_rows(42, 1000, (3u << 8) | 1u, 2, rows, dim, d);
    to_host(got, d, n);
    char label[64];
    snprintf(label, sizeof label, "latents %dx%d", rows, dim);
    tu_close_f(label, got, ref, n, 1e-6, 1e-6);
    GPU->release(d);
    free(ref), free(got);
}

static void check_ops(void) {
    check_gemms();
    static const size_t sizes[] = {1, 7, 1000, 131073, 1536000};
    for (int act = 0; act < PCN_ACT_GENERATIVE_COUNT; act++)
        for (size_t s = 0; s < (quick ? 3 : sizeof sizes / sizeof sizes[0]); s++) {
            check_error_pass((pcn_activation)act, sizes[s], 0.0f);
            check_error_pass((pcn_activation)act, sizes[s], 0.1f);
        }
    if (!quick) check_small_ops(5000);
    check_small_ops(3);
    check_latents(1, 1), check_latents(5, 7), check_latents(3, 10);
    if (!quick) check_latents(500, 1000);
}

// ---- whole runs ----------------------------------------------------------------------------

typedef struct {
    float *x, *t;
    int32_t *lab;
} blobs;

static blobs make_data(int64_t n, int d, int K) {
    blobs b = {rand_u((size_t)n * d, 0, 1), rand_u((size_t)n * K, -1, 1), malloc(n * sizeof(int32_t))};
    for (int64_t i = 0; i < n; i++) {
        b.lab[i] = (int32_t)(rng_next() % (uint64_t)K);
        for (int j = 0; j < d / K; j++) b.x[i * d + (b.lab[i] * (d / K) + j) % d] += 1.0f;
    }
    return b;
}

static int step_calls;
static void on_step(void *u, int s, double e) { (void)u, (void)s, (void)e, step_calls++; }

typedef struct {
    const char *name;
    pcn_task task;
    pcn_activation act;
    pcn_learn_path path;
    bool callbacks;     // per-step energies read back every step
    double early_stop;
} run_case;

static void check_run(run_case rc) {
    const int dims[] = {40, 24, 16}, K = 6;
    const int64_t n = 230, ntest = 70;
    blobs tr = make_data(n, dims[0], K), te = make_data(ntest, dims[0], K);
    bool cls = rc.task == PCN_TASK_CLASSIFICATION;
    pcn_arrays atr = {tr.x, cls ? tr.lab : NULL, cls ? NULL : tr.t, n, dims[0], cls ? 0 : K};
    pcn_arrays ate = {te.x, cls ? te.lab : NULL, cls ? NULL : te.t, ntest, dims[0], cls ? 0 : K};
    pcn_data dtr = pcn_data_from_arrays(&atr), dte = pcn_data_from_arrays(&ate);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.activation = rc.act, mp.mode = rc.task;
    mp.seed = 11;
    pcn_model *cpu = pcn_model_init(&mp), *gpu = pcn_model_init(&mp);
    TU_CHECK(pcn_model_to_device(gpu, PCN_DEVICE_CUDA) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(pcn_model_device(gpu) == PCN_DEVICE_CUDA, "model not on the device");
    pcn_train_params p = pcn_train_default_params();
    p.task = rc.task, p.t_infer = 12, p.t_learn = 9, p.t_infer_test = 20, p.batch_size = 50;
    p.lr_infer = 0.1, p.lr_learn = 0.02, p.num_epochs = 2, p.seed = 5, p.learn_path = rc.path;
    p.use_mixed_precision = false, p.early_stop_threshold = rc.early_stop;
    p.lr_schedule = PCN_LR_PLATEAU;
    if (rc.callbacks) p.callbacks.on_inference_step = on_step, p.callbacks.on_learning_step = on_step;
    pcn_history *hc = pcn_history_init(), *hg = pcn_history_init();
    step_calls = 0;
    TU_CHECK(pcn_train(cpu, &dtr, &p, hc) == PCN_OK, "%s cpu: %s", rc.name, pcn_last_error());
    int cpu_calls = step_calls;
    step_calls = 0;
    TU_CHECK(pcn_train(gpu, &dtr, &p, hg) == PCN_OK, "%s gpu: %s", rc.name, pcn_last_error());
    TU_CHECK(step_calls == cpu_calls, "%s: %d step callbacks on the GPU, %d on the CPU", rc.name,
             step_calls, cpu_calls);
    char label[128];
    snprintf(label, sizeof label, "%s: weights", rc.name);
    tu_close_f(label, pcn_model_weights(gpu), pcn_model_weights(cpu), pcn_model_num_weights(cpu),
               1e-6, 1e-4);
    for (int s = PCN_HIST_PER_BATCH; s <= PCN_HIST_PER_EPOCH_PRE_LEARN; s++) {
        size_t len = pcn_history_len(hc, (pcn_history_series)s);
        TU_CHECK(len == pcn_history_len(hg, (pcn_history_series)s), "%s: history lengths", rc.name);
        snprintf(label, sizeof label, "%s: %s", rc.name, pcn_history_series_name((pcn_history_series)s));
        tu_close_d(label, pcn_history_data(hg, (pcn_history_series)s),
                   pcn_history_data(hc, (pcn_history_series)s), len, 1e-8, 1e-4);
    }
    pcn_test_result rcpu, rgpu;
    float *ycpu = nan_f((size_t)ntest * K), *ygpu = nan_f((size_t)ntest * K);
    TU_CHECK(pcn_test(cpu, &dte, &p, &rcpu, ycpu) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(pcn_test(gpu, &dte, &p, &rgpu, ygpu) == PCN_OK, "%s", pcn_last_error());
    snprintf(label, sizeof label, "%s: test outputs", rc.name);
    tu_close_f(label, ygpu, ycpu, (size_t)ntest * K, 1e-5, 1e-4);
    tu_close_d(label, &rgpu.energy, &rcpu.energy, 1, 1e-8, 1e-4);
    printf("%-28s cpu acc %.4f energy %.6f | gpu acc %.4f energy %.6f\n", rc.name, rcpu.accuracy,
           rcpu.energy, rgpu.accuracy, rgpu.energy);
    pcn_history_free(hc), pcn_history_free(hg);
    pcn_model_free(cpu), pcn_model_free(gpu);
    free(ycpu), free(ygpu);
    free(tr.x), free(tr.t), free(tr.lab), free(te.x), free(te.t), free(te.lab);
}

static void check_runs(void) {
    check_run((run_case){"cls relu auto", PCN_TASK_CLASSIFICATION, PCN_ACT_RELU, PCN_LEARN_AUTO, false, 0});
    check_run((run_case){"cls relu plain", PCN_TASK_CLASSIFICATION, PCN_ACT_RELU, PCN_LEARN_PLAIN, false, 0});
    check_run((run_case){"cls tanh gram callbacks", PCN_TASK_CLASSIFICATION, PCN_ACT_TANH, PCN_LEARN_GRAM, true, 0});
    check_run((run_case){"reg tanh early stop", PCN_TASK_REGRESSION, PCN_ACT_TANH, PCN_LEARN_PLAIN, true, 1e-3});
}

// ---- the discriminative mode: ops ------------------------------------------------------------

// The activations' kinks and edges first (relu/leaky at 0, hard_tanh at +-1), then U(lo, hi).
static float *rand_kinks(size_t n, float lo, float hi) {
    static const float kinks[] = {0.0f, -0.0f, 1.0f, -1.0f, 1.0001f, -0.9999f};
    float *v = rand_u(n, lo, hi);
    for (size_t i = 0; i < n && i < sizeof kinks / sizeof kinks[0]; i++) v[i] = kinks[i];
    return v;
}

static void check_fill_rows(int rows, int cols) {
    const size_t n = (size_t)rows * cols;
    float *b = rand_u((size_t)cols, -1, 1), *ref = nan_f(n), *got = nan_f(n);
    float *db = to_dev(b, (size_t)cols), *da = to_dev(got, n);
    char label[96];
    for (int with_b = 0; with_b < 2; with_b++) {
        REF->fill_rows(rows, cols, with_b ? b : NULL, ref);
        GPU->fill_rows(rows, cols, with_b ? db : NULL, da);
        to_host(got, da, n);
        snprintf(label, sizeof label, "fill_rows %dx%d %s", rows, cols, with_b ? "b" : "NULL");
        tu_close_f(label, got, ref, n, 0, 0);
    }
    GPU->release(db), GPU->release(da);
    free(b), free(ref), free(got);
}

// act_pass and disc_error of one activation on n elements (the error's sum read back as the
// engine reads it; outside sum_begin/sum_finish the device sums nothing).
static void check_disc_error(pcn_activation act, float slope, size_t n) {
    float *a = rand_kinks(n, -3, 3), *x = rand_u(n, -2, 2);
    float *mr = nan_f(n), *er = nan_f(n), *dr = nan_f(n), *got = nan_f(n);
    REF->act_pass(act, slope, n, a, mr);
    double sref = REF->disc_error(act, slope, n, x, a, er, dr);
    float *da = to_dev(a, n), *dx = to_dev(x, n), *dm = to_dev(got, n), *de = to_dev(got, n),
          *dd = to_dev(got, n);
    char label[96];
    snprintf(label, sizeof label, "disc %s slope %g n=%zu", pcn_activation_name(act), slope, n);
    GPU->act_pass(act, slope, n, da, dm);
    to_host(got, dm, n), tu_close_f(label, got, mr, n, 1e-6, 1e-6);
    GPU->sum_begin();
    double ret = GPU->disc_error(act, slope, n, dx, da, de, dd);
    double sum = ret + read_sum();
    to_host(got, de, n), tu_close_f(label, got, er, n, 1e-6, 1e-6);
    to_host(got, dd, n), tu_close_f(label, got, dr, n, 1e-6, 1e-6);
    tu_close_d(label, &sum, &sref, 1, 1e-9, 1e-6);
    GPU->sum_begin();
    GPU->disc_error(act, slope, n, dx, da, de, dd);
    double again = read_sum();
    TU_CHECK(again == sum - ret, "%s: sum not repeatable (%.17g vs %.17g)", label, again, sum - ret);
    GPU->release(da), GPU->release(dx), GPU->release(dm), GPU->release(de), GPU->release(dd);
    free(a), free(x), free(mr), free(er), free(dr), free(got);
}

static void check_latent_step(size_t n, float beta) {
    float *e = rand_u(n, -1, 1), *t = rand_u(n, -1, 1), *m = rand_u(n, -1, 1), *x = rand_u(n, -2, 2);
    float *de = to_dev(e, n), *dt = to_dev(t, n), *dm = to_dev(m, n), *dx = to_dev(x, n);
    float *got = nan_f(n);
    char label[96];
    snprintf(label, sizeof label, "latent_step n=%zu beta=%g", n, beta);
    for (int step = 0; step < 3; step++) { // momentum carried over steps
        REF->latent_step(n, 0.1f, beta, e, t, m, x);
        GPU->latent_step(n, 0.1f, beta, de, dt, dm, dx);
    }
    to_host(got, dx, n), tu_close_f(label, got, x, n, 1e-6, 1e-6);
    to_host(got, dm, n), tu_close_f(label, got, m, n, 1e-6, 1e-6);
    GPU->release(de), GPU->release(dt), GPU->release(dm), GPU->release(dx);
    free(e), free(t), free(m), free(x), free(got);
}

// Three steps of one optimizer with weight decay (adamw's bias corrections of t = 1, 2, 3).
static void check_optim(pcn_optimizer kind, size_t n) {
    float *w = rand_u(n, -1, 1), *m = rand_u(n, -0.1f, 0.1f), *v = rand_u(n, 0, 0.01f);
    float *dw = to_dev(w, n), *dm = to_dev(m, n), *dv = to_dev(v, n), *got = nan_f(n);
    char label[96];
    snprintf(label, sizeof label, "optim_step %s n=%zu", pcn_optimizer_name(kind), n);
    for (int t = 1; t <= 3; t++) {
        float *g = rand_u(n, -2, 2), *dg = to_dev(g, n);
        g[0] = 0.0f, GPU->upload(dg, g, sizeof(float)); // a zero gradient
        const pcn_optim_step o = {.kind = kind, .lr = 0.01f, .scale = 0.25f, .momentum = 0.9f,
                                  .b1 = 0.9f, .b2 = 0.999f, .eps = 1e-8f,
                                  .c1 = (float)(1.0 - 0.9), .c2 = (float)(1.0 - 0.999),
                                  .bc1 = (float)(1.0 - pow(0.9, t)),
                                  .bc2 = (float)(1.0 - pow(0.999, t)), .wd = 0.05f};
        REF->optim_step(&o, n, g, m, v, w);
        GPU->optim_step(&o, n, dg, dm, dv, dw);
        GPU->release(dg), free(g);
    }
    to_host(got, dw, n), tu_close_f(label, got, w, n, 1e-6, 1e-5);
    if (kind != PCN_OPT_SGD) to_host(got, dm, n), tu_close_f(label, got, m, n, 1e-7, 1e-5);
    if (kind == PCN_OPT_ADAMW) to_host(got, dv, n), tu_close_f(label, got, v, n, 1e-9, 1e-5);
    GPU->release(dw), GPU->release(dm), GPU->release(dv);
    free(w), free(m), free(v), free(got);
}

static void check_disc_ops(void) {
    check_fill_rows(1, 1), check_fill_rows(7, 5);
    if (!quick) check_fill_rows(300, 129);
    static const size_t sizes[] = {1, 7, 1000, 131073, 1536000};
    for (int act = 0; act < PCN_ACT_COUNT; act++)
        for (size_t s = 0; s < (quick ? 3 : sizeof sizes / sizeof sizes[0]); s++)
            check_disc_error((pcn_activation)act, act == PCN_ACT_LEAKY_RELU ? 0.07f : 0.01f,
                             sizes[s]);
    for (size_t s = 0; s < (quick ? 3 : 4); s++)
        check_latent_step(sizes[s], 0.0f), check_latent_step(sizes[s], 0.1f);
    for (int k = 0; k <= PCN_OPT_ADAMW; k++) {
        check_optim((pcn_optimizer)k, 5);
        if (!quick) check_optim((pcn_optimizer)k, 200001);
    }
}

// ---- the discriminative mode: whole runs -------------------------------------------------------

// |got - ref| <= tol max |ref| over n values.
static void close_to_max(const char *label, const float *got, const float *ref, size_t n,
                         double tol) {
    double big = 0.0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(ref[i]));
    tu_close_f(label, got, ref, n, tol * (big > 0.0 ? big : 1.0), 0.0);
}

typedef struct {
    const char *name;
    pcn_activation act;
    pcn_optimizer opt;
    bool ipc, random_start, callbacks;
    pcn_lr_schedule schedule;
} disc_case;

// The model on the device under test: the CUDA device, or (disc-host) the host backend
// GPU stands in for.
static pcn_status onto_gpu(pcn_model *m) {
    return GPU->on_device ? pcn_model_to_device(m, PCN_DEVICE_CUDA)
                          : pcn_model_to_backend(m, GPU, PCN_DEVICE_CPU);
}

static pcn_train_params disc_train_params(disc_case dc) {
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 8, p.batch_size = 40, p.num_epochs = 2, p.seed = 5, p.lr_infer = 0.1;
    p.lr_learn = dc.opt == PCN_OPT_ADAMW ? 1e-3 : 0.02, p.optimizer = dc.opt;
    // No decay with iPC, and adamw's eps 1e-6 (test_devpath's disc_params says why).
    p.weight_decay = dc.ipc ? 0.0 : 1e-2, p.eps = 1e-6, p.infer_momentum = 0.1, p.ipc = dc.ipc;
    p.latent_start = dc.random_start ? PCN_LATENT_RANDOM : PCN_LATENT_FORWARD;
    p.lr_schedule = dc.schedule, p.train_accuracy_every = 1, p.use_mixed_precision = false;
    p.keep_step_energies = dc.callbacks;
    if (dc.callbacks) p.callbacks.on_inference_step = on_step;
    return p;
}

// A discriminative run on the device against the same run on the reference backend:
// weights (biases and optimizer moments included), per-batch energies, step callbacks,
// test outputs and energy, to 1e-4 (of max |value| for tensors, relative for energies).
static void check_disc_run(disc_case dc) {
    const int dims[] = {40, 32, 24, 6}, K = 6;
    const int64_t n = 230, ntest = 70;
    blobs tr = make_data(n, dims[0], K), te = make_data(ntest, dims[0], K);
    pcn_arrays atr = {tr.x, tr.lab, NULL, n, dims[0], 0}, ate = {te.x, te.lab, NULL, ntest, dims[0], 0};
    pcn_data dtr = pcn_data_from_arrays(&atr), dte = pcn_data_from_arrays(&ate);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 4, mp.output_dim = K, mp.activation = dc.act, mp.seed = 11;
    mp.direction = PCN_DIR_DISCRIMINATIVE, mp.bias = true, mp.leaky_slope = 0.05f;
    pcn_model *ref = pcn_model_init(&mp), *gpu = pcn_model_init(&mp);
    TU_CHECK(ref && gpu && pcn_model_to_backend(ref, REF, PCN_DEVICE_CPU) == PCN_OK &&
                 onto_gpu(gpu) == PCN_OK, "%s: %s", dc.name, pcn_last_error());
    const pcn_train_params p = disc_train_params(dc);
    pcn_history *hr = pcn_history_init(), *hg = pcn_history_init();
    step_calls = 0;
    TU_CHECK(pcn_train(ref, &dtr, &p, hr) == PCN_OK, "%s ref: %s", dc.name, pcn_last_error());
    const int ref_calls = step_calls;
    step_calls = 0;
    TU_CHECK(pcn_train(gpu, &dtr, &p, hg) == PCN_OK, "%s gpu: %s", dc.name, pcn_last_error());
    TU_CHECK(step_calls == ref_calls, "%s: %d step callbacks, %d on the reference", dc.name,
             step_calls, ref_calls);
    char label[128];
    const size_t nw = pcn_model_num_weights(ref), slots = (size_t)pcn_model_optimizer_slots(ref);
    snprintf(label, sizeof label, "%s: weights", dc.name);
    close_to_max(label, pcn_model_weights(gpu), pcn_model_weights(ref), nw, 1e-4);
    TU_CHECK(pcn_model_optimizer_slots(gpu) == (int)slots, "%s: optimizer slots", dc.name);
    snprintf(label, sizeof label, "%s: optimizer moments", dc.name);
    if (slots && pcn_model_optimizer_slots(gpu) == (int)slots)
        close_to_max(label, pcn_model_optimizer_state(gpu), pcn_model_optimizer_state(ref),
                     slots * nw, 1e-4);
    for (int s = PCN_HIST_PER_BATCH; s <= PCN_HIST_STEP_INFER; s++) {
        const size_t len = pcn_history_len(hr, (pcn_history_series)s);
        TU_CHECK(len == pcn_history_len(hg, (pcn_history_series)s), "%s: history lengths", dc.name);
        snprintf(label, sizeof label, "%s: %s", dc.name, pcn_history_series_name((pcn_history_series)s));
        if (len == pcn_history_len(hg, (pcn_history_series)s))
            tu_close_d(label, pcn_history_data(hg, (pcn_history_series)s),
                       pcn_history_data(hr, (pcn_history_series)s), len, 1e-8, 1e-4);
    }
    pcn_test_result rr, rg;
    float *yr = nan_f((size_t)ntest * K), *yg = nan_f((size_t)ntest * K);
    TU_CHECK(pcn_test(ref, &dte, &p, &rr, yr) == PCN_OK && pcn_test(gpu, &dte, &p, &rg, yg) == PCN_OK,
             "%s: %s", dc.name, pcn_last_error());
    snprintf(label, sizeof label, "%s: test outputs", dc.name);
    close_to_max(label, yg, yr, (size_t)ntest * K, 1e-4);
    tu_close_d(label, &rg.energy, &rr.energy, 1, 1e-8, 1e-4);
    printf("%-32s ref acc %.4f energy %.6f | gpu acc %.4f energy %.6f\n", dc.name, rr.accuracy,
           rr.energy, rg.accuracy, rg.energy);
    pcn_history_free(hr), pcn_history_free(hg), pcn_model_free(ref), pcn_model_free(gpu);
    free(yr), free(yg), free(tr.x), free(tr.t), free(tr.lab), free(te.x), free(te.t), free(te.lab);
}

static void check_disc_runs(void) {
    check_disc_run((disc_case){"disc gelu adamw", PCN_ACT_GELU, PCN_OPT_ADAMW, false, false, false, PCN_LR_NONE});
    check_disc_run((disc_case){"disc gelu adamw ipc", PCN_ACT_GELU, PCN_OPT_ADAMW, true, false, false, PCN_LR_NONE});
    check_disc_run((disc_case){"disc leaky momentum random callbacks", PCN_ACT_LEAKY_RELU, PCN_OPT_MOMENTUM, false, true, true, PCN_LR_COSINE});
    check_disc_run((disc_case){"disc hard_tanh sgd callbacks", PCN_ACT_HARD_TANH, PCN_OPT_SGD, false, false, true, PCN_LR_NONE});
}

// ---- select: the loader's pure decisions, on any machine --------------------------------------

// Whether a device of capability major.minor runs a build for archs, as expected.
static void arch_case(const char *archs, int major, int minor, bool want, const char *words) {
    char why[512] = "";
    bool runs = pcn_cuda_arch_check(archs, 0, "Tesla V100", major, minor, why, sizeof why);
    TU_CHECK(runs == want, "archs \"%s\", sm_%d%d: %s, want %s (%s)", archs, major, minor,
             runs ? "runs" : "refused", want ? "runs" : "refused", why);
    TU_CHECK(!words || strstr(why, words), "archs \"%s\", sm_%d%d: \"%s\" lacks \"%s\"", archs,
             major, minor, why, words);
}

static void reason_case(int error, const char *name, const char *text, int driver, int runtime,
                        const char *words) {
    pcn_gpu_probe p = {0, error, "", "", driver, runtime};
    char why[768];
    snprintf(p.error_name, sizeof p.error_name, "%s", name);
    snprintf(p.error_string, sizeof p.error_string, "%s", text);
    pcn_cuda_probe_reason(&p, why, sizeof why);
    TU_CHECK(strstr(why, words), "probe reason \"%s\" lacks \"%s\"", why, words);
}

static void check_select(void) {
    // CMake's "80;90": sm_80 and sm_90 code, compute_80 and compute_90 PTX.
    arch_case("80,90", 7, 0, false, "GPU 0 (Tesla V100, sm_70) is older than the architectures "
              "this build has kernels for (sm_80, sm_90): rebuild with "
              "-DCMAKE_CUDA_ARCHITECTURES=70");
    arch_case("80,90", 7, 5, false, "-DCMAKE_CUDA_ARCHITECTURES=75");
    arch_case("80,90", 8, 0, true, NULL);
    arch_case("80,90", 8, 6, true, NULL);  // sm_80 code runs on 8.x at a higher minor
    arch_case("80,90", 8, 9, true, NULL);
    arch_case("80,90", 9, 0, true, NULL);
    arch_case("80,90", 10, 0, true, NULL); // compute_90 PTX, compiled by the driver
    arch_case("80,90", 12, 0, true, NULL);
    arch_case("90-real", 8, 6, false, "is older than");
    arch_case("80-real,90-real", 8, 6, true, NULL);
    arch_case("80-real,90-real", 10, 0, false, "is not among the architectures this build "
              "has kernels for (sm_80 without PTX, sm_90 without PTX)");
    arch_case("80-virtual", 9, 0, true, NULL);
    arch_case("80-virtual", 7, 5, false, "compute_80");
    arch_case("90a", 9, 0, true, NULL);
    arch_case("90a", 10, 0, false, "sm_90a");
    arch_case("100f", 10, 3, true, NULL);
    arch_case("100f", 12, 0, false, NULL);
    arch_case("native", 5, 0, true, NULL); // not a list that can be judged
    arch_case("", 5, 0, true, NULL);
    reason_case(35, "cudaErrorInsufficientDriver", "CUDA driver version is insufficient for "
                "CUDA runtime version", 12040, 13000, "CUDA driver 12.4 is older than this "
                "build's runtime 13.0 (needs driver >= 580)");
    reason_case(34, "cudaErrorStubLibrary", "CUDA driver is a stub library", 0, 13000,
                "cudaErrorStubLibrary (CUDA driver is a stub library)");
    reason_case(100, "cudaErrorNoDevice", "no CUDA-capable device is detected", 13000, 13000,
                "cudaErrorNoDevice");
    reason_case(0, "", "", 13000, 13000, "sees no CUDA device");
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    if (strcmp(what, "select") == 0) {
        check_select();
        return tu_finish("test_gpu select");
    }
    if (strcmp(what, "disc-host") == 0) { // the disc checks themselves, on the CPU backend
        GPU = &pcn_backend_cpu;
        check_disc_ops(), check_disc_runs();
        return tu_finish("test_gpu disc-host");
    }
    int n = pcn_cuda_device_count();
    if (strcmp(what, "count") == 0) {
        printf("%d\n", n);
        return 0;
    }
    if (strcmp(what, "gate") == 0) // exits 0 with a usable GPU, else as a GPU test would
        return n > 0 ? 0 : tu_gpu_absent("GPU tests");
    if (strcmp(what, "module") == 0) { // the CUDA module loads and answers (see CMakeLists)
        const char *why = pcn_cuda_unavailable_reason();
        printf("CUDA module: %s; %d device(s)%s%s\n", pcn_cuda_built() ? "loaded" : why, n,
               n ? "" : ": ", n ? "" : why);
        return pcn_cuda_built() ? 0 : 1;
    }
    if (n == 0) return tu_gpu_absent("test_gpu");
    TU_CHECK(pcn_cuda_select(0) == PCN_OK, "%s", pcn_last_error());
    GPU = pcn_cuda_backend();
    if (!GPU) return tu_finish("test_gpu");
    const char *missing = pcn_backend_missing(GPU);
    TU_CHECK(!missing, "the CUDA backend has no %s operation", missing);
    quick = !strcmp(what, "quick"); // the ops of both modes, small sizes, no whole runs
    if (!strcmp(what, "ops") || !strcmp(what, "all") || quick) check_ops();
    if (quick) check_disc_ops();
    if (!strcmp(what, "train") || !strcmp(what, "all")) check_runs();
    if (!strcmp(what, "disc") || !strcmp(what, "all")) check_disc_ops(), check_disc_runs();
    return tu_finish("test_gpu");
}
