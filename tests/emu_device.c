/*
 * emu_device.c — the emulated device (see emu_device.h): a queue of recorded operations
 * that runs only at synchronisation points, graphs that freeze what they captured, and the
 * CPU backend's arithmetic in the same order, so a correct trainer ends bitwise like the
 * CPU backend.
 *
 * Invariants: q[head..len) are queued and not yet run, in stream order; an operation's
 * blob (an upload's source copy, an optimizer step's parameters) is owned by it; a graph's
 * operations are deep copies, queued again as copies. Sums exist only at run time: a
 * pass's sum is added when it runs between a queued sum_begin and sum_finish.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_device.h"
#include "gram.h"
#include "phase.h"

emu_stats emu;

// ---- the queue ----------------------------------------------------------------------------

typedef enum {
    OP_GEMM, OP_ERROR, OP_SUP, OP_AXPY, OP_ZERO, OP_NORMAL, OP_FILL, OP_ACT, OP_DISC,
    OP_LATENT, OP_OPTIM, OP_UPLOAD, OP_DOWNLOAD, OP_SUM_BEGIN, OP_SUM_FINISH, OP_MARK, OP_NCCL,
    OP_TIMER
} op_kind;

typedef struct {
    op_kind kind;
    bool ta, tb;
    bool weight_step; // an update of emu.weights when queued (max_weight_steps counts them)
    int act;
    int i[6];        // gemm: m n k lda ldb ldc; normal_rows, fill_rows: rows dim; mark: slot;
                     //   timer: 0 begin, 1 end
    float f[3];      // gemm: alpha beta; passes: lr or slope; latent_step: lr beta
    size_t n;        // elements (bytes for an upload)
    uint64_t seed;   // normal_rows: seed; first_row c1 c2 in u
    uint32_t u[3];
    const float *in[4]; // what the operation reads
    float *out[3];      // what it writes
    void *blob;         // owned: an upload's source copy, an optimizer step's parameters
    size_t blob_bytes;
} emu_op;

typedef struct {
    emu_op *ops;
    size_t n, cap;
} op_list;

typedef struct {
    unsigned char *key;
    size_t len;
    op_list ops;
} emu_graph;

static struct {
    op_list q;
    size_t head;             // q.ops[head..q.n) are queued, not run
    bool summing;
    double acc, total;
    int marks, weight_steps; // marks and weight updates queued, not run
    double timer_t0;         // when the last timer_begin ran (host clock)
    double timer_acc;        // seconds between the pairs run since the last timer_read
    bool capturing;
    op_list capture;         // what the body being captured queued
    emu_graph *graphs;
    size_t n_graphs;
    struct { void *p; size_t n; } *pinned; // host_alloc's buffers
    size_t n_pinned;
    const void *dl_host, *dl_dev;            // the last download: to dl_host from dl_dev
} dev;

static void *dup_bytes(const void *p, size_t n) {
    void *c = n ? malloc(n) : NULL;
    if (n) memcpy(c, p, n);
    return c;
}

static bool updates_weights(const emu_op *o) {
    return emu.weights && ((o->kind == OP_AXPY && o->out[0] == emu.weights) ||
                           (o->kind == OP_OPTIM && o->out[2] == emu.weights));
}

static void push(op_list *l, emu_op o) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->ops = realloc(l->ops, l->cap * sizeof *l->ops);
    }
    l->ops[l->n++] = o;
}

// Queues o (taking its blob); while capturing, the graph gets a copy.
static void enqueue(emu_op o) {
    if (dev.capturing) {
        emu_op c = o;
        c.blob = dup_bytes(o.blob, o.blob_bytes);
        push(&dev.capture, c);
    }
    o.weight_step = updates_weights(&o);
    push(&dev.q, o);
    if (o.kind == OP_MARK && ++dev.marks > emu.max_marks) emu.max_marks = dev.marks;
    if (o.weight_step && ++dev.weight_steps > emu.max_weight_steps)
        emu.max_weight_steps = dev.weight_steps;
}

// Runs one queued operation with the CPU backend's arithmetic.
static void run_pass(emu_op *o) {
    const pcn_backend_ops *c = &pcn_backend_cpu;
    double s = 0.0;
    switch (o->kind) {
    case OP_ERROR:
        s = c->error_pass((pcn_activation)o->act, o->n, o->out[0], o->in[0], o->out[1], o->out[2],
                          o->f[0]);
        break;
    case OP_SUP: s = c->sup_error(o->n, o->in[0], o->in[1], o->out[0]); break;
    case OP_DISC:
        s = c->disc_error((pcn_activation)o->act, o->f[0], o->n, o->in[0], o->in[1], o->out[0],
                          o->out[1]);
        emu.disc_errors++;
        break;
    default: break;
    }
    if (dev.summing) dev.acc += s;
}

static void run_op(emu_op *o) {
    const pcn_backend_ops *c = &pcn_backend_cpu;
    switch (o->kind) {
    case OP_GEMM:
        c->gemm(o->ta, o->tb, o->i[0], o->i[1], o->i[2], o->f[0], o->in[0], o->i[3], o->in[1],
                o->i[4], o->f[1], o->out[0], o->i[5]);
        break;
    case OP_ERROR: case OP_SUP: case OP_DISC: run_pass(o); break;
    case OP_AXPY: c->axpy(o->n, o->f[0], o->in[0], o->out[0]); break;
    case OP_ZERO: c->zero(o->n, o->out[0]); break;
    case OP_NORMAL:
        c->normal_rows(o->seed, o->u[0], o->u[1], o->u[2], o->i[0], o->i[1], o->out[0]);
        break;
    case OP_FILL: c->fill_rows(o->i[0], o->i[1], o->in[0], o->out[0]); break;
    case OP_ACT: c->act_pass((pcn_activation)o->act, o->f[0], o->n, o->in[0], o->out[0]); break;
    case OP_LATENT: c->latent_step(o->n, o->f[0], o->f[1], o->in[0], o->in[1], o->out[0],
                                   o->out[1]); break;
    case OP_OPTIM:
        c->optim_step(o->blob, o->n, o->in[0], o->out[0], o->out[1], o->out[2]);
        emu.optim_steps++;
        break;
    case OP_UPLOAD: // pageable: the copy made at queue time; pinned: the host memory now
        if (o->n) memcpy(o->out[0], o->blob ? o->blob : (const void *)o->in[0], o->n);
        break;
    case OP_DOWNLOAD: if (o->n) memcpy(o->out[0], o->in[0], o->n); break;
    case OP_SUM_BEGIN: dev.summing = true, dev.acc = 0.0; break;
    case OP_SUM_FINISH: dev.summing = false, dev.total = dev.acc; break;
    case OP_MARK: break;
    case OP_NCCL: // one rank's sum is the input: only the time a real one takes
        for (const double t0 = pcn_now(); pcn_now() - t0 < EMU_NCCL_SECONDS;) {}
        emu.nccl_sums++;
        break;
    case OP_TIMER:
        if (o->i[0] == 0) dev.timer_t0 = pcn_now();
        else dev.timer_acc += pcn_now() - dev.timer_t0;
        break;
    }
    dev.marks -= o->kind == OP_MARK;
    dev.weight_steps -= o->weight_step;
    free(o->blob);
}

// Runs the queued operations up to index `end` (exclusive). A wait inside a capture is an
// error (it still runs, so that the test goes on and reports it).
static void drain_to(size_t end) {
    if (dev.capturing) emu.sync_in_capture++;
    for (; dev.head < end; dev.head++) run_op(&dev.q.ops[dev.head]);
    if (dev.head == dev.q.n) dev.head = dev.q.n = 0;
}

static void drain(void) { drain_to(dev.q.n); }

size_t emu_device_pending(void) { return dev.q.n - dev.head; }
void emu_device_reset_depth(void) { emu.max_marks = emu.max_weight_steps = 0; }

// ---- graphs ---------------------------------------------------------------------------------

static void drop_graphs(void) {
    for (size_t g = 0; g < dev.n_graphs; g++) {
        for (size_t i = 0; i < dev.graphs[g].ops.n; i++) free(dev.graphs[g].ops.ops[i].blob);
        free(dev.graphs[g].ops.ops), free(dev.graphs[g].key);
    }
    free(dev.graphs);
    dev.graphs = NULL, dev.n_graphs = 0;
}

static void emu_replay(const void *key, size_t len, void (*body)(void *), void *ctx) {
    emu.replays++;
    for (size_t g = 0; g < dev.n_graphs; g++) {
        const emu_graph *gr = &dev.graphs[g];
        if (gr->len != len || memcmp(gr->key, key, len) != 0) continue;
        for (size_t i = 0; i < gr->ops.n; i++) { // the captured operations, as captured
            emu_op o = gr->ops.ops[i];
            o.blob = dup_bytes(o.blob, o.blob_bytes);
            enqueue(o);
        }
        return;
    }
    emu.captures++;
    dev.capturing = true;
    dev.capture = (op_list){0};
    body(ctx);
    dev.capturing = false;
    dev.graphs = realloc(dev.graphs, (dev.n_graphs + 1) * sizeof *dev.graphs);
    dev.graphs[dev.n_graphs++] = (emu_graph){dup_bytes(key, len), len, dev.capture};
}

// ---- the backend's operations ------------------------------------------------------------

static void *emu_alloc(size_t bytes) {
    if (bytes && bytes == emu.gram_bytes) {
        emu.gram_allocs++;
        if (emu.gram_no_room) return NULL;
    }
    return bytes ? calloc(1, bytes) : NULL;
}

static void emu_release(void *p) {
    if (!p) return;
    drain();
    drop_graphs();
    free(p);
}

// ---- pinned host memory (host_alloc) ----------------------------------------------------

static bool is_pinned(const void *h) {
    for (size_t i = 0; i < dev.n_pinned; i++) {
        const char *p = dev.pinned[i].p;
        if ((const char *)h >= p && (const char *)h < p + dev.pinned[i].n) return true;
    }
    return false;
}

static void *emu_host_alloc(size_t bytes) {
    void *p = bytes ? calloc(1, bytes) : NULL;
    if (!p) return NULL;
    dev.pinned = realloc(dev.pinned, (dev.n_pinned + 1) * sizeof *dev.pinned);
    dev.pinned[dev.n_pinned].p = p, dev.pinned[dev.n_pinned++].n = bytes;
    return p;
}

// Waits first, as the CUDA backend does: a queued upload may still read the buffer.
static void emu_host_free(void *p) {
    if (!p) return;
    drain();
    for (size_t i = 0; i < dev.n_pinned; i++)
        if (dev.pinned[i].p == p) dev.pinned[i] = dev.pinned[--dev.n_pinned];
    if (dev.dl_host == p) dev.dl_host = dev.dl_dev = NULL;
    free(p);
}

// ---- copies -----------------------------------------------------------------------------

// An upload from pinned memory reads it when it runs; from pageable memory, at the call.
static void emu_upload(void *d, const void *s, size_t n) {
    emu.uploads++;
    const bool pinned = is_pinned(s);
    if (s == dev.dl_host && d == dev.dl_dev) { // a round trip through the host: staging
        emu.stage_pinned += pinned;
        emu.stage_pageable += !pinned;
    }
    if (pinned)
        enqueue((emu_op){.kind = OP_UPLOAD, .n = n, .in = {s}, .out = {d}});
    else
        enqueue((emu_op){.kind = OP_UPLOAD, .n = n, .out = {d}, .blob = dup_bytes(s, n),
                         .blob_bytes = n});
}

// Waits (backend.h); into pinned memory the copy is a queued operation that writes the host
// memory when it runs (then drained), into pageable memory a copy after draining.
static void emu_download(void *d, const void *s, size_t n) {
    emu.downloads++;
    emu.weight_downloads += s == emu.weights;
    dev.dl_host = d, dev.dl_dev = s;
    if (is_pinned(d)) {
        enqueue((emu_op){.kind = OP_DOWNLOAD, .n = n, .in = {s}, .out = {d}});
        drain();
        return;
    }
    drain();
    if (n) memcpy(d, s, n);
}

static void emu_sync(void) { drain(); }
static void emu_sum_begin(void) { enqueue((emu_op){.kind = OP_SUM_BEGIN}); }
static void emu_sum_finish(void) { enqueue((emu_op){.kind = OP_SUM_FINISH}); }

static double emu_sum_read(void) {
    drain();
    double v = dev.total;
    dev.total = NAN; // read once: a second read without a new sum is a bug
    return v;
}

static void emu_mark(int slot) { enqueue((emu_op){.kind = OP_MARK, .i = {slot}}); }

// Drains up to the slot's last queued mark; none queued: it has run already.
static pcn_status emu_wait_mark(int slot) {
    for (size_t i = dev.q.n; i > dev.head; i--)
        if (dev.q.ops[i - 1].kind == OP_MARK && dev.q.ops[i - 1].i[0] == slot) {
            drain_to(i);
            break;
        }
    return PCN_OK;
}

// Timers: markers that read the host clock when they run, as CUDA events time the stream.
static void emu_timer_begin(void) { enqueue((emu_op){.kind = OP_TIMER, .i = {0}}); }
static void emu_timer_end(void) { enqueue((emu_op){.kind = OP_TIMER, .i = {1}}); }

static double emu_timer_read(void) {
    drain();
    const double seconds = dev.timer_acc;
    dev.timer_acc = 0.0;
    return seconds;
}

pcn_status emu_device_nccl_sum(float *v, size_t n) {
    enqueue((emu_op){.kind = OP_NCCL, .n = n, .out = {v}});
    return PCN_OK;
}

static void emu_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc) {
    enqueue((emu_op){.kind = OP_GEMM, .ta = ta, .tb = tb, .i = {m, n, k, lda, ldb, ldc},
                     .f = {alpha, beta}, .in = {a, b}, .out = {c}});
}

// The passes return 0: their sums come back only through sum_read.
static double emu_error_pass(pcn_activation act, size_t n, float *x, const float *a, float *e,
                             float *h, float lr) {
    enqueue((emu_op){.kind = OP_ERROR, .act = act, .n = n, .f = {lr}, .in = {a},
                     .out = {x, e, h}});
    return 0.0;
}

static double emu_sup_error(size_t n, const float *yhat, const float *y, float *esup) {
    enqueue((emu_op){.kind = OP_SUP, .n = n, .in = {yhat, y}, .out = {esup}});
    return 0.0;
}

static double emu_disc_error(pcn_activation act, float slope, size_t n, const float *x,
                             const float *a, float *e, float *d) {
    enqueue((emu_op){.kind = OP_DISC, .act = act, .f = {slope}, .n = n, .in = {x, a},
                     .out = {e, d}});
    return 0.0;
}

static void emu_axpy(size_t n, float alpha, const float *x, float *y) {
    enqueue((emu_op){.kind = OP_AXPY, .n = n, .f = {alpha}, .in = {x}, .out = {y}});
}

static void emu_zero(size_t n, float *p) {
    enqueue((emu_op){.kind = OP_ZERO, .n = n, .out = {p}});
}

static void emu_normal_rows(uint64_t seed, uint32_t first_row, uint32_t c1, uint32_t c2,
                            int rows, int dim, float *x) {
    enqueue((emu_op){.kind = OP_NORMAL, .seed = seed, .u = {first_row, c1, c2},
                     .i = {rows, dim}, .out = {x}});
}

static void emu_fill_rows(int rows, int cols, const float *b, float *a) {
    enqueue((emu_op){.kind = OP_FILL, .i = {rows, cols}, .in = {b}, .out = {a}});
}

static void emu_act_pass(pcn_activation act, float slope, size_t n, const float *a, float *mu) {
    enqueue((emu_op){.kind = OP_ACT, .act = act, .f = {slope}, .n = n, .in = {a}, .out = {mu}});
}

static void emu_latent_step(size_t n, float lr, float beta, const float *e, const float *t,
                            float *m, float *x) {
    enqueue((emu_op){.kind = OP_LATENT, .n = n, .f = {lr, beta}, .in = {e, t}, .out = {m, x}});
}

// The step's parameters are copied: the caller's struct is gone when the queue runs.
static void emu_optim_step(const pcn_optim_step *o, size_t n, const float *g, float *m,
                           float *v, float *w) {
    enqueue((emu_op){.kind = OP_OPTIM, .n = n, .in = {g}, .out = {m, v, w},
                     .blob = dup_bytes(o, sizeof *o), .blob_bytes = sizeof *o});
}

pcn_backend_ops emu_device_ops(void) {
    pcn_backend_ops o = pcn_backend_cpu;
    o.name = "emulated device";
    o.on_device = true;
    o.gemm = emu_gemm, o.error_pass = emu_error_pass, o.sup_error = emu_sup_error;
    o.axpy = emu_axpy, o.zero = emu_zero, o.normal_rows = emu_normal_rows;
    o.fill_rows = emu_fill_rows, o.act_pass = emu_act_pass, o.disc_error = emu_disc_error;
    o.latent_step = emu_latent_step, o.optim_step = emu_optim_step;
    o.alloc = emu_alloc, o.release = emu_release;
    o.upload = emu_upload, o.download = emu_download, o.sync = emu_sync;
    o.host_alloc = emu_host_alloc, o.host_free = emu_host_free;
    o.sum_begin = emu_sum_begin, o.sum_finish = emu_sum_finish, o.sum_read = emu_sum_read;
    o.replay = emu_replay, o.mark = emu_mark, o.wait_mark = emu_wait_mark;
    o.timer_begin = emu_timer_begin, o.timer_end = emu_timer_end, o.timer_read = emu_timer_read;
    // A device's phases: the plain ones, as the CUDA loader gives the CUDA module's table.
    o.phase_init = pcn_phase_plain_init, o.phase_free = pcn_phase_plain_free;
    o.infer_phase = pcn_phase_plain_infer, o.gram_phase = pcn_gram_phase_plain;
    o.disc_phase = pcn_disc_phase_plain;
    return o;
}
