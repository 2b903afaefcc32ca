/*
 * dataset.c — the parallel HDF5 data set reader (see pcn_dataset.h): opens one split of a
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
 * - No HDF5 error stack is ever printed (H5Eset_auto2 off); PCN_H5_CHECK turns a failed call
 *   into a message with the statement, file:line and HDF5's own description.
 * - Memory mode: the node's local rank 0 owns the whole window (x in its file dtype, then
 *   int32 labels or float32 targets, 64-byte aligned); after the fill and the closing fence
 *   nobody writes it again, so read() is a plain Local copy and convert.
 * - Stream mode: staging buffers are allocated at open and grow only when a request is
 *   larger than every earlier one. The prefetch thread touches only ds->pf*, calls no MPI,
 *   and holds pcn_h5_lock for its HDF5 calls; the main thread joins it before reading,
 *   and checkpoint I/O takes the same lock.
 */
#include "pcn_dataset.h"

#include <errno.h>
#include <hdf5.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "h5util.h"
#include "pcn_impl.h"
#include "pcn_io.h"

// Rows staged per call before the first read grows the buffers (stream mode).
#define STAGE_ROWS 256
// Largest piece of the split read by one collective H5Dread when filling shared memory.
#define FILL_PIECE_BYTES ((size_t)256 << 20)

typedef struct {
    int64_t row; // data set row
    int idx;     // position in the request
} row_ref;

// Staging of one stream read, all of cap rows.
typedef struct {
    int cap;
    void *sx;                // (cap, D) file dtype, sorted unique rows
    int32_t *slabels;        // (cap)
    float *stargets;         // (cap, K)
    row_ref *order;          // (cap) the request sorted by row
    int *place;              // (cap) request position -> staged row
    hsize_t *runs;           // (2 * cap) start, length of each run of consecutive rows
} stage;

// An integer label the conversion to int32 could not hold (H5Pset_type_conv_cb).
typedef struct {
    bool hit;
    char value[32];          // the file's value, printed
} label_overflow;

struct pcn_dataset {
    pcn_comm *c;
    char *path;              // as given to open, for messages
    struct stat opened;      // the file as opened: stream mode stops if it changes
    char split[8];           // "train" or "test"
    pcn_io_mode mode;
    pcn_task task;
    int num_classes;         // 0 for regression
    int K;                   // target width, 0 for labels
    int D;                   // features
    int64_t N;               // rows
    bool x_u8;               // x is uint8 in the file (else float32)
    float scale;             // x@scale (1 when absent)
    float *mean, *std;       // (D) each, or NULL without /norm
    // HDF5 handles (file and datasets stay open in stream mode only)
    hid_t file, dx, dy, fsx, fsy, msx, msy, msnone, dxpl;
    // memory mode: the node's shared copy
    MPI_Win win;
    const unsigned char *mx; // (N, D) in the file dtype
    const int32_t *mlabels;  // (N) or NULL
    const float *mtargets;   // (N, K) or NULL
    stage main;              // stream mode: the collective reads' staging
    // stream mode prefetch: a thread reads the next batch's rows through its own (POSIX
    // driver) handle while the ranks compute; read() uses them when every rank has them.
    stage pf;
    pthread_t pf_thread;
    bool pf_running;
    int64_t *pf_rows;        // (pf_cap) the rows asked for, in request order
    int pf_count, pf_cap, pf_staged;
    pcn_status pf_status;
    hid_t pf_file, pf_dx, pf_dy, pf_dxpl;
    int64_t pf_hits;         // reads served by a prefetch
    label_overflow overflow, pf_overflow; // the collective reads', the prefetch thread's
};

static const char *split_names[] = {"train", "test"};

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

