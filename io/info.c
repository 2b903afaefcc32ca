/*
 * info.c — `pcn_dist info`: a one-screen description of a pcn_dist file (a data set or a
 * checkpoint), read straight from its attributes and dataset shapes.
 *
 * The description is lenient on purpose: it reads what is there and prints what it found,
 * so a file the readers refuse (dataset.c, checkpoint.c) can still be looked at. Every
 * HDF5 call is checked; an attribute or dataset that is missing or unreadable prints as
 * 0 or an empty string, never as uninitialised memory. Only a file that is absent or not
 * HDF5 at all is an error.
 */
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "pcn_io.h"

enum { MAX_DIMS = 65 }; // as checkpoint.c: at most 64 layers

// ----------------------------------------------------------------------------------------
// Small readers: each leaves its output untouched when the object is missing or unreadable
// ----------------------------------------------------------------------------------------

// One number (memory type type, size bytes) of object obj into v.
static void attr_num(hid_t f, const char *obj, const char *name, hid_t type, size_t size,
                     void *v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    if (o < 0) return;
    unsigned char tmp[sizeof(double)];
    if (pcn_h5_attr_read(o, name, type, 1, tmp) >= 0) memcpy(v, tmp, size);
    H5Oclose(o);
}

static void attr_int(hid_t f, const char *obj, const char *name, int *v) {
    attr_num(f, obj, name, H5T_NATIVE_INT, sizeof *v, v);
}

static void attr_double(hid_t f, const char *obj, const char *name, double *v) {
    attr_num(f, obj, name, H5T_NATIVE_DOUBLE, sizeof *v, v);
}

static void attr_str(hid_t f, const char *name, char *buf, size_t size) {
    pcn_h5_attr_read_str(f, name, buf, size); // writes buf (truncated) only on success
}

// The root attribute dims (at most MAX_DIMS ints) into dims; returns how many (0: none).
static int attr_dims(hid_t f, int *dims) {
    hid_t a = H5Aopen(f, "dims", H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int got = n > 0 && n <= MAX_DIMS && H5Aread(a, H5T_NATIVE_INT, dims) >= 0 ? (int)n : 0;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return got;
}

// The shape of dataset path into dims (up to 3); returns its rank, 0 when it is missing,
// unreadable or of rank above 3 (dims then untouched).
static int dataset_shape(hid_t f, const char *path, hsize_t dims[3]) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t sp = H5Dget_space(d);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (rank > 3 || (rank > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) < 0)) rank = 0;
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rank > 0 ? rank : 0;
}

static bool has_link(hid_t f, const char *name) { return H5Lexists(f, name, H5P_DEFAULT) > 0; }

// ----------------------------------------------------------------------------------------
// The two kinds of file
// ----------------------------------------------------------------------------------------

static void describe_split(hid_t f, const char *split, FILE *out) {
    if (!has_link(f, split)) return;
    char path[64];
    hsize_t dx[3] = {0}, dy[3] = {0};
    snprintf(path, sizeof path, "/%s/x", split);
    dataset_shape(f, path, dx);
    snprintf(path, sizeof path, "/%s/y", split);
    int ry = dataset_shape(f, path, dy);
    fprintf(out, "  %-5s x [%llu, %llu]  y [%llu%s]\n", split, (unsigned long long)dx[0],
            (unsigned long long)dx[1], (unsigned long long)dy[0], ry == 2 ? ", K" : "");
}

static void describe_dataset(hid_t f, FILE *out) {
    int version = 0, classes = 0;
    attr_int(f, "/", "format_version", &version);
    attr_int(f, "/", "num_classes", &classes);
    fprintf(out, "  format_version %d, %d classes, normalisation %s\n", version, classes,
            has_link(f, "norm") ? "yes" : "no");
    describe_split(f, "train", out);
    describe_split(f, "test", out);
}

static void describe_checkpoint(hid_t f, FILE *out) {
    int version = 0, ranks = 0, dims[MAX_DIMS], K = 0, epoch = 0, batch = 0;
    char act[32] = "", mode[32] = "", lib[32] = "";
    double lr = 0;
    attr_int(f, "/", "format_version", &version);
    attr_int(f, "/", "ranks", &ranks);
    attr_int(f, "/", "output_dim", &K);
    attr_str(f, "activation", act, sizeof act);
    attr_str(f, "mode", mode, sizeof mode);
    attr_str(f, "library_version", lib, sizeof lib);
    int nd = attr_dims(f, dims);
    attr_int(f, "/state", "epoch", &epoch);
    attr_int(f, "/state", "batch", &batch);
    attr_double(f, "/state", "lr", &lr);
    fprintf(out, "  format_version %d, written by libpcn %s with %d rank%s\n  dims ", version, lib,
            ranks, ranks == 1 ? "" : "s");
    for (int l = 0; l < nd; l++) fprintf(out, l ? ",%d" : "%d", dims[l]);
    fprintf(out, "  output_dim %d  activation %s  mode %s\n", K, act, mode);
    fprintf(out, "  next batch: epoch %d, batch %d; lr_learn %g\n", epoch, batch, lr);
}

// A predictions file: its rows, outputs and where they came from.
static void describe_predictions(hid_t f, FILE *out) {
    hsize_t d[3] = {0, 0, 0};
    char ckpt[256] = "", data[256] = "", split[16] = "";
    const int rank = dataset_shape(f, "/yhat", d);
    attr_str(f, "checkpoint", ckpt, sizeof ckpt);
    attr_str(f, "data", data, sizeof data);
    attr_str(f, "split", split, sizeof split);
    fprintf(out, "  %llu rows x %llu outputs (yhat; pred: the argmax of each row)\n",
            (unsigned long long)d[0], (unsigned long long)(rank == 2 ? d[1] : 0));
    fprintf(out, "  from checkpoint %s on the %s split of %s\n", ckpt[0] ? ckpt : "(unnamed)",
            split[0] ? split : "(unnamed)", data[0] ? data : "(unnamed)");
}

// ----------------------------------------------------------------------------------------

pcn_status pcn_io_info_print(const char *path, FILE *out) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); // a damaged file is described, not stack-dumped
    if (access(path, R_OK) != 0) return pcn_set_error(PCN_EIO, "%s: no such file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return pcn_set_error(PCN_EDATA, "%s: not an HDF5 file (or truncated)", path);
    char fmt[64] = "";
    attr_str(f, "pcn_format", fmt, sizeof fmt);
    fprintf(out, "%s: %s\n", path, fmt[0] ? fmt : "an HDF5 file without a pcn_format attribute");
    if (strcmp(fmt, PCN_IO_DATASET_FORMAT) == 0) describe_dataset(f, out);
    else if (strcmp(fmt, "pcn-checkpoint") == 0) describe_checkpoint(f, out);
    else if (strcmp(fmt, "pcn-predictions") == 0) describe_predictions(f, out);
    H5Fclose(f);
    return PCN_OK;
}
