/*
 * dataset.c — the parallel HDF5 data set reader (see pcn_io.h): opens one split of a
 * pcn-dataset file (schema version 1) with the MPI-IO driver, validates it, and serves rows
 * to the trainer either from one per-node shared-memory copy (memory mode) or straight from
 * the file with one collective read per dataset and batch (stream mode).
 *
 * Invariants:
 * - Every rank makes the same HDF5 calls in the same order (metadata reads, H5Fopen,
 *   collective H5Dread, H5Fclose); only the selections differ. A rank with nothing to read
 *   selects none and still takes part.
 * - Every check at open is agreed with pcn_dist_agree before the next collective step, so a
 *   bad file makes every rank return NULL with the lowest failing rank's message, and no
 *   rank waits in a collective that the others skipped.
 * - No HDF5 error stack is ever printed (H5Eset_auto2 off); H5_CHECK turns a failed call
 *   into a message with the statement, file:line and HDF5's own description.
 * - Memory mode: the node's local rank 0 owns the whole window (x in its file dtype, then
 *   int32 labels or float32 targets, 64-byte aligned); after the fill and the closing fence
 *   nobody writes it again, so read() is a plain Local copy and convert.
 * - Stream mode: staging buffers are allocated at open and grow only when a request is
 *   larger than every earlier one. The prefetch thread touches only ds->pf*, calls no MPI,
 *   and holds pcn_h5_lock for its HDF5 calls; the main thread joins it before reading,
 *   and checkpoint I/O takes the same lock.
 */#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dataset_impl.h"

static const char *split_names[] = {"train", "test"};

// ----------------------------------------------------------------------------------------
// Types and shapes
// ----------------------------------------------------------------------------------------

static bool is_u8(hid_t t) {
    return H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE;
}
static bool is_f32(hid_t t) { return H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4; }

static void shape_name(int rank, const hsize_t *dims, char *buf, size_t len) {
    size_t n = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
    if (n < len) snprintf(buf + n, len - n, "]");
}

// Opens the dataset at name and reads its rank (up to 3 dims kept), shape and type.
typedef struct {
    hid_t id, space, type;
    int rank;
    hsize_t dims[3];
    char dtype[48];
    char shape[96];
} dset_info;

static pcn_status dset_open(pcn_dataset *ds, const char *name, dset_info *d) {
    pcn_status st = PCN_OK;
    htri_t there;
    d->id = d->space = d->type = H5I_INVALID_HID;
    H5_CHECK(there = H5Lexists(ds->file, name, H5P_DEFAULT), "cannot look up a dataset");
    if (!there) BAD(PCN_EDATA, "%s is missing", name);
    char what[160];
    snprintf(what, sizeof what, "cannot open %s as a dataset", name);
    H5_CHECK(d->id = H5Dopen2(ds->file, name, H5P_DEFAULT), what);
    H5_CHECK(d->space = H5Dget_space(d->id), what);
    H5_CHECK(d->type = H5Dget_type(d->id), what);
    H5_CHECK(d->rank = H5Sget_simple_extent_ndims(d->space), what);
    hsize_t dims[H5S_MAX_RANK];
    H5_CHECK(H5Sget_simple_extent_dims(d->space, dims, NULL), what);
    for (int i = 0; i < d->rank && i < 3; i++) d->dims[i] = dims[i];
    shape_name(d->rank, dims, d->shape, sizeof d->shape);
    pcn_h5_type_name(d->type, d->dtype, sizeof d->dtype);
done:
    return st;
}

static void dset_close(dset_info *d) {
    pcn_h5_close(&d->type);
    pcn_h5_close(&d->space);
    pcn_h5_close(&d->id);
}

// ----------------------------------------------------------------------------------------
// Open: file checks, schema, norm
// ----------------------------------------------------------------------------------------

