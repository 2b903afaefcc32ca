/*
 * pcn_predictions.h — the predictions file of `pcn_dist predict` (HDF5), written atomically.
 *
 * Layout: /yhat float32 (n, K), the readout of every row; /pred int32 (n), argmax of each
 * row of yhat (the first largest); root attributes (fixed-length strings) pcn_format =
 * "pcn-predictions", checkpoint, data and split (where the predictions came from).
 *
 * Writing: rank 0 gathers the rows, builds the whole file in memory (HDF5's core driver, no
 * backing store), writes the image with write() to PATH.tmp.<host>.<pid> (created with
 * O_EXCL), fsyncs it and renames it over PATH. On any failure the temporary file is removed,
 * PATH is neither created nor changed, and every rank returns the same status with one
 * message naming PATH and the reason (e.g. "No space left on device").
 */
#ifndef PCN_PREDICTIONS_H
#define PCN_PREDICTIONS_H

#include <stdint.h>

#include "pcn.h"
#include "pcn_dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *checkpoint; // the model's checkpoint path (attribute checkpoint)
    const char *data;       // the data set's path (attribute data)
    const char *split;      // the split predicted, "train" or "test" (attribute split)
} pcn_io_predictions_meta;

// Writes the predictions of n rows of K outputs to path. yhat (n, K) is given on every
// rank with that rank's own rows filled in and every other row zero (as pcn_dist_test
// leaves it); the rows are summed into rank 0's yhat, which then holds them all (the other
// ranks' buffers are unchanged). Collective; every rank returns the same status.
pcn_status pcn_io_predictions_write(pcn_comm *c, const char *path, float *yhat, int64_t n,
                                    int K, const pcn_io_predictions_meta *meta);

#ifdef __cplusplus
}
#endif

#endif // PCN_PREDICTIONS_H
