/*
 * test_convert_arrays.c — the NumPy (.npy, .npz) and HDF5 array converters write the data
 * set schema of pcn_io.h with exactly the values they read, and refuse bad input cleanly.
 *
 * Proves: arrays written here byte by byte (.npy versions 1.0, 2.0 and 3.0; .npz archives
 * stored and deflated, one with zip64 end records and zip64 extra fields) and HDF5 files
 * written with the HDF5 API (big-endian int16 x, nested dataset paths) convert to files
 * whose x equals the input exactly: uint8 x byte for byte with scale 1/255, every other
 * dtype as (float)v with scale 1 (float64 rounded to nearest); y equals the labels;
 * image_shape follows the documented rule for 2-, 3- and 4-D x; num_classes is the largest
 * label + 1 or --classes; /norm equals a two-pass double computation over the scaled
 * training values (more rows than one chunk); the row limits keep the first rows. Bad
 * inputs — bad magic, truncated .npy and .npz, an unknown .npy version, big-endian, object,
 * complex and structured dtypes, fortran order, x/y row count mismatch, D mismatch between
 * the splits, uint8 x in one split only, too few or too many dimensions, NaN, Inf, a
 * float64 beyond float32, an integer float32 cannot hold, labels out of range, negative or
 * of a float dtype, a missing array name, a corrupt CRC, corrupt deflate data, a missing
 * HDF5 dataset, a string dataset, a file that is not HDF5 — each fail with one line naming
 * the file and the problem, leave no output and no temporary file, and leave an existing
 * output untouched. With pcn_convert's path as argv[1]: its --help names the formats and a
 * refusal exits 1 with one line. With the fixture folder as argv[2]: the NumPy and h5py
 * fixtures (tests/convert/make_fixtures.py) convert to the same values: plain.npz and
 * plain.h5 give identical x and y, the .npy files give round(1000 x), compressed.npz the
 * same labels.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <zlib.h>

#include "pcn_io.h"
#include "convert_testutil.h"
#include "testutil.h"



// ----------------------------------------------------------------------------------------
// Writing .npy and .npz bytes
// ----------------------------------------------------------------------------------------

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *data, size_t len) {
    if (b->n + len > b->cap) {
        b->cap = (b->n + len) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
}
static void put16(bytes *b, uint32_t v) { put(b, (uint8_t[2]){(uint8_t)v, (uint8_t)(v >> 8)}, 2); }
static void put32(bytes *b, uint32_t v) { put16(b, v & 0xffff), put16(b, v >> 16); }
static void put64(bytes *b, uint64_t v) { put32(b, (uint32_t)v), put32(b, (uint32_t)(v >> 32)); }

// A .npy array: header dict `dict` (e.g. "{'descr': '<f4', 'fortran_order': False,
// 'shape': (4, 3), }"), padded as NumPy pads it, then len bytes of data.
static bytes npy_make(int version, const char *dict, const void *data, size_t len) {
    bytes b = {0};
    size_t pre = version == 1 ? 10 : 12, hlen = strlen(dict) + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    put(&b, "\x93NUMPY", 6);
    put(&b, (uint8_t[2]){(uint8_t)version, 0}, 2);
    if (version == 1) put16(&b, (uint32_t)hlen);
    else put32(&b, (uint32_t)hlen);
    put(&b, dict, strlen(dict));
    for (size_t i = strlen(dict); i + 1 < hlen; i++) put(&b, " ", 1);
    put(&b, "\n", 1);
    put(&b, data, len);
    return b;
}

static bytes npy_of(const char *descr, const char *shape, const void *data, size_t len) {
    char dict[256];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
             shape);
    return npy_make(1, dict, data, len);
}


// Raw deflate of in (as zip stores it).
static bytes deflate_raw(const bytes *in) {
    bytes out = {0};
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    out.cap = deflateBound(&z, (uLong)in->n);
    out.p = malloc(out.cap);
    z.next_in = in->p, z.avail_in = (uInt)in->n, z.next_out = out.p, z.avail_out = (uInt)out.cap;
    TU_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    out.n = z.total_out;
    deflateEnd(&z);
    return out;
}

typedef struct {
    const char *name;
    bytes data;
} zentry;

// One local header and its data; central directory record into cd.
static void zip_member(bytes *b, bytes *cd, const zentry *e, bool deflate, bool z64) {
    bytes packed = deflate ? deflate_raw(&e->data) : e->data;
    uint32_t crc = (uint32_t)crc32(0, e->data.p, (uInt)e->data.n);
    uint64_t offset = b->n, nlen = strlen(e->name);
    uint32_t big = 0xffffffffu;
    put32(b, 0x04034b50), put16(b, 45), put16(b, 0), put16(b, deflate ? 8 : 0);
    put16(b, 0), put16(b, 0x21), put32(b, crc);
    put32(b, z64 ? big : (uint32_t)packed.n), put32(b, z64 ? big : (uint32_t)e->data.n);
    put16(b, (uint32_t)nlen), put16(b, z64 ? 20 : 0);
    put(b, e->name, nlen);
    if (z64) put16(b, 1), put16(b, 16), put64(b, e->data.n), put64(b, packed.n);
    put(b, packed.p, packed.n);
    put32(cd, 0x02014b50), put16(cd, 45), put16(cd, 45), put16(cd, 0);
    put16(cd, deflate ? 8 : 0), put16(cd, 0), put16(cd, 0x21), put32(cd, crc);
    put32(cd, z64 ? big : (uint32_t)packed.n), put32(cd, z64 ? big : (uint32_t)e->data.n);
    put16(cd, (uint32_t)nlen), put16(cd, z64 ? 28 : 0), put16(cd, 0), put16(cd, 0);
    put16(cd, 0), put32(cd, 0), put32(cd, z64 ? big : (uint32_t)offset);
    put(cd, e->name, nlen);
    if (z64) put16(cd, 1), put16(cd, 24), put64(cd, e->data.n), put64(cd, packed.n),
        put64(cd, offset);
    if (deflate) free(packed.p);
}

// A zip of n entries (all deflated or all stored; with zip64 records when z64).
static bytes zip_make(const zentry *e, int n, bool deflate, bool z64) {
    bytes b = {0}, cd = {0};
    for (int i = 0; i < n; i++) zip_member(&b, &cd, &e[i], deflate, z64);
    uint64_t cd_off = b.n, cd_len = cd.n;
    put(&b, cd.p, cd.n);
    free(cd.p);
    if (z64) {
        uint64_t rec = b.n;
        put32(&b, 0x06064b50), put64(&b, 44), put16(&b, 45), put16(&b, 45), put32(&b, 0);
        put32(&b, 0), put64(&b, (uint64_t)n), put64(&b, (uint64_t)n), put64(&b, cd_len);
        put64(&b, cd_off);
        put32(&b, 0x07064b50), put32(&b, 0), put64(&b, rec), put32(&b, 1);
    }
    put32(&b, 0x06054b50), put16(&b, 0), put16(&b, 0);
    put16(&b, z64 ? 0xffff : (uint32_t)n), put16(&b, z64 ? 0xffff : (uint32_t)n);
    put32(&b, z64 ? 0xffffffffu : (uint32_t)cd_len);
    put32(&b, z64 ? 0xffffffffu : (uint32_t)cd_off), put16(&b, 0);
    return b;
}

// ----------------------------------------------------------------------------------------
// The synthetic arrays: NTR training rows (more than one chunk), NTE test rows, D = 6
// ----------------------------------------------------------------------------------------

enum { NTR = 2100, NTE = 50, D = 6, K = 5 };

static double xval(int split, int64_t i, int j) {
    return sin(0.37 * (double)i + j + split) * 100.0 + 0.001 * (double)i;
}
static uint8_t xbyte(int split, int64_t i, int j) {
    return (uint8_t)((i * 31 + j * 7 + split * 3) & 0xff);
}
static int32_t xint(int split, int64_t i, int j) {
    return (int32_t)((i * 977 + j * 131 + split) % 40000) - 20000;
}
static int64_t lab(int split, int64_t i) { return (i * 3 + split) % K; }

// Fills n rows of x in dtype kind 'd' (float64), 'b' (uint8) or 'i' (int32).
static void *x_data(int split, int64_t n, char kind, size_t *len) {
    size_t es = kind == 'd' ? 8 : kind == 'b' ? 1 : 4;
    uint8_t *p = malloc((size_t)n * D * es);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            size_t k = (size_t)(i * D + j);
            if (kind == 'd') ((double *)p)[k] = xval(split, i, j);
            else if (kind == 'b') p[k] = xbyte(split, i, j);
            else ((int32_t *)p)[k] = xint(split, i, j);
        }
    *len = (size_t)n * D * es;
    return p;
}

static bytes x_npy(int split, int64_t n, char kind, const char *shape_fmt) {
    size_t len;
    void *p = x_data(split, n, kind, &len);
    char shape[64];
    snprintf(shape, sizeof shape, shape_fmt, (long long)n);
    bytes b = npy_of(kind == 'd' ? "<f8" : kind == 'b' ? "|u1" : "<i4", shape, p, len);
    free(p);
    return b;
}

static bytes y_npy(int split, int64_t n) {
    int64_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) y[i] = lab(split, i);
    char shape[64];
    snprintf(shape, sizeof shape, "(%lld,)", (long long)n);
    bytes b = npy_of("<i8", shape, y, (size_t)n * sizeof *y);
    free(y);
    return b;
}

// The good archive's four entries: float64 x [N, 2, 3], int64 y [N].
static void good_entries(zentry e[4]) {
    e[0] = (zentry){"x_train.npy", x_npy(0, NTR, 'd', "(%lld, 2, 3)")};
    e[1] = (zentry){"y_train.npy", y_npy(0, NTR)};
    e[2] = (zentry){"x_test.npy", x_npy(1, NTE, 'd', "(%lld, 2, 3)")};
    e[3] = (zentry){"y_test.npy", y_npy(1, NTE)};
}

static void free_entries(zentry *e, int n) {
    for (int i = 0; i < n; i++) free(e[i].data.p);
}

static void write_zip(const char *path, const zentry *e, int n, bool deflate, bool z64) {
    bytes z = zip_make(e, n, deflate, z64);
    conv_write(path, z.p, z.n, false);
    free(z.p);
}

// ----------------------------------------------------------------------------------------
// Reading the output back
// ----------------------------------------------------------------------------------------

// A whole dataset as mtype (n values in *n).
static void *read_all(hid_t f, const char *name, hid_t mtype, size_t es, hsize_t *n) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds >= 0 ? H5Dget_space(ds) : -1;
    *n = sp >= 0 ? (hsize_t)H5Sget_simple_extent_npoints(sp) : 0;
    void *v = malloc(*n * es + 1);
    TU_CHECK(ds >= 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0, "read %s",
             name);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return v;
}

static void attr_get(hid_t f, const char *obj, const char *name, hid_t mtype, void *v) {
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    TU_CHECK(a >= 0 && H5Aread(a, mtype, v) >= 0, "attribute %s of %s", name, obj);
    if (a >= 0) H5Aclose(a);
}

typedef struct {
    int64_t n[2];     // rows of train, test
    char kind;        // 'd', 'b', 'i' (float64, uint8, int32 input) or 'h' (int16)
    int classes;
    int32_t shape[3];
} expect;

// The value written for input value (split, i, j), as float (uint8: the byte).
static float want_x(const expect *e, int split, int64_t i, int j) {
    if (e->kind == 'd') return (float)xval(split, i, j);
    if (e->kind == 'b') return xbyte(split, i, j);
    if (e->kind == 'h') return (float)(int16_t)xint(split, i, j);
    return (float)xint(split, i, j);
}

// Reference /norm: two passes in double over the scaled training values.
static void ref_norm(const expect *e, double *m, double *sd) {
    double s = e->kind == 'b' ? 1.0 / 255.0 : 1.0, count = (double)e->n[0] * D, v = 0;
    *m = 0;
    for (int64_t i = 0; i < e->n[0]; i++)
        for (int j = 0; j < D; j++) *m += want_x(e, 0, i, j) * s;
    *m /= count;
    for (int64_t i = 0; i < e->n[0]; i++)
        for (int j = 0; j < D; j++) v += (want_x(e, 0, i, j) * s - *m) * (want_x(e, 0, i, j) * s - *m);
    *sd = sqrt(v / count);
}

static void check_split(hid_t f, const expect *e, int split) {
    const char *xs = split ? "/test/x" : "/train/x", *ys = split ? "/test/y" : "/train/y";
    hsize_t nx, ny;
    float *x = read_all(f, xs, H5T_NATIVE_FLOAT, 4, &nx);
    int32_t *y = read_all(f, ys, H5T_NATIVE_INT32, 4, &ny);
    int64_t n = e->n[split];
    TU_CHECK((int64_t)nx == n * D && (int64_t)ny == n, "%s: %llu values, %llu labels", xs,
             (unsigned long long)nx, (unsigned long long)ny);
    int bad = 0;
    for (int64_t i = 0; (int64_t)nx == n * D && (int64_t)ny == n && i < n; i++) {
        for (int j = 0; j < D; j++)
            if (x[i * D + j] != want_x(e, split, i, j) && bad++ < 3)
                TU_CHECK(0, "%s[%lld][%d] = %.9g, want %.9g", xs, (long long)i, j, x[i * D + j],
                         want_x(e, split, i, j));
        if (y[i] != lab(split, i) && bad++ < 3)
            TU_CHECK(0, "%s[%lld] = %d, want %lld", ys, (long long)i, y[i],
                     (long long)lab(split, i));
    }
    TU_CHECK(bad == 0, "%s: %d values differ", xs, bad);
    hid_t ds = H5Dopen2(f, xs, H5P_DEFAULT), t = H5Dget_type(ds);
    hid_t want = e->kind == 'b' ? H5T_STD_U8LE : H5T_IEEE_F32LE;
    TU_CHECK(H5Tequal(t, want) > 0, "%s has the wrong dtype", xs);
    H5Tclose(t), H5Dclose(ds);
    double scale = 0;
    attr_get(f, xs, "scale", H5T_NATIVE_DOUBLE, &scale);
    TU_CHECK(scale == (e->kind == 'b' ? 1.0 / 255.0 : 1.0), "%s@scale %.17g", xs, scale);
    free(x), free(y);
}

static void check_file(const char *path, const expect *e) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    TU_CHECK(f >= 0, "open %s", path);
    if (f < 0) return;
    check_split(f, e, 0);
    check_split(f, e, 1);
    int32_t classes = 0, shape[3] = {0, 0, 0};
    attr_get(f, ".", "num_classes", H5T_NATIVE_INT32, &classes);
    attr_get(f, ".", "image_shape", H5T_NATIVE_INT32, shape);
    TU_CHECK(classes == e->classes, "%s: num_classes %d, want %d", path, classes, e->classes);
    TU_CHECK(!memcmp(shape, e->shape, sizeof shape), "%s: image_shape %d %d %d", path, shape[0],
             shape[1], shape[2]);
    hsize_t n;
    float *mean = read_all(f, "/norm/mean", H5T_NATIVE_FLOAT, 4, &n);
    float *std = read_all(f, "/norm/std", H5T_NATIVE_FLOAT, 4, &n);
    double m, sd;
    ref_norm(e, &m, &sd);
    float rm[D], rs[D];
    for (int j = 0; j < D; j++) rm[j] = (float)m, rs[j] = (float)sd;
    if (n == D) {
        tu_close_f("/norm/mean", mean, rm, D, 1e-6, 1e-6);
        tu_close_f("/norm/std", std, rs, D, 1e-6, 1e-6);
    }
    free(mean), free(std);
    H5Fclose(f);
}




// ----------------------------------------------------------------------------------------
// Good conversions
// ----------------------------------------------------------------------------------------

static void test_npz_good(void) {
    zentry e[4];
    good_entries(e);
    const char *zp = conv_path("good.npz"), *out = conv_path("good.h5");
    char err[1024];
    write_zip(zp, e, 4, false, false);
    int rc = conv_rc(pcn_io_convert_npz(zp, NULL, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, "stored .npz: %s", err);
    check_file(out, &(expect){{NTR, NTE}, 'd', K, {1, 2, 3}});
    free_entries(e, 4);

    // Deflated, zip64 records, names of our own (with and without .npy), uint8 x [N, 6],
    // --classes and row limits (more than one chunk of training rows).
    zentry u[4] = {{"a.npy", x_npy(0, NTR, 'b', "(%lld, 6)")}, {"b.npy", y_npy(0, NTR)},
                   {"c.npy", x_npy(1, NTE, 'b', "(%lld, 6)")}, {"d.npy", y_npy(1, NTE)}};
    const char *zp64 = conv_path("deflated64.npz");
    write_zip(zp64, u, 4, true, true);
    pcn_io_array_names names = {"a", "b.npy", "c", "d"};
    pcn_io_convert_params p = pcn_io_convert_default_params();
    p.classes = 9, p.limit_train = 1500, p.limit_test = 20;
    rc = conv_rc(pcn_io_convert_npz(zp64, &names, out, &p), err, sizeof err);
    TU_CHECK(rc == 0, "deflated zip64 .npz: %s", err);
    check_file(out, &(expect){{1500, 20}, 'b', 9, {1, 1, 6}});
    free_entries(u, 4);
}

// Four .npy files: versions 2.0 and 3.0, int32 x [N, 2, 1, 3] (4-D), uint8 y [N, 1].
static void test_npy_good(void) {
    const char *f[4] = {conv_path("xtr.npy"), conv_path("ytr.npy"), conv_path("xte.npy"),
                        conv_path("yte.npy")};
    for (int s = 0; s < 2; s++) {
        int64_t n = s ? NTE : NTR;
        size_t len;
        void *x = x_data(s, n, 'i', &len);
        char dict[160];
        snprintf(dict, sizeof dict, "{'descr': '<i4', 'fortran_order': False, 'shape': (%lld, "
                 "2, 1, 3), }", (long long)n);
        bytes bx = npy_make(s ? 3 : 2, dict, x, len);
        uint8_t *y = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) y[i] = (uint8_t)lab(s, i);
        snprintf(dict, sizeof dict, "(%lld, 1)", (long long)n);
        bytes by = npy_of("|u1", dict, y, (size_t)n);
        conv_write(f[2 * s], bx.p, bx.n, false);
        conv_write(f[2 * s + 1], by.p, by.n, false);
        free(x), free(y), free(bx.p), free(by.p);
    }
    const char *out = conv_path("npy.h5");
    char err[1024];
    pcn_io_array_names names = {f[0], f[1], f[2], f[3]};
    int rc = conv_rc(pcn_io_convert_npz(NULL, &names, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, ".npy files: %s", err);
    check_file(out, &(expect){{NTR, NTE}, 'i', K, {2, 1, 3}});
}

// Writes dataset path of file type ftype from memory type mtype (groups made on the way).
static void h5_put(hid_t f, const char *path, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), sp = H5Screate_simple(rank, dims, NULL);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(f, path, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    TU_CHECK(ds >= 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
             "write %s", path);
    H5Dclose(ds), H5Sclose(sp), H5Pclose(lcpl);
}

// An HDF5 file: big-endian int16 x [N, 3, 2] at /deep/g/xtr, /deep/g/xte, uint32 labels at
// /ytr, /yte; with nan_row >= 0, float32 x instead, NaN at that training row.
static const char *write_h5(const char *name, int nan_row) {
    const char *path = conv_path(name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    for (int s = 0; s < 2; s++) {
        int64_t n = s ? NTE : NTR;
        size_t len;
        int32_t *x = x_data(s, n, 'i', &len);
        uint32_t *y = malloc((size_t)n * sizeof *y);
        float *xf = malloc(len);
        for (int64_t i = 0; i < n; i++) y[i] = (uint32_t)lab(s, i);
        for (int64_t k = 0; k < n * D; k++) xf[k] = (float)x[k];
        if (nan_row >= 0 && s == 0) xf[nan_row * D + 1] = NAN;
        hsize_t dx[3] = {(hsize_t)n, 3, 2}, dy[1] = {(hsize_t)n};
        if (nan_row >= 0)
            h5_put(f, s ? "/deep/g/xte" : "/deep/g/xtr", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dx,
                   xf);
        else
            h5_put(f, s ? "/deep/g/xte" : "/deep/g/xtr", H5T_STD_I16BE, H5T_NATIVE_INT32, 3, dx,
                   x);
        h5_put(f, s ? "/yte" : "/ytr", H5T_STD_U32LE, H5T_NATIVE_UINT32, 1, dy, y);
        free(x), free(y), free(xf);
    }
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, 8);
    hid_t ds = H5Dcreate2(f, "/text", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "words..");
    H5Dclose(ds), H5Sclose(sp), H5Tclose(t);
    H5Fclose(f);
    return path;
}

static const pcn_io_array_names h5_names = {"/deep/g/xtr", "/ytr", "/deep/g/xte", "/yte"};

static void test_h5_good(void) {
    const char *in = write_h5("in.h5", -1), *out = conv_path("h5.h5");
    char err[1024];
    int rc = conv_rc(pcn_io_convert_h5(in, &h5_names, out, NULL), err, sizeof err);
    TU_CHECK(rc == 0, "HDF5 input: %s", err);
    check_file(out, &(expect){{NTR, NTE}, 'h', K, {1, 3, 2}});
}

// ----------------------------------------------------------------------------------------
// Refusals
// ----------------------------------------------------------------------------------------

static const char *bad_out(void) {
    static const char *p;
    return p ? p : (p = conv_path("bad.h5"));
}

// The good archive with the entries repl[i] put in place (those with data), converted with
// names and params; must be refused naming the archive and needle.
static void npz_refusal(const char *what, bytes repl[4], const pcn_io_array_names *names,
                        const pcn_io_convert_params *p, const char *needle) {
    static const char *zp;
    if (!zp) zp = conv_path("bad.npz");
    zentry e[4];
    good_entries(e);
    for (int i = 0; i < 4; i++)
        if (repl[i].p) free(e[i].data.p), e[i].data = repl[i];
    write_zip(zp, e, 4, false, false);
    char err[1024];
    int rc = conv_rc(pcn_io_convert_npz(zp, names, bad_out(), p), err, sizeof err);
    conv_expect_refusal(what, rc, err, bad_out(), zp, needle);
    free_entries(e, 4);
}

// One replaced entry i: an .npy of descr and shape over len bytes of data (NULL: zeros).
static void npz_bad_entry(const char *what, int i, const char *descr, const char *shape,
                          const void *data, size_t len, const char *needle) {
    void *zeros = data ? NULL : calloc(len ? len : 1, 1);
    bytes r[4] = {{0}};
    r[i] = npy_of(descr, shape, data ? data : zeros, len);
    npz_refusal(what, r, NULL, NULL, needle);
    free(zeros);
}

// Headers that are not arrays of the supported kinds.
static void bad_headers(void) {
    bytes r[4] = {{0}};
    r[0] = x_npy(0, NTR, 'd', "(%lld, 6)"), r[0].p[1] = 'X';
    npz_refusal("bad magic", r, NULL, NULL, "x_train: bad magic");
    r[0] = x_npy(0, NTR, 'd', "(%lld, 6)"), r[0].p[6] = 4;
    npz_refusal("npy version 4.0", r, NULL, NULL, "format version 4.0 is not supported");
    npz_bad_entry("big-endian", 0, ">f4", "(2100, 6)", NULL, NTR * D * 4,
                  "x_train: big-endian dtype '>f4'");
    npz_bad_entry("object dtype", 0, "|O", "(2100, 6)", NULL, NTR * D * 8, "object dtype");
    npz_bad_entry("complex dtype", 2, "<c8", "(50, 6)", NULL, NTE * D * 8,
                  "x_test: complex dtype '<c8'");
    npz_bad_entry("float16 dtype", 0, "<f2", "(2100, 6)", NULL, NTR * D * 2,
                  "dtype '<f2' is not supported");
    r[0] = npy_make(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }",
                    "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    npz_refusal("structured dtype", r, NULL, NULL, "structured dtype");
    size_t len;
    void *x = x_data(0, NTR, 'd', &len);
    r[0] = npy_make(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2100, 6), }", x, len);
    npz_refusal("fortran order", r, NULL, NULL, "fortran_order is True");
    r[0] = npy_make(1, "{'descr': '<f8', 'shape': (2100, 6), }", x, len);
    npz_refusal("header without a key", r, NULL, NULL, "malformed .npy header");
    r[0] = npy_of("<f8", "(2100, 6)", x, len - 10);
    npz_refusal("truncated entry", r, NULL, NULL, "truncated");
    npz_bad_entry("1-D x", 0, "<f8", "(12600,)", x, len, "expected 2 to 4 dimensions");
    npz_bad_entry("5-D x", 0, "<f8", "(2100, 1, 2, 3, 1)", x, len, "expected 2 to 4 dimensions");
    free(x);
}

// Shapes that do not fit together, dtypes that differ.
static void bad_shapes(void) {
    bytes r[4] = {{0}};
    r[1] = y_npy(0, NTR - 1);
    npz_refusal("x/y row mismatch", r, NULL, NULL, "y_train: 2099 labels, but");
    size_t len;
    void *x = x_data(1, NTE, 'd', &len); // 300 values as 25 rows of 12
    r[1] = (bytes){0}, r[2] = npy_of("<f8", "(25, 12)", x, len), r[3] = y_npy(1, 25);
    npz_refusal("D mismatch train/test", r, NULL, NULL, "rows of 12 values, but");
    free(x);
    r[2] = r[3] = (bytes){0}, r[0] = x_npy(0, NTR, 'b', "(%lld, 6)");
    npz_refusal("uint8 x in train only", r, NULL, NULL, "give both x the same dtype");
    r[0] = (bytes){0}, r[1] = x_npy(0, NTR, 'd', "(%lld, 6)");
    npz_refusal("float labels", r, NULL, NULL, "y_train: labels have dtype float64");
    int64_t y2[NTR * 2] = {0};
    npz_bad_entry("labels [N, 2]", 1, "<i8", "(2100, 2)", y2, sizeof y2, "expected [N] or [N, 1]");
    pcn_io_array_names names = {"nope", NULL, NULL, NULL};
    npz_refusal("missing array name", (bytes[4]){{0}}, &names, NULL,
                "no array 'nope' in the archive (it holds: x_train, y_train, x_test, y_test)");
}

// Values: non-finite, beyond float32, inexact integers, labels out of range.
static void bad_values(void) {
    size_t len;
    double *x = x_data(0, NTR, 'd', &len);
    x[7 * D + 2] = NAN;
    npz_bad_entry("NaN", 0, "<f8", "(2100, 6)", x, len, "x_train: NaN at row 7, column 2");
    x[7 * D + 2] = 1e39;
    npz_bad_entry("beyond float32", 0, "<f8", "(2100, 6)", x, len,
                  "value 1e+39 is beyond float32's range at row 7");
    free(x);
    double *xt = x_data(1, NTE, 'd', &len);
    xt[3 * D] = -INFINITY;
    npz_bad_entry("-Inf in test x", 2, "<f8", "(50, 6)", xt, len, "x_test: -Inf at row 3, column 0");
    free(xt);
    int64_t *xi = calloc(NTR * D, sizeof *xi);
    xi[1000 * D + 5] = 16777217;
    npz_bad_entry("inexact integer", 0, "<i8", "(2100, 6)", xi, NTR * D * 8,
                  "value 16777217 is not exactly representable as float32 at row 1000, column 5");
    free(xi);
    int64_t y[NTR];
    for (int64_t i = 0; i < NTR; i++) y[i] = lab(0, i);
    y[4] = -1;
    npz_bad_entry("negative label", 1, "<i8", "(2100,)", y, sizeof y,
                  "y_train: label -1 at row 4 is negative");
    pcn_io_convert_params p = pcn_io_convert_default_params();
    p.classes = 3;
    npz_refusal("label out of range", (bytes[4]){{0}}, NULL, &p,
                "y_train: label 3 at row 1 is out of range for 3 classes");
}

// Damaged archives and files.
static void bad_archives(void) {
    zentry e[4];
    good_entries(e);
    bytes z = zip_make(e, 4, false, false);
    const char *zp = conv_path("damaged.npz"), *out = bad_out();
    char err[1024];
    uint32_t cd_off = (uint32_t)z.p[z.n - 6] | (uint32_t)z.p[z.n - 5] << 8 |
                      (uint32_t)z.p[z.n - 4] << 16 | (uint32_t)z.p[z.n - 3] << 24;
    z.p[cd_off - 5] ^= 0x40; // inside y_test's data
    conv_write(zp, z.p, z.n, false);
    int rc = conv_rc(pcn_io_convert_npz(zp, NULL, out, NULL), err, sizeof err);
    conv_expect_refusal("corrupt CRC", rc, err, out, zp, "y_test: CRC-32 mismatch");
    conv_write(zp, z.p, z.n - 100, false);
    rc = conv_rc(pcn_io_convert_npz(zp, NULL, out, NULL), err, sizeof err);
    conv_expect_refusal("truncated archive", rc, err, out, zp, "no end of central directory record");
    free(z.p);
    z = zip_make(e, 4, true, false);
    z.p[200] ^= 0xff, z.p[201] ^= 0x55; // x_train's compressed data
    conv_write(zp, z.p, z.n, false);
    rc = conv_rc(pcn_io_convert_npz(zp, NULL, out, NULL), err, sizeof err);
    conv_expect_refusal("corrupt deflate data", rc, err, out, zp, "x_train: ");
    TU_CHECK(strstr(err, "corrupt compressed data") || strstr(err, "CRC-32 mismatch") ||
                 strstr(err, "ends early"), "corrupt deflate data: '%s'", err);
    free(z.p);
    conv_write(zp, e[0].data.p, e[0].data.n, false); // a .npy is not an archive
    rc = conv_rc(pcn_io_convert_npz(zp, NULL, out, NULL), err, sizeof err);
    conv_expect_refusal("npy as --input", rc, err, out, zp, "not a zip (.npz) archive");
    free_entries(e, 4);
}

// The four-file form: truncated, trailing data, missing file.
static void bad_npy_files(void) {
    const char *f[4] = {conv_path("b-xtr.npy"), conv_path("b-ytr.npy"), conv_path("b-xte.npy"),
                        conv_path("b-yte.npy")};
    zentry e[4];
    good_entries(e);
    for (int i = 0; i < 4; i++) conv_write(f[i], e[i].data.p, e[i].data.n, false);
    pcn_io_array_names names = {f[0], f[1], f[2], f[3]};
    char err[1024];
    conv_write(f[2], e[2].data.p, e[2].data.n - 3, false);
    int rc = conv_rc(pcn_io_convert_npz(NULL, &names, bad_out(), NULL), err, sizeof err);
    conv_expect_refusal("truncated .npy", rc, err, bad_out(), f[2], "truncated");
    bytes longer = {0};
    put(&longer, e[2].data.p, e[2].data.n), put(&longer, "junk", 4);
    conv_write(f[2], longer.p, longer.n, false);
    rc = conv_rc(pcn_io_convert_npz(NULL, &names, bad_out(), NULL), err, sizeof err);
    conv_expect_refusal("trailing data", rc, err, bad_out(), f[2], "4 bytes follow");
    conv_write(f[2], e[2].data.p, e[2].data.n, false);
    names.test_y = conv_path("no-such.npy");
    rc = conv_rc(pcn_io_convert_npz(NULL, &names, bad_out(), NULL), err, sizeof err);
    conv_expect_refusal("missing .npy", rc, err, bad_out(), names.test_y, "No such file");
    free(longer.p);
    free_entries(e, 4);
}

static void bad_h5(void) {
    const char *in = conv_path("in.h5"), *out = bad_out(); // written by test_h5_good
    char err[1024];
    pcn_io_array_names n = h5_names;
    n.test_y = "/labels/none";
    int rc = conv_rc(pcn_io_convert_h5(in, &n, out, NULL), err, sizeof err);
    conv_expect_refusal("missing HDF5 dataset", rc, err, out, in, "/labels/none: no such dataset");
    n = h5_names, n.train_y = "/text";
    rc = conv_rc(pcn_io_convert_h5(in, &n, out, NULL), err, sizeof err);
    conv_expect_refusal("string dataset", rc, err, out, "/text: dtype string", "not supported");
    n = h5_names, n.train_x = "/deep/g";
    rc = conv_rc(pcn_io_convert_h5(in, &n, out, NULL), err, sizeof err);
    conv_expect_refusal("group as dataset", rc, err, out, "/deep/g: not a dataset", NULL);
    const char *nan = write_h5("nan.h5", 1234);
    rc = conv_rc(pcn_io_convert_h5(nan, &h5_names, out, NULL), err, sizeof err);
    conv_expect_refusal("NaN in HDF5 x", rc, err, out, nan, "/deep/g/xtr: NaN at row 1234, column 1");
    rc = conv_rc(pcn_io_convert_h5(conv_path("good.npz"), &h5_names, out, NULL), err, sizeof err);
    conv_expect_refusal("not HDF5", rc, err, out, "good.npz: not an HDF5 file", NULL);
    // A failed conversion leaves an existing output as it was.
    const char *keep = conv_path("keep.h5");
    conv_write(keep, "old", 3, false);
    rc = conv_rc(pcn_io_convert_h5(nan, &h5_names, keep, NULL), err, sizeof err);
    char got[8] = "";
    FILE *fp = fopen(keep, "rb");
    size_t k = fp ? fread(got, 1, sizeof got, fp) : 0;
    if (fp) fclose(fp);
    TU_CHECK(rc == -1 && k == 3 && !memcmp(got, "old", 3), "existing output changed");
    TU_CHECK(conv_no_temp_files(), "temporary file left behind");
}

// ----------------------------------------------------------------------------------------
// The program, and the NumPy/h5py fixtures
// ----------------------------------------------------------------------------------------


static void test_program(const char *exe) {
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' --help", exe);
    TU_CHECK(conv_run(cmd, out, sizeof out) == 0 && strstr(out, "pcn_convert npz --input F.npz") &&
                 strstr(out, "pcn_convert h5 --input F.h5"), "--help: %s", out);
    snprintf(cmd, sizeof cmd, "'%s' npz --input '%s' -o '%s'", exe, conv_path("damaged.npz"),
             bad_out());
    int rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && !strncmp(out, "pcn_convert: ", 13) && strstr(out, "damaged.npz: ") &&
                 strchr(out, '\n') == out + strlen(out) - 1 && access(bad_out(), F_OK) != 0,
             "npz refusal: exit %d, '%s'", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' h5 -o '%s'", exe, bad_out());
    rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "h5 needs --input F.h5"), "h5 without --input: %d '%s'", rc,
             out);
    snprintf(cmd, sizeof cmd, "'%s' npz --train-x a.npy -o '%s'", exe, bad_out());
    rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "all four"), "npz with one file: %d '%s'", rc, out);
    snprintf(cmd, sizeof cmd, "'%s' idx --dir x --input y -o '%s'", exe, bad_out());
    rc = conv_run(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "takes no --input"), "idx --input: %d '%s'", rc, out);
}

// Converts with f and reads back x (float) and y of split into *x, *y (n rows in *n).
static void fixture_read(const char *out, const char *split, float **x, int32_t **y,
                         hsize_t *n) {
    char name[32];
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    TU_CHECK(f >= 0, "open %s", out);
    snprintf(name, sizeof name, "/%s/x", split);
    *x = read_all(f, name, H5T_NATIVE_FLOAT, 4, n);
    snprintf(name, sizeof name, "/%s/y", split);
    *y = read_all(f, name, H5T_NATIVE_INT32, 4, n);
    if (f >= 0) H5Fclose(f);
}

static void test_fixtures(const char *dir) {
    char in[5][600], err[1024];
    const char *names[5] = {"plain.npz", "plain.h5", "compressed.npz", "npy/x_train.npy",
                            "npy/y_train.npy"};
    for (int i = 0; i < 5; i++) snprintf(in[i], sizeof in[i], "%s/%s", dir, names[i]);
    const char *out[4] = {conv_path("fx0.h5"), conv_path("fx1.h5"), conv_path("fx2.h5"),
                          conv_path("fx3.h5")};
    char xte[600], yte[600];
    snprintf(xte, sizeof xte, "%s/npy/x_test.npy", dir);
    snprintf(yte, sizeof yte, "%s/npy/y_test.npy", dir);
    pcn_io_array_names h5n = {"/features/train", "/labels/train", "/features/test", "/labels/test"};
    pcn_io_array_names cn = {"images_train", "labels_train", "images_test", "labels_test"};
    pcn_io_array_names npy = {in[3], in[4], xte, yte};
    pcn_status st[4] = {pcn_io_convert_npz(in[0], NULL, out[0], NULL),
                        pcn_io_convert_h5(in[1], &h5n, out[1], NULL),
                        pcn_io_convert_npz(in[2], &cn, out[2], NULL),
                        pcn_io_convert_npz(NULL, &npy, out[3], NULL)};
    for (int i = 0; i < 4; i++)
        TU_CHECK(conv_rc(st[i], err, sizeof err) == 0, "fixture %d: %s", i, err);
    for (int s = 0; s < 2; s++) {
        float *x[4];
        int32_t *y[4];
        hsize_t n[4];
        for (int i = 0; i < 4; i++) fixture_read(out[i], s ? "test" : "train", &x[i], &y[i], &n[i]);
        hsize_t rows = s ? 64 : 256;
        TU_CHECK(n[0] == rows && n[1] == rows && n[2] == rows && n[3] == rows, "fixture rows");
        int bad = 0;
        for (hsize_t k = 0; n[0] == rows && n[1] == rows && n[3] == rows && k < rows * 32; k++)
            bad += x[0][k] != x[1][k] || x[3][k] != nearbyintf(x[0][k] * 1000.0f);
        for (hsize_t k = 0; n[0] == rows && n[2] == rows && k < rows; k++)
            bad += y[0][k] != y[1][k] || y[0][k] != y[2][k] || y[0][k] != y[3][k];
        TU_CHECK(bad == 0, "fixtures disagree in %d values (split %d)", bad, s);
        for (int i = 0; i < 4; i++) free(x[i]), free(y[i]);
    }
}

int main(int argc, char **argv) {
    if (!conv_setup("pcn_convert_arrays")) return 1;
    test_npz_good();
    test_npy_good();
    test_h5_good();
    bad_headers();
    bad_shapes();
    bad_values();
    bad_archives();
    bad_npy_files();
    bad_h5();
    if (argc > 1) test_program(argv[1]);
    if (argc > 2) test_fixtures(argv[2]);
    return conv_finish("test_convert_arrays");
}
