/*
 * checkpoint_read.c — the checkpoint reader (layout in pcn_io.h, "Checkpoints"; the writer
 * and the checksums are in checkpoint.c).
 *
 * Reading happens on rank 0 (a checkpoint is small) and is broadcast. Before any model is
 * allocated, every weight dataset's shape and type class are checked against the header;
 * weights and optimizer state must be finite; per-layer activations come from
 * `activations` (or, in files without it, `activation` for every layer). Version 1 files
 * (generative, no optimizer state, no opt_steps) read as before: direction generative, no
 * biases, no optimizer state, opt_steps 0.
 */
#include "pcn_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint_impl.h"
#include "h5util.h"

// ----------------------------------------------------------------------------------------
// Reading (rank 0): the header
// ----------------------------------------------------------------------------------------

// "; HDF5: <cause>" when HDF5 left an error on its stack (e.g. a failed checksum), else "".
static const char *h5_cause(void) {
    static char buf[480];
    char msg[448];
    pcn_h5_describe(msg, sizeof msg);
    if (strncmp(msg, "no HDF5 message", 15) == 0) return "";
    snprintf(buf, sizeof buf, "; HDF5: %s", msg);
    return buf;
}

// An integer attribute of 1..max values (its count in *n): -1 when missing or not integer.
static herr_t read_ints(hid_t obj, const char *name, int max, int *v, int *n) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, sp = -1;
    herr_t st = -1;
    if (a >= 0 && (t = H5Aget_type(a)) >= 0 && H5Tget_class(t) == H5T_INTEGER &&
        (sp = H5Aget_space(a)) >= 0) {
        hssize_t count = H5Sget_simple_extent_npoints(sp);
        if (count >= 1 && count <= max) st = H5Aread(a, H5T_NATIVE_INT, v), *n = (int)count;
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return st;
}

