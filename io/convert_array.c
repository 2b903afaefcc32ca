/*
 * convert_array.c — what the NumPy and HDF5 converters share (see pcn_io.h "Arrays"): four
 * arrays (train x, train y, test x, test y), whatever file they come from, checked and
 * turned into the writer's rows (convert.c).
 *
 * Before any output exists: x has 2 to 4 dimensions [N, ...] and D (the product of the
 * trailing ones) is the same in both splits; both x are uint8 or neither is; y has an
 * integer dtype and shape [N] or [N, 1] with the N of its x; every label of both splits is
 * read, and is >= 0 and below the class count. Then the rows stream: uint8 x is copied as
 * it is (written uint8, scale 1/255), any other x is converted to float32 (scale 1) while
 * it is checked: floats finite (float64 also within float32's range, then rounded to
 * nearest), integers exactly representable in float32 (else refused).
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() that starts
 * with the array's `where` ("F.npz: x_train") and names the row where one is at fault; no
 * value reaches the writer unchecked.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_impl.h"

#define MAX_FEATURES (1 << 24)   // refuse absurd row sizes (as the IDX converter does)
#define MAX_LABEL ((1 << 30) - 1) // the largest label (--classes is at most 2^30)
#define LABEL_ROWS 65536         // labels read per call

size_t convert_dtype_size(convert_dtype t) {
    static const size_t size[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8};
    return size[t];
}

const char *convert_dtype_name(convert_dtype t) {
    static const char *const name[] = {"uint8", "int8",  "uint16", "int16",   "uint32",
                                       "int32", "uint64", "int64", "float32", "float64"};
    return name[t];
}

static bool is_integer(convert_dtype t) { return t != CONVERT_F4 && t != CONVERT_F8; }

// Elements per row: the product of the trailing dimensions.
static int64_t row_size(const convert_array *a) {
    int64_t d = 1;
    for (int i = 1; i < a->ndim; i++) d *= a->dims[i];
    return d;
}

// ----------------------------------------------------------------------------------------
// Shapes
// ----------------------------------------------------------------------------------------

// "(256, 8, 8)" into buf.
static const char *shape_text(const convert_array *a, char *buf, size_t len) {
    size_t k = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "", (long long)a->dims[i]);
    if (k < len) snprintf(buf + k, len - k, a->ndim == 1 ? ",)" : ")");
    return buf;
}

// x: 2 to 4 dimensions, at least one row, each trailing dimension at least 1, D bounded.
static pcn_status check_x(const convert_array *x) {
    char s[256];
    if (x->ndim < 2 || x->ndim > 4)
        return pcn_set_error(PCN_EDATA, "%s: x has shape %s; expected 2 to 4 dimensions "
                             "[N, D], [N, H, W] or [N, A, B, C]", x->where,
                             shape_text(x, s, sizeof s));
    if (x->dims[0] < 1)
        return pcn_set_error(PCN_EDATA, "%s: x has no rows (shape %s)", x->where,
                             shape_text(x, s, sizeof s));
    int64_t d = 1;
    for (int i = 1; i < x->ndim; i++) {
        if (x->dims[i] < 1 || x->dims[i] > MAX_FEATURES || (d *= x->dims[i]) > MAX_FEATURES)
            return pcn_set_error(PCN_EDATA, "%s: x has shape %s; a row must hold 1 to %d "
                                 "values", x->where, shape_text(x, s, sizeof s), MAX_FEATURES);
    }
    return PCN_OK;
}

// y: an integer dtype, shape [N] or [N, 1], N that of its x.
static pcn_status check_y(const convert_array *y, const convert_array *x) {
    char s[256];
    if (!is_integer(y->dtype))
        return pcn_set_error(PCN_EDATA, "%s: labels have dtype %s; expected an integer dtype "
                             "(class numbers 0, 1, ...)", y->where, convert_dtype_name(y->dtype));
    if (y->ndim < 1 || y->ndim > 2 || (y->ndim == 2 && y->dims[1] != 1))
        return pcn_set_error(PCN_EDATA, "%s: labels have shape %s; expected [N] or [N, 1]",
                             y->where, shape_text(y, s, sizeof s));
    if (y->dims[0] != x->dims[0])
        return pcn_set_error(PCN_EDATA, "%s: %lld labels, but %s has %lld rows", y->where,
                             (long long)y->dims[0], x->where, (long long)x->dims[0]);
    return PCN_OK;
}

// Both splits: each x and y, then the splits against each other; fills d, shape, xtype.
static pcn_status check_shapes(convert_array *const a[4], convert_desc *desc) {
    pcn_status st;
    for (int s = 0; s < 4; s += 2)
        if ((st = check_x(a[s])) != PCN_OK || (st = check_y(a[s + 1], a[s])) != PCN_OK)
            return st;
    int64_t d = row_size(a[0]), dt = row_size(a[2]);
    if (dt != d)
        return pcn_set_error(PCN_EDATA, "%s: rows of %lld values, but %s has rows of %lld",
                             a[2]->where, (long long)dt, a[0]->where, (long long)d);
    if ((a[0]->dtype == CONVERT_U1) != (a[2]->dtype == CONVERT_U1))
        return pcn_set_error(PCN_EDATA, "%s: dtype %s, but %s has %s: give both x the same "
                             "dtype (uint8 is scaled by 1/255, every other dtype is not)",
                             a[2]->where, convert_dtype_name(a[2]->dtype), a[0]->where,
                             convert_dtype_name(a[0]->dtype));
    const convert_array *x = a[0];
    desc->d = d;
    desc->xtype = x->dtype == CONVERT_U1 ? CONVERT_X_U8 : CONVERT_X_F32;
    desc->shape[0] = x->ndim == 4 ? (int32_t)x->dims[1] : 1;
    desc->shape[1] = x->ndim >= 3 ? (int32_t)x->dims[x->ndim - 2] : 1;
    desc->shape[2] = x->ndim >= 3 ? (int32_t)x->dims[x->ndim - 1] : (int32_t)d;
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Labels
// ----------------------------------------------------------------------------------------

// Label i of a raw buffer of dtype t as a signed value; *big when it exceeds int64.
static int64_t raw_int(convert_dtype t, const void *raw, int64_t i, bool *big) {
    switch (t) {
    case CONVERT_U1: return ((const uint8_t *)raw)[i];
    case CONVERT_I1: return ((const int8_t *)raw)[i];
    case CONVERT_U2: return ((const uint16_t *)raw)[i];
    case CONVERT_I2: return ((const int16_t *)raw)[i];
    case CONVERT_U4: return ((const uint32_t *)raw)[i];
    case CONVERT_I4: return ((const int32_t *)raw)[i];
    case CONVERT_U8: {
        uint64_t v = ((const uint64_t *)raw)[i];
        *big = v > INT64_MAX;
        return *big ? INT64_MAX : (int64_t)v;
    }
    default: return ((const int64_t *)raw)[i];
    }
}

// Checks rows [row0, row0 + rows) of labels (raw, dtype of y) and stores them in out.
static pcn_status labels_take(const convert_array *y, const void *raw, int64_t row0,
                              int64_t rows, int classes, int *max_label, int32_t *out) {
    for (int64_t i = 0; i < rows; i++) {
        bool big = false;
        int64_t v = raw_int(y->dtype, raw, i, &big);
        long long r = (long long)(row0 + i);
        if (v < 0)
            return pcn_set_error(PCN_EDATA, "%s: label %lld at row %lld is negative", y->where,
                                 (long long)v, r);
        if (classes > 0 && v >= classes)
            return pcn_set_error(PCN_EDATA, "%s: label %lld at row %lld is out of range for "
                                 "%d classes", y->where, (long long)v, r, classes);
        if (big || v > MAX_LABEL)
            return pcn_set_error(PCN_EDATA, "%s: label %s%lld at row %lld is too large (at "
                                 "most %d)", y->where, big ? "above " : "", (long long)v, r,
                                 MAX_LABEL);
        if (v > *max_label) *max_label = (int)v;
        out[row0 + i] = (int32_t)v;
    }
    return PCN_OK;
}

// Reads and checks every label of y into *labels (malloc'd).
static pcn_status labels_load(convert_array *y, int classes, int *max_label, int32_t **labels) {
    int64_t n = y->dims[0], step = n < LABEL_ROWS ? n : LABEL_ROWS;
    int32_t *out = *labels = malloc((size_t)n * sizeof *out);
    void *raw = malloc((size_t)step * convert_dtype_size(y->dtype));
    pcn_status st = PCN_OK;
    if (!out || !raw)
        st = pcn_set_error(PCN_ENOMEM, "%s: out of memory for %lld labels", y->where,
                           (long long)n);
    for (int64_t row = 0; st == PCN_OK && row < n; row += step) {
        int64_t rows = n - row < step ? n - row : step;
        if ((st = y->read(y, raw, rows)) == PCN_OK)
            st = labels_take(y, raw, row, rows, classes, max_label, out);
    }
    free(raw);
    return st;
}

// ----------------------------------------------------------------------------------------
// Rows of x
// ----------------------------------------------------------------------------------------

// A split for the writer: its x array, all its labels, the rows handed out so far.
typedef struct {
    convert_array *x;
    int32_t *y;
    int64_t next, d;
    convert_xtype xtype;
    void *raw;     // raw rows before conversion (float32 output)
    size_t raw_cap;
} split;

// "WHERE: WHAT at row R, column C" for value k of the rows being read (C counts in the
// flattened row).
__attribute__((format(printf, 3, 4)))
static pcn_status value_error(const split *s, int64_t k, const char *what, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(msg, sizeof msg, what, ap);
    va_end(ap);
    return pcn_set_error(PCN_EDATA, "%s: %s at row %lld, column %lld", s->x->where, msg,
                         (long long)(s->next + k / s->d), (long long)(k % s->d));
}

// An integer v (of any type) as float32 if exact; else refuses it naming row and column.
#define INT_TO_F32(T, LIMIT)                                                                  \
    for (int64_t k = 0; k < count; k++) {                                                     \
        T v = ((const T *)raw)[k];                                                            \
        float f = (float)v;                                                                   \
        if ((LIMIT) && (f >= (float)(LIMIT) || (T)f != v))                                     \
            return value_error(s, k, "value %lld is not exactly representable as float32",   \
                               (long long)v);                                                 \
        out[k] = f;                                                                           \
    }                                                                                         \
    return PCN_OK

#define LIMIT_NONE 0.0
static pcn_status ints_to_f32(const split *s, const void *raw, float *out, int64_t count) {
    switch (s->x->dtype) {
    case CONVERT_I1: INT_TO_F32(int8_t, LIMIT_NONE);
    case CONVERT_U2: INT_TO_F32(uint16_t, LIMIT_NONE);
    case CONVERT_I2: INT_TO_F32(int16_t, LIMIT_NONE);
    case CONVERT_U4: INT_TO_F32(uint32_t, 4294967296.0);
    case CONVERT_I4: INT_TO_F32(int32_t, 2147483648.0);
    case CONVERT_U8: INT_TO_F32(uint64_t, 18446744073709551616.0);
    default: INT_TO_F32(int64_t, 9223372036854775808.0);
    }
}

// float32 and float64 values: finite, float64 within float32's range (then rounded).
static pcn_status floats_to_f32(const split *s, const void *raw, float *out, int64_t count) {
    bool f64 = s->x->dtype == CONVERT_F8;
    for (int64_t k = 0; k < count; k++) {
        double v = f64 ? ((const double *)raw)[k] : ((const float *)raw)[k];
        if (isnan(v)) return value_error(s, k, "NaN");
        if (isinf(v)) return value_error(s, k, "%s", v > 0 ? "Inf" : "-Inf");
        if (fabs(v) > FLT_MAX)
            return value_error(s, k, "value %g is beyond float32's range", v);
        out[k] = (float)v;
    }
    return PCN_OK;
}

// The writer's read: the next rows of x (copied, or converted and checked) and their labels.
static pcn_status split_read(void *ctx, void *x, int32_t *y, int64_t rows) {
    split *s = ctx;
    int64_t count = rows * s->d;
    size_t bytes = (size_t)count * convert_dtype_size(s->x->dtype);
    pcn_status st;
    if (s->xtype == CONVERT_X_U8) {
        st = s->x->read(s->x, x, rows);
    } else {
        if (bytes > s->raw_cap) {
            free(s->raw);
            if (!(s->raw = malloc(bytes)))
                return pcn_set_error(PCN_ENOMEM, "%s: out of memory", s->x->where);
            s->raw_cap = bytes;
        }
        st = s->x->read(s->x, s->raw, rows);
        if (st == PCN_OK)
            st = is_integer(s->x->dtype) ? ints_to_f32(s, s->raw, x, count)
                                         : floats_to_f32(s, s->raw, x, count);
    }
    if (st != PCN_OK) return st;
    memcpy(y, s->y + s->next, (size_t)rows * sizeof *y);
    s->next += rows;
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// One conversion
// ----------------------------------------------------------------------------------------

pcn_status convert_arrays_run(convert_array *const a[4], const char *out,
                              const pcn_io_convert_params *p, const char *format,
                              const char *input) {
    convert_desc desc = {0};
    split tr = {.x = a[0]}, te = {.x = a[2]};
    int max_label = 0;
    pcn_status st = check_shapes(a, &desc);
    if (st == PCN_OK) st = labels_load(a[1], p->classes, &max_label, &tr.y);
    if (st == PCN_OK) st = labels_load(a[3], p->classes, &max_label, &te.y);
    char *source = st == PCN_OK ? convert_source_text(p, format, input) : NULL;
    if (st == PCN_OK && !source) st = pcn_set_error(PCN_ENOMEM, "out of memory");
    if (st == PCN_OK) {
        desc.classes = p->classes > 0 ? p->classes : (max_label + 1 < 2 ? 2 : max_label + 1);
        desc.source = source;
        tr.d = te.d = desc.d;
        tr.xtype = te.xtype = desc.xtype;
        convert_split train = {convert_limited(a[0]->dims[0], p->limit_train), split_read, &tr};
        convert_split test = {convert_limited(a[2]->dims[0], p->limit_test), split_read, &te};
        st = convert_run(out, &desc, &train, &test);
    }
    free(source);
    free(tr.y), free(te.y), free(tr.raw), free(te.raw);
    return st;
}