// Local checks before any collective HDF5 call: arguments, the file exists and is readable
// on every rank (a path on node-local storage fails here, not inside MPI_File_open), and
// (rank 0 only, to spare the file system) it carries the HDF5 signature.
static pcn_status precheck(pcn_dataset *ds, const char *split, pcn_io_mode mode) {
    pcn_status st = PCN_OK;
    if (!split || (strcmp(split, "train") != 0 && strcmp(split, "test") != 0))
        BAD(PCN_EINVAL, "split must be \"train\" or \"test\", got \"%s\"",
            split ? split : "(null)");
    if (mode != PCN_IO_MEMORY && mode != PCN_IO_STREAM)
        BAD(PCN_EINVAL, "reader mode must be memory (0) or stream (1), got %d", (int)mode);
    struct stat sb;
    if (stat(ds->path, &sb) != 0) {
        if (errno == ENOENT) BAD(PCN_EIO, "no such file");
        BAD(PCN_EIO, "cannot open: %s", strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) BAD(PCN_EIO, "is a directory, not a data set file");
    if (!S_ISREG(sb.st_mode))
        BAD(PCN_EIO, "is not a regular file (a FIFO, socket or device); a data set must be "
                     "an HDF5 file on disk");
    ds->opened = sb;
    if (access(ds->path, R_OK) != 0) BAD(PCN_EIO, "cannot read: %s", strerror(errno));
    if (pcn_dist_rank(ds->c) == 0) {
        htri_t h5;
#if H5_VERSION_GE(1, 12, 0)
        H5_CHECK(h5 = H5Fis_accessible(ds->path, H5P_DEFAULT), "cannot read the file");
#else
        H5_CHECK(h5 = H5Fis_hdf5(ds->path), "cannot read the file");
#endif
        if (!h5) BAD(PCN_EIO, "not an HDF5 file (no HDF5 signature); convert the data with "
                              "pcn_convert");
    }
done:
    return st;
}

// Labels are read as int32. HDF5 would clip a wider label (an int64 2^33 + 1 becomes
// 2147483647) and the range check would then print the clipped value; this callback aborts
// the read instead and keeps the file's value for the message.
H5T_conv_ret_t dataset_on_overflow(H5T_conv_except_t kind, hid_t src, hid_t dst, void *src_buf,
                                   void *dst_buf, void *user) {
    (void)dst, (void)dst_buf;
    label_overflow *o = user;
    if (kind != H5T_CONV_EXCEPT_RANGE_HI && kind != H5T_CONV_EXCEPT_RANGE_LOW)
        return H5T_CONV_UNHANDLED;
    const bool sign = H5Tget_sign(src) == H5T_SGN_2;
    const size_t size = H5Tget_size(src);
    o->hit = true;
    if (H5Tget_class(src) != H5T_INTEGER || (size != 4 && size != 8))
        snprintf(o->value, sizeof o->value, "(not an int32)");
    else if (size == 8 && sign) snprintf(o->value, sizeof o->value, "%lld", *(long long *)src_buf);
    else if (size == 8) snprintf(o->value, sizeof o->value, "%llu", *(unsigned long long *)src_buf);
    else snprintf(o->value, sizeof o->value, "%u", *(unsigned *)src_buf);
    return H5T_CONV_ABORT;
}

// After a failed read of labels: the label that did not fit, if that was the cause.
pcn_status dataset_label_read_failed(const pcn_dataset *ds, const label_overflow *o,
                                     pcn_status st) {
    if (st == PCN_OK || !o->hit) return st;
    return pcn_h5_path_error(ds->path, PCN_EDATA,
                             "/%s/y: label %s is outside the int32 range; labels must lie "
                             "in [0, num_classes)",
                             ds->split, o->value);
}

// Stream mode reads the file batch by batch: a file replaced, truncated or rewritten under
// the run would feed it rows it never had (a truncated file reads as zeros). Every rank
// compares the file with what it opened after each read, so no changed row is trained on.
pcn_status dataset_check_unchanged(const pcn_dataset *ds) {
    struct stat now;
    const struct stat *was = &ds->opened;
    if (stat(ds->path, &now) != 0)
        return pcn_h5_path_error(ds->path, PCN_EIO,
                                 "the data set file disappeared during the run (%s); stream "
                                 "mode reads it batch by batch",
                                 strerror(errno));
    if (now.st_dev != was->st_dev || now.st_ino != was->st_ino || now.st_size != was->st_size ||
        now.st_mtim.tv_sec != was->st_mtim.tv_sec || now.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
        return pcn_h5_path_error(
            ds->path, PCN_EIO,
            "the data set file changed during the run (size %lld bytes, "
            "now %lld; modified since it was opened); stream mode reads it batch by "
            "batch, so it must not change while a run uses it (or use --data-mode "
            "memory)",
            (long long)was->st_size, (long long)now.st_size);
    return PCN_OK;
}

// Opens the file on every rank with the MPI-IO driver. Collective.
static pcn_status open_file(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    hid_t fapl = H5I_INVALID_HID;
    H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS), "cannot set up the MPI-IO driver");
    H5_CHECK(H5Pset_fapl_mpio(fapl, pcn_dist_mpi(ds->c), MPI_INFO_NULL),
             "cannot set up the MPI-IO driver");
    H5_CHECK(ds->file = H5Fopen(ds->path, H5F_ACC_RDONLY, fapl),
             "cannot open: truncated or corrupt HDF5 file");
    H5_CHECK(ds->dxpl = H5Pcreate(H5P_DATASET_XFER), "cannot set up collective reads");
    H5_CHECK(H5Pset_dxpl_mpio(ds->dxpl, H5FD_MPIO_COLLECTIVE),
             "cannot set up collective reads");
    H5_CHECK(H5Pset_type_conv_cb(ds->dxpl, dataset_on_overflow, &ds->overflow),
             "cannot set up collective reads");
done:
    pcn_h5_close(&fapl);
    return st;
}