// `activations` (one per layer), or `activation` for every layer in files without it.
static pcn_status read_activations(hid_t f, const char *path, pcn_ckpt_info *info) {
    const int L = info->n_dims - 1;
    char one[32] = "";
    if (pcn_h5_attr_read_str(f, "activation", one, sizeof one) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has no activation%s", path, h5_cause());
    if (H5Aexists(f, "activations") <= 0) { // files written before per-layer activations
        if (pcn_activation_from_name(one, &info->activation) != PCN_OK)
            return pcn_set_error(PCN_EDATA, "%s: checkpoint has activation '%s'", path, one);
        for (int l = 0; l < L; l++) info->activations[l] = info->activation;
        return PCN_OK;
    }
    hid_t a = H5Aopen(f, "activations", H5P_DEFAULT), t = -1, sp = -1, mt = -1;
    char (*names)[PCN_CKPT_ACT_LEN] = calloc((size_t)L, sizeof *names);
    herr_t st = -1;
    if (a >= 0 && (t = H5Aget_type(a)) >= 0 && H5Tget_class(t) == H5T_STRING &&
        H5Tis_variable_str(t) == 0 && H5Tget_size(t) == PCN_CKPT_ACT_LEN &&
        (sp = H5Aget_space(a)) >= 0 && H5Sget_simple_extent_npoints(sp) == L && names &&
        (mt = H5Tcopy(H5T_C_S1)) >= 0 && H5Tset_size(mt, PCN_CKPT_ACT_LEN) >= 0)
        st = H5Aread(a, mt, names);
    pcn_status ps = st < 0 ? pcn_set_error(PCN_EDATA, "%s: attribute activations is not %d "
                                           "strings of %d bytes%s", path, L, PCN_CKPT_ACT_LEN,
                                           h5_cause()) : PCN_OK;
    for (int l = 0; ps == PCN_OK && l < L; l++) {
        names[l][PCN_CKPT_ACT_LEN - 1] = '\0';
        if (pcn_activation_from_name(names[l], &info->activations[l]) != PCN_OK)
            ps = pcn_set_error(PCN_EDATA, "%s: layer %d has activation '%s'", path, l, names[l]);
        else if (strcmp(one, "mixed") != 0 && strcmp(one, names[l]) != 0)
            ps = pcn_set_error(PCN_EDATA, "%s: activation is '%s' but layer %d's is '%s'",
                               path, one, l, names[l]);
    }
    info->activation = info->activations[0];
    free(names);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return ps;
}

// Version 2: direction, bias and leaky_slope (version 1: generative, no biases, 0.01);
// a generative model's activations are pcn-torch's.
static pcn_status read_direction(hid_t f, const char *path, pcn_ckpt_info *info) {
    char dir[32] = "";
    int bias = 0;
    info->direction = PCN_DIR_GENERATIVE, info->bias = false, info->leaky_slope = 0.01f;
    snprintf(dir, sizeof dir, "generative");
    if (info->version >= 2 && (pcn_h5_attr_read_str(f, "direction", dir, sizeof dir) < 0 ||
        pcn_h5_attr_read(f, "bias", H5T_NATIVE_INT, 1, &bias) < 0 ||
        pcn_h5_attr_read(f, "leaky_slope", H5T_NATIVE_FLOAT, 1, &info->leaky_slope) < 0))
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has no direction, bias or leaky_slope "
                             "(version 2 files have them)%s", path, h5_cause());
    if (pcn_direction_from_name(dir, &info->direction) != PCN_OK)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has direction '%s'", path, dir);
    if ((bias != 0 && bias != 1) || (bias && info->direction == PCN_DIR_GENERATIVE) ||
        !isfinite(info->leaky_slope))
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has bias %d and leaky_slope %g for a "
                             "%s model", path, bias, (double)info->leaky_slope, dir);
    info->bias = bias;
    const int L = info->n_dims - 1;
    for (int l = 0; info->direction == PCN_DIR_GENERATIVE && l < L; l++)
        if (info->activations[l] >= PCN_ACT_GENERATIVE_COUNT)
            return pcn_set_error(PCN_EDATA, "%s: layer %d has activation '%s', which a generative "
                                 "model does not take", path, l,
                                 pcn_activation_name(info->activations[l]));
    if (info->direction == PCN_DIR_DISCRIMINATIVE &&
        (info->output_dim != info->dims[L] || info->activations[L - 1] != PCN_ACT_IDENTITY))
        return pcn_set_error(PCN_EDATA, "%s: a discriminative checkpoint needs output_dim = "
                             "d_L and identity on its last layer", path);
    return PCN_OK;
}

static pcn_status read_header(hid_t f, const char *path, pcn_ckpt_info *info) {
    char fmt[64] = "", mode[32] = "";
    int version = 0, one = 1;
    unsigned long long seed = 0;
    htri_t has = H5Aexists(f, "pcn_format"); // < 0: the root object does not read
    if (has < 0)
        return pcn_set_error(PCN_EDATA, "%s: cannot read the checkpoint's root object (the file "
                             "is damaged)%s", path, h5_cause());
    if (!has || pcn_h5_attr_read_str(f, "pcn_format", fmt, sizeof fmt) < 0 ||
        strcmp(fmt, "pcn-checkpoint"))
        return pcn_set_error(PCN_EDATA, "%s is not a pcn_dist checkpoint (no pcn_format = "
                             "\"pcn-checkpoint\" attribute%s)", path, h5_cause());
    if (pcn_h5_attr_read(f, "format_version", H5T_NATIVE_INT, 1, &version) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has no format_version%s", path,
                             h5_cause());
    if (version < 1 || version > PCN_CKPT_FORMAT_VERSION)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint format version %d, this pcn_dist reads "
                             "versions 1 to %d; HINT: resume it with the pcn_dist that wrote "
                             "it, or start a new run", path, version, PCN_CKPT_FORMAT_VERSION);
    info->version = version;
    if (read_ints(f, "dims", 65, info->dims, &info->n_dims) < 0 || info->n_dims < 2 ||
        read_ints(f, "output_dim", 1, &info->output_dim, &one) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has no dims (2 to 65 integers) or no "
                             "output_dim%s", path, h5_cause());
    for (int l = 0; l <= info->n_dims; l++) {
        int d = l < info->n_dims ? info->dims[l] : info->output_dim;
        if (d < 1)
            return pcn_set_error(PCN_EDATA, "%s: checkpoint has a %s of %d", path,
                                 l < info->n_dims ? "layer width" : "output_dim", d);
    }
    if (pcn_h5_attr_read(f, "ranks", H5T_NATIVE_INT, 1, &info->ranks) < 0 ||
        pcn_h5_attr_read(f, "seed", H5T_NATIVE_ULLONG, 1, &seed) < 0 ||
        pcn_h5_attr_read_str(f, "mode", mode, sizeof mode) < 0 ||
        pcn_h5_attr_read_str(f, "library_version", info->library_version,
                             sizeof info->library_version) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint header is incomplete%s", path,
                             h5_cause());
    info->seed = seed;
    if (pcn_task_from_name(mode, &info->mode) != PCN_OK)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has mode '%s'", path, mode);
    pcn_status st = read_activations(f, path, info);
    return st == PCN_OK ? read_direction(f, path, info) : st;
}

