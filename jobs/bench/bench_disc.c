/*
 * bench_disc.c — pcn_bench_disc: how fast libpcn trains a discriminative batch, against
 * the floor of its matrix products, in one run.
 *
 * For one network (--dims, --activation, --bias), batch (--batch rows on this process),
 * T (--t-infer) and thread count (--threads), it measures:
 *   - the engine: seconds per training batch of pcn_train (discriminative mode, forward
 *     latent start, infer momentum 0.1, adamw, train accuracy off), median over
 *     --repeats runs of --batches batches each on synthetic data, after one warm-up run;
 *   - the floor: every matrix product the batch makes (disc.c's and disc_cpu.c's, listed
 *     in floor_products), timed alone with cblas_sgemm on ONE thread, medians summed, and
 *     divided by the thread count: perfect scaling of the one-thread sgemm rate (OpenBLAS
 *     itself does not scale at these sizes, so its own multi-threaded time would be a
 *     floor too easy to beat); and engine / floor.
 * --json prints one line of JSON with the figures (jobs/bench/compare_pcx.py reads it).
 * Products of a batch of R rows, T steps, dims d_0..d_L: the forward pass a_l =
 * x_{l-1} W_l^T (l = 1..L); per step the back products t_l = -d_{l+1} W_{l+1}
 * (l = 1..L-1) and the preactivations a_l (l = 2..L); the weight gradient d_l^T x_{l-1}
 * (l = 1..L) and, with biases, ones^T d_l.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcn.h"

void openblas_set_num_threads(int);

#define MAXP (4 * (PCN_MAX_LAYERS + 1))

typedef struct {
    int ta, tb, m, n, k, count; // a product and how many times a batch makes it
} product;

typedef struct {
    int dims[PCN_MAX_LAYERS + 1], n_dims, batch, t_infer, threads, batches, repeats;
    pcn_activation act;
    bool bias, json;
} options;

static void usage(void) {
    fprintf(stderr, "usage: pcn_bench_disc [--dims 784,128,128,128,10] [--batch 128] "
            "[--t-infer 5]\n  [--activation gelu] [--bias 0|1] [--threads N] [--batches 40] "
            "[--repeats 5] [--json]\n  --threads N: OpenBLAS threads (set OMP_NUM_THREADS=N "
            "too); the floor is the one-thread sgemm time / N\n");
    exit(2);
}

static void parse(int argc, char **argv, options *o) {
    *o = (options){{784, 128, 128, 128, 10}, 5, 128, 5, 0, 40, 5, PCN_ACT_GELU, true, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { o->json = true; continue; }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--dims")) {
            o->n_dims = 0;
            for (char *s = (char *)v; *s && o->n_dims <= PCN_MAX_LAYERS; s += *s == ',')
                o->dims[o->n_dims++] = (int)strtol(s, &s, 10);
        } else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--t-infer")) o->t_infer = atoi(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--batches")) o->batches = atoi(v);
        else if (!strcmp(a, "--repeats")) o->repeats = atoi(v);
        else if (!strcmp(a, "--bias")) o->bias = atoi(v) != 0;
        else if (!strcmp(a, "--activation")) {
            if (pcn_activation_from_name(v, &o->act) != PCN_OK) usage();
        } else usage();
    }
    if (o->n_dims < 2 || o->batch < 1 || o->t_infer < 1 || o->batches < 1 || o->repeats < 1)
        usage();
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ----------------------------------------------------------------------------------------
// The floor
// ----------------------------------------------------------------------------------------

static int floor_products(const options *o, product *p) {
    const int L = o->n_dims - 1, R = o->batch, T = o->t_infer, *d = o->dims;
    int n = 0;
    for (int l = 1; l <= L; l++) p[n++] = (product){0, 1, R, d[l], d[l - 1], 1};
    for (int l = 1; l < L; l++) p[n++] = (product){0, 0, R, d[l], d[l + 1], T};
    for (int l = 2; l <= L; l++) p[n++] = (product){0, 1, R, d[l], d[l - 1], T};
    for (int l = 1; l <= L; l++) {
        p[n++] = (product){1, 0, d[l], d[l - 1], R, 1};
        if (o->bias) p[n++] = (product){1, 0, 1, d[l], R, 1};
    }
    return n;
}

static double time_product(const product *p, float *a, float *b, float *c, int repeats) {
    double t[64];
    repeats = repeats > 64 ? 64 : repeats;
    for (int r = -1; r < repeats; r++) {
        double t0 = pcn_now();
        for (int k = 0; k < 20; k++)
            cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                        p->tb ? CblasTrans : CblasNoTrans, p->m, p->n, p->k, 1.0f, a,
                        p->ta ? p->m : p->k, b, p->tb ? p->k : p->n, 0.0f, c, p->n);
        if (r >= 0) t[r] = (pcn_now() - t0) / 20;
    }
    return median(t, repeats);
}

static double floor_seconds(const options *o, double *flops) {
    product p[MAXP];
    const int n = floor_products(o, p);
    size_t big = 1;
    for (int i = 0; i < n; i++) {
        size_t s[3] = {(size_t)p[i].m * p[i].k, (size_t)p[i].k * p[i].n, (size_t)p[i].m * p[i].n};
        for (int j = 0; j < 3; j++) big = s[j] > big ? s[j] : big;
    }
    float *a = calloc(big, sizeof *a), *b = calloc(big, sizeof *b), *c = calloc(big, sizeof *c);
    for (size_t i = 0; i < big; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    double total = 0.0;
    *flops = 0.0;
    for (int i = 0; i < n; i++) {
        total += p[i].count * time_product(&p[i], a, b, c, o->repeats);
        *flops += 2.0 * p[i].count * p[i].m * p[i].n * p[i].k;
    }
    free(a), free(b), free(c);
    return total;
}

// ----------------------------------------------------------------------------------------
// The engine
// ----------------------------------------------------------------------------------------

static double engine_seconds(const options *o) {
    const int D = o->dims[0], K = o->dims[o->n_dims - 1];
    const int64_t N = (int64_t)o->batch * o->batches;
    float *x = malloc((size_t)N * D * sizeof *x);
    int32_t *y = malloc((size_t)N * sizeof *y);
    for (int64_t i = 0; i < N * D; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int64_t i = 0; i < N; i++) y[i] = (int32_t)(i % K);
    pcn_arrays arr = {x, y, NULL, N, D, 0};
    pcn_data data = pcn_data_from_arrays(&arr);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = o->dims, mp.n_dims = o->n_dims, mp.activation = o->act, mp.bias = o->bias;
    mp.direction = PCN_DIR_DISCRIMINATIVE;
    pcn_train_params tp = pcn_train_default_params();
    tp.t_infer = o->t_infer, tp.lr_infer = 0.026, tp.infer_momentum = 0.1;
    tp.optimizer = PCN_OPT_ADAMW, tp.lr_learn = 3e-4, tp.weight_decay = 1e-3;
    tp.batch_size = o->batch, tp.num_epochs = 1, tp.train_accuracy_every = 0;
    double t[64];
    const int repeats = o->repeats > 64 ? 64 : o->repeats;
    for (int r = -1; r < repeats; r++) {
        pcn_model *m = pcn_model_init(&mp);
        if (!m) {
            fprintf(stderr, "pcn_bench_disc: %s\n", pcn_last_error());
            exit(1);
        }
        double t0 = pcn_now();
        pcn_status st = pcn_train(m, &data, &tp, NULL);
        if (r >= 0) t[r] = (pcn_now() - t0) / o->batches;
        pcn_model_free(m);
        if (st != PCN_OK) {
            fprintf(stderr, "pcn_bench_disc: %s\n", pcn_last_error());
            exit(1);
        }
    }
    free(x), free(y);
    return median(t, repeats);
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    openblas_set_num_threads(1);
    double flops, floor = floor_seconds(&o, &flops) / (o.threads > 0 ? o.threads : 1);
    if (o.threads > 0) openblas_set_num_threads(o.threads);
    double engine = engine_seconds(&o);
    if (o.json) {
        printf("{\"batch\":%d,\"t_infer\":%d,\"threads\":%d,\"engine_batch_seconds\":%.6e,"
               "\"floor_batch_seconds\":%.6e,\"flops\":%.0f,\"engine_over_floor\":%.3f}\n",
               o.batch, o.t_infer, o.threads, engine, floor, flops, engine / floor);
        return 0;
    }
    printf("discriminative batch of %d rows, T = %d, %d threads: engine %.3f ms, sgemm floor "
           "%.3f ms (%.1f MFLOP at %.1f GFLOP/s), engine / floor %.2f\n", o.batch, o.t_infer,
           o.threads, 1e3 * engine, 1e3 * floor, 1e-6 * flops, 1e-9 * flops / floor,
           engine / floor);
    return 0;
}
