/*
 * pcn_ckpt.h — checkpoints: the model, where training stands, its history and the run's
 * configuration in one HDF5 file (format version 1), written collectively and atomically.
 *
 * Layout: root attributes pcn_format = "pcn-checkpoint", format_version, library_version,
 * ranks, dims (int array), activations (one fixed-length string of PCN_CKPT_ACT_LEN bytes
 * per layer l = 0..L-1), activation (their common name, or "mixed"), output_dim, mode,
 * seed, config (the run's settings as INI text, the --config format); /weights/W0 ..
 * /weights/W{L-1}, /weights/Wout float32 (out x in); /state attributes epoch, batch, lr,
 * plateau_best, plateau_patience, epoch_sums[4]; /history/<series> float64 vectors
 * (pcn_history_series_name). Every dataset has a uint32 attribute checksum (Jenkins lookup3
 * of its little-endian bytes, as HDF5's own metadata checksums); the file is in the HDF5 1.8
 * format, whose metadata carries checksums.
 *
 * Version 1 files written before `activations` and `checksum` existed are read as before:
 * `activation` applies to every layer and datasets without a checksum are not checked. A
 * file whose layers differ says activation = "mixed", which such older readers refuse.
 */
#ifndef PCN_CKPT_H
#define PCN_CKPT_H

#include "pcn.h"
#include "pcn_dist.h"

#define PCN_CKPT_FORMAT_VERSION 1

typedef struct {
    uint64_t seed;          // the run's seed
    const char *config;     // the run's settings as INI text (may be NULL)
} pcn_ckpt_meta;

// Length of one name in the `activations` attribute (NUL-padded).
#define PCN_CKPT_ACT_LEN 16

// Writes path atomically: rank 0 alone writes path.tmp.<host>.<pid>.<counter> (created
// with O_EXCL, so never shared with another run or write), syncs it and, once every rank
// agrees, renames it over path (with keep > 1 the previous files are kept as path.1 ..
// path.{keep-1}). Collective. On failure every rank returns the same status, the temporary
// file is removed and path is untouched.
pcn_status pcn_io_ckpt_write(pcn_comm *c, const char *path, const pcn_model *model,
                             const pcn_train_position *pos, const pcn_history *history,
                             const pcn_ckpt_meta *meta, int keep);

// What a checkpoint holds besides the weights.
typedef struct {
    int n_dims;
    int dims[65];
    int output_dim;
    pcn_activation activation;   // layer 0's (the activation of every layer, unless mixed)
    pcn_activation activations[64]; // layer l's, l = 0..n_dims-2
    pcn_task mode;
    uint64_t seed;
    int ranks;                   // ranks of the run that wrote it
    char library_version[32];
    char *config;                // INI text (malloc'd; free with pcn_io_ckpt_info_free)
    pcn_train_position pos;
} pcn_ckpt_info;

// Reads path on rank 0 and broadcasts it: returns the model (NULL on error, on every rank,
// with the reason in pcn_last_error()); fills info and, if history is not NULL, appends the
// saved history to it. Checks the format and version, every weight dataset's shape and type
// class against dims (before allocating), the datasets' checksums where present, and that
// every weight is finite; errors name the file, the dataset and (for values) the index.
// Collective.
pcn_model *pcn_io_ckpt_read(pcn_comm *c, const char *path, pcn_ckpt_info *info,
                            pcn_history *history);
void pcn_io_ckpt_info_free(pcn_ckpt_info *info);

// Test hook: from now on, writes fail on rank `rank` in its part of the write (on rank 0:
// after the temporary file is written), before the ranks agree; PCN_CKPT_FAULT_ALL fails
// them on every rank, PCN_CKPT_FAULT_OFF turns the hook off. Local.
#define PCN_CKPT_FAULT_OFF (-2)
#define PCN_CKPT_FAULT_ALL (-1)
void pcn_io_ckpt_inject_fault(int rank);

#endif // PCN_CKPT_H
