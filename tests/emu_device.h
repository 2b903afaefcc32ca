/*
 * emu_device.h — an emulated device backend for the tests: the CPU backend's arithmetic
 * behind the device contract of backend.h, asynchronous like a GPU's stream.
 *
 * Every operation a device runs on its stream (gemm, the passes, axpy, zero, normal_rows,
 * fill_rows, act_pass, disc_error, latent_step, optim_step, the sums' begin and finish,
 * an upload, a mark, a timer's begin and end, an emulated NCCL sum) is recorded into a queue, with copies of its scalar arguments and
 * pointers (an upload from pageable memory copies its host source then, as cudaMemcpyAsync
 * does; from pinned memory, host_alloc's, it reads the host memory when it runs, as an
 * asynchronous copy from pinned memory does), and runs only at a synchronisation point: sync, download (drains, then copies; into pinned memory a queued copy, drained),
 * sum_read, release (CUDA waits before freeing), wait_mark (drains up to the slot's last
 * mark) and timer_read. A timer's begin and end read the host clock when they run, as CUDA
 * events time the stream; an emulated NCCL sum (emu_device_nccl_sum, one rank's: the
 * input unchanged) takes EMU_NCCL_SECONDS when it runs, so only a timer on the device, not
 * a clock around its queuing, sees that time. Host-visible effects therefore appear late: a trainer path that reads a device
 * result without waiting sees stale data.
 *
 * replay is a graph: the first call for a key runs the body once and captures the
 * operations it queues; later calls queue the captured operations again, with their
 * captured arguments, and never run the body's host code (host values computed in the body
 * stay frozen at capture). A synchronisation point inside a capture is counted as an error
 * (a CUDA stream under capture cannot wait). Releasing any buffer drops every graph.
 *
 * Its buffers are its own host allocations (not the model's host copies), so a test may
 * look at them through host pointers: that is exactly the read a device forbids, and how
 * the tests prove the queue defers work.
 */
#ifndef PCN_TEST_EMU_DEVICE_H
#define PCN_TEST_EMU_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

// What the emulated device saw (tests read and reset these fields).
typedef struct {
    int replays, uploads, downloads; // calls of replay, upload, download
    int disc_errors, optim_steps;    // discriminative passes and optimizer steps run here
    const void *weights;  // the device model's weights: a download from them is a weight copy
    int weight_downloads; // how many
    size_t gram_bytes;    // the size of a batch-space learner's G (B x B floats): counted
    int gram_allocs;      //   here,
    bool gram_no_room;    //   and refused when set, as a full device refuses
    int captures;         // graphs captured (bodies run by replay)
    int sync_in_capture;  // synchronisation points reached while capturing (an error)
    int max_marks;        // the most marks queued and not yet run, at any time
    int max_weight_steps; // the most queued updates of `weights` (an axpy or optimizer step
                          //   whose destination starts at weights), at any time
    int nccl_sums;        // emulated NCCL sums run
    int stage_pinned;     // round trips through host memory (a download from a device buffer,
    int stage_pageable;   //   then an upload of that host buffer back to it: the staged
                          //   gradient sum) through host_alloc's pinned memory, and through
                          //   pageable memory (the trainer's staging buffer should be pinned)
} emu_stats;

extern emu_stats emu;

// The emulated device's backend table (the plain phases, as the CUDA loader gives them).
pcn_backend_ops emu_device_ops(void);
// What an emulated NCCL sum takes when it runs (a busy wait: at least this long).
#define EMU_NCCL_SECONDS 0.002
// A sum_f32_device of one rank for this device: queues a sum that takes EMU_NCCL_SECONDS.
pcn_status emu_device_nccl_sum(float *v, size_t n);
// Operations queued and not yet run.
size_t emu_device_pending(void);
// Resets max_marks and max_weight_steps.
void emu_device_reset_depth(void);

#endif // PCN_TEST_EMU_DEVICE_H
