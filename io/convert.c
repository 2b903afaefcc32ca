/*
 * convert.c — the converters' writer (see convert_impl.h): a data set in the pcn_dist HDF5
 * schema (version 1, described in pcn_io.h) from the rows of a format's reader
 * (convert_idx.c, convert_cifar.c, convert_array.c), and the parameters every format shares.
 * x is written as uint8 with scale 1/255 or as float32 with scale 1 (convert_desc.xtype).
 *
 * Flow: every input is opened and its header, sizes and labels checked before any output
 * exists (by the format's file); then the rows stream through a buffer of one HDF5 chunk (so
 * memory stays at a few MiB plus the labels) into OUT.tmp.<pid>, the training split's
 * statistics build /norm (exact integer sums for uint8; for float32 a mean and sum of squared
 * deviations per buffer in double, merged as Chan et al. do), and the finished file is
 * closed, fsynced and renamed to OUT.
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() naming the
 * file and the problem; the temporary file never outlives a failed conversion; HDF5's
 * automatic error printing is off while a conversion runs and restored after: a failed HDF5
 * call is reported by PCN_H5_TRY (h5util.h) and convert_run prefixes that message with the
 * temporary file and the reason (a full disk: "No space left on device"). Every
 * HDF5 call that can write is checked, closes included (a close writes what HDF5 cached).
 * HDF5 1.10 must never fail to close a file or dataset (it then keeps a half-closed object
 * that crashes or loops in its exit handler), so: a probe reserves room before HDF5 first
 * writes (out_create), and after a failure HDF5's file descriptor is pointed at an
 * anonymous memory file (discard_writes), so the closes that follow succeed; then the
 * temporary file is removed.
 * Serial: uses HDF5's default (sec2) file driver and needs no MPI_Init. Linux (memfd).
 */
#define _GNU_SOURCE // memfd_create
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "convert_impl.h"
#include "h5util.h"

#define CHUNK_ROWS 1024              // rows per HDF5 chunk of x (fewer for wide rows)
#define CHUNK_BYTES (4 << 20)        // at most this many bytes per chunk of x
#define STD_FLOOR 1e-6               // std below this is written as 1.0
#define PROBE_BYTES (64 << 10)       // room reserved for a moment before HDF5 creates OUT
                                     // (less for a smaller data set)

// ----------------------------------------------------------------------------------------
// Statistics of the training split (uint8: exact integer sums; float32: in double)
// ----------------------------------------------------------------------------------------

typedef struct {
    int64_t d, n;
    convert_xtype xtype;
    uint64_t *sum;   // (d) sum of pixels (uint8)
    uint64_t *sumsq; // (d) sum of squared pixels (uint8)
    double count, mean, m2; // float32: values so far, their mean, sum of squared deviations
} stats;

static size_t x_size(convert_xtype t) { return t == CONVERT_X_F32 ? sizeof(float) : 1; }

// Adds rows float32 rows: this buffer's mean and squared deviations (two passes), merged
// with the running ones (Chan, Golub, LeVeque), so no large sum of squares cancels.
static void stats_add_f32(stats *st, const float *x, int64_t rows) {
    int64_t k = rows * st->d;
    if (k == 0) return;
    double s = 0.0, q = 0.0;
    for (int64_t i = 0; i < k; i++) s += x[i];
    double m = s / (double)k;
    for (int64_t i = 0; i < k; i++) q += ((double)x[i] - m) * ((double)x[i] - m);
    double n = st->count, tot = n + (double)k, delta = m - st->mean;
    st->mean += delta * (double)k / tot;
    st->m2 += q + delta * delta * n * (double)k / tot;
    st->count = tot;
    st->n += rows;
}

static void stats_add(stats *st, const void *buf, int64_t rows) {
    if (st->xtype == CONVERT_X_F32) {
        stats_add_f32(st, buf, rows);
        return;
    }
    const uint8_t *x = buf;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = x + r * st->d;
        for (int64_t j = 0; j < st->d; j++) {
            uint64_t v = row[j];
            st->sum[j] += v;
            st->sumsq[j] += v * v;
        }
    }
    st->n += rows;
}

