/*
 * bench_engine.c — pcn_bench: how fast libpcn's steps run, and how far from the sgemm floor.
 *
 * For one network config, in one run, it measures:
 *   - seconds per step, median over --repeats after --warmup, of the public entry points:
 *     supervised inference (pcn_inference_step with a target), free inference (no target:
 *     the steps of pcn-torch's train accuracy) and learning (pcn_learning_step); and of
 *     the supervised inference step as the trainer runs it (pcn_inference_steps: on a CPU
 *     the row path, the OpenMP threads splitting the rows, products against weights
 *     packed once per phase; ROW_STEPS steps per timed repeat, one phase);
 *   - each step's GFLOP/s, counting the flops of the matrix products state.c really does
 *     (step_products below mirrors pcn_step_errors / pcn_step_gradient), next to the
 *     4*B*P figure of DESIGN.md's cost model;
 *   - the floor: cblas_sgemm alone, timed on each product shape of the step (same
 *     transposes, alpha and beta), the medians summed per step; and step time / floor;
 *   - the predicted time of one training batch, T_infer supervised + T_learn learning +
 *     T_acc free steps, with pcn-torch's defaults T_learn = B and T_acc = 10 * T_infer;
 *   - with --phase, whole learning phases of T_learn steps (--t-learn, default B) as the
 *     trainer runs them, per-step and automatic path, each against the floor of its own
 *     products (print_phase).
 * Invariants: nothing is allocated inside a timed loop; all times are CLOCK_MONOTONIC.
 * The input x is uniform in [0, 1], y is one-hot, the latents come from pcn_init_latents.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pcn.h"

// OpenBLAS extensions (declared here so that any cblas.h will do).
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

#define MAX_DIMS (PCN_MAX_LAYERS + 1)
#define MAX_PRODUCTS (2 * MAX_DIMS)  // 2L + 2 at most
#define LR_INFER 0.05f               // pcn-torch defaults
#define LR_LEARN 0.005f

// ----------------------------------------------------------------------------------------
// Options
// ----------------------------------------------------------------------------------------

typedef struct {
    int dims[MAX_DIMS];
    int n_dims;
    int output_dim;        // K; 0 means dL
    int batch;             // B
    pcn_activation act;
    int repeats, warmup;
    int threads;           // 0: leave OpenMP and OpenBLAS as they start
    int t_infer;           // supervised inference steps per batch (prediction only)
    int t_learn;           // --phase: learning steps per batch; 0 means B
    bool json;
    bool phase;            // also time whole learning phases: per-step vs batch space
} options;

static const char *USAGE =
    "usage: pcn_bench [options]\n"
    "Times libpcn's inference and learning steps against the sgemm floor.\n"
    "  --dims D0,D1,...,DL   layer widths, input first (default 3072,1000,500,10)\n"
    "  --output-dim K        readout outputs (default dL)\n"
    "  --batch B             rows per step (default 500)\n"
    "  --activation NAME     relu, tanh, sigmoid or identity (default relu)\n"
    "  --repeats N           timed repeats, the median is reported (default 20)\n"
    "  --warmup N            untimed repeats first (default 3)\n"
    "  --threads N           OpenMP and OpenBLAS threads (default: as they start)\n"
    "  --t-infer N           T_infer of the batch prediction (default 50, pcn-torch)\n"
    "  --json                one JSON line instead of the table\n"
    "  --phase               also time one whole learning phase on the per-step path\n"
    "                        and on the automatic (batch-space) path\n"
    "  --t-learn N           T_learn of that phase (default B, pcn-torch)\n"
    "  --help                this text\n";

static _Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pcn_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    exit(2);
}

static int parse_int(const char *opt, const char *s, int min) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || *s == '\0' || *end != '\0' || v < min || v > 1000000000)
        die("%s needs an integer >= %d, got '%s'", opt, min, s ? s : "");
    return (int)v;
}

static int parse_dims(const char *s, int *dims) {
    if (!s) die("--dims needs a list such as 784,256,10");
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAX_DIMS) die("--dims: at most %d entries", MAX_DIMS);
        dims[n++] = parse_int("--dims", tok, 1);
    }
    if (n < 2) die("--dims needs at least 2 entries, got '%s'", s);
    return n;
}

static options parse_options(int argc, char **argv) {
    options o = {.dims = {3072, 1000, 500, 10}, .n_dims = 4, .batch = 500,
                 .act = PCN_ACT_RELU, .repeats = 20, .warmup = 3, .t_infer = 50};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (!strcmp(a, "--json")) o.json = true, takes = false;
        else if (!strcmp(a, "--phase")) o.phase = true, takes = false;
        else if (!strcmp(a, "--dims")) o.n_dims = parse_dims(v, o.dims);
        else if (!strcmp(a, "--output-dim")) o.output_dim = parse_int(a, v, 1);
        else if (!strcmp(a, "--batch")) o.batch = parse_int(a, v, 1);
        else if (!strcmp(a, "--repeats")) o.repeats = parse_int(a, v, 1);
        else if (!strcmp(a, "--warmup")) o.warmup = parse_int(a, v, 0);
        else if (!strcmp(a, "--threads")) o.threads = parse_int(a, v, 1);
        else if (!strcmp(a, "--t-infer")) o.t_infer = parse_int(a, v, 1);
        else if (!strcmp(a, "--t-learn")) o.t_learn = parse_int(a, v, 1);
        else if (!strcmp(a, "--activation")) {
            if (!v || pcn_activation_from_name(v, &o.act) != PCN_OK) die("%s", pcn_last_error());
        } else die("unknown option '%s' (see --help)", a);
        i += takes;
    }
    if (o.output_dim == 0) o.output_dim = o.dims[o.n_dims - 1];
    if (o.t_learn == 0) o.t_learn = o.batch;
    return o;
}

// ----------------------------------------------------------------------------------------
// The matrix products of one step, as state.c issues them (row-major cblas_sgemm)
// ----------------------------------------------------------------------------------------

typedef enum { STEP_SUPERVISED, STEP_FREE, STEP_LEARN, STEP_ROWS, STEP_COUNT } step_kind;

static const char *STEP_NAMES[STEP_COUNT] = {"inference (sup)", "inference (free)", "learning",
                                             "inference (rows)"};
static const char *STEP_KEYS[STEP_COUNT] = {"infer_sup", "infer_free", "learn", "infer_rows"};
#define ROW_STEPS 10 // row-path steps per timed repeat

typedef struct {
    char what[16];     // which product: A[l], Yhat, E[L], HW[l], G[l], Gout
    bool ta, tb;       // op(A) = A^T, op(B) = B^T
    int m, n, k;       // C (m, n) = alpha op(A) (m, k) op(B) (k, n) + beta C
    float alpha, beta;
    double seconds;    // floor: median time of this product alone
} product;

static int add(product *p, int i, const char *what, int l, bool ta, bool tb, int m, int n,
               int k, float alpha, float beta) {
    p[i] = (product){.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta};
    if (l >= 0) snprintf(p[i].what, sizeof p[i].what, "%s[%d]", what, l);
    else snprintf(p[i].what, sizeof p[i].what, "%s", what);
    return i + 1;
}

// Fills p with the products of one step of this kind; returns how many.
static int step_products(const int *d, int L, int K, int B, step_kind kind, product *p) {
    int n = 0;
    for (int l = 0; l < L; l++) // A[l] = X[l+1] W[l]^T
        n = add(p, n, "A", l, false, true, B, d[l], d[l + 1], 1.0f, 0.0f);
    if (kind == STEP_ROWS) kind = STEP_SUPERVISED; // the same products, split by rows
    if (kind != STEP_FREE) // Yhat = X[L] Wout^T
        n = add(p, n, "Yhat", -1, false, true, B, K, d[L], 1.0f, 0.0f);
    if (kind == STEP_SUPERVISED) // E[L] = Esup Wout
        n = add(p, n, "E[L]", -1, false, false, B, d[L], K, 1.0f, 0.0f);
    if (kind != STEP_LEARN)
        for (int l = 1; l <= L; l++) // X[l] += lr H[l-1] W[l-1]
            n = add(p, n, "HW", l, false, false, B, d[l], d[l - 1], LR_INFER, 1.0f);
    if (kind == STEP_LEARN) {
        for (int l = 0; l < L; l++) // G[l] = H[l]^T X[l+1]
            n = add(p, n, "G", l, true, false, d[l], d[l + 1], B, 1.0f, 0.0f);
        n = add(p, n, "Gout", -1, true, false, K, d[L], B, -1.0f, 0.0f); // -Esup^T X[L]
    }
    return n;
}

static double product_flops(const product *p) { return 2.0 * p->m * p->n * p->k; }

static double products_flops(const product *p, int n) {
    double f = 0.0;
    for (int i = 0; i < n; i++) f += product_flops(&p[i]);
    return f;
}

// ----------------------------------------------------------------------------------------
// Timing
// ----------------------------------------------------------------------------------------

typedef void (*work_fn)(void *ctx);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double median, min, max; // seconds
} timing;

// Runs fn warmup times untimed, then repeats times, each timed alone. times must hold
// repeats values.
static timing time_repeats(work_fn fn, void *ctx, int warmup, int repeats, double *times) {
    for (int i = 0; i < warmup; i++) fn(ctx);
    for (int i = 0; i < repeats; i++) {
        double t0 = now();
        fn(ctx);
        times[i] = now() - t0;
    }
    qsort(times, (size_t)repeats, sizeof *times, cmp_double);
    double median = repeats % 2 ? times[repeats / 2]
                                : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
    return (timing){median, times[0], times[repeats - 1]};
}

// ----------------------------------------------------------------------------------------
// The engine's steps
// ----------------------------------------------------------------------------------------

typedef struct {
    pcn_model *model;
    pcn_state *state;
    float *x, *y;      // (B, d0) in [0, 1]; (B, K) one-hot
    double energy;     // energy returned by the last step
} engine;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform01(uint64_t *s) { return (float)(splitmix64(s) >> 40) * 0x1.0p-24f; }

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static engine engine_init(const options *o) {
    pcn_model_params mp = pcn_model_default_params();
    mp.n_dims = o->n_dims;
    mp.dims = o->dims;
    mp.activation = o->act;
    mp.output_dim = o->output_dim;
    mp.seed = 1;
    engine e = {.model = pcn_model_init(&mp)};
    if (!e.model) die("model: %s", pcn_last_error());
    if (!(e.state = pcn_state_init(e.model, o->batch))) die("state: %s", pcn_last_error());
    const size_t B = (size_t)o->batch, d0 = (size_t)o->dims[0], K = (size_t)o->output_dim;
    e.x = xcalloc(B * d0, sizeof(float));
    e.y = xcalloc(B * K, sizeof(float));
    uint64_t rng = 42;
    for (size_t i = 0; i < B * d0; i++) e.x[i] = uniform01(&rng);
    for (size_t r = 0; r < B; r++) e.y[r * K + splitmix64(&rng) % K] = 1.0f;
    pcn_latent_key key = {.seed = 1, .stream = PCN_STREAM_USER, .epoch = 0, .first_row = 0};
    pcn_init_latents(e.state, &key);
    return e;
}

static void engine_free(engine *e) {
    pcn_state_free(e->state);
    pcn_model_free(e->model);
    free(e->x);
    free(e->y);
}

static void step_supervised(void *ctx) {
    engine *e = ctx;
    e->energy = pcn_inference_step(e->model, e->state, e->x, e->y, LR_INFER);
}

static void step_free(void *ctx) {
    engine *e = ctx;
    e->energy = pcn_inference_step(e->model, e->state, e->x, NULL, LR_INFER);
}

static void step_learn(void *ctx) {
    engine *e = ctx;
    e->energy = pcn_learning_step(e->model, e->state, e->x, e->y, LR_LEARN);
}

// ROW_STEPS supervised steps as one inference phase of the trainer (the CPU backend's
// row split: one parallel region, each thread its contiguous rows, at least 16), the
// energy of the last step.
static void step_rows(void *ctx) {
    engine *e = ctx;
    e->energy = pcn_inference_steps(e->model, e->state, e->x, e->y, LR_INFER, ROW_STEPS, true);
}

static const work_fn STEP_FNS[STEP_COUNT] = {step_supervised, step_free, step_learn, step_rows};
static const int STEP_CALLS[STEP_COUNT] = {1, 1, 1, ROW_STEPS}; // steps per timed repeat

// ----------------------------------------------------------------------------------------
// The sgemm floor
// ----------------------------------------------------------------------------------------

typedef struct {
    const product *p;
    float *a, *b, *c;  // operands big enough for every product
} gemm_job;

static void run_gemm(void *ctx) {
    const gemm_job *g = ctx;
    const product *p = g->p;
    cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                p->tb ? CblasTrans : CblasNoTrans, p->m, p->n, p->k, p->alpha, g->a,
                p->ta ? p->m : p->k, g->b, p->tb ? p->k : p->n, p->beta, g->c, p->n);
}

// Times every product of every step alone on shared operand buffers; fills p[].seconds.
static void time_floor(product *prods[STEP_COUNT], const int *counts, const options *o,
                       double *times) {
    size_t sa = 1, sb = 1, sc = 1;
    for (int s = 0; s < STEP_COUNT; s++)
        for (int i = 0; i < counts[s]; i++) {
            const product *p = &prods[s][i];
            size_t mk = (size_t)p->m * p->k, kn = (size_t)p->k * p->n, mn = (size_t)p->m * p->n;
            sa = mk > sa ? mk : sa, sb = kn > sb ? kn : sb, sc = mn > sc ? mn : sc;
        }
    gemm_job g = {.a = xcalloc(sa, sizeof(float)), .b = xcalloc(sb, sizeof(float)),
                  .c = xcalloc(sc, sizeof(float))};
    uint64_t rng = 7;
    for (size_t i = 0; i < sa; i++) g.a[i] = uniform01(&rng) - 0.5f;
    for (size_t i = 0; i < sb; i++) g.b[i] = uniform01(&rng) - 0.5f;
    for (int s = 0; s < STEP_COUNT; s++)
        for (int i = 0; i < counts[s]; i++) {
            g.p = &prods[s][i];
            prods[s][i].seconds = time_repeats(run_gemm, &g, o->warmup, o->repeats, times).median;
        }
    free(g.a), free(g.b), free(g.c);
}

// ----------------------------------------------------------------------------------------
// Results and report
// ----------------------------------------------------------------------------------------

typedef struct {
    double seconds, min_seconds, max_seconds; // median, fastest and slowest repeat
    double floor_seconds, flops, energy;      // energy returned by the last repeat
} step_result;

typedef struct {
    char cpu[128];
    int omp_threads, blas_threads;
    double weights, design_flops;          // P, 4*B*P
    int t_infer, t_learn, t_acc;
    double batch_seconds, batch_floor_seconds;
    step_result step[STEP_COUNT];
} report;

static void cpu_model(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        for (char *c = colon; *c; c++) // keeps the JSON string valid
            if (*c == '"' || *c == '\\') *c = ' ';
        snprintf(out, size, "%s", colon);
        break;
    }
    fclose(f);
}

// The environment variables that change how the two thread pools share the cores.
static void print_thread_env(void) {
    static const char *names[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY",
                                  "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (getenv(names[i])) printf("  %s=%s", names[i], getenv(names[i]));
}

static void print_products(const product *p, int n) {
    printf("  %-8s %-3s %7s %7s %7s %6s %4s %10s %9s\n", "product", "op", "m", "n", "k",
           "alpha", "beta", "ms", "GFLOP/s");
    for (int i = 0; i < n; i++)
        printf("  %-8s %c%c  %7d %7d %7d %6.3g %4.0f %10.4f %9.2f\n", p[i].what,
               p[i].ta ? 'T' : 'N', p[i].tb ? 'T' : 'N', p[i].m, p[i].n, p[i].k, p[i].alpha,
               p[i].beta, 1e3 * p[i].seconds, 1e-9 * product_flops(&p[i]) / p[i].seconds);
}

static void print_table(const options *o, const report *r, product *prods[STEP_COUNT],
                        const int *counts) {
    printf("pcn_bench (libpcn %s)\n", pcn_version());
    printf("cpu      %s\n", r->cpu);
    printf("threads  OpenMP %d, OpenBLAS %d", r->omp_threads, r->blas_threads);
    print_thread_env();
    printf("\n");
    printf("config   dims");
    for (int i = 0; i < o->n_dims; i++) printf("%c%d", i ? ',' : ' ', o->dims[i]);
    printf("  K %d  B %d  %s  P %.0f weights\n", o->output_dim, o->batch,
           pcn_activation_name(o->act), r->weights);
    printf("timing   median of %d after %d warm-up, lr_infer %g, lr_learn %g\n\n", o->repeats,
           o->warmup, LR_INFER, LR_LEARN);
    printf("%-17s %9s %9s %9s %8s %8s %9s %8s %10s %10s\n", "step", "ms", "min ms",
           "max ms", "GFLOP", "GFLOP/s", "floor ms", "GFLOP/s", "step/floor", "energy");
    for (int s = 0; s < STEP_COUNT; s++) {
        const step_result *x = &r->step[s];
        printf("%-17s %9.3f %9.3f %9.3f %8.4f %8.2f %9.3f %8.2f %10.3f %10.5g\n",
               STEP_NAMES[s], 1e3 * x->seconds, 1e3 * x->min_seconds, 1e3 * x->max_seconds,
               1e-9 * x->flops, 1e-9 * x->flops / x->seconds, 1e3 * x->floor_seconds,
               1e-9 * x->flops / x->floor_seconds, x->seconds / x->floor_seconds, x->energy);
    }
    printf("cost model 4*B*P = %.4f GFLOP per step\n\n", 1e-9 * r->design_flops);
    for (int s = 0; s < STEP_COUNT; s++) {
        printf("floor of %s: cblas_sgemm per product\n", STEP_NAMES[s]);
        print_products(prods[s], counts[s]);
    }
    printf("\ntraining batch: T_infer %d + T_learn %d (= B) + T_acc %d (= 10 T_infer) steps\n",
           r->t_infer, r->t_learn, r->t_acc);
    printf("  predicted %.3f s per batch (floor %.3f s); cost model %.2f GFLOP per batch\n",
           r->batch_seconds, r->batch_floor_seconds,
           1e-9 * r->design_flops * (r->t_infer + r->t_learn + r->t_acc));
}

static void print_json(const options *o, const report *r) {
    printf("{\"cpu\":\"%s\",\"omp_threads\":%d,\"blas_threads\":%d,\"dims\":[", r->cpu,
           r->omp_threads, r->blas_threads);
    for (int i = 0; i < o->n_dims; i++) printf("%s%d", i ? "," : "", o->dims[i]);
    printf("],\"output_dim\":%d,\"batch\":%d,\"activation\":\"%s\",\"repeats\":%d,"
           "\"warmup\":%d,\"weights\":%.0f,\"design_flops\":%.0f",
           o->output_dim, o->batch, pcn_activation_name(o->act), o->repeats, o->warmup,
           r->weights, r->design_flops);
    for (int s = 0; s < STEP_COUNT; s++) {
        const step_result *x = &r->step[s];
        printf(",\"%s\":{\"seconds\":%.6e,\"min_seconds\":%.6e,\"max_seconds\":%.6e,"
               "\"flops\":%.0f,\"gflops\":%.3f,\"floor_seconds\":%.6e,\"floor_gflops\":%.3f,"
               "\"ratio\":%.4f,\"energy\":%.6g}",
               STEP_KEYS[s], x->seconds, x->min_seconds, x->max_seconds, x->flops,
               1e-9 * x->flops / x->seconds,
               x->floor_seconds, 1e-9 * x->flops / x->floor_seconds,
               x->seconds / x->floor_seconds, x->energy);
    }
    printf(",\"t_infer\":%d,\"t_learn\":%d,\"t_acc\":%d,\"batch_seconds\":%.6e,"
           "\"batch_floor_seconds\":%.6e}\n",
           r->t_infer, r->t_learn, r->t_acc, r->batch_seconds, r->batch_floor_seconds);
}

// ----------------------------------------------------------------------------------------
// Main
// ----------------------------------------------------------------------------------------

static void predict_batch(report *r, const options *o) {
    r->t_infer = o->t_infer;
    r->t_learn = o->batch;
    r->t_acc = 10 * o->t_infer;
    const int n[STEP_COUNT] = {r->t_infer, r->t_acc, r->t_learn};
    r->batch_seconds = r->batch_floor_seconds = 0.0;
    for (int s = 0; s < STEP_COUNT; s++) {
        r->batch_seconds += n[s] * r->step[s].seconds;
        r->batch_floor_seconds += n[s] * r->step[s].floor_seconds;
    }
}

static void setup_report(report *r, const options *o) {
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        openblas_set_num_threads(o->threads);
    }
    cpu_model(r->cpu, sizeof r->cpu);
    r->omp_threads = omp_get_max_threads();
    r->blas_threads = openblas_get_num_threads();
    const int L = o->n_dims - 1;
    r->weights = (double)o->output_dim * o->dims[L];
    for (int l = 0; l < L; l++) r->weights += (double)o->dims[l] * o->dims[l + 1];
    r->design_flops = 4.0 * o->batch * r->weights;
}

// ----------------------------------------------------------------------------------------
// Whole learning phases (--phase): pcn_train on PHASE_BATCHES batches of B rows, T_infer 1,
// no train accuracy; the trainer's own learning seconds per batch (through the batch hook),
// the best of the batches after the first (which also pays first touches of its buffers).
// ----------------------------------------------------------------------------------------

#define PHASE_BATCHES 4

typedef struct {
    double last, best; // cumulative learning seconds at the last hook; best batch so far
    int batches;
} phase_clock;

static pcn_status phase_hook(void *user, pcn_model *model, const pcn_history *history,
                             const pcn_train_position *next, bool *stop) {
    (void)model, (void)history, (void)stop;
    phase_clock *c = user;
    const double t = next->seconds.learning - c->last;
    c->last = next->seconds.learning;
    if (c->batches++ > 0 && t < c->best) c->best = t;
    return PCN_OK;
}

static double time_phase(const options *o, pcn_learn_path path) {
    const int B = o->batch, D = o->dims[0], N = PHASE_BATCHES * B;
    float *x = xcalloc((size_t)N * D, sizeof *x);
    int32_t *y = xcalloc((size_t)N, sizeof *y);
    uint64_t seed = 5;
    for (size_t i = 0; i < (size_t)N * D; i++) x[i] = uniform01(&seed);
    for (int i = 0; i < N; i++) y[i] = i % o->output_dim;
    pcn_arrays a = {x, y, NULL, N, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = o->dims, mp.n_dims = o->n_dims, mp.output_dim = o->output_dim, mp.activation = o->act;
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 1, p.t_learn = o->t_learn, p.num_epochs = 1, p.batch_size = B;
    p.train_accuracy_every = 0;
    p.shuffle = false, p.learn_path = path;
    phase_clock clock = {0.0, 1e30, 0};
    p.batch_hook = phase_hook, p.batch_hook_user = &clock;
    pcn_model *m = pcn_model_init(&mp);
    if (pcn_train(m, &data, &p, NULL) != PCN_OK) die("phase: %s", pcn_last_error());
    pcn_model_free(m);
    free(x), free(y);
    return clock.best;
}

// The automatic path's matrix products for T = T_learn steps on one process, each with how
// many times it runs (per layer, batch space or per step as pcn_learning_phase_plan picks).
static int phase_products(const options *o, product *p, int *times) {
    const int B = o->batch, T = o->t_learn, L = o->n_dims - 1, *d = o->dims;
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = o->dims, mp.n_dims = o->n_dims, mp.output_dim = o->output_dim;
    pcn_model *m = pcn_model_init(&mp);
    if (!m) die("model: %s", pcn_last_error());
    bool use[MAX_DIMS];
    pcn_learning_phase_plan(m, B, T, PCN_LEARN_AUTO, use);
    pcn_model_free(m);
    int n = 0;
    for (int l = 0; l <= L; l++) {
        const int out = l < L ? d[l] : o->output_dim, in = d[l < L ? l + 1 : L];
        const char *what = use[l] ? "gram" : "plain";
        if (use[l]) {
            times[n] = 1, n = add(p, n, what, l, false, true, B, B, in, 1.0f, 0.0f);    // G
            times[n] = 1, n = add(p, n, what, l, false, true, B, out, in, 1.0f, 0.0f);  // A
            times[n] = T, n = add(p, n, what, l, false, false, B, out, B, 0.1f, 1.0f);  // A += G H
            times[n] = 1, n = add(p, n, what, l, true, false, out, in, B, 0.1f, 1.0f); // W += S^T X
        } else {
            times[n] = T, n = add(p, n, what, l, false, true, B, out, in, 1.0f, 0.0f);  // A
            times[n] = T, n = add(p, n, what, l, true, false, out, in, B, 0.1f, 1.0f); // W += H^T X
        }
    }
    return n;
}

static void print_phase(const options *o, const report *r) {
    double plain = time_phase(o, PCN_LEARN_PLAIN), fast = time_phase(o, PCN_LEARN_AUTO);
    double floor = o->t_learn * r->step[STEP_LEARN].floor_seconds;
    // The automatic path's floor: each of its products timed alone, times its count.
    product prods[4 * MAX_DIMS];
    int counts[4 * MAX_DIMS];
    const int n = phase_products(o, prods, counts);
    product *list[STEP_COUNT] = {prods};
    int ns[STEP_COUNT] = {n};
    double *times = xcalloc((size_t)o->repeats, sizeof(double));
    time_floor(list, ns, o, times);
    free(times);
    double fast_floor = 0.0;
    for (int i = 0; i < n; i++) fast_floor += counts[i] * prods[i].seconds;
    printf("\nlearning phase of one batch (T_learn = %d steps, B = %d), the trainer's own "
           "seconds, best of %d batches after a first:\n", o->t_learn, o->batch,
           PHASE_BATCHES - 1);
    printf("  per-step path     %9.4f s   floor %.4f s (T_learn x the learning step's sgemm "
           "floor): %.2fx\n", plain, floor, plain / floor);
    printf("  automatic path    %9.4f s   floor %.4f s (its products, each timed alone, times "
           "its count): %.2fx; speed-up %.2fx\n", fast, fast_floor, fast / fast_floor,
           plain / fast);
    printf("  automatic path's products (count x median ms):");
    for (int i = 0; i < n; i++)
        printf("%s %s %c%c %dx%dx%d: %d x %.4f", i ? "," : "", prods[i].what,
               prods[i].ta ? 'T' : 'N', prods[i].tb ? 'T' : 'N', prods[i].m, prods[i].n,
               prods[i].k, counts[i], 1e3 * prods[i].seconds);
    printf("\n");
}

int main(int argc, char **argv) {
    options o = parse_options(argc, argv);
    report r = {0};
    setup_report(&r, &o);
    engine e = engine_init(&o);
    double *times = xcalloc((size_t)o.repeats, sizeof(double));
    product prods[STEP_COUNT][MAX_PRODUCTS], *lists[STEP_COUNT];
    int counts[STEP_COUNT];
    for (int s = 0; s < STEP_COUNT; s++) {
        lists[s] = prods[s];
        counts[s] = step_products(o.dims, o.n_dims - 1, o.output_dim, o.batch, s, prods[s]);
        r.step[s].flops = products_flops(prods[s], counts[s]);
    }
    // The floor first, before the steps start OpenMP teams: sgemm alone, nothing else.
    time_floor(lists, counts, &o, times);
    for (int s = 0; s < STEP_COUNT; s++) {
        for (int i = 0; i < counts[s]; i++) r.step[s].floor_seconds += prods[s][i].seconds;
        timing t = time_repeats(STEP_FNS[s], &e, o.warmup, o.repeats, times);
        const double per = 1.0 / STEP_CALLS[s];
        r.step[s].seconds = t.median * per, r.step[s].min_seconds = t.min * per;
        r.step[s].max_seconds = t.max * per;
        r.step[s].energy = e.energy;
    }
    predict_batch(&r, &o);
    if (o.json) print_json(&o, &r);
    else print_table(&o, &r, lists, counts);
    if (o.phase) print_phase(&o, &r);
    free(times);
    engine_free(&e);
    return 0;
}
