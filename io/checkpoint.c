/*
 * checkpoint.c — checkpoint writer and reader (layout in pcn_ckpt.h).
 *
 * Writing is collective over the library's communicator with the MPI-IO driver: every rank
 * makes the same metadata calls; the weights are replicated, so rank 0 selects the data and
 * the others select none. The file is written as path.tmp, closed, fsync'd, rotated and
 * renamed over path, so a crash or a failure at any point leaves the previous checkpoint
 * whole. Reading happens on rank 0 (a checkpoint is small) and is broadcast.
 */
#include "pcn_ckpt.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

static int inject_fault;

void pcn_io_ckpt_inject_fault(int on) { inject_fault = on; }

// ----------------------------------------------------------------------------------------
// Writing
// ----------------------------------------------------------------------------------------

// A float32 (rows, cols) or float64 (rows) dataset written from rank 0's buffer.
static herr_t write_dataset(hid_t loc, const char *name, hid_t type, int rank_dims,
                            const hsize_t *dims, const void *data, int my_rank) {
    hid_t fs = H5Screate_simple(rank_dims, dims, NULL), ms = -1, d = -1, x = -1;
    herr_t st = -1;
    if (fs < 0) return -1;
    d = H5Dcreate2(loc, name, type, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ms = H5Screate_simple(rank_dims, dims, NULL);
    x = H5Pcreate(H5P_DATASET_XFER);
    hsize_t count = 1;
    for (int i = 0; i < rank_dims; i++) count *= dims[i];
    if (d >= 0 && count == 0) st = 0; // an empty series: the dataset alone says so
    else if (d >= 0 && ms >= 0 && x >= 0 && H5Pset_dxpl_mpio(x, H5FD_MPIO_COLLECTIVE) >= 0) {
        if (my_rank != 0) H5Sselect_none(fs), H5Sselect_none(ms);
        st = H5Dwrite(d, type, ms, fs, x, data);
    }
    if (x >= 0) H5Pclose(x);
    if (ms >= 0) H5Sclose(ms);
    if (d >= 0) H5Dclose(d);
    H5Sclose(fs);
    return st;
}

static pcn_status write_model(hid_t f, const pcn_model *m, int rank) {
    hid_t g = -1;
    const int L = pcn_model_num_layers(m);
    pcn_model *mm = (pcn_model *)m; // accessors take non-const; nothing is written
    PCN_H5_TRY(g = H5Gcreate2(f, "weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (int l = 0; l <= L; l++) {
        char name[32];
        hsize_t dims[2];
        const float *w;
        if (l < L) {
            pcn_layer_view v = pcn_model_layer(mm, l);
            snprintf(name, sizeof name, "W%d", l);
            dims[0] = (hsize_t)v.out_features, dims[1] = (hsize_t)v.in_features, w = v.weight;
        } else {
            snprintf(name, sizeof name, "Wout");
            dims[0] = (hsize_t)pcn_model_output_dim(m), dims[1] = (hsize_t)pcn_model_dim(m, L);
            w = pcn_model_readout(mm);
        }
        PCN_H5_TRY(write_dataset(g, name, H5T_NATIVE_FLOAT, 2, dims, w, rank));
    }
    H5Gclose(g);
    return PCN_OK;
fail:
    if (g >= 0) H5Gclose(g);
    return PCN_EIO;
}

static pcn_status write_root_attrs(hid_t f, const pcn_model *m, const pcn_ckpt_meta *meta,
                                   int ranks) {
    const int L = pcn_model_num_layers(m), version = PCN_CKPT_FORMAT_VERSION;
    int dims[65], K = pcn_model_output_dim(m);
    for (int l = 0; l <= L; l++) dims[l] = pcn_model_dim(m, l);
    pcn_layer_view v0 = pcn_model_layer((pcn_model *)m, 0);
    unsigned long long seed = meta ? meta->seed : 0;
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "pcn_format", "pcn-checkpoint"));
    PCN_H5_TRY(pcn_h5_attr_write(f, "format_version", H5T_NATIVE_INT, 1, &version));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "library_version", pcn_version()));
    PCN_H5_TRY(pcn_h5_attr_write(f, "ranks", H5T_NATIVE_INT, 1, &ranks));
    PCN_H5_TRY(pcn_h5_attr_write(f, "dims", H5T_NATIVE_INT, L + 1, dims));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "activation", pcn_activation_name(v0.activation)));
    PCN_H5_TRY(pcn_h5_attr_write(f, "output_dim", H5T_NATIVE_INT, 1, &K));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "mode", pcn_task_name(pcn_model_mode(m))));
    PCN_H5_TRY(pcn_h5_attr_write(f, "seed", H5T_NATIVE_ULLONG, 1, &seed));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "config", meta && meta->config ? meta->config : ""));
    return PCN_OK;
