/*
 * settle.h — how the CUDA backend waits, under a timeout, for work that finishes by itself:
 * an event or the stream while NCCL is up, and every non-blocking NCCL call (the
 * communicator's init, an all-reduce's queuing, finalize). It polls, so a peer that never
 * arrives ends the wait after the timeout instead of hanging the rank. Shared with the host so
 * that test_gpu_settle checks this same loop on every machine, GPU or not, with a fake clock.
 */
#ifndef PCN_GPU_SETTLE_H
#define PCN_GPU_SETTLE_H

typedef enum {
    PCN_SETTLE_PENDING, // still running (what pcn_settle returns when the time ran out)
    PCN_SETTLE_DONE,
    PCN_SETTLE_FAILED, // the poll saw an error; it keeps the reason in its context
} pcn_settle_state;

typedef struct {
    pcn_settle_state (*poll)(void *ctx); // the state now
    void *ctx;
    double (*clock)(void);  // seconds, monotonic
    void (*pause)(int polls); // between two polls; told how many polls were made
    double timeout;         // seconds
} pcn_settle_wait;

// Polls until the state is DONE or FAILED and returns it, or returns PENDING once more than
// timeout seconds have passed since the first poll. The state is polled before the clock is
// read, so work that finishes just as the time runs out counts as done.
static inline pcn_settle_state pcn_settle(const pcn_settle_wait *w) {
    const double t0 = w->clock();
    for (int polls = 1;; polls++) {
        const pcn_settle_state s = w->poll(w->ctx);
        if (s != PCN_SETTLE_PENDING) return s;
        if (w->clock() - t0 > w->timeout) return PCN_SETTLE_PENDING;
        w->pause(polls);
    }
}

#endif // PCN_GPU_SETTLE_H
