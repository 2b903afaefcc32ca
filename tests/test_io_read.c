/*
 * test_io_read.c — the parallel HDF5 data set reader (run under mpirun -np P).
 *
 * Rank 0 writes small data sets with serial HDF5: a uint8 classification set with /norm
 * (fixed-length strings, chunked train x, uint8 train labels, int64 test labels) and a
 * float32 regression set (variable-length strings, x@scale 0.5, no /norm). Every rank knows
 * the formulas, so it computes the expected rows itself. Proves, in memory and stream mode:
 * - every value read equals the serial expectation exactly, x = ((float)u * (float)scale -
 *   mean) / std in float, for the trainer's pattern (the rank's shard of shuffled batches,
 *   zero-row shards included), out-of-order lists with runs, single rows, duplicates, every
 *   other row (more than 32 runs: the merged selection), a whole split in reverse, and an
 *   empty list on some ranks while others read;
 * - out-of-range rows fail on the ranks that asked for them only, and nothing hangs;
 * - pcn_dist_train / pcn_dist_test on the source give bitwise the weights and scores of the
 *   same rows served from arrays (the trainer's collective read pattern works);
 * - bad files (missing, not HDF5, truncated, missing /train/x, x rank 3, x int16, x and y of
 *   different lengths, label == num_classes, NaN in x, format_version 2, wrong pcn_format,
 *   /norm of the wrong shape, a regression set with labels, a bad split name) make open return
 *   NULL on every rank with the same message naming the file and the problem; value checks
 *   (labels, NaN) fail at open in memory mode, and in stream mode a bad label fails the read.
 * At the end no HDF5 object is left open. Failures are summed over the ranks so every rank
 * exits with the same code.
 */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pcn_io.h"
#include "testutil.h"

static int rank_, size_;
static char dir_[256];

// ----------------------------------------------------------------------------------------
// The data sets, as formulas every rank can evaluate
// ----------------------------------------------------------------------------------------

typedef struct {
    bool regression;
    int64_t n[2];            // rows of train, test
    int D, K, classes;       // K: target width (regression); classes (classification)
    // perturbations for the bad-file cases (zero = none)
    int format_version;      // 0 means 1
    const char *pcn_format;  // NULL means "pcn-dataset"
    bool omit_pcn_format, omit_train_x, x_rank3, x_int16, reg_labels;
    int y_len_delta;         // train y has n + delta rows
    int64_t bad_label_row;   // >= 0: train label there = classes
    int64_t nan_row;         // >= 0: train x[row, 1] = NaN (float x only)
    int norm_len_delta;      // /norm/mean has D + delta values
} spec;

static const double CLS_SCALE = 1.0 / 255.0;
static const double REG_SCALE = 0.5;

static spec cls_spec(void) {
    return (spec){.n = {150, 11}, .D = 6, .classes = 4, .bad_label_row = -1, .nan_row = -1};
}
static spec reg_spec(void) {
    return (spec){.regression = true, .n = {29, 9}, .D = 3, .K = 2, .bad_label_row = -1,
                  .nan_row = -1};
}

static uint8_t xu(int split, int64_t i, int j) {
    return (uint8_t)((i * 37 + j * 11 + split * 101 + 5) % 256);
}
static float xf(int split, int64_t i, int j) {
    return (float)((i % 7) - 3) * 0.5f + (float)j * 0.25f + (float)split * 0.125f;
}
static int32_t label_of(int split, int64_t i, int classes) { return (int32_t)((i * 3 + split + 1) % classes); }
static float target_of(int split, int64_t i, int k) { return (float)i * 0.125f - (float)k + (float)split; }
static float mean_of(int j) { return 0.1f + 0.05f * (float)j; }
static float std_of(int j) { return 0.2f + 0.1f * (float)j; }

// The row the reader must hand out.
static void expect_row(const spec *s, int split, int64_t i, float *x, int32_t *label, float *t) {
    for (int j = 0; j < s->D; j++) {
        if (s->regression) {
            x[j] = xf(split, i, j) * (float)REG_SCALE;
        } else {
            float v = (float)xu(split, i, j) * (float)CLS_SCALE;
            x[j] = (v - mean_of(j)) / std_of(j);
        }
    }
    if (s->regression)
        for (int k = 0; k < s->K; k++) t[k] = target_of(split, i, k);
    else
        *label = label_of(split, i, s->classes);
}

