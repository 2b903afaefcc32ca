/*
 * cli.c — the option table behind pcn_dist's command line, config file and --help.
 *
 * Every option has one row: its name (the same on the command line and in the file), its
 * kind and place in pcn_cli, whether a checkpoint stores it (the run's settings), and its
 * help line. Values are checked for form here (numbers are numbers); ranges are checked
 * where they are used (pcn_train_params_validate names the field).
 */
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_STR, K_INT, K_LL, K_DBL, K_FLAG } kind;

typedef struct {
    const char *name;
    kind k;
    size_t off, size;
    bool stored;        // part of the run's settings kept in checkpoints
    const char *help;
} option;

#define OPT(name, k, field, stored, help) \
    {name, k, offsetof(pcn_cli, field), sizeof(((pcn_cli *)0)->field), stored, help}

static const option options[] = {
    OPT("data", K_STR, data, true, "data set file (HDF5, see pcn_convert)"),
    OPT("dims", K_STR, dims, true, "layer widths, input first: 784,256,64,10"),
    OPT("output-dim", K_INT, output_dim, true, "readout outputs K (default: last of --dims)"),
    OPT("activation", K_STR, activation, true, "relu | tanh | sigmoid | identity (relu); "
        "discriminative also gelu | leaky_relu | hard_tanh (hidden layers; the output is "
        "identity)"),
    OPT("direction", K_STR, direction, true,
        "generative (pcn-torch, the default) | discriminative (PCX: the input predicts upwards, "
        "test is one forward pass)"),
    OPT("bias", K_INT, bias, true, "discriminative: biases b_1..b_L, 0 or 1 (0)"),
    OPT("leaky-slope", K_DBL, leaky_slope, true,
        "discriminative, leaky_relu: slope for a < 0 (0.01)"),
    OPT("task", K_STR, task, true, "classification | regression (classification)"),
    OPT("epochs", K_INT, epochs, true, "epochs (4)"),
    OPT("batch-size", K_INT, batch_size, true, "global batch, split over the ranks (500)"),
    OPT("test-batch-size", K_INT, test_batch_size, true, "global test batch (batch size)"),
    OPT("t-infer", K_INT, t_infer, true, "supervised inference steps per batch (50)"),
    OPT("t-infer-test", K_INT, t_infer_test, true,
        "generative: free inference steps of test and train accuracy (10 x t-infer)"),
    OPT("t-learn", K_INT, t_learn, true,
        "generative: learning steps per batch (the batch size)"),
    OPT("lr-infer", K_DBL, lr_infer, true, "latent step size (0.05)"),
    OPT("lr-learn", K_DBL, lr_learn, true, "weight step size (0.005)"),
    OPT("early-stop", K_DBL, early_stop, true,
        "generative: stop inference when |dE| < X (0: off)"),
    OPT("latent-init", K_STR, latent_init, true,
        "discriminative: latents start from a forward pass (forward) or N(0, std^2) (random) "
        "(forward)"),
    OPT("latent-init-std", K_DBL, latent_init_std, true,
        "discriminative: sigma of --latent-init random (1)"),
    OPT("infer-momentum", K_DBL, infer_momentum, true,
        "discriminative: heavy-ball momentum of the latent steps, in [0, 1) (0)"),
    OPT("ipc", K_INT, ipc, true,
        "discriminative: 1 = incremental PC, a weight step after every inference step (0)"),
    OPT("energy-window", K_INT, energy_window, true, "energy window of early stopping (10)"),
    OPT("lr-schedule", K_STR, lr_schedule, true,
        "none | plateau | steps | cosine (warm-up, then cosine decay over all optimizer "
        "steps) (none)"),
    OPT("lr-warmup-frac", K_DBL, lr_warmup_frac, true,
        "cosine: share of the steps rising from lr to the peak, in [0, 1) (0)"),
    OPT("lr-peak-factor", K_DBL, lr_peak_factor, true, "cosine: peak = X x lr-learn (1)"),
    OPT("lr-final-factor", K_DBL, lr_final_factor, true,
        "cosine: the last step's lr = X x lr-learn (0)"),
    OPT("optimizer", K_STR, optimizer, true,
        "weights: sgd | momentum | adamw (decoupled decay, as optax) (sgd)"),
    OPT("momentum", K_DBL, momentum, true, "momentum optimizer's coefficient (0.9)"),
    OPT("beta1", K_DBL, beta1, true, "adamw's beta1 (0.9)"),
    OPT("beta2", K_DBL, beta2, true, "adamw's beta2 (0.999)"),
    OPT("eps", K_DBL, eps, true, "adamw's eps (1e-8)"),
    OPT("weight-decay", K_DBL, weight_decay, true,
        "decoupled weight decay, times the step's lr, biases included (0)"),
    OPT("lr-decay", K_DBL, lr_decay, true, "plateau: lr *= X (0.5)"),
    OPT("lr-patience", K_INT, lr_patience, true, "plateau: batches without improvement (1)"),
    OPT("lr-steps", K_STR, lr_steps, true, "steps: epoch:batch:lr,... (0-based)"),
    OPT("lr-scaling", K_STR, lr_scaling, true,
        "large batches: lr x (B/ref) linear, x sqrt(B/ref) sqrt, or none (none)"),
    OPT("lr-ref-batch", K_INT, lr_ref_batch, true, "reference batch of --lr-scaling"),
    OPT("lr-warmup", K_INT, lr_warmup, true, "first N batches learn with lr x (k+1)/N (0)"),
    OPT("seed", K_LL, seed, true, "seed of weights, latents and shuffles (0)"),
    OPT("input-norm", K_STR, input_norm, true,
        "input after x@scale: file (the data set's /norm, if any) | none | M,S: (x - M)/S for "
        "every feature (PCX's Fashion-MNIST: 0.5,0.5) (file)"),
    OPT("shuffle", K_INT, shuffle, true, "reshuffle training rows every epoch, 0 or 1 (1)"),
    OPT("train-accuracy-every", K_INT, train_accuracy_every, true,
        "free-inference train accuracy every N batches, 0 off (1)"),
    OPT("top-k", K_INT, top_k, true, "test: also report top-k accuracy (3)"),
    OPT("checkpoint", K_STR, checkpoint, false, "checkpoint file (written atomically)"),
    OPT("checkpoint-every", K_INT, checkpoint_every, false,
        "write the checkpoint every N batches (0: at the end and on a stop signal)"),
    OPT("test-every", K_INT, test_every, false,
        "train: also score the test split after every N-th epoch (a line and a metrics "
        "record each; the weights are unchanged); 0: only after training (0)"),
    OPT("keep-checkpoints", K_INT, keep_checkpoints, false, "keep the last K files (1)"),
    OPT("resume", K_STR, resume, false, "resume from this checkpoint"),
    OPT("overwrite", K_FLAG, overwrite, false,
        "train: may replace an existing --checkpoint it does not --resume from (else "
        "refused); command line only"),
    OPT("metrics", K_STR, metrics, false, "metrics file (JSON Lines, rank 0)"),
    OPT("config", K_STR, config, false, "INI file of these options; flags override it"),
    OPT("device", K_STR, device, false,
        "auto | cpu | cuda (auto: cuda when every rank sees a GPU it can use, else the CPU, "
        "with a one-line note of why where the machine has an NVIDIA driver or /dev/nvidia*; "
        "rank r of a node takes GPU r mod visible; cpu never loads CUDA)"),
    OPT("precision", K_STR, precision, false,
        "GPU inference products: fp32 | tf32 | bf16 | fp16 (fp32; the others let cuBLAS round "
        "the float32 operands at most to that format: near pcn-torch's autocast, not bitwise)"),
    OPT("comm", K_STR, comm, false,
        "GPU gradient sums: nccl | mpi (staged through host memory; ranks may share a GPU) | "
        "auto (nccl when no two ranks of a node drive the same GPU)"),
    OPT("comm-timeout", K_DBL, comm_timeout, false,
        "seconds a GPU wait may take with NCCL before every rank stops (300)"),
    OPT("learn-path", K_STR, learn_path, false,
        "learning phase: auto (per layer the cheaper of the two) | plain (per-step updates) | "
        "gram (batch space); equal up to rounding (auto)"),
    OPT("data-mode", K_STR, data_mode, false, "memory (once per node) | stream (memory)"),
    OPT("output", K_STR, output, false, "predict: output file (HDF5)"),
    OPT("split", K_STR, split, false, "test/predict: test | train (test)"),
    OPT("json", K_FLAG, json, false, "test: print one JSON object"),
    OPT("progress", K_INT, progress, false,
        "rank 0's progress: 1 a live bar on a terminal, a line per epoch otherwise; 0 none (1)"),
    OPT("stop-after-batches", K_INT, stop_after_batches, false, NULL),
    OPT("inject-fault", K_STR, inject_fault, false,
        "testing: make checkpoint writes fail: ckpt-write (every rank), ckpt-write@R (rank R)"),
    OPT("help", K_FLAG, help, false, "this text"),
    OPT("version", K_FLAG, version, false, "print the version"),
};
#define N_OPTIONS (sizeof options / sizeof *options)
_Static_assert(N_OPTIONS <= sizeof(((pcn_cli *)0)->given), "pcn_cli.given holds every option");

