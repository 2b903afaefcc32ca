/*
 * test_train.c — the training loop's contract beyond the golden fixtures.
 *
 * Proves: callbacks fire with pcn-torch's counts (train/epoch/batch hooks, T_infer inference
 * steps and T_learn — default the batch's own size — learning steps per batch, the last
 * partial batch kept); history lengths (per-batch, per-epoch, step energies only when
 * asked, train accuracy every N batches or off); Philox latents depend only on the global
 * row (so a slice of a batch draws what the whole batch draws for those rows) and are
 * N(0,1); runs are deterministic per seed; the progress display prints one plain line per
 * epoch off a terminal and a live bar on one; and training learns: a separable synthetic
 * problem reaches high test accuracy, top-k >= top-1, and regression MSE drops; a run
 * stopped by the batch hook and resumed from its position is bitwise identical; the
 * large-batch learning-rate rules (linear and square-root scaling, warm-up) do what they
 * say.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct {
    int train_start, epoch_start, batch_start, infer, learn, batch_end, epoch_end, lr, train_end;
    int learn_in_batch[64];
} counts;

static void c_ts(void *u, const pcn_train_params *p, const pcn_history *h) { (void)p, (void)h; ((counts *)u)->train_start++; }
static void c_es(void *u, int e, int n) { (void)e, (void)n; ((counts *)u)->epoch_start++; }
static void c_bs(void *u, int b, int n) { (void)b, (void)n; ((counts *)u)->batch_start++; }
static void c_in(void *u, int s, double e) { (void)s, (void)e; ((counts *)u)->infer++; }
static void c_le(void *u, int s, double e) {
    (void)s, (void)e;
    counts *c = u;
    c->learn++;
    c->learn_in_batch[c->batch_start - 1]++;
}
static void c_be(void *u, int b, double e, double p) { (void)b, (void)e, (void)p; ((counts *)u)->batch_end++; }
static void c_ee(void *u, int e, const pcn_history *h) { (void)e, (void)h; ((counts *)u)->epoch_end++; }
static void c_lr(void *u, double a, double b) { (void)a, (void)b; ((counts *)u)->lr++; }
static void c_te(void *u, const pcn_history *h) { (void)h; ((counts *)u)->train_end++; }

// ---- a synthetic, learnable problem: K Gaussian blobs in D dimensions ----------------------

enum { D = 16, K = 3 };

typedef struct {
    float *x;
    int32_t *lab;
    float *tgt;
    int64_t n;
} blobs;

static blobs make_blobs(int64_t n, uint64_t seed) {
    blobs b = {malloc((size_t)n * D * sizeof(float)), malloc((size_t)n * sizeof(int32_t)),
               malloc((size_t)n * K * sizeof(float)), n};
    srand((unsigned)seed);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % K);
        b.lab[i] = c;
        for (int j = 0; j < D; j++) {
            double centre = (j % K == c) ? 1.0 : 0.0;
            b.x[i * D + j] = (float)(centre + 0.15 * ((rand() / (double)RAND_MAX) - 0.5));
        }
        for (int k = 0; k < K; k++) b.tgt[i * K + k] = (float)(0.5 * b.x[i * D + k] - 0.25);
    }
    return b;
}

static void free_blobs(blobs *b) { free(b->x), free(b->lab), free(b->tgt); }

static pcn_model *make_model(pcn_task task, uint64_t seed) {
    int dims[] = {D, 12, 8};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.mode = task, mp.seed = seed;
    mp.activation = PCN_ACT_TANH;
    return pcn_model_init(&mp);
}

// ---- tests --------------------------------------------------------------------------------

static void test_counts(void) {
    blobs b = make_blobs(23, 1);
    pcn_arrays a = {b.x, b.lab, NULL, b.n, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *m = make_model(PCN_TASK_CLASSIFICATION, 3);
    counts c = {0};
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 4, p.t_infer_test = 5, p.num_epochs = 3, p.batch_size = 10;
    p.callbacks = (pcn_callbacks){&c, c_ts, c_es, c_bs, c_in, c_le, c_be, c_ee, c_lr, c_te};
    pcn_history *h = pcn_history_init();
    TU_CHECK(pcn_train(m, &data, &p, h) == PCN_OK, "train: %s", pcn_last_error());
    const int nb = 3; // 10, 10, 3: the last partial batch is kept
    TU_CHECK(c.train_start == 1 && c.train_end == 1, "train start/end %d/%d", c.train_start, c.train_end);
    TU_CHECK(c.epoch_start == 3 && c.epoch_end == 3, "epoch hooks %d/%d", c.epoch_start, c.epoch_end);
    TU_CHECK(c.batch_start == 3 * nb && c.batch_end == 3 * nb, "batch hooks %d/%d", c.batch_start, c.batch_end);
    TU_CHECK(c.infer == 3 * nb * 4, "inference steps %d", c.infer);
    TU_CHECK(c.learn == 3 * (10 + 10 + 3), "learning steps %d (T_learn = batch size)", c.learn);
    TU_CHECK(c.learn_in_batch[2] == 3 && c.learn_in_batch[0] == 10, "per-batch learning %d %d",
             c.learn_in_batch[0], c.learn_in_batch[2]);
    TU_CHECK(c.lr == 0, "lr hook fired %d times with no schedule", c.lr);
    TU_CHECK(pcn_history_len(h, PCN_HIST_PER_BATCH) == 9 &&
                 pcn_history_len(h, PCN_HIST_PER_BATCH_PRE_LEARN) == 9 &&
                 pcn_history_len(h, PCN_HIST_PER_EPOCH) == 3 &&
                 pcn_history_len(h, PCN_HIST_PER_EPOCH_PRE_LEARN) == 3 &&
                 pcn_history_len(h, PCN_HIST_TRAIN_LOSS) == 3 &&
                 pcn_history_len(h, PCN_HIST_TRAIN_ACCURACY) == 3 &&
                 pcn_history_len(h, PCN_HIST_LR_PER_EPOCH) == 3 &&
                 pcn_history_len(h, PCN_HIST_TEST_LOSS) == 0,
             "history lengths");
    TU_CHECK(pcn_history_len(h, PCN_HIST_STEP_INFER) == 0, "step energies kept unasked");

    // Step energies when asked; train accuracy off.
    pcn_history_clear(h);
    p.keep_step_energies = true, p.train_accuracy_every = 0, p.t_learn = 2, p.num_epochs = 1;
    p.callbacks = (pcn_callbacks){0};
    TU_CHECK(pcn_train(m, &data, &p, h) == PCN_OK, "train: %s", pcn_last_error());
    TU_CHECK(pcn_history_len(h, PCN_HIST_STEP_INFER) == (size_t)nb * 4, "step_infer %zu",
             pcn_history_len(h, PCN_HIST_STEP_INFER));
    TU_CHECK(pcn_history_len(h, PCN_HIST_STEP_LEARN) == (size_t)nb * 2, "step_learn %zu",
             pcn_history_len(h, PCN_HIST_STEP_LEARN));
    TU_CHECK(pcn_history_len(h, PCN_HIST_TRAIN_ACCURACY) == 0, "train accuracy while off");
    pcn_history_free(h);
    pcn_model_free(m);
    free_blobs(&b);
}

static void test_latents(void) {
    pcn_model *m = make_model(PCN_TASK_CLASSIFICATION, 0);
    pcn_state *whole = pcn_state_init(m, 8), *part = pcn_state_init(m, 3);
    pcn_state_set_batch(whole, 8);
    pcn_state_set_batch(part, 3);
    pcn_latent_key k = {42, PCN_STREAM_TRAIN, 5, 100};
    pcn_init_latents(whole, &k);
    k.first_row = 104; // rows 4..6 of the whole batch
    pcn_init_latents(part, &k);
    for (int l = 1; l <= 2; l++) {
        int d = pcn_model_dim(m, l);
        tu_close_f("slice latents", pcn_state_latent(part, l), pcn_state_latent(whole, l) + 4 * d,
                   (size_t)3 * d, 0, 0);
    }
    // Another stream or epoch draws other values.
    float first = pcn_state_latent(part, 1)[0];
    k.stream = PCN_STREAM_TEST;
    pcn_init_latents(part, &k);
    TU_CHECK(pcn_state_latent(part, 1)[0] != first, "stream does not change the draw");
    pcn_state_free(whole);
    pcn_state_free(part);
    // Moments of N(0,1) over 64k draws.
    int dims[] = {2, 1024};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 2;
    pcn_model *big = pcn_model_init(&mp);
    pcn_state *s = pcn_state_init(big, 64);
    pcn_latent_key kk = {7, PCN_STREAM_USER, 0, 0};
    pcn_init_latents(s, &kk);
    const float *x = pcn_state_latent(s, 1);
    double mean = 0, var = 0, n = 64.0 * 1024;
    for (int i = 0; i < 64 * 1024; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < 64 * 1024; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    TU_CHECK(fabs(mean) < 0.02 && fabs(var - 1.0) < 0.02, "latent moments mean %g var %g", mean, var);
    pcn_state_free(s);
    pcn_model_free(big);
    pcn_model_free(m);
}

static void test_learns(void) {
    blobs tr = make_blobs(300, 11), te = make_blobs(90, 12);
    pcn_arrays a = {tr.x, tr.lab, NULL, tr.n, D, 0}, at = {te.x, te.lab, NULL, te.n, D, 0};
    pcn_data train = pcn_data_from_arrays(&a), test = pcn_data_from_arrays(&at);
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 20, p.t_infer_test = 100, p.num_epochs = 3, p.batch_size = 30, p.lr_infer = 0.1;
    p.lr_learn = 0.05, p.train_accuracy_every = 0, p.seed = 9;
    pcn_model *m = make_model(PCN_TASK_CLASSIFICATION, 5);
    pcn_test_result before, after;
    TU_CHECK(pcn_test(m, &test, &p, &before, NULL) == PCN_OK, "test: %s", pcn_last_error());
    pcn_history *h = pcn_history_init();
    TU_CHECK(pcn_train(m, &train, &p, h) == PCN_OK, "train: %s", pcn_last_error());
    TU_CHECK(pcn_test(m, &test, &p, &after, NULL) == PCN_OK, "test: %s", pcn_last_error());
    printf("classification: accuracy %.3f -> %.3f, top-%d %.3f, energy %.4f\n", before.accuracy,
           after.accuracy, after.k, after.top_k, after.energy);
    TU_CHECK(after.accuracy >= 0.9, "test accuracy %.3f after training", after.accuracy);
    TU_CHECK(after.top_k >= after.accuracy && after.samples == 90, "top-k %g samples %lld",
             after.top_k, (long long)after.samples);
    const double *pe = pcn_history_data(h, PCN_HIST_PER_EPOCH);
    TU_CHECK(pe[2] < pe[0], "epoch energy did not fall: %g -> %g", pe[0], pe[2]);

    // Determinism: the same seeds give bitwise the same weights.
    pcn_model *m2 = make_model(PCN_TASK_CLASSIFICATION, 5);
    TU_CHECK(pcn_train(m2, &train, &p, NULL) == PCN_OK, "train: %s", pcn_last_error());
    TU_CHECK(memcmp(pcn_model_weights(m), pcn_model_weights(m2),
                    pcn_model_num_weights(m) * sizeof(float)) == 0, "same seed, other weights");
    pcn_model *m3 = make_model(PCN_TASK_CLASSIFICATION, 5);
    p.seed = 10;
    TU_CHECK(pcn_train(m3, &train, &p, NULL) == PCN_OK, "train: %s", pcn_last_error());
    TU_CHECK(memcmp(pcn_model_weights(m), pcn_model_weights(m3),
                    pcn_model_num_weights(m) * sizeof(float)) != 0, "other seed, same weights");

    // Regression: MSE falls.
    pcn_arrays ar = {tr.x, NULL, tr.tgt, tr.n, D, K}, art = {te.x, NULL, te.tgt, te.n, D, K};
    pcn_data rtrain = pcn_data_from_arrays(&ar), rtest = pcn_data_from_arrays(&art);
    p.task = PCN_TASK_REGRESSION, p.lr_learn = 0.02;
    pcn_model *mr = make_model(PCN_TASK_REGRESSION, 6);
    pcn_test_result r0, r1;
    pcn_test(mr, &rtest, &p, &r0, NULL);
    TU_CHECK(pcn_train(mr, &rtrain, &p, NULL) == PCN_OK, "train: %s", pcn_last_error());
    pcn_test(mr, &rtest, &p, &r1, NULL);
    printf("regression: mse %.4f -> %.4f\n", r0.mse, r1.mse);
    TU_CHECK(r1.mse < 0.5 * r0.mse, "regression mse %g -> %g", r0.mse, r1.mse);
    pcn_history_free(h);
    pcn_model_free(m), pcn_model_free(m2), pcn_model_free(m3), pcn_model_free(mr);
    free_blobs(&tr), free_blobs(&te);
}

static char *capture_progress(int live) {
    blobs b = make_blobs(20, 2);
    pcn_arrays a = {b.x, b.lab, NULL, b.n, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model *m = make_model(PCN_TASK_CLASSIFICATION, 1);
    static const pcn_lr_step steps[] = {{1, 0, 0.001}};
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 2, p.t_infer_test = 2, p.t_learn = 1, p.num_epochs = 2, p.batch_size = 7;
    p.lr_schedule = PCN_LR_STEPS, p.lr_steps = steps, p.n_lr_steps = 1;
    FILE *out = tmpfile();
    pcn_progress *pr = pcn_progress_init(out, "cpu");
    pcn_progress_set_mode(pr, live);
    p.callbacks = pcn_progress_callbacks(pr);
    TU_CHECK(pcn_train(m, &data, &p, NULL) == PCN_OK, "train: %s", pcn_last_error());
    long len = ftell(out);
    char *text = calloc((size_t)len + 1, 1);
    rewind(out);
    TU_CHECK(fread(text, 1, (size_t)len, out) == (size_t)len, "read back progress");
    fclose(out);
    pcn_progress_free(pr);
    pcn_model_free(m);
    free_blobs(&b);
    return text;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_progress(void) {
    char *plain = capture_progress(0);
    TU_CHECK(strstr(plain, "PCN Training | device=cpu | task=classification | T_infer=2 | epochs=2"),
             "header missing:\n%s", plain);
    TU_CHECK(count(plain, "  Epoch ") == 2 && count(plain, "\r") == 0, "plain epoch lines:\n%s", plain);
    TU_CHECK(strstr(plain, "LR reduced: 0.005000 -> 0.001000") && strstr(plain, "Training complete."),
             "lr line or summary missing:\n%s", plain);
    char *live = capture_progress(1);
    TU_CHECK(count(live, "\r") >= 6 && strstr(live, "[##########") && strstr(live, "3/3"),
             "live bar missing:\n%s", live);
    free(plain);
    free(live);
}

// ---- stop and resume ----------------------------------------------------------------------

typedef struct {
    int stop_after, seen;
    pcn_train_position at;
} stopper;

static pcn_status stop_hook(void *u, pcn_model *m, const pcn_history *h,
                            const pcn_train_position *next, bool *stop) {
    (void)m, (void)h;
    stopper *s = u;
    if (++s->seen == s->stop_after) {
        s->at = *next;
        *stop = true;
    }
    return PCN_OK;
}

// A run stopped after k batches and resumed from (weights, history, position) ends bitwise
// identical to an unbroken run, for a stop mid-epoch and one at an epoch's end.
static void test_resume(int stop_after) {
    blobs b = make_blobs(37, 4);
    pcn_arrays a = {b.x, b.lab, NULL, b.n, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 6, p.t_infer_test = 8, p.num_epochs = 3, p.batch_size = 10, p.seed = 3;
    p.lr_schedule = PCN_LR_PLATEAU, p.lr_learn = 0.2, p.keep_step_energies = true;
    pcn_model *whole = make_model(PCN_TASK_CLASSIFICATION, 8), *part = make_model(PCN_TASK_CLASSIFICATION, 8);
    pcn_history *hw = pcn_history_init(), *hp = pcn_history_init();
    TU_CHECK(pcn_train(whole, &data, &p, hw) == PCN_OK, "unbroken: %s", pcn_last_error());
    stopper s = {stop_after, 0, {0}};
    p.batch_hook = stop_hook, p.batch_hook_user = &s;
    TU_CHECK(pcn_train(part, &data, &p, hp) == PCN_STOPPED, "stop: %s", pcn_last_error());
    p.batch_hook = NULL, p.resume = &s.at;
    TU_CHECK(pcn_train(part, &data, &p, hp) == PCN_OK, "resume: %s", pcn_last_error());
    TU_CHECK(memcmp(pcn_model_weights(whole), pcn_model_weights(part),
                    pcn_model_num_weights(whole) * sizeof(float)) == 0,
             "resumed after %d batches: weights differ from the unbroken run", stop_after);
    for (int k = 0; k < PCN_HIST_COUNT; k++) {
        size_t n = pcn_history_len(hw, (pcn_history_series)k);
        TU_CHECK(n == pcn_history_len(hp, (pcn_history_series)k) &&
                     (n == 0 || memcmp(pcn_history_data(hw, (pcn_history_series)k),
                                       pcn_history_data(hp, (pcn_history_series)k), n * sizeof(double)) == 0),
                 "resumed after %d batches: history %s differs", stop_after,
                 pcn_history_series_name((pcn_history_series)k));
    }
    pcn_train_position bad = s.at;
    bad.batch = 99;
    p.resume = &bad;
    TU_CHECK(pcn_train(part, &data, &p, hp) == PCN_EINVAL && strstr(pcn_last_error(), "batch 99"),
             "bad resume position accepted: %s", pcn_last_error());
    pcn_history_free(hw), pcn_history_free(hp);
    pcn_model_free(whole), pcn_model_free(part);
    free_blobs(&b);
}

// ---- large-batch rules ----------------------------------------------------------------------

static pcn_model *train_with(pcn_train_params p, const pcn_data *data) {
    pcn_model *m = make_model(PCN_TASK_CLASSIFICATION, 6);
    TU_CHECK(pcn_train(m, data, &p, NULL) == PCN_OK, "train: %s", pcn_last_error());
    return m;
}

static void same_weights(const char *what, pcn_model *a, pcn_model *b, double rtol) {
    tu_close_f(what, pcn_model_weights(a), pcn_model_weights(b), pcn_model_num_weights(a),
               rtol > 0 ? 1e-7 : 0.0, rtol);
    pcn_model_free(a), pcn_model_free(b);
}

// Linear and square-root scaling multiply lr_learn by B/ref and sqrt(B/ref); warm-up over
// N batches equals a manual step list lr (k+1)/N for k < N (across epochs too).
static void test_lr_rules(void) {
    blobs b = make_blobs(40, 5);
    pcn_arrays a = {b.x, b.lab, NULL, b.n, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 5, p.t_learn = 4, p.t_infer_test = 5, p.num_epochs = 2, p.batch_size = 20;
    p.lr_learn = 0.05, p.train_accuracy_every = 0, p.seed = 1;
    pcn_train_params q = p;
    q.lr_learn = 0.1; // 0.05 x 20/10, 0.05 x sqrt(40/10)
    pcn_train_params lin = p;
    lin.lr_scaling = PCN_LR_SCALE_LINEAR, lin.lr_ref_batch = 10;
    same_weights("linear scaling", train_with(lin, &data), train_with(q, &data), 0);
    pcn_train_params sq = p;
    sq.lr_scaling = PCN_LR_SCALE_SQRT, sq.lr_ref_batch = 5;
    same_weights("sqrt scaling", train_with(sq, &data), train_with(q, &data), 0);
    pcn_train_params warm = p;
    warm.lr_warmup_batches = 3; // batches 0, 1 of epoch 0 and batch 0 of epoch 1
    static const pcn_lr_step steps[] = {{0, 0, 0.05 / 3}, {0, 1, 0.1 / 3}, {1, 0, 0.05}};
    pcn_train_params manual = p;
    manual.lr_schedule = PCN_LR_STEPS, manual.lr_steps = steps, manual.n_lr_steps = 3;
    same_weights("warm-up", train_with(warm, &data), train_with(manual, &data), 1e-5);
    pcn_train_params bad = p;
    bad.lr_scaling = PCN_LR_SCALE_LINEAR;
    TU_CHECK(pcn_train_params_validate(&bad) == PCN_EINVAL && strstr(pcn_last_error(), "lr_ref_batch"),
             "scaling without a reference batch accepted");
    bad = p, bad.lr_warmup_batches = -1;
    TU_CHECK(pcn_train_params_validate(&bad) == PCN_EINVAL && strstr(pcn_last_error(), "lr_warmup"),
             "negative warm-up accepted");
    free_blobs(&b);
}

int main(void) {
    test_lr_rules();
    test_resume(2);   // mid-epoch (4 batches per epoch)
    test_resume(4);   // right after an epoch's end
    test_resume(6);   // mid-epoch of the second epoch
    test_counts();
    test_latents();
    test_learns();
    test_progress();
    return tu_finish("test_train");
}
