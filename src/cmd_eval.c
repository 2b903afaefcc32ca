/*
 * cmd_eval.c — `pcn_dist test` and `pcn_dist predict`: a checkpoint's model on a split of a
 * data set, reported as text or JSON (test) or written as predictions (predict); also the
 * test that ends a training run.
 *
 * Every step is collective; a failure is agreed over the ranks and rank 0 prints it once.
 */
#include <math.h>
#include <stdlib.h>

#include "program.h"

// v printed with fmt into buf (32 bytes), or "null" when it is not finite.
static const char *json_value(char *buf, double v, const char *fmt) {
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, fmt, v);
    return buf;
}

// The samples of class i (row i of the confusion matrix).
static int64_t class_samples(const app *a, int i) {
    int64_t n = 0;
    for (int j = 0; j < a->classes; j++) n += a->confusion[(size_t)i * a->classes + j];
    return n;
}

// Per-class accuracy, then the confusion matrix (up to 20 classes). Local (rank 0).
static void print_classes(const app *a) {
    const int K = a->classes;
    printf("per class: accuracy (samples)\n");
    for (int i = 0; i < K; i++) {
        const int64_t n = class_samples(a, i);
        printf("  %3d: %6.2f %% (%lld)\n", i, n ? 100.0 * a->confusion[(size_t)i * K + i] / n : 0.0,
               (long long)n);
    }
    if (K > 20) return;
    printf("confusion (rows: label, columns: prediction)\n      ");
    for (int j = 0; j < K; j++) printf("%6d", j);
    for (int i = 0; i < K; i++) {
        printf("\n  %3d ", i);
        for (int j = 0; j < K; j++) printf("%6lld", (long long)a->confusion[(size_t)i * K + j]);
    }
    printf("\n");
}

// The same as JSON members: per-class accuracy (fractions; null for a class without
// samples) and the matrix. Local (rank 0).
static void json_classes(const app *a) {
    const int K = a->classes;
    printf(",\"per_class_accuracy\":[");
    for (int i = 0; i < K; i++) {
        const int64_t n = class_samples(a, i);
        if (n) printf("%s%.6f", i ? "," : "", (double)a->confusion[(size_t)i * K + i] / n);
        else printf("%snull", i ? "," : "");
    }
    printf("],\"confusion\":[");
    for (int i = 0; i < K; i++) {
        printf("%s[", i ? "," : "");
        for (int j = 0; j < K; j++)
            printf("%s%lld", j ? "," : "", (long long)a->confusion[(size_t)i * K + j]);
        printf("]");
    }
    printf("]");
}

// A score on rank 0: the split's (epoch < 0, with the classes) or an epoch's during
// training (epoch: epochs done; "epoch E test:", one line). Local.
static void print_score(app *a, const pcn_test_result *r, const char *split, int epoch) {
    if (pcn_dist_rank(a->comm) != 0) return;
    char label[48];
    if (epoch < 0) snprintf(label, sizeof label, "%s", split);
    else snprintf(label, sizeof label, "epoch %d %s", epoch, split);
    const bool classes = a->confusion && epoch < 0;
    if (a->cli.json) {
        // JSON has no NaN or Infinity: a non-finite value (a diverged model) is null.
        char acc[32], topk[32], energy[32], mse[32], at[32] = "";
        if (epoch >= 0) snprintf(at, sizeof at, ",\"epoch\":%d", epoch);
        // The names of the metrics file's test record (accuracy and top_k as fractions).
        printf("{\"split\":\"%s\"%s,\"accuracy\":%s,\"top_k\":%s,\"k\":%d,\"energy\":%s,"
               "\"mse\":%s,\"samples\":%lld,\"ranks\":%d,\"seconds\":%.6g", split, at,
               json_value(acc, r->accuracy, "%.6f"), json_value(topk, r->top_k, "%.6f"), r->k,
               json_value(energy, r->energy, "%.8g"), json_value(mse, r->mse, "%.8g"),
               (long long)r->samples, pcn_dist_size(a->comm),
               isfinite(a->test_seconds) ? a->test_seconds : 0.0);
        if (classes) json_classes(a);
        printf("}\n");
    } else if (a->choice.task == PCN_TASK_REGRESSION) {
        printf("%s: mse %.6f | energy %.6f | %lld samples\n", label, r->mse, r->energy,
               (long long)r->samples);
    } else {
        // Percentages for people; --json and the metrics file keep fractions.
        printf("%s: accuracy %.2f %% | top-%d %.2f %% | energy %.6f | %lld samples\n", label,
               100 * r->accuracy, r->k, 100 * r->top_k, r->energy, (long long)r->samples);
        if (classes) print_classes(a);
    }
    fflush(stdout);
}

void cmd_eval_print(app *a, const pcn_test_result *r, const char *split) {
    print_score(a, r, split, -1);
}

