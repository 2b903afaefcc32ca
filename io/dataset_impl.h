/*
 * dataset_impl.h — what the two halves of the data set reader share (private to io/):
 * dataset.c (open, schema checks, memory mode, public API) and dataset_stream.c (stream mode
 * and its prefetch thread). The reader's invariants are in dataset.c's header.
 */
#ifndef PCN_DATASET_IMPL_H
#define PCN_DATASET_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "h5util.h"
#include "pcn_io.h"

// Rows staged per call before the first read grows the buffers (stream mode).
#define STAGE_ROWS 256
// Largest piece of the split read by one collective H5Dread when filling shared memory.
#define FILL_PIECE_BYTES ((size_t)256 << 20)

typedef struct {
    int64_t row; // data set row
    int idx;     // position in the request
} row_ref;

// Staging of one stream read, all of cap rows.
typedef struct {
    int cap;
    void *sx;                // (cap, D) file dtype, sorted unique rows
    int32_t *slabels;        // (cap)
    float *stargets;         // (cap, K)
    row_ref *order;          // (cap) the request sorted by row
    int *place;              // (cap) request position -> staged row
    hsize_t *runs;           // (2 * cap) start, length of each run of consecutive rows
} stage;

// An integer label the conversion to int32 could not hold (H5Pset_type_conv_cb).
typedef struct {
    bool hit;
    char value[32];          // the file's value, printed
} label_overflow;

struct pcn_dataset {
    pcn_comm *c;
    char *path;              // as given to open, for messages
    struct stat opened;      // the file as opened: stream mode stops if it changes
    char split[8];           // "train" or "test"
    pcn_io_mode mode;
    pcn_task task;
    int num_classes;         // 0 for regression
    int K;                   // target width, 0 for labels
    int D;                   // features
    int64_t N;               // rows
    bool x_u8;               // x is uint8 in the file (else float32)
    float scale;             // x@scale (1 when absent)
    float *mean, *std;       // (D) each, or NULL without normalisation (/norm or given)
    pcn_io_dataset_params params; // the caller's (norm: file, none or given)
    // HDF5 handles (file and datasets stay open in stream mode only)
    hid_t file, dx, dy, fsx, fsy, msx, msy, msnone, dxpl;
    // memory mode: the node's shared copy
    MPI_Win win;
    const unsigned char *mx; // (N, D) in the file dtype
    const int32_t *mlabels;  // (N) or NULL
    const float *mtargets;   // (N, K) or NULL
    stage main;              // stream mode: the collective reads' staging
    // stream mode prefetch: a thread reads the next batch's rows through its own (POSIX
    // driver) handle while the ranks compute; read() uses them when every rank has them.
    stage pf;
    pthread_t pf_thread;
    bool pf_running;
    int64_t *pf_rows;        // (pf_cap) the rows asked for, in request order
    int pf_count, pf_cap, pf_staged;
    pcn_status pf_status;
    hid_t pf_file, pf_dx, pf_dy, pf_dxpl;
    int64_t pf_hits;         // reads served by a prefetch
    label_overflow overflow, pf_overflow; // the collective reads', the prefetch thread's
};

// A failed HDF5 call ("PATH: what (call failed at file:line: ...)") or a bad file: records
// the message in st and jumps to `done`.
#define H5_CHECK(call, what) PCN_H5_CHECK(call, ds->path, what, st = PCN_EIO; goto done)
#define BAD(status, ...) PCN_H5_BAD(ds->path, status, __VA_ARGS__)

static inline size_t x_size(const pcn_dataset *ds) { return ds->x_u8 ? 1 : sizeof(float); }
static inline hid_t x_memtype(const pcn_dataset *ds) {
    return ds->x_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
}

// dataset.c: conversion and checks shared by both modes.
// One row in the file dtype -> (D) floats: x * scale, then (x - mean) / std.
void dataset_convert_row(const pcn_dataset *ds, const void *src, float *dst);
// PCN_EDATA naming the row when c is outside [0, num_classes).
pcn_status dataset_check_label(const pcn_dataset *ds, int32_t c, int64_t row);
// PCN_EINVAL when a requested row is outside [0, N).
pcn_status dataset_check_rows(const pcn_dataset *ds, const int64_t *rows, int count);
// PCN_EIO when the file changed since it was opened (stream mode).
pcn_status dataset_check_unchanged(const pcn_dataset *ds);
// After a failed read of labels: the label that did not fit, if that was the cause.
pcn_status dataset_label_read_failed(const pcn_dataset *ds, const label_overflow *o,
                                     pcn_status st);
// HDF5's conversion callback for labels (H5Pset_type_conv_cb); user is a label_overflow.
H5T_conv_ret_t dataset_on_overflow(H5T_conv_except_t kind, hid_t src, hid_t dst,
                                   void *src_buf, void *dst_buf, void *user);

// dataset_stream.c: stream mode.
// Memory spaces and staging. Local.
pcn_status dataset_stream_setup(pcn_dataset *ds);
// Reads rows of every rank in one collective read per dataset (or from the prefetch).
// Collective.
pcn_status dataset_stream_read(pcn_dataset *ds, const int64_t *rows, int count, float *x,
                               int32_t *labels, float *targets);
// Starts reading rows (the next batch of this rank) in the background. Local.
void dataset_stream_prefetch(void *ctx, const int64_t *rows, int count);
// Joins the prefetch thread and frees the stream mode's handles and staging. Local.
void dataset_stream_free(pcn_dataset *ds);

#endif // PCN_DATASET_IMPL_H
