/*
 * gram.h — the batch-space learner's workspace (gram.c), shared with the CPU
 * backend's phase split by output units (cpu_phases.c), which steps its own columns of
 * the same G and S. Private to libpcn.
 */
#ifndef PCN_GRAM_H
#define PCN_GRAM_H

#include "pcn_impl.h"

struct pcn_gram {
    const pcn_backend_ops *ops;   // owns the buffers
    const pcn_collectives *coll;  // NULL: one process
    int max_local, max_global;
    float *g[PCN_MAX_LAYERS + 1];    // (B_r, B) own rows of G of X[l+1] (l = L: of X[L])
    float *s[PCN_MAX_LAYERS + 1];    // (B_r, d_l) accumulated own H[l]; s[L]: Esup (B_r, K)
    float *xall[PCN_MAX_LAYERS + 1]; // ranks > 1: (B, in) the gathered latent of layer l
    float *dall[PCN_MAX_LAYERS + 1]; // ranks > 1: (B, out) the step's gathered H (Esup)
};

#endif // PCN_GRAM_H
