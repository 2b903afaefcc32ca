/*
 * h5util.c — see h5util.h. The readers check what a damaged file may claim (counts, string
 * sizes) before they allocate or read, and fail rather than trust it.
 */
#include "h5util.h"

#include <pthread.h>
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

void pcn_h5_fail(const char *call, const char *file, int line, const char *func) {
    char msg[448];
    pcn_h5_describe(msg, sizeof msg);
    const char *base = strrchr(file, '/');
    pcn_set_error(PCN_EIO, "%s failed at %s:%d in %s: %s", call, base ? base + 1 : file, line,
                  func, msg);
}

herr_t pcn_h5_attr_write(hid_t obj, const char *name, hid_t type, int n, const void *v) {
    hsize_t dim = (hsize_t)n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

herr_t pcn_h5_attr_write_str(hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) + 1);
    herr_t st = pcn_h5_attr_write(obj, name, t, 1, s);
    H5Tclose(t);
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
