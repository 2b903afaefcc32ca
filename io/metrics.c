/*
 * metrics.c — the metrics file (JSON Lines; records and invariants in pcn_io.h, "Metrics").
 *
 * A record is formatted into a line buffer, then written with write() in one piece at the
 * end of what the file held before. A failure (a short write, ENOSPC, EDQUOT, EIO) truncates
 * the file back to that end, so the file only ever holds whole lines, and the handle stays
 * failed with its message. No stdio: a FILE's buffer would flush part of a line on its own
 * schedule and report the error on a later call. Files that are not regular (a FIFO,
 * /dev/stdout) are written the same way but neither truncated nor synced.
 */
#include "pcn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


struct pcn_io_metrics {
    int fd;
    bool regular;        // a regular file: truncated after a failed write, synced
    off_t end;           // bytes of whole records in the file
    pcn_status failed;   // PCN_OK until a write fails
    char error[1024];    // the failure's message, repeated by later calls
    char path[];
};

// ----------------------------------------------------------------------------------------
// One line in memory
// ----------------------------------------------------------------------------------------

typedef struct {
    char buf[2048];
    size_t len;
    bool overflow;
} line;

__attribute__((format(printf, 2, 3)))
static void put(line *l, const char *fmt, ...) {
    if (l->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof l->buf - l->len) l->overflow = true;
    else l->len += (size_t)n;
}

// "key":value with JSON's null for a non-finite value, then a comma unless last.
static void num(line *l, const char *key, double v, bool last) {
    if (isfinite(v)) put(l, "\"%s\":%.10g%s", key, v, last ? "" : ",");
    else put(l, "\"%s\":null%s", key, last ? "" : ",");
}

static const char *const phases[PCN_IO_METRICS_PHASES] = {"inference", "learning",
                                                          "collectives", "io", "checkpoint"};

// n pairs "key":value, each followed by a comma unless last and it is the last.
static void nums(line *l, int n, const char *const *keys, const double *v, bool last) {
    for (int k = 0; k < n; k++) num(l, keys[k], v[k], last && k + 1 == n);
}

// "key":{"inference":..,...,"checkpoint":..}
static void phase_object(line *l, const char *key, const double v[PCN_IO_METRICS_PHASES]) {
    put(l, "\"%s\":{", key);
    nums(l, PCN_IO_METRICS_PHASES, phases, v, true);
    put(l, "}");
}

// ----------------------------------------------------------------------------------------
// Writing whole lines
// ----------------------------------------------------------------------------------------

static pcn_status fail_with(pcn_io_metrics *m, const char *what, int err) {
    m->failed = PCN_EIO;
    snprintf(m->error, sizeof m->error, "%s: %s: %s", m->path, what, strerror(err));
    return pcn_set_error(PCN_EIO, "%s", m->error);
}