// Root attributes: pcn_format, format_version, task, num_classes.
static pcn_status read_root(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    const pcn_h5_attr_at root = {ds->path, ds->file, "/"};
    char text[128];
    bool present;
    double v;
    if ((st = pcn_h5_attr_get_str(&root, "pcn_format", text, sizeof text, &present))) goto done;
    if (!present)
        BAD(PCN_EDATA, "no pcn_format attribute: not a pcn data set (convert the data with "
                       "pcn_convert)");
    if (strcmp(text, PCN_IO_DATASET_FORMAT) != 0)
        BAD(PCN_EDATA, "pcn_format is \"%s\"; expected \"%s\"", text, PCN_IO_DATASET_FORMAT);
    if ((st = pcn_h5_attr_get_num(&root, "format_version", true, &v, &present))) goto done;
    if (!present) BAD(PCN_EDATA, "no format_version attribute");
    if (v != PCN_IO_DATASET_VERSION)
        BAD(PCN_EDATA, "format_version %.0f is not supported (this reader reads version %d); "
                       "written by a newer pcn_convert? re-convert with this version", v,
            PCN_IO_DATASET_VERSION);
    if ((st = pcn_h5_attr_get_str(&root, "task", text, sizeof text, &present))) goto done;
    if (!present) BAD(PCN_EDATA, "no task attribute (classification or regression)");
    if (pcn_task_from_name(text, &ds->task) != PCN_OK)
        BAD(PCN_EDATA, "task is \"%s\"; expected \"classification\" or \"regression\"", text);
    if ((st = pcn_h5_attr_get_num(&root, "num_classes", true, &v, &present))) goto done;
    if (ds->task == PCN_TASK_CLASSIFICATION) {
        if (!present) BAD(PCN_EDATA, "no num_classes attribute (needed for classification)");
        if (v < 1 || v > INT32_MAX) BAD(PCN_EDATA, "num_classes %.0f must be >= 1", v);
        ds->num_classes = (int)v;
    } else if (present && v != 0) {
        BAD(PCN_EDATA, "num_classes is %.0f but the task is regression (expected 0)", v);
    }
done:
    return st;
}