static pcn_status read_config(hid_t f, const char *path, pcn_ckpt_info *info) {
    hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
    if (a < 0) return pcn_set_error(PCN_EDATA, "%s: checkpoint has no config%s", path, h5_cause());
    hid_t t = H5Aget_type(a);
    size_t n = t < 0 ? 0 : H5Tis_variable_str(t) > 0 ? 1 << 20 : H5Tget_size(t) + 1;
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    info->config = n > 1 && n <= (16u << 20) ? calloc(n, 1) : NULL;
    if (!info->config || pcn_h5_attr_read_str(f, "config", info->config, n) < 0)
        return pcn_set_error(PCN_EDATA, "%s: cannot read the checkpoint's config%s", path,
                             h5_cause());
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Reading (rank 0): datasets
// ----------------------------------------------------------------------------------------

static const char *class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return "non-numeric";
    }
}

// Opens /name and checks it is float, of rank nd and shape want; else an error naming the
// dataset, the shape found and the shape wanted. Returns the dataset or -1.
static hid_t open_checked(hid_t f, const char *path, const char *name, int nd,
                          const hsize_t *want, const char *what) {
    hsize_t have[H5S_MAX_RANK];
    htri_t has = H5Lexists(f, name, H5P_DEFAULT);
    hid_t d = has > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (d < 0)
        return pcn_set_error(PCN_EDATA, "%s: /%s %s%s", path, name, has == 0 ? "is missing"
                             : "does not read (the file is damaged)", h5_cause()), -1;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    int r = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    bool same = r == nd && H5Sget_simple_extent_dims(sp, have, NULL) == nd;
    for (int i = 0; same && i < nd; i++) same = have[i] == want[i];
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (cls == H5T_FLOAT && same) return d;
    H5Dclose(d);
    if (cls != H5T_FLOAT)
        return pcn_set_error(PCN_EDATA, "%s: /%s holds %s values, %s must be float", path, name,
                             class_name(cls), what), -1;
    char hs[96] = "", ws[96] = "";
    for (int i = 0; i < r && i < H5S_MAX_RANK; i++)
        snprintf(hs + strlen(hs), sizeof hs - strlen(hs), i ? ", %llu" : "%llu",
                 (unsigned long long)have[i]);
    for (int i = 0; i < nd; i++)
        snprintf(ws + strlen(ws), sizeof ws - strlen(ws), i ? ", %llu" : "%llu",
                 (unsigned long long)want[i]);
    return pcn_set_error(PCN_EDATA, "%s: /%s has shape [%s], %s must be [%s]", path, name, hs,
                         what, ws), -1;
}