// "PATH: message"; returns status.
static pcn_status fail(const pcn_dataset *ds, pcn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pcn_status fail(const pcn_dataset *ds, pcn_status status, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pcn_set_error(status, "%s: %s", ds->path, msg);
}

// Turns HDF5's current error stack into "PATH: what (call at file:line: description)".
static pcn_status h5_fail(const pcn_dataset *ds, const char *what, const char *call,
                          const char *file, int line) {
    char msg[448];
    pcn_h5_describe(msg, sizeof msg);
    const char *base = strrchr(file, '/');
    return fail(ds, PCN_EIO, "%s (%s failed at %s:%d: %s)", what, call, base ? base + 1 : file,
                line, msg);
}

#define PCN_H5_CHECK(call, what)                                                            \
    do {                                                                                    \
        if ((call) < 0) {                                                                   \
            st = h5_fail(ds, (what), #call, __FILE__, __LINE__);                            \
            goto done;                                                                      \
        }                                                                                   \
    } while (0)

// A check on the file's contents: records the message in st and jumps to `done`.
#define BAD(status, ...)                                                                    \
    do {                                                                                    \
        st = fail(ds, (status), __VA_ARGS__);                                               \
        goto done;                                                                          \
    } while (0)

static void h5_close(hid_t *id) {
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

// ----------------------------------------------------------------------------------------
// Types, shapes and attributes
// ----------------------------------------------------------------------------------------

static void dtype_name(hid_t t, char *buf, size_t len) {
    size_t bits = 8 * H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    default: snprintf(buf, len, "an unsupported type (class %d)", (int)H5Tget_class(t)); break;
    }
}

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
    PCN_H5_CHECK(there = H5Lexists(ds->file, name, H5P_DEFAULT), "cannot look up a dataset");
    if (!there) BAD(PCN_EDATA, "%s is missing", name);
    char what[160];
    snprintf(what, sizeof what, "cannot open %s as a dataset", name);
    PCN_H5_CHECK(d->id = H5Dopen2(ds->file, name, H5P_DEFAULT), what);
    PCN_H5_CHECK(d->space = H5Dget_space(d->id), what);
    PCN_H5_CHECK(d->type = H5Dget_type(d->id), what);
    PCN_H5_CHECK(d->rank = H5Sget_simple_extent_ndims(d->space), what);
    hsize_t dims[H5S_MAX_RANK];
    PCN_H5_CHECK(H5Sget_simple_extent_dims(d->space, dims, NULL), what);
    for (int i = 0; i < d->rank && i < 3; i++) d->dims[i] = dims[i];
    shape_name(d->rank, dims, d->shape, sizeof d->shape);
    dtype_name(d->type, d->dtype, sizeof d->dtype);
done:
    return st;
}

static void dset_close(dset_info *d) {
    h5_close(&d->type);
    h5_close(&d->space);
    h5_close(&d->id);
}

// Opens attribute name of loc (holder names loc in messages); *present = false when absent.
// Checks that it holds one value.
static pcn_status attr_open(pcn_dataset *ds, hid_t loc, const char *holder, const char *name,
                            hid_t *attr, hid_t *type, bool *present) {
    pcn_status st = PCN_OK;
    htri_t there;
    hid_t space = H5I_INVALID_HID;
    hssize_t npoints;
    *attr = *type = H5I_INVALID_HID;
    char what[160];
    snprintf(what, sizeof what, "cannot read attribute %s@%s", holder, name);
    PCN_H5_CHECK(there = H5Aexists(loc, name), what);
    *present = there > 0;
    if (!there) goto done;
    PCN_H5_CHECK(*attr = H5Aopen(loc, name, H5P_DEFAULT), what);
    PCN_H5_CHECK(*type = H5Aget_type(*attr), what);
    PCN_H5_CHECK(space = H5Aget_space(*attr), what);
    PCN_H5_CHECK(npoints = H5Sget_simple_extent_npoints(space), what);
    if (npoints != 1) BAD(PCN_EDATA, "attribute %s@%s holds %lld values; expected one", holder,
                          name, (long long)npoints);
done:
    h5_close(&space);
    return st;
}

// A string attribute, fixed- or variable-length, into out (truncated to len - 1 chars).
static pcn_status attr_string(pcn_dataset *ds, hid_t loc, const char *holder, const char *name,
                              char *out, size_t len, bool *present) {
    hid_t attr, ftype, mtype = H5I_INVALID_HID;
    char *buf = NULL;
    out[0] = '\0';
    pcn_status st = attr_open(ds, loc, holder, name, &attr, &ftype, present);
    if (st != PCN_OK || !*present) goto done;
    char what[160], dt[48];
    snprintf(what, sizeof what, "cannot read attribute %s@%s", holder, name);
    if (H5Tget_class(ftype) != H5T_STRING) {
        dtype_name(ftype, dt, sizeof dt);
        BAD(PCN_EDATA, "attribute %s@%s is %s; expected a string", holder, name, dt);
    }
    htri_t vlen;
    H5T_cset_t cset;
    PCN_H5_CHECK(vlen = H5Tis_variable_str(ftype), what);
    PCN_H5_CHECK(cset = H5Tget_cset(ftype), what);
    PCN_H5_CHECK(mtype = H5Tcopy(H5T_C_S1), what);
    PCN_H5_CHECK(H5Tset_cset(mtype, cset), what);
    if (vlen) {
        char *s = NULL;
        PCN_H5_CHECK(H5Tset_size(mtype, H5T_VARIABLE), what);
        PCN_H5_CHECK(H5Aread(attr, mtype, &s), what);
        snprintf(out, len, "%s", s ? s : "");
        H5free_memory(s);
    } else {
        size_t size = H5Tget_size(ftype);
        PCN_H5_CHECK(H5Tset_size(mtype, size + 1), what);
        PCN_H5_CHECK(H5Tset_strpad(mtype, H5T_STR_NULLTERM), what);
        if (!(buf = calloc(size + 1, 1))) BAD(PCN_ENOMEM, "out of memory reading %s", what);
        PCN_H5_CHECK(H5Aread(attr, mtype, buf), what);
        snprintf(out, len, "%s", buf);
    }
done:
    free(buf);
    h5_close(&mtype);
    h5_close(&ftype);
    h5_close(&attr);
    return st;
}

// A numeric attribute as a double (integers must be integers: want_int).
static pcn_status attr_number(pcn_dataset *ds, hid_t loc, const char *holder, const char *name,
                              bool want_int, double *out, bool *present) {
    hid_t attr, type;
    pcn_status st = attr_open(ds, loc, holder, name, &attr, &type, present);
    if (st != PCN_OK || !*present) goto done;
    char what[160], dt[48];
    snprintf(what, sizeof what, "cannot read attribute %s@%s", holder, name);
    H5T_class_t cl = H5Tget_class(type);
    if (cl != H5T_INTEGER && (want_int || cl != H5T_FLOAT)) {
        dtype_name(type, dt, sizeof dt);
        BAD(PCN_EDATA, "attribute %s@%s is %s; expected %s", holder, name, dt,
            want_int ? "an integer" : "a number");
    }
    if (want_int) {
        long long v;
        PCN_H5_CHECK(H5Aread(attr, H5T_NATIVE_LLONG, &v), what);
        *out = (double)v;
    } else {
        PCN_H5_CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, out), what);
    }
