/*
 * phases.c — the plain phases, which every backend can run: step by step, each product
 * through the backend's own gemm (threading itself on the CPU), each inference step through
 * the backend's replay (a device backend records it once as a graph and replays it). The
 * reference backend and the CUDA backend run these; the CPU backend runs them when its
 * split is off, and the tests compare its splits with them. The plain learning phase is in
 * gram.c, beside the batch-space algebra it steps.
 */
#include <string.h>

#include "phase.h"

static char plain_ws; // the plain phases hold nothing; a workspace must not be NULL

void *pcn_phase_plain_init(const pcn_model *m, const pcn_phase_params *p) {
    (void)m, (void)p;
    return &plain_ws;
}

void pcn_phase_plain_free(void *ws) { (void)ws; }

// One inference step as a graph body (a device backend records it once per key).
typedef struct {
    const pcn_infer_phase *ph;
    bool want;
    double sq;
} step_call;

static void step_body(void *ctx) {
    step_call *c = ctx;
    const pcn_infer_phase *ph = c->ph;
    c->sq = pcn_step_errors(ph->m, ph->s, ph->x, ph->y, ph->lr, true, c->want);
}

pcn_status pcn_phase_plain_infer(void *ws, pcn_infer_phase *ph) {
    (void)ws;
    const pcn_backend_ops *ops = ph->m->ops;
    step_call call = {ph, false, 0.0};
    struct { // everything the recorded step depends on; zeroed so padding compares equal
        const void *s, *x, *y;
        int batch, want, precision;
        float lr;
    } key;
    memset(&key, 0, sizeof key);
    key.s = ph->s, key.x = ph->x, key.y = ph->y, key.batch = ph->s->batch;
    key.precision = (int)ph->precision, key.lr = ph->lr;
    bool stop = false;
    int step = 0;
    while (step < ph->steps && !stop) {
        key.want = call.want = step >= ph->sum_from;
        ops->replay(&key, sizeof key, step_body, &call);
        if (call.want) { // someone needs this step's sum
            pcn_status st = ph->watch(ph->ctx, step, pcn_step_sum(ph->m, call.sq), &stop);
            if (st != PCN_OK) return st;
        }
        step++;
    }
    ph->taken = step;
    return PCN_OK;
}