// Reads an open dataset whole (n values of elem bytes) and checks its `checksum` attribute
// where it has one. Closes d.
static pcn_status read_checked(hid_t d, const char *path, const char *name, hid_t mtype,
                               size_t n, size_t elem, void *out) {
    uint32_t want = 0, got;
    hid_t t = H5Dget_type(d);
    bool sum = pcn_ckpt_little_endian() && t >= 0 && H5Tget_size(t) == elem &&
               H5Tget_order(t) == H5T_ORDER_LE && H5Aexists(d, "checksum") > 0;
    if (t >= 0) H5Tclose(t);
    herr_t st = n ? H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : 0;
    if (st >= 0 && sum) st = pcn_h5_attr_read(d, "checksum", H5T_NATIVE_UINT32, 1, &want);
    H5Dclose(d);
    if (st < 0) return pcn_set_error(PCN_EDATA, "%s: cannot read /%s%s", path, name, h5_cause());
    if (sum && (got = pcn_ckpt_lookup3(out, n * elem, 0)) != want)
        return pcn_set_error(PCN_EDATA, "%s: /%s fails its checksum (stored %08x, data %08x): "
                             "the file is damaged", path, name, (unsigned)want, (unsigned)got);
    return PCN_OK;
}

// The weight datasets of a model: generative W0..W{L-1} and Wout (L + 1); discriminative
// W0..W{L-1}, then with biases b0..b{L-1} (L or 2L).
static int weight_count(const pcn_ckpt_info *info) {
    const int L = info->n_dims - 1;
    if (info->direction == PCN_DIR_GENERATIVE) return L + 1;
    return info->bias ? 2 * L : L;
}

// Weight dataset k: its name, rank, shape (out, in) or (n) and what it is, for messages.
static int weight_shape(const pcn_ckpt_info *info, int k, char *name, size_t size,
                        hsize_t dims[2], const char **what) {
    const int L = info->n_dims - 1, *d = info->dims;
    if (info->direction == PCN_DIR_GENERATIVE) {
        if (k < L) snprintf(name, size, "weights/W%d", k);
        else snprintf(name, size, "weights/Wout");
        dims[0] = (hsize_t)(k < L ? d[k] : info->output_dim);
        dims[1] = (hsize_t)(k < L ? d[k + 1] : d[L]);
        *what = k < L ? "a layer's weights (out x in)" : "the readout (K x d_L)";
        return 2;
    }
    if (k < L) {
        snprintf(name, size, "weights/W%d", k);
        dims[0] = (hsize_t)d[k + 1], dims[1] = (hsize_t)d[k];
        *what = "a layer's weights (d_{l+1} x d_l)";
        return 2;
    }
    snprintf(name, size, "weights/b%d", k - L);
    dims[0] = (hsize_t)d[k - L + 1], dims[1] = 1;
    *what = "a layer's biases (d_{l+1})";
    return 1;
}

// Every weight dataset present, float, of the header's shape: before any allocation.
static pcn_status check_weights(hid_t f, const char *path, const pcn_ckpt_info *info) {
    for (int k = 0; k < weight_count(info); k++) {
        char name[40];
        hsize_t dims[2];
        const char *what;
        int nd = weight_shape(info, k, name, sizeof name, dims, &what);
        hid_t d = open_checked(f, path, name, nd, dims, what);
        if (d < 0) return PCN_EDATA;
        H5Dclose(d);
    }
    return PCN_OK;
}

