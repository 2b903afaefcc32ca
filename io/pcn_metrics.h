/*
 * pcn_metrics.h — the metrics file of a training run (--metrics): JSON Lines, one object per
 * batch, per epoch and one for the final test, written by one process (rank 0).
 *
 * Records (keys in this order; numbers printed with %.10g, a non-finite number as null):
 *   {"event":"batch","epoch":E,"batch":B,"samples":S,"energy":..,"pre_learn_energy":..,
 *    "lr":..,"running_accuracy":..,"samples_per_s":..,"seconds":..,
 *    "rank0_seconds":{"inference":..,"learning":..,"collectives":..,"io":..,"checkpoint":..}}
 *   {"event":"epoch","epoch":E,"ranks":P,"energy":..,"pre_learn_energy":..,
 *    "train_accuracy":..,"lr":..,"seconds":..,"samples_per_s":..,
 *    "seconds_max":{<the five phases>},"seconds_mean":{<the five phases>}}
 *   {"event":"test","samples":S,"accuracy":..,"top_k":..,"energy":..,"mse":..,"seconds":..}
 *
 * Invariants: the file only ever holds whole lines. Each record is formatted in memory and
 * handed to write() in one piece; a failed or short write (a full disk, a quota) cuts the
 * file back to the end of the previous record and makes the handle failed: every later call
 * returns the same error without writing. Epoch and test records are fsync'ed, so a crash
 * loses at most the batch lines of the running epoch. Every function is Local; the program
 * agrees a failure across its ranks (pcn_dist_agree) at the next batch boundary.
 */
#ifndef PCN_METRICS_H
#define PCN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "pcn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pcn_io_metrics pcn_io_metrics;

// The five phases of the per-phase seconds, in record order.
#define PCN_IO_METRICS_PHASES 5 // inference, learning, collectives, io, checkpoint

typedef struct {
    int epoch, batch;           // the batch just done (0-based)
    int64_t samples;            // its global row count
    double energy;              // batch energy after learning
    double pre_learn_energy;    // batch energy before learning
    double lr;                  // lr_learn the batch used
    double running_accuracy;    // running train accuracy (NaN: none yet)
    double samples_per_s, seconds;          // wall clock of the batch on rank 0
    double rank0_seconds[PCN_IO_METRICS_PHASES]; // rank 0's seconds per phase in the batch
} pcn_io_metrics_batch_rec;

typedef struct {
    int epoch, ranks;           // the epoch just done (0-based), ranks of the run
    double energy, pre_learn_energy, train_accuracy, lr; // NaN where there is none
    double seconds, samples_per_s;                       // wall clock of the epoch
    double seconds_max[PCN_IO_METRICS_PHASES];  // per phase: max over ranks
    double seconds_mean[PCN_IO_METRICS_PHASES]; // per phase: mean over ranks
} pcn_io_metrics_epoch_rec;

typedef struct {
    int64_t samples;
    double accuracy, top_k, energy, mse, seconds;
} pcn_io_metrics_test_rec;

// Opens path for writing: truncated, or with append (a resumed run) added to. NULL on
// failure with "PATH: cannot open the metrics file for writing: <strerror>" in
// pcn_last_error(). Local.
pcn_io_metrics *pcn_io_metrics_open(const char *path, bool append);

// Appends one record. PCN_OK, or PCN_EIO with "PATH: cannot write the metrics: <strerror>"
// in pcn_last_error() (then and on every later call). Local.
pcn_status pcn_io_metrics_batch(pcn_io_metrics *m, const pcn_io_metrics_batch_rec *r);
// As pcn_io_metrics_batch, then fsync. Local.
pcn_status pcn_io_metrics_epoch(pcn_io_metrics *m, const pcn_io_metrics_epoch_rec *r);
pcn_status pcn_io_metrics_test(pcn_io_metrics *m, const pcn_io_metrics_test_rec *r);

// Syncs and closes the file and frees m (NULL is fine): PCN_EIO if the handle had failed or
// the sync or close fails. Local.
pcn_status pcn_io_metrics_close(pcn_io_metrics *m);

#ifdef __cplusplus
}
#endif

#endif // PCN_METRICS_H