done:
    h5_close(&type);
    h5_close(&attr);
    return st;
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
        PCN_H5_CHECK(h5 = H5Fis_accessible(ds->path, H5P_DEFAULT), "cannot read the file");
#else
        PCN_H5_CHECK(h5 = H5Fis_hdf5(ds->path), "cannot read the file");
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
static H5T_conv_ret_t on_overflow(H5T_conv_except_t kind, hid_t src, hid_t dst, void *src_buf,
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
static pcn_status label_read_failed(const pcn_dataset *ds, const label_overflow *o,
                                    pcn_status st) {
    if (st == PCN_OK || !o->hit) return st;
    return fail(ds, PCN_EDATA, "/%s/y: label %s is outside the int32 range; labels must lie "
                "in [0, num_classes)", ds->split, o->value);
}

// Stream mode reads the file batch by batch: a file replaced, truncated or rewritten under
// the run would feed it rows it never had (a truncated file reads as zeros). Every rank
// compares the file with what it opened after each read, so no changed row is trained on.
static pcn_status check_unchanged(const pcn_dataset *ds) {
    struct stat now;
    const struct stat *was = &ds->opened;
    if (stat(ds->path, &now) != 0)
        return fail(ds, PCN_EIO, "the data set file disappeared during the run (%s); stream "
                    "mode reads it batch by batch", strerror(errno));
    if (now.st_dev != was->st_dev || now.st_ino != was->st_ino || now.st_size != was->st_size ||
        now.st_mtim.tv_sec != was->st_mtim.tv_sec || now.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
        return fail(ds, PCN_EIO, "the data set file changed during the run (size %lld bytes, "
                    "now %lld; modified since it was opened); stream mode reads it batch by "
                    "batch, so it must not change while a run uses it (or use --data-mode "
                    "memory)", (long long)was->st_size, (long long)now.st_size);
    return PCN_OK;
}

// Opens the file on every rank with the MPI-IO driver. Collective.
static pcn_status open_file(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    hid_t fapl = H5I_INVALID_HID;
    PCN_H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS), "cannot set up the MPI-IO driver");
    PCN_H5_CHECK(H5Pset_fapl_mpio(fapl, pcn_dist_mpi(ds->c), MPI_INFO_NULL),
                 "cannot set up the MPI-IO driver");
    PCN_H5_CHECK(ds->file = H5Fopen(ds->path, H5F_ACC_RDONLY, fapl),
                 "cannot open: truncated or corrupt HDF5 file");
    PCN_H5_CHECK(ds->dxpl = H5Pcreate(H5P_DATASET_XFER), "cannot set up collective reads");
    PCN_H5_CHECK(H5Pset_dxpl_mpio(ds->dxpl, H5FD_MPIO_COLLECTIVE),
                 "cannot set up collective reads");
    PCN_H5_CHECK(H5Pset_type_conv_cb(ds->dxpl, on_overflow, &ds->overflow),
                 "cannot set up collective reads");
done:
    h5_close(&fapl);
    return st;
}

