/*
 * convert.c — converters from MNIST-style IDX files and the CIFAR-10 binary version to the
 * pcn_dist HDF5 data set schema (version 1, described in pcn_io.h).
 *
 * Flow: every input is opened and its header, sizes and labels checked before any output
 * exists; then the rows stream through a buffer of one HDF5 chunk (so memory stays at a few
 * MiB plus the labels) into OUT.tmp.<pid>, the training split's per-feature sums build
 * /norm, and the finished file is closed, fsynced and renamed to OUT.
 *
 * Invariants: every failure returns -1 with one line in err naming the file and the
 * problem; the temporary file never outlives a failed conversion; HDF5's automatic error
 * printing is off while a conversion runs and restored after: a failed HDF5 call is
 * reported by PCN_H5_TRY (h5util.h) and convert_run puts that message, prefixed with the
 * temporary file and the reason (a full disk: "No space left on device"), into err. Every
 * HDF5 call that can write is checked, closes included (a close writes what HDF5 cached).
 * HDF5 1.10 must never fail to close a file or dataset (it then keeps a half-closed object
 * that crashes or loops in its exit handler), so: a probe reserves room before HDF5 first
 * writes (out_create), and after a failure HDF5's file descriptor is pointed at an
 * anonymous memory file (discard_writes), so the closes that follow succeed; then the
 * temporary file is removed.
 * Serial: uses HDF5's default (sec2) file driver and needs no MPI_Init. Linux (memfd).
 */
#define _GNU_SOURCE // memfd_create
#include "pcn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "h5util.h"

#define IDX_MAGIC_IMAGES 0x00000803u // unsigned byte data, 3 dimensions
#define IDX_MAGIC_LABELS 0x00000801u // unsigned byte data, 1 dimension
#define MAX_FEATURES (1 << 24)       // refuse absurd image sizes from a corrupt header
#define CHUNK_ROWS 1024              // rows per HDF5 chunk of x (fewer for wide rows)
#define CHUNK_BYTES (4 << 20)        // at most this many bytes per chunk of x
#define CIFAR_PIXELS 3072            // 3 x 32 x 32, channel-major
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define STD_FLOOR 1e-6               // std below this is written as 1.0
#define PROBE_BYTES (64 << 10)       // room reserved for a moment before HDF5 creates OUT
                                     // (less for a smaller data set)

// ----------------------------------------------------------------------------------------
// Errors
// ----------------------------------------------------------------------------------------

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

// ----------------------------------------------------------------------------------------
// Input files through zlib (gzipped or plain)
// ----------------------------------------------------------------------------------------

typedef struct {
    const char *path;
    gzFile gz;
    bool gzip;      // gzip-compressed (by its magic bytes 1f 8b)
    int64_t pos;    // uncompressed bytes consumed
    int64_t expect; // bytes the header promises in all (header included)
    char what[96];  // what those bytes are, for messages ("60000 images of 28x28")
} src;

static int src_open(src *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2] = {0, 0};
    s->gzip = fread(m, 1, 2, fp) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    fclose(fp);
    s->gz = gzopen(path, "rb"); // reads plain files unchanged
    if (!s->gz) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(s->gz, 1 << 20);
    return 0;
}

static void src_close(src *s) {
    if (s->gz) gzclose(s->gz);
    s->gz = NULL;
}