// The first non-finite value of v (n values of rows of `cols`) as an error naming /name.
static pcn_status check_finite(const float *v, hsize_t n, hsize_t cols, const char *path,
                               const char *name, const char *what) {
    for (hsize_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return pcn_set_error(PCN_EDATA, "%s: /%s holds a non-finite %s (%s) at [%llu, %llu]",
                                 path, name, what, isnan(v[i]) ? "nan" : v[i] > 0 ? "inf"
                                 : "-inf", (unsigned long long)(i / cols),
                                 (unsigned long long)(i % cols));
    return PCN_OK;
}

// Where weight dataset k lives in the model.
static float *weight_target(const pcn_ckpt_info *info, pcn_model *m, int k) {
    const int L = info->n_dims - 1;
    if (k < L) return pcn_model_layer(m, k).weight;
    return info->direction == PCN_DIR_GENERATIVE ? pcn_model_readout(m)
                                                 : pcn_model_bias(m, k - L + 1);
}

static pcn_status read_weights(hid_t f, const char *path, const pcn_ckpt_info *info,
                               pcn_model *m) {
    for (int k = 0; k < weight_count(info); k++) {
        char name[40];
        hsize_t dims[2];
        const char *what;
        int nd = weight_shape(info, k, name, sizeof name, dims, &what);
        float *w = weight_target(info, m, k);
        hid_t d = open_checked(f, path, name, nd, dims, "the weights");
        pcn_status st = d < 0 ? PCN_EDATA
                              : read_checked(d, path, name, H5T_NATIVE_FLOAT,
                                             (size_t)(dims[0] * dims[1]), sizeof(float), w);
        if (st == PCN_OK) st = check_finite(w, dims[0] * dims[1], dims[1], path, name, "weight");
        if (st != PCN_OK) return st;
    }
    return PCN_OK;
}

// Version 2: /optimizer's name and slots (info), then its state into the model. Version 1
// files hold none.
static pcn_status read_optimizer(hid_t f, const char *path, pcn_ckpt_info *info, pcn_model *m) {
    pcn_optimizer o;
    snprintf(info->optimizer, sizeof info->optimizer, "sgd");
    if (info->version < 2) return PCN_OK;
    hid_t g = H5Lexists(f, "optimizer", H5P_DEFAULT) > 0 ? H5Gopen2(f, "optimizer", H5P_DEFAULT)
                                                          : -1;
    bool ok = g >= 0 && pcn_h5_attr_read_str(g, "optimizer", info->optimizer,
                                             sizeof info->optimizer) >= 0 &&
              pcn_h5_attr_read(g, "slots", H5T_NATIVE_INT, 1, &info->opt_slots) >= 0;
    if (g >= 0) H5Gclose(g);
    if (!ok)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint /optimizer is missing or incomplete%s",
                             path, h5_cause());
    if (pcn_optimizer_from_name(info->optimizer, &o) != PCN_OK || info->opt_slots < 0 ||
        info->opt_slots > 2)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint /optimizer has optimizer '%s' and %d "
                             "slots", path, info->optimizer, info->opt_slots);
    if (info->opt_slots == 0) return PCN_OK;
    const hsize_t dims[2] = {(hsize_t)info->opt_slots, (hsize_t)pcn_model_num_weights(m)};
    if (pcn_model_optimizer_reserve(m, info->opt_slots) != PCN_OK) return PCN_ENOMEM;
    float *v = pcn_model_optimizer_state(m);
    hid_t d = open_checked(f, path, "optimizer/state", 2, dims, "the optimizer state");
    pcn_status st = d < 0 ? PCN_EDATA
                          : read_checked(d, path, "optimizer/state", H5T_NATIVE_FLOAT,
                                         (size_t)(dims[0] * dims[1]), sizeof(float), v);
    if (st == PCN_OK)
        st = check_finite(v, dims[0] * dims[1], dims[1], path, "optimizer/state", "value");
    if (st == PCN_OK) pcn_model_optimizer_loaded(m);
    return st;
}

