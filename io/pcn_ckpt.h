/*
 * pcn_ckpt.h — checkpoints: the model, where training stands, its history and the run's
 * configuration in one HDF5 file (format version 1), written collectively and atomically.
 *
 * Layout: root attributes pcn_format = "pcn-checkpoint", format_version, library_version,
 * ranks, dims (int array), activation, output_dim, mode, seed, config (the run's settings
 * as INI text, the --config format); /weights/W0 .. /weights/W{L-1}, /weights/Wout float32
 * (out x in); /state attributes epoch, batch, lr, plateau_best, plateau_patience,
 * epoch_sums[4]; /history/<series> float64 vectors (pcn_history_series_name).
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

// Writes path atomically (path.tmp, closed, synced, renamed over path; with keep > 1 the
// previous files are kept as path.1 .. path.{keep-1}). Collective. On failure every rank
// returns the same status, the temporary file is removed and path is untouched.
pcn_status pcn_io_ckpt_write(pcn_comm *c, const char *path, const pcn_model *model,
                             const pcn_train_position *pos, const pcn_history *history,
                             const pcn_ckpt_meta *meta, int keep);

// What a checkpoint holds besides the weights.
typedef struct {
    int n_dims;
    int dims[65];
    int output_dim;
    pcn_activation activation;
    pcn_task mode;
    uint64_t seed;
    int ranks;                   // ranks of the run that wrote it
    char library_version[32];
    char *config;                // INI text (malloc'd; free with pcn_io_ckpt_info_free)
    pcn_train_position pos;
} pcn_ckpt_info;

// Reads path on rank 0 and broadcasts it: returns the model (NULL on error, on every rank,
// with the reason in pcn_last_error()); fills info and, if history is not NULL, appends the
// saved history to it. Checks the format and version. Collective.
pcn_model *pcn_io_ckpt_read(pcn_comm *c, const char *path, pcn_ckpt_info *info,
                            pcn_history *history);
void pcn_io_ckpt_info_free(pcn_ckpt_info *info);

// Test hook: the next write fails after the weights are written (0 turns it off).
void pcn_io_ckpt_inject_fault(int on);

#endif // PCN_CKPT_H
