/*
 * h5util.c — see h5util.h. The readers check what a damaged file may claim (counts, string
 * sizes) before they allocate or read, and fail rather than trust it.
 */
#include "h5util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The longest fixed-length string attribute read (a checkpoint's config is a few KiB).
#define STR_MAX ((size_t)16 << 20)

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;

void pcn_h5_lock(void) { pthread_mutex_lock(&h5_mutex); }
void pcn_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

typedef struct {
    char top[160];  // the failed API call's own description
    char deep[256]; // the innermost cause
    int err_no;     // a system error some level reported ("errno = N"), else 0
} h5_stack;

static herr_t walk(unsigned n, const H5E_error2_t *e, void *data) {
    h5_stack *s = data;
    const char *desc = e->desc ? e->desc : "", *no = strstr(desc, "errno = ");
    if (n == 0) snprintf(s->top, sizeof s->top, "%s", desc);
    snprintf(s->deep, sizeof s->deep, "%s", desc);
    if (no && !s->err_no) s->err_no = atoi(no + strlen("errno = "));
    return 0;
}

// The system error goes first: the descriptions quote file names, and a long path would
// cut it off the end of the message.
void pcn_h5_describe(char *buf, size_t size) {
    h5_stack s = {"", "", 0};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk, &s);
    H5Eclear2(H5E_DEFAULT);
    bool two = s.deep[0] && strcmp(s.top, s.deep) != 0;
    char sys[96] = "";
    if (s.err_no > 0) snprintf(sys, sizeof sys, "%s (errno = %d): ", strerror(s.err_no), s.err_no);
    snprintf(buf, size, "%s%s%s%s", sys, s.top[0] ? s.top : "no HDF5 message", two ? "; " : "",
             two ? s.deep : "");
}

pcn_status pcn_h5_path_error(const char *path, pcn_status status, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pcn_set_error(status, "%s: %s", path, msg);
}

pcn_status pcn_h5_fail(const char *call, const char *file, int line, const char *func,
                       const char *path, const char *what) {
    char msg[448];
    pcn_h5_describe(msg, sizeof msg);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (path)
        return pcn_h5_path_error(path, PCN_EIO, "%s (%s failed at %s:%d: %s)",
                                 what ? what : "HDF5 failed", call, base, line, msg);
    return pcn_set_error(PCN_EIO, "%s failed at %s:%d in %s: %s", call, base, line, func, msg);
}

void pcn_h5_close(hid_t *id) {
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

// ----------------------------------------------------------------------------------------
// Attribute writers and plain readers
// ----------------------------------------------------------------------------------------

herr_t pcn_h5_attr_write_as(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n,
                            const void *v) {
    hsize_t dim = (hsize_t)n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0 && H5Aclose(a) < 0) st = -1;
    if (sp >= 0) H5Sclose(sp);
    return st;
}

herr_t pcn_h5_attr_write(hid_t obj, const char *name, hid_t type, int n, const void *v) {
    return pcn_h5_attr_write_as(obj, name, type, type, n, v);
}

herr_t pcn_h5_attr_write_str(hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t st = t < 0 || H5Tset_size(t, strlen(s) + 1) < 0 ||
                        H5Tset_strpad(t, H5T_STR_NULLTERM) < 0
                    ? -1
                    : pcn_h5_attr_write(obj, name, t, 1, s);
    if (t >= 0) H5Tclose(t);
    return st;
}

herr_t pcn_h5_attr_read(hid_t obj, const char *name, hid_t type, int n, void *v) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t count = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    herr_t st = count == n ? H5Aread(a, type, v) : -1;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return st;
}

herr_t pcn_h5_attr_read_str(hid_t obj, const char *name, char *buf, size_t size) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    herr_t st = -1;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0 && H5Sget_simple_extent_npoints(sp) == 1) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            char *s = NULL;
            st = H5Aread(a, mt, &s);
            if (st >= 0) snprintf(buf, size, "%s", s ? s : "");
            if (s) H5free_memory(s);
            H5Tclose(mt);
        } else { // a damaged file may claim any size: refuse absurd ones, not crash on them
            size_t n = H5Tget_size(ft);
            char *tmp = n > 0 && n <= STR_MAX ? calloc(n + 1, 1) : NULL;
            hid_t mt = tmp ? H5Tcopy(H5T_C_S1) : -1;
            if (mt >= 0 && H5Tset_size(mt, n) >= 0 && H5Sget_simple_extent_npoints(sp) == 1)
                st = H5Aread(a, mt, tmp);
            if (st >= 0) snprintf(buf, size, "%s", tmp);
            if (mt >= 0) H5Tclose(mt);
            free(tmp);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return st;
}

htri_t pcn_h5_is_hdf5(const char *path) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Fis_accessible(path, H5P_DEFAULT);
#else
    return H5Fis_hdf5(path);
#endif
}

// ----------------------------------------------------------------------------------------
// Checked readers (a file being validated)
// ----------------------------------------------------------------------------------------