static pcn_status read_state(hid_t f, const char *path, pcn_ckpt_info *info, pcn_history *h) {
    hid_t s = H5Lexists(f, "state", H5P_DEFAULT) > 0 ? H5Gopen2(f, "state", H5P_DEFAULT) : -1;
    pcn_train_position *p = &info->pos;
    double sums[4];
    if (s < 0 || pcn_h5_attr_read(s, "epoch", H5T_NATIVE_INT, 1, &p->epoch) < 0 ||
        pcn_h5_attr_read(s, "batch", H5T_NATIVE_INT, 1, &p->batch) < 0 ||
        pcn_h5_attr_read(s, "lr", H5T_NATIVE_DOUBLE, 1, &p->lr) < 0 ||
        pcn_h5_attr_read(s, "plateau_best", H5T_NATIVE_DOUBLE, 1, &p->plateau_best) < 0 ||
        pcn_h5_attr_read(s, "plateau_patience", H5T_NATIVE_INT, 1, &p->plateau_patience) < 0 ||
        pcn_h5_attr_read(s, "epoch_sums", H5T_NATIVE_DOUBLE, 4, sums) < 0) {
        if (s >= 0) H5Gclose(s);
        return pcn_set_error(PCN_EDATA, "%s: checkpoint /state is missing or incomplete%s",
                             path, h5_cause());
    }
    long long opt_steps = 0;
    bool steps_ok = info->version < 2 ||
                    pcn_h5_attr_read(s, "opt_steps", H5T_NATIVE_LLONG, 1, &opt_steps) >= 0;
    H5Gclose(s);
    if (!steps_ok || opt_steps < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint /state has no opt_steps >= 0%s", path,
                             h5_cause());
    p->opt_steps = opt_steps;
    p->sums = (pcn_epoch_sums){sums[0], sums[1], sums[2], sums[3]};
    for (int k = 0; h && k < PCN_HIST_COUNT; k++) {
        char name[64];
        snprintf(name, sizeof name, "history/%s", pcn_history_series_name((pcn_history_series)k));
        hid_t d = H5Lexists(f, "history", H5P_DEFAULT) > 0 && H5Lexists(f, name, H5P_DEFAULT) > 0
                      ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hssize_t n = sp < 0 || H5Sget_simple_extent_ndims(sp) != 1
                         ? -1 : H5Sget_simple_extent_npoints(sp);
        if (sp >= 0) H5Sclose(sp);
        if (n < 0) {
            if (d >= 0) H5Dclose(d);
            return pcn_set_error(PCN_EDATA, "%s: /%s missing or not a vector%s", path, name,
                                 h5_cause());
        }
        hsize_t len = (hsize_t)n;
        H5Dclose(d);
        d = open_checked(f, path, name, 1, &len, "a history series");
        double *v = d < 0 ? NULL : malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
        pcn_status st = !v ? (d < 0 ? PCN_EDATA : pcn_set_error(PCN_ENOMEM, "%s: no memory "
                                                               "for /%s", path, name))
                           : read_checked(d, path, name, H5T_NATIVE_DOUBLE, (size_t)n,
                                          sizeof(double), v);
        if (!v && d >= 0) H5Dclose(d);
        for (hssize_t i = 0; st == PCN_OK && i < n; i++)
            pcn_history_append(h, (pcn_history_series)k, v[i]);
        free(v);
        if (st != PCN_OK) return st;
    }
    return PCN_OK;
}

// The model a checkpoint's header describes (weights initialised until read).
static pcn_model *model_from_info(const pcn_ckpt_info *info) {
    const int L = info->n_dims - 1;
    if (info->direction == PCN_DIR_DISCRIMINATIVE) {
        pcn_model_params mp = pcn_model_default_params();
        mp.dims = info->dims, mp.n_dims = info->n_dims, mp.mode = info->mode;
        mp.direction = info->direction, mp.bias = info->bias;
        mp.leaky_slope = info->leaky_slope;
        mp.activation = L > 1 ? info->activations[0] : PCN_ACT_IDENTITY;
        return pcn_model_init(&mp);
    }
    pcn_layer_spec layers[64];
    for (int l = 0; l < L; l++)
        layers[l] = (pcn_layer_spec){.out_features = info->dims[l],
                                     .in_features = info->dims[l + 1],
                                     .activation = info->activations[l], .weight = NULL};
    return pcn_model_init_layers(layers, L, info->output_dim, info->mode, 0);
}

// Rank 0's part: open, check, read everything.
static pcn_status read_all(const char *path, pcn_ckpt_info *info, pcn_history *h,
                           pcn_model **out) {
    if (access(path, R_OK) != 0) return pcn_set_error(PCN_EIO, "%s: no such file", path);
    if (pcn_h5_is_hdf5(path) <= 0)
        return pcn_set_error(PCN_EDATA, "%s: not an HDF5 file (or truncated)%s", path,
                             h5_cause());
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return pcn_set_error(PCN_EDATA, "%s: cannot open (truncated or corrupt?)%s", path,
                             h5_cause());
    pcn_status st = read_header(f, path, info);
    if (st == PCN_OK) st = read_config(f, path, info);
    if (st == PCN_OK) st = check_weights(f, path, info);
    if (st == PCN_OK) {
        *out = model_from_info(info);
        st = *out ? read_weights(f, path, info, *out) : PCN_ENOMEM;
    }
    if (st == PCN_OK) st = read_optimizer(f, path, info, *out);
    if (st == PCN_OK) st = read_state(f, path, info, h);
    if (H5Fclose(f) < 0 && st == PCN_OK)
        st = pcn_set_error(PCN_EDATA, "%s: closing the checkpoint failed%s", path, h5_cause());
    H5Eclear2(H5E_DEFAULT);
    return st;
}

