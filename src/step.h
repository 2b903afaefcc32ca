/*
 * step.h — the inference and learning step kernels the phases are built of (step.c).
 * Private to libpcn.
 */
#ifndef PCN_STEP_H
#define PCN_STEP_H

#include "core.h"

// ----------------------------------------------------------------------------------------
// Step kernels (step.c; pcn_state_rows: state.c). Sums are local to this process's rows
// and not yet halved or divided by the batch: the trainer makes them global before turning
// them into energies.
// ----------------------------------------------------------------------------------------

// A view of rows [r0, r0 + rows) of s: the same buffers from row r0 on, batch = rows.
// Every inference step is row-local, so steps on disjoint views may run concurrently.
void pcn_state_rows(const pcn_state *s, int r0, int rows, pcn_state *view);
// Errors of the current snapshot; with lr != 0 also the whole latent update of an inference
// step. need_top: compute the top error E[L] = Esup Wout (inference needs it, learning not).
// want_sum: the step's sum_l ||E[l]||^2 + ||Esup||^2 over the state's rows is wanted; on a
// host backend it is returned, on a device backend it stays on the device until
// pcn_step_sum (which waits). Without want_sum a device backend computes no sum and the
// step runs without waiting for the device.
double pcn_step_errors(const pcn_model *m, pcn_state *s, const float *x, const float *y,
                       float lr, bool need_top, bool want_sum);
// The full sum of a step run with want_sum, given its return value.
double pcn_step_sum(const pcn_model *m, double returned);
// After pcn_step_errors: the model's gradient buffer g = [H[l]^T X[l+1] ..., -Esup^T X[L]]
// (zero readout part without a target), so that the update is w += (lr/B) g.
void pcn_step_gradient(pcn_model *m, const pcn_state *s, bool has_target);
// w += alpha g over the whole buffer.
void pcn_step_apply(pcn_model *m, float alpha);
// Yhat of the state's rows into s->yhat.
void pcn_step_predict(const pcn_model *m, pcn_state *s);

#endif // PCN_STEP_H
