/*
 * program.h — the pcn_dist program's private header: the run's state shared by its files
 * (main.c dispatches and reports, settings.c reads the settings, device.c places the run,
 * cmd_train.c trains, cmd_eval.c tests and predicts).
 *
 * The program touches files only through io/ and other ranks only through src/dist; its
 * one mutable global is the stop-signal flag in main.c (program_stop_requested).
 */
#ifndef PCN_PROGRAM_H
#define PCN_PROGRAM_H

#include <stdbool.h>

#include "cli.h"
#include "pcn.h"
#include "pcn_io.h"
#include "pcn_dist.h"

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_STOPPED = 3 };

// Checkpoints kept by rotation (PATH, PATH.1, ...): every write renames each of them.
#define PCN_KEEP_MAX 1000

typedef enum { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA } device_choice;
typedef enum { COMM_AUTO, COMM_NCCL, COMM_MPI } comm_choice;
typedef enum { SPLIT_TRAIN, SPLIT_TEST } split_choice;

// The settings that name one of a few choices, parsed once from their strings in pcn_cli
// (settings_check and settings_to_params fill them; the strings stay for messages).
typedef struct {
    device_choice device;        // --device
    pcn_precision precision;     // --precision
    comm_choice comm;            // --comm
    pcn_io_mode data_mode;       // --data-mode
    split_choice split;          // --split
    pcn_lr_schedule lr_schedule; // --lr-schedule
    pcn_lr_scaling lr_scaling;   // --lr-scaling
    pcn_learn_path learn_path;   // --learn-path
    pcn_task task;               // --task (pcn_task_from_name)
    pcn_direction direction;     // --direction
    pcn_optimizer optimizer;     // --optimizer
    pcn_latent_start latent_start; // --latent-init
} choices;

typedef struct {
    pcn_comm *comm;
    pcn_cli cli;
    choices choice;
    pcn_io_dataset_params data;  // the data set reader's (--data-mode, --input-norm)
    int argc;
    char **argv;
    char device[192];    // where this run computes (device_setup)
    double test_seconds; // wall time of the last pcn_dist_test (test --json); NAN before
    int64_t *confusion;  // (classes, classes) counts [label][prediction] of the last
    int classes;         //   classification score (cmd_eval_print shows them), or NULL
} app;

// ---- main.c ----------------------------------------------------------------------------
// Rank 0 prints "pcn_dist: [what: ]<last error>"; every rank returns status. Local.
int program_fail(app *a, int status, const char *what);
// Whether SIGTERM or SIGUSR1 arrived (this rank only). Local.
bool program_stop_requested(void);

// ---- settings.c ------------------------------------------------------------------------
// Settings, read once into a->cli: the defaults, then the stored settings of the model file
// (train --resume, test/predict --checkpoint), then --config, then the flags; *m is then
// that file's model (NULL without one). EXIT_OK, EXIT_USAGE or EXIT_ERROR with the message
// set (not printed). Collective.
int settings_read(app *a, bool train, pcn_ckpt_info *info, pcn_history *h, pcn_model **m,
                  const char **pos, int max_pos, int *npos);
// Defaults, then base (stored settings, or NULL), then --config, then the flags; the status
// and message agreed over the ranks. Collective.
pcn_status settings_load(app *a, const char *base, const char **pos, int max_pos, int *npos);
// Checks the device, file and checkpoint settings and parses their choices into a->choice.
// Local; the caller agrees.
pcn_status settings_check(app *a);
// The training parameters of the settings (parses the schedule choices into a->choice);
// steps holds the --lr-steps entries. Local.
pcn_status settings_to_params(app *a, pcn_train_params *p, pcn_lr_step *steps, int max_steps);
// The direction's refusals: an option of the other direction set by --config or a flag
// (discriminative: --latent-init, --latent-init-std, --infer-momentum, --ipc,
// --leaky-slope, --bias 1, --activation gelu|leaky_relu|hard_tanh; generative: --t-learn,
// --early-stop, --t-infer-test), each naming the flag. After settings_to_params. Local;
// the caller agrees.
pcn_status settings_check_direction(const app *a);
// A resume's optimizer against the checkpoint's (path; info from settings_read): refused
// when the name or the number of moment slots differs, unless the checkpoint holds no
// moments and the run is sgd. After settings_to_params. Local; the caller agrees.
pcn_status settings_check_resume_optimizer(const app *a, const pcn_ckpt_info *info,
                                           const char *path);
// No output may be the same file as an input or another output. Local; the caller agrees.
pcn_status settings_check_outputs(const pcn_cli *c, bool train);
// Whether a training run may write its checkpoint path (the default file without
// --checkpoint): refused when it, or a kept file a write would rotate, exists and the run
// neither resumes from it nor has --overwrite. Local; the caller agrees.
pcn_status settings_check_replace(const pcn_cli *c, const char *path);
// A new model from --dims and the other model settings. Collective.
pcn_status settings_new_model(app *a, pcn_model **m);

// ---- device.c --------------------------------------------------------------------------
// Chooses where this run computes (after settings_check), moves m there and sets p's
// precision; writes the description into a->device. Collective; the same status everywhere.
pcn_status device_setup(app *a, pcn_model *m, pcn_train_params *p);

// ---- cmd_eval.c ------------------------------------------------------------------------
// Prints a test result on rank 0 (text, or JSON with --json). Local.
void cmd_eval_print(app *a, const pcn_test_result *r, const char *split);
// Prints the test split's score after `epoch` epochs (1-based: epochs done) on rank 0 as
// one line, "epoch E test: ..." (or one JSON object with "epoch" under --json). Local.
void cmd_eval_print_epoch(app *a, const pcn_test_result *r, int epoch);
// Scores split of --data with m; sets a->test_seconds. Collective.
pcn_status cmd_eval_split(app *a, const pcn_model *m, const pcn_train_params *p, const char *split,
                      pcn_test_result *r);
int cmd_eval(app *a, bool predict);

// ---- cmd_train.c -----------------------------------------------------------------------
int cmd_train(app *a);

#endif // PCN_PROGRAM_H
