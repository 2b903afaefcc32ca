/*
 * settings.c — pcn_dist's settings, from strings to what the run uses: the layers of
 * settings (defaults, a model file's stored settings, --config, flags), the choice settings
 * parsed once into enums by one table, the training parameters, and the checks that refuse
 * a bad run before it starts (a model file against the settings, outputs against inputs).
 *
 * Every check here is Local and sets the message; the caller agrees it over the ranks
 * (pcn_dist_agree), so all ranks refuse together. The order of the checks is the order of
 * the messages a user sees first; keep it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "program.h"

// ----------------------------------------------------------------------------------------
// Choices: one table row per setting, parsed into an enum field of choices
// ----------------------------------------------------------------------------------------

typedef struct {
    const char *option;        // the option's name, for messages
    size_t cli_off;            // its string in pcn_cli
    size_t choice_off;         // its enum in choices
    const char *names[5];      // the accepted spellings, NULL-terminated
    int values[4];             // the enum value of each
} choice_row;

#define ROW(opt, field, ...) {opt, offsetof(pcn_cli, field), offsetof(choices, field), __VA_ARGS__}
#define ROW2(opt, cfield, field, ...) \
    {opt, offsetof(pcn_cli, cfield), offsetof(choices, field), __VA_ARGS__}

// In the order the checks run (settings_check takes rows 0-4, settings_to_params 5-10).
static const choice_row rows[] = {
    ROW("device", device, {"auto", "cpu", "cuda"}, {DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA}),
    ROW("precision", precision, {"fp32", "tf32", "bf16", "fp16"},
        {PCN_PRECISION_FP32, PCN_PRECISION_TF32, PCN_PRECISION_BF16, PCN_PRECISION_FP16}),
    ROW("comm", comm, {"auto", "nccl", "mpi"}, {COMM_AUTO, COMM_NCCL, COMM_MPI}),
    ROW("data-mode", data_mode, {"memory", "stream"}, {PCN_IO_MEMORY, PCN_IO_STREAM}),
    ROW("split", split, {"train", "test"}, {SPLIT_TRAIN, SPLIT_TEST}),
    ROW("lr-schedule", lr_schedule, {"none", "plateau", "steps", "cosine"},
        {PCN_LR_NONE, PCN_LR_PLATEAU, PCN_LR_STEPS, PCN_LR_COSINE}),
    ROW("lr-scaling", lr_scaling, {"none", "linear", "sqrt"},
        {PCN_LR_SCALE_NONE, PCN_LR_SCALE_LINEAR, PCN_LR_SCALE_SQRT}),
    ROW("learn-path", learn_path, {"auto", "plain", "gram"},
        {PCN_LEARN_AUTO, PCN_LEARN_PLAIN, PCN_LEARN_GRAM}),
    ROW("direction", direction, {"generative", "discriminative"},
        {PCN_DIR_GENERATIVE, PCN_DIR_DISCRIMINATIVE}),
    ROW("optimizer", optimizer, {"sgd", "momentum", "adamw"},
        {PCN_OPT_SGD, PCN_OPT_MOMENTUM, PCN_OPT_ADAMW}),
    ROW2("latent-init", latent_init, latent_start, {"forward", "random"},
        {PCN_LATENT_FORWARD, PCN_LATENT_RANDOM}),
};

// Every enum field of choices is written through an int.
_Static_assert(sizeof(device_choice) == sizeof(int) && sizeof(pcn_precision) == sizeof(int) &&
               sizeof(pcn_io_mode) == sizeof(int) && sizeof(pcn_lr_schedule) == sizeof(int) &&
               sizeof(pcn_lr_scaling) == sizeof(int) && sizeof(pcn_learn_path) == sizeof(int) &&
               sizeof(pcn_direction) == sizeof(int) && sizeof(pcn_optimizer) == sizeof(int) &&
               sizeof(pcn_latent_start) == sizeof(int),
               "choices are ints");

// Parses rows [first, last) from c into ch; the first unknown value is refused with
// "--NAME must be a, b or c, got 'x'". Local.
static pcn_status parse_choices(const pcn_cli *c, choices *ch, size_t first, size_t last) {
    for (size_t r = first; r < last; r++) {
        const choice_row *row = &rows[r];
        const char *v = (const char *)c + row->cli_off;
        int n = 0;
        while (row->names[n] && strcmp(row->names[n], v)) n++;
        if (row->names[n]) {
            *(int *)((char *)ch + row->choice_off) = row->values[n];
            continue;
        }
        char list[128] = "";
        for (int k = 0; row->names[k]; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     k == 0 ? "" : row->names[k + 1] ? ", " : " or ", row->names[k]);
        return pcn_set_error(PCN_EINVAL, "--%s must be %s, got '%s'", row->option, list, v);
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Numbers in strings
// ----------------------------------------------------------------------------------------

static int parse_dims(const char *s, int *dims, int max) {
    int n = 0;
    const char *p = s;
    while (*p && n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1 << 30) return -1;
        dims[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return *p ? -1 : n;
}

static pcn_status parse_steps(const char *s, pcn_lr_step *steps, int max, int *n) {
    *n = 0;
    for (const char *p = s; *p && *n < max;) {
        pcn_lr_step st;
        int used = 0;
        if (sscanf(p, "%d:%d:%lf%n", &st.epoch, &st.batch, &st.lr, &used) != 3)
            return pcn_set_error(PCN_EINVAL, "--lr-steps: expected epoch:batch:lr,... at '%s'", p);
        steps[(*n)++] = st;
        p += used;
        if (*p == ',') p++;
    }
    return PCN_OK;
}

// --input-norm: file | none | M,S (M finite, S finite and non-zero).
static pcn_status parse_input_norm(const char *s, pcn_io_dataset_params *d) {
    *d = pcn_io_dataset_default_params();
    if (strcmp(s, "file") == 0) return PCN_OK;
    if (strcmp(s, "none") == 0) return d->norm = PCN_IO_NORM_NONE, PCN_OK;
    char *end, *mid;
    d->norm = PCN_IO_NORM_GIVEN;
    d->norm_mean = strtod(s, &mid);
    if (mid != s && *mid == ',') d->norm_std = strtod(mid + 1, &end);
    if (mid == s || *mid != ',' || end == mid + 1 || *end || !isfinite(d->norm_mean) ||
        !isfinite(d->norm_std) || d->norm_std == 0.0)
        return pcn_set_error(PCN_EINVAL, "--input-norm must be file, none or M,S (two numbers, "
                             "S not 0; e.g. 0.5,0.5), got '%s'", s);
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Parameters and checks
// ----------------------------------------------------------------------------------------

// The environment's engine knobs: PCN_ROW_PATH=0 runs the CPU's phases step by step (the
// plain path) instead of split over threads; PCN_LEARN_FLOPS_PER_BYTE sets what the
// learning-phase planner charges per byte a rank sends. Local.
static pcn_status environment_knobs(pcn_train_params *p) {
    const char *split = getenv("PCN_ROW_PATH"), *fpb = getenv("PCN_LEARN_FLOPS_PER_BYTE");
    if (split && strcmp(split, "0") == 0) p->split_phases = false;
    if (!fpb || !*fpb) return PCN_OK;
    char *end;
    p->learn_flops_per_byte = strtod(fpb, &end);
    if (*end || !(p->learn_flops_per_byte >= 0.0))
        return pcn_set_error(PCN_EINVAL, "PCN_LEARN_FLOPS_PER_BYTE must be a number >= 0, "
                             "got '%s'", fpb);
    return PCN_OK;
}

// The optimizer, the cosine schedule and the discriminative fields (choices parsed).
static pcn_status optim_params(const app *a, pcn_train_params *p) {
    const pcn_cli *c = &a->cli;
    p->optimizer = a->choice.optimizer, p->momentum = c->momentum;
    p->beta1 = c->beta1, p->beta2 = c->beta2, p->eps = c->eps;
    p->weight_decay = c->weight_decay, p->lr_warmup_frac = c->lr_warmup_frac;
    p->lr_peak_factor = c->lr_peak_factor, p->lr_final_factor = c->lr_final_factor;
    p->latent_start = a->choice.latent_start, p->latent_init_std = c->latent_init_std;
    p->infer_momentum = c->infer_momentum, p->ipc = c->ipc != 0;
    if (c->ipc != 0 && c->ipc != 1)
        return pcn_set_error(PCN_EINVAL, "--ipc must be 0 or 1, got %d", c->ipc);
    if (c->bias != 0 && c->bias != 1)
        return pcn_set_error(PCN_EINVAL, "--bias must be 0 or 1, got %d", c->bias);
    return PCN_OK;
}

pcn_status settings_to_params(app *a, pcn_train_params *p, pcn_lr_step *steps, int max_steps) {
    const pcn_cli *c = &a->cli;
    *p = pcn_train_default_params();
    if (pcn_task_from_name(c->task, &p->task) != PCN_OK) return PCN_EINVAL;
    a->choice.task = p->task;
    p->t_infer = c->t_infer, p->t_infer_test = c->t_infer_test, p->t_learn = c->t_learn;
    p->lr_infer = c->lr_infer, p->lr_learn = c->lr_learn, p->num_epochs = c->epochs;
    p->early_stop_threshold = c->early_stop, p->energy_window_size = c->energy_window;
    p->lr_decay_factor = c->lr_decay, p->lr_patience = c->lr_patience;
    p->batch_size = c->batch_size, p->test_batch_size = c->test_batch_size;
    p->shuffle = c->shuffle != 0, p->seed = (uint64_t)c->seed;
    p->train_accuracy_every = c->train_accuracy_every, p->top_k = c->top_k;
    pcn_status st = parse_choices(c, &a->choice, 5, 11);
    if (st == PCN_OK) st = optim_params(a, p);
    if (st != PCN_OK) return st;
    p->lr_schedule = a->choice.lr_schedule, p->lr_scaling = a->choice.lr_scaling;
    p->learn_path = a->choice.learn_path;
    p->lr_ref_batch = c->lr_ref_batch, p->lr_warmup_batches = c->lr_warmup;
    if (c->lr_steps[0]) {
        if ((st = parse_steps(c->lr_steps, steps, max_steps, &p->n_lr_steps)) != PCN_OK) return st;
        p->lr_steps = steps;
    }
    if ((st = environment_knobs(p)) != PCN_OK) return st;
    return pcn_train_params_validate(p);
}

pcn_status settings_check(app *a) {
    const pcn_cli *c = &a->cli;
    const choices *ch = &a->choice;
    pcn_status st = parse_choices(c, &a->choice, 0, 3);
    if (st != PCN_OK) return st;
    if (!(c->comm_timeout > 0.0))
        return pcn_set_error(PCN_EINVAL, "--comm-timeout must be > 0 seconds, got %g",
                             c->comm_timeout);
    if (ch->device == DEVICE_CPU && ch->precision != PCN_PRECISION_FP32)
        return pcn_set_error(PCN_EINVAL, "--precision %s applies to GPU inference; the CPU "
                             "computes in fp32", c->precision);
    if (ch->device == DEVICE_CPU && ch->comm == COMM_NCCL)
        return pcn_set_error(PCN_EINVAL, "--comm nccl needs --device cuda (or auto with GPUs)");
    if ((st = parse_choices(c, &a->choice, 3, 5)) != PCN_OK) return st;
    if ((st = parse_input_norm(c->input_norm, &a->data)) != PCN_OK) return st;
    a->data.mode = ch->data_mode;
    if (c->checkpoint_every < 0)
        return pcn_set_error(PCN_EINVAL, "--checkpoint-every must be >= 0, got %d",
                             c->checkpoint_every);
    if (c->test_every < 0)
        return pcn_set_error(PCN_EINVAL, "--test-every must be >= 0 epochs (0: off), got %d",
                             c->test_every);
    if (c->keep_checkpoints < 1 || c->keep_checkpoints > PCN_KEEP_MAX)
        return pcn_set_error(PCN_EINVAL, "--keep-checkpoints must be in [1, %d], got %d",
                             PCN_KEEP_MAX, c->keep_checkpoints);
    return PCN_OK;
}

pcn_status settings_check_direction(const app *a) {
    static const char *const disc_only[] = {"latent-init", "latent-init-std", "infer-momentum",
                                            "ipc", "leaky-slope"};
    static const char *const gen_only[] = {"t-learn", "early-stop", "t-infer-test"};
    static const char *const why[] = {
        "its inference runs exactly --t-infer steps, then one optimizer step",
        "its inference runs exactly --t-infer steps, then one optimizer step",
        "its test and train accuracy are one forward pass"};
    const pcn_cli *c = &a->cli;
    pcn_activation act;
    if (a->choice.direction == PCN_DIR_DISCRIMINATIVE) {
        for (size_t i = 0; i < sizeof gen_only / sizeof *gen_only; i++)
            if (pcn_cli_was_set(c, gen_only[i]))
                return pcn_set_error(PCN_EINVAL, "--%s is a generative-mode option; this run is "
                                     "--direction discriminative (%s): drop --%s", gen_only[i],
                                     why[i], gen_only[i]);
        return PCN_OK;
    }
    for (size_t i = 0; i < sizeof disc_only / sizeof *disc_only; i++)
        if (pcn_cli_was_set(c, disc_only[i]))
            return pcn_set_error(PCN_EINVAL, "--%s is a discriminative-mode option; this run is "
                                 "--direction generative: add --direction discriminative or drop "
                                 "--%s", disc_only[i], disc_only[i]);
    if (c->bias)
        return pcn_set_error(PCN_EINVAL, "--bias 1 needs --direction discriminative (pcn-torch's "
                             "generative network has no biases)");
    if (pcn_activation_from_name(c->activation, &act) == PCN_OK &&
        act >= PCN_ACT_GENERATIVE_COUNT)
        return pcn_set_error(PCN_EINVAL, "--activation %s needs --direction discriminative; "
                             "generative runs take relu, tanh, sigmoid or identity",
                             c->activation);
    return PCN_OK;
}

// The moment buffers optimizer o keeps (pcn.h, pcn_model_optimizer_state: momentum m;
// adamw m and v).
static int moment_slots(pcn_optimizer o) {
    return o == PCN_OPT_ADAMW ? 2 : o == PCN_OPT_MOMENTUM ? 1 : 0;
}

pcn_status settings_check_resume_optimizer(const app *a, const pcn_ckpt_info *info,
                                           const char *path) {
    const pcn_optimizer o = a->choice.optimizer;
    const int slots = moment_slots(o), have = info->opt_slots;
    const bool same = strcmp(info->optimizer, pcn_optimizer_name(o)) == 0 &&
                      (have == 0 || have == slots);
    if (same || (have == 0 && o == PCN_OPT_SGD)) return PCN_OK;
    return pcn_set_error(PCN_EINVAL, "%s was trained with optimizer %s (state of %d moment "
                         "slot%s), but --optimizer is %s (%d slot%s): a resume would drop or "
                         "zero those moments; resume with --optimizer %s, or start a new run",
                         path, info->optimizer, have, have == 1 ? "" : "s",
                         pcn_optimizer_name(o), slots, slots == 1 ? "" : "s", info->optimizer);
}

// No output may be the same file as an input or as another output (by device and inode,
// not by spelling): --metrics on --resume or --data would destroy it. A run's checkpoint
// may be the file it resumes from.
pcn_status settings_check_outputs(const pcn_cli *c, bool train) {
    const char *cfg = c->config[0] ? c->config : NULL;
    const struct { const char *name, *path; } in[] = {
        {"--data", c->data}, {"--config", cfg}, {"--resume", train ? c->resume : NULL},
        {"--checkpoint", train ? NULL : c->checkpoint}};
    const struct { const char *name, *path; } out[] = {
        {"--checkpoint", train ? c->checkpoint : NULL}, {"--metrics", train ? c->metrics : NULL},
        {"--output", train ? NULL : c->output}};
    for (size_t o = 0; o < sizeof out / sizeof *out; o++) {
        if (!out[o].path || !out[o].path[0]) continue;
        for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
            bool resumed = o == 0 && i == 2; // --checkpoint over its own --resume
            if (!resumed && pcn_io_file_same(out[o].path, in[i].path))
                return pcn_set_error(PCN_EINVAL, "%s %s is the same file as %s %s: an output "
                                     "must not replace an input", out[o].name, out[o].path,
                                     in[i].name, in[i].path);
        }
        for (size_t k = o + 1; k < sizeof out / sizeof *out; k++)
            if (out[k].path && pcn_io_file_same(out[o].path, out[k].path))
                return pcn_set_error(PCN_EINVAL, "%s %s and %s %s are the same file",
                                     out[o].name, out[o].path, out[k].name, out[k].path);
    }
    return PCN_OK;
}

// A run writes its checkpoint (path: --checkpoint, or the default file without one) over an
// existing file only when it continues that checkpoint (--resume is it, or one of its kept
// files, by identity) or --overwrite says so. With --keep-checkpoints K > 1 the kept files
// path.1 ... path.{K-1}, which its writes would rotate and drop, count too: they belong to
// the run that left them. Local; rank 0 looks (it writes checkpoints), the caller agrees.
pcn_status settings_check_replace(const pcn_cli *c, const char *path) {
    char found[PCN_CLI_PATH + 16], what[2 * PCN_CLI_PATH + 96];
    if (c->overwrite || !pcn_io_ckpt_exists(path, c->keep_checkpoints, found, sizeof found))
        return PCN_OK;
    if (c->resume[0] && pcn_io_ckpt_of(path, c->resume, PCN_KEEP_MAX)) return PCN_OK;
    if (!c->checkpoint[0])
        snprintf(what, sizeof what, "%s (the checkpoint of a run without --checkpoint)", path);
    else if (strcmp(found, path) == 0) snprintf(what, sizeof what, "--checkpoint %s", path);
    else
        snprintf(what, sizeof what, "%s, a kept file of --checkpoint %s that "
                 "--keep-checkpoints %d would rotate,", found, path, c->keep_checkpoints);
    return pcn_set_error(PCN_EINVAL, "%s exists and this run does not resume from it; pass "
                         "--resume %s to continue it, --overwrite to replace it, or %s", what,
                         found, c->checkpoint[0] ? "choose another path"
                                                 : "--checkpoint another path");
}

// ----------------------------------------------------------------------------------------
// Models
// ----------------------------------------------------------------------------------------

static pcn_model *model_from_settings(const pcn_cli *c) {
    int dims[PCN_MAX_LAYERS + 1];
    int n = parse_dims(c->dims, dims, PCN_MAX_LAYERS + 1);
    if (n < 2) {
        pcn_set_error(PCN_EINVAL, "--dims must be at least two positive integers separated by "
                      "commas (input first), got '%s'", c->dims);
        return NULL;
    }
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = n, mp.output_dim = c->output_dim, mp.seed = (uint64_t)c->seed;
    mp.bias = c->bias != 0, mp.leaky_slope = (float)c->leaky_slope;
    if (pcn_direction_from_name(c->direction, &mp.direction) != PCN_OK) return NULL;
    if (c->output_dim < 0) {
        pcn_set_error(PCN_EINVAL, "--output-dim must be >= 1, got %d", c->output_dim);
        return NULL;
    }
    if (pcn_activation_from_name(c->activation, &mp.activation) != PCN_OK ||
        pcn_task_from_name(c->task, &mp.mode) != PCN_OK)
        return NULL;
    return pcn_model_init(&mp);
}

pcn_status settings_new_model(app *a, pcn_model **m) {
    pcn_status st = PCN_OK;
    if (!a->cli.dims[0]) st = pcn_set_error(PCN_EINVAL, "--dims is required (e.g. --dims 784,256,64,10)");
    if (st == PCN_OK && !(*m = model_from_settings(&a->cli))) st = PCN_EINVAL;
    return pcn_dist_agree(a->comm, st);
}

// The direction, biases and leaky slope of a model file against the settings. Local.
static pcn_status check_model_direction(const pcn_cli *c, const pcn_ckpt_info *info,
                                        const char *path) {
    pcn_direction dir;
    if (pcn_direction_from_name(c->direction, &dir) != PCN_OK) return PCN_EINVAL;
    if (dir != info->direction)
        return pcn_set_error(PCN_EINVAL, "%s holds a %s model, but --direction is %s", path,
                             pcn_direction_name(info->direction), c->direction);
    if ((c->bias != 0) != info->bias)
        return pcn_set_error(PCN_EINVAL, "%s holds a model %s biases, but --bias is %d", path,
                             info->bias ? "with" : "without", c->bias);
    if ((float)c->leaky_slope != info->leaky_slope)
        return pcn_set_error(PCN_EINVAL, "%s holds a model of leaky slope %g, but --leaky-slope "
                             "is %g", path, (double)info->leaky_slope, c->leaky_slope);
    return PCN_OK;
}

// A model file against the settings read over its own (settings_read): a setting that
// contradicts its model (dims, outputs, activation, task) is refused, not ignored. Local.
static pcn_status check_model(const pcn_cli *c, const pcn_ckpt_info *info, const char *path) {
    char have[512] = "";
    for (int l = 0; l < info->n_dims; l++)
        snprintf(have + strlen(have), sizeof have - strlen(have), l ? ",%d" : "%d", info->dims[l]);
    int dims[PCN_MAX_LAYERS + 1], n = parse_dims(c->dims, dims, PCN_MAX_LAYERS + 1);
    bool same = n == info->n_dims;
    for (int l = 0; same && l < n; l++) same = dims[l] == info->dims[l];
    if (!same)
        return pcn_set_error(PCN_EINVAL, "%s holds a model of dims %s, but --dims is %s", path,
                             have, c->dims);
    if ((c->output_dim ? c->output_dim : dims[n - 1]) != info->output_dim)
        return pcn_set_error(PCN_EINVAL, "%s holds a readout of %d outputs, but --output-dim is %d",
                             path, info->output_dim, c->output_dim);
    pcn_activation act;
    pcn_task task;
    if (pcn_activation_from_name(c->activation, &act) != PCN_OK ||
        pcn_task_from_name(c->task, &task) != PCN_OK)
        return PCN_EINVAL;
    pcn_status st = check_model_direction(c, info, path);
    if (st != PCN_OK) return st;
    const bool one_disc = info->direction == PCN_DIR_DISCRIMINATIVE && info->n_dims == 2;
    if (act != info->activation && !one_disc) // (a one-layer discriminative net: identity)
        return pcn_set_error(PCN_EINVAL, "%s holds a model with activation %s, but --activation "
                             "is %s", path, pcn_activation_name(info->activation), c->activation);
    if (task != info->mode)
        return pcn_set_error(PCN_EINVAL, "%s holds a %s model, but --task is %s", path,
                             pcn_task_name(info->mode), c->task);
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// The layers of settings
// ----------------------------------------------------------------------------------------

// Reads a whole text file (the --config file).
static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)(n > 0 ? n : 0) + 1, 1);
    if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

pcn_status settings_load(app *a, const char *base, const char **pos, int max_pos, int *npos) {
    pcn_cli_defaults(&a->cli);
    pcn_status st = base ? pcn_cli_apply_ini(&a->cli, base, "checkpoint settings") : PCN_OK;
    pcn_cli_forget(&a->cli); // what --config and the flags set, not the stored settings
    const char *cfg = pcn_cli_find_config(a->argc, a->argv);
    if (st == PCN_OK && cfg) st = pcn_io_file_regular(cfg, "--config");
    if (st == PCN_OK && cfg) {
        char *text = slurp(cfg);
        if (!text) st = pcn_set_error(PCN_EINVAL, "--config %s: cannot read the file", cfg);
        else st = pcn_cli_apply_ini(&a->cli, text, cfg);
        free(text);
    }
    if (st == PCN_OK) st = pcn_cli_apply_args(&a->cli, a->argc, a->argv, 2, pos, max_pos, npos);
    return pcn_dist_agree(a->comm, st);
}

// The model file's path may itself come from --config, so a first pass over the file and
// the flags finds it; the second pass lays them over the file's stored settings.
int settings_read(app *a, bool train, pcn_ckpt_info *info, pcn_history *h, pcn_model **m,
                  const char **pos, int max_pos, int *npos) {
    if (settings_load(a, NULL, pos, max_pos, npos) != PCN_OK) return EXIT_USAGE;
    const char *key = train ? "--resume" : "--checkpoint";
    char path[PCN_CLI_PATH];
    snprintf(path, sizeof path, "%s", train ? a->cli.resume : a->cli.checkpoint);
    if (!path[0]) return EXIT_OK;
    if (pcn_dist_agree(a->comm, pcn_io_file_regular(path, key)) != PCN_OK) return EXIT_USAGE;
    if (!(*m = pcn_io_ckpt_read(a->comm, path, info, h))) return EXIT_ERROR;
    if (settings_load(a, info->config, pos, max_pos, npos) != PCN_OK) return EXIT_USAGE;
    return pcn_dist_agree(a->comm, check_model(&a->cli, info, path)) == PCN_OK ? EXIT_OK
                                                                                : EXIT_USAGE;
}
