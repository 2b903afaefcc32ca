/*
 * train_params.c — the training parameters' defaults and their validation: every field
 * checked, with a message naming it and its allowed range.
 */
#include <math.h>

#include "core.h"

pcn_train_params pcn_train_default_params(void) {
    return (pcn_train_params){
        .task = PCN_TASK_CLASSIFICATION,
        .t_infer = 50,
        .t_infer_test = 0,
        .t_learn = 0,
        .lr_infer = 0.05,
        .lr_learn = 0.005,
        .num_epochs = 4,
        .early_stop_threshold = 0.0,
        .energy_window_size = 10,
        .use_mixed_precision = true,
        .mixed_precision = PCN_PRECISION_FP16,
        .lr_schedule = PCN_LR_NONE,
        .lr_decay_factor = 0.5,
        .lr_patience = 1,
        .lr_steps = NULL,
        .n_lr_steps = 0,
        .lr_scaling = PCN_LR_SCALE_NONE,
        .lr_ref_batch = 0,
        .lr_warmup_batches = 0,
        .batch_size = 500,
        .test_batch_size = 0,
        .shuffle = true,
        .seed = 0,
        .train_accuracy_every = 1,
        .top_k = 3,
        .confusion = NULL,
        .keep_step_energies = false,
        .learn_path = PCN_LEARN_AUTO,
        .learn_flops_per_byte = 80.0,
        .split_phases = true,
        .optimizer = PCN_OPT_SGD,
        .momentum = 0.9,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = 0.0,
        .lr_warmup_frac = 0.0,
        .lr_peak_factor = 1.0,
        .lr_final_factor = 0.0,
        .latent_start = PCN_LATENT_FORWARD,
        .latent_init_std = 1.0,
        .infer_momentum = 0.0,
        .ipc = false,
        .callbacks = {0},
        .latent_init = NULL,
        .latent_user = NULL,
        .batch_hook = NULL,
        .batch_hook_user = NULL,
        .resume = NULL,
    };
}

static bool pos_finite(double v) { return isfinite(v) && v > 0.0; }

#define CHECK(cond, ...) PCN_CHECK(cond, PCN_EINVAL, __VA_ARGS__)

// The learning rate's schedule, scaling and warm-up.
static pcn_status check_lr(const pcn_train_params *p) {
    CHECK(pos_finite(p->lr_infer), "lr_infer must be finite and > 0, got %g", p->lr_infer);
    CHECK(pos_finite(p->lr_learn), "lr_learn must be finite and > 0, got %g", p->lr_learn);
    CHECK(p->lr_schedule == PCN_LR_NONE || p->lr_schedule == PCN_LR_PLATEAU ||
              p->lr_schedule == PCN_LR_STEPS || p->lr_schedule == PCN_LR_COSINE,
          "lr_schedule must be none, plateau, steps or cosine, got %d", (int)p->lr_schedule);
    CHECK(isfinite(p->lr_warmup_frac) && p->lr_warmup_frac >= 0.0 && p->lr_warmup_frac < 1.0,
          "lr_warmup_frac must be in [0, 1), got %g", p->lr_warmup_frac);
    CHECK(pos_finite(p->lr_peak_factor), "lr_peak_factor must be finite and > 0, got %g",
          p->lr_peak_factor);
    CHECK(isfinite(p->lr_final_factor) && p->lr_final_factor >= 0.0,
          "lr_final_factor must be finite and >= 0, got %g", p->lr_final_factor);
    CHECK(p->lr_decay_factor > 0.0 && p->lr_decay_factor < 1.0,
          "lr_decay_factor must be in (0, 1) exclusive, got %g", p->lr_decay_factor);
    CHECK(p->lr_patience >= 1, "lr_patience must be >= 1, got %d", p->lr_patience);
    CHECK(p->lr_schedule != PCN_LR_STEPS || (p->n_lr_steps >= 1 && p->lr_steps),
          "lr_steps must be a non-empty list with lr_schedule steps (n_lr_steps = %d)",
          p->n_lr_steps);
    CHECK(p->n_lr_steps >= 0, "n_lr_steps must be >= 0, got %d", p->n_lr_steps);
    for (int i = 0; p->lr_steps && i < p->n_lr_steps; i++) {
        const pcn_lr_step *s = &p->lr_steps[i];
        CHECK(s->epoch >= 0, "lr_steps[%d] epoch must be >= 0, got %d", i, s->epoch);
        CHECK(s->batch >= 0, "lr_steps[%d] batch must be >= 0, got %d", i, s->batch);
        CHECK(pos_finite(s->lr), "lr_steps[%d] lr must be finite and > 0, got %g", i, s->lr);
    }
    CHECK(p->lr_scaling == PCN_LR_SCALE_NONE || p->lr_scaling == PCN_LR_SCALE_LINEAR ||
              p->lr_scaling == PCN_LR_SCALE_SQRT,
          "lr_scaling must be none, linear or sqrt, got %d", (int)p->lr_scaling);
    CHECK(p->lr_scaling == PCN_LR_SCALE_NONE || p->lr_ref_batch >= 1,
          "lr_ref_batch must be >= 1 with lr_scaling, got %d", p->lr_ref_batch);
    CHECK(p->lr_warmup_batches >= 0, "lr_warmup_batches must be >= 0, got %d",
          p->lr_warmup_batches);
    return PCN_OK;
}