// Root attributes: pcn_format, format_version, task, num_classes.
static pcn_status read_root(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    char text[128];
    bool present;
    double v;
    if ((st = attr_string(ds, ds->file, "/", "pcn_format", text, sizeof text, &present))) goto done;
    if (!present)
        BAD(PCN_EDATA, "no pcn_format attribute: not a pcn data set (convert the data with "
                       "pcn_convert)");
    if (strcmp(text, PCN_IO_DATASET_FORMAT) != 0)
        BAD(PCN_EDATA, "pcn_format is \"%s\"; expected \"%s\"", text, PCN_IO_DATASET_FORMAT);
    if ((st = attr_number(ds, ds->file, "/", "format_version", true, &v, &present))) goto done;
    if (!present) BAD(PCN_EDATA, "no format_version attribute");
    if (v != PCN_IO_DATASET_VERSION)
        BAD(PCN_EDATA, "format_version %.0f is not supported (this reader reads version %d); "
                       "written by a newer pcn_convert? re-convert with this version", v,
            PCN_IO_DATASET_VERSION);
    if ((st = attr_string(ds, ds->file, "/", "task", text, sizeof text, &present))) goto done;
    if (!present) BAD(PCN_EDATA, "no task attribute (classification or regression)");
    if (pcn_task_from_name(text, &ds->task) != PCN_OK)
        BAD(PCN_EDATA, "task is \"%s\"; expected \"classification\" or \"regression\"", text);
    if ((st = attr_number(ds, ds->file, "/", "num_classes", true, &v, &present))) goto done;
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
    PCN_H5_CHECK(there = H5Lexists(ds->file, group, H5P_DEFAULT), "cannot look up the split");
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
    if ((st = attr_number(ds, x.id, xname, "scale", false, &scale, &present))) goto done;
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
    PCN_H5_CHECK(H5Dread(d.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, ds->dxpl, out), what);
    for (int j = 0; j < ds->D; j++) {
        if (!isfinite(out[j]))
            BAD(PCN_EDATA, "%s[%d] is %g; expected a finite value", name, j, out[j]);
        if (is_std && out[j] == 0.0f) BAD(PCN_EDATA, "%s[%d] is 0 (division by zero)", name, j);
    }
done:
    dset_close(&d);
    return st;
}

static pcn_status read_norm(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    htri_t there;
    PCN_H5_CHECK(there = H5Lexists(ds->file, "/norm", H5P_DEFAULT), "cannot look up /norm");
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

static size_t x_size(const pcn_dataset *ds) { return ds->x_u8 ? 1 : sizeof(float); }
static hid_t x_memtype(const pcn_dataset *ds) {
    return ds->x_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
}

// One row in the file dtype -> (D) floats: x * scale, then (x - mean) / std.
static void convert_row(const pcn_dataset *ds, const void *src, float *dst) {
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

static pcn_status check_label(const pcn_dataset *ds, int32_t c, int64_t row) {
    if (ds->num_classes > 0 && (c < 0 || c >= ds->num_classes))
        return fail(ds, PCN_EDATA, "/%s/y: label %d at row %lld is outside [0, %d) (num_classes)",
                    ds->split, (int)c, (long long)row, ds->num_classes);
    return PCN_OK;
}

static pcn_status check_rows(const pcn_dataset *ds, const int64_t *rows, int count) {
    if (count < 0) return fail(ds, PCN_EINVAL, "read of %d rows", count);
    if (count > 0 && !rows)
        return fail(ds, PCN_EINVAL, "read of %d rows without a row list", count);
    for (int i = 0; i < count; i++)
        if (rows[i] < 0 || rows[i] >= ds->N)
            return fail(ds, PCN_EINVAL, "row %lld is outside [0, %lld) of /%s", (long long)rows[i],
                        (long long)ds->N, ds->split);
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
                    return fail(ds, PCN_EDATA,
                                "/%s/x: non-finite value (%g) at row %lld, feature %d",
                                ds->split, xr[j], (long long)r, j);
        }
        if (ds->mlabels) {
            pcn_status st = check_label(ds, ds->mlabels[r], r);
            if (st != PCN_OK) return st;
        }
        for (int k = 0; ds->mtargets && k < K; k++)
            if (!isfinite(ds->mtargets[(size_t)r * K + k]))
                return fail(ds, PCN_EDATA, "/%s/y: non-finite target (%g) at row %lld, output %d",
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
        PCN_H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), what);
        PCN_H5_CHECK(ms = H5Screate_simple(rank, count, NULL), what);
    } else {
        PCN_H5_CHECK(H5Sselect_none(fs), what);
        PCN_H5_CHECK(ms = H5Screate_simple(1, &one, NULL), what);
        PCN_H5_CHECK(H5Sselect_none(ms), what);
    }
    PCN_H5_CHECK(H5Dread(d, memtype, ms, fs, ds->dxpl, mine ? buf : dummy), what);