void cmd_eval_print_epoch(app *a, const pcn_test_result *r, int epoch) {
    print_score(a, r, "test", epoch);
}

// Scores split with m; with want_yhat, *yhat (malloc'd) receives this rank's rows of
// outputs and *n the split's rows. Collective.
static pcn_status score(app *a, const pcn_model *m, const pcn_train_params *p, const char *split,
                        bool want_yhat, float **yhat, int64_t *n, pcn_test_result *r) {
    pcn_dataset *ds = pcn_io_dataset_open_with(a->comm, a->cli.data, split, &a->data);
    if (!ds) return PCN_EDATA;
    pcn_data d = pcn_io_dataset_source(ds);
    size_t K = (size_t)pcn_model_output_dim(m);
    if (want_yhat && !(*yhat = calloc((size_t)d.n * K, sizeof **yhat))) pcn_fatal("out of memory");
    pcn_train_params q = *p;
    free(a->confusion), a->confusion = NULL;
    if (!want_yhat && p->task == PCN_TASK_CLASSIFICATION) { // test: the classes too
        if (!(a->confusion = calloc(K * K, sizeof *a->confusion))) pcn_fatal("out of memory");
        a->classes = (int)K, q.confusion = a->confusion;
    }
    double t0 = pcn_now();
    pcn_status st = pcn_dist_test(m, &d, &q, r, want_yhat ? *yhat : NULL, a->comm);
    a->test_seconds = pcn_now() - t0;
    if (n) *n = d.n;
    pcn_io_dataset_close(ds);
    return st;
}

pcn_status cmd_eval_split(app *a, const pcn_model *m, const pcn_train_params *p, const char *split,
                      pcn_test_result *r) {
    return score(a, m, p, split, false, NULL, NULL, r);
}

// The settings of test and predict checked: usage errors, agreed. Collective.
static pcn_status check_eval(app *a, const pcn_model *m, bool predict, pcn_train_params *p,
                             pcn_lr_step *steps, int max_steps) {
    const pcn_cli *c = &a->cli;
    pcn_status st = m ? PCN_OK : pcn_set_error(PCN_EINVAL, "--checkpoint is required");
    if (st == PCN_OK && !c->data[0]) st = pcn_set_error(PCN_EINVAL, "--data is required");
    if (st == PCN_OK && predict && !c->output[0])
        st = pcn_set_error(PCN_EINVAL, "--output is required");
    if (st == PCN_OK) st = settings_check(a);
    if (st == PCN_OK) st = settings_to_params(a, p, steps, max_steps);
    if (st == PCN_OK) st = settings_check_direction(a); // e.g. --t-infer-test, discriminative
    if (st == PCN_OK) st = settings_check_outputs(c, false);
    return pcn_dist_agree(a->comm, st);
}

// Writes /yhat (n, K) and /pred (n) to --output atomically (io/predictions.c); rank 0's
// yhat ends up holding every rank's rows. Collective.
static pcn_status write_predictions(app *a, float *yhat, int64_t n, int K) {
    const pcn_cli *c = &a->cli;
    pcn_io_predictions_meta meta = {.checkpoint = c->checkpoint, .data = c->data,
                                    .split = c->split};
    return pcn_io_predictions_write(a->comm, c->output, yhat, n, K, &meta);
}

// test and predict: a checkpoint's model on a split of a data set.
int cmd_eval(app *a, bool predict) {
    pcn_cli *c = &a->cli;
    const char *pos[1];
    pcn_ckpt_info info = {0};
    pcn_model *m = NULL;
    pcn_lr_step steps[256];
    pcn_train_params p;
    float *yhat = NULL;
    int64_t n = 0;
    pcn_test_result r;
    int npos, rc = settings_read(a, false, &info, NULL, &m, pos, 0, &npos);
    if (rc != EXIT_OK) goto done;
    rc = EXIT_USAGE;
    if (check_eval(a, m, predict, &p, steps, 256) != PCN_OK) goto done;
    pcn_status st = device_setup(a, m, &p);
    if (st != PCN_OK) {
        rc = st == PCN_EINVAL ? EXIT_USAGE : EXIT_ERROR;
        goto done;
    }
    rc = EXIT_ERROR;
    if (score(a, m, &p, c->split, predict, &yhat, &n, &r) != PCN_OK) goto done;
    if (predict && write_predictions(a, yhat, n, pcn_model_output_dim(m)) != PCN_OK) goto done;
    if (!predict) cmd_eval_print(a, &r, c->split);
    else if (pcn_dist_rank(a->comm) == 0)
        printf("predictions: %s (%lld rows)\n", c->output, (long long)n);
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) program_fail(a, rc, NULL);
    free(yhat);
    free(a->confusion), a->confusion = NULL;
    pcn_io_ckpt_info_free(&info);
    pcn_model_free(m);
    return rc;
}