// ----------------------------------------------------------------------------------------
// Broadcasting
// ----------------------------------------------------------------------------------------

static void bcast_history(pcn_comm *c, pcn_history *h) {
    MPI_Comm comm = pcn_dist_mpi(c);
    for (int k = 0; k < PCN_HIST_COUNT; k++) {
        long long n = (long long)pcn_history_len(h, (pcn_history_series)k);
        PCN_MPI_CHECK(MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, comm));
        double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
        if (pcn_dist_rank(c) == 0 && n > 0)
            memcpy(v, pcn_history_data(h, (pcn_history_series)k), (size_t)n * sizeof *v);
        PCN_MPI_CHECK(MPI_Bcast(v, (int)n, MPI_DOUBLE, 0, comm));
        for (long long i = 0; pcn_dist_rank(c) != 0 && i < n; i++)
            pcn_history_append(h, (pcn_history_series)k, v[i]);
        free(v);
    }
}

// Rank 0's optimizer state to the other ranks' models (info->opt_slots is everywhere).
static void bcast_optimizer(pcn_comm *c, const pcn_ckpt_info *info, pcn_model *m) {
    if (info->opt_slots == 0) return;
    if (pcn_dist_rank(c) != 0 && pcn_model_optimizer_reserve(m, info->opt_slots) != PCN_OK)
        pcn_fatal("out of memory re-creating the checkpoint's optimizer state");
    const size_t n = (size_t)info->opt_slots * pcn_model_num_weights(m);
    PCN_MPI_CHECK(MPI_Bcast(pcn_model_optimizer_state(m), (int)n, MPI_FLOAT, 0,
                            pcn_dist_mpi(c)));
    pcn_model_optimizer_loaded(m);
}

pcn_model *pcn_io_ckpt_read(pcn_comm *c, const char *path, pcn_ckpt_info *info,
                            pcn_history *h) {
    memset(info, 0, sizeof *info);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    pcn_model *m = NULL;
    int rank = pcn_dist_rank(c);
    MPI_Comm comm = pcn_dist_mpi(c);
    pcn_h5_lock();
    pcn_status st = rank == 0 ? read_all(path, info, h, &m) : PCN_OK;
    pcn_h5_unlock();
    if (pcn_dist_agree(c, st) != PCN_OK) {
        pcn_model_free(m);
        pcn_io_ckpt_info_free(info);
        return NULL;
    }
    char *config = info->config;
    PCN_MPI_CHECK(MPI_Bcast(info, sizeof *info, MPI_BYTE, 0, comm)); // plain data + pointer
    int clen = rank == 0 ? (int)strlen(config) + 1 : 0;
    PCN_MPI_CHECK(MPI_Bcast(&clen, 1, MPI_INT, 0, comm));
    info->config = rank == 0 ? config : calloc((size_t)clen, 1);
    PCN_MPI_CHECK(MPI_Bcast(info->config, clen, MPI_CHAR, 0, comm));
    if (rank != 0 && !(m = model_from_info(info)))
        pcn_fatal("out of memory re-creating the checkpoint's model");
    PCN_MPI_CHECK(MPI_Bcast(pcn_model_weights(m), (int)pcn_model_num_weights(m), MPI_FLOAT, 0, comm));
    bcast_optimizer(c, info, m);
    if (h) bcast_history(c, h);
    return m;
}

void pcn_io_ckpt_info_free(pcn_ckpt_info *info) {
    if (!info) return;
    free(info->config);
    info->config = NULL;
}