done:
    h5_close(&ms);
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
    return fail(ds, PCN_ENOMEM, "memory mode keeps /%s (%.1f MiB) in shared memory on every "
                "node, and /dev/shm has %.1f MiB free; use --data-mode stream (reads each "
                "batch's rows from the file) or a node with more shared memory", ds->split,
                (double)bytes / mib, have / mib);
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
        st = label_read_failed(ds, &ds->overflow, st);
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
    pcn_status st = check_rows(ds, rows, count);
    if (st != PCN_OK) return st;
    const size_t xrow = (size_t)ds->D * x_size(ds);
    for (int i = 0; i < count; i++) {
        int64_t r = rows[i];
        convert_row(ds, ds->mx + (size_t)r * xrow, x + (size_t)i * ds->D);
        if (ds->mlabels && labels) labels[i] = ds->mlabels[r];
        if (ds->mtargets && targets)
            memcpy(targets + (size_t)i * ds->K, ds->mtargets + (size_t)r * ds->K,
                   (size_t)ds->K * sizeof(float));
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Stream mode: collective reads of the requested rows
// ----------------------------------------------------------------------------------------

static pcn_status stage_grow(pcn_dataset *ds, stage *sg, int rows) {
    if (rows <= sg->cap) return PCN_OK;
    const size_t n = (size_t)rows;
    void *sx = realloc(sg->sx, n * ds->D * x_size(ds));
    if (sx) sg->sx = sx;
    int32_t *sl = realloc(sg->slabels, n * sizeof *sl);
    if (sl) sg->slabels = sl;
    float *stg = ds->K ? realloc(sg->stargets, n * ds->K * sizeof *stg) : sg->stargets;
    if (stg) sg->stargets = stg;
    row_ref *o = realloc(sg->order, n * sizeof *o);
    if (o) sg->order = o;
    int *pl = realloc(sg->place, n * sizeof *pl);
    if (pl) sg->place = pl;
    hsize_t *runs = realloc(sg->runs, 2 * n * sizeof *runs);
    if (runs) sg->runs = runs;
    if (!sx || !sl || (ds->K && !stg) || !o || !pl || !runs)
        return fail(ds, PCN_ENOMEM, "out of memory staging %d rows of /%s", rows, ds->split);
    sg->cap = rows;
    return PCN_OK;
}

static void stage_free(stage *sg) {
    free(sg->sx), free(sg->slabels), free(sg->stargets), free(sg->order), free(sg->place);
    free(sg->runs);
}

static int cmp_row(const void *a, const void *b) {
    int64_t x = ((const row_ref *)a)->row, y = ((const row_ref *)b)->row;
    return (x > y) - (x < y);
}

// Sorts the request, maps each request position to its staged row (duplicates share one)
// and records maximal runs of consecutive rows in sg->runs. Returns the number of runs;
// *staged receives the number of distinct rows.
static int plan_runs(stage *sg, const int64_t *rows, int count, int *staged) {
    for (int i = 0; i < count; i++) sg->order[i] = (row_ref){rows[i], i};
    qsort(sg->order, (size_t)count, sizeof *sg->order, cmp_row);
    int u = -1, nruns = 0;
    for (int i = 0; i < count; i++) {
        int64_t r = sg->order[i].row;
        if (u < 0 || r != sg->order[i - 1].row) {
            u++;
            if (nruns > 0 && (int64_t)(sg->runs[2 * nruns - 2] + sg->runs[2 * nruns - 1]) == r) {
                sg->runs[2 * nruns - 1]++;
            } else {
                sg->runs[2 * nruns] = (hsize_t)r, sg->runs[2 * nruns + 1] = 1;
                nruns++;
            }
        }
        sg->place[sg->order[i].idx] = u;
    }
    *staged = u + 1;
    return nruns;
}

// Selects the union of runs [a, b) (rows of width w) in sp. OR-ing one hyperslab at a time
// costs time linear in the selection so far (quadratic overall: 16000 runs took 3 s with
// HDF5 1.10.8), so halves are built apart and merged: O(n log n), 9 ms for 16000 runs.
static herr_t select_runs(const hsize_t *runs, int a, int b, hsize_t w, hid_t sp) {
#if H5_VERSION_GE(1, 10, 6)
    if (b - a > 32) {
        int m = a + (b - a) / 2;
        // sp selects nothing before the copy, so copying costs nothing whatever sp held
        hid_t right = H5Sselect_none(sp) < 0 ? -1 : H5Scopy(sp);
        herr_t rc = right < 0 ? -1 : select_runs(runs, m, b, w, right);
        if (rc >= 0) rc = select_runs(runs, a, m, w, sp);
        if (rc >= 0) rc = H5Smodify_select(sp, H5S_SELECT_OR, right);
        if (right >= 0) H5Sclose(right);
        return rc;
    }
#endif
    for (int k = a; k < b; k++) {
        hsize_t start[2] = {runs[2 * k], 0}, count[2] = {runs[2 * k + 1], w};
        if (H5Sselect_hyperslab(sp, k > a ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL, count,
                                NULL) < 0)
            return -1;
    }
    return 0;
}

// Selects the runs (row width w) in fs, n = 0 selecting none, and reads them collectively
// into buf in sorted order. Every rank calls it. Collective.
static pcn_status read_runs(pcn_dataset *ds, hid_t d, hid_t fs, hid_t ms, int rank, hsize_t w,
                            hid_t memtype, int nruns, int staged, void *buf, const char *what) {
    pcn_status st = PCN_OK;
    unsigned char dummy[16];
    if (nruns == 0) {
        PCN_H5_CHECK(H5Sselect_none(fs), what);
        PCN_H5_CHECK(H5Dread(d, memtype, ds->msnone, fs, ds->dxpl, dummy), what);
        goto done;
    }
    PCN_H5_CHECK(select_runs(ds->main.runs, 0, nruns, w, fs), what);
    hsize_t dims[2] = {(hsize_t)staged, w};
    PCN_H5_CHECK(H5Sset_extent_simple(ms, rank, dims, NULL), what);
    PCN_H5_CHECK(H5Sselect_all(ms), what);
    PCN_H5_CHECK(H5Dread(d, memtype, ms, fs, ds->dxpl, buf), what);
done:
    return st;
}

// Keeps the first failure (status and message) of a sequence of steps.
static void keep_first(pcn_status st, pcn_status *first, char *msg, size_t len) {
    if (*first == PCN_OK && st != PCN_OK) *first = st, snprintf(msg, len, "%s", pcn_last_error());
}

// Converts and checks staged rows into the caller's buffers, in request order.
static pcn_status deliver(pcn_dataset *ds, const stage *sg, const int64_t *rows, int count,
                          float *x, int32_t *labels, float *targets) {
    const size_t xrow = (size_t)ds->D * x_size(ds);
    for (int i = 0; i < count; i++) {
        int u = sg->place[i];
        convert_row(ds, (const unsigned char *)sg->sx + (size_t)u * xrow, x + (size_t)i * ds->D);
        if (!ds->K) {
            pcn_status st = check_label(ds, sg->slabels[u], rows[i]);
            if (st != PCN_OK) return st;
            if (labels) labels[i] = sg->slabels[u];
        } else if (targets) {
            memcpy(targets + (size_t)i * ds->K, sg->stargets + (size_t)u * ds->K,
                   (size_t)ds->K * sizeof(float));
        }
    }
    return PCN_OK;
}

// Waits for the prefetch thread, if one runs.
static void prefetch_join(pcn_dataset *ds) {
    if (!ds->pf_running) return;
    pthread_join(ds->pf_thread, NULL);
    ds->pf_running = false;
}

// Whether this rank's prefetch holds exactly these rows; then every rank must agree, or all
// read collectively (a rank alone in a collective read would hang). Collective.
static bool prefetch_hit(pcn_dataset *ds, const int64_t *rows, int count) {
    prefetch_join(ds);
    int mine = ds->pf_count >= 0 && ds->pf_status == PCN_OK && ds->pf_count == count &&
               (count == 0 || memcmp(ds->pf_rows, rows, (size_t)count * sizeof *rows) == 0);
    int all = 0;
    PCN_MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, pcn_dist_mpi(ds->c)));
    ds->pf_count = -1; // used once
    return all == 1;
}

