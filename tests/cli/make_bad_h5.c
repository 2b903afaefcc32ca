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
 * Checkpoint variant (FILE is a pcn_dist checkpoint):
 *   version=V      the root attribute format_version rewritten to V
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

static int variant(hid_t f, const char *v) {
    if (strncmp(v, "version=", 8) == 0) return write_int_attr(f, "format_version", atoi(v + 8));
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
