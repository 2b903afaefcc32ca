/*
 * info.c — `pcn_dist info`: a one-screen description of a pcn_dist file (a data set, a
 * checkpoint or predictions), read straight from its attributes and dataset shapes; for
 * predictions, their accuracy when the data set they name is at hand.
 *
 * The description is lenient on purpose: it reads what is there and prints what it found,
 * so a file the readers refuse (dataset.c, checkpoint.c) can still be looked at. Every
 * HDF5 call is checked; an attribute or dataset that is missing or unreadable prints as
 * 0 or an empty string, never as uninitialised memory. Only a file that is absent or not
 * HDF5 at all is an error.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
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

// Layer 0's name in the fixed-length string array `activations` into buf (size >= 17).
static void first_activation(hid_t f, char *buf, size_t size) {
    hid_t a = H5Aopen(f, "activations", H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    hssize_t n = sp < 0 ? 0 : H5Sget_simple_extent_npoints(sp);
    size_t len = t < 0 || H5Tis_variable_str(t) != 0 ? 0 : H5Tget_size(t);
    char *names = n > 0 && len > 0 && len < 256 ? calloc((size_t)n, len) : NULL;
    if (names && H5Aread(a, t, names) >= 0) snprintf(buf, size, "%.*s", (int)len, names);
    free(names);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
}

// Version 2: the direction, biases and the optimizer with its state's size.
static void describe_direction(hid_t f, int nd, FILE *out) {
    char dir[32] = "generative", opt[32] = "sgd", act[32] = "";
    int bias = 0, slots = 0;
    hsize_t shape[3] = {0, 0, 0};
    attr_str(f, "direction", dir, sizeof dir);
    attr_int(f, "/", "bias", &bias);
    if (has_link(f, "optimizer")) {
        hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
        if (g >= 0) pcn_h5_attr_read_str(g, "optimizer", opt, sizeof opt), H5Gclose(g);
        attr_int(f, "/optimizer", "slots", &slots);
        dataset_shape(f, "/optimizer/state", shape);
    }
    fprintf(out, "  direction %s  bias %s", dir, bias ? "yes" : "no");
    if (strcmp(dir, "discriminative") == 0) {
        first_activation(f, act, sizeof act);
        fprintf(out, "  hidden activation %s", nd > 2 ? act : "(none: one layer)");
    }
    if (slots == 0) {
        fprintf(out, "\n  optimizer %s, no state\n", opt);
        return;
    }
    fprintf(out, "\n  optimizer %s, state %d slot%s x %llu floats (%.1f MiB)\n", opt, slots,
            slots == 1 ? "" : "s", (unsigned long long)shape[1],
            (double)slots * (double)shape[1] * 4.0 / (1 << 20));
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
    describe_direction(f, nd, out);
    long long steps = 0;
    attr_num(f, "/state", "opt_steps", H5T_NATIVE_LLONG, sizeof steps, &steps);
    fprintf(out, "  next batch: epoch %d, batch %d; lr_learn %g; optimizer steps %lld\n", epoch,
            batch, lr, steps);
}

// n int64 values of the 1-D dataset path (any integer type) of file f; NULL when missing,
// of another length or unreadable.
static int64_t *read_ints(hid_t f, const char *path, hsize_t n) {
    hsize_t d[3] = {0, 0, 0};
    if (dataset_shape(f, path, d) != 1 || d[0] != n || n == 0) return NULL;
    int64_t *v = malloc(n * sizeof *v);
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t type = ds < 0 ? -1 : H5Dget_type(ds);
    bool ok = v && type >= 0 && H5Tget_class(type) == H5T_INTEGER &&
              H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0;
    if (type >= 0) H5Tclose(type);
    if (ds >= 0) H5Dclose(ds);
    if (!ok) free(v), v = NULL;
    return v;
}

// The data set a predictions file names: as written, else beside the predictions file.
static hid_t open_named_data(const char *pred_path, const char *data) {
    if (access(data, R_OK) == 0) return H5Fopen(data, H5F_ACC_RDONLY, H5P_DEFAULT);
    const char *slash = strrchr(pred_path, '/');
    if (!slash || data[0] == '/') return -1;
    char path[4096];
    snprintf(path, sizeof path, "%.*s/%s", (int)(slash - pred_path), pred_path, data);
    return access(path, R_OK) == 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
}

// The accuracy of /pred against the labels of the split it came from, when that data set
// is at hand with one integer label per row; otherwise a line saying why not.
static void describe_accuracy(hid_t f, const char *path, const char *data, const char *split,
                              hsize_t n, FILE *out) {
    hid_t d = data[0] ? open_named_data(path, data) : -1;
    char ypath[64];
    snprintf(ypath, sizeof ypath, "/%s/y", split);
    int64_t *pred = read_ints(f, "/pred", n), *y = d < 0 ? NULL : read_ints(d, ypath, n);
    if (pred && y) {
        hsize_t right = 0;
        for (hsize_t i = 0; i < n; i++) right += pred[i] == y[i];
        fprintf(out, "  accuracy %.2f %% (%llu of %llu) against the labels %s of %s\n",
                100.0 * (double)right / (double)n, (unsigned long long)right,
                (unsigned long long)n, ypath, data);
    } else
        fprintf(out, "  accuracy: not known (%s)\n",
                d < 0 ? "the data set it names is not at hand"
                      : pred ? "the data set has no integer label per row" : "no /pred");
    free(pred), free(y);
    if (d >= 0) H5Fclose(d);
}

// A predictions file: its rows, outputs and where they came from.
static void describe_predictions(hid_t f, const char *path, FILE *out) {
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
    if (split[0] && strlen(split) < 16) describe_accuracy(f, path, data, split, d[0], out);
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
    else if (strcmp(fmt, "pcn-predictions") == 0) describe_predictions(f, path, out);
    H5Fclose(f);
    return PCN_OK;
}