static bool unit(double v) { return isfinite(v) && v >= 0.0 && v < 1.0; }

// The optimizer and the discriminative mode's fields.
static pcn_status check_optim(const pcn_train_params *p) {
    CHECK((unsigned)p->optimizer <= PCN_OPT_ADAMW, "optimizer must be sgd, momentum or adamw, "
          "got %d", (int)p->optimizer);
    CHECK(unit(p->momentum), "momentum must be in [0, 1), got %g", p->momentum);
    CHECK(unit(p->beta1), "beta1 must be in [0, 1), got %g", p->beta1);
    CHECK(unit(p->beta2), "beta2 must be in [0, 1), got %g", p->beta2);
    CHECK(pos_finite(p->eps), "eps must be finite and > 0, got %g", p->eps);
    CHECK(isfinite(p->weight_decay) && p->weight_decay >= 0.0,
          "weight_decay must be finite and >= 0, got %g", p->weight_decay);
    CHECK(p->latent_start == PCN_LATENT_FORWARD || p->latent_start == PCN_LATENT_RANDOM,
          "latent_start must be forward or random, got %d", (int)p->latent_start);
    CHECK(pos_finite(p->latent_init_std), "latent_init_std must be finite and > 0, got %g",
          p->latent_init_std);
    CHECK(unit(p->infer_momentum), "infer_momentum must be in [0, 1), got %g",
          p->infer_momentum);
    return PCN_OK;
}

pcn_status pcn_train_params_validate(const pcn_train_params *p) {
    CHECK(p, "train params: NULL");
    CHECK(p->task == PCN_TASK_CLASSIFICATION || p->task == PCN_TASK_REGRESSION,
          "task must be classification or regression, got %d", (int)p->task);
    CHECK(p->t_infer >= 1, "t_infer must be >= 1, got %d", p->t_infer);
    CHECK(p->t_infer_test >= 0, "t_infer_test must be >= 1 (or 0 for 10 * t_infer), got %d",
          p->t_infer_test);
    CHECK(p->t_learn >= 0, "t_learn must be >= 1 (or 0 for the batch size), got %d",
          p->t_learn);
    CHECK(p->num_epochs >= 0, "num_epochs must be >= 0, got %d", p->num_epochs);
    CHECK(isfinite(p->early_stop_threshold) && p->early_stop_threshold >= 0.0,
          "early_stop_threshold must be finite and >= 0 (0 disables), got %g",
          p->early_stop_threshold);
    CHECK(p->energy_window_size >= 1, "energy_window_size must be >= 1, got %d",
          p->energy_window_size);
    pcn_status st = check_lr(p);
    if (st == PCN_OK) st = check_optim(p);
    if (st != PCN_OK) return st;
    CHECK(p->batch_size >= 1, "batch_size must be >= 1, got %d", p->batch_size);
    CHECK(p->test_batch_size >= 0, "test_batch_size must be >= 1 (or 0 for batch_size), got %d",
          p->test_batch_size);
    CHECK(p->train_accuracy_every >= 0, "train_accuracy_every must be >= 0 (0 disables), got %d",
          p->train_accuracy_every);
    CHECK(p->top_k >= 1, "top_k must be >= 1, got %d", p->top_k);
    CHECK((unsigned)p->mixed_precision <= PCN_PRECISION_FP16,
          "mixed_precision must be fp32, tf32, bf16 or fp16, got %d", (int)p->mixed_precision);
    CHECK(p->learn_path == PCN_LEARN_AUTO || p->learn_path == PCN_LEARN_PLAIN ||
              p->learn_path == PCN_LEARN_GRAM,
          "learn_path must be auto, plain or gram, got %d", (int)p->learn_path);
    CHECK(isfinite(p->learn_flops_per_byte) && p->learn_flops_per_byte >= 0.0,
          "learn_flops_per_byte must be finite and >= 0, got %g", p->learn_flops_per_byte);
    return PCN_OK;
}
