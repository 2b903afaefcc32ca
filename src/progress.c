/*
 * progress.c — the progress display (pcn-torch RichCallback) built on pcn_callbacks.
 *
 * On a terminal: a header line, then per epoch one live line redrawn after every batch
 * (bar, batches done, elapsed, ETA, energy, pre-learn energy, running accuracy), replaced
 * at the epoch's end by a summary line; LR reductions print on their own line. When the
 * output is not a terminal (a log file, a batch job), it prints the header, one plain
 * line per epoch and per LR change, and the closing summary.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

struct pcn_progress {
    FILE *out;
    char device[64];
    int live;               // 1 terminal, 0 plain, -1 detect
    int num_epochs, epoch;
    int num_batches, done;
    pcn_task task;
    const pcn_history *h;
    double t_epoch;         // epoch start, seconds
    bool line_open;         // a live line is on screen
    double t_drawn;         // when the live line was last drawn
};

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 359999) s = 0;
    int t = (int)(s + 0.5);
    snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

pcn_progress *pcn_progress_init(FILE *out, const char *device) {
    pcn_progress *p = calloc(1, sizeof *p);
    if (!p) {
        pcn_set_error(PCN_ENOMEM, "out of memory allocating a progress display");
        return NULL;
    }
    p->out = out ? out : stdout;
    p->live = -1;
    if (device) snprintf(p->device, sizeof p->device, "%s", device);
    return p;
}

void pcn_progress_free(pcn_progress *p) { free(p); }

void pcn_progress_set_mode(pcn_progress *p, int live) { p->live = live; }

static bool is_live(pcn_progress *p) {
    if (p->live < 0) p->live = isatty(fileno(p->out)) ? 1 : 0;
    return p->live == 1;
}

static void close_line(pcn_progress *p) {
    if (p->line_open) fputs("\r\033[K", p->out);
    p->line_open = false;
}

// ----------------------------------------------------------------------------------------
// Hooks
// ----------------------------------------------------------------------------------------

static void on_train_start(void *u, const pcn_train_params *params, const pcn_history *h) {
    pcn_progress *p = u;
    p->h = h;
    p->task = params->task;
    p->num_epochs = params->num_epochs;
    fprintf(p->out, "PCN Training");
    if (p->device[0]) fprintf(p->out, " | device=%s", p->device);
    fprintf(p->out, " | task=%s | T_infer=%d | epochs=%d\n", pcn_task_name(params->task),
            params->t_infer, params->num_epochs);
    fflush(p->out);
}

static void on_epoch_start(void *u, int epoch, int num_epochs) {
    pcn_progress *p = u;
    p->epoch = epoch;
    p->num_epochs = num_epochs;
    p->done = 0;
    p->num_batches = 0;
    p->t_epoch = pcn_now();
}

static void on_batch_start(void *u, int batch, int num_batches) {
    (void)batch;
    ((pcn_progress *)u)->num_batches = num_batches;
}

static void on_batch_end(void *u, int batch, double energy, double pre_learn) {
    (void)batch;
    pcn_progress *p = u;
    p->done++;
    if (!is_live(p)) return;
    // Redraw at most 4 times a second (and for the last batch): under mpirun a rank's
    // "terminal" is often a pty whose output ends up in a log.
    double t = pcn_now();
    if (p->done < p->num_batches && p->line_open && t - p->t_drawn < 0.25) return;
    p->t_drawn = t;
    const int width = 30;
    int filled = p->num_batches ? p->done * width / p->num_batches : 0;
    char bar[64], el[16], eta[16];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '-';
    bar[width] = '\0';
    double elapsed = pcn_now() - p->t_epoch;
    fmt_time(el, sizeof el, elapsed);
    fmt_time(eta, sizeof eta, elapsed / p->done * (p->num_batches - p->done));
    fprintf(p->out, "\r\033[KEpoch %d/%d [%s] %d/%d %s < %s | energy=%.4f | pre_learn=%.4f",
            p->epoch + 1, p->num_epochs, bar, p->done, p->num_batches, el, eta, energy,
            pre_learn);
    double acc = pcn_history_running_accuracy(p->h);
    if (p->task == PCN_TASK_CLASSIFICATION && acc > 0) fprintf(p->out, " | acc=%.1f%%", 100 * acc);
    fflush(p->out);
    p->line_open = true;
}

static void on_lr_reduced(void *u, double old_lr, double new_lr) {
    pcn_progress *p = u;
    close_line(p);
    fprintf(p->out, "  LR reduced: %.6f -> %.6f\n", old_lr, new_lr);
    fflush(p->out);
}

static double last(const pcn_history *h, pcn_history_series s) {
    size_t n = pcn_history_len(h, s);
    return n ? pcn_history_data(h, s)[n - 1] : 0.0;
}

static void on_epoch_end(void *u, int epoch, const pcn_history *h) {
    pcn_progress *p = u;
    close_line(p);
    char el[16];
    fmt_time(el, sizeof el, pcn_now() - p->t_epoch);
    fprintf(p->out, "  Epoch %d/%d | energy=%.6f | pre_learn=%.6f", epoch + 1, p->num_epochs,
            last(h, PCN_HIST_PER_EPOCH), last(h, PCN_HIST_PER_EPOCH_PRE_LEARN));
    if (pcn_history_len(h, PCN_HIST_TRAIN_ACCURACY))
        fprintf(p->out, " | acc=%.1f%%", 100 * last(h, PCN_HIST_TRAIN_ACCURACY));
    fprintf(p->out, " | %d batches in %s\n", p->done, el);
    fflush(p->out);
}

static void on_train_end(void *u, const pcn_history *h) {
    pcn_progress *p = u;
    close_line(p);
    fprintf(p->out, "Training complete.\n");
    if (pcn_history_len(h, PCN_HIST_PER_EPOCH))
        fprintf(p->out, "  Final energy: %.6f\n", last(h, PCN_HIST_PER_EPOCH));
    if (pcn_history_len(h, PCN_HIST_TRAIN_ACCURACY))
        fprintf(p->out, "  Final accuracy: %.2f %%\n", 100 * last(h, PCN_HIST_TRAIN_ACCURACY));
    fflush(p->out);
}

pcn_callbacks pcn_progress_callbacks(pcn_progress *p) {
    return (pcn_callbacks){
        .user = p,
        .on_train_start = on_train_start,
        .on_epoch_start = on_epoch_start,
        .on_batch_start = on_batch_start,
        .on_batch_end = on_batch_end,
        .on_epoch_end = on_epoch_end,
        .on_lr_reduced = on_lr_reduced,
        .on_train_end = on_train_end,
    };
}