static pcn_status stream_read(pcn_dataset *ds, const int64_t *rows, int count, float *x,
                              int32_t *labels, float *targets) {
    if (prefetch_hit(ds, rows, count)) {
        ds->pf_hits++;
        pcn_status st = check_unchanged(ds);
        return st == PCN_OK ? deliver(ds, &ds->pf, rows, count, x, labels, targets) : st;
    }
    // A rank whose request is bad still takes part in both collective reads, selecting none.
    pcn_status st = check_rows(ds, rows, count), first = PCN_OK;
    if (st == PCN_OK) st = stage_grow(ds, &ds->main, count);
    char msg[1024] = "", what[96];
    keep_first(st, &first, msg, sizeof msg);
    int staged = 0;
    int nruns = st == PCN_OK && count > 0 ? plan_runs(&ds->main, rows, count, &staged) : 0;
    snprintf(what, sizeof what, "cannot read rows of /%s/x", ds->split);
    st = read_runs(ds, ds->dx, ds->fsx, ds->msx, 2, (hsize_t)ds->D, x_memtype(ds), nruns, staged,
                   ds->main.sx, what);
    keep_first(st, &first, msg, sizeof msg);
    snprintf(what, sizeof what, "cannot read rows of /%s/y", ds->split);
    st = read_runs(ds, ds->dy, ds->fsy, ds->msy, ds->K ? 2 : 1, (hsize_t)ds->K,
                   ds->K ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, nruns, staged,
                   ds->K ? (void *)ds->main.stargets : (void *)ds->main.slabels, what);
    keep_first(label_read_failed(ds, &ds->overflow, st), &first, msg, sizeof msg);
    keep_first(check_unchanged(ds), &first, msg, sizeof msg);
    if (first != PCN_OK) return pcn_set_error(first, "%s", msg);
    return deliver(ds, &ds->main, rows, count, x, labels, targets);
}