// /SPLIT/x and /SPLIT/y: shapes, dtypes, x@scale, agreement with the task.
static pcn_status read_split(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    dset_info x = {.id = H5I_INVALID_HID}, y = {.id = H5I_INVALID_HID};
    x.space = x.type = y.space = y.type = H5I_INVALID_HID;
    char group[16], xname[24], yname[24];
    snprintf(group, sizeof group, "/%s", ds->split);
    snprintf(xname, sizeof xname, "/%s/x", ds->split);
    snprintf(yname, sizeof yname, "/%s/y", ds->split);
    htri_t there;
    H5_CHECK(there = H5Lexists(ds->file, group, H5P_DEFAULT), "cannot look up the split");
    if (!there) BAD(PCN_EDATA, "the %s split is missing (no %s group)", ds->split, group);
    if ((st = dset_open(ds, xname, &x))) goto done;
    if (x.rank != 2) BAD(PCN_EDATA, "%s has rank %d (shape %s); expected 2 ([N, D])", xname,
                         x.rank, x.shape);
    if (!is_u8(x.type) && !is_f32(x.type))
        BAD(PCN_EDATA, "%s has dtype %s; expected uint8 or float32", xname, x.dtype);
    if (x.dims[1] < 1 || x.dims[1] > INT32_MAX)
        BAD(PCN_EDATA, "%s has shape %s; expected D in [1, %d]", xname, x.shape, INT32_MAX);
    ds->N = (int64_t)x.dims[0], ds->D = (int)x.dims[1], ds->x_u8 = is_u8(x.type);
    double scale = 1.0;
    bool present;
    if ((st = pcn_h5_attr_get_num(&(pcn_h5_attr_at){ds->path, x.id, xname}, "scale", false, &scale,
                                  &present)))
        goto done;
    if (!isfinite(scale) || !isfinite((float)scale))
        BAD(PCN_EDATA, "%s@scale is %g; expected a finite number", xname, scale);
    ds->scale = (float)scale;

    if ((st = dset_open(ds, yname, &y))) goto done;
    bool labels = y.rank == 1 && H5Tget_class(y.type) == H5T_INTEGER;
    bool targets = y.rank == 2 && is_f32(y.type);
    if (!labels && !targets)
        BAD(PCN_EDATA, "%s has dtype %s and shape %s; expected integer labels [N] or float32 "
                       "targets [N, K]", yname, y.dtype, y.shape);
    if (y.dims[0] != x.dims[0])
        BAD(PCN_EDATA, "%s has %llu rows but %s has %llu; x and y must have the same length",
            xname, (unsigned long long)x.dims[0], yname, (unsigned long long)y.dims[0]);
    if (ds->task == PCN_TASK_CLASSIFICATION && !labels)
        BAD(PCN_EDATA, "the task is classification but %s holds float32 targets %s; expected "
                       "integer labels [N]", yname, y.shape);
    if (ds->task == PCN_TASK_REGRESSION && !targets)
        BAD(PCN_EDATA, "the task is regression but %s holds %s labels; expected float32 targets "
                       "[N, K]", yname, y.dtype);
    if (targets && (y.dims[1] < 1 || y.dims[1] > INT32_MAX))
        BAD(PCN_EDATA, "%s has shape %s; expected K >= 1 targets per row", yname, y.shape);
    ds->K = targets ? (int)y.dims[1] : 0;
    ds->dx = x.id, ds->fsx = x.space, ds->dy = y.id, ds->fsy = y.space;
    x.id = x.space = y.id = y.space = H5I_INVALID_HID; // now owned by ds
done:
    dset_close(&x);
    dset_close(&y);
    return st;
}

// One /norm vector: shape [D], a float type, finite values (std also non-zero). Collective.
static pcn_status read_norm_vec(pcn_dataset *ds, const char *name, float *out, bool is_std) {
    pcn_status st = PCN_OK;
    dset_info d = {.id = H5I_INVALID_HID};
    d.space = d.type = H5I_INVALID_HID;
    if ((st = dset_open(ds, name, &d))) goto done;
    if (d.rank != 1 || d.dims[0] != (hsize_t)ds->D)
        BAD(PCN_EDATA, "%s has shape %s; expected [D] = [%d] (one value per feature of /%s/x)",
            name, d.shape, ds->D, ds->split);
    if (H5Tget_class(d.type) != H5T_FLOAT)
        BAD(PCN_EDATA, "%s has dtype %s; expected float32", name, d.dtype);
    char what[96];
    snprintf(what, sizeof what, "cannot read %s", name);
    H5_CHECK(H5Dread(d.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, ds->dxpl, out), what);
    for (int j = 0; j < ds->D; j++) {
        if (!isfinite(out[j]))
            BAD(PCN_EDATA, "%s[%d] is %g; expected a finite value", name, j, out[j]);
        if (is_std && out[j] == 0.0f) BAD(PCN_EDATA, "%s[%d] is 0 (division by zero)", name, j);
    }
done:
    dset_close(&d);
    return st;
}

