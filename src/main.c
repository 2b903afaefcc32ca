/*
 * main.c — the pcn_dist program: train, test, predict and info over MPI ranks.
 *
 * Every rank runs the same sequence of collective steps; every failure goes through
 * pcn_dist_agree, so all ranks stop together and rank 0 prints the one message. Progress
 * and metrics come from rank 0. SIGTERM and SIGUSR1 set a flag; at the next batch boundary
 * the ranks agree on it, write the checkpoint and exit with status 3 (requeue).
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <hdf5_hl.h>

#include "cli.h"
#include "pcn.h"
#include "pcn_io.h"
#include "pcn_dist.h"
#include "pcn_gpu.h"
#include "pcn_impl.h" // pcn_set_error: the program shares the library's error channel

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_STOPPED = 3 };

// Checkpoints kept by rotation (PATH, PATH.1, ...): every write renames each of them.
#define PCN_KEEP_MAX 1000

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

typedef struct {
    pcn_comm *comm;
    pcn_cli cli;
    int argc;
    char **argv;
    char device[192];   // where this run computes (setup_device)
} app;

// Rank 0 prints the agreed message; every rank returns the exit status.
static int fail(app *a, int status, const char *what) {
    if (pcn_dist_rank(a->comm) == 0)
        fprintf(stderr, "pcn_dist: %s%s%s\n", what ? what : "", what ? ": " : "", pcn_last_error());
    return status;
}

// ----------------------------------------------------------------------------------------
// Settings
// ----------------------------------------------------------------------------------------

static int parse_dims(const char *s, int *dims, int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1 << 30) return -1;
        dims[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return *p ? -1 : n;
}

static pcn_status parse_steps(const char *s, pcn_lr_step *steps, int max, int *n) {
    *n = 0;
    for (const char *p = s; *p && *n < max;) {
        pcn_lr_step st;
        int used = 0;
        if (sscanf(p, "%d:%d:%lf%n", &st.epoch, &st.batch, &st.lr, &used) != 3)
            return pcn_set_error(PCN_EINVAL, "--lr-steps: expected epoch:batch:lr,... at '%s'", p);
        steps[(*n)++] = st;
        p += used;
        if (*p == ',') p++;
    }
    return PCN_OK;
}

static pcn_status to_params(const pcn_cli *c, pcn_train_params *p, pcn_lr_step *steps,
                            int max_steps) {
    *p = pcn_train_default_params();
    if (pcn_task_from_name(c->task, &p->task) != PCN_OK) return PCN_EINVAL;
    p->t_infer = c->t_infer, p->t_infer_test = c->t_infer_test, p->t_learn = c->t_learn;
    p->lr_infer = c->lr_infer, p->lr_learn = c->lr_learn, p->num_epochs = c->epochs;
    p->early_stop_threshold = c->early_stop, p->energy_window_size = c->energy_window;
    p->lr_decay_factor = c->lr_decay, p->lr_patience = c->lr_patience;
    p->batch_size = c->batch_size, p->test_batch_size = c->test_batch_size;
    p->shuffle = c->shuffle != 0, p->seed = (uint64_t)c->seed;
    p->train_accuracy_every = c->train_accuracy_every, p->top_k = c->top_k;
    if (strcmp(c->lr_schedule, "none") == 0) p->lr_schedule = PCN_LR_NONE;
    else if (strcmp(c->lr_schedule, "plateau") == 0) p->lr_schedule = PCN_LR_PLATEAU;
    else if (strcmp(c->lr_schedule, "steps") == 0) p->lr_schedule = PCN_LR_STEPS;
    else return pcn_set_error(PCN_EINVAL, "--lr-schedule must be none, plateau or steps, got '%s'",
                              c->lr_schedule);
    if (strcmp(c->lr_scaling, "none") == 0) p->lr_scaling = PCN_LR_SCALE_NONE;
    else if (strcmp(c->lr_scaling, "linear") == 0) p->lr_scaling = PCN_LR_SCALE_LINEAR;
    else if (strcmp(c->lr_scaling, "sqrt") == 0) p->lr_scaling = PCN_LR_SCALE_SQRT;
    else return pcn_set_error(PCN_EINVAL, "--lr-scaling must be none, linear or sqrt, got '%s'",
                              c->lr_scaling);
    p->lr_ref_batch = c->lr_ref_batch, p->lr_warmup_batches = c->lr_warmup;
    if (strcmp(c->learn_path, "auto") == 0) p->learn_path = PCN_LEARN_AUTO;
    else if (strcmp(c->learn_path, "plain") == 0) p->learn_path = PCN_LEARN_PLAIN;
    else if (strcmp(c->learn_path, "gram") == 0) p->learn_path = PCN_LEARN_GRAM;
    else return pcn_set_error(PCN_EINVAL, "--learn-path must be auto, plain or gram, got '%s'",
                              c->learn_path);
    if (c->lr_steps[0]) {
        pcn_status st = parse_steps(c->lr_steps, steps, max_steps, &p->n_lr_steps);
        if (st != PCN_OK) return st;
        p->lr_steps = steps;
    }
    return pcn_train_params_validate(p);
}

static pcn_status check_device(const pcn_cli *c) {
    if (strcmp(c->device, "auto") && strcmp(c->device, "cpu") && strcmp(c->device, "cuda"))
        return pcn_set_error(PCN_EINVAL, "--device must be auto, cpu or cuda, got '%s'", c->device);
    if (strcmp(c->precision, "fp32") && strcmp(c->precision, "tf32") &&
        strcmp(c->precision, "bf16") && strcmp(c->precision, "fp16"))
        return pcn_set_error(PCN_EINVAL, "--precision must be fp32, tf32, bf16 or fp16, got '%s'",
                             c->precision);
    if (strcmp(c->comm, "auto") && strcmp(c->comm, "nccl") && strcmp(c->comm, "mpi"))
        return pcn_set_error(PCN_EINVAL, "--comm must be auto, nccl or mpi, got '%s'", c->comm);
    if (!(c->comm_timeout > 0.0))
        return pcn_set_error(PCN_EINVAL, "--comm-timeout must be > 0 seconds, got %g",
                             c->comm_timeout);
    if (strcmp(c->device, "cpu") == 0 && strcmp(c->precision, "fp32"))
        return pcn_set_error(PCN_EINVAL, "--precision %s applies to GPU inference; the CPU "
                             "computes in fp32", c->precision);
    if (strcmp(c->device, "cpu") == 0 && strcmp(c->comm, "nccl") == 0)
        return pcn_set_error(PCN_EINVAL, "--comm nccl needs --device cuda (or auto with GPUs)");
    if (strcmp(c->data_mode, "memory") && strcmp(c->data_mode, "stream"))
        return pcn_set_error(PCN_EINVAL, "--data-mode must be memory or stream, got '%s'", c->data_mode);
    if (strcmp(c->split, "train") && strcmp(c->split, "test"))
        return pcn_set_error(PCN_EINVAL, "--split must be train or test, got '%s'", c->split);
    if (c->checkpoint_every < 0)
        return pcn_set_error(PCN_EINVAL, "--checkpoint-every must be >= 0, got %d",
                             c->checkpoint_every);
    if (c->keep_checkpoints < 1 || c->keep_checkpoints > PCN_KEEP_MAX)
        return pcn_set_error(PCN_EINVAL, "--keep-checkpoints must be in [1, %d], got %d",
                             PCN_KEEP_MAX, c->keep_checkpoints);
    return PCN_OK;
}

// Chooses where this run computes, after check_device: auto takes CUDA when every rank sees
// a GPU. On CUDA each rank drives GPU (node-local rank mod visible devices), the model moves
// there, gradient sums go through NCCL or staged MPI, and the inference products use
// --precision. Writes the device's description into what (for the progress display).
// Collective; every rank returns the same status.
static pcn_status setup_device(app *a, pcn_model *m, pcn_train_params *p, char *what,
                               size_t what_len) {
    const pcn_cli *c = &a->cli;
    int visible = pcn_cuda_device_count(), fewest = visible;
    PCN_MPI_CHECK(MPI_Allreduce(&visible, &fewest, 1, MPI_INT, MPI_MIN, pcn_dist_mpi(a->comm)));
    bool cuda = strcmp(c->device, "cuda") == 0 || (strcmp(c->device, "auto") == 0 && fewest > 0);
    pcn_status st = PCN_OK;
    if (!cuda) {
        const char *why = visible ? "another rank sees none" : "this rank sees none";
        if (strcmp(c->precision, "fp32"))
            st = pcn_set_error(PCN_EINVAL, "--precision %s needs a GPU, and %s", c->precision, why);
        else if (strcmp(c->comm, "nccl") == 0)
            st = pcn_set_error(PCN_EINVAL, "--comm nccl needs a GPU, and %s", why);
        snprintf(what, what_len, "cpu");
        return pcn_dist_agree(a->comm, st);
    }
    if (visible == 0) {
        const char *why = pcn_gpu_unavailable_reason(); // NULL: CUDA is here, no device
        st = pcn_set_error(PCN_EINVAL, "--device cuda: rank %d sees no CUDA device%s%s%s",
                           pcn_dist_rank(a->comm), why ? " (" : "", why ? why : "", why ? ")" : "");
    }
    if (st == PCN_OK) st = pcn_cuda_select(pcn_dist_gpu_for_rank(a->comm));
    if (st == PCN_OK) st = pcn_model_to_device(m, PCN_DEVICE_CUDA);
    if ((st = pcn_dist_agree(a->comm, st)) != PCN_OK) return st;
    bool own_gpu = pcn_dist_local_size(a->comm) <= fewest;
    pcn_comm_kind kind = strcmp(c->comm, "mpi") == 0                            ? PCN_COMM_MPI
                       : strcmp(c->comm, "nccl") == 0                           ? PCN_COMM_NCCL
                       : own_gpu && pcn_gpu_built_nccl() ? PCN_COMM_NCCL : PCN_COMM_MPI;
    if ((st = pcn_dist_use_gpu(a->comm, kind, c->comm_timeout)) != PCN_OK) return st;
    pcn_precision prec = strcmp(c->precision, "tf32") == 0   ? PCN_PRECISION_TF32
                       : strcmp(c->precision, "bf16") == 0   ? PCN_PRECISION_BF16
                       : strcmp(c->precision, "fp16") == 0   ? PCN_PRECISION_FP16
                                                             : PCN_PRECISION_FP32;
    p->use_mixed_precision = prec != PCN_PRECISION_FP32;
    p->mixed_precision = prec;
    snprintf(what, what_len, "cuda:%d %s, %s sums, %s", pcn_gpu_device_index(),
             pcn_gpu_device_name(), kind == PCN_COMM_NCCL ? "nccl" : "mpi", c->precision);
    return PCN_OK;
}

// Reads a whole text file (the --config file).
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

// Defaults, then base (a model file's stored settings), then --config, then the flags.
static int load_settings(app *a, const char *base, const char **pos, int max_pos, int *npos) {
    char err[1024] = "";
    pcn_cli_defaults(&a->cli);
    pcn_status st = PCN_OK;
    if (base && pcn_cli_apply_ini(&a->cli, base, "checkpoint settings", err, sizeof err) != 0)
        st = pcn_set_error(PCN_EINVAL, "%s", err);
    const char *cfg = pcn_cli_find_config(a->argc, a->argv);
    if (st == PCN_OK && cfg) st = pcn_io_file_regular(cfg, "--config");
    if (st == PCN_OK && cfg) {
        char *text = slurp(cfg);
        if (!text) st = pcn_set_error(PCN_EINVAL, "--config %s: cannot read the file", cfg);
        else if (pcn_cli_apply_ini(&a->cli, text, cfg, err, sizeof err) != 0)
            st = pcn_set_error(PCN_EINVAL, "%s", err);
        free(text);
    }
    if (st == PCN_OK &&
        pcn_cli_apply_args(&a->cli, a->argc, a->argv, 2, pos, max_pos, npos, err, sizeof err) != 0)
        st = pcn_set_error(PCN_EINVAL, "%s", err);
    return pcn_dist_agree(a->comm, st) == PCN_OK ? 0 : -1;
}

static pcn_model *model_from_settings(const pcn_cli *c) {
    int dims[65];
    int n = parse_dims(c->dims, dims, 65);
    if (n < 2) {
        pcn_set_error(PCN_EINVAL, "--dims must be at least two positive integers separated by "
                      "commas (input first), got '%s'", c->dims);
        return NULL;
    }
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = n, mp.output_dim = c->output_dim, mp.seed = (uint64_t)c->seed;
    if (c->output_dim < 0) {
        pcn_set_error(PCN_EINVAL, "--output-dim must be >= 1, got %d", c->output_dim);
        return NULL;
    }
    if (pcn_activation_from_name(c->activation, &mp.activation) != PCN_OK ||
        pcn_task_from_name(c->task, &mp.mode) != PCN_OK)
        return NULL;
    return pcn_model_init(&mp);
}

// A model file against the settings read over its own (read_settings): a setting that
// contradicts its model (dims, outputs, activation, task) is refused, not ignored. Local.
static pcn_status check_model(const pcn_cli *c, const pcn_ckpt_info *info, const char *path) {
    char have[512] = "";
    for (int l = 0; l < info->n_dims; l++)
        snprintf(have + strlen(have), sizeof have - strlen(have), l ? ",%d" : "%d", info->dims[l]);
    int dims[65], n = parse_dims(c->dims, dims, 65);
    bool same = n == info->n_dims;
    for (int l = 0; same && l < n; l++) same = dims[l] == info->dims[l];
    if (!same)
        return pcn_set_error(PCN_EINVAL, "%s holds a model of dims %s, but --dims is %s", path,
                             have, c->dims);
    if ((c->output_dim ? c->output_dim : dims[n - 1]) != info->output_dim)
        return pcn_set_error(PCN_EINVAL, "%s holds a readout of %d outputs, but --output-dim is %d",
                             path, info->output_dim, c->output_dim);
    pcn_activation act;
    pcn_task task;
    if (pcn_activation_from_name(c->activation, &act) != PCN_OK ||
        pcn_task_from_name(c->task, &task) != PCN_OK)
        return PCN_EINVAL;
    if (act != info->activation)
        return pcn_set_error(PCN_EINVAL, "%s holds a model with activation %s, but --activation "
                             "is %s", path, pcn_activation_name(info->activation), c->activation);
    if (task != info->mode)
        return pcn_set_error(PCN_EINVAL, "%s holds a %s model, but --task is %s", path,
                             pcn_task_name(info->mode), c->task);
    return PCN_OK;
}

// Settings, read once into a->cli: the defaults, then the stored settings of the model file
// (train --resume, test/predict --checkpoint), then --config, then the flags. That file's
// path may itself come from --config, so a first pass over the file and the flags finds it;
// *m is then its model (NULL without one). Returns EXIT_OK, EXIT_USAGE or EXIT_ERROR with
// the message set (not printed). Collective.
static int read_settings(app *a, bool train, pcn_ckpt_info *info, pcn_history *h,
                         pcn_model **m, const char **pos, int max_pos, int *npos) {
    if (load_settings(a, NULL, pos, max_pos, npos) != 0) return EXIT_USAGE;
    const char *key = train ? "--resume" : "--checkpoint";
    char path[PCN_CLI_PATH];
    snprintf(path, sizeof path, "%s", train ? a->cli.resume : a->cli.checkpoint);
    if (!path[0]) return EXIT_OK;
    if (pcn_dist_agree(a->comm, pcn_io_file_regular(path, key)) != PCN_OK) return EXIT_USAGE;
    if (!(*m = pcn_io_ckpt_read(a->comm, path, info, h))) return EXIT_ERROR;
    if (load_settings(a, info->config, pos, max_pos, npos) != 0) return EXIT_USAGE;
    return pcn_dist_agree(a->comm, check_model(&a->cli, info, path)) == PCN_OK ? EXIT_OK
                                                                                : EXIT_USAGE;
}

// ----------------------------------------------------------------------------------------
// Training: the batch hook (metrics, stop signals, checkpoints)
// ----------------------------------------------------------------------------------------

typedef struct {
    app *a;
    pcn_io_metrics *metrics;   // rank 0's metrics file, or NULL
    pcn_ckpt_meta meta;
    pcn_train_position last;   // position after the previous batch
    double t_last;             // wall clock then
    int batches;               // batches done in this process's run
    int ckpt_at;               // value of batches when the last checkpoint was written
    bool append;               // resuming: append to the metrics file
    double ckpt_seconds;       // this rank's time in checkpoint writes so far
    double ckpt_reported;      // ... as of the last batch line
    int64_t batch_size, n;
} run_ctx;

static double last_of(const pcn_history *h, pcn_history_series s) {
    size_t n = pcn_history_len(h, s);
    return n ? pcn_history_data(h, s)[n - 1] : NAN;
}

// Rank 0's batch record. Local.
static pcn_status metrics_batch(run_ctx *r, const pcn_history *h, const pcn_train_position *next,
                                double dt) {
    const double *s0 = r->last.seconds, *s1 = next->seconds;
    pcn_io_metrics_batch_rec b = {
        .epoch = next->batch == 0 ? next->epoch - 1 : next->epoch,
        .batch = next->batch == 0 ? (int)((r->n + r->batch_size - 1) / r->batch_size) - 1
                                  : next->batch - 1,
        .samples = next->samples - r->last.samples,
        .energy = last_of(h, PCN_HIST_PER_BATCH),
        .pre_learn_energy = last_of(h, PCN_HIST_PER_BATCH_PRE_LEARN),
        .lr = r->last.lr,
        .running_accuracy = pcn_history_running_accuracy(h),
        .seconds = dt,
        .rank0_seconds = {s1[0] - s0[0], s1[1] - s0[1], s1[2] - s0[2], s1[3] - s0[3],
                          r->ckpt_seconds - r->ckpt_reported}};
    b.samples_per_s = b.samples / dt;
    r->ckpt_reported = r->ckpt_seconds;
    return pcn_io_metrics_batch(r->metrics, &b);
}

// At an epoch's end: per-phase seconds of the epoch, max and mean over ranks. Collective;
// rank 0 writes the record and returns its status (the caller agrees it).
static pcn_status metrics_epoch(run_ctx *r, const pcn_history *h, const pcn_train_position *next,
                                const double epoch_sec[5], double epoch_wall) {
    double mx[5], sum[5];
    MPI_Comm comm = pcn_dist_mpi(r->a->comm);
    PCN_MPI_CHECK(MPI_Reduce(epoch_sec, mx, 5, MPI_DOUBLE, MPI_MAX, 0, comm));
    PCN_MPI_CHECK(MPI_Reduce(epoch_sec, sum, 5, MPI_DOUBLE, MPI_SUM, 0, comm));
    if (!r->metrics) return PCN_OK;
    int P = pcn_dist_size(r->a->comm);
    pcn_io_metrics_epoch_rec e = {
        .epoch = next->epoch - 1, .ranks = P,
        .energy = last_of(h, PCN_HIST_PER_EPOCH),
        .pre_learn_energy = last_of(h, PCN_HIST_PER_EPOCH_PRE_LEARN),
        .train_accuracy = pcn_history_len(h, PCN_HIST_TRAIN_ACCURACY)
                              ? last_of(h, PCN_HIST_TRAIN_ACCURACY) : NAN,
        .lr = last_of(h, PCN_HIST_LR_PER_EPOCH),
        .seconds = epoch_wall, .samples_per_s = r->n / epoch_wall};
    for (int k = 0; k < 5; k++) e.seconds_max[k] = mx[k], e.seconds_mean[k] = sum[k] / P;
    return pcn_io_metrics_epoch(r->metrics, &e);
}

static const char *ckpt_path(const pcn_cli *c) {
    return c->checkpoint[0] ? c->checkpoint : "pcn_dist_checkpoint.h5";
}

typedef struct {
    double epoch_start_sec[4];
    double epoch_start_ckpt;
    double epoch_start_wall;
} epoch_mark;

static epoch_mark mark;

static pcn_status batch_hook(void *u, pcn_model *m, const pcn_history *h,
                             const pcn_train_position *next, bool *stop) {
    run_ctx *r = u;
    app *a = r->a;
    const pcn_cli *c = &a->cli;
    double t = pcn_now();
    r->batches++;
    // The metrics file opens with the first batch, so a run refused before it leaves none.
    // Rank 0 writes; a failure (open, a full disk) is agreed below, so every rank stops here.
    pcn_status ms = PCN_OK;
    if (r->batches == 1 && c->metrics[0] && pcn_dist_rank(a->comm) == 0 &&
        !(r->metrics = pcn_io_metrics_open(c->metrics, r->append)))
        ms = PCN_EIO;
    if (c->stop_after_batches && r->batches == c->stop_after_batches && pcn_dist_rank(a->comm) == 0)
        raise(SIGTERM); // the real signal path, at a known batch (tests)
    if (r->metrics && ms == PCN_OK) ms = metrics_batch(r, h, next, t - r->t_last);
    if (next->batch == 0) {
        double sec[5];
        for (int k = 0; k < 4; k++) sec[k] = next->seconds[k] - mark.epoch_start_sec[k];
        sec[4] = r->ckpt_seconds - mark.epoch_start_ckpt;
        pcn_status es = metrics_epoch(r, h, next, sec, t - mark.epoch_start_wall);
        if (ms == PCN_OK) ms = es;
        memcpy(mark.epoch_start_sec, next->seconds, sizeof mark.epoch_start_sec);
        mark.epoch_start_ckpt = r->ckpt_seconds;
        mark.epoch_start_wall = t;
    }
    if ((ms = pcn_dist_agree(a->comm, ms)) != PCN_OK) return ms;
    r->last = *next;
    r->t_last = t;
    int mine = stop_signal != 0, any = 0;
    PCN_MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, pcn_dist_mpi(a->comm)));
    bool periodic = c->checkpoint_every > 0 && r->batches % c->checkpoint_every == 0;
    if (any || periodic) {
        double t0 = pcn_now();
        pcn_status st = pcn_io_ckpt_write(a->comm, ckpt_path(c), m, next, h, &r->meta,
                                          c->keep_checkpoints);
        r->ckpt_seconds += pcn_now() - t0;
        if (st != PCN_OK) return st;
        r->ckpt_at = r->batches;
    }
    if (any) {
        *stop = true;
        if (pcn_dist_rank(a->comm) == 0)
            fprintf(stderr, "pcn_dist: stop signal: checkpoint written to %s (epoch %d, batch %d); "
                    "resume with --resume %s\n", ckpt_path(c), next->epoch, next->batch, ckpt_path(c));
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Commands
// ----------------------------------------------------------------------------------------

static pcn_io_mode data_mode(const pcn_cli *c) {
    return strcmp(c->data_mode, "stream") == 0 ? PCN_IO_STREAM : PCN_IO_MEMORY;
}

static double test_seconds = NAN; // wall time of the last pcn_dist_test (test --json)

// v printed with fmt into buf (32 bytes), or "null" when it is not finite.
static const char *json_value(char *buf, double v, const char *fmt) {
    if (!isfinite(v)) return "null";
    snprintf(buf, 32, fmt, v);
    return buf;
}

static void print_test(app *a, const pcn_test_result *r, const char *split) {
    if (pcn_dist_rank(a->comm) != 0) return;
    if (a->cli.json) {
        // JSON has no NaN or Infinity: a non-finite value (a diverged model) is null.
        char acc[32], topk[32], energy[32], mse[32];
        printf("{\"split\":\"%s\",\"accuracy\":%s,\"top%d\":%s,\"energy\":%s,\"mse\":%s,"
               "\"samples\":%lld,\"ranks\":%d,\"seconds\":%.6g}\n", split,
               json_value(acc, r->accuracy, "%.6f"), r->k, json_value(topk, r->top_k, "%.6f"),
               json_value(energy, r->energy, "%.8g"), json_value(mse, r->mse, "%.8g"),
               (long long)r->samples, pcn_dist_size(a->comm),
               isfinite(test_seconds) ? test_seconds : 0.0);
    } else if (strcmp(a->cli.task, "regression") == 0) {
        printf("%s: mse %.6f | energy %.6f | %lld samples\n", split, r->mse, r->energy,
               (long long)r->samples);
    } else {
        printf("%s: accuracy %.4f | top-%d %.4f | energy %.6f | %lld samples\n", split,
               r->accuracy, r->k, r->top_k, r->energy, (long long)r->samples);
    }
    fflush(stdout);
}

// Evaluates split of the data set with model. Collective.
static pcn_status evaluate(app *a, const pcn_model *m, const pcn_train_params *p,
                           const char *split, float *yhat, pcn_test_result *r) {
    pcn_dataset *ds = pcn_io_dataset_open(a->comm, a->cli.data, split, data_mode(&a->cli));
    if (!ds) return PCN_EDATA;
    pcn_data d = pcn_io_dataset_source(ds);
    double t0 = pcn_now();
    pcn_status st = pcn_dist_test(m, &d, p, r, yhat, a->comm);
    test_seconds = pcn_now() - t0;
    pcn_io_dataset_close(ds);
    return st;
}

// A new model from --dims and the other model settings. Collective.
static pcn_status new_model(app *a, pcn_model **m) {
    pcn_status st = PCN_OK;
    if (!a->cli.dims[0]) st = pcn_set_error(PCN_EINVAL, "--dims is required (e.g. --dims 784,256,64,10)");
    if (st == PCN_OK && !(*m = model_from_settings(&a->cli))) st = PCN_EINVAL;
    return pcn_dist_agree(a->comm, st);
}

// No output may be the same file as an input or as another output (by device and inode,
// not by spelling): --metrics on --resume or --data would destroy it. A run's checkpoint
// may be the file it resumes from. Local; the caller agrees.
static pcn_status check_outputs(const pcn_cli *c, bool train) {
    const char *cfg = c->config[0] ? c->config : NULL;
    const struct { const char *name, *path; } in[] = {
        {"--data", c->data}, {"--config", cfg}, {"--resume", train ? c->resume : NULL},
        {"--checkpoint", train ? NULL : c->checkpoint}};
    const struct { const char *name, *path; } out[] = {
        {"--checkpoint", train ? c->checkpoint : NULL}, {"--metrics", train ? c->metrics : NULL},
        {"--output", train ? NULL : c->output}};
    for (size_t o = 0; o < sizeof out / sizeof *out; o++) {
        if (!out[o].path || !out[o].path[0]) continue;
        for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
            bool resumed = o == 0 && i == 2; // --checkpoint over its own --resume
            if (!resumed && pcn_io_file_same(out[o].path, in[i].path))
                return pcn_set_error(PCN_EINVAL, "%s %s is the same file as %s %s: an output "
                                     "must not replace an input", out[o].name, out[o].path,
                                     in[i].name, in[i].path);
        }
        for (size_t k = o + 1; k < sizeof out / sizeof *out; k++)
            if (out[k].path && pcn_io_file_same(out[o].path, out[k].path))
                return pcn_set_error(PCN_EINVAL, "%s %s and %s %s are the same file",
                                     out[o].name, out[o].path, out[k].name, out[k].path);
    }
    return PCN_OK;
}

// The folders of --checkpoint and --metrics must exist and be writable before hours of
// training, not after. Rank 0 looks; the caller agrees.
static pcn_status check_writable(const app *a) {
    const char *paths[2] = {a->cli.checkpoint, a->cli.metrics}, *names[2] = {"checkpoint", "metrics"};
    for (int i = 0; i < 2 && pcn_dist_rank(a->comm) == 0; i++) {
        if (!paths[i][0]) continue;
        char dir[PCN_CLI_PATH];
        snprintf(dir, sizeof dir, "%s", paths[i]);
        char *slash = strrchr(dir, '/');
        if (slash == dir) dir[1] = '\0';
        else if (slash) *slash = '\0';
        else strcpy(dir, ".");
        if (access(dir, W_OK) != 0)
            return pcn_set_error(PCN_EIO, "--%s %s: the folder %s does not exist or is not "
                                 "writable", names[i], paths[i], dir);
    }
    return PCN_OK;
}

// Trains (or resumes), writes the final checkpoint, then scores the test split. Collective.
static int run_training(app *a, pcn_model *m, pcn_history *h, pcn_train_params *p,
                        const pcn_train_position *resume) {
    const pcn_cli *c = &a->cli;
    bool root = pcn_dist_rank(a->comm) == 0;
    pcn_dataset *ds = pcn_io_dataset_open(a->comm, c->data, "train", data_mode(c));
    if (!ds) return EXIT_ERROR;
    pcn_data train = pcn_io_dataset_source(ds);
    char *ini = pcn_cli_to_ini(c);
    run_ctx r = {.a = a, .meta = {(uint64_t)c->seed, ini}, .t_last = pcn_now(),
                 .batch_size = p->batch_size, .n = train.n};
    r.append = resume != NULL;
    pcn_status st = PCN_OK;
    pcn_progress *progress = NULL;
    if (st == PCN_OK) {
        if (resume) r.last = *resume, r.last.samples = 0, memset(r.last.seconds, 0, sizeof r.last.seconds);
        else r.last = (pcn_train_position){.lr = p->lr_learn, .plateau_best = INFINITY};
        mark = (epoch_mark){{0}, 0.0, pcn_now()};
        if (root && c->progress) {
            progress = pcn_progress_init(stdout, a->device);
            p->callbacks = pcn_progress_callbacks(progress);
        }
        p->batch_hook = batch_hook, p->batch_hook_user = &r, p->resume = resume;
        st = pcn_dist_train(m, &train, p, h, a->comm);
    }
    pcn_io_dataset_close(ds);
    pcn_progress_free(progress);
    int rc = st == PCN_OK ? EXIT_OK : st == PCN_STOPPED ? EXIT_STOPPED : EXIT_ERROR;
    // The final checkpoint: where training ended (schedule state included, so a resume with
    // more --epochs continues it), unless the last batch's hook just wrote exactly that.
    if (st == PCN_OK && c->checkpoint[0] && (r.ckpt_at != r.batches || r.batches == 0)) {
        st = pcn_io_ckpt_write(a->comm, c->checkpoint, m, &r.last, h, &r.meta,
                               c->keep_checkpoints);
        if (st != PCN_OK) rc = EXIT_ERROR;
    }
    if (st == PCN_OK && c->checkpoint[0] && root) printf("checkpoint: %s\n", c->checkpoint);
    if (rc == EXIT_OK) {
        pcn_test_result tr;
        st = evaluate(a, m, p, "test", NULL, &tr);
        if (st == PCN_OK) print_test(a, &tr, "test");
        else rc = EXIT_ERROR;
        // The run's last metrics line, its test result, then the file closed (synced): rank 0
        // writes (opening the file if no batch ran), every rank agrees.
        pcn_status ms = PCN_OK;
        if (st == PCN_OK && root && c->metrics[0]) {
            if (!r.metrics && !(r.metrics = pcn_io_metrics_open(c->metrics, true))) ms = PCN_EIO;
            pcn_io_metrics_test_rec t = {tr.samples, tr.accuracy, tr.top_k, tr.energy, tr.mse,
                                         test_seconds};
            if (ms == PCN_OK) ms = pcn_io_metrics_test(r.metrics, &t);
            pcn_status closed = pcn_io_metrics_close(r.metrics);
            if (ms == PCN_OK) ms = closed;
            r.metrics = NULL;
        }
        if (st == PCN_OK && pcn_dist_agree(a->comm, ms) != PCN_OK) rc = EXIT_ERROR;
    }
    if (r.metrics) { // a failed or stopped run: close the file, keeping the run's own message
        char why[1024];
        snprintf(why, sizeof why, "%s", pcn_last_error());
        pcn_io_metrics_close(r.metrics);
        if (st != PCN_OK) pcn_set_error(st, "%s", why);
    }
    free(ini);
    return rc;
}

static int cmd_train(app *a) {
    pcn_cli *c = &a->cli;
    const char *pos[1];
    pcn_history *h = pcn_history_init();
    pcn_ckpt_info info = {0};
    pcn_model *m = NULL;
    pcn_io_lock *lock = NULL;
    pcn_lr_step steps[256];
    pcn_train_params p;
    int npos, rc = read_settings(a, true, &info, h, &m, pos, 0, &npos);
    const bool resume = m != NULL;
    pcn_status st = PCN_OK;
    if (rc != EXIT_OK) {
        if (rc == EXIT_USAGE) fail(a, EXIT_USAGE, NULL);
        goto done;
    }
    rc = EXIT_ERROR;
    if (!c->data[0]) st = pcn_set_error(PCN_EINVAL, "--data is required");
    if (st == PCN_OK) st = check_device(c);
    if (st == PCN_OK) st = to_params(c, &p, steps, 256);
    if (st == PCN_OK) st = check_outputs(c, true);
    // --inject-fault ckpt-write (every rank) or ckpt-write@R (rank R only)
    int fault = PCN_CKPT_FAULT_OFF, fault_end = 0, size = pcn_dist_size(a->comm);
    if (st == PCN_OK && !strcmp(c->inject_fault, "ckpt-write")) fault = PCN_CKPT_FAULT_ALL;
    else if (st == PCN_OK && c->inject_fault[0] &&
             (sscanf(c->inject_fault, "ckpt-write@%d%n", &fault, &fault_end) != 1 ||
              c->inject_fault[fault_end] || fault < 0 || fault >= size))
        st = pcn_set_error(PCN_EINVAL, "--inject-fault %s: want ckpt-write (every rank) or "
                           "ckpt-write@R (rank R, 0 to %d of %d ranks)", c->inject_fault,
                           size - 1, size);
    if (pcn_dist_agree(a->comm, st) != PCN_OK) {
        rc = fail(a, EXIT_USAGE, NULL);
        goto done;
    }
    pcn_io_ckpt_inject_fault(fault);
    // A new model from the settings (a resumed one was checked against them): usage errors.
    if (!resume && new_model(a, &m) != PCN_OK) {
        rc = fail(a, EXIT_USAGE, NULL);
        goto done;
    }
    if (pcn_dist_agree(a->comm, check_writable(a)) != PCN_OK) goto done;
    // One writer per checkpoint, from now to the end of the run.
    if (c->checkpoint[0] && pcn_io_lock_take(a->comm, c->checkpoint, "--checkpoint", &lock) != PCN_OK)
        goto done;
    if ((st = setup_device(a, m, &p, a->device, sizeof a->device)) != PCN_OK) {
        rc = fail(a, st == PCN_EINVAL ? EXIT_USAGE : EXIT_ERROR, NULL);
        goto done;
    }
    if (pcn_dist_rank(a->comm) == 0 && strcmp(a->device, "cpu")) printf("device: %s\n", a->device);
    rc = run_training(a, m, h, &p, resume ? &info.pos : NULL);
done:
    if (rc == EXIT_ERROR && pcn_last_error()[0]) fail(a, EXIT_ERROR, NULL);
    pcn_io_lock_release(lock);
    pcn_io_ckpt_info_free(&info);
    pcn_history_free(h);
    pcn_model_free(m);
    return rc;
}

// Writes /yhat (n, K) and /pred (n) to --output atomically (io/predictions.c); rank 0's
// yhat ends up holding every rank's rows. Collective.
static pcn_status write_predictions(app *a, float *yhat, int64_t n, int K, const char *ck) {
    const pcn_cli *c = &a->cli;
    pcn_io_predictions_meta meta = {.checkpoint = ck, .data = c->data, .split = c->split};
    return pcn_io_predictions_write(a->comm, c->output, yhat, n, K, &meta);
}

// test and predict: a checkpoint's model on a split of a data set.
static int cmd_eval(app *a, bool predict) {
    pcn_cli *c = &a->cli;
    const char *ck = c->checkpoint, *pos[1];
    pcn_ckpt_info info = {0};
    pcn_model *m = NULL;
    pcn_lr_step steps[256];
    pcn_train_params p;
    float *yhat = NULL;
    int npos, rc = read_settings(a, false, &info, NULL, &m, pos, 0, &npos);
    if (rc != EXIT_OK) goto done;
    rc = EXIT_USAGE;
    pcn_status st = m ? PCN_OK : pcn_set_error(PCN_EINVAL, "--checkpoint is required");
    if (st == PCN_OK && !c->data[0]) st = pcn_set_error(PCN_EINVAL, "--data is required");
    if (st == PCN_OK && predict && !c->output[0]) st = pcn_set_error(PCN_EINVAL, "--output is required");
    if (st == PCN_OK) st = check_device(c);
    if (st == PCN_OK) st = to_params(c, &p, steps, 256);
    if (st == PCN_OK) st = check_outputs(c, false);
    if (pcn_dist_agree(a->comm, st) != PCN_OK) goto done;
    if ((st = setup_device(a, m, &p, a->device, sizeof a->device)) != PCN_OK) {
        rc = st == PCN_EINVAL ? EXIT_USAGE : EXIT_ERROR;
        goto done;
    }
    rc = EXIT_ERROR;
    pcn_dataset *ds = pcn_io_dataset_open(a->comm, c->data, c->split, data_mode(c));
    if (!ds) goto done;
    pcn_data d = pcn_io_dataset_source(ds);
    size_t K = (size_t)pcn_model_output_dim(m);
    if (predict && !(yhat = calloc((size_t)d.n * K, sizeof *yhat))) pcn_fatal("out of memory");
    pcn_test_result r;
    double t0 = pcn_now();
    st = pcn_dist_test(m, &d, &p, &r, yhat, a->comm);
    test_seconds = pcn_now() - t0;
    pcn_io_dataset_close(ds);
    if (st != PCN_OK) goto done;
    if (predict) st = write_predictions(a, yhat, d.n, (int)K, ck);
    if (st != PCN_OK) goto done;
    if (!predict) print_test(a, &r, c->split);
    else if (pcn_dist_rank(a->comm) == 0) printf("predictions: %s (%lld rows)\n", c->output, (long long)d.n);
    rc = EXIT_OK;
done:
    if (rc != EXIT_OK) fail(a, rc, NULL);
    free(yhat);
    pcn_io_ckpt_info_free(&info);
    pcn_model_free(m);
    return rc;
}

// ----------------------------------------------------------------------------------------
// info
// ----------------------------------------------------------------------------------------

static void describe_split(hid_t f, const char *split) {
    char path[64];
    snprintf(path, sizeof path, "/%s/x", split);
    if (H5Lexists(f, split, H5P_DEFAULT) <= 0) return;
    hsize_t dx[3] = {0}, dy[3] = {0};
    H5T_class_t cls;
    size_t size;
    int rx = 0, ry = 0;
    H5LTget_dataset_ndims(f, path, &rx);
    if (rx > 0 && rx <= 3) H5LTget_dataset_info(f, path, dx, &cls, &size);
    snprintf(path, sizeof path, "/%s/y", split);
    H5LTget_dataset_ndims(f, path, &ry);
    if (ry > 0 && ry <= 3) H5LTget_dataset_info(f, path, dy, &cls, &size);
    printf("  %-5s x [%llu, %llu]  y [%llu%s]\n", split, (unsigned long long)dx[0],
           (unsigned long long)dx[1], (unsigned long long)dy[0], ry == 2 ? ", K" : "");
}

static int info_file(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, R_OK) != 0) {
        pcn_set_error(PCN_EIO, "%s: no such file", path);
        return EXIT_ERROR;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        pcn_set_error(PCN_EDATA, "%s: not an HDF5 file (or truncated)", path);
        return EXIT_ERROR;
    }
    char fmt[64] = "";
    H5LTget_attribute_string(f, "/", "pcn_format", fmt);
    printf("%s: %s\n", path, fmt[0] ? fmt : "an HDF5 file without a pcn_format attribute");
    if (strcmp(fmt, "pcn-dataset") == 0) {
        int version = 0, classes = 0;
        H5LTget_attribute_int(f, "/", "format_version", &version);
        H5LTget_attribute_int(f, "/", "num_classes", &classes);
        printf("  format_version %d, %d classes, normalisation %s\n", version, classes,
               H5Lexists(f, "norm", H5P_DEFAULT) > 0 ? "yes" : "no");
        describe_split(f, "train");
        describe_split(f, "test");
    } else if (strcmp(fmt, "pcn-checkpoint") == 0) {
        int version = 0, ranks = 0, dims[65], K = 0, epoch = 0, batch = 0;
        char act[32] = "", mode[32] = "", lib[32] = "";
        double lr = 0;
        hsize_t nd = 0;
        H5T_class_t cls;
        size_t size;
        H5LTget_attribute_int(f, "/", "format_version", &version);
        H5LTget_attribute_int(f, "/", "ranks", &ranks);
        H5LTget_attribute_int(f, "/", "output_dim", &K);
        H5LTget_attribute_string(f, "/", "activation", act);
        H5LTget_attribute_string(f, "/", "mode", mode);
        H5LTget_attribute_string(f, "/", "library_version", lib);
        if (H5LTget_attribute_info(f, "/", "dims", &nd, &cls, &size) >= 0 && nd <= 65)
            H5LTget_attribute_int(f, "/", "dims", dims);
        H5LTget_attribute_int(f, "/state", "epoch", &epoch);
        H5LTget_attribute_int(f, "/state", "batch", &batch);
        H5LTget_attribute_double(f, "/state", "lr", &lr);
        printf("  format_version %d, written by libpcn %s with %d ranks\n  dims ", version, lib, ranks);
        for (hsize_t l = 0; l < nd; l++) printf(l ? ",%d" : "%d", dims[l]);
        printf("  output_dim %d  activation %s  mode %s\n", K, act, mode);
        printf("  next batch: epoch %d, batch %d; lr_learn %g\n", epoch, batch, lr);
    }
    H5Fclose(f);
    return EXIT_OK;
}

static int cmd_info(app *a) {
    const char *pos[2];
    int npos = 0;
    if (load_settings(a, NULL, pos, 2, &npos) != 0) return fail(a, EXIT_USAGE, NULL);
    pcn_status st = npos == 1 ? PCN_OK : pcn_set_error(PCN_EINVAL, "usage: pcn_dist info FILE.h5");
    if (pcn_dist_agree(a->comm, st) != PCN_OK) return fail(a, EXIT_USAGE, NULL);
    int rc = pcn_dist_rank(a->comm) == 0 ? info_file(pos[0]) : EXIT_OK;
    st = pcn_dist_agree(a->comm, rc == EXIT_OK ? PCN_OK : PCN_EDATA);
    return st == PCN_OK ? EXIT_OK : fail(a, EXIT_ERROR, NULL);
}

// ----------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    // The stop signals are caught from the first moment: mpirun forwards SIGUSR1 to ranks
    // that may still be inside MPI_Init, whose default action would kill them.
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    int provided;
    // FUNNELED: only this thread calls MPI; the stream-mode prefetch thread reads with HDF5.
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    app a = {.comm = pcn_dist_init(MPI_COMM_WORLD), .argc = argc, .argv = argv};
    pcn_cli_defaults(&a.cli);
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc;
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        if (pcn_dist_rank(a.comm) == 0) printf("pcn_dist %s (libpcn %s)\n", PCN_VERSION_STRING, pcn_version());
        rc = EXIT_OK;
    } else if (!strcmp(cmd, "--help") || !strcmp(cmd, "help") || pcn_cli_given(argc, argv, "help")) {
        if (pcn_dist_rank(a.comm) == 0) pcn_cli_usage(stdout);
        rc = EXIT_OK;
    } else if (!strcmp(cmd, "train")) rc = cmd_train(&a);
    else if (!strcmp(cmd, "test")) rc = cmd_eval(&a, false);
    else if (!strcmp(cmd, "predict")) rc = cmd_eval(&a, true);
    else if (!strcmp(cmd, "info")) rc = cmd_info(&a);
    else {
        if (pcn_dist_rank(a.comm) == 0) {
            fprintf(stderr, "pcn_dist: unknown command '%s'\n", cmd);
            pcn_cli_usage(stderr);
        }
        rc = EXIT_USAGE;
    }
    pcn_dist_free(a.comm);
    MPI_Finalize();
    return rc;
}
