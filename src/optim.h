/*
 * optim.h — the weight optimizers' step and state (optim.c; private to libpcn).
 */
#ifndef PCN_OPTIM_H
#define PCN_OPTIM_H

#include "core.h"

// Moment buffers the optimizer keeps (sgd 0, momentum 1, adamw 2).
int pcn_optim_slots(pcn_optimizer o);
// One step of p's optimizer on m's weights with gradient scale * m->g, lr as scheduled,
// `step` steps taken before (adamw's t = step + 1). Reserves the optimizer state on first
// use (PCN_ENOMEM). Local.
pcn_status pcn_optim_apply(pcn_model *m, const pcn_train_params *p, double lr, double scale,
                           int64_t step);

#endif // PCN_OPTIM_H
