/*
 * data.c — the in-memory data source: pcn_data over caller-owned arrays.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

// ----------------------------------------------------------------------------------------
// Arrays source
// ----------------------------------------------------------------------------------------

static pcn_status arrays_read(void *ctx, const int64_t *rows, int count, float *x,
                              int32_t *labels, float *targets) {
    const pcn_arrays *a = ctx;
    for (int i = 0; i < count; i++) {
        int64_t r = rows[i];
        if (r < 0 || r >= a->n)
            return pcn_set_error(PCN_EINVAL, "row %lld outside [0, %lld)", (long long)r,
                                 (long long)a->n);
        memcpy(x + (size_t)i * a->x_dim, a->x + (size_t)r * a->x_dim,
               (size_t)a->x_dim * sizeof(float));
        if (a->y_dim == 0 && labels) labels[i] = a->labels[r];
        if (a->y_dim > 0 && targets)
            memcpy(targets + (size_t)i * a->y_dim, a->targets + (size_t)r * a->y_dim,
                   (size_t)a->y_dim * sizeof(float));
    }
    return PCN_OK;
}

pcn_data pcn_data_from_arrays(const pcn_arrays *a) {
    return (pcn_data){
        .n = a->n,
        .x_dim = a->x_dim,
        .y_dim = a->y_dim,
        .ctx = (void *)a,
        .read = arrays_read,
    };
}