// Writes the line after the last whole record; on any failure cuts the file back there.
static pcn_status write_line(pcn_io_metrics *m, const line *l, bool sync) {
    if (m->failed) return pcn_set_error(m->failed, "%s", m->error);
    if (l->overflow) return fail_with(m, "a metrics record is too long", EOVERFLOW);
    size_t done = 0;
    while (done < l->len) {
        ssize_t w = write(m->fd, l->buf + done, l->len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int err = w < 0 ? errno : ENOSPC; // write() returning 0: no room was made
            if (m->regular && (ftruncate(m->fd, m->end) != 0 ||
                               lseek(m->fd, m->end, SEEK_SET) != m->end))
                return fail_with(m, "cannot write the metrics, and cannot cut the partial "
                                 "line back off", err);
            return fail_with(m, "cannot write the metrics", err);
        }
        done += (size_t)w;
    }
    m->end += (off_t)l->len;
    if (sync && m->regular && fsync(m->fd) != 0)
        return fail_with(m, "cannot write the metrics (fsync)", errno);
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

pcn_io_metrics *pcn_io_metrics_open(const char *path, bool append) {
    size_t len = strlen(path) + 1;
    pcn_io_metrics *m = calloc(1, sizeof *m + len);
    if (!m) {
        pcn_set_error(PCN_ENOMEM, "%s: out of memory for the metrics file", path);
        return NULL;
    }
    memcpy(m->path, path, len);
    m->fd = open(path, O_WRONLY | O_CREAT | (append ? 0 : O_TRUNC), 0644);
    struct stat st;
    if (m->fd < 0 || fstat(m->fd, &st) != 0) {
        pcn_set_error(PCN_EIO, "%s: cannot open the metrics file for writing: %s", path,
                      strerror(errno));
        if (m->fd >= 0) close(m->fd);
        free(m);
        return NULL;
    }
    m->regular = S_ISREG(st.st_mode);
    m->end = m->regular ? lseek(m->fd, 0, SEEK_END) : 0;
    if (m->end < 0) m->end = 0;
    return m;
}

pcn_status pcn_io_metrics_batch(pcn_io_metrics *m, const pcn_io_metrics_batch_rec *r) {
    line l = {.len = 0};
    put(&l, "{\"event\":\"batch\",\"epoch\":%d,\"batch\":%d,\"samples\":%lld,", r->epoch,
        r->batch, (long long)r->samples);
    static const char *const keys[] = {"energy", "pre_learn_energy", "lr", "running_accuracy",
                                       "samples_per_s", "seconds"};
    const double v[] = {r->energy, r->pre_learn_energy, r->lr, r->running_accuracy,
                        r->samples_per_s, r->seconds};
    nums(&l, 6, keys, v, false);
    phase_object(&l, "rank0_seconds", r->rank0_seconds);
    put(&l, ",\"collectives\":%lld,\"bytes_sent\":%lld}\n", (long long)r->collectives,
        (long long)r->bytes_sent);
    return write_line(m, &l, false);
}

pcn_status pcn_io_metrics_epoch(pcn_io_metrics *m, const pcn_io_metrics_epoch_rec *r) {
    line l = {.len = 0};
    put(&l, "{\"event\":\"epoch\",\"epoch\":%d,\"ranks\":%d,", r->epoch, r->ranks);
    static const char *const keys[] = {"energy", "pre_learn_energy", "train_accuracy", "lr",
                                       "seconds", "samples_per_s"};
    const double v[] = {r->energy, r->pre_learn_energy, r->train_accuracy, r->lr, r->seconds,
                        r->samples_per_s};
    nums(&l, 6, keys, v, false);
    phase_object(&l, "seconds_max", r->seconds_max);
    put(&l, ",");
    phase_object(&l, "seconds_mean", r->seconds_mean);
    put(&l, "}\n");
    return write_line(m, &l, true);
}

// A test record's line: the final test (epoch < 0) or an epoch's (--test-every).
static pcn_status test_line(pcn_io_metrics *m, int epoch, const pcn_io_metrics_test_rec *r) {
    line l = {.len = 0};
    if (epoch < 0) put(&l, "{\"event\":\"test\",");
    else put(&l, "{\"event\":\"epoch_test\",\"epoch\":%d,", epoch);
    put(&l, "\"samples\":%lld,", (long long)r->samples);
    static const char *const keys[] = {"accuracy", "top_k", "energy", "mse", "seconds"};
    const double v[] = {r->accuracy, r->top_k, r->energy, r->mse, r->seconds};
    nums(&l, 5, keys, v, true);
    put(&l, "}\n");
    return write_line(m, &l, true);
}

pcn_status pcn_io_metrics_test(pcn_io_metrics *m, const pcn_io_metrics_test_rec *r) {
    return test_line(m, -1, r);
}

pcn_status pcn_io_metrics_epoch_test(pcn_io_metrics *m, int epoch,
                                     const pcn_io_metrics_test_rec *r) {
    if (epoch < 0) return pcn_set_error(PCN_EINVAL, "epoch_test record of epoch %d", epoch);
    return test_line(m, epoch, r);
}

pcn_status pcn_io_metrics_close(pcn_io_metrics *m) {
    if (!m) return PCN_OK;
    pcn_status st = m->failed ? pcn_set_error(m->failed, "%s", m->error) : PCN_OK;
    if (st == PCN_OK && m->regular && fsync(m->fd) != 0)
        st = fail_with(m, "cannot write the metrics (fsync)", errno);
    if (close(m->fd) != 0 && st == PCN_OK) st = fail_with(m, "cannot close the metrics file", errno);
    free(m);
    return st;
}