// Reads exactly n bytes; a short read is reported as a truncated file.
static int src_read(src *s, void *buf, size_t n, char *err, size_t errlen) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < (1u << 30) ? n - got : (1u << 30);
        int r = gzread(s->gz, (char *)buf + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    s->pos += (int64_t)got;
    if (got == n) return 0;
    int zerr = Z_OK;
    const char *zmsg = gzerror(s->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return fail(err, errlen, "%s: corrupt %s: %s", s->path, s->gzip ? "gzip data" : "file",
                    zmsg);
    if (s->pos == 0) return fail(err, errlen, "%s: file is empty", s->path);
    return fail(err, errlen, "%s: truncated: %s need %lld bytes%s, but it ends after %lld",
                s->path, s->what, (long long)s->expect, s->gzip ? " uncompressed" : "",
                (long long)s->pos);
}

// After the last byte the header promises: refuses trailing data (a wrong or damaged file).
static int src_expect_end(src *s, char *err, size_t errlen) {
    char c;
    int r = gzread(s->gz, &c, 1);
    if (r == 0) return 0;
    if (r < 0) {
        int zerr;
        return fail(err, errlen, "%s: corrupt gzip data: %s", s->path, gzerror(s->gz, &zerr));
    }
    return fail(err, errlen, "%s: has more data after the %s its header declares", s->path,
                s->what);
}

// ----------------------------------------------------------------------------------------
// IDX headers and labels
// ----------------------------------------------------------------------------------------

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Reads an IDX header: the magic, the count n and (images) rows, cols.
static int idx_header(src *s, bool images, int64_t *n, int *rows, int *cols, char *err,
                      size_t errlen) {
    unsigned char h[16];
    size_t hlen = images ? 16 : 8;
    s->expect = (int64_t)hlen;
    snprintf(s->what, sizeof s->what, "an IDX %s header", images ? "image" : "label");
    if (src_read(s, h, hlen, err, errlen) < 0) return -1;
    uint32_t magic = be32(h), want = images ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS;
    if (magic != want)
        return fail(err, errlen, "%s: bad magic 0x%08x, expected 0x%08x (an IDX %s file)",
                    s->path, magic, want, images ? "image" : "label");
    *n = be32(h + 4);
    *rows = *cols = 1;
    if (images) {
        uint32_t r = be32(h + 8), c = be32(h + 12);
        if (r == 0 || c == 0 || (uint64_t)r * c > MAX_FEATURES)
            return fail(err, errlen, "%s: bad image size %ux%u in the header", s->path, r, c);
        *rows = (int)r, *cols = (int)c;
    }
    if (*n == 0)
        return fail(err, errlen, "%s: header declares no %s", s->path,
                    images ? "images" : "labels");
    s->expect = (int64_t)hlen + *n * *rows * *cols;
    if (images)
        snprintf(s->what, sizeof s->what, "%lld images of %dx%d", (long long)*n, *rows, *cols);
    else
        snprintf(s->what, sizeof s->what, "%lld labels", (long long)*n);
    return 0;
}

// One IDX split: its image stream (read row by row later) and all its labels.
typedef struct {
    src images, labels;
    int64_t n;   // examples in the files
    int rows, cols;
    uint8_t *y;  // all n labels
    int64_t next; // next row to stream
} idx_split;

static int idx_split_open(idx_split *s, const char *images, const char *labels, char *err,
                          size_t errlen) {
    memset(s, 0, sizeof *s);
    int64_t nl;
    int r1, c1;
    if (src_open(&s->images, images, err, errlen) < 0 ||
        idx_header(&s->images, true, &s->n, &s->rows, &s->cols, err, errlen) < 0)
        return -1;
    if (src_open(&s->labels, labels, err, errlen) < 0 ||
        idx_header(&s->labels, false, &nl, &r1, &c1, err, errlen) < 0)
        return -1;
    if (nl != s->n)
        return fail(err, errlen, "%s: %lld labels, but %s has %lld images", labels,
                    (long long)nl, images, (long long)s->n);
    s->y = malloc((size_t)nl);
    if (!s->y) return fail(err, errlen, "%s: out of memory for %lld labels", labels, (long long)nl);
    if (src_read(&s->labels, s->y, (size_t)nl, err, errlen) < 0 ||
        src_expect_end(&s->labels, err, errlen) < 0)
        return -1;
    src_close(&s->labels);
    return 0;
}

static void idx_split_close(idx_split *s) {
    src_close(&s->images);
    src_close(&s->labels);
    free(s->y);
    s->y = NULL;
}

// Checks the labels against the class count (classes > 0) or raises *max_label.
static int idx_check_labels(const idx_split *s, int classes, int *max_label, char *err,
                            size_t errlen) {
    for (int64_t i = 0; i < s->n; i++) {
        if (classes > 0 && s->y[i] >= classes)
            return fail(err, errlen, "%s: label %d at row %lld is out of range for %d classes",
                        s->labels.path, s->y[i], (long long)i, classes);
        if (s->y[i] > *max_label) *max_label = s->y[i];
    }
    return 0;
}

// ----------------------------------------------------------------------------------------
// Row sources: a split's rows in order, for the writer
// ----------------------------------------------------------------------------------------

typedef struct {
    int64_t n; // rows to write (after the limit)
    // Reads the next `rows` rows: pixels into x (rows, d), labels into y (rows).
    int (*read)(void *ctx, uint8_t *x, int32_t *y, int64_t rows, char *err, size_t errlen);
    void *ctx;
} split_in;

static int idx_read(void *ctx, uint8_t *x, int32_t *y, int64_t rows, char *err,
                    size_t errlen) {
    idx_split *s = ctx;
    size_t d = (size_t)s->rows * (size_t)s->cols;
    if (src_read(&s->images, x, (size_t)rows * d, err, errlen) < 0) return -1;
    for (int64_t i = 0; i < rows; i++) y[i] = s->y[s->next + i];
    s->next += rows;
    if (s->next == s->n) return src_expect_end(&s->images, err, errlen);
    return 0;
}

typedef struct {
    char *paths[5];
    int64_t records[5]; // records per file (from its size)
    int nfiles;
    int file;           // file being read
    FILE *fp;
    int64_t left;       // records left in it
    uint8_t rec[CIFAR_RECORD];
} cifar_split;

static int cifar_next_file(cifar_split *s, char *err, size_t errlen) {
    if (s->fp) fclose(s->fp);
    s->fp = NULL;
    if (s->file + 1 >= s->nfiles) return fail(err, errlen, "cifar-10: ran out of records");
    s->file++;
    const char *path = s->paths[s->file];
    s->fp = fopen(path, "rb");
    if (!s->fp) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    s->left = s->records[s->file];
    return 0;
}

static int cifar_read(void *ctx, uint8_t *x, int32_t *y, int64_t rows, char *err,
                      size_t errlen) {
    cifar_split *s = ctx;
    for (int64_t i = 0; i < rows; i++) {
        if (s->left == 0 && cifar_next_file(s, err, errlen) < 0) return -1;
        const char *path = s->paths[s->file];
        int64_t rec = s->records[s->file] - s->left;
        if (fread(s->rec, 1, CIFAR_RECORD, s->fp) != CIFAR_RECORD)
            return fail(err, errlen, "%s: %s at record %lld", path,
                        ferror(s->fp) ? strerror(errno) : "file ended early (it shrank?)",
                        (long long)rec);
        if (s->rec[0] >= CIFAR_CLASSES)
            return fail(err, errlen, "%s: label %d at record %lld is out of range for %d classes",
                        path, s->rec[0], (long long)rec, CIFAR_CLASSES);
        y[i] = s->rec[0];
        memcpy(x + i * CIFAR_PIXELS, s->rec + 1, CIFAR_PIXELS);
        s->left--;
    }
    return 0;
}

static void cifar_split_close(cifar_split *s) {
    if (s->fp) fclose(s->fp);
    for (int i = 0; i < s->nfiles; i++) free(s->paths[i]);
    memset(s, 0, sizeof *s);
}

// Finds names[0..count) in dir and sizes them; total records in *total.
static int cifar_split_open(cifar_split *s, const char *dir, const char *const *names,
                            int count, int64_t *total, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->file = -1;
    *total = 0;
    for (int i = 0; i < count; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = s->paths[s->nfiles++] = malloc(len);
        if (!path) return fail(err, errlen, "%s: out of memory", dir);
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) return fail(err, errlen, "%s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode)) return fail(err, errlen, "%s: not a regular file", path);
        if (st.st_size == 0 || st.st_size % CIFAR_RECORD != 0)
            return fail(err, errlen,
                        "%s: size %lld bytes is not a non-zero multiple of %d (1 label byte + "
                        "%d pixel bytes per record)",
                        path, (long long)st.st_size, CIFAR_RECORD, CIFAR_PIXELS);
        s->records[i] = st.st_size / CIFAR_RECORD;
        *total += s->records[i];
    }
    return 0;
}

// ----------------------------------------------------------------------------------------
// Per-feature statistics of the training split (exact integer sums)
// ----------------------------------------------------------------------------------------

typedef struct {
    int64_t d, n;
    uint64_t *sum;   // (d) sum of pixels
    uint64_t *sumsq; // (d) sum of squared pixels
} stats;

static void stats_add(stats *st, const uint8_t *x, int64_t rows) {
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
// becomes 1.
static void stats_finish(const stats *st, double scale, float *mean, float *std) {
    double sum = 0.0, sumsq = 0.0, count = (double)st->n * (double)st->d;
    for (int64_t j = 0; j < st->d; j++) sum += (double)st->sum[j], sumsq += (double)st->sumsq[j];
    double m = sum / count, var = sumsq / count - m * m;
    double sd = sqrt(var > 0.0 ? var : 0.0) * scale;
    for (int64_t j = 0; j < st->d; j++) {
        mean[j] = (float)(m * scale);
        std[j] = sd < STD_FLOOR ? 1.0f : (float)sd;
    }
}

// ----------------------------------------------------------------------------------------
// HDF5 output
// ----------------------------------------------------------------------------------------

typedef struct {
    char *err;
    size_t errlen;
    const char *out; // final path
    char *tmp;       // OUT.tmp.<pid>
    hid_t file;      // open temporary file, or -1
    off_t probe;     // bytes out_create reserves for a moment: at most what OUT will take
} job;

typedef struct {
    int64_t d;          // features per row
    int32_t shape[3];   // channels, rows, cols
    int classes;        // num_classes
    const char *source; // source attribute
} dataset_desc;

// Creates the temporary file (refusing to reuse a stale one) and opens it with HDF5; on
// failure nothing is left behind.
static int out_create(job *j) {
    hid_t fapl = -1;
    int fd = open(j->tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return fail(j->err, j->errlen, "%s: cannot create: %s", j->tmp, strerror(errno));
    // HDF5 writes at H5Fcreate and cannot be cleaned up after a failed create: a full disk
    // is found here instead (the probe's room is given back by H5F_ACC_TRUNC).
    int probe = posix_fallocate(fd, 0, j->probe > 0 ? j->probe : 1);
    close(fd);
    if (probe != 0 && probe != EINVAL && probe != EOPNOTSUPP) {
        unlink(j->tmp);
        return fail(j->err, j->errlen, "%s: cannot write the data set: %s", j->tmp,
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
static herr_t close_attr(hid_t *id) {
    hid_t a = *id;
    *id = -1;
    return H5Aclose(a);
}
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

static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                      hsize_t n, const void *v) {
    hid_t space = -1, attr = -1;
    PCN_H5_TRY(space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR));
    PCN_H5_TRY(attr = H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
    PCN_H5_TRY(H5Awrite(attr, mtype, v));
    PCN_H5_TRY(close_attr(&attr));
    H5Sclose(space);
    return 0;
fail:
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return -1;
}

// A fixed-length, NUL-terminated ASCII string attribute.
static int attr_str(hid_t loc, const char *name, const char *v) {
    hid_t type = -1;
    PCN_H5_TRY(type = H5Tcopy(H5T_C_S1));
    PCN_H5_TRY(H5Tset_size(type, strlen(v) + 1));
    PCN_H5_TRY(H5Tset_strpad(type, H5T_STR_NULLTERM));
    if (attr_write(loc, name, type, type, 0, v) < 0) goto fail;
    H5Tclose(type);
    return 0;
fail:
    if (type >= 0) H5Tclose(type);
    return -1;
}

// A contiguous 1-D dataset of n values.
static int vec_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                     hsize_t n, const void *v) {
    hid_t space = -1, dset = -1;
    PCN_H5_TRY(space = H5Screate_simple(1, &n, NULL));
    PCN_H5_TRY(dset = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT,
                                   H5P_DEFAULT));
    PCN_H5_TRY(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
    PCN_H5_TRY(close_dset(&dset));
    H5Sclose(space);
    return 0;
fail:
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    return -1;
}

static hsize_t chunk_rows(int64_t n, int64_t d) {
    int64_t rows = CHUNK_BYTES / d;
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

// Creates x (n, d) uint8, chunked by rows, unfiltered, with its scale attribute.
static int x_create(hid_t group, int64_t n, int64_t d, hid_t *dset) {
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)d}, chunk[2] = {chunk_rows(n, d), (hsize_t)d};
    hid_t space = -1, dcpl = -1;
    const double scale = 1.0 / 255.0;
    *dset = -1;
    PCN_H5_TRY(space = H5Screate_simple(2, dims, NULL));
    PCN_H5_TRY(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    PCN_H5_TRY(H5Pset_chunk(dcpl, 2, chunk));
    PCN_H5_TRY(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); // every byte gets written
    PCN_H5_TRY(*dset = H5Dcreate2(group, "x", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl,
                                    H5P_DEFAULT));
    if (attr_write(*dset, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &scale) < 0)
        goto fail;
    H5Pclose(dcpl);
    H5Sclose(space);
    return 0;
fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return -1;
}

// Writes rows [row0, row0 + rows) of x from buf (rows, d).
static int x_write_rows(hid_t dset, int64_t row0, int64_t rows, int64_t d,
                        const uint8_t *buf) {
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)rows, (hsize_t)d};
    hid_t fspace = -1, mspace = -1;
    PCN_H5_TRY(fspace = H5Dget_space(dset));
    PCN_H5_TRY(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    PCN_H5_TRY(mspace = H5Screate_simple(2, count, NULL));
    PCN_H5_TRY(H5Dwrite(dset, H5T_NATIVE_UINT8, mspace, fspace, H5P_DEFAULT, buf));
    H5Sclose(mspace);
    H5Sclose(fspace);
    return 0;
fail:
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return -1;
}

// Streams one split into /name (x, y); with st, adds its rows to the statistics.
static int split_write(job *j, const char *name, split_in *in, int64_t d, stats *st) {
    hid_t group = -1, x = -1;
    int64_t step = (int64_t)chunk_rows(in->n, d);
    uint8_t *buf = malloc((size_t)(step * d));
    int32_t *y = malloc((size_t)in->n * sizeof *y);
    if (!buf || !y) {
        fail(j->err, j->errlen, "%s: out of memory for the %s split", j->tmp, name);
        goto fail;
    }
    PCN_H5_TRY(group = H5Gcreate2(j->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (x_create(group, in->n, d, &x) < 0) goto fail;
    for (int64_t row = 0; row < in->n; row += step) {
        int64_t rows = in->n - row < step ? in->n - row : step;
        if (in->read(in->ctx, buf, y + row, rows, j->err, j->errlen) < 0) goto fail;
        if (x_write_rows(x, row, rows, d, buf) < 0) goto fail;
        if (st) stats_add(st, buf, rows);
    }
    if (vec_write(group, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, (hsize_t)in->n, y) < 0)
        goto fail;
    PCN_H5_TRY(H5Dflush(x)); // the cached chunks go out while x can still be closed
    PCN_H5_TRY(close_dset(&x));
    PCN_H5_TRY(close_group(&group));
    free(buf), free(y);
    return 0;
fail:
    discard_writes(j);
    if (x >= 0) H5Dclose(x);
    if (group >= 0) H5Gclose(group);
    free(buf), free(y);
    return -1;
}

// Writes /norm/mean and /norm/std from the training statistics.
static int norm_write(job *j, const stats *st) {
    hid_t group = -1;
    float *mean = malloc((size_t)st->d * sizeof *mean), *std = malloc((size_t)st->d * sizeof *std);
    if (!mean || !std) {
        fail(j->err, j->errlen, "%s: out of memory for /norm", j->tmp);
        goto fail;
    }
    stats_finish(st, 1.0 / 255.0, mean, std);
    PCN_H5_TRY(group = H5Gcreate2(j->file, "norm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (vec_write(group, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)st->d, mean) < 0 ||
        vec_write(group, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, (hsize_t)st->d, std) < 0)
        goto fail;
    PCN_H5_TRY(close_group(&group));
    free(mean), free(std);
    return 0;
fail:
    discard_writes(j);
    if (group >= 0) H5Gclose(group);
    free(mean), free(std);
    return -1;
}

static int root_attrs_write(job *j, const dataset_desc *desc) {
    const int32_t version = PCN_IO_DATASET_VERSION, classes = desc->classes;
    hid_t root = j->file;
    if (attr_str(root, "pcn_format", PCN_IO_DATASET_FORMAT) < 0 ||
        attr_write(root, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &version) < 0 ||
        attr_str(root, "task", "classification") < 0 ||
        attr_write(root, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT32, 0, &classes) < 0 ||
        attr_str(root, "source", desc->source) < 0 ||
        attr_write(root, "image_shape", H5T_STD_I32LE, H5T_NATIVE_INT32, 3, desc->shape) < 0)
        return -1;
    return 0;
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
        fail(j->err, j->errlen, "%s: cannot sync: %s", j->tmp, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    if (rename(j->tmp, j->out) != 0)
        return fail(j->err, j->errlen, "%s: cannot rename %s to it: %s", j->out, j->tmp,
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
    const char *h5 = pcn_last_error(), *e = strstr(h5, "errno = ");
    int code = e ? atoi(e + strlen("errno = ")) : 0;
    if (code > 0)
        fail(j->err, j->errlen, "%s: cannot write the data set: %s (HDF5: %s)", j->tmp,
             strerror(code), h5);
    else
        fail(j->err, j->errlen, "%s: cannot write the data set: %s", j->tmp, h5);
}

// HDF5's messages may hold line breaks (its write errors do): one line for err.
static void one_line(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

// ----------------------------------------------------------------------------------------
// One conversion: both splits, /norm, attributes, atomic rename
// ----------------------------------------------------------------------------------------

// Writes everything into the open temporary file and commits it.
static int write_all(job *j, const dataset_desc *desc, split_in *train, split_in *test) {
    stats st = {.d = desc->d};
    st.sum = calloc((size_t)desc->d, sizeof *st.sum);
    st.sumsq = calloc((size_t)desc->d, sizeof *st.sumsq);
    int rc = !st.sum || !st.sumsq ? fail(j->err, j->errlen, "%s: out of memory", j->tmp) : 0;
    if (rc == 0) rc = split_write(j, "train", train, desc->d, &st);
    if (rc == 0) rc = split_write(j, "test", test, desc->d, NULL);
    if (rc == 0) rc = norm_write(j, &st);
    if (rc == 0) rc = root_attrs_write(j, desc);
    if (rc == 0) rc = out_commit(j);
    free(st.sum), free(st.sumsq);
    return rc;
}

static int convert_run(const char *out, const dataset_desc *desc, split_in *train,
                       split_in *test, char *err, size_t errlen) {
    char h5err[8] = "";
    job jb = {.err = err && errlen ? err : h5err, .errlen = err && errlen ? errlen : sizeof h5err,
              .out = out, .file = -1}, *j = &jb;
    j->err[0] = 0; // an HDF5 failure leaves it empty and its message in pcn_last_error()
    size_t len = strlen(out) + 32;
    if (!(j->tmp = malloc(len))) return fail(err, errlen, "%s: out of memory", out);
    snprintf(j->tmp, len, "%s.tmp.%ld", out, (long)getpid());
    int64_t least = (train->n + test->n) * (desc->d + 4) + 8 * desc->d; // raw data alone
    j->probe = least < PROBE_BYTES ? (off_t)least : PROBE_BYTES;
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // PCN_H5_TRY reports instead
    int rc = out_create(j);
    if (rc == 0 && (rc = write_all(j, desc, train, test)) != 0) out_discard(j);
    if (rc != 0 && j->err[0] == 0) h5_failure(j);
    if (rc != 0) one_line(j->err);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    free(j->tmp);
    return rc;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

pcn_io_convert_params pcn_io_convert_default_params(void) {
    return (pcn_io_convert_params){.classes = 0, .limit_train = -1, .limit_test = -1,
                                   .source = NULL};
}

static int check_params(const pcn_io_convert_params *p, const char *out, char *err,
                        size_t errlen) {
    if (!out || !*out) return fail(err, errlen, "no output file given");
    if (p->classes < 0 || p->classes == 1)
        return fail(err, errlen, "classes = %d: need 0 (from the labels) or at least 2",
                    p->classes);
    if (p->limit_train == 0 || p->limit_train < -1)
        return fail(err, errlen, "limit_train = %lld: need -1 (all) or at least 1",
                    (long long)p->limit_train);
    if (p->limit_test == 0 || p->limit_test < -1)
        return fail(err, errlen, "limit_test = %lld: need -1 (all) or at least 1",
                    (long long)p->limit_test);
    return 0;
}

static int64_t limited(int64_t n, int64_t limit) { return limit > 0 && limit < n ? limit : n; }

// The source attribute: the caller's text, or "<format>: <path>".
static char *source_text(const pcn_io_convert_params *p, const char *format, const char *path) {
    if (p->source) return strdup(p->source);
    size_t len = strlen(format) + strlen(path) + 3;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s: %s", format, path);
    return s;
}

// Opens and checks both IDX splits and fills desc (all but source).
static int idx_open_all(const pcn_io_idx_paths *paths, int classes, idx_split *tr,
                        idx_split *te, dataset_desc *desc, char *err, size_t errlen) {
    if (idx_split_open(tr, paths->train_images, paths->train_labels, err, errlen) < 0 ||
        idx_split_open(te, paths->test_images, paths->test_labels, err, errlen) < 0)
        return -1;
    if (te->rows != tr->rows || te->cols != tr->cols)
        return fail(err, errlen, "%s: images are %dx%d, but the training images (%s) are %dx%d",
                    paths->test_images, te->rows, te->cols, paths->train_images, tr->rows,
                    tr->cols);
    int max_label = 0;
    if (idx_check_labels(tr, classes, &max_label, err, errlen) < 0 ||
        idx_check_labels(te, classes, &max_label, err, errlen) < 0)
        return -1;
    desc->classes = classes > 0 ? classes : (max_label + 1 < 2 ? 2 : max_label + 1);
    desc->d = (int64_t)tr->rows * tr->cols;
    desc->shape[0] = 1, desc->shape[1] = tr->rows, desc->shape[2] = tr->cols;
    return 0;
}

int pcn_io_convert_idx(const pcn_io_idx_paths *paths, const char *out,
                       const pcn_io_convert_params *params, char *err, size_t errlen) {
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    if (check_params(&p, out, err, errlen) < 0) return -1;
    if (!paths || !paths->train_images || !paths->train_labels || !paths->test_images ||
        !paths->test_labels)
        return fail(err, errlen, "an IDX conversion needs all four files "
                                 "(train images and labels, test images and labels)");
    idx_split tr, te;
    memset(&te, 0, sizeof te);
    dataset_desc desc = {0};
    int rc = idx_open_all(paths, p.classes, &tr, &te, &desc, err, errlen);
    char *source = rc == 0 ? source_text(&p, "idx", paths->train_images) : NULL;
    if (rc == 0 && !source) rc = fail(err, errlen, "out of memory");
    if (rc == 0) {
        desc.source = source;
        split_in train = {limited(tr.n, p.limit_train), idx_read, &tr};
        split_in test = {limited(te.n, p.limit_test), idx_read, &te};
        rc = convert_run(out, &desc, &train, &test, err, errlen);
    }
    free(source);
    idx_split_close(&tr);
    idx_split_close(&te);
    return rc;
}

// Finds name or name.gz in dir; the path (malloc'd) or NULL with err set.
static char *find_in_dir(const char *dir, const char *name, char *err, size_t errlen) {
    size_t len = strlen(dir) + strlen(name) + 5;
    char *path = malloc(len);
    if (!path) return fail(err, errlen, "%s: out of memory", dir), NULL;
    snprintf(path, len, "%s/%s", dir, name);
    if (access(path, F_OK) == 0) return path;
    snprintf(path, len, "%s/%s.gz", dir, name);
    if (access(path, F_OK) == 0) return path;
    fail(err, errlen, "%s: neither %s nor %s.gz found there", dir, name, name);
    free(path);
    return NULL;
}

int pcn_io_convert_idx_dir(const char *dir, const char *out,
                           const pcn_io_convert_params *params, char *err, size_t errlen) {
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    if (!dir) return fail(err, errlen, "no input directory given");
    char *found[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        if (!(found[i] = find_in_dir(dir, names[i], err, errlen))) rc = -1;
    if (rc == 0) {
        pcn_io_idx_paths paths = {found[0], found[1], found[2], found[3]};
        rc = pcn_io_convert_idx(&paths, out, params, err, errlen);
    }
    for (int i = 0; i < 4; i++) free(found[i]);
    return rc;
}

int pcn_io_convert_cifar10(const char *dir, const char *out,
                           const pcn_io_convert_params *params, char *err, size_t errlen) {
    static const char *const train_names[5] = {"data_batch_1.bin", "data_batch_2.bin",
                                               "data_batch_3.bin", "data_batch_4.bin",
                                               "data_batch_5.bin"};
    static const char *const test_names[1] = {"test_batch.bin"};
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    if (check_params(&p, out, err, errlen) < 0) return -1;
    if (!dir) return fail(err, errlen, "no input directory given");
    if (p.classes != 0 && p.classes != CIFAR_CLASSES)
        return fail(err, errlen, "classes = %d: CIFAR-10 has %d classes", p.classes,
                    CIFAR_CLASSES);
    cifar_split tr, te;
    int64_t ntr = 0, nte = 0;
    memset(&te, 0, sizeof te);
    int rc = cifar_split_open(&tr, dir, train_names, 5, &ntr, err, errlen);
    if (rc == 0) rc = cifar_split_open(&te, dir, test_names, 1, &nte, err, errlen);
    char *source = rc == 0 ? source_text(&p, "cifar-10 binary", dir) : NULL;
    if (rc == 0 && !source) rc = fail(err, errlen, "out of memory");
    if (rc == 0) {
        dataset_desc desc = {CIFAR_PIXELS, {3, 32, 32}, CIFAR_CLASSES, source};
        split_in train = {limited(ntr, p.limit_train), cifar_read, &tr};
        split_in test = {limited(nte, p.limit_test), cifar_read, &te};
        rc = convert_run(out, &desc, &train, &test, err, errlen);
    }
    free(source);
    cifar_split_close(&tr);
    cifar_split_close(&te);
    return rc;
}