// An HDF5 failure (message "PATH: what (...)") or a bad attribute: sets st, jumps to done.
#define CHECK(call, what) PCN_H5_CHECK(call, at->path, what, st = PCN_EIO; goto done)
#define BAD(status, ...) PCN_H5_BAD(at->path, status, __VA_ARGS__)

void pcn_h5_type_name(hid_t t, char *buf, size_t len) {
    size_t bits = 8 * H5Tget_size(t);
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ENUM: snprintf(buf, len, "enum"); break;
    default: snprintf(buf, len, "an unsupported type (class %d)", (int)H5Tget_class(t)); break;
    }
}

// Opens attribute name (what = its "cannot read" message); *present = false when absent.
// Checks that it holds one value.
static pcn_status attr_open(const pcn_h5_attr_at *at, const char *name, const char *what,
                            hid_t *attr, hid_t *type, bool *present) {
    pcn_status st = PCN_OK;
    htri_t there;
    hid_t space = H5I_INVALID_HID;
    hssize_t npoints;
    *attr = *type = H5I_INVALID_HID;
    CHECK(there = H5Aexists(at->obj, name), what);
    *present = there > 0;
    if (!there) goto done;
    CHECK(*attr = H5Aopen(at->obj, name, H5P_DEFAULT), what);
    CHECK(*type = H5Aget_type(*attr), what);
    CHECK(space = H5Aget_space(*attr), what);
    CHECK(npoints = H5Sget_simple_extent_npoints(space), what);
    if (npoints != 1) BAD(PCN_EDATA, "attribute %s@%s holds %lld values; expected one",
                          at->holder, name, (long long)npoints);
done:
    pcn_h5_close(&space);
    return st;
}

// Reads a string attribute of type ftype into out, in the file's character set.
static pcn_status str_read(const pcn_h5_attr_at *at, hid_t attr, hid_t ftype, const char *what,
                           char *out, size_t len) {
    pcn_status st = PCN_OK;
    hid_t mtype = H5I_INVALID_HID;
    char *buf = NULL;
    htri_t vlen;
    H5T_cset_t cset;
    CHECK(vlen = H5Tis_variable_str(ftype), what);
    CHECK(cset = H5Tget_cset(ftype), what);
    CHECK(mtype = H5Tcopy(H5T_C_S1), what);
    CHECK(H5Tset_cset(mtype, cset), what);
    if (vlen) {
        char *s = NULL;
        CHECK(H5Tset_size(mtype, H5T_VARIABLE), what);
        CHECK(H5Aread(attr, mtype, &s), what);
        snprintf(out, len, "%s", s ? s : "");
        H5free_memory(s);
    } else {
        size_t size = H5Tget_size(ftype);
        CHECK(H5Tset_size(mtype, size + 1), what);
        CHECK(H5Tset_strpad(mtype, H5T_STR_NULLTERM), what);
        if (!(buf = calloc(size + 1, 1))) BAD(PCN_ENOMEM, "out of memory reading %s", what);
        CHECK(H5Aread(attr, mtype, buf), what);
        snprintf(out, len, "%s", buf);
    }
done:
    free(buf);
    pcn_h5_close(&mtype);
    return st;
}

pcn_status pcn_h5_attr_get_str(const pcn_h5_attr_at *at, const char *name, char *out,
                               size_t len, bool *present) {
    hid_t attr, ftype;
    char what[160], dt[48];
    snprintf(what, sizeof what, "cannot read attribute %s@%s", at->holder, name);
    out[0] = '\0';
    pcn_status st = attr_open(at, name, what, &attr, &ftype, present);
    if (st != PCN_OK || !*present) goto done;
    if (H5Tget_class(ftype) != H5T_STRING) {
        pcn_h5_type_name(ftype, dt, sizeof dt);
        BAD(PCN_EDATA, "attribute %s@%s is %s; expected a string", at->holder, name, dt);
    }
    st = str_read(at, attr, ftype, what, out, len);
done:
    pcn_h5_close(&ftype);
    pcn_h5_close(&attr);
    return st;
}

pcn_status pcn_h5_attr_get_num(const pcn_h5_attr_at *at, const char *name, bool want_int,
                               double *out, bool *present) {
    hid_t attr, type;
    char what[160], dt[48];
    snprintf(what, sizeof what, "cannot read attribute %s@%s", at->holder, name);
    pcn_status st = attr_open(at, name, what, &attr, &type, present);
    if (st != PCN_OK || !*present) goto done;
    H5T_class_t cl = H5Tget_class(type);
    if (cl != H5T_INTEGER && (want_int || cl != H5T_FLOAT)) {
        pcn_h5_type_name(type, dt, sizeof dt);
        BAD(PCN_EDATA, "attribute %s@%s is %s; expected %s", at->holder, name, dt,
            want_int ? "an integer" : "a number");
    }
    if (want_int) {
        long long v;
        CHECK(H5Aread(attr, H5T_NATIVE_LLONG, &v), what);
        *out = (double)v;
    } else {
        CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, out), what);
    }
done:
    pcn_h5_close(&type);
    pcn_h5_close(&attr);
    return st;
}
