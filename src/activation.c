/*
 * activation.c — activation lookup by name and scalar evaluation (pcn-torch
 * get_activation), plus task names.
 */
#include <string.h>

#include "activation_impl.h"
#include "core.h"

static const char *const act_names[PCN_ACT_COUNT] = {"relu", "tanh", "sigmoid", "identity"};
static const pcn_act_fn act_fns[PCN_ACT_COUNT] = {act_relu, act_tanh, act_sigmoid,
                                                   act_identity};
static const pcn_act_fn act_derivs[PCN_ACT_COUNT] = {act_relu_d, act_tanh_d, act_sigmoid_d,
                                                      act_identity_d};

pcn_status pcn_activation_from_name(const char *name, pcn_activation *out) {
    for (int i = 0; name && i < PCN_ACT_COUNT; i++) {
        if (strcmp(name, act_names[i]) == 0) {
            *out = (pcn_activation)i;
            return PCN_OK;
        }
    }
    return pcn_set_error(PCN_EINVAL,
                         "unknown activation '%s'; available: identity, relu, sigmoid, tanh",
                         name ? name : "(null)");
}

const char *pcn_activation_name(pcn_activation act) {
    return (unsigned)act < PCN_ACT_COUNT ? act_names[act] : "invalid";
}

pcn_status pcn_get_activation(const char *name, pcn_act_fn *fn, pcn_act_fn *deriv) {
    pcn_activation act = PCN_ACT_RELU;
    pcn_status st = pcn_activation_from_name(name, &act);
    if (st != PCN_OK) return st;
    if (fn) *fn = act_fns[act];
    if (deriv) *deriv = act_derivs[act];
    return PCN_OK;
}

float pcn_activation_apply(pcn_activation act, float a) {
    return (unsigned)act < PCN_ACT_COUNT ? act_fns[act](a) : a;
}

float pcn_activation_deriv(pcn_activation act, float a) {
    return (unsigned)act < PCN_ACT_COUNT ? act_derivs[act](a) : 1.0f;
}

const char *pcn_task_name(pcn_task task) {
    return task == PCN_TASK_REGRESSION ? "regression" : "classification";
}

pcn_status pcn_task_from_name(const char *name, pcn_task *out) {
    if (name && strcmp(name, "classification") == 0) *out = PCN_TASK_CLASSIFICATION;
    else if (name && strcmp(name, "regression") == 0) *out = PCN_TASK_REGRESSION;
    else
        return pcn_set_error(PCN_EINVAL, "unknown task '%s'; use classification or regression",
                             name ? name : "(null)");
    return PCN_OK;
}