void pcn_cli_defaults(pcn_cli *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->activation, "relu");
    strcpy(c->task, "classification");
    strcpy(c->direction, "generative");
    c->leaky_slope = 0.01;
    strcpy(c->latent_init, "forward");
    c->latent_init_std = 1.0;
    strcpy(c->optimizer, "sgd");
    c->momentum = 0.9, c->beta1 = 0.9, c->beta2 = 0.999, c->eps = 1e-8;
    c->lr_peak_factor = 1.0;
    strcpy(c->input_norm, "file");
    c->epochs = 4;
    c->batch_size = 500;
    c->t_infer = 50;
    c->lr_infer = 0.05;
    c->lr_learn = 0.005;
    c->energy_window = 10;
    strcpy(c->lr_schedule, "none");
    strcpy(c->lr_scaling, "none");
    c->lr_decay = 0.5;
    c->lr_patience = 1;
    c->shuffle = 1;
    c->train_accuracy_every = 1;
    c->top_k = 3;
    c->keep_checkpoints = 1;
    strcpy(c->device, "auto");
    strcpy(c->precision, "fp32");
    strcpy(c->comm, "auto");
    strcpy(c->learn_path, "auto");
    c->comm_timeout = 300.0;
    strcpy(c->data_mode, "memory");
    strcpy(c->split, "test");
    c->progress = 1;
}