// ----------------------------------------------------------------------------------------
// Writing (rank 0, serial HDF5)
// ----------------------------------------------------------------------------------------

#define H5OK(call) TU_CHECK((call) >= 0, "HDF5 call failed while writing a test file")

static void put_str(hid_t loc, const char *name, const char *val, bool vlen) {
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5OK(H5Tset_size(t, vlen ? H5T_VARIABLE : strlen(val) + 1));
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5OK(vlen ? H5Awrite(a, t, &val) : H5Awrite(a, t, val));
    H5Aclose(a), H5Sclose(sp), H5Tclose(t);
}

static void put_num(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5OK(H5Awrite(a, mtype, v));
    H5Aclose(a), H5Sclose(sp);
}

// Writes a dataset; chunk (rows per chunk) > 0 makes it chunked. Returns it open.
static hid_t put_dset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                      const hsize_t *dims, hsize_t chunk, const void *buf) {
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk > 0 && dims[0] > 0) {
        hsize_t c[3] = {chunk, rank > 1 ? dims[1] : 1, rank > 2 ? dims[2] : 1};
        H5OK(H5Pset_chunk(dcpl, rank, c));
    }
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    TU_CHECK(d >= 0, "cannot create %s", name);
    H5OK(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
    H5Pclose(dcpl), H5Sclose(sp);
    return d;
}