// The normalisation: the file's /norm (params.norm file), M and S for every feature
// (given), or none. Collective.
static pcn_status read_norm(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    htri_t there;
    const pcn_io_dataset_params *p = &ds->params;
    if (p->norm == PCN_IO_NORM_NONE) return PCN_OK;
    if (p->norm == PCN_IO_NORM_GIVEN) {
        ds->mean = malloc((size_t)ds->D * sizeof(float));
        ds->std = malloc((size_t)ds->D * sizeof(float));
        if (!ds->mean || !ds->std) BAD(PCN_ENOMEM, "out of memory for the norm (%d features)", ds->D);
        for (int j = 0; j < ds->D; j++)
            ds->mean[j] = (float)p->norm_mean, ds->std[j] = (float)p->norm_std;
        return PCN_OK;
    }
    H5_CHECK(there = H5Lexists(ds->file, "/norm", H5P_DEFAULT), "cannot look up /norm");
    if (!there) goto done;
    ds->mean = malloc((size_t)ds->D * sizeof(float));
    ds->std = malloc((size_t)ds->D * sizeof(float));
    if (!ds->mean || !ds->std) BAD(PCN_ENOMEM, "out of memory for /norm (%d features)", ds->D);
    if ((st = read_norm_vec(ds, "/norm/mean", ds->mean, false))) goto done;
    st = read_norm_vec(ds, "/norm/std", ds->std, true);
done:
    return st;
}

// ----------------------------------------------------------------------------------------
// Conversion and value checks
// ----------------------------------------------------------------------------------------


// One row in the file dtype -> (D) floats: x * scale, then (x - mean) / std.
void dataset_convert_row(const pcn_dataset *ds, const void *src, float *dst) {
    const int D = ds->D;
    const float s = ds->scale;
    if (ds->x_u8) {
        const uint8_t *u = src;
        for (int j = 0; j < D; j++) dst[j] = (float)u[j] * s;
    } else {
        const float *f = src;
        for (int j = 0; j < D; j++) dst[j] = f[j] * s;
    }
    if (ds->mean)
        for (int j = 0; j < D; j++) dst[j] = (dst[j] - ds->mean[j]) / ds->std[j];
}

pcn_status dataset_check_label(const pcn_dataset *ds, int32_t c, int64_t row) {
    if (ds->num_classes > 0 && (c < 0 || c >= ds->num_classes))
        return pcn_h5_path_error(ds->path, PCN_EDATA,
                                 "/%s/y: label %d at row %lld is outside [0, %d) (num_classes)",
                                 ds->split, (int)c, (long long)row, ds->num_classes);
    return PCN_OK;
}

pcn_status dataset_check_rows(const pcn_dataset *ds, const int64_t *rows, int count) {
    if (count < 0) return pcn_h5_path_error(ds->path, PCN_EINVAL, "read of %d rows", count);
    if (count > 0 && !rows)
        return pcn_h5_path_error(ds->path, PCN_EINVAL, "read of %d rows without a row list", count);
    for (int i = 0; i < count; i++)
        if (rows[i] < 0 || rows[i] >= ds->N)
            return pcn_h5_path_error(ds->path, PCN_EINVAL, "row %lld is outside [0, %lld) of /%s",
                                     (long long)rows[i], (long long)ds->N, ds->split);
    return PCN_OK;
}