fail:
    return PCN_EIO;
}

static pcn_status write_state(hid_t f, const pcn_train_position *pos, const pcn_history *h,
                              int rank) {
    hid_t s = -1, g = -1;
    PCN_H5_TRY(s = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    PCN_H5_TRY(pcn_h5_attr_write(s, "epoch", H5T_NATIVE_INT, 1, &pos->epoch));
    PCN_H5_TRY(pcn_h5_attr_write(s, "batch", H5T_NATIVE_INT, 1, &pos->batch));
    PCN_H5_TRY(pcn_h5_attr_write(s, "lr", H5T_NATIVE_DOUBLE, 1, &pos->lr));
    PCN_H5_TRY(pcn_h5_attr_write(s, "plateau_best", H5T_NATIVE_DOUBLE, 1, &pos->plateau_best));
    PCN_H5_TRY(pcn_h5_attr_write(s, "plateau_patience", H5T_NATIVE_INT, 1, &pos->plateau_patience));
    PCN_H5_TRY(pcn_h5_attr_write(s, "epoch_sums", H5T_NATIVE_DOUBLE, 4, pos->epoch_sums));
    PCN_H5_TRY(g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (int k = 0; k < PCN_HIST_COUNT; k++) {
        hsize_t n = pcn_history_len(h, (pcn_history_series)k);
        static const double none = 0.0;
        const double *v = n ? pcn_history_data(h, (pcn_history_series)k) : &none;
        PCN_H5_TRY(write_dataset(g, pcn_history_series_name((pcn_history_series)k),
                                 H5T_NATIVE_DOUBLE, 1, &n, v, rank));
    }
    H5Gclose(g);
    H5Gclose(s);
    return PCN_OK;
fail:
    if (g >= 0) H5Gclose(g);
    if (s >= 0) H5Gclose(s);
    return PCN_EIO;
}

// Everything between create and close; the file handle is closed by the caller.
static pcn_status write_contents(hid_t f, pcn_comm *c, const pcn_model *m,
                                 const pcn_train_position *pos, const pcn_history *h,
                                 const pcn_ckpt_meta *meta) {
    int rank = pcn_dist_rank(c);
    pcn_status st = write_root_attrs(f, m, meta, pcn_dist_size(c));
    if (st == PCN_OK) st = write_model(f, m, rank);
    if (st == PCN_OK && inject_fault)
        st = pcn_set_error(PCN_EIO, "injected fault: checkpoint write failed after the weights");
    if (st == PCN_OK) st = write_state(f, pos, h, rank);
    return st;
}

static pcn_status sync_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0) close(fd);
        return pcn_set_error(PCN_EIO, "%s: cannot sync the new checkpoint", path);
    }
    close(fd);
    return PCN_OK;
}

// Rank 0: path.{keep-2} -> path.{keep-1}, ..., path -> path.1, then tmp -> path; sync dir.
static pcn_status publish(const char *tmp, const char *path, int keep) {
    char from[4096], to[4096];
    for (int k = keep - 1; k >= 1; k--) {
        if (k == 1) snprintf(from, sizeof from, "%s", path);
        else snprintf(from, sizeof from, "%s.%d", path, k - 1);
        snprintf(to, sizeof to, "%s.%d", path, k);
        if (access(from, F_OK) == 0 && rename(from, to) != 0)
            return pcn_set_error(PCN_EIO, "cannot rotate %s to %s", from, to);
    }
    if (rename(tmp, path) != 0) return pcn_set_error(PCN_EIO, "cannot rename %s to %s", tmp, path);
    snprintf(from, sizeof from, "%s", path);
    char *slash = strrchr(from, '/');
    if (slash) *slash = '\0';
    int fd = open(slash ? from : ".", O_RDONLY);
    if (fd >= 0) fsync(fd), close(fd);
    return PCN_OK;
}

static pcn_status ckpt_write(pcn_comm *c, const char *path, const pcn_model *m,
                             const pcn_train_position *pos, const pcn_history *h,
                             const pcn_ckpt_meta *meta, int keep) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    pcn_status st = PCN_OK;
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, pcn_dist_mpi(c), MPI_INFO_NULL) < 0)
        st = pcn_set_error(PCN_EIO, "cannot set up MPI-IO for %s", tmp);
    if (st == PCN_OK && (f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)) < 0)
        st = pcn_set_error(PCN_EIO, "%s: cannot create the checkpoint file (directory "
                           "missing or not writable?)", tmp);
    st = pcn_dist_agree(c, st);
    if (st == PCN_OK) st = pcn_dist_agree(c, write_contents(f, c, m, pos, h, meta));
    if (f >= 0 && H5Fclose(f) < 0 && st == PCN_OK)
        st = pcn_set_error(PCN_EIO, "%s: closing the checkpoint failed", tmp);
    if (fapl >= 0) H5Pclose(fapl);
    st = pcn_dist_agree(c, st);
    if (pcn_dist_rank(c) == 0) {
        pcn_status pub = st;
        if (pub == PCN_OK) pub = sync_file(tmp);
        if (pub == PCN_OK) pub = publish(tmp, path, keep < 1 ? 1 : keep);
        if (pub != PCN_OK) unlink(tmp);
        if (st == PCN_OK) st = pub;
    }
    return pcn_dist_agree(c, st);
}