// The mean and population std of x * scale over every pixel of the training split, written
// for every feature (torchvision's Normalize((m,), (s,)) style). Per-feature statistics
// would blow near-constant border pixels up by factors of hundreds. std below STD_FLOOR
// becomes 1. float32 x has scale 1.
static void stats_finish(const stats *st, float *mean, float *std) {
    double m, sd, scale = 1.0 / 255.0;
    if (st->xtype == CONVERT_X_F32) {
        m = st->mean, sd = sqrt(st->m2 / st->count), scale = 1.0;
    } else {
        double sum = 0.0, sumsq = 0.0, count = (double)st->n * (double)st->d;
        for (int64_t j = 0; j < st->d; j++)
            sum += (double)st->sum[j], sumsq += (double)st->sumsq[j];
        m = sum / count;
        double var = sumsq / count - m * m;
        sd = sqrt(var > 0.0 ? var : 0.0) * scale;
    }
    for (int64_t j = 0; j < st->d; j++) {
        mean[j] = (float)(m * scale);
        std[j] = sd < STD_FLOOR ? 1.0f : (float)sd;
    }
}

// ----------------------------------------------------------------------------------------
// HDF5 output
// ----------------------------------------------------------------------------------------

typedef struct {
    const char *out; // final path
    char *tmp;       // OUT.tmp.<pid>
    hid_t file;      // open temporary file, or -1
    off_t probe;     // bytes out_create reserves for a moment: at most what OUT will take
    bool told;       // the failure's message is ours (or the reader's), not an HDF5 call's
    pcn_status status; // then its status
} job;

// Records our own message for a failure of the job; returns -1.
__attribute__((format(printf, 3, 4)))
static int job_fail(job *j, pcn_status status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pcn_set_error(status, "%s", msg);
    j->told = true, j->status = status;
    return -1;
}

// Creates the temporary file (refusing to reuse a stale one) and opens it with HDF5; on
// failure nothing is left behind.
static int out_create(job *j) {
    hid_t fapl = -1;
    int fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return job_fail(j, PCN_EIO, "%s: cannot create: %s", j->tmp, strerror(errno));
    // HDF5 writes at H5Fcreate and cannot be cleaned up after a failed create: a full disk
    // is found here instead (the probe's room is given back by H5F_ACC_TRUNC).
    int probe = posix_fallocate(fd, 0, j->probe > 0 ? j->probe : 1);
    close(fd);
    if (probe != 0 && probe != EINVAL && probe != EOPNOTSUPP) {
        unlink(j->tmp);
        return job_fail(j, PCN_EIO, "%s: cannot write the data set: %s", j->tmp,
                        strerror(probe));
    }
    PCN_H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS));
    PCN_H5_TRY(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG)); // closing closes all objects
    PCN_H5_TRY(j->file = H5Fcreate(j->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    H5Pclose(fapl);
    return 0;
fail:
    if (fapl >= 0) H5Pclose(fapl);
    unlink(j->tmp);
    return -1;
}

// Closes an object and marks its handle closed first, so a failure path never closes it
// twice. Negative when HDF5 fails (a close writes what it cached: a full disk shows here).
static herr_t close_dset(hid_t *id) {
    hid_t d = *id;
    *id = -1;
    return H5Dclose(d);
}
static herr_t close_group(hid_t *id) {
    hid_t g = *id;
    *id = -1;
    return H5Gclose(g);
}

// A contiguous 1-D dataset of n values.
static int vec_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                     hsize_t n, const void *v) {
    hid_t space = -1, dset = -1;
    int rc = -1;
    PCN_H5_TRY(space = H5Screate_simple(1, &n, NULL));
    PCN_H5_TRY(dset = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT,
                                   H5P_DEFAULT));
    PCN_H5_TRY(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
    PCN_H5_TRY(close_dset(&dset));
    rc = 0;
fail:
    pcn_h5_close(&dset);
    pcn_h5_close(&space);
    return rc;
}

// Rows per chunk of x for rows of row_bytes bytes.
static hsize_t chunk_rows(int64_t n, int64_t row_bytes) {
    int64_t rows = CHUNK_BYTES / row_bytes;
    if (rows > CHUNK_ROWS) rows = CHUNK_ROWS;
    if (rows > n) rows = n;
    return (hsize_t)(rows > 0 ? rows : 1);
}