// Memory mode: checks rows [lo, lo + n) of the shared copy: labels in range, floats finite.
// Stops at the first bad row.
static pcn_status scan_rows(const pcn_dataset *ds, int64_t lo, int64_t n) {
    const int D = ds->D, K = ds->K;
    for (int64_t r = lo; r < lo + n; r++) {
        if (!ds->x_u8) {
            const float *xr = (const float *)ds->mx + (size_t)r * D;
            for (int j = 0; j < D; j++)
                if (!isfinite(xr[j]))
                    return pcn_h5_path_error(ds->path, PCN_EDATA,
                                "/%s/x: non-finite value (%g) at row %lld, feature %d",
                                ds->split, xr[j], (long long)r, j);
        }
        if (ds->mlabels) {
            pcn_status st = dataset_check_label(ds, ds->mlabels[r], r);
            if (st != PCN_OK) return st;
        }
        for (int k = 0; ds->mtargets && k < K; k++)
            if (!isfinite(ds->mtargets[(size_t)r * K + k]))
                return pcn_h5_path_error(
                    ds->path, PCN_EDATA, "/%s/y: non-finite target (%g) at row %lld, output %d",
                    ds->split, ds->mtargets[(size_t)r * K + k], (long long)r, k);
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Memory mode: the node's shared copy
// ----------------------------------------------------------------------------------------

// Reads rows [lo, lo + n) of dataset d (row width w values of memtype) into buf on this
// rank, or takes part selecting nothing when mine is false. Collective.
static pcn_status fill_piece(pcn_dataset *ds, hid_t d, hid_t fs, int rank, hsize_t w,
                             hid_t memtype, bool mine, hsize_t lo, hsize_t n, void *buf,
                             const char *what) {
    pcn_status st = PCN_OK;
    hid_t ms = H5I_INVALID_HID;
    unsigned char dummy[16];
    hsize_t start[2] = {lo, 0}, count[2] = {n, w}, one = 1;
    if (mine) {
        H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), what);
        H5_CHECK(ms = H5Screate_simple(rank, count, NULL), what);
    } else {
        H5_CHECK(H5Sselect_none(fs), what);
        H5_CHECK(ms = H5Screate_simple(1, &one, NULL), what);
        H5_CHECK(H5Sselect_none(ms), what);
    }
    H5_CHECK(H5Dread(d, memtype, ms, fs, ds->dxpl, mine ? buf : dummy), what);
done:
    pcn_h5_close(&ms);
    return st;
}

// Memory mode keeps one copy of the split per node in shared memory, which Open MPI backs
// with files in /dev/shm: a copy larger than what is free there ends in an MPI abort (or a
// SIGBUS on first touch) instead of a message. Local (bytes is 0 on ranks that allocate
// nothing).
static pcn_status check_shm(const pcn_dataset *ds, size_t bytes) {
    struct statvfs v;
    if (bytes == 0 || statvfs("/dev/shm", &v) != 0) return PCN_OK; // no /dev/shm: MPI's choice
    const double have = (double)v.f_bavail * (double)v.f_frsize, mib = 1024.0 * 1024.0;
    if ((double)bytes <= have) return PCN_OK;
    return pcn_h5_path_error(
        ds->path, PCN_ENOMEM,
        "memory mode keeps /%s (%.1f MiB) in shared memory on every "
        "node, and /dev/shm has %.1f MiB free; use --data-mode stream (reads each "
        "batch's rows from the file) or a node with more shared memory",
        ds->split, (double)bytes / mib, have / mib);
}

// Allocates the node window, fills it with collective reads (local rank 0 of each node
// reads every row) and fences. Collective.
static pcn_status load_shared(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    MPI_Comm node = pcn_dist_node_mpi(ds->c);
    const bool mine = pcn_dist_local_rank(ds->c) == 0;
    const size_t xrow = (size_t)ds->D * x_size(ds), yrow = ds->K ? (size_t)ds->K * 4 : 4;
    const size_t xbytes = (size_t)ds->N * xrow, yoff = (xbytes + 63) / 64 * 64;
    const size_t total = yoff + (size_t)ds->N * yrow;
    void *base = NULL;
    if ((st = pcn_dist_agree(ds->c, check_shm(ds, mine ? total : 0))) != PCN_OK) return st;
    PCN_MPI_CHECK(MPI_Win_allocate_shared(mine ? (MPI_Aint)total : 0, 1, MPI_INFO_NULL, node,
                                          &base, &ds->win));
    MPI_Aint size;
    int disp;
    PCN_MPI_CHECK(MPI_Win_shared_query(ds->win, 0, &size, &disp, &base));
    unsigned char *mem = base;
    ds->mx = mem;
    ds->mlabels = ds->K ? NULL : (const int32_t *)(mem + yoff);
    ds->mtargets = ds->K ? (const float *)(mem + yoff) : NULL;
    PCN_MPI_CHECK(MPI_Win_fence(MPI_MODE_NOPRECEDE, ds->win));
    // Pieces bound the size of one MPI-IO request; every rank makes the same calls.
    const hsize_t piece = xrow < FILL_PIECE_BYTES ? FILL_PIECE_BYTES / xrow : 1;
    char what[96];
    for (hsize_t lo = 0; st == PCN_OK && lo < (hsize_t)ds->N; lo += piece) {
        hsize_t n = (hsize_t)ds->N - lo < piece ? (hsize_t)ds->N - lo : piece;
        snprintf(what, sizeof what, "cannot read /%s/x (truncated or corrupt file?)", ds->split);
        st = fill_piece(ds, ds->dx, ds->fsx, 2, (hsize_t)ds->D, x_memtype(ds), mine, lo, n,
                        mem + lo * xrow, what);
        if (st != PCN_OK) break;
        snprintf(what, sizeof what, "cannot read /%s/y (truncated or corrupt file?)", ds->split);
        st = fill_piece(ds, ds->dy, ds->fsy, ds->K ? 2 : 1, (hsize_t)ds->K,
                        ds->K ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, mine, lo, n,
                        mem + yoff + lo * yrow, what);
        st = dataset_label_read_failed(ds, &ds->overflow, st);
    }
    // Every node rank sees local rank 0's writes after this fence; nothing writes again.
    PCN_MPI_CHECK(MPI_Win_fence(MPI_MODE_NOSUCCEED, ds->win));
    return st;
}

