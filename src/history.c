/*
 * history.c — the history object (pcn-torch TrainHistory / EnergyHistory): growable series
 * of doubles, one per pcn_history_series.
 */
#include <stdlib.h>

#include "core.h"

typedef struct {
    double *v;
    size_t len, cap;
} series;

struct pcn_history {
    series s[PCN_HIST_COUNT];
    double running_accuracy;
};

static const char *const series_names[PCN_HIST_COUNT] = {
    "per_batch",     "per_batch_pre_learn", "per_epoch",         "per_epoch_pre_learn",
    "train_loss",    "train_accuracy",      "test_loss",         "test_accuracy",
    "lr_learn_per_epoch", "step_infer",     "step_learn",        "infer_steps",
};

pcn_history *pcn_history_init(void) {
    pcn_history *h = calloc(1, sizeof *h);
    if (!h) pcn_set_error(PCN_ENOMEM, "out of memory allocating a history");
    return h;
}

void pcn_history_clear(pcn_history *h) {
    for (int i = 0; h && i < PCN_HIST_COUNT; i++) h->s[i].len = 0;
    if (h) h->running_accuracy = 0.0;
}

void pcn_history_free(pcn_history *h) {
    for (int i = 0; h && i < PCN_HIST_COUNT; i++) free(h->s[i].v);
    free(h);
}

size_t pcn_history_len(const pcn_history *h, pcn_history_series s) {
    return (h && (unsigned)s < PCN_HIST_COUNT) ? h->s[s].len : 0;
}

const double *pcn_history_data(const pcn_history *h, pcn_history_series s) {
    return (h && (unsigned)s < PCN_HIST_COUNT) ? h->s[s].v : NULL;
}

const char *pcn_history_series_name(pcn_history_series s) {
    return (unsigned)s < PCN_HIST_COUNT ? series_names[s] : "invalid";
}

pcn_status pcn_history_append(pcn_history *h, pcn_history_series which, double v) {
    if (!h || (unsigned)which >= PCN_HIST_COUNT)
        return pcn_set_error(PCN_EINVAL, "history: invalid series %d", (int)which);
    series *s = &h->s[which];
    if (s->len == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) return pcn_set_error(PCN_ENOMEM, "out of memory growing the history");
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->len++] = v;
    return PCN_OK;
}

double pcn_history_running_accuracy(const pcn_history *h) { return h ? h->running_accuracy : 0; }

void pcn_history_set_running_accuracy(pcn_history *h, double acc) {
    if (h) h->running_accuracy = acc;
}