static void write_split(hid_t file, const spec *s, int split) {
    const char *gname = split ? "test" : "train";
    const int64_t n = s->n[split];
    const int D = s->D;
    hid_t g = H5Gcreate2(file, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    // x
    float *xfv = malloc((size_t)(n * D + 1) * sizeof(float));
    uint8_t *xuv = malloc((size_t)(n * D + 1));
    short *xs = malloc((size_t)(n * D + 1) * sizeof(short));
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            xfv[i * D + j] = xf(split, i, j), xuv[i * D + j] = xu(split, i, j);
            xs[i * D + j] = xu(split, i, j);
        }
    if (split == 0 && s->nan_row >= 0) xfv[s->nan_row * D + 1] = NAN;
    if (!(split == 0 && s->omit_train_x)) {
        hsize_t dims[3] = {(hsize_t)n, (hsize_t)D, 0}, chunk = split == 0 ? 8 : 0;
        hid_t x;
        if (split == 0 && s->x_rank3) {
            hsize_t d3[3] = {(hsize_t)n, 2, (hsize_t)D / 2};
            x = put_dset(g, "x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, d3, chunk, xuv);
        } else if (split == 0 && s->x_int16) {
            x = put_dset(g, "x", H5T_STD_I16LE, H5T_NATIVE_SHORT, 2, dims, chunk, xs);
        } else if (s->regression) {
            x = put_dset(g, "x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, chunk, xfv);
        } else {
            x = put_dset(g, "x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, dims, chunk, xuv);
        }
        double scale = s->regression ? REG_SCALE : CLS_SCALE;
        put_num(x, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &scale);
        H5Dclose(x);
    }
    // y
    int64_t ny = n + (split == 0 ? s->y_len_delta : 0);
    if (s->regression && !s->reg_labels) {
        float *t = malloc((size_t)(ny * s->K + 1) * sizeof(float));
        for (int64_t i = 0; i < ny; i++)
            for (int k = 0; k < s->K; k++) t[i * s->K + k] = target_of(split, i, k);
        hsize_t dims[2] = {(hsize_t)ny, (hsize_t)s->K};
        H5Dclose(put_dset(g, "y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, split ? 0 : 4, t));
        free(t);
    } else {
        int64_t *y = malloc((size_t)(ny + 1) * sizeof(int64_t));
        int classes = s->classes ? s->classes : 3;
        for (int64_t i = 0; i < ny; i++) y[i] = label_of(split, i, classes);
        if (split == 0 && s->bad_label_row >= 0) y[s->bad_label_row] = s->classes;
        hsize_t dims[1] = {(hsize_t)ny};
        // train labels as uint8 on disk, test labels as int64: the reader converts any type
        H5Dclose(put_dset(g, "y", split ? H5T_STD_I64LE : H5T_STD_U8LE, H5T_NATIVE_INT64, 1, dims,
                          0, y));
        free(y);
    }
    free(xfv), free(xuv), free(xs);
    H5Gclose(g);
}

static void write_file(const char *path, const spec *s) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    TU_CHECK(f >= 0, "cannot create %s", path);
    bool vlen = s->regression; // one file with each string kind
    if (!s->omit_pcn_format) put_str(f, "pcn_format", s->pcn_format ? s->pcn_format : "pcn-dataset", vlen);
    int version = s->format_version ? s->format_version : 1;
    put_num(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version);
    put_str(f, "task", s->regression ? "regression" : "classification", vlen);
    put_num(f, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT, &s->classes);
    write_split(f, s, 0);
    write_split(f, s, 1);
    if (!s->regression) {
        hid_t g = H5Gcreate2(f, "norm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        float mean[64], sd[64];
        for (int j = 0; j < 64; j++) mean[j] = mean_of(j), sd[j] = std_of(j);
        hsize_t dm = (hsize_t)(s->D + s->norm_len_delta), ds = (hsize_t)s->D;
        H5Dclose(put_dset(g, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dm, 0, mean));
        H5Dclose(put_dset(g, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &ds, 0, sd));
        H5Gclose(g);
    }
    H5Fclose(f);
}

static void path_of(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", dir_, name); }

// ----------------------------------------------------------------------------------------
// Reading and comparing
// ----------------------------------------------------------------------------------------

// Reads rows through the source and compares every value with the expectation. Every rank
// calls it (stream reads are collective).
static void check_read(pcn_dataset *ds, const spec *s, int split, const int64_t *rows, int count,
                       const char *label) {
    pcn_data src = pcn_io_dataset_source(ds);
    const int D = s->D, K = s->K > 0 ? s->K : 1;
    size_t c = count > 0 ? (size_t)count : 1;
    float *x = malloc(c * D * sizeof(float)), *ex = malloc(c * D * sizeof(float));
    float *t = malloc(c * K * sizeof(float)), *et = malloc(c * K * sizeof(float));
    int32_t *l = malloc(c * sizeof(int32_t)), *el = malloc(c * sizeof(int32_t));
    for (size_t i = 0; i < c * D; i++) x[i] = NAN;
    for (size_t i = 0; i < c * K; i++) t[i] = NAN;
    for (size_t i = 0; i < c; i++) l[i] = -777;
    pcn_status st = src.read(src.ctx, rows, count, x, l, t);
    TU_CHECK(st == PCN_OK, "%s: read of %d rows: %s", label, count, pcn_last_error());
    for (int i = 0; i < count; i++) expect_row(s, split, rows[i], ex + (size_t)i * D, &el[i], et + (size_t)i * K);
    if (st == PCN_OK && count > 0) {
        char name[320];
        snprintf(name, sizeof name, "[rank %d] %s x", rank_, label);
        tu_close_f(name, x, ex, (size_t)count * D, 0.0, 0.0);
        if (s->regression) {
            snprintf(name, sizeof name, "[rank %d] %s targets", rank_, label);
            tu_close_f(name, t, et, (size_t)count * s->K, 0.0, 0.0);
        } else {
            for (int i = 0; i < count; i++)
                TU_CHECK(l[i] == el[i], "[rank %d] %s: label of row %lld is %d, want %d", rank_,
                         label, (long long)rows[i], l[i], el[i]);
        }
    }
    free(x), free(ex), free(t), free(et), free(l), free(el);
}

// A permutation of 0..n-1 from a fixed LCG (the same on every rank).
static void shuffle(int64_t *perm, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        seed = seed * 1664525u + 1013904223u;
        int64_t j = (int64_t)((seed >> 8) % (uint32_t)(i + 1));
        int64_t tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
}

// The trainer's pattern: this rank's shard of every shuffled global batch of 7 (perm).
static void read_batches(pcn_comm *c, pcn_dataset *ds, const spec *s, int split,
                         const char *tag, const int64_t *perm) {
    const int64_t n = s->n[split];
    char label[256];
    for (int64_t pos = 0, b = 0; pos < n; pos += 7, b++) {
        int64_t gb = n - pos < 7 ? n - pos : 7, lo, cnt;
        pcn_dist_shard(gb, pcn_dist_rank(c), pcn_dist_size(c), &lo, &cnt);
        snprintf(label, sizeof label, "%s shuffled batch %lld", tag, (long long)b);
        check_read(ds, s, split, perm + pos + lo, (int)cnt, label);
    }
}

// The trainer's pattern with prefetch hints (stream mode serves every batch from the
// background read), then a hint that misses.
static void read_prefetched(pcn_comm *c, pcn_dataset *ds, const spec *s, int split,
                            const char *tag, const int64_t *perm) {
    const int64_t n = s->n[split];
    char label[256];
    // The trainer's pattern again, with the prefetch hint before each read as the trainer
    // gives it: stream mode serves every batch from the background read; values unchanged.
    pcn_data hinted = pcn_io_dataset_source(ds);
    int64_t hits0 = pcn_io_dataset_prefetch_hits(ds), batches = 0;
    for (int64_t pos = 0; pos < n; pos += 7, batches++) {
        int64_t gb = n - pos < 7 ? n - pos : 7, lo, cnt;
        pcn_dist_shard(gb, pcn_dist_rank(c), pcn_dist_size(c), &lo, &cnt);
        hinted.prefetch(hinted.ctx, perm + pos + lo, (int)cnt);
        snprintf(label, sizeof label, "%s prefetched batch %lld", tag, (long long)batches);
        check_read(ds, s, split, perm + pos + lo, (int)cnt, label);
    }
    int64_t hits = pcn_io_dataset_prefetch_hits(ds) - hits0;
    bool stream = strstr(tag, "stream") != NULL;
    TU_CHECK(hits == (stream ? batches : 0), "%s: %lld of %lld reads served by the prefetch",
             tag, (long long)hits, (long long)batches);
    // A hint for other rows than the read asks for: a miss, read collectively, still right.
    int64_t other = (3 * rank_ + 1) % n, wanted = (3 * rank_ + 2) % n;
    hinted.prefetch(hinted.ctx, &other, 1);
    snprintf(label, sizeof label, "%s prefetch miss", tag);
    check_read(ds, s, split, &wanted, 1, label);
}

// Short irregular lists: runs out of order, a single row, duplicates.
static void read_lists(pcn_dataset *ds, const spec *s, int split, const char *tag) {
    const int64_t n = s->n[split];
    char label[256];
    // Out of order, with runs, shifted per rank (a shift mod n keeps rows distinct).
    int64_t mixed[] = {n - 1, 3, 4, 5, 0, 10, 9, 8, 7, 2, 1};
    for (size_t i = 0; i < sizeof mixed / sizeof mixed[0]; i++)
        mixed[i] = (mixed[i] + 5 * rank_) % n;
    snprintf(label, sizeof label, "%s runs out of order", tag);
    check_read(ds, s, split, mixed, (int)(sizeof mixed / sizeof mixed[0]), label);
    int64_t one = (7 * rank_) % n;
    snprintf(label, sizeof label, "%s single row", tag);
    check_read(ds, s, split, &one, 1, label);
    int64_t dup[] = {5 % n, 5 % n, 6 % n, 4 % n};
    snprintf(label, sizeof label, "%s duplicates", tag);
    check_read(ds, s, split, dup, 4, label);
}

// Long descending lists, written into perm: every other row, and the whole split reversed.
static void read_descending(pcn_dataset *ds, const spec *s, int split, const char *tag,
                            int64_t *perm) {
    const int64_t n = s->n[split];
    char label[256];
    // Every other row, descending, from an offset per rank: more than 32 runs on the larger
    // split (the reader merges halves of the run list there).
    int cnt = 0;
    for (int64_t r = n - 1 - rank_ % 2; r >= 0; r -= 2) perm[cnt++] = r;
    snprintf(label, sizeof label, "%s every other row", tag);
    check_read(ds, s, split, perm, cnt, label);
    // Even ranks read the whole split backwards, odd ranks nothing.
    for (int64_t i = 0; i < n; i++) perm[i] = n - 1 - i;
    snprintf(label, sizeof label, "%s all reversed / empty", tag);
    check_read(ds, s, split, perm, rank_ % 2 ? 0 : (int)n, label);
}

// Out of range: rank 0 asks for row n, the others for valid rows; only rank 0 fails.
static void read_out_of_range(pcn_dataset *ds, int64_t n, const char *tag) {
    pcn_data src = pcn_io_dataset_source(ds);
    float x[64];
    int32_t l[4];
    float t[8];
    int64_t bad = rank_ == 0 ? n : 0;
    pcn_status st = src.read(src.ctx, &bad, 1, x, l, t);
    if (rank_ == 0)
        TU_CHECK(st == PCN_EINVAL && strstr(pcn_last_error(), "outside"),
                 "%s: row %lld: status %d, '%s'", tag, (long long)n, (int)st, pcn_last_error());
    else
        TU_CHECK(st == PCN_OK, "%s: row 0 on rank %d: %s", tag, rank_, pcn_last_error());
}

static void read_patterns(pcn_comm *c, pcn_dataset *ds, const spec *s, int split, const char *tag) {
    const int64_t n = s->n[split];
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    shuffle(perm, n, 7u + (uint32_t)split);
    read_batches(c, ds, s, split, tag, perm);
    read_prefetched(c, ds, s, split, tag, perm);
    read_lists(ds, s, split, tag);
    read_descending(ds, s, split, tag, perm);
    read_out_of_range(ds, n, tag);
    free(perm);
}

static void test_good(pcn_comm *c, const char *name, const spec *s) {
    char path[512];
    path_of(path, sizeof path, name);
    for (int mode = 0; mode < 2; mode++)
        for (int split = 0; split < 2; split++) {
            const char *sp = split ? "test" : "train", *mname = mode ? "stream" : "memory";
            char tag[96];
            snprintf(tag, sizeof tag, "%.40s %s/%s", name, mname, sp);
            pcn_dataset *ds = pcn_io_dataset_open(c, path, sp, (pcn_io_mode)mode);
            TU_CHECK(ds != NULL, "%s: open: %s", tag, pcn_last_error());
            if (!ds) continue;
            pcn_data src = pcn_io_dataset_source(ds);
            TU_CHECK(src.n == s->n[split] && src.x_dim == s->D && src.y_dim == s->K,
                     "%s: source n %lld x_dim %d y_dim %d", tag, (long long)src.n, src.x_dim, src.y_dim);
            TU_CHECK(pcn_io_dataset_rows(ds) == s->n[split] && pcn_io_dataset_features(ds) == s->D,
                     "%s: rows/features", tag);
            TU_CHECK(pcn_io_dataset_num_classes(ds) == s->classes, "%s: num_classes %d", tag,
                     pcn_io_dataset_num_classes(ds));
            TU_CHECK(pcn_io_dataset_target_width(ds) == s->K, "%s: target width", tag);
            TU_CHECK(pcn_io_dataset_task(ds) ==
                         (s->regression ? PCN_TASK_REGRESSION : PCN_TASK_CLASSIFICATION),
                     "%s: task", tag);
            read_patterns(c, ds, s, split, tag);
            pcn_io_dataset_close(ds);
        }
}

// Training and testing on the file gives bitwise what the same rows from arrays give.
static void test_train(pcn_comm *c) {
    spec s = cls_spec();
    char path[512];
    path_of(path, sizeof path, "cls.h5");
    const int64_t n = s.n[0];
    float *x = malloc((size_t)n * s.D * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) expect_row(&s, 0, i, x + i * s.D, &y[i], NULL);
    pcn_arrays a = {x, y, NULL, n, s.D, 0};
    pcn_data ref_src = pcn_data_from_arrays(&a);
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 4, p.t_infer_test = 4, p.num_epochs = 2, p.batch_size = 5, p.seed = 3;
    int dims[] = {s.D, 5};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 2, mp.output_dim = s.classes, mp.seed = 11;
    pcn_model *ref = pcn_model_init(&mp);
    pcn_test_result rr, rf;
    TU_CHECK(pcn_dist_train(ref, &ref_src, &p, NULL, c) == PCN_OK, "arrays train: %s", pcn_last_error());
    TU_CHECK(pcn_dist_test(ref, &ref_src, &p, &rr, NULL, c) == PCN_OK, "arrays test: %s", pcn_last_error());
    for (int mode = 0; mode < 2; mode++) {
        pcn_dataset *ds = pcn_io_dataset_open(c, path, "train", (pcn_io_mode)mode);
        TU_CHECK(ds != NULL, "train open: %s", pcn_last_error());
        if (!ds) continue;
        pcn_data src = pcn_io_dataset_source(ds);
        pcn_model *m = pcn_model_init(&mp);
        TU_CHECK(pcn_dist_train(m, &src, &p, NULL, c) == PCN_OK, "file train (mode %d): %s", mode,
                 pcn_last_error());
        TU_CHECK(pcn_dist_test(m, &src, &p, &rf, NULL, c) == PCN_OK, "file test (mode %d): %s", mode,
                 pcn_last_error());
        TU_CHECK(memcmp(pcn_model_weights(m), pcn_model_weights(ref),
                        pcn_model_num_weights(ref) * sizeof(float)) == 0,
                 "mode %d: weights differ from training on arrays", mode);
        TU_CHECK(rf.accuracy == rr.accuracy && rf.energy == rr.energy,
                 "mode %d: test accuracy %g energy %g vs arrays %g %g", mode, rf.accuracy, rf.energy,
                 rr.accuracy, rr.energy);
        pcn_model_free(m);
        pcn_io_dataset_close(ds);
    }
    pcn_model_free(ref);
    free(x), free(y);
}

// ----------------------------------------------------------------------------------------
// Bad files
// ----------------------------------------------------------------------------------------

// Open must return NULL on every rank, with the same message, starting with the path and
// containing each of words.
static void expect_fail(pcn_comm *c, const char *name, const char *split, pcn_io_mode mode,
                        const char *w1, const char *w2) {
    char path[512];
    path_of(path, sizeof path, name);
    pcn_dataset *ds = pcn_io_dataset_open(c, path, split, mode);
    const char *mname = mode ? "stream" : "memory";
    TU_CHECK(ds == NULL, "[rank %d] %s (%s): open succeeded", rank_, name, mname);
    pcn_io_dataset_close(ds);
    char msg[1024], first[1024];
    snprintf(msg, sizeof msg, "%s", pcn_last_error());
    memcpy(first, msg, sizeof msg);
    MPI_Bcast(first, sizeof first, MPI_CHAR, 0, pcn_dist_mpi(c));
    TU_CHECK(strcmp(msg, first) == 0, "[rank %d] %s (%s): message '%s' differs from rank 0's '%s'",
             rank_, name, mname, msg, first);
    TU_CHECK(strncmp(msg, path, strlen(path)) == 0, "%s (%s): message does not start with the path: '%s'",
             name, mname, msg);
    TU_CHECK(strstr(msg, w1) != NULL, "%s (%s): message lacks '%s': '%s'", name, mname, w1, msg);
    TU_CHECK(!w2 || strstr(msg, w2) != NULL, "%s (%s): message lacks '%s': '%s'", name, mname, w2, msg);
    if (rank_ == 0 && mode == PCN_IO_MEMORY) printf("  %-14s -> %s\n", name, msg);
}

static void write_bad_files(void) {
    char path[512];
    spec s;
#define BADFILE(fname, ...) (s = cls_spec(), __VA_ARGS__, path_of(path, sizeof path, fname), write_file(path, &s))
    BADFILE("no_x.h5", s.omit_train_x = true);
    BADFILE("rank3.h5", s.x_rank3 = true);
    BADFILE("int16.h5", s.x_int16 = true);
    BADFILE("short_y.h5", s.y_len_delta = -1);
    BADFILE("label.h5", s.bad_label_row = 13);
    BADFILE("version2.h5", s.format_version = 2);
    BADFILE("format.h5", s.pcn_format = "other");
    BADFILE("noformat.h5", s.omit_pcn_format = true);
    BADFILE("norm.h5", s.norm_len_delta = 1);
#undef BADFILE
    s = reg_spec(), s.nan_row = 5;
    path_of(path, sizeof path, "nan.h5"), write_file(path, &s);
    s = reg_spec(), s.reg_labels = true;
    path_of(path, sizeof path, "reglabels.h5"), write_file(path, &s);
    // not HDF5; and the first 1000 bytes of a valid file
    path_of(path, sizeof path, "text.h5");
    FILE *f = fopen(path, "w");
    fputs("this is a text file, not HDF5\n", f);
    fclose(f);
    char src[512];
    path_of(src, sizeof src, "cls.h5"), path_of(path, sizeof path, "truncated.h5");
    FILE *in = fopen(src, "rb"), *out = fopen(path, "wb");
    char buf[1000];
    size_t got = fread(buf, 1, sizeof buf, in);
    TU_CHECK(got == sizeof buf, "cls.h5 is only %zu bytes", got);
    fwrite(buf, 1, got, out);
    fclose(in), fclose(out);
}

static void test_bad(pcn_comm *c) {
    for (int m = 0; m < 2; m++) {
        pcn_io_mode mode = (pcn_io_mode)m;
        expect_fail(c, "missing.h5", "train", mode, "missing.h5: no such file", NULL);
        expect_fail(c, "text.h5", "train", mode, "not an HDF5 file", NULL);
        expect_fail(c, "truncated.h5", "train", mode, "truncated", "eof");
        expect_fail(c, "no_x.h5", "train", mode, "/train/x is missing", NULL);
        expect_fail(c, "rank3.h5", "train", mode, "/train/x has rank 3", "[150, 2, 3]");
        expect_fail(c, "int16.h5", "train", mode, "dtype int16", "expected uint8 or float32");
        expect_fail(c, "short_y.h5", "train", mode, "/train/x has 150 rows but /train/y has 149", NULL);
        expect_fail(c, "version2.h5", "train", mode, "format_version 2", "re-convert with this version");
        expect_fail(c, "format.h5", "train", mode, "pcn_format is \"other\"", NULL);
        expect_fail(c, "noformat.h5", "train", mode, "no pcn_format attribute", NULL);
        expect_fail(c, "norm.h5", "train", mode, "/norm/mean has shape [7]", "[D] = [6]");
        expect_fail(c, "reglabels.h5", "train", mode, "the task is regression", NULL);
        expect_fail(c, "cls.h5", "valid", mode, "split must be", NULL);
    }
    // Value checks: at open in memory mode ...
    expect_fail(c, "label.h5", "train", PCN_IO_MEMORY, "label 4 at row 13", "outside [0, 4)");
    expect_fail(c, "nan.h5", "train", PCN_IO_MEMORY, "non-finite", "row 5, feature 1");
    // ... per batch in stream mode: the row with the bad label fails the read on its rank.
    char path[512];
    path_of(path, sizeof path, "label.h5");
    pcn_dataset *ds = pcn_io_dataset_open(c, path, "train", PCN_IO_STREAM);
    TU_CHECK(ds != NULL, "label.h5 stream open: %s", pcn_last_error());
    if (ds) {
        pcn_data src = pcn_io_dataset_source(ds);
        int64_t rows[2] = {rank_ == 0 ? 13 : 12, 20};
        float x[12];
        int32_t l[2];
        pcn_status st = src.read(src.ctx, rows, 2, x, l, NULL);
        if (rank_ == 0)
            TU_CHECK(st == PCN_EDATA && strstr(pcn_last_error(), "label 4 at row 13"),
                     "stream bad label: status %d '%s'", (int)st, pcn_last_error());
        else
            TU_CHECK(st == PCN_OK, "stream good rows: %s", pcn_last_error());
        pcn_io_dataset_close(ds);
    }
}

// ----------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    rank_ = pcn_dist_rank(c), size_ = pcn_dist_size(c);
    if (rank_ == 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir_, sizeof dir_, "%s/pcn_io_read_XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir_)) dir_[0] = '\0';
    }
    MPI_Bcast(dir_, sizeof dir_, MPI_CHAR, 0, pcn_dist_mpi(c));
    if (!dir_[0]) {
        if (rank_ == 0) fprintf(stderr, "test_io_read: cannot make a temporary directory\n");
        MPI_Finalize();
        return 1;
    }
    spec cls = cls_spec(), reg = reg_spec();
    char path[512];
    if (rank_ == 0) {
        path_of(path, sizeof path, "cls.h5"), write_file(path, &cls);
        path_of(path, sizeof path, "reg.h5"), write_file(path, &reg);
        write_bad_files();
    }
    MPI_Barrier(pcn_dist_mpi(c));

    test_good(c, "cls.h5", &cls);
    test_good(c, "reg.h5", &reg);
    test_train(c);
    if (rank_ == 0) printf("bad files (memory mode messages):\n");
    test_bad(c);

    // Every HDF5 object the reader opened is closed again.
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    TU_CHECK(open_ids == 0, "[rank %d] %zd HDF5 objects left open", rank_, open_ids);

    int local = tu_failures, total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, pcn_dist_mpi(c));
    MPI_Barrier(pcn_dist_mpi(c));
    if (rank_ == 0) {
        const char *names[] = {"cls.h5", "reg.h5", "no_x.h5", "rank3.h5", "int16.h5",
                               "short_y.h5", "label.h5", "version2.h5", "format.h5",
                               "noformat.h5", "norm.h5", "nan.h5", "reglabels.h5", "text.h5",
                               "truncated.h5"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            path_of(path, sizeof path, names[i]), unlink(path);
        rmdir(dir_);
        printf("test_io_read with %d ranks: %s (%d failures)\n", size_,
               total ? "FAILED" : "all checks passed", total);
    }
    pcn_dist_free(c);
    MPI_Finalize();
    return total ? 1 : 0;
}