// ----------------------------------------------------------------------------------------

static const option *find(const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static pcn_status set_value(pcn_cli *c, const option *o, const char *v) {
    char *field = (char *)c + o->off, *end;
    errno = 0;
    c->given[o - options] = true;
    switch (o->k) {
    case K_STR:
        if (strlen(v) >= o->size)
            return pcn_set_error(PCN_EINVAL, "--%s: value longer than %zu characters", o->name,
                                 o->size - 1);
        strcpy(field, v);
        return PCN_OK;
    case K_INT: case K_LL: case K_FLAG: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || (o->k != K_LL && (x < -2147483647LL || x > 2147483647LL)))
            return pcn_set_error(PCN_EINVAL, "--%s: '%s' is not an integer", o->name, v);
        if (o->k == K_LL) *(long long *)field = x;
        else *(int *)field = (int)x;
        return PCN_OK;
    }
    case K_DBL: {
        double x = strtod(v, &end);
        if (!*v || *end || errno)
            return pcn_set_error(PCN_EINVAL, "--%s: '%s' is not a number", o->name, v);
        *(double *)field = x;
        return PCN_OK;
    }
    }
    return pcn_set_error(PCN_EINVAL, "--%s: an option of no known kind", o->name);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) *--e = '\0';
    return s;
}

// One "name = value" line of an INI text.
static pcn_status apply_line(pcn_cli *c, char *s) {
    char *eq = strchr(s, '=');
    if (!eq) return pcn_set_error(PCN_EINVAL, "expected 'name = value', got '%s'", s);
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    for (char *p = key; *p; p++)
        if (*p == '_') *p = '-'; // t_infer and t-infer both work in files
    const option *o = find(key, strlen(key));
    if (!o) return pcn_set_error(PCN_EINVAL, "unknown option '%s'", key);
    if (o->k == K_FLAG && strcmp(key, "json") != 0) // a decision of one command, not a setting
        return pcn_set_error(PCN_EINVAL, "'%s' is a command-line flag (--%s), not a file setting",
                             key, key);
    return set_value(c, o, val);
}

