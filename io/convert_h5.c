/*
 * convert_h5.c — the HDF5 array converter (see pcn_io.h "Arrays"): four datasets of any
 * HDF5 file, named by their paths, read with the serial HDF5 API (default file driver, no
 * MPI) in hyperslabs of whole rows and handed to convert_array.c. Each dataset is read in
 * the native memory type of its dtype, so HDF5 handles byte order, chunking and filters.
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() naming the
 * file, the dataset and the problem; HDF5's automatic error printing is off while the
 * conversion runs and restored after; every handle opened here is closed before returning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_impl.h"
#include "h5util.h"

// One dataset: what convert_array.c sees, its handle, the next row to read.
typedef struct {
    convert_array a;
    hid_t dset;
    int64_t next;
} h5arr;

static hid_t mem_type(convert_dtype t) {
    switch (t) {
    case CONVERT_U1: return H5T_NATIVE_UINT8;
    case CONVERT_I1: return H5T_NATIVE_INT8;
    case CONVERT_U2: return H5T_NATIVE_UINT16;
    case CONVERT_I2: return H5T_NATIVE_INT16;
    case CONVERT_U4: return H5T_NATIVE_UINT32;
    case CONVERT_I4: return H5T_NATIVE_INT32;
    case CONVERT_U8: return H5T_NATIVE_UINT64;
    case CONVERT_I8: return H5T_NATIVE_INT64;
    case CONVERT_F4: return H5T_NATIVE_FLOAT;
    default: return H5T_NATIVE_DOUBLE;
    }
}

// convert_array's read: rows [next, next + rows) as one hyperslab.
static pcn_status h5_read(convert_array *a, void *buf, int64_t rows) {
    h5arr *h = a->ctx;
    hsize_t start[CONVERT_MAX_DIMS], count[CONVERT_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) start[i] = 0, count[i] = (hsize_t)a->dims[i];
    start[0] = (hsize_t)h->next, count[0] = (hsize_t)rows;
    hid_t fspace = H5Dget_space(h->dset), mspace = -1;
    herr_t rc = fspace < 0 ? -1
                           : H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    if (rc >= 0) rc = (mspace = H5Screate_simple(a->ndim, count, NULL)) < 0 ? -1 : 0;
    if (rc >= 0) rc = H5Dread(h->dset, mem_type(a->dtype), mspace, fspace, H5P_DEFAULT, buf);
    pcn_h5_close(&mspace);
    pcn_h5_close(&fspace);
    if (rc < 0) {
        char why[512];
        pcn_h5_describe(why, sizeof why);
        return pcn_set_error(PCN_EIO, "%s: cannot read rows %lld to %lld: %s", a->where,
                             (long long)h->next, (long long)(h->next + rows - 1), why);
    }
    h->next += rows;
    return PCN_OK;
}

// Whether every link on the path exists ("/a/b/c": /a, /a/b, /a/b/c).
static bool path_exists(hid_t file, const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return false;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        htri_t ok = H5Lexists(file, buf, H5P_DEFAULT);
        *p = '/';
        if (ok <= 0) return false;
    }
    return H5Lexists(file, buf, H5P_DEFAULT) > 0;
}

// The dataset's dtype as one of convert_dtype, or an error naming the type.
static pcn_status h5_dtype(h5arr *h) {
    hid_t t = H5Dget_type(h->dset);
    H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    size_t size = t < 0 ? 0 : H5Tget_size(t);
    pcn_status st = PCN_OK;
    if (c == H5T_INTEGER && (size == 1 || size == 2 || size == 4 || size == 8)) {
        int k = size == 1 ? 0 : size == 2 ? 2 : size == 4 ? 4 : 6;
        h->a.dtype = (convert_dtype)(k + (H5Tget_sign(t) == H5T_SGN_2 ? 1 : 0));
    } else if (c == H5T_FLOAT && (size == 4 || size == 8)) {
        h->a.dtype = size == 4 ? CONVERT_F4 : CONVERT_F8;
    } else {
        char name[64] = "unknown";
        if (t >= 0) pcn_h5_type_name(t, name, sizeof name);
        st = pcn_set_error(PCN_EDATA, "%s: dtype %s is not supported (integers of 1 to 8 bytes, "
                           "float32 and float64 are)", h->a.where, name);
    }
    pcn_h5_close(&t);
    return st;
}

// Opens the dataset at dpath and reads its dtype and shape.
static pcn_status h5_open_array(h5arr *h, hid_t file, const char *fpath, const char *dpath) {
    snprintf(h->a.where, sizeof h->a.where, "%s: %s", fpath, dpath);
    char why[512];
    if (!path_exists(file, dpath))
        return pcn_set_error(PCN_EDATA, "%s: no such dataset in the file", h->a.where);
    if ((h->dset = H5Dopen2(file, dpath, H5P_DEFAULT)) < 0) {
        pcn_h5_describe(why, sizeof why);
        return pcn_set_error(PCN_EDATA, "%s: not a dataset (a group?)", h->a.where);
    }
    pcn_status st = h5_dtype(h);
    if (st != PCN_OK) return st;
    hid_t space = H5Dget_space(h->dset);
    int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK];
    if (ndim < 0 || ndim > CONVERT_MAX_DIMS || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        st = pcn_set_error(PCN_EDATA, "%s: cannot read its shape", h->a.where);
    pcn_h5_close(&space);
    if (st != PCN_OK) return st;
    h->a.ndim = ndim;
    for (int i = 0; i < ndim; i++) h->a.dims[i] = (int64_t)dims[i];
    h->a.read = h5_read, h->a.ctx = h;
    return PCN_OK;
}

// Opens the file (with a plain message for a missing or non-HDF5 one) and the datasets.
static pcn_status h5_open_all(const char *path, const char *const names[4], hid_t *file,
                              h5arr *h) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    fclose(fp);
    if (pcn_h5_is_hdf5(path) <= 0)
        return pcn_set_error(PCN_EDATA, "%s: not an HDF5 file", path);
    if ((*file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        char why[512];
        pcn_h5_describe(why, sizeof why);
        return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, why);
    }
    pcn_status st = PCN_OK;
    for (int i = 0; i < 4 && st == PCN_OK; i++) st = h5_open_array(&h[i], *file, path, names[i]);
    return st;
}

pcn_status pcn_io_convert_h5(const char *path, const pcn_io_array_names *names,
                             const char *out, const pcn_io_convert_params *params) {
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    pcn_status st = convert_check_params(&p, out);
    if (st != PCN_OK) return st;
    if (!path || !*path) return pcn_set_error(PCN_EINVAL, "no input HDF5 file given");
    const char *n[4] = {names && names->train_x ? names->train_x : "/train/x",
                        names && names->train_y ? names->train_y : "/train/y",
                        names && names->test_x ? names->test_x : "/test/x",
                        names && names->test_y ? names->test_y : "/test/y"};
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = -1;
    h5arr *h = calloc(4, sizeof *h);
    if (!h) st = pcn_set_error(PCN_ENOMEM, "out of memory");
    for (int i = 0; h && i < 4; i++) h[i].dset = -1;
    if (st == PCN_OK) st = h5_open_all(path, n, &file, h);
    if (st == PCN_OK) {
        convert_array *const a[4] = {&h[0].a, &h[1].a, &h[2].a, &h[3].a};
        st = convert_arrays_run(a, out, &p, "hdf5", path);
    }
    for (int i = 0; h && i < 4; i++) pcn_h5_close(&h[i].dset);
    pcn_h5_close(&file);
    free(h);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    return st;
}
