/*
 * cmd_train.c — `pcn_dist train`: checks the settings, trains (or resumes) over the ranks,
 * writes the checkpoint and scores the test split; the batch hook between batches writes
 * the metrics, agrees on the stop signals and writes periodic checkpoints.
 *
 * Every rank runs the same sequence of collective steps; every failure is agreed, so all
 * ranks stop together and rank 0 prints the one message. SIGTERM and SIGUSR1 set a flag;
 * at the next batch boundary the ranks agree on it, write the checkpoint and exit with
 * status 3 (requeue).
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "program.h"

// Where the phase clocks and the checkpoint clock stood when the current epoch began.
typedef struct {
    pcn_train_seconds sec; // next->seconds at the epoch's start (the trainer's phase clocks)
    double ckpt;      // run_ctx.ckpt_seconds then
    double wall;      // wall clock then
} epoch_mark;

typedef struct {
    app *a;
    const pcn_train_params *p; // the run's parameters (the test split is scored with them)
    pcn_io_metrics *metrics;   // rank 0's metrics file, or NULL
    pcn_ckpt_meta meta;
    pcn_train_position last;   // position after the previous batch
    double t_last;             // wall clock then
    int batches;               // batches done in this process's run
    int ckpt_at;               // value of batches when the last checkpoint was written
    bool append;               // resuming: append to the metrics file
    double ckpt_seconds;       // this rank's time in checkpoint writes so far
    double ckpt_reported;      // ... as of the last batch line
    int64_t calls, bytes;      // pcn_dist_traffic as of the last batch line
    epoch_mark mark;           // the current epoch's start
    int64_t batch_size, n;
} run_ctx;

// ----------------------------------------------------------------------------------------
// Metrics
// ----------------------------------------------------------------------------------------

static double last_of(const pcn_history *h, pcn_history_series s) {
    size_t n = pcn_history_len(h, s);
    return n ? pcn_history_data(h, s)[n - 1] : NAN;
}

// The trainer's clocks between two positions (a to b) and the checkpoint seconds, as the
// metrics records order their phases.
static void phase_seconds(const pcn_train_seconds *a, const pcn_train_seconds *b, double ckpt,
                          double out[PCN_IO_METRICS_PHASES]) {
    out[PCN_IO_PHASE_INFERENCE] = b->inference - a->inference;
    out[PCN_IO_PHASE_LEARNING] = b->learning - a->learning;
    out[PCN_IO_PHASE_COLLECTIVES] = b->collectives - a->collectives;
    out[PCN_IO_PHASE_IO] = b->data - a->data;
    out[PCN_IO_PHASE_CHECKPOINT] = ckpt;
}

// Rank 0's batch record. Local.
static pcn_status metrics_batch(run_ctx *r, const pcn_history *h, const pcn_train_position *next,
                                double dt) {
    pcn_io_metrics_batch_rec b = {
        .epoch = next->batch == 0 ? next->epoch - 1 : next->epoch,
        .batch = next->batch == 0 ? (int)((r->n + r->batch_size - 1) / r->batch_size) - 1
                                  : next->batch - 1,
        .samples = next->samples - r->last.samples,
        .energy = last_of(h, PCN_HIST_PER_BATCH),
        .pre_learn_energy = last_of(h, PCN_HIST_PER_BATCH_PRE_LEARN),
        .lr = r->last.lr,
        .running_accuracy = pcn_history_running_accuracy(h),
        .seconds = dt};
    phase_seconds(&r->last.seconds, &next->seconds, r->ckpt_seconds - r->ckpt_reported,
                  b.rank0_seconds);
    int64_t calls, bytes;
    pcn_dist_traffic(r->a->comm, &calls, &bytes);
    b.collectives = calls - r->calls, b.bytes_sent = bytes - r->bytes;
    r->calls = calls, r->bytes = bytes;
    b.samples_per_s = b.samples / dt;
    r->ckpt_reported = r->ckpt_seconds;
    return pcn_io_metrics_batch(r->metrics, &b);
}

// At an epoch's end (t: now): per-phase seconds of the epoch, max and mean over ranks, then
// the mark moves to t. Collective; rank 0 writes the record and returns its status (the
// caller agrees it).
static pcn_status metrics_epoch(run_ctx *r, const pcn_history *h, const pcn_train_position *next,
                                double t) {
    double sec[PCN_IO_METRICS_PHASES], mx[PCN_IO_METRICS_PHASES], sum[PCN_IO_METRICS_PHASES];
    phase_seconds(&r->mark.sec, &next->seconds, r->ckpt_seconds - r->mark.ckpt, sec);
    double epoch_wall = t - r->mark.wall;
    r->mark.sec = next->seconds;
    r->mark.ckpt = r->ckpt_seconds, r->mark.wall = t;
    pcn_dist_reduce_max_sum(r->a->comm, sec, PCN_IO_METRICS_PHASES, mx, sum);
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
    for (int k = 0; k < PCN_IO_METRICS_PHASES; k++)
        e.seconds_max[k] = mx[k], e.seconds_mean[k] = sum[k] / P;
    return pcn_io_metrics_epoch(r->metrics, &e);
}

// ----------------------------------------------------------------------------------------
// Scores during training (--test-every)
// ----------------------------------------------------------------------------------------

// Whether the test split is scored after `done` epochs: every --test-every-th epoch. The
// batch hook scores all but the run's last, whose score is the final test's (test_after).
static bool test_due(const run_ctx *r, int done) {
    const int n = r->a->cli.test_every;
    return n > 0 && done > 0 && done % n == 0;
}

// The score after `done` epochs as a line and, on rank 0, an epoch_test record (0-based
// epoch, as the epoch records). Local; the caller agrees.
static pcn_status report_epoch_test(run_ctx *r, const pcn_test_result *tr, int done) {
    cmd_eval_print_epoch(r->a, tr, done);
    if (!r->metrics) return PCN_OK;
    pcn_io_metrics_test_rec t = {tr->samples, tr->accuracy, tr->top_k, tr->energy, tr->mse,
                                 r->a->test_seconds};
    return pcn_io_metrics_epoch_test(r->metrics, done - 1, &t);
}

// In the batch hook after `done` epochs: the test split scored on the current weights (the
// final test's path; the weights and the trainer's state are only read), printed and
// recorded. Its time leaves the next batch's and epoch's wall clocks and its collectives
// the next batch record. Collective.
static pcn_status epoch_test(run_ctx *r, pcn_model *m, int done) {
    pcn_test_result tr;
    const double t0 = pcn_now();
    pcn_status st = cmd_eval_split(r->a, m, r->p, "test", &tr); // agreed
    free(r->a->confusion), r->a->confusion = NULL;
    if (st == PCN_OK) st = pcn_dist_agree(r->a->comm, report_epoch_test(r, &tr, done));
    const double dt = pcn_now() - t0;
    r->t_last += dt, r->mark.wall += dt;
    pcn_dist_traffic(r->a->comm, &r->calls, &r->bytes);
    return st;
}

// ----------------------------------------------------------------------------------------
// The batch hook
// ----------------------------------------------------------------------------------------

static const char *ckpt_path(const pcn_cli *c) {
    return c->checkpoint[0] ? c->checkpoint : "pcn_dist_checkpoint.h5";
}

// The metrics of the batch just done (t: now). Collective at an epoch's end; the status is
// this rank's (batch_hook agrees it).
static pcn_status batch_metrics(run_ctx *r, const pcn_history *h, const pcn_train_position *next,
                                double t) {
    app *a = r->a;
    const pcn_cli *c = &a->cli;
    // The metrics file opens with the first batch, so a run refused before it leaves none.
    // Rank 0 writes; a failure (open, a full disk) is agreed, so every rank stops here.
    pcn_status ms = PCN_OK;
    if (r->batches == 1 && c->metrics[0] && pcn_dist_rank(a->comm) == 0 &&
        !(r->metrics = pcn_io_metrics_open(c->metrics, r->append)))
        ms = PCN_EIO;
    if (c->stop_after_batches && r->batches == c->stop_after_batches && pcn_dist_rank(a->comm) == 0)
        raise(SIGTERM); // the real signal path, at a known batch (tests)
    if (r->metrics && ms == PCN_OK) ms = metrics_batch(r, h, next, t - r->t_last);
    if (next->batch == 0) {
        pcn_status es = metrics_epoch(r, h, next, t);
        if (ms == PCN_OK) ms = es;
    }
    return ms;
}

static pcn_status batch_hook(void *u, pcn_model *m, const pcn_history *h,
                             const pcn_train_position *next, bool *stop) {
    run_ctx *r = u;
    app *a = r->a;
    const pcn_cli *c = &a->cli;
    double t = pcn_now();
    r->batches++;
    // The metrics' status and the stop signals, agreed in one collective.
    bool any;
    pcn_status ms = pcn_dist_agree_any(a->comm, batch_metrics(r, h, next, t),
                                       program_stop_requested(), &any);
    if (ms != PCN_OK) return ms;
    r->last = *next;
    r->t_last = t;
    bool periodic = c->checkpoint_every > 0 && r->batches % c->checkpoint_every == 0;
    if (any || periodic) {
        double t0 = pcn_now();
        pcn_status st = pcn_io_ckpt_write(a->comm, ckpt_path(c), m, next, h, &r->meta,
                                          c->keep_checkpoints);
        r->ckpt_seconds += pcn_now() - t0;
        if (st != PCN_OK) return st;
        r->ckpt_at = r->batches;
    }
    // After the checkpoint, so a stop signal's checkpoint does not wait for the score.
    if (next->batch == 0 && next->epoch < r->p->num_epochs && test_due(r, next->epoch)) {
        pcn_status st = epoch_test(r, m, next->epoch);
        if (st != PCN_OK) return st;
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
// The run
// ----------------------------------------------------------------------------------------

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

// Whether rank 0's output reaches a terminal: its stdout is one and, when mpirun started
// it, mpirun's is one too (Open MPI gives each rank a pseudo-terminal of its own, even when
// mpirun's output goes to a file or a pipe). Local.
static bool output_is_terminal(void) {
    if (!isatty(STDOUT_FILENO)) return false;
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return true;
    char path[64], target[256];
    snprintf(path, sizeof path, "/proc/%d/fd/1", (int)getppid());
    const ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0) return false;
    target[n] = '\0';
    return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

// The training loop over the train split, the batch hook between batches. Collective.
static pcn_status train_loop(run_ctx *r, pcn_model *m, pcn_history *h, pcn_train_params *p,
                             const pcn_train_position *resume) {
    app *a = r->a;
    pcn_dataset *ds = pcn_io_dataset_open_with(a->comm, a->cli.data, "train", &a->data);
    if (!ds) return PCN_EDATA;
    pcn_data train = pcn_io_dataset_source(ds);
    r->n = train.n, r->t_last = pcn_now();
    pcn_dist_traffic(a->comm, &r->calls, &r->bytes);
    pcn_progress *progress = NULL;
    if (resume)
        r->last = *resume, r->last.samples = 0, r->last.seconds = (pcn_train_seconds){0};
    else r->last = (pcn_train_position){.lr = p->lr_learn, .plateau_best = INFINITY};
    r->mark = (epoch_mark){{0}, 0.0, pcn_now()};
    if (pcn_dist_rank(a->comm) == 0 && a->cli.progress) {
        progress = pcn_progress_init(stdout, a->device);
        pcn_progress_set_mode(progress, output_is_terminal() ? 1 : 0);
        p->callbacks = pcn_progress_callbacks(progress);
    }
    p->batch_hook = batch_hook, p->batch_hook_user = r, p->resume = resume;
    pcn_status st = pcn_dist_train(m, &train, p, h, a->comm);
    pcn_io_dataset_close(ds);
    pcn_progress_free(progress);
    return st;
}

// The run's last metrics lines, its test result (after the last epoch's epoch_test record
// when one is due: last_due is that epoch, 0-based, else -1), then the file closed
// (synced): rank 0 writes (opening the file if no batch ran), every rank agrees. Collective.
static pcn_status metrics_test(run_ctx *r, const pcn_test_result *tr, int last_due) {
    const pcn_cli *c = &r->a->cli;
    pcn_status ms = PCN_OK;
    if (pcn_dist_rank(r->a->comm) == 0 && c->metrics[0]) {
        if (!r->metrics && !(r->metrics = pcn_io_metrics_open(c->metrics, true))) ms = PCN_EIO;
        pcn_io_metrics_test_rec t = {tr->samples, tr->accuracy, tr->top_k, tr->energy, tr->mse,
                                     r->a->test_seconds};
        if (ms == PCN_OK && last_due >= 0)
            ms = pcn_io_metrics_epoch_test(r->metrics, last_due, &t);
        if (ms == PCN_OK) ms = pcn_io_metrics_test(r->metrics, &t);
        pcn_status closed = pcn_io_metrics_close(r->metrics);
        if (ms == PCN_OK) ms = closed;
        r->metrics = NULL;
    }
    return pcn_dist_agree(r->a->comm, ms);
}

// After a finished run: the test split scored, printed and recorded; with --test-every
// due after the last epoch, the same score is that epoch's too. Collective.
static pcn_status test_after(run_ctx *r, pcn_model *m, const pcn_train_params *p) {
    pcn_test_result tr;
    pcn_status st = cmd_eval_split(r->a, m, p, "test", &tr);
    if (st != PCN_OK) return st;
    const bool due = test_due(r, p->num_epochs);
    if (due) cmd_eval_print_epoch(r->a, &tr, p->num_epochs);
    cmd_eval_print(r->a, &tr, "test");
    free(r->a->confusion), r->a->confusion = NULL;
    return metrics_test(r, &tr, due ? p->num_epochs - 1 : -1);
}

// Trains (or resumes), writes the final checkpoint, then scores the test split. Collective.
static int run_training(app *a, pcn_model *m, pcn_history *h, pcn_train_params *p,
                        const pcn_train_position *resume) {
    const pcn_cli *c = &a->cli;
    char *ini = pcn_cli_to_ini(c);
    run_ctx r = {.a = a, .p = p, .meta = {(uint64_t)c->seed, ini, c->optimizer},
                 .batch_size = p->batch_size, .append = resume != NULL};
    pcn_status st = train_loop(&r, m, h, p, resume);
    int rc = st == PCN_OK ? EXIT_OK : st == PCN_STOPPED ? EXIT_STOPPED : EXIT_ERROR;
    // The final checkpoint: where training ended (schedule state included, so a resume with
    // more --epochs continues it), unless the last batch's hook just wrote exactly that.
    if (st == PCN_OK && c->checkpoint[0] && (r.ckpt_at != r.batches || r.batches == 0)) {
        st = pcn_io_ckpt_write(a->comm, c->checkpoint, m, &r.last, h, &r.meta,
                               c->keep_checkpoints);
        if (st != PCN_OK) rc = EXIT_ERROR;
    }
    if (st == PCN_OK && c->checkpoint[0] && pcn_dist_rank(a->comm) == 0)
        printf("checkpoint: %s\n", c->checkpoint);
    if (rc == EXIT_OK && (st = test_after(&r, m, p)) != PCN_OK) rc = EXIT_ERROR;
    if (r.metrics) { // a failed or stopped run: close the file, keeping the run's own message
        char why[1024];
        snprintf(why, sizeof why, "%s", pcn_last_error());
        pcn_io_metrics_close(r.metrics);
        if (st != PCN_OK) pcn_set_error(st, "%s", why);
    }
    free(ini);
    return rc;
}

// ----------------------------------------------------------------------------------------
// The command
// ----------------------------------------------------------------------------------------

// The settings of a training run checked, --inject-fault included: usage errors; resumed
// is the checkpoint's info on a resume, else NULL. Local; the caller agrees.
static pcn_status check_train(app *a, const pcn_ckpt_info *resumed, pcn_train_params *p,
                              pcn_lr_step *steps, int max_steps) {
    const pcn_cli *c = &a->cli;
    pcn_status st = PCN_OK;
    if (!c->data[0]) st = pcn_set_error(PCN_EINVAL, "--data is required");
    if (st == PCN_OK) st = settings_check(a);
    if (st == PCN_OK) st = settings_to_params(a, p, steps, max_steps);
    if (st == PCN_OK) st = settings_check_direction(a);
    if (st == PCN_OK && resumed) st = settings_check_resume_optimizer(a, resumed, c->resume);
    if (st == PCN_OK) st = settings_check_outputs(c, true);
    // --inject-fault ckpt-write (every rank) or ckpt-write@R (rank R only)
    int fault = PCN_CKPT_FAULT_OFF, fault_end = 0, size = pcn_dist_size(a->comm);
    if (st == PCN_OK && !strcmp(c->inject_fault, "ckpt-write")) fault = PCN_CKPT_FAULT_ALL;
    else if (st == PCN_OK && c->inject_fault[0] &&
             (sscanf(c->inject_fault, "ckpt-write@%d%n", &fault, &fault_end) != 1 ||
              c->inject_fault[fault_end] || fault < 0 || fault >= size))
        st = pcn_set_error(PCN_EINVAL, "--inject-fault %s: want ckpt-write (every rank) or "
                           "ckpt-write@R (rank R, 0 to %d of %d ranks)", c->inject_fault,
                           size - 1, size);
    if (st == PCN_OK) pcn_io_ckpt_inject_fault(fault);
    return st;
}

// From checked settings to a placed model: a new one (usage errors), the folders, the
// checkpoint's lock, an existing checkpoint (a usage error) and the device. Returns EXIT_OK
// or the exit status, with the message printed for usage errors (set for the others).
// Collective.
static int prepare(app *a, pcn_model **m, bool resume, pcn_train_params *p, pcn_io_lock **lock) {
    const pcn_cli *c = &a->cli;
    if (!resume && settings_new_model(a, m) != PCN_OK) return program_fail(a, EXIT_USAGE, NULL);
    if (pcn_dist_agree(a->comm, check_writable(a)) != PCN_OK) return EXIT_ERROR;
    // One writer per checkpoint, from now to the end of the run.
    if (c->checkpoint[0] && pcn_io_lock_take(a->comm, c->checkpoint, "--checkpoint", lock) != PCN_OK)
        return EXIT_ERROR;
    // An existing checkpoint of another run is not replaced unless told; looked at under the
    // lock, so no other run can create it between this look and this run's writes.
    pcn_status st = PCN_OK;
    if (pcn_dist_rank(a->comm) == 0) st = settings_check_replace(c, ckpt_path(c));
    if (pcn_dist_agree(a->comm, st) != PCN_OK) return program_fail(a, EXIT_USAGE, NULL);
    st = device_setup(a, *m, p);
    // Usage errors print here; other errors print once, where cmd_train ends.
    if (st != PCN_OK) return st == PCN_EINVAL ? program_fail(a, EXIT_USAGE, NULL) : EXIT_ERROR;
    if (pcn_dist_rank(a->comm) == 0 && strcmp(a->device, "cpu")) printf("device: %s\n", a->device);
    return EXIT_OK;
}

int cmd_train(app *a) {
    const char *pos[1];
    pcn_history *h = pcn_history_init();
    pcn_ckpt_info info = {0};
    pcn_model *m = NULL;
    pcn_io_lock *lock = NULL;
    pcn_lr_step steps[256];
    pcn_train_params p;
    int npos, rc = settings_read(a, true, &info, h, &m, pos, 0, &npos);
    const bool resume = m != NULL;
    if (rc != EXIT_OK) {
        if (rc == EXIT_USAGE) program_fail(a, EXIT_USAGE, NULL);
        goto done;
    }
    const pcn_ckpt_info *resumed = resume ? &info : NULL;
    if (pcn_dist_agree(a->comm, check_train(a, resumed, &p, steps, 256)) != PCN_OK) {
        rc = program_fail(a, EXIT_USAGE, NULL);
        goto done;
    }
    rc = prepare(a, &m, resume, &p, &lock);
    if (rc == EXIT_OK) rc = run_training(a, m, h, &p, resume ? &info.pos : NULL);
done:
    if (rc == EXIT_ERROR && pcn_last_error()[0]) program_fail(a, EXIT_ERROR, NULL);
    pcn_io_lock_release(lock);
    pcn_io_ckpt_info_free(&info);
    pcn_history_free(h);
    pcn_model_free(m);
    return rc;
}