pcn_status pcn_cli_apply_ini(pcn_cli *c, const char *text, const char *origin) {
    char *copy = strdup(text), *save = NULL;
    if (!copy) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", origin);
    int lineno = 0;
    pcn_status st = PCN_OK;
    for (char *line = strtok_r(copy, "\n", &save); line && st == PCN_OK;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';' || *s == '[') continue;
        if ((st = apply_line(c, s)) != PCN_OK) {
            char inner[768];
            snprintf(inner, sizeof inner, "%s", pcn_last_error());
            pcn_set_error(st, "%s:%d: %s", origin, lineno, inner);
        }
    }
    free(copy);
    return st;
}

pcn_status pcn_cli_apply_args(pcn_cli *c, int argc, char **argv, int first,
                              const char **positional, int max_positional, int *n_positional) {
    *n_positional = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (*n_positional >= max_positional)
                return pcn_set_error(PCN_EINVAL, "unexpected argument '%s'", a);
            positional[(*n_positional)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option *o = find(name, len);
        if (!o)
            return pcn_set_error(PCN_EINVAL, "unknown option '%.*s' (see --help)", (int)(len + 2),
                                 a);
        const char *v = eq ? eq + 1 : NULL;
        if (o->k == K_FLAG && !v) v = "1";
        if (!v && i + 1 >= argc) return pcn_set_error(PCN_EINVAL, "--%s needs a value", o->name);
        if (!v) v = argv[++i];
        pcn_status st = set_value(c, o, v);
        if (st != PCN_OK) return st;
    }
    return PCN_OK;
}

const char *pcn_cli_find_config(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0) return argv[i] + 9;
    }
    return NULL;
}

bool pcn_cli_given(int argc, char **argv, const char *name) {
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, len) == 0 &&
            (argv[i][2 + len] == '\0' || argv[i][2 + len] == '='))
            return true;
    return false;
}

bool pcn_cli_was_set(const pcn_cli *c, const char *name) {
    const option *o = find(name, strlen(name));
    return o && c->given[o - options];
}

void pcn_cli_forget(pcn_cli *c) { memset(c->given, 0, sizeof c->given); }

char *pcn_cli_to_ini(const pcn_cli *c) {
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    len += (size_t)snprintf(out, cap, "# pcn_dist run settings\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const option *o = &options[i];
        if (!o->stored) continue;
        const char *field = (const char *)c + o->off;
        char val[1100];
        switch (o->k) {
        case K_STR: snprintf(val, sizeof val, "%s", field); break;
        case K_INT: case K_FLAG: snprintf(val, sizeof val, "%d", *(const int *)field); break;
        case K_LL: snprintf(val, sizeof val, "%lld", *(const long long *)field); break;
        case K_DBL: snprintf(val, sizeof val, "%.17g", *(const double *)field); break;
        }
        if (len + strlen(o->name) + strlen(val) + 8 > cap) out = realloc(out, cap *= 2);
        len += (size_t)snprintf(out + len, cap - len, "%s = %s\n", o->name, val);
    }
    return out;
}

void pcn_cli_usage(FILE *out) {
    fprintf(out,
            "usage:\n"
            "  pcn_dist train   --data D.h5 --dims 784,256,64,10 [options]\n"
            "  pcn_dist test    --data D.h5 --checkpoint C.h5 [--t-infer-test N] [--json]\n"
            "  pcn_dist predict --data D.h5 --checkpoint C.h5 --output P.h5\n"
            "  pcn_dist info    FILE.h5\n"
            "Run under MPI: mpirun -np N pcn_dist ... (each rank takes its share of every\n"
            "global batch). Options (also 'name = value' lines in --config files):\n");
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (options[i].help)
            fprintf(out, "  --%-22s %s\n", options[i].name, options[i].help);
    fprintf(out,
            "Exit status: 0 done; 1 error (one message, every rank exits); 2 usage error;\n"
            "3 stopped by SIGTERM/SIGUSR1 after writing a checkpoint (requeue and --resume).\n"
            "Through mpirun send SIGUSR1 (Open MPI forwards it; it kills ranks on SIGTERM).\n");
}
