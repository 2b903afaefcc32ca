/*
 * convert_impl.h — what the converters share (private to io/): the row source a format hands
 * the writer, the description of the data set to write, and the writer itself (convert.c);
 * then the arrays of the NumPy and HDF5 converters (convert_array.c).
 * convert_idx.c and convert_cifar.c open and check their inputs, then call convert_run;
 * convert_npy.c and convert_h5.c open their four arrays and call convert_arrays_run, which
 * checks shapes, dtypes and labels and calls convert_run.
 */
#ifndef PCN_CONVERT_IMPL_H
#define PCN_CONVERT_IMPL_H

#include <stdint.h>

#include "pcn_io.h"

// How x is stored in the written data set.
typedef enum {
    CONVERT_X_U8 = 0, // uint8 with scale 1/255 (IDX, CIFAR-10, uint8 arrays)
    CONVERT_X_F32 = 1 // float32 with scale 1 (arrays of every other dtype)
} convert_xtype;

// A split's rows in order, for the writer.
typedef struct {
    int64_t n; // rows to write (after the limit)
    // Reads the next `rows` rows: values into x (rows, d) as uint8_t or float (the desc's
    // xtype), labels into y (rows). PCN_OK, or an error with its one-line message set.
    pcn_status (*read)(void *ctx, void *x, int32_t *y, int64_t rows);
    void *ctx;
} convert_split;

// What the root attributes of the written data set say, and how x is stored.
typedef struct {
    int64_t d;           // features per row
    int32_t shape[3];    // channels, rows, cols
    int classes;         // num_classes
    const char *source;  // source attribute
    convert_xtype xtype; // x's stored type (0: uint8)
} convert_desc;

// Writes both splits, /norm and the attributes into OUT.tmp.<pid> and renames it to out
// (see pcn_io.h "Converters"); on failure nothing is left and the error is one line. Local.
pcn_status convert_run(const char *out, const convert_desc *desc, convert_split *train,
                       convert_split *test);

// Checks the output path and the parameters every format shares: PCN_EINVAL naming the
// field. Local.
pcn_status convert_check_params(const pcn_io_convert_params *p, const char *out);
// n, or limit when it is positive and smaller. Local.
int64_t convert_limited(int64_t n, int64_t limit);
// The source attribute: the caller's text, or "<format>: <path>" (malloc'd; NULL when out of
// memory). Local.
char *convert_source_text(const pcn_io_convert_params *p, const char *format, const char *path);

// ----------------------------------------------------------------------------------------
// Arrays of numbers (NumPy .npy/.npz, HDF5 datasets): convert_array.c
// ----------------------------------------------------------------------------------------

// The element types an array may hold (NumPy's u1 .. f8), in native byte order in memory.
typedef enum {
    CONVERT_U1, CONVERT_I1, CONVERT_U2, CONVERT_I2, CONVERT_U4, CONVERT_I4, CONVERT_U8,
    CONVERT_I8, CONVERT_F4, CONVERT_F8
} convert_dtype;

#define CONVERT_MAX_DIMS 64 // NumPy's own limit

// One array of a format, read in row order (row = the first dimension). The format fills
// every field; where is the prefix of every message about the array ("F.npz: x_train").
typedef struct convert_array convert_array;
struct convert_array {
    char where[600];
    convert_dtype dtype;
    int ndim;
    int64_t dims[CONVERT_MAX_DIMS];
    // Reads the next `rows` rows' elements into buf (native byte order). PCN_OK, or an
    // error with its one-line message set (prefixed with where).
    pcn_status (*read)(convert_array *a, void *buf, int64_t rows);
    void *ctx; // the format's state
};

// Bytes per element of t. Local.
size_t convert_dtype_size(convert_dtype t);
// NumPy's name of t ("uint8", "float32", ...). Local.
const char *convert_dtype_name(convert_dtype t);

// Checks the four arrays (train x, train y, test x, test y, in that order) against the rules
// of pcn_io.h "Arrays", reads every label, and writes out through convert_run with the
// source attribute convert_source_text(p, format, input). Local.
pcn_status convert_arrays_run(convert_array *const arrays[4], const char *out,
                              const pcn_io_convert_params *p, const char *format,
                              const char *input);

#endif // PCN_CONVERT_IMPL_H
