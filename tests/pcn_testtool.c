/*
 * pcn_testtool.c — helpers for the program-level tests (not installed):
 *
 *   pcn_testtool mkdata OUT.h5 N_TRAIN N_TEST D K SEED
 *       writes a data set (schema v1, float32 x, int32 labels) of K separable blobs;
 *   pcn_testtool compare A.h5 B.h5 exact|RTOL
 *       compares two checkpoints' weights, history series and optimizer state (where A
 *       has one): bitwise with "exact",
 *       else |a - b| <= 1e-6 + RTOL |b|; prints the first mismatches; exit 0 when equal.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <hdf5_hl.h>

static int mkdata(const char *out, long n_train, long n_test, int D, int K, unsigned seed) {
    hid_t f = H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return 1;
    H5LTset_attribute_string(f, "/", "pcn_format", "pcn-dataset");
    int version = 1;
    H5LTset_attribute_int(f, "/", "format_version", &version, 1);
    H5LTset_attribute_string(f, "/", "task", "classification");
    H5LTset_attribute_int(f, "/", "num_classes", &K, 1);
    const char *splits[2] = {"train", "test"};
    long ns[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        hid_t g = H5Gcreate2(f, splits[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        float *x = malloc((size_t)ns[s] * D * sizeof *x);
        int *y = malloc((size_t)ns[s] * sizeof *y);
        srand(seed + (unsigned)s);
        for (long i = 0; i < ns[s]; i++) {
            y[i] = (int)(i % K);
            for (int j = 0; j < D; j++)
                x[i * D + j] = (float)((j % K == y[i]) + 0.3 * (rand() / (double)RAND_MAX - 0.5));
        }
        hsize_t dx[2] = {(hsize_t)ns[s], (hsize_t)D}, dy = (hsize_t)ns[s];
        H5LTmake_dataset_float(g, "x", 2, dx, x);
        H5LTmake_dataset_int(g, "y", 1, &dy, y);
        free(x), free(y);
        H5Gclose(g);
    }
    return H5Fclose(f) < 0;
}

// ----------------------------------------------------------------------------------------

static double *read_all(hid_t f, const char *name, size_t *n) {
    int rank = 0;
    hsize_t dims[2] = {0, 1};
    H5T_class_t cls;
    size_t size;
    if (H5LTget_dataset_ndims(f, name, &rank) < 0 || rank < 1 || rank > 2 ||
        H5LTget_dataset_info(f, name, dims, &cls, &size) < 0)
        return NULL;
    *n = (size_t)dims[0] * (rank == 2 ? dims[1] : 1);
    double *v = malloc((*n ? *n : 1) * sizeof *v);
    if (*n && H5LTread_dataset_double(f, name, v) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

static int compare_one(hid_t a, hid_t b, const char *name, bool exact, double rtol) {
    size_t na = 0, nb = 0;
    double *va = read_all(a, name, &na), *vb = read_all(b, name, &nb);
    int bad = 0;
    if (!va || !vb || na != nb) {
        printf("%s: missing or of different sizes (%zu vs %zu)\n", name, na, nb);
        bad = 1;
    }
    for (size_t i = 0; !bad && i < na; i++) {
        bool ok = exact ? memcmp(&va[i], &vb[i], sizeof(double)) == 0
                        : fabs(va[i] - vb[i]) <= 1e-6 + rtol * fabs(vb[i]);
        if (!ok && bad++ < 5) printf("%s[%zu]: %.9g vs %.9g\n", name, i, va[i], vb[i]);
    }
    free(va), free(vb);
    return bad;
}

static herr_t collect(hid_t loc, const char *name, const H5L_info_t *info, void *data) {
    (void)loc, (void)info;
    char **names = data;
    for (int i = 0; i < 64; i++)
        if (!names[i]) {
            names[i] = strdup(name);
            break;
        }
    return 0;
}

static int compare(const char *pa, const char *pb, const char *mode) {
    bool exact = strcmp(mode, "exact") == 0;
    double rtol = exact ? 0 : atof(mode);
    hid_t a = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT), b = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || b < 0) return 2;
    int bad = 0;
    const char *groups[3] = {"/weights", "/history", "/optimizer"}; // (optimizer: version 2)
    for (int g = 0; g < 3; g++) {
        char *names[64] = {0};
        H5Literate_by_name(a, groups[g], H5_INDEX_NAME, H5_ITER_INC, NULL, collect, names,
                            H5P_DEFAULT);
        for (int i = 0; i < 64 && names[i]; i++) {
            char full[128];
            snprintf(full, sizeof full, "%s/%s", groups[g], names[i]);
            bad += compare_one(a, b, full, exact, rtol);
            free(names[i]);
        }
    }
    H5Fclose(a), H5Fclose(b);
    printf("%s: %s and %s %s\n", exact ? "bitwise" : mode, pa, pb, bad ? "DIFFER" : "match");
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 8 && strcmp(argv[1], "mkdata") == 0)
        return mkdata(argv[2], atol(argv[3]), atol(argv[4]), atoi(argv[5]), atoi(argv[6]),
                      (unsigned)atoi(argv[7]));
    if (argc == 5 && strcmp(argv[1], "compare") == 0) return compare(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: pcn_testtool mkdata OUT N_TRAIN N_TEST D K SEED | "
                    "compare A.h5 B.h5 exact|RTOL\n");
    return 2;
}
