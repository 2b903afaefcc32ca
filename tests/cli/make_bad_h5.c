/*
 * make_bad_h5.c — breaks one thing in a copy of a valid pcn_dist HDF5 file, in place, so
 * that tests/cli/bad_input.sh can show pcn_dist refusing it (not installed).
 *
 *   make_bad_h5 VARIANT FILE.h5
 *
 * Data set variants (FILE is a pcn_convert data set: /train/x uint8 [N, D], /train/y int32):
 *   drop-train-x   /train/x removed (everything else kept)
 *   x-rank3        /train/x replaced by uint8 [N, 1, D]
 *   x-int16        /train/x replaced by int16 [N, D] (same values, same scale attribute)
 *   y-short        /train/y replaced by int32 [N - 1] (x and y of different lengths)
 *   label-range    /train/y row 5 (or the last row) set to num_classes
 *   x-nan          /train/x replaced by float32 [N, D] (x * scale, no scale attribute) with
 *                  a NaN at row 3 (or the last row), feature 2 (or the last)
 *   label-int64    /train/y replaced by int64 [N], row 5 (or the last row) set to 2^33 + 1
 * Checkpoint variants (FILE is a pcn_dist checkpoint; a replaced dataset has no checksum
 * attribute, like a file written by another tool):
 *   version=V      the root attribute format_version rewritten to V
 *   w0-transpose   /weights/W0 replaced by its transpose (float32 [in, out])
 *   w0-int32       /weights/W0 replaced by int32 of the same shape (values truncated)
 *   w1-nan         /weights/W1 replaced by the same values with a NaN at [2, 3] (or the
 *                  last row / column)
 *   wout-inf       /weights/Wout replaced by the same values with +Inf at [1, 0]
 *   act=A,B,...    the attribute activations rewritten to these names (one per layer) and
 *                  activation to their common name, or "mixed"
 *   legacy         the attribute activations and every dataset's checksum removed (the
 *                  layout of version 1 files written before they existed)
 *
 * Only what the variant names changes; the rest of the file stays valid. Serial: needs no
 * MPI_Init (the file is opened with the default driver). Exit 0 on success, 1 with a line
 * on stderr otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

static int die(const char *what) {
    fprintf(stderr, "make_bad_h5: %s\n", what);
    return 1;
}

// Reads /train/x (uint8 [N, D]) and its scale attribute.
static int read_x(hid_t f, hsize_t dims[2], uint8_t **x, double *scale) {
    hid_t d = H5Dopen2(f, "/train/x", H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    int ok = H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2;
    H5Sclose(sp);
    *x = ok ? malloc(dims[0] * dims[1] + 1) : NULL;
    if (*x && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *x) < 0) ok = 0;
    *scale = 1.0;
    if (ok && H5Aexists(d, "scale") > 0) {
        hid_t a = H5Aopen(d, "scale", H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, scale) < 0) ok = 0;
        if (a >= 0) H5Aclose(a);
    }
    H5Dclose(d);
    return ok && *x ? 0 : -1;
}

// Replaces the dataset at name by one of file type ftype, shape (rank, dims), written from
// data (memory type mtype); with scale >= 0 also a double attribute "scale".
static int replace(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data, double scale) {
    if (H5Lexists(f, name, H5P_DEFAULT) > 0 && H5Ldelete(f, name, H5P_DEFAULT) < 0) return -1;
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (st >= 0 && scale >= 0) {
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(d, "scale", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
        st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &scale);
        if (a >= 0) H5Aclose(a);
        H5Sclose(as);
    }
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return st < 0 ? -1 : 0;
}

static int read_int_attr(hid_t loc, const char *name, int *v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Aread(a, H5T_NATIVE_INT, v);
    if (a >= 0) H5Aclose(a);
    return st < 0 ? -1 : 0;
}

static int write_int_attr(hid_t loc, const char *name, int v) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT, &v);
    if (a >= 0) H5Aclose(a);
    return st < 0 ? -1 : 0;
}

// ---- checkpoint variants ----------------------------------------------------------------

// Reads a float32 2-D dataset (malloc'd into *w).
static int read_f32(hid_t f, const char *name, hsize_t dims[2], float **w) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    int ok = H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2;
    H5Sclose(sp);
    *w = ok ? malloc(dims[0] * dims[1] * sizeof **w + 1) : NULL;
    if (*w && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *w) < 0) ok = 0;
    H5Dclose(d);
    return ok && *w ? 0 : -1;
}

static int write_str_attr(hid_t loc, const char *name, int n, size_t len, const char *v) {
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0) return -1;
    hsize_t dim = (hsize_t)n;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len);
    hid_t sp = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return st < 0 ? -1 : 0;
}

// act=A,B,...: names of 16 bytes each (the checkpoint's PCN_CKPT_ACT_LEN).
static int set_activations(hid_t f, const char *list) {
    char names[64][16] = {{0}}, common[16] = "";
    int n = 0;
    for (const char *p = list; *p && n < 64; n++) {
        size_t len = strcspn(p, ",");
        snprintf(names[n], sizeof names[n], "%.*s", (int)len, p);
        if (n == 0) snprintf(common, sizeof common, "%s", names[0]);
        else if (strcmp(common, names[n]) != 0) snprintf(common, sizeof common, "mixed");
        p += len + (p[len] == ',');
    }
    if (write_str_attr(f, "activations", n, 16, names[0]) < 0) return -1;
    return write_str_attr(f, "activation", -1, strlen(common) + 1, common);
}

static herr_t drop_checksum(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info, (void)data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0) return -1;
    if (oi.type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    herr_t st = d >= 0 && (H5Aexists(d, "checksum") <= 0 || H5Adelete(d, "checksum") >= 0) ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    return st;
}

// 0 done, -1 failed, 1 not a checkpoint variant.
static int ckpt_variant(hid_t f, const char *v) {
    if (strncmp(v, "version=", 8) == 0) return write_int_attr(f, "format_version", atoi(v + 8));
    if (strncmp(v, "act=", 4) == 0) return set_activations(f, v + 4);
    if (strcmp(v, "legacy") == 0) {
        if (H5Aexists(f, "activations") > 0 && H5Adelete(f, "activations") < 0) return -1;
        return H5Lvisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, drop_checksum, NULL) < 0 ? -1 : 0;
    }
    const char *name = !strcmp(v, "w0-transpose") || !strcmp(v, "w0-int32") ? "/weights/W0"
                       : !strcmp(v, "w1-nan") ? "/weights/W1"
                       : !strcmp(v, "wout-inf") ? "/weights/Wout" : NULL;
    if (!name) return 1;
    hsize_t dims[2];
    float *w = NULL;
    int rc = -1;
    if (read_f32(f, name, dims, &w) < 0) return free(w), -1;
    const hsize_t R = dims[0], C = dims[1];
    if (strcmp(v, "w0-transpose") == 0) {
        float *t = malloc(R * C * sizeof *t + 1);
        for (hsize_t i = 0; t && i < R * C; i++) t[(i % C) * R + i / C] = w[i];
        hsize_t td[2] = {C, R};
        rc = t ? replace(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, td, t, -1) : -1;
        free(t);
    } else if (strcmp(v, "w0-int32") == 0) {
        int32_t *t = malloc(R * C * sizeof *t + 1);
        for (hsize_t i = 0; t && i < R * C; i++) t[i] = (int32_t)w[i];
        rc = t ? replace(f, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 2, dims, t, -1) : -1;
        free(t);
    } else {
        if (v[1] == '1') w[(R > 2 ? 2 : R - 1) * C + (C > 3 ? 3 : C - 1)] = NAN;
        else w[(R > 1 ? 1 : 0) * C] = INFINITY;
        rc = replace(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, w, -1);
    }
    free(w);
    return rc;
}

static int variant(hid_t f, const char *v) {
    int ck = ckpt_variant(f, v);
    if (ck != 1) return ck;
    if (strcmp(v, "drop-train-x") == 0) return H5Ldelete(f, "/train/x", H5P_DEFAULT) < 0 ? -1 : 0;
    hsize_t dims[2];
    uint8_t *x = NULL;
    double scale;
    int rc = -1;
    if (read_x(f, dims, &x, &scale) < 0) return -1;
    const hsize_t N = dims[0], D = dims[1];
    if (strcmp(v, "x-rank3") == 0) {
        hsize_t d3[3] = {N, 1, D};
        rc = replace(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, d3, x, scale);
    } else if (strcmp(v, "x-int16") == 0) {
        int16_t *w = malloc(N * D * sizeof *w + 1);
        for (hsize_t i = 0; w && i < N * D; i++) w[i] = x[i];
        rc = w ? replace(f, "/train/x", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, dims, w, scale) : -1;
        free(w);
    } else if (strcmp(v, "x-nan") == 0) {
        float *w = malloc(N * D * sizeof *w + 1);
        for (hsize_t i = 0; w && i < N * D; i++) w[i] = (float)(x[i] * scale);
        if (w) w[(N > 3 ? 3 : N - 1) * D + (D > 2 ? 2 : D - 1)] = NAN;
        rc = w ? replace(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, w, -1) : -1;
        free(w);
    } else if (strcmp(v, "y-short") == 0 || strcmp(v, "label-range") == 0) {
        int32_t *y = malloc(N * sizeof *y + 1);
        hid_t d = H5Dopen2(f, "/train/y", H5P_DEFAULT);
        int classes = 0;
        if (y && d >= 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0 &&
            read_int_attr(f, "num_classes", &classes) == 0) {
            if (d >= 0) H5Dclose(d), d = -1;
            hsize_t n = N;
            if (v[0] == 'y') n = N - 1;
            else y[N > 5 ? 5 : N - 1] = classes;
            rc = replace(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, y, -1);
        }
        if (d >= 0) H5Dclose(d);
        free(y);
    } else if (strcmp(v, "label-int64") == 0) {
        int64_t *y = malloc(N * sizeof *y + 1);
        hid_t d = H5Dopen2(f, "/train/y", H5P_DEFAULT);
        if (y && d >= 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0) {
            H5Dclose(d), d = -1;
            y[N > 5 ? 5 : N - 1] = (INT64_C(1) << 33) + 1;
            hsize_t n = N;
            rc = replace(f, "/train/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n, y, -1);
        }
        if (d >= 0) H5Dclose(d);
        free(y);
    } else {
        fprintf(stderr, "make_bad_h5: unknown variant '%s'\n", v);
    }
    free(x);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3) return die("usage: make_bad_h5 VARIANT FILE.h5");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(argv[2], H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return die("cannot open the file for writing");
    int rc = variant(f, argv[1]);
    if (H5Fclose(f) < 0) rc = -1;
    if (rc != 0) {
        fprintf(stderr, "make_bad_h5: variant %s failed on %s\n", argv[1], argv[2]);
        return 1;
    }
    return 0;
}
