/*
 * test_convert.c — the IDX and CIFAR-10 converters write exactly the data set schema of
 * pcn_io.h, and refuse bad input cleanly.
 *
 * Proves: synthetic IDX files (gzipped and plain, non-square images, more rows than one
 * chunk, a constant pixel) and CIFAR-10 .bin files come back from the HDF5 file with every
 * pixel and label equal, the root attributes (pcn_format, format_version, task,
 * num_classes, source, image_shape) and x's scale as specified, x chunked by rows with no
 * filter, and /norm/mean, /norm/std equal to a two-pass double computation on the scaled
 * training pixels (one mean and std over all pixels, stored per feature); --classes and the row limits act as
 * documented, also across CIFAR file boundaries. Bad inputs — bad magic, truncated files
 * (plain and gzip), image/label count mismatch, label out of range, trailing data, image
 * size mismatch between splits, CIFAR file size not a multiple of 3073, missing files,
 * bad parameters, an unwritable output — each return -1 with a message naming the file
 * and the problem, leave no output and no temporary file, and leave an existing output
 * untouched. With the pcn_convert program's path as argv[1], its --help, --version and
 * error exit status are checked too. Where /usr/share/datasets/fashion-mnist exists, the
 * real files convert to 60000/10000 rows of 784 features and 10 classes, with labels and
 * pixel rows equal to the gzip files read independently here.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "pcn_io.h"
#include "convert_testutil.h"
#include "testutil.h"


// ----------------------------------------------------------------------------------------
// Writing inputs
// ----------------------------------------------------------------------------------------



static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

// Synthetic pixel of image i (of a split), feature j; feature 0 is constant.
static uint8_t pixel(int split, int64_t i, int64_t j) {
    if (j == 0) return 17;
    return (uint8_t)((i * 31 + j * 7 + (i * j) % 13 + split * 101) & 0xff);
}

static uint8_t label_of(int split, int64_t i) { return (uint8_t)((i * 5 + 3 + split) % 7); }

// An IDX image file of n images rows x cols; header_n overrides the count in the header
// and extra adds trailing bytes.
static void write_idx_images(const char *path, int split, int64_t n, int rows, int cols,
                             int64_t header_n, size_t extra, bool gz) {
    size_t d = (size_t)rows * cols, len = 16 + (size_t)n * d + extra;
    uint8_t *b = calloc(len, 1);
    put_be32(b, 0x803), put_be32(b + 4, (uint32_t)header_n);
    put_be32(b + 8, (uint32_t)rows), put_be32(b + 12, (uint32_t)cols);
    for (int64_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) b[16 + i * d + j] = pixel(split, i, (int64_t)j);
    conv_write(path, b, len, gz);
    free(b);
}

static void write_idx_labels(const char *path, int split, int64_t n, int64_t header_n,
                             int bad_row, bool gz) {
    uint8_t *b = calloc(8 + (size_t)n, 1);
    put_be32(b, 0x801), put_be32(b + 4, (uint32_t)header_n);
    for (int64_t i = 0; i < n; i++) b[8 + i] = label_of(split, i);
    if (bad_row >= 0) b[8 + bad_row] = 200;
    conv_write(path, b, 8 + (size_t)n, gz);
    free(b);
}

enum { TR_N = 2500, TE_N = 300, ROWS = 5, COLS = 7, D = ROWS * COLS };

// The good synthetic set: train images gzipped, train labels plain, test images plain,
// test labels gzipped.
static pcn_io_idx_paths write_idx_set(void) {
    pcn_io_idx_paths p = {conv_path("tr-img.gz"), conv_path("tr-lab"), conv_path("te-img"),
                          conv_path("te-lab.gz")};
    write_idx_images(p.train_images, 0, TR_N, ROWS, COLS, TR_N, 0, true);
    write_idx_labels(p.train_labels, 0, TR_N, TR_N, -1, false);
    write_idx_images(p.test_images, 1, TE_N, ROWS, COLS, TE_N, 0, false);
    write_idx_labels(p.test_labels, 1, TE_N, TE_N, -1, true);
    return p;
}

// ----------------------------------------------------------------------------------------
// Reading the output
// ----------------------------------------------------------------------------------------

static void *read_dset(hid_t f, const char *name, hid_t mtype, size_t esize, hsize_t dims[2],
                       int *rank) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    TU_CHECK(ds >= 0, "open %s", name);
    if (ds < 0) return NULL;
    hid_t sp = H5Dget_space(ds);
    dims[0] = dims[1] = 1;
    *rank = H5Sget_simple_extent_dims(sp, dims, NULL);
    void *v = malloc(dims[0] * dims[1] * esize + 1);
    TU_CHECK(H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, "read %s", name);
    H5Sclose(sp);
    H5Dclose(ds);
    return v;
}

static void attr_read(hid_t loc, const char *obj, const char *name, hid_t mtype, void *v) {
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    TU_CHECK(a >= 0 && H5Aread(a, mtype, v) >= 0, "attribute %s of %s", name, obj);
    if (a >= 0) H5Aclose(a);
}

// A fixed-length string attribute; checks it is one.
static void attr_str(hid_t f, const char *name, char *buf, size_t size) {
    buf[0] = 0;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    TU_CHECK(a >= 0, "attribute %s", name);
    if (a < 0) return;
    hid_t t = H5Aget_type(a);
    TU_CHECK(H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0,
             "%s is a fixed-length string", name);
    size_t n = H5Tget_size(t);
    if (n < size) TU_CHECK(H5Aread(a, t, buf) >= 0, "read %s", name);
    buf[n < size ? n : size - 1] = 0;
    H5Tclose(t);
    H5Aclose(a);
}

// x is chunked by whole rows of d features, with no filter.
static void check_layout(hid_t f, const char *name, hsize_t d) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[2] = {0, 0};
    TU_CHECK(H5Pget_layout(dcpl) == H5D_CHUNKED, "%s is chunked", name);
    TU_CHECK(H5Pget_chunk(dcpl, 2, chunk) == 2 && chunk[1] == d && chunk[0] >= 1 &&
                 chunk[0] <= 1024, "%s chunks %llu x %llu", name, (unsigned long long)chunk[0],
             (unsigned long long)chunk[1]);
    TU_CHECK(H5Pget_nfilters(dcpl) == 0, "%s has no filter", name);
    hid_t t = H5Dget_type(ds);
    TU_CHECK(H5Tequal(t, H5T_STD_U8LE) > 0, "%s is uint8", name);
    H5Tclose(t);
    H5Pclose(dcpl);
    H5Dclose(ds);
}

// ----------------------------------------------------------------------------------------
// Checking a converted file against the expected rows
// ----------------------------------------------------------------------------------------

typedef struct {
    int64_t n_train, n_test, d;
    int classes;
    int32_t shape[3];
    const char *source;                       // expected source attribute
    uint8_t (*px)(int split, int64_t i, int64_t j);
    uint8_t (*lab)(int split, int64_t i);
} expect;

// Reference mean/std: two passes in double over every training pixel * (1/255), population
// std, floor 1e-6, the same values for every feature.
static void ref_norm(const expect *e, float *mean, float *std) {
    const double s = 1.0 / 255.0, count = (double)e->n_train * (double)e->d;
    double m = 0, v = 0;
    for (int64_t i = 0; i < e->n_train; i++)
        for (int64_t j = 0; j < e->d; j++) m += e->px(0, i, j) * s;
    m /= count;
    for (int64_t i = 0; i < e->n_train; i++)
        for (int64_t j = 0; j < e->d; j++) {
            double t = e->px(0, i, j) * s - m;
            v += t * t;
        }
    double sd = sqrt(v / count);
    for (int64_t j = 0; j < e->d; j++) {
        mean[j] = (float)m;
        std[j] = sd < 1e-6 ? 1.0f : (float)sd;
    }
}

static void check_split(hid_t f, const expect *e, int split) {
    const char *xs = split ? "/test/x" : "/train/x", *ys = split ? "/test/y" : "/train/y";
    int64_t n = split ? e->n_test : e->n_train;
    hsize_t dims[2];
    int rank;
    uint8_t *x = read_dset(f, xs, H5T_NATIVE_UINT8, 1, dims, &rank);
    TU_CHECK(rank == 2 && (int64_t)dims[0] == n && (int64_t)dims[1] == e->d,
             "%s shape %llu x %llu, want %lld x %lld", xs, (unsigned long long)dims[0],
             (unsigned long long)dims[1], (long long)n, (long long)e->d);
    int bad = 0;
    for (int64_t i = 0; x && rank == 2 && (int64_t)dims[0] == n && i < n; i++)
        for (int64_t j = 0; j < e->d; j++)
            if (x[i * e->d + j] != e->px(split, i, j) && bad++ < 3)
                TU_CHECK(0, "%s[%lld, %lld] = %d, want %d", xs, (long long)i, (long long)j,
                         x[i * e->d + j], e->px(split, i, j));
    TU_CHECK(bad == 0, "%s: %d pixels differ", xs, bad);
    int32_t *y = read_dset(f, ys, H5T_NATIVE_INT32, 4, dims, &rank);
    TU_CHECK(rank == 1 && (int64_t)dims[0] == n, "%s has %llu rows, want %lld", ys,
             (unsigned long long)dims[0], (long long)n);
    bad = 0;
    for (int64_t i = 0; y && rank == 1 && (int64_t)dims[0] == n && i < n; i++)
        if (y[i] != e->lab(split, i) && bad++ < 3)
            TU_CHECK(0, "%s[%lld] = %d, want %d", ys, (long long)i, y[i], e->lab(split, i));
    TU_CHECK(bad == 0, "%s: %d labels differ", ys, bad);
    double scale = 0;
    attr_read(f, xs, "scale", H5T_NATIVE_DOUBLE, &scale);
    TU_CHECK(scale == 1.0 / 255.0, "%s scale %.17g", xs, scale);
    check_layout(f, xs, (hsize_t)e->d);
    free(x), free(y);
}

static void check_attrs(hid_t f, const expect *e) {
    char s[512];
    attr_str(f, "pcn_format", s, sizeof s);
    TU_CHECK(!strcmp(s, "pcn-dataset"), "pcn_format '%s'", s);
    attr_str(f, "task", s, sizeof s);
    TU_CHECK(!strcmp(s, "classification"), "task '%s'", s);
    attr_str(f, "source", s, sizeof s);
    TU_CHECK(!strcmp(s, e->source), "source '%s', want '%s'", s, e->source);
    int32_t v = 0, shape[3] = {0, 0, 0};
    attr_read(f, ".", "format_version", H5T_NATIVE_INT32, &v);
    TU_CHECK(v == 1, "format_version %d", v);
    attr_read(f, ".", "num_classes", H5T_NATIVE_INT32, &v);
    TU_CHECK(v == e->classes, "num_classes %d, want %d", v, e->classes);
    attr_read(f, ".", "image_shape", H5T_NATIVE_INT32, shape);
    TU_CHECK(!memcmp(shape, e->shape, sizeof shape), "image_shape %d %d %d", shape[0],
             shape[1], shape[2]);
}

static void check_norm(hid_t f, const expect *e) {
    hsize_t dims[2];
    int rank;
    float *mean = read_dset(f, "/norm/mean", H5T_NATIVE_FLOAT, 4, dims, &rank);
    TU_CHECK(rank == 1 && (int64_t)dims[0] == e->d, "/norm/mean has %llu values",
             (unsigned long long)dims[0]);
    float *std = read_dset(f, "/norm/std", H5T_NATIVE_FLOAT, 4, dims, &rank);
    TU_CHECK(rank == 1 && (int64_t)dims[0] == e->d, "/norm/std has %llu values",
             (unsigned long long)dims[0]);
    float *rm = malloc((size_t)e->d * sizeof *rm), *rs = malloc((size_t)e->d * sizeof *rs);
    ref_norm(e, rm, rs);
    if (mean && std && (int64_t)dims[0] == e->d) {
        tu_close_f("/norm/mean", mean, rm, (size_t)e->d, 1e-7, 1e-6);
        tu_close_f("/norm/std", std, rs, (size_t)e->d, 1e-7, 1e-6);
    }
    free(mean), free(std), free(rm), free(rs);
}

static void check_file(const char *path, const expect *e) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    TU_CHECK(f >= 0, "open %s", path);
    if (f < 0) return;
    check_attrs(f, e);
    check_split(f, e, 0);
    check_split(f, e, 1);
    check_norm(f, e);
    H5Fclose(f);
}



// ----------------------------------------------------------------------------------------
// Good conversions
// ----------------------------------------------------------------------------------------

static void test_idx(void) {
    pcn_io_idx_paths p = write_idx_set();
    char err[1024] = "", source[600];
    const char *out = conv_path("idx.h5");
    int rc = conv_rc(pcn_io_convert_idx(&p, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, "idx conversion: %s", err);
    snprintf(source, sizeof source, "idx: %s", p.train_images);
    expect e = {TR_N, TE_N, D, 7, {1, ROWS, COLS}, source, pixel, label_of};
    check_file(out, &e);
    TU_CHECK(conv_no_temp_files(), "temporary file left after success");

    // --classes, limits (more than one chunk of train rows) and a chosen source.
    pcn_io_convert_params prm = pcn_io_convert_default_params();
    prm.classes = 12, prm.limit_train = 1030, prm.limit_test = 5, prm.source = "synthetic idx";
    rc = conv_rc(pcn_io_convert_idx(&p, out, &prm), err, sizeof err); // replaces the file
    TU_CHECK(rc == 0, "idx conversion with limits: %s", err);
    expect el = {1030, 5, D, 12, {1, ROWS, COLS}, "synthetic idx", pixel, label_of};
    check_file(out, &el);
}

static void test_idx_dir(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/std", conv_tmpdir);
    mkdir(dir, 0755);
    char tri[600], trl[600], tei[600], tel[600], err[1024] = "", source[700];
    snprintf(tri, sizeof tri, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(trl, sizeof trl, "%s/train-labels-idx1-ubyte", dir);
    snprintf(tei, sizeof tei, "%s/t10k-images-idx3-ubyte", dir);
    snprintf(tel, sizeof tel, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_idx_images(tri, 0, TR_N, ROWS, COLS, TR_N, 0, true);
    write_idx_labels(trl, 0, TR_N, TR_N, -1, false);
    write_idx_images(tei, 1, TE_N, ROWS, COLS, TE_N, 0, false);
    write_idx_labels(tel, 1, TE_N, TE_N, -1, true);
    const char *out = conv_path("dir.h5");
    int rc = conv_rc(pcn_io_convert_idx_dir(dir, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, "idx --dir conversion: %s", err);
    snprintf(source, sizeof source, "idx: %s", tri);
    expect e = {TR_N, TE_N, D, 7, {1, ROWS, COLS}, source, pixel, label_of};
    check_file(out, &e);
}

// CIFAR-10: the training files hold 3, 2, 4, 1, 2 records; the test file 5.
static const int cifar_counts[6] = {3, 2, 4, 1, 2, 5};

static uint8_t cifar_px(int split, int64_t i, int64_t j) {
    return (uint8_t)((i * 131 + j * 3 + (j / 1024) * 50 + split * 7) & 0xff);
}
static uint8_t cifar_lab(int split, int64_t i) { return (uint8_t)((i * 3 + split) % 10); }

// Writes the six .bin files into dir; bad_label sets the label of train record 5 to it.
static void write_cifar(const char *dir, int bad_label) {
    int64_t row[2] = {0, 0};
    for (int f = 0; f < 6; f++) {
        int split = f == 5;
        char path[600];
        if (split) snprintf(path, sizeof path, "%s/test_batch.bin", dir);
        else snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, f + 1);
        uint8_t *b = malloc((size_t)cifar_counts[f] * 3073);
        for (int r = 0; r < cifar_counts[f]; r++, row[split]++) {
            uint8_t *rec = b + (size_t)r * 3073;
            rec[0] = cifar_lab(split, row[split]);
            if (!split && row[split] == 5 && bad_label >= 0) rec[0] = (uint8_t)bad_label;
            for (int j = 0; j < 3072; j++) rec[1 + j] = cifar_px(split, row[split], j);
        }
        conv_write(path, b, (size_t)cifar_counts[f] * 3073, false);
        free(b);
    }
}

static void test_cifar(void) {
    char dir[512], err[1024] = "", source[600];
    snprintf(dir, sizeof dir, "%s/cifar", conv_tmpdir);
    mkdir(dir, 0755);
    write_cifar(dir, -1);
    const char *out = conv_path("cifar.h5");
    int rc = conv_rc(pcn_io_convert_cifar10(dir, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, "cifar conversion: %s", err);
    snprintf(source, sizeof source, "cifar-10 binary: %s", dir);
    expect e = {12, 5, 3072, 10, {3, 32, 32}, source, cifar_px, cifar_lab};
    check_file(out, &e);
    // Limits crossing a file boundary (3 records in the first file).
    pcn_io_convert_params prm = pcn_io_convert_default_params();
    prm.limit_train = 4, prm.limit_test = 2;
    rc = conv_rc(pcn_io_convert_cifar10(dir, out, &prm), err, sizeof err);
    TU_CHECK(rc == 0, "cifar conversion with limits: %s", err);
    expect el = {4, 2, 3072, 10, {3, 32, 32}, source, cifar_px, cifar_lab};
    check_file(out, &el);
}

// ----------------------------------------------------------------------------------------
// Bad inputs
// ----------------------------------------------------------------------------------------


static int idx_try(const pcn_io_idx_paths *p, const pcn_io_convert_params *prm, char *err) {
    err[0] = 0;
    return conv_rc(pcn_io_convert_idx(p, conv_path("bad.h5"), prm), err, 1024);
}

// Refusals of damaged IDX files: a wrong magic, truncated files and streams, too few labels.
static void idx_bad_files(pcn_io_idx_paths good, const char *out, char *err) {
    pcn_io_idx_paths p;
    p = good, p.train_images = good.train_labels; // a label file where images belong
    conv_expect_refusal("bad magic", idx_try(&p, NULL, err), err, out, good.train_labels,
                   "bad magic 0x00000801, expected 0x00000803 (an IDX image file)");

    p = good, p.test_images = conv_path("short-img"); // header says 300, holds 299 images
    write_idx_images(p.test_images, 1, TE_N - 1, ROWS, COLS, TE_N, 0, false);
    conv_expect_refusal("truncated plain file", idx_try(&p, NULL, err), err, out, p.test_images,
                   "truncated");

    p = good, p.train_images = conv_path("short-img.gz");
    write_idx_images(p.train_images, 0, TR_N - 1, ROWS, COLS, TR_N, 0, true);
    conv_expect_refusal("truncated gzip content", idx_try(&p, NULL, err), err, out, p.train_images,
                   "truncated");

    p = good, p.train_images = conv_path("cut.gz"); // the compressed stream cut in half
    FILE *fp = fopen(good.train_images, "rb");
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    conv_write(p.train_images, buf, len / 2, false);
    conv_expect_refusal("truncated gzip stream", idx_try(&p, NULL, err), err, out, p.train_images,
                   "truncated");

    p = good, p.train_labels = conv_path("few-lab"); // 2499 labels for 2500 images
    write_idx_labels(p.train_labels, 0, TR_N - 1, TR_N - 1, -1, false);
    conv_expect_refusal("count mismatch", idx_try(&p, NULL, err), err, out, p.train_labels,
                   "2499 labels, but");
}

// Refusals of contents that break the params or the headers, and of missing or empty files.
static void idx_bad_contents(pcn_io_idx_paths good, const char *out, char *err,
                             pcn_io_convert_params *prm) {
    pcn_io_idx_paths p;
    prm->classes = 5; // labels go up to 6; train row 2 has the first one above 4
    conv_expect_refusal("label out of range", idx_try(&good, prm, err), err, out, good.train_labels,
                   "label 6 at row 2 is out of range for 5 classes");
    prm->classes = 0;

    p = good, p.test_images = conv_path("long-img"); // one image more than the header says
    write_idx_images(p.test_images, 1, TE_N, ROWS, COLS, TE_N, D, false);
    conv_expect_refusal("trailing data", idx_try(&p, NULL, err), err, out, p.test_images,
                   "more data");

    p = good, p.test_images = conv_path("wide-img");
    write_idx_images(p.test_images, 1, TE_N, COLS, ROWS, TE_N, 0, false);
    conv_expect_refusal("image size mismatch", idx_try(&p, NULL, err), err, out, p.test_images,
                   "are 7x5");

    p = good, p.test_labels = conv_path("no-such-file");
    conv_expect_refusal("missing file", idx_try(&p, NULL, err), err, out, p.test_labels,
                   "No such file");

    conv_write(conv_path("empty"), "", 0, false);
    p = good, p.train_labels = conv_path("empty");
    conv_expect_refusal("empty file", idx_try(&p, NULL, err), err, out, p.train_labels, "empty");
}

static void test_idx_bad(void) {
    pcn_io_idx_paths good = write_idx_set();
    const char *out = conv_path("bad.h5");
    char err[1024];
    pcn_io_convert_params prm = pcn_io_convert_default_params();

    idx_bad_files(good, out, err);
    idx_bad_contents(good, out, err, &prm);

    prm.limit_train = 0;
    conv_expect_refusal("limit 0", idx_try(&good, &prm, err), err, out, "limit_train", NULL);
    prm = pcn_io_convert_default_params(), prm.classes = 1;
    conv_expect_refusal("classes 1", idx_try(&good, &prm, err), err, out, "classes", NULL);

    err[0] = 0;
    int rc = conv_rc(pcn_io_convert_idx_dir(conv_tmpdir, out, NULL), err, sizeof err);
    conv_expect_refusal("--dir without the files", rc, err, out, "train-images-idx3-ubyte", conv_tmpdir);

    const char *nodir = conv_path("no-dir/x.h5");
    rc = conv_rc(pcn_io_convert_idx(&good, nodir, NULL), err, sizeof err);
    conv_expect_refusal("unwritable output", rc, err, nodir, "cannot create", "no-dir/x.h5.tmp.");
}

static void test_cifar_bad(void) {
    char dir[512], path[600], err[1024];
    const char *out = conv_path("bad.h5");
    snprintf(dir, sizeof dir, "%s/cifar-bad", conv_tmpdir);
    mkdir(dir, 0755);

    write_cifar(dir, 10);
    snprintf(path, sizeof path, "%s/data_batch_3.bin", dir); // train row 5 is its first
    int rc = conv_rc(pcn_io_convert_cifar10(dir, out, NULL), err, sizeof err);
    conv_expect_refusal("cifar label out of range", rc, err, out, path, "label 10 at record 0");

    write_cifar(dir, -1);
    snprintf(path, sizeof path, "%s/data_batch_4.bin", dir);
    FILE *fp = fopen(path, "ab");
    fputc(0, fp);
    fclose(fp);
    rc = conv_rc(pcn_io_convert_cifar10(dir, out, NULL), err, sizeof err);
    conv_expect_refusal("cifar size", rc, err, out, path,
                   "3074 bytes is not a non-zero multiple of 3073");

    write_cifar(dir, -1);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    unlink(path);
    rc = conv_rc(pcn_io_convert_cifar10(dir, out, NULL), err, sizeof err);
    conv_expect_refusal("cifar missing file", rc, err, out, path, "No such file");

    pcn_io_convert_params prm = pcn_io_convert_default_params();
    prm.classes = 11;
    rc = conv_rc(pcn_io_convert_cifar10(dir, out, &prm), err, sizeof err);
    conv_expect_refusal("cifar classes", rc, err, out, "classes = 11", NULL);
}

// A failed conversion leaves an existing output as it was.
static void test_keeps_existing(void) {
    pcn_io_idx_paths p = write_idx_set();
    const char *out = conv_path("keep.h5");
    conv_write(out, "old", 3, false);
    p.test_images = conv_path("short-img"); // written by test_idx_bad: truncated
    char err[1024] = "", got[8] = "";
    int rc = conv_rc(pcn_io_convert_idx(&p, out, NULL), err, sizeof err);
    TU_CHECK(rc == -1 && strstr(err, "truncated"), "truncated input: rc %d, '%s'", rc, err);
    FILE *fp = fopen(out, "rb");
    size_t n = fp ? fread(got, 1, sizeof got, fp) : 0;
    if (fp) fclose(fp);
    TU_CHECK(n == 3 && !memcmp(got, "old", 3), "existing output changed by a failed run");
    TU_CHECK(conv_no_temp_files(), "temporary file left behind");
}

// ----------------------------------------------------------------------------------------
// The program
// ----------------------------------------------------------------------------------------


static void test_program(const char *exe) {
    char cmd[1600], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' --help", exe);
    TU_CHECK(conv_run(cmd, out, sizeof out) == 0 && strstr(out, "pcn_convert idx --dir D"),
             "--help: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' --version", exe);
    TU_CHECK(conv_run(cmd, out, sizeof out) == 0 && strstr(out, "pcn_dist"), "--version: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' idx --dir '%s/std' -o '%s'", exe, conv_tmpdir, conv_path("cli.h5"));
    TU_CHECK(conv_run(cmd, out, sizeof out) == 0 && access(conv_path("cli.h5"), F_OK) == 0,
             "idx --dir: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' cifar10 --dir '%s/cifar-bad' -o '%s'", exe, conv_tmpdir,
             conv_path("cli-bad.h5"));
    int rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && !strncmp(out, "pcn_convert: ", 13) && strstr(out, "test_batch.bin") &&
                 strchr(out, '\n') == out + strlen(out) - 1,
             "missing file: exit %d, output '%s'", rc, out);
    TU_CHECK(access(conv_path("cli-bad.h5"), F_OK) != 0, "output left by a failed run");
    snprintf(cmd, sizeof cmd, "'%s' idx --dir x --limit-train 0 -o y", exe);
    rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "--limit-train"), "bad limit: exit %d, '%s'", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' idx --dir x", exe);
    rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "-o OUT.h5"), "no -o: exit %d, '%s'", rc, out);
}

// ----------------------------------------------------------------------------------------
// Real Fashion-MNIST
// ----------------------------------------------------------------------------------------

// Reads a whole gzip file with zlib (independent of the converter); length in *n.
static uint8_t *gunzip_all(const char *path, size_t *n) {
    gzFile f = gzopen(path, "rb");
    size_t cap = 1 << 20, len = 0;
    uint8_t *b = malloc(cap);
    int r;
    while (f && (r = gzread(f, b + len, (unsigned)(cap - len))) > 0)
        if ((len += (size_t)r) == cap) b = realloc(b, cap *= 2);
    if (f) gzclose(f);
    *n = len;
    return b;
}

// Train rows and labels equal the gzip files read here; 6000 rows per class.
static void fashion_check_train(hid_t f, const char *dir) {
    hsize_t dims[2];
    int rank;
    uint8_t *x = read_dset(f, "/train/x", H5T_NATIVE_UINT8, 1, dims, &rank);
    TU_CHECK(rank == 2 && dims[0] == 60000 && dims[1] == 784, "train x %llu x %llu",
             (unsigned long long)dims[0], (unsigned long long)dims[1]);
    int32_t *y = read_dset(f, "/train/y", H5T_NATIVE_INT32, 4, dims, &rank);
    TU_CHECK(rank == 1 && dims[0] == 60000, "train y has %llu rows", (unsigned long long)dims[0]);
    size_t ni, nl;
    char p[600];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    uint8_t *raw = gunzip_all(p, &ni);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    uint8_t *rawl = gunzip_all(p, &nl);
    bool ok = x && y && ni == 16 + 60000 * 784 && nl == 8 + 60000 && dims[0] == 60000;
    TU_CHECK(ok, "raw sizes %zu %zu", ni, nl);
    int64_t rows[] = {0, 1, 12345, 59999};
    for (int k = 0; ok && k < 4; k++) {
        int64_t r = rows[k];
        TU_CHECK(!memcmp(x + r * 784, raw + 16 + r * 784, 784), "train row %lld differs",
                 (long long)r);
        TU_CHECK(y[r] == rawl[8 + r], "train label %lld: %d vs %d", (long long)r, y[r],
                 rawl[8 + r]);
    }
    int count[10] = {0};
    for (int i = 0; ok && i < 60000; i++) count[y[i] >= 0 && y[i] < 10 ? y[i] : 0]++;
    for (int c = 0; ok && c < 10; c++)
        TU_CHECK(count[c] == 6000, "class %d has %d rows", c, count[c]);
    free(x), free(y), free(raw), free(rawl);
}

static void test_fashion(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("  %s absent: real-data check skipped\n", dir);
        return;
    }
    const char *out = conv_path("fashion.h5");
    char err[1024] = "";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = conv_rc(pcn_io_convert_idx_dir(dir, out, NULL), err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    TU_CHECK(rc == 0, "Fashion-MNIST: %s", err);
    if (rc) return;
    printf("  Fashion-MNIST converted in %.2f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    int32_t classes = 0;
    attr_read(f, ".", "num_classes", H5T_NATIVE_INT32, &classes);
    TU_CHECK(classes == 10, "num_classes %d", classes);
    fashion_check_train(f, dir);
    hsize_t dims[2];
    int rank;
    uint8_t *x = read_dset(f, "/test/x", H5T_NATIVE_UINT8, 1, dims, &rank);
    TU_CHECK(rank == 2 && dims[0] == 10000 && dims[1] == 784, "test x %llu x %llu",
             (unsigned long long)dims[0], (unsigned long long)dims[1]);
    free(x);
    float *mean = read_dset(f, "/norm/mean", H5T_NATIVE_FLOAT, 4, dims, &rank);
    double avg = 0;
    for (int j = 0; mean && j < 784; j++) avg += mean[j] / 784.0;
    TU_CHECK(fabs(avg - 0.2860) < 1e-3, "average pixel mean %.4f, Fashion-MNIST's is 0.2860", avg);
    free(mean);
    H5Fclose(f);
}

// ----------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    if (!conv_setup("pcn_convert")) return 1;
    test_idx();
    test_idx_dir();
    test_cifar();
    test_idx_bad();
    test_cifar_bad();
    test_keeps_existing();
    if (argc > 1) test_program(argv[1]);
    test_fashion();
    return conv_finish("test_convert");
}
