/*
 * pcn_dataset.h — the parallel HDF5 data set reader: opens one split ("train" or "test") of
 * a pcn-dataset file (schema version 1, see pcn_io.h and DESIGN.md "Files") on every rank
 * of a communicator and hands the trainer a pcn_data source over it.
 *
 * Two modes:
 *   PCN_IO_MEMORY (default) — the split is read once at open, collectively, into one MPI
 *     shared-memory window per node (the node's local rank 0 holds it; x keeps its file
 *     dtype, so uint8 input costs 1 byte a value). Every value is checked at open (labels in
 *     [0, num_classes), every float finite). read() is Local: it copies and converts rows.
 *   PCN_IO_STREAM — nothing but metadata is read at open; read() is Collective and reads
 *     exactly the requested rows of every rank in one collective H5Dread per dataset.
 *     Labels are checked against num_classes per batch (the trainer itself checks
 *     finiteness and labels against its output_dim). Prefetch: the trainer passes the
 *     next batch's rows to source.prefetch; a thread reads them through its own POSIX-driver
 *     handle (independent reads, under the process's HDF5 lock, no MPI) while the batch
 *     computes, and the next read() uses them when every rank's prefetch matches its request
 *     (one small allreduce decides); otherwise all ranks read collectively as above.
 *
 * Values handed out, computed in float in this order:
 *   x = (float)x_file * (float)scale;  then, where /norm exists, x = (x - mean[j]) / std[j];
 *   labels as int32 (from any integer type); targets as float32.
 *
 * Errors: pcn_io_dataset_open agrees every check across the ranks (pcn_dist_agree), so on a
 * bad file every rank returns NULL with the same one-line pcn_last_error() that starts with
 * the path, e.g. "data/fm.h5: /train/x has dtype int16; expected uint8 or float32".
 * Opening turns HDF5's automatic error printing off for the process (H5Eset_auto2), so
 * that only these messages appear.
 */
#ifndef PCN_DATASET_H
#define PCN_DATASET_H

#include <stdint.h>

#include "pcn.h"
#include "pcn_dist.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PCN_IO_MEMORY = 0, // whole split in node shared memory; read() Local
    PCN_IO_STREAM = 1  // rows read from the file per batch; read() Collective
} pcn_io_mode;

typedef struct pcn_dataset pcn_dataset;

// Opens split ("train" or "test") of the file at path on every rank of c with the MPI-IO
// driver, validates the schema (and in memory mode every value) and, in memory mode, loads
// the split. Collective. On any problem every rank returns NULL and pcn_last_error() holds
// the same one-line message naming the file and the problem.
pcn_dataset *pcn_io_dataset_open(pcn_comm *c, const char *path, const char *split,
                                 pcn_io_mode mode);
// Closes the file / frees the shared window. Collective; accepts NULL.
void pcn_io_dataset_close(pcn_dataset *ds);

// The trainer's data source: n = rows, x_dim = features, y_dim = 0 (labels) or K
// (targets), read = this reader. In stream mode read is Collective: every rank calls it for
// every batch (count 0 allowed) with distinct rows. Rows outside [0, n) give PCN_EINVAL,
// labels outside [0, num_classes) PCN_EDATA, HDF5 failures PCN_EIO (messages name the file).
// The source points to ds: valid until pcn_io_dataset_close. Local.
pcn_data pcn_io_dataset_source(pcn_dataset *ds);

int64_t pcn_io_dataset_rows(const pcn_dataset *ds);             // N. Local.
// Stream mode: how many reads the background prefetch served (for tests). Local.
int64_t pcn_io_dataset_prefetch_hits(const pcn_dataset *ds);
int pcn_io_dataset_features(const pcn_dataset *ds);       // D. Local.
int pcn_io_dataset_num_classes(const pcn_dataset *ds);    // 0 for regression. Local.
int pcn_io_dataset_target_width(const pcn_dataset *ds);   // 0 for labels, K for targets. Local.
pcn_task pcn_io_dataset_task(const pcn_dataset *ds);      // Local.

#ifdef __cplusplus
}
#endif

#endif // PCN_DATASET_H