pcn_status pcn_io_ckpt_write(pcn_comm *c, const char *path, const pcn_model *m,
                             const pcn_train_position *pos, const pcn_history *h,
                             const pcn_ckpt_meta *meta, int keep) {
    pcn_h5_lock(); // a stream-mode prefetch may be reading
    pcn_status st = ckpt_write(c, path, m, pos, h, meta, keep);
    pcn_h5_unlock();
    return st;
}

// ----------------------------------------------------------------------------------------
// Reading (rank 0) and broadcasting
// ----------------------------------------------------------------------------------------

static pcn_status read_header(hid_t f, const char *path, pcn_ckpt_info *info) {
    char fmt[64] = "", act[32] = "", mode[32] = "";
    int version = 0;
    unsigned long long seed = 0;
    if (pcn_h5_attr_read_str(f, "pcn_format", fmt, sizeof fmt) < 0 || strcmp(fmt, "pcn-checkpoint"))
        return pcn_set_error(PCN_EDATA, "%s is not a pcn_dist checkpoint (no pcn_format = "
                             "\"pcn-checkpoint\" attribute)", path);
    if (pcn_h5_attr_read(f, "format_version", H5T_NATIVE_INT, 1, &version) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has no format_version", path);
    if (version != PCN_CKPT_FORMAT_VERSION)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint format version %d, this pcn_dist reads "
                             "version %d; HINT: resume it with the pcn_dist that wrote it, or "
                             "start a new run", path, version, PCN_CKPT_FORMAT_VERSION);
    hid_t a = H5Aopen(f, "dims", H5P_DEFAULT);
    if (a < 0) return pcn_set_error(PCN_EDATA, "%s: checkpoint has no dims", path);
    hid_t sp = H5Aget_space(a);
    hssize_t nd = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Aclose(a);
    if (nd < 2 || nd > 65) return pcn_set_error(PCN_EDATA, "%s: bad dims attribute", path);
    info->n_dims = (int)nd;
    if (pcn_h5_attr_read(f, "dims", H5T_NATIVE_INT, info->n_dims, info->dims) < 0 ||
        pcn_h5_attr_read(f, "output_dim", H5T_NATIVE_INT, 1, &info->output_dim) < 0 ||
        pcn_h5_attr_read(f, "ranks", H5T_NATIVE_INT, 1, &info->ranks) < 0 ||
        pcn_h5_attr_read(f, "seed", H5T_NATIVE_ULLONG, 1, &seed) < 0 ||
        pcn_h5_attr_read_str(f, "activation", act, sizeof act) < 0 ||
        pcn_h5_attr_read_str(f, "mode", mode, sizeof mode) < 0 ||
        pcn_h5_attr_read_str(f, "library_version", info->library_version,
                             sizeof info->library_version) < 0)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint header is incomplete", path);
    info->seed = seed;
    if (pcn_activation_from_name(act, &info->activation) != PCN_OK ||
        pcn_task_from_name(mode, &info->mode) != PCN_OK)
        return pcn_set_error(PCN_EDATA, "%s: checkpoint has activation '%s', mode '%s'", path,
                             act, mode);
    return PCN_OK;
}

static pcn_status read_config(hid_t f, const char *path, pcn_ckpt_info *info) {
    hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
    if (a < 0) return pcn_set_error(PCN_EDATA, "%s: checkpoint has no config", path);
    hid_t t = H5Aget_type(a);
    size_t n = H5Tis_variable_str(t) > 0 ? 1 << 20 : H5Tget_size(t) + 1;
    H5Tclose(t);
    H5Aclose(a);
    info->config = calloc(n, 1);
    if (!info->config || pcn_h5_attr_read_str(f, "config", info->config, n) < 0)
        return pcn_set_error(PCN_EDATA, "%s: cannot read the checkpoint's config", path);
    return PCN_OK;
}

static herr_t read_dataset(hid_t loc, const char *name, hid_t type, hsize_t want, void *out) {
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t sp = H5Dget_space(d);
    herr_t st = (hsize_t)H5Sget_simple_extent_npoints(sp) == want
                    ? H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : -1;
    H5Sclose(sp);
    H5Dclose(d);
    return st;
}