// After a failed write: HDF5's file descriptor now writes to an anonymous memory file, so
// the closes that follow succeed whatever HDF5 still holds (the temporary file is removed
// anyway). Without memfd, the temporary file is cut to nothing instead, which gives the
// closes the room it held.
static void discard_writes(const job *j) {
    void *handle = NULL;
    int sink = memfd_create("pcn_convert-discard", MFD_CLOEXEC);
    if (sink >= 0 && H5Fget_vfd_handle(j->file, H5P_DEFAULT, &handle) >= 0 && handle &&
        dup2(sink, *(int *)handle) >= 0) {
        close(sink);
        return;
    }
    if (sink >= 0) close(sink);
    int fd = open(j->tmp, O_WRONLY);
    if (fd < 0) return;
    if (ftruncate(fd, 0) != 0) { /* best effort: the closes may still find room */ }
    close(fd);
}

// Creates x (n, d) uint8 or float32, chunked by rows, unfiltered, with its scale attribute.
static int x_create(hid_t group, int64_t n, int64_t d, convert_xtype t, hid_t *dset) {
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)d};
    hsize_t chunk[2] = {chunk_rows(n, d * (int64_t)x_size(t)), (hsize_t)d};
    hid_t space = -1, dcpl = -1;
    int rc = -1;
    const double scale = t == CONVERT_X_F32 ? 1.0 : 1.0 / 255.0;
    hid_t ftype = t == CONVERT_X_F32 ? H5T_IEEE_F32LE : H5T_STD_U8LE;
    *dset = -1;
    PCN_H5_TRY(space = H5Screate_simple(2, dims, NULL));
    PCN_H5_TRY(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    PCN_H5_TRY(H5Pset_chunk(dcpl, 2, chunk));
    PCN_H5_TRY(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); // every byte gets written
    PCN_H5_TRY(*dset = H5Dcreate2(group, "x", ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    PCN_H5_TRY(pcn_h5_attr_write_as(*dset, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1,
                                    &scale));
    rc = 0;
fail: // *dset stays open on failure: the file's strong close degree closes it
    pcn_h5_close(&dcpl);
    pcn_h5_close(&space);
    return rc;
}

// Writes rows [row0, row0 + rows) of x from buf (rows, d).
static int x_write_rows(hid_t dset, int64_t row0, int64_t rows, int64_t d, convert_xtype t,
                        const void *buf) {
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)rows, (hsize_t)d};
    hid_t fspace = -1, mspace = -1;
    int rc = -1;
    PCN_H5_TRY(fspace = H5Dget_space(dset));
    PCN_H5_TRY(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    PCN_H5_TRY(mspace = H5Screate_simple(2, count, NULL));
    PCN_H5_TRY(H5Dwrite(dset, t == CONVERT_X_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, mspace,
                        fspace, H5P_DEFAULT, buf));
    rc = 0;
fail:
    pcn_h5_close(&mspace);
    pcn_h5_close(&fspace);
    return rc;
}

// Streams the rows of in through buf (one chunk of rows) into x, and its labels into y.
static int split_rows(job *j, convert_split *in, hid_t x, const convert_desc *desc, stats *st,
                      void *buf, int32_t *y) {
    int64_t d = desc->d, step = (int64_t)chunk_rows(in->n, d * (int64_t)x_size(desc->xtype));
    for (int64_t row = 0; row < in->n; row += step) {
        int64_t rows = in->n - row < step ? in->n - row : step;
        pcn_status rst = in->read(in->ctx, buf, y + row, rows);
        if (rst != PCN_OK) {
            j->told = true, j->status = rst;
            return -1;
        }
        if (x_write_rows(x, row, rows, d, desc->xtype, buf) < 0) return -1;
        if (st) stats_add(st, buf, rows);
    }
    return 0;
}

// Streams one split into /name (x, y); with st, adds its rows to the statistics.
static int split_write(job *j, const char *name, convert_split *in, const convert_desc *desc,
                       stats *st) {
    hid_t group = -1, x = -1;
    int rc = -1;
    int64_t row_bytes = desc->d * (int64_t)x_size(desc->xtype);
    void *buf = malloc((size_t)((int64_t)chunk_rows(in->n, row_bytes) * row_bytes));
    int32_t *y = malloc((size_t)in->n * sizeof *y);
    if (!buf || !y) {
        job_fail(j, PCN_ENOMEM, "%s: out of memory for the %s split", j->tmp, name);
        goto fail;
    }
    PCN_H5_TRY(group = H5Gcreate2(j->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (x_create(group, in->n, desc->d, desc->xtype, &x) < 0 ||
        split_rows(j, in, x, desc, st, buf, y) < 0 ||
        vec_write(group, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)in->n, y) < 0)
        goto fail;
    PCN_H5_TRY(H5Dflush(x)); // the cached chunks go out while x can still be closed
    PCN_H5_TRY(close_dset(&x));
    PCN_H5_TRY(close_group(&group));
    rc = 0;
fail:
    if (rc != 0) discard_writes(j);
    pcn_h5_close(&x);
    pcn_h5_close(&group);
    free(buf), free(y);
    return rc;
}

// Writes /norm/mean and /norm/std from the training statistics.
static int norm_write(job *j, const stats *st) {
    hid_t group = -1;
    int rc = -1;
    float *mean = malloc((size_t)st->d * sizeof *mean), *std = malloc((size_t)st->d * sizeof *std);
    if (!mean || !std) {
        job_fail(j, PCN_ENOMEM, "%s: out of memory for /norm", j->tmp);
        goto fail;
    }
    stats_finish(st, mean, std);
    PCN_H5_TRY(group = H5Gcreate2(j->file, "norm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (vec_write(group, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)st->d, mean) < 0 ||
        vec_write(group, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)st->d, std) < 0)
        goto fail;
    PCN_H5_TRY(close_group(&group));
    rc = 0;
fail:
    if (rc != 0) discard_writes(j);
    pcn_h5_close(&group);
    free(mean), free(std);
    return rc;
}

static int root_attrs_write(job *j, const convert_desc *desc) {
    const int32_t version = PCN_IO_DATASET_VERSION, classes = desc->classes;
    hid_t root = j->file;
    PCN_H5_TRY(pcn_h5_attr_write_str(root, "pcn_format", PCN_IO_DATASET_FORMAT));
    PCN_H5_TRY(pcn_h5_attr_write_as(root, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 1,
                                    &version));
    PCN_H5_TRY(pcn_h5_attr_write_str(root, "task", "classification"));
    PCN_H5_TRY(pcn_h5_attr_write_as(root, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT32, 1,
                                    &classes));
    PCN_H5_TRY(pcn_h5_attr_write_str(root, "source", desc->source));
    PCN_H5_TRY(pcn_h5_attr_write_as(root, "image_shape", H5T_STD_I32LE, H5T_NATIVE_INT32, 3,
                                    desc->shape));
    return 0;
fail:
    return -1;
}

// Makes a rename in path's directory durable (best effort: some file systems refuse
// fsync on a directory, and the data itself is already synced).
static void sync_parent_dir(const char *path) {
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) slash[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

// Closes the temporary file, syncs it to disk and renames it to the final path. HDF5 writes
// what it cached first with the file still open, so a full disk fails here, where
// out_discard can still close the file; a failed H5Fclose is the case to avoid (HDF5 1.10
// then keeps a half-closed file that crashes its exit handler).
static int out_commit(job *j) {
    PCN_H5_TRY(H5Fflush(j->file, H5F_SCOPE_GLOBAL));
    hid_t file = j->file;
    j->file = -1;
    PCN_H5_TRY(H5Fclose(file));
    int fd = open(j->tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        job_fail(j, PCN_EIO, "%s: cannot sync: %s", j->tmp, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    if (rename(j->tmp, j->out) != 0)
        return job_fail(j, PCN_EIO, "%s: cannot rename %s to it: %s", j->out, j->tmp,
                        strerror(errno));
    sync_parent_dir(j->out);
    return 0;
fail:
    return -1;
}

// After a failure: closes the temporary file (its last writes discarded) and removes it.
static void out_discard(job *j) {
    if (j->file >= 0) {
        discard_writes(j);
        char ignored[256];
        if (H5Fclose(j->file) < 0) pcn_h5_describe(ignored, sizeof ignored); // clears it
        j->file = -1;
    }
    unlink(j->tmp);
}

// An HDF5 failure as "OUT.tmp.<pid>: cannot write the data set: <reason> (HDF5: ...)", the
// reason (e.g. "No space left on device") from the errno that HDF5's file driver quotes.
static void h5_failure(job *j) {
    char h5[1024];
    snprintf(h5, sizeof h5, "%s", pcn_last_error());
    const char *e = strstr(h5, "errno = ");
    int code = e ? atoi(e + strlen("errno = ")) : 0;
    if (code > 0)
        pcn_set_error(PCN_EIO, "%s: cannot write the data set: %s (HDF5: %s)", j->tmp,
                      strerror(code), h5);
    else
        pcn_set_error(PCN_EIO, "%s: cannot write the data set: %s", j->tmp, h5);
    j->status = PCN_EIO;
}

// HDF5's messages may hold line breaks (its write errors do): one line for err.
static pcn_status one_line(pcn_status status) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", pcn_last_error());
    for (char *s = msg; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
    return pcn_set_error(status, "%s", msg);
}

// ----------------------------------------------------------------------------------------
// One conversion: both splits, /norm, attributes, atomic rename
// ----------------------------------------------------------------------------------------

// Writes everything into the open temporary file and commits it.
static int write_all(job *j, const convert_desc *desc, convert_split *train, convert_split *test) {
    stats st = {.d = desc->d, .xtype = desc->xtype};
    st.sum = calloc((size_t)desc->d, sizeof *st.sum);
    st.sumsq = calloc((size_t)desc->d, sizeof *st.sumsq);
    int rc = !st.sum || !st.sumsq ? job_fail(j, PCN_ENOMEM, "%s: out of memory", j->tmp) : 0;
    if (rc == 0) rc = split_write(j, "train", train, desc, &st);
    if (rc == 0) rc = split_write(j, "test", test, desc, NULL);
    if (rc == 0) rc = norm_write(j, &st);
    if (rc == 0) rc = root_attrs_write(j, desc);
    if (rc == 0) rc = out_commit(j);
    free(st.sum), free(st.sumsq);
    return rc;
}

pcn_status convert_run(const char *out, const convert_desc *desc, convert_split *train,
                       convert_split *test) {
    job jb = {.out = out, .file = -1}, *j = &jb;
    size_t len = strlen(out) + 32;
    if (!(j->tmp = malloc(len))) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", out);
    snprintf(j->tmp, len, "%s.tmp.%ld", out, (long)getpid());
    int64_t least = (train->n + test->n) * (desc->d * (int64_t)x_size(desc->xtype) + 4) +
                    8 * desc->d; // raw data alone
    j->probe = least < PROBE_BYTES ? (off_t)least : PROBE_BYTES;
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // PCN_H5_TRY reports instead
    int rc = out_create(j);
    if (rc == 0 && (rc = write_all(j, desc, train, test)) != 0) out_discard(j);
    if (rc != 0 && !j->told) h5_failure(j); // its message is in pcn_last_error()
    pcn_status st = rc != 0 ? one_line(j->status) : PCN_OK;
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    free(j->tmp);
    return st;
}

// ----------------------------------------------------------------------------------------
// Parameters every format shares
// ----------------------------------------------------------------------------------------

pcn_io_convert_params pcn_io_convert_default_params(void) {
    return (pcn_io_convert_params){.classes = 0, .limit_train = -1, .limit_test = -1,
                                   .source = NULL};
}

pcn_status convert_check_params(const pcn_io_convert_params *p, const char *out) {
    if (!out || !*out) return pcn_set_error(PCN_EINVAL, "no output file given");
    if (p->classes < 0 || p->classes == 1)
        return pcn_set_error(PCN_EINVAL, "classes = %d: need 0 (from the labels) or at least 2",
                    p->classes);
    if (p->limit_train == 0 || p->limit_train < -1)
        return pcn_set_error(PCN_EINVAL, "limit_train = %lld: need -1 (all) or at least 1",
                    (long long)p->limit_train);
    if (p->limit_test == 0 || p->limit_test < -1)
        return pcn_set_error(PCN_EINVAL, "limit_test = %lld: need -1 (all) or at least 1",
                    (long long)p->limit_test);
    return PCN_OK;
}

int64_t convert_limited(int64_t n, int64_t limit) { return limit > 0 && limit < n ? limit : n; }

char *convert_source_text(const pcn_io_convert_params *p, const char *format, const char *path) {
    if (p->source) return strdup(p->source);
    size_t len = strlen(format) + strlen(path) + 3;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s: %s", format, path);
    return s;
}