// ----------------------------------------------------------------------------------------
// Stream mode prefetch: independent reads on a thread, under the process's HDF5 lock
// ----------------------------------------------------------------------------------------

// Reads the staged runs of one dataset through the thread's handle (row width w).
static herr_t pf_read_one(hid_t d, hid_t dxpl, int rank, hsize_t w, hid_t memtype,
                          const stage *sg, int nruns, int staged, void *buf) {
    hid_t fs = H5Dget_space(d), ms = -1;
    hsize_t dims[2] = {(hsize_t)staged, w};
    herr_t rc = fs < 0 ? -1 : select_runs(sg->runs, 0, nruns, w, fs);
    if (rc >= 0) rc = (ms = H5Screate_simple(rank, dims, NULL)) < 0 ? -1 : 0;
    if (rc >= 0) rc = H5Dread(d, memtype, ms, fs, dxpl, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static void *pf_main(void *arg) {
    pcn_dataset *ds = arg;
    pcn_h5_lock();
    herr_t rc = 0;
    if (ds->pf_file < 0) { // first prefetch: the thread's own handle, POSIX driver
        ds->pf_file = H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT);
        char name[32];
        snprintf(name, sizeof name, "/%s/x", ds->split);
        ds->pf_dx = ds->pf_file < 0 ? -1 : H5Dopen2(ds->pf_file, name, H5P_DEFAULT);
        snprintf(name, sizeof name, "/%s/y", ds->split);
        ds->pf_dy = ds->pf_file < 0 ? -1 : H5Dopen2(ds->pf_file, name, H5P_DEFAULT);
        // A label that does not fit fails the prefetch (a miss): the collective read names it.
        ds->pf_dxpl = H5Pcreate(H5P_DATASET_XFER);
        if (ds->pf_dxpl >= 0 && H5Pset_type_conv_cb(ds->pf_dxpl, on_overflow, &ds->pf_overflow) < 0)
            H5Pclose(ds->pf_dxpl), ds->pf_dxpl = H5I_INVALID_HID;
        rc = ds->pf_dx < 0 || ds->pf_dy < 0 || ds->pf_dxpl < 0 ? -1 : 0;
    }
    int nruns = 0;
    if (rc >= 0 && ds->pf_count > 0) {
        nruns = plan_runs(&ds->pf, ds->pf_rows, ds->pf_count, &ds->pf_staged);
        rc = pf_read_one(ds->pf_dx, ds->pf_dxpl, 2, (hsize_t)ds->D, x_memtype(ds), &ds->pf,
                         nruns, ds->pf_staged, ds->pf.sx);
        if (rc >= 0)
            rc = pf_read_one(ds->pf_dy, ds->pf_dxpl, ds->K ? 2 : 1, (hsize_t)ds->K,
                             ds->K ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, &ds->pf, nruns,
                             ds->pf_staged, ds->K ? (void *)ds->pf.stargets : (void *)ds->pf.slabels);
    }
    pcn_h5_unlock();
    ds->pf_status = rc < 0 ? PCN_EIO : PCN_OK; // a failed prefetch is a miss: read() retries
    return NULL;
}

// Starts reading rows (the next batch of this rank) in the background. Local.
static void dataset_prefetch(void *ctx, const int64_t *rows, int count) {
    pcn_dataset *ds = ctx;
    if (ds->mode != PCN_IO_STREAM) return;
    prefetch_join(ds);
    ds->pf_count = -1;
    for (int i = 0; i < count; i++)
        if (rows[i] < 0 || rows[i] >= ds->N) return; // read() reports bad rows
    if (count > ds->pf_cap) {
        int64_t *r = realloc(ds->pf_rows, (size_t)count * sizeof *r);
        if (!r) return;
        ds->pf_rows = r, ds->pf_cap = count;
    }
    if (count > 0 && stage_grow(ds, &ds->pf, count) != PCN_OK) return;
    if (count > 0) memcpy(ds->pf_rows, rows, (size_t)count * sizeof *rows);
    ds->pf_count = count;
    ds->pf_status = PCN_EIO;
    ds->pf_running = pthread_create(&ds->pf_thread, NULL, pf_main, ds) == 0;
    if (!ds->pf_running) ds->pf_count = -1;
}

// Memory spaces and staging for stream mode. Local.
static pcn_status stream_setup(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    hsize_t one = 1;
    PCN_H5_CHECK(ds->msx = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    PCN_H5_CHECK(ds->msy = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    PCN_H5_CHECK(ds->msnone = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    PCN_H5_CHECK(H5Sselect_none(ds->msnone), "cannot set up stream reads");
    int64_t first = ds->N < STAGE_ROWS ? ds->N : STAGE_ROWS;
    st = stage_grow(ds, &ds->main, first > 0 ? (int)first : 1);
done:
    return st;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

static pcn_status dataset_read(void *ctx, const int64_t *rows, int count, float *x,
                               int32_t *labels, float *targets) {
    pcn_dataset *ds = ctx;
    return ds->mode == PCN_IO_STREAM ? stream_read(ds, rows, count, x, labels, targets)
                                     : memory_read(ds, rows, count, x, labels, targets);
}

// Closes the HDF5 handles (H5Fclose is collective with the MPI-IO driver).
static void close_file(pcn_dataset *ds) {
    hid_t *ids[] = {&ds->msx, &ds->msy, &ds->msnone, &ds->fsx, &ds->fsy,
                    &ds->dx,  &ds->dy,  &ds->dxpl,   &ds->file};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) h5_close(ids[i]);
}

pcn_dataset *pcn_io_dataset_open(pcn_comm *c, const char *path, const char *split,
                                 pcn_io_mode mode) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // our messages only
    pcn_dataset *ds = calloc(1, sizeof *ds);
    char *p = path ? strdup(path) : NULL;
    pcn_status st = (ds && (p || !path)) ? PCN_OK
                                         : pcn_set_error(PCN_ENOMEM, "out of memory opening %s",
                                                         path ? path : "a data set");
    if (st == PCN_OK && !path) st = pcn_set_error(PCN_EINVAL, "data set path is NULL");
    if (ds) {
        ds->c = c, ds->path = p, ds->mode = mode, ds->win = MPI_WIN_NULL;
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
        st = pcn_dist_agree(c, stream_setup(ds));
    }
    if (st == PCN_OK) return ds;
fail:
    pcn_io_dataset_close(ds);
    return NULL;
}

void pcn_io_dataset_close(pcn_dataset *ds) {
    if (!ds) return;
    prefetch_join(ds);
    if (ds->pf_dx >= 0) H5Dclose(ds->pf_dx);
    if (ds->pf_dy >= 0) H5Dclose(ds->pf_dy);
    if (ds->pf_dxpl >= 0) H5Pclose(ds->pf_dxpl);
    if (ds->pf_file >= 0) H5Fclose(ds->pf_file);
    close_file(ds);
    if (ds->win != MPI_WIN_NULL) PCN_MPI_CHECK(MPI_Win_free(&ds->win));
    free(ds->mean);
    free(ds->std);
    stage_free(&ds->main);
    stage_free(&ds->pf);
    free(ds->pf_rows);
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
        .prefetch = dataset_prefetch,
    };
}

int64_t pcn_io_dataset_rows(const pcn_dataset *ds) { return ds->N; }
int64_t pcn_io_dataset_prefetch_hits(const pcn_dataset *ds) { return ds->pf_hits; }
int pcn_io_dataset_features(const pcn_dataset *ds) { return ds->D; }
int pcn_io_dataset_num_classes(const pcn_dataset *ds) { return ds->num_classes; }
int pcn_io_dataset_target_width(const pcn_dataset *ds) { return ds->K; }
pcn_task pcn_io_dataset_task(const pcn_dataset *ds) { return ds->task; }
