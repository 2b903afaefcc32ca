/*
 * activation.c — activation lookup by name and scalar evaluation (pcn-torch
 * get_activation), plus task names.
 */
#include <string.h>

#include "activation_impl.h"
#include "core.h"

#define LEAKY_DEFAULT 0.01f

static const char *const act_names[PCN_ACT_COUNT] = {
    "relu", "tanh", "sigmoid", "identity", "gelu", "leaky_relu", "hard_tanh"};
static float act_leaky(float a) { return a > 0.0f ? a : LEAKY_DEFAULT * a; }
static float act_leaky_d(float a) { return a > 0.0f ? 1.0f : LEAKY_DEFAULT; }
static const pcn_act_fn act_fns[PCN_ACT_COUNT] = {act_relu,     act_tanh,  act_sigmoid,
                                                   act_identity, act_gelu,  act_leaky,
                                                   act_hard_tanh};
static const pcn_act_fn act_derivs[PCN_ACT_COUNT] = {act_relu_d,     act_tanh_d,  act_sigmoid_d,
                                                      act_identity_d, act_gelu_d,  act_leaky_d,
                                                      act_hard_tanh_d};

pcn_status pcn_activation_from_name(const char *name, pcn_activation *out) {
    for (int i = 0; name && i < PCN_ACT_COUNT; i++) {
        if (strcmp(name, act_names[i]) == 0) {
            *out = (pcn_activation)i;
            return PCN_OK;
        }
    }
    return pcn_set_error(PCN_EINVAL,
                         "unknown activation '%s'; available: identity, relu, sigmoid, tanh (both "
                         "directions), gelu, leaky_relu, hard_tanh (discriminative)",
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

float pcn_activation_apply_slope(pcn_activation act, float slope, float a) {
    float d;
    return act == PCN_ACT_LEAKY_RELU ? act_leaky_both(a, slope, &d)
                                     : pcn_activation_apply(act, a);
}

float pcn_activation_deriv_slope(pcn_activation act, float slope, float a) {
    float d;
    if (act != PCN_ACT_LEAKY_RELU) return pcn_activation_deriv(act, a);
    act_leaky_both(a, slope, &d);
    return d;
}

const char *pcn_direction_name(pcn_direction d) {
    return d == PCN_DIR_DISCRIMINATIVE ? "discriminative" : "generative";
}

pcn_status pcn_direction_from_name(const char *name, pcn_direction *out) {
    if (name && strcmp(name, "generative") == 0) *out = PCN_DIR_GENERATIVE;
    else if (name && strcmp(name, "discriminative") == 0) *out = PCN_DIR_DISCRIMINATIVE;
    else
        return pcn_set_error(PCN_EINVAL, "unknown direction '%s'; use generative or "
                             "discriminative", name ? name : "(null)");
    return PCN_OK;
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
