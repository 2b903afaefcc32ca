/*
 * convert_impl.h — what the converters share (private to io/): the row source a format hands
 * the writer, the description of the data set to write, and the writer itself (convert.c).
 * convert_idx.c and convert_cifar.c open and check their inputs, then call convert_run.
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

#endif // PCN_CONVERT_IMPL_H