// Every node rank scans its share of the node's copy; the lowest failing rank holds the
// first bad row (node ranks are ordered like global ranks). Local.
static pcn_status scan_shared(pcn_dataset *ds) {
    int64_t lo, n;
    pcn_dist_shard(ds->N, pcn_dist_local_rank(ds->c), pcn_dist_local_size(ds->c), &lo, &n);
    return scan_rows(ds, lo, n);
}

static pcn_status memory_read(pcn_dataset *ds, const int64_t *rows, int count, float *x,
                              int32_t *labels, float *targets) {
    pcn_status st = dataset_check_rows(ds, rows, count);
    if (st != PCN_OK) return st;
    const size_t xrow = (size_t)ds->D * x_size(ds);
    for (int i = 0; i < count; i++) {
        int64_t r = rows[i];
        dataset_convert_row(ds, ds->mx + (size_t)r * xrow, x + (size_t)i * ds->D);
        if (ds->mlabels && labels) labels[i] = ds->mlabels[r];
        if (ds->mtargets && targets)
            memcpy(targets + (size_t)i * ds->K, ds->mtargets + (size_t)r * ds->K,
                   (size_t)ds->K * sizeof(float));
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

static pcn_status dataset_read(void *ctx, const int64_t *rows, int count, float *x,
                               int32_t *labels, float *targets) {
    pcn_dataset *ds = ctx;
    return ds->mode == PCN_IO_STREAM ? dataset_stream_read(ds, rows, count, x, labels, targets)
                                     : memory_read(ds, rows, count, x, labels, targets);
}

// Closes the HDF5 handles (H5Fclose is collective with the MPI-IO driver).
static void close_file(pcn_dataset *ds) {
    hid_t *ids[] = {&ds->msx, &ds->msy, &ds->msnone, &ds->fsx, &ds->fsy,
                    &ds->dx,  &ds->dy,  &ds->dxpl,   &ds->file};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) pcn_h5_close(ids[i]);
}

pcn_io_dataset_params pcn_io_dataset_default_params(void) {
    return (pcn_io_dataset_params){
        .mode = PCN_IO_MEMORY,
        .norm = PCN_IO_NORM_FILE,
        .norm_mean = 0.0,
        .norm_std = 1.0,
    };
}

pcn_dataset *pcn_io_dataset_open(pcn_comm *c, const char *path, const char *split,
                                 pcn_io_mode mode) {
    pcn_io_dataset_params p = pcn_io_dataset_default_params();
    p.mode = mode;
    return pcn_io_dataset_open_with(c, path, split, &p);
}

// The reader's params: a known norm with a finite M and a finite, non-zero S (in float).
static pcn_status check_params(const pcn_io_dataset_params *p) {
    if (p->norm != PCN_IO_NORM_FILE && p->norm != PCN_IO_NORM_NONE &&
        p->norm != PCN_IO_NORM_GIVEN)
        return pcn_set_error(PCN_EINVAL, "data set params: norm must be file, none or given, "
                             "got %d", (int)p->norm);
    if (p->norm == PCN_IO_NORM_GIVEN &&
        (!isfinite((float)p->norm_mean) || !isfinite((float)p->norm_std) ||
         (float)p->norm_std == 0.0f))
        return pcn_set_error(PCN_EINVAL, "data set params: the given norm needs a finite mean "
                             "and a finite, non-zero std, got %g and %g", p->norm_mean,
                             p->norm_std);
    return PCN_OK;
}

pcn_dataset *pcn_io_dataset_open_with(pcn_comm *c, const char *path, const char *split,
                                      const pcn_io_dataset_params *params) {
    const pcn_io_dataset_params prm = params ? *params : pcn_io_dataset_default_params();
    const pcn_io_mode mode = prm.mode;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // our messages only
    pcn_dataset *ds = calloc(1, sizeof *ds);
    char *p = path ? strdup(path) : NULL;
    pcn_status st = (ds && (p || !path)) ? PCN_OK
                                         : pcn_set_error(PCN_ENOMEM, "out of memory opening %s",
                                                         path ? path : "a data set");
    if (st == PCN_OK && !path) st = pcn_set_error(PCN_EINVAL, "data set path is NULL");
    if (st == PCN_OK) st = check_params(&prm);
    if (ds) {
        ds->c = c, ds->path = p, ds->mode = mode, ds->win = MPI_WIN_NULL, ds->params = prm;
        ds->file = ds->dx = ds->dy = ds->fsx = ds->fsy = H5I_INVALID_HID;
        ds->msx = ds->msy = ds->msnone = ds->dxpl = H5I_INVALID_HID;
        ds->pf_file = ds->pf_dx = ds->pf_dy = ds->pf_dxpl = H5I_INVALID_HID;
        ds->pf_count = -1;
        for (int i = 0; split && i < 2; i++)
            if (strcmp(split, split_names[i]) == 0)
                snprintf(ds->split, sizeof ds->split, "%s", split);
    }
    if (st == PCN_OK) st = precheck(ds, split, mode);
    if ((st = pcn_dist_agree(c, st)) != PCN_OK) goto fail;
    // From here every rank holds ds and the same state at each agreement.
    st = pcn_dist_agree(c, open_file(ds));
    if (st == PCN_OK) st = pcn_dist_agree(c, read_root(ds));
    if (st == PCN_OK) st = pcn_dist_agree(c, read_split(ds));
    if (st == PCN_OK) st = pcn_dist_agree(c, read_norm(ds));
    if (st == PCN_OK && mode == PCN_IO_MEMORY) {
        st = pcn_dist_agree(c, load_shared(ds));
        close_file(ds); // everything is in shared memory now
        if (st == PCN_OK) st = pcn_dist_agree(c, scan_shared(ds));
    } else if (st == PCN_OK) {
        st = pcn_dist_agree(c, dataset_stream_setup(ds));
    }
    if (st == PCN_OK) return ds;
fail:
    pcn_io_dataset_close(ds);
    return NULL;
}

void pcn_io_dataset_close(pcn_dataset *ds) {
    if (!ds) return;
    dataset_stream_free(ds);
    close_file(ds);
    if (ds->win != MPI_WIN_NULL) PCN_MPI_CHECK(MPI_Win_free(&ds->win));
    free(ds->mean);
    free(ds->std);
    free(ds->path);
    free(ds);
}

pcn_data pcn_io_dataset_source(pcn_dataset *ds) {
    return (pcn_data){
        .n = ds->N,
        .x_dim = ds->D,
        .y_dim = ds->K,
        .ctx = ds,
        .read = dataset_read,
        .prefetch = dataset_stream_prefetch,
    };
}

int64_t pcn_io_dataset_rows(const pcn_dataset *ds) { return ds->N; }
int64_t pcn_io_dataset_prefetch_hits(const pcn_dataset *ds) { return ds->pf_hits; }
int pcn_io_dataset_features(const pcn_dataset *ds) { return ds->D; }
int pcn_io_dataset_num_classes(const pcn_dataset *ds) { return ds->num_classes; }
int pcn_io_dataset_target_width(const pcn_dataset *ds) { return ds->K; }
pcn_task pcn_io_dataset_task(const pcn_dataset *ds) { return ds->task; }
