/*
 * optim.c — the weights' optimizers and the cosine schedule (both directions).
 *
 * The gradient a step sees is that of the batch-mean energy: the trainer leaves the global
 * sum of the per-sample gradients in the model's g and passes scale = 1/B. Weight decay is
 * decoupled and multiplied by the step's lr, as optax.adamw (and there applied to biases
 * too); sgd with weight_decay 0 is pcn-torch's update. Adam's count t is the number of
 * steps taken so far plus one, kept in the trainer's position (opt_steps), so a resumed run
 * continues the same bias corrections.
 *
 * The cosine schedule is optax.warmup_cosine_decay_schedule(init_value = lr,
 * peak_value = peak * lr, warmup_steps = frac * total, decay_steps = total,
 * end_value = final * lr): linear from lr to the peak over the warm-up (a float number of
 * steps), then a half cosine from the peak to the end value at step `total`.
 */
#include <math.h>
#include <string.h>

#include "core.h"
#include "optim.h"

#define PI 3.14159265358979323846

static const char *const names[] = {"sgd", "momentum", "adamw"};

const char *pcn_optimizer_name(pcn_optimizer o) {
    return (unsigned)o <= PCN_OPT_ADAMW ? names[o] : "invalid";
}

pcn_status pcn_optimizer_from_name(const char *name, pcn_optimizer *out) {
    for (int i = 0; name && i <= PCN_OPT_ADAMW; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (pcn_optimizer)i;
            return PCN_OK;
        }
    return pcn_set_error(PCN_EINVAL, "unknown optimizer '%s'; use sgd, momentum or adamw",
                         name ? name : "(null)");
}

int pcn_optim_slots(pcn_optimizer o) {
    return o == PCN_OPT_ADAMW ? 2 : o == PCN_OPT_MOMENTUM ? 1 : 0;
}

double pcn_lr_cosine(const pcn_train_params *p, double lr, int64_t s, int64_t total) {
    const double warm = p->lr_warmup_frac * (double)total, peak = p->lr_peak_factor * lr;
    const double end = p->lr_final_factor * lr;
    if ((double)s < warm) return lr + (peak - lr) * (double)s / warm;
    const double span = (double)total - warm;
    if (span <= 0.0) return end;
    double c = (double)s - warm;
    if (c > span) c = span;
    const double cosine = 0.5 * (1.0 + cos(PI * c / span));
    return (peak - end) * cosine + end;
}

pcn_status pcn_optim_apply(pcn_model *m, const pcn_train_params *p, double lr, double scale,
                           int64_t step) {
    const int slots = pcn_optim_slots(p->optimizer);
    if (m->opt_slots != slots) {
        pcn_status st = pcn_model_optimizer_reserve(m, slots);
        if (st != PCN_OK) return st;
    }
    const double t = (double)(step + 1);
    const pcn_optim_step o = {
        .kind = p->optimizer,
        .lr = (float)lr,
        .scale = (float)scale,
        .momentum = (float)p->momentum,
        .b1 = (float)p->beta1,
        .b2 = (float)p->beta2,
        .c1 = (float)(1.0 - p->beta1),
        .c2 = (float)(1.0 - p->beta2),
        .eps = (float)p->eps,
        .bc1 = (float)(1.0 - pow(p->beta1, t)),
        .bc2 = (float)(1.0 - pow(p->beta2, t)),
        .wd = (float)p->weight_decay,
    };
    const size_t n = m->woff[m->L + 1];
    m->ops->optim_step(&o, n, m->g, slots ? m->opt : NULL, slots > 1 ? m->opt + n : NULL, m->w);
    return PCN_OK;
}
