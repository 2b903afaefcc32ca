/*
 * cli.h — pcn_dist's settings: one table of options that serves the command line
 * (--name value or --name=value), the INI config file (name = value; flags override it),
 * --help, and the copy of the settings stored in every checkpoint.
 */
#ifndef PCN_CLI_H
#define PCN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pcn.h"

#define PCN_CLI_PATH 4096

typedef struct {
    char data[PCN_CLI_PATH];        // data set (HDF5)
    char dims[512];                 // "784,256,64,10"
    int output_dim;                 // 0: dL
    char activation[16];
    char direction[16];             // generative | discriminative
    int bias;                       // discriminative: biases, 0 or 1
    double leaky_slope;             // leaky_relu's slope for a < 0
    char task[16];
    int epochs;
    int batch_size;
    int test_batch_size;            // 0: batch_size
    int t_infer, t_infer_test, t_learn;
    double lr_infer, lr_learn;
    double early_stop;
    int energy_window;
    char lr_schedule[16];           // none | plateau | steps | cosine
    double lr_warmup_frac, lr_peak_factor, lr_final_factor; // cosine
    char optimizer[16];             // sgd | momentum | adamw
    double momentum, beta1, beta2, eps, weight_decay;
    char latent_init[16];           // discriminative: forward | random
    double latent_init_std;         // discriminative: random start's sigma
    double infer_momentum;          // discriminative: latent heavy-ball momentum
    int ipc;                        // discriminative: incremental PC, 0 or 1
    char input_norm[64];            // file | none | M,S
    double lr_decay;
    int lr_patience;
    char lr_steps[1024];            // "epoch:batch:lr,..."
    char lr_scaling[8];             // none | linear | sqrt
    int lr_ref_batch;
    int lr_warmup;
    long long seed;
    int shuffle;
    int train_accuracy_every;
    int top_k;
    char checkpoint[PCN_CLI_PATH];
    int checkpoint_every;           // batches; 0: at the end and on stop only
    int test_every;                 // train: score the test split every N epochs; 0: at the end
    int keep_checkpoints;
    int overwrite;                  // train: may replace a checkpoint it does not resume from
    char resume[PCN_CLI_PATH];
    char metrics[PCN_CLI_PATH];
    char config[PCN_CLI_PATH];
    char device[8];                 // auto | cpu | cuda
    char precision[8];              // fp32 | tf32 | bf16 | fp16 (GPU inference)
    char comm[8];                   // auto | nccl | mpi (gradient sums of GPU runs)
    char learn_path[8];             // auto | plain | gram (learning phase; equal to rounding)
    double comm_timeout;            // seconds a wait on the GPU may take with NCCL up
    char data_mode[8];              // memory | stream
    char output[PCN_CLI_PATH];      // predict: output file
    char split[8];                  // test/predict: train | test
    int json;                       // test: one JSON object
    int progress;                   // progress display on rank 0
    int stop_after_batches;         // testing: send ourselves SIGTERM after N batches
    char inject_fault[32];          // testing: ckpt-write
    int help, version;
    bool given[128];                // by option: set by --config or a flag (not by defaults
                                    //   or a checkpoint's stored settings)
} pcn_cli;

// Defaults (pcn-torch 1.1.0's where it has one).
void pcn_cli_defaults(pcn_cli *c);
// Applies INI text (name = value lines; '#' and ';' comments; [sections] ignored). On a bad
// line returns PCN_EINVAL with a message (pcn_last_error) naming origin and the line.
pcn_status pcn_cli_apply_ini(pcn_cli *c, const char *text, const char *origin);
// Applies argv[first..argc). Positional arguments go to *positional (at most max).
pcn_status pcn_cli_apply_args(pcn_cli *c, int argc, char **argv, int first,
                              const char **positional, int max_positional, int *n_positional);
// Finds --config in argv without applying anything (so the file can be applied first).
const char *pcn_cli_find_config(int argc, char **argv);
// Whether the option was given on the command line.
bool pcn_cli_given(int argc, char **argv, const char *name);
// Whether the option was set by --config or a flag since the last pcn_cli_forget.
bool pcn_cli_was_set(const pcn_cli *c, const char *name);
// Forgets which options were set (after laying a checkpoint's stored settings down).
void pcn_cli_forget(pcn_cli *c);
// The training settings as INI text (malloc'd), for checkpoints.
char *pcn_cli_to_ini(const pcn_cli *c);
void pcn_cli_usage(FILE *out);

#endif // PCN_CLI_H