static pcn_status read_weights(hid_t f, const char *path, pcn_model *m) {
    const int L = pcn_model_num_layers(m);
    for (int l = 0; l <= L; l++) {
        char name[40];
        float *w = l < L ? pcn_model_layer(m, l).weight : pcn_model_readout(m);
        hsize_t n = l < L ? (hsize_t)pcn_model_dim(m, l) * pcn_model_dim(m, l + 1)
                          : (hsize_t)pcn_model_output_dim(m) * pcn_model_dim(m, L);
        if (l < L) snprintf(name, sizeof name, "weights/W%d", l);
        else snprintf(name, sizeof name, "weights/Wout");
        if (read_dataset(f, name, H5T_NATIVE_FLOAT, n, w) < 0)
            return pcn_set_error(PCN_EDATA, "%s: /%s missing or not of %llu values", path, name,
                                 (unsigned long long)n);
    }
    return PCN_OK;
}

static pcn_status read_state(hid_t f, const char *path, pcn_ckpt_info *info, pcn_history *h) {
    hid_t s = H5Gopen2(f, "state", H5P_DEFAULT);
    pcn_train_position *p = &info->pos;
    if (s < 0 || pcn_h5_attr_read(s, "epoch", H5T_NATIVE_INT, 1, &p->epoch) < 0 ||
        pcn_h5_attr_read(s, "batch", H5T_NATIVE_INT, 1, &p->batch) < 0 ||
        pcn_h5_attr_read(s, "lr", H5T_NATIVE_DOUBLE, 1, &p->lr) < 0 ||
        pcn_h5_attr_read(s, "plateau_best", H5T_NATIVE_DOUBLE, 1, &p->plateau_best) < 0 ||
        pcn_h5_attr_read(s, "plateau_patience", H5T_NATIVE_INT, 1, &p->plateau_patience) < 0 ||
        pcn_h5_attr_read(s, "epoch_sums", H5T_NATIVE_DOUBLE, 4, p->epoch_sums) < 0) {
        if (s >= 0) H5Gclose(s);
        return pcn_set_error(PCN_EDATA, "%s: checkpoint /state is missing or incomplete", path);
    }
    H5Gclose(s);
    for (int k = 0; h && k < PCN_HIST_COUNT; k++) {
        char name[64];
        snprintf(name, sizeof name, "history/%s", pcn_history_series_name((pcn_history_series)k));
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        if (d < 0) return pcn_set_error(PCN_EDATA, "%s: /%s missing", path, name);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
        herr_t st = n > 0 ? H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) : 0;
        for (hssize_t i = 0; st >= 0 && i < n; i++) pcn_history_append(h, (pcn_history_series)k, v[i]);
        free(v);
        H5Sclose(sp);
        H5Dclose(d);
        if (st < 0) return pcn_set_error(PCN_EDATA, "%s: cannot read /%s", path, name);
    }
    return PCN_OK;
}

// Rank 0's part: open, check, read everything.
static pcn_status read_all(const char *path, pcn_ckpt_info *info, pcn_history *h,
                           pcn_model **out) {
    if (access(path, R_OK) != 0) return pcn_set_error(PCN_EIO, "%s: no such file", path);
    if (pcn_h5_is_hdf5(path) <= 0)
        return pcn_set_error(PCN_EDATA, "%s: not an HDF5 file (or truncated)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return pcn_set_error(PCN_EDATA, "%s: cannot open (truncated or corrupt?)", path);
    pcn_status st = read_header(f, path, info);
    if (st == PCN_OK) st = read_config(f, path, info);
    if (st == PCN_OK) {
        pcn_model_params mp = pcn_model_default_params();
        mp.dims = info->dims, mp.n_dims = info->n_dims, mp.output_dim = info->output_dim;
        mp.activation = info->activation, mp.mode = info->mode;
        *out = pcn_model_init(&mp);
        st = *out ? read_weights(f, path, *out) : PCN_ENOMEM;
    }
    if (st == PCN_OK) st = read_state(f, path, info, h);
    H5Fclose(f);
    return st;
}

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
    if (rank != 0) {
        pcn_model_params mp = pcn_model_default_params();
        mp.dims = info->dims, mp.n_dims = info->n_dims, mp.output_dim = info->output_dim;
        mp.activation = info->activation, mp.mode = info->mode;
        m = pcn_model_init(&mp);
        if (!m) pcn_fatal("out of memory re-creating the checkpoint's model");
    }
    PCN_MPI_CHECK(MPI_Bcast(pcn_model_weights(m), (int)pcn_model_num_weights(m), MPI_FLOAT, 0, comm));
    if (h) bcast_history(c, h);
    return m;
}

void pcn_io_ckpt_info_free(pcn_ckpt_info *info) {
    if (!info) return;
    free(info->config);
    info->config = NULL;
}
