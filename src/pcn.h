/*
 * pcn.h — public API of libpcn, the Predictive Coding Network engine behind pcn_dist.
 *
 * libpcn computes Algorithm 3 of Stenlund 2025 (arXiv:2506.06332) exactly as the Python
 * package pcn-torch 1.1.0 does. Shapes follow pcn-torch: dims = [d0, d1, ..., dL]; layer l
 * (l = 0..L-1) has weight W[l] of shape (d_l, d_{l+1}) row-major (out x in), predicting
 * X[l] from X[l+1]; the readout Wout (K, dL) maps the top latent to the K outputs.
 * Latents X[1..L] are (B, d_l) row-major; X[0] is the input batch.
 *
 * Conventions: every function is Local (no communication) unless its comment says
 * Collective. Functions that can fail return a pcn_status; the reason is in
 * pcn_last_error() (thread-local). Objects are opaque, made by *_init and released by
 * *_free, which accept NULL. Parameter structs come with a *_default_params() function.
 */
#ifndef PCN_H
#define PCN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PCN_VERSION_MAJOR 0
#define PCN_VERSION_MINOR 1
#define PCN_VERSION_PATCH 0
#define PCN_VERSION_STRING "0.1.0"

// ----------------------------------------------------------------------------------------
// Status and errors
// ----------------------------------------------------------------------------------------

typedef enum {
    PCN_OK = 0,
    PCN_EINVAL = 1,   // invalid argument or parameter (message names the field)
    PCN_ENOMEM = 2,   // allocation failed
    PCN_EDATA = 3,    // bad data: non-finite values, labels out of range, wrong shapes
    PCN_EIO = 4,      // a data source or file failed
    PCN_ESTATE = 5,   // call out of order (e.g. latents not initialised)
    PCN_EDIVERGED = 6,// energy became NaN or Inf during training
    PCN_STOPPED = 7   // training stopped on request at a batch boundary (not an error)
} pcn_status;

const char *pcn_status_name(pcn_status s);
// The message of the last failure on this thread ("" if none).
const char *pcn_last_error(void);
// Records a message for pcn_last_error() on this thread and returns status: the one error
// channel that libpcn, its io and dist libraries and the program share. Local.
pcn_status pcn_set_error(pcn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
// Version of the library this program runs against, "MAJOR.MINOR.PATCH".
const char *pcn_version(void);

// ----------------------------------------------------------------------------------------
// Activations (pcn-torch get_activation)
// ----------------------------------------------------------------------------------------

typedef enum {
    PCN_ACT_RELU = 0,     // f = max(a, 0), f' = 1[a > 0]
    PCN_ACT_TANH = 1,     // f = tanh a, f' = 1 - tanh^2 a
    PCN_ACT_SIGMOID = 2,  // f = 1/(1+e^-a), f' = f(1-f)
    PCN_ACT_IDENTITY = 3, // f = a, f' = 1
    // Discriminative mode only (generative mode keeps pcn-torch's four):
    PCN_ACT_GELU = 4,     // tanh form (jax.nn.gelu's default, approximate=True):
                          //   f = a/2 (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))
    PCN_ACT_LEAKY_RELU = 5, // f = a for a > 0, slope * a otherwise (model's leaky_slope);
                          //   f' = 1 or slope
    PCN_ACT_HARD_TANH = 6,// f = clamp(a, -1, 1), f' = 1[-1 < a < 1]
    PCN_ACT_COUNT
} pcn_activation;

// The activations generative mode takes (pcn-torch's): relu, tanh, sigmoid, identity.
#define PCN_ACT_GENERATIVE_COUNT 4

typedef float (*pcn_act_fn)(float);

// Looks an activation up by name ("relu", "tanh", "sigmoid", "identity", "gelu",
// "leaky_relu", "hard_tanh"). PCN_EINVAL names the available ones.
pcn_status pcn_activation_from_name(const char *name, pcn_activation *out);
const char *pcn_activation_name(pcn_activation act);
// pcn-torch's get_activation: the function and its hand-coded derivative.
pcn_status pcn_get_activation(const char *name, pcn_act_fn *fn, pcn_act_fn *deriv);
// f(a) and f'(a); leaky_relu with the default slope 0.01.
float pcn_activation_apply(pcn_activation act, float a);
float pcn_activation_deriv(pcn_activation act, float a);
// The same with leaky_relu's slope given (ignored by the other activations).
float pcn_activation_apply_slope(pcn_activation act, float slope, float a);
float pcn_activation_deriv_slope(pcn_activation act, float slope, float a);

// ----------------------------------------------------------------------------------------
// Model (pcn-torch PredictiveCodingNetwork, PCNLayer)
// ----------------------------------------------------------------------------------------

typedef enum { PCN_TASK_CLASSIFICATION = 0, PCN_TASK_REGRESSION = 1 } pcn_task;

// Which way the network predicts (see docs/DISCRIMINATIVE.md).
typedef enum {
    PCN_DIR_GENERATIVE = 0,    // the seed (pcn-torch): latents predict the layer below, the
                               //   label at the top, free inference at test
    PCN_DIR_DISCRIMINATIVE = 1 // PCX: the input predicts upwards, mu_l = f_l(x_{l-1} W_l^T
                               //   + b_l), identity at the output; test is one forward pass
} pcn_direction;

const char *pcn_direction_name(pcn_direction d);
pcn_status pcn_direction_from_name(const char *name, pcn_direction *out);

const char *pcn_task_name(pcn_task task);
pcn_status pcn_task_from_name(const char *name, pcn_task *out);

typedef struct {
    int n_dims;                // number of entries in dims (L + 1); at least 2; default 0 (must be set)
    const int *dims;           // [d0, ..., dL], each >= 1, input first; default NULL (must be set)
    pcn_activation activation; // one activation for every layer; default relu
    int output_dim;            // K, readout outputs; 0 means dL; default 0
    pcn_task mode;             // classification or regression; default classification
    uint64_t seed;             // seed of the weight initialisation (Philox); default 0
    pcn_direction direction;   // default generative (the seed)
    bool bias;                 // discriminative: biases b_1..b_L; generative refuses it;
                               //   default false
    float leaky_slope;         // leaky_relu's slope for a < 0, finite; default 0.01
} pcn_model_params;

pcn_model_params pcn_model_default_params(void);

// One layer given explicitly (pcn-torch's construction from PCNLayer instances).
typedef struct {
    int in_features;           // d_{l+1}
    int out_features;          // d_l
    pcn_activation activation; // this layer's activation
    const float *weight;       // (out, in) row-major to copy, or NULL for Xavier init
} pcn_layer_spec;

// The most layers (L) a model may have.
#define PCN_MAX_LAYERS 64

typedef struct pcn_model pcn_model;

// Where a model's weights and its states' buffers live and compute.
typedef enum { PCN_DEVICE_CPU = 0, PCN_DEVICE_CUDA = 1 } pcn_device;

// Arithmetic of the inference phase's matrix products on a GPU (the learning phase and
// every element-wise pass stay float32; inputs and outputs are float32 throughout). The
// products are cublasGemmEx on float32 operands with the compute type named below: cuBLAS
// is ALLOWED to round the inputs to that format for tensor cores (float32 accumulation)
// and may take a more precise path instead (tf32 or float32), so the rounding is at most
// the format's, not guaranteed to be exactly it (torch.autocast converts the operands to
// fp16 itself). See docs/GPU.md.
typedef enum {
    PCN_PRECISION_FP32 = 0, // float32 products (CUBLAS_COMPUTE_32F)
    PCN_PRECISION_TF32 = 1, // CUBLAS_COMPUTE_32F_FAST_TF32: inputs to tf32 (10-bit mantissa)
    PCN_PRECISION_BF16 = 2, // CUBLAS_COMPUTE_32F_FAST_16BF: inputs to bfloat16 at most
    PCN_PRECISION_FP16 = 3  // CUBLAS_COMPUTE_32F_FAST_16F: inputs to float16 at most
                            //   (torch.autocast's default type, pcn-torch's mixed precision)
} pcn_precision;

// Builds a model from dims. Generative: W[l] ~ Xavier U(-a, a), a = sqrt(6/(d_l + d_{l+1}));
// the readout, like torch.nn.Linear, ~ U(-1/sqrt(dL), 1/sqrt(dL)). Discriminative (PCX's
// equinox Linear): W_l (d_l, d_{l-1}) and b_l ~ U(-1/sqrt(d_{l-1}), 1/sqrt(d_{l-1})); the
// model's "layer l" (l = 0..L-1, pcn_model_layer) is then W_{l+1}, (d_{l+1}, d_l), and the
// readout slot of the weight buffer holds the biases b_1..b_L in order (empty without
// them); output_dim must be 0 or dL. Activations: `activation` on hidden layers, identity
// at the output. NULL on error.
pcn_model *pcn_model_init(const pcn_model_params *params);
// Builds a model from explicit layers (adjacent shapes must chain: layer l's in_features ==
// layer l+1's out_features). output_dim 0 means the top layer's in_features. NULL on error.
pcn_model *pcn_model_init_layers(const pcn_layer_spec *layers, int n_layers, int output_dim,
                                 pcn_task mode, uint64_t seed);
void pcn_model_free(pcn_model *model);

int pcn_model_num_layers(const pcn_model *model);        // L
int pcn_model_dim(const pcn_model *model, int l);        // d_l, l = 0..L
int pcn_model_output_dim(const pcn_model *model);        // K
pcn_task pcn_model_mode(const pcn_model *model);
pcn_direction pcn_model_direction(const pcn_model *model);
bool pcn_model_has_bias(const pcn_model *model);
float pcn_model_leaky_slope(const pcn_model *model);
pcn_activation pcn_model_activation(const pcn_model *model); // hidden layers'
size_t pcn_model_num_weights(const pcn_model *model);    // all weights incl. readout/biases
// Discriminative: b_l (d_l), l = 1..L, inside the weight buffer; NULL without biases or
// for a generative model.
float *pcn_model_bias(pcn_model *model, int l);

// ---- optimizer state --------------------------------------------------------------------
// The weight optimizer's moments live with the model (so a checkpoint carries them):
// `slots` buffers of num_weights floats each (momentum: 1, m; adamw: 2, m then v), the
// weight buffer's layout; 0 slots until a run with such an optimizer allocates them.
// The host view is refreshed from a device first. NULL without state. Local.
int pcn_model_optimizer_slots(const pcn_model *model);
float *pcn_model_optimizer_state(pcn_model *model);
// Allocates `slots` zeroed buffers (0 frees them); PCN_ENOMEM on failure. Local.
pcn_status pcn_model_optimizer_reserve(pcn_model *model, int slots);
// After writing through pcn_model_optimizer_state's pointer (a checkpoint's load): the
// device copy is refreshed at the next run's start. Local.
void pcn_model_optimizer_loaded(pcn_model *model);

// Per-layer view (pcn-torch PCNLayer). l = 0..L-1. weight points into the model.
typedef struct {
    int out_features;          // d_l
    int in_features;           // d_{l+1}
    pcn_activation activation;
    float *weight;             // (out_features, in_features) row-major
} pcn_layer_view;

pcn_layer_view pcn_model_layer(pcn_model *model, int l);
float *pcn_model_readout(pcn_model *model);              // (K, dL) row-major
// The one contiguous buffer holding W[0], ..., W[L-1], Wout in that order.
float *pcn_model_weights(pcn_model *model);
// Offset of W[l] (l = L for the readout) in that buffer.
size_t pcn_model_weight_offset(const pcn_model *model, int l);

// ---- GPUs --------------------------------------------------------------------------------
// CUDA devices this process sees; 0 when libpcn was built without CUDA, CUDA cannot be
// used (pcn_cuda_unavailable_reason says why) or none is visible. Local.
int pcn_cuda_device_count(void);
// Binds this process to CUDA device `device` (0-based among the visible ones) and creates
// its stream and cuBLAS handle. Refuses a device whose architecture this build has no
// kernels for (naming the -DCMAKE_CUDA_ARCHITECTURES to rebuild with). Call once, before
// moving a model there. Local.
pcn_status pcn_cuda_select(int device);
// Where the CUDA module libpcn_cuda.so is (a file); NULL or "" (the default) looks next to
// the program, in its parent folder, in the build folder and on LD_LIBRARY_PATH. Takes
// effect at the first GPU call. Local.
void pcn_cuda_set_module(const char *path);
// Whether device inference steps are recorded once as CUDA graphs and replayed (default
// true; false launches every step's kernels, for benchmarks). Local.
void pcn_cuda_set_graphs(bool on);
// Whether the CUDA module is available here (and has NCCL); loads it on first call. Local.
bool pcn_cuda_built(void);
bool pcn_cuda_built_nccl(void);
// Why this process has no CUDA device, in one line: no NVIDIA driver, the CUDA module or a
// library it needs does not load (the loader's message names the file), the driver is
// older than the runtime or CUDA fails otherwise (its error), or no device is visible.
// NULL when a device is visible. Local.
const char *pcn_cuda_unavailable_reason(void);
// Whether this machine looks as if it has an NVIDIA GPU: the driver's library libcuda.so.1
// loads, or a device node /dev/nvidiactl or /dev/nvidia0 exists (whether or not CUDA can use
// it). Loads neither the module nor the CUDA runtime. Local.
bool pcn_cuda_expected(void);
// The selected device's name and index (NULL / -1 before pcn_cuda_select). Local.
const char *pcn_cuda_device_name(void);
int pcn_cuda_device_index(void);
// The selected device's UUID (cudaDeviceProp.uuid; nvidia-smi shows it as GPU-xxxxxxxx-...),
// which tells whether two processes drive the same GPU whatever their visible devices are.
// PCN_ESTATE before pcn_cuda_select. Local.
#define PCN_CUDA_UUID_BYTES 16
pcn_status pcn_cuda_device_uuid(unsigned char uuid[PCN_CUDA_UUID_BYTES]);
// Where device failures that leave no way back go (a failed launch, an NCCL error or a
// timeout; the message is formatted). Default: print and abort(). src/dist points it at
// pcn_fatal so that every rank ends, not one. Local.
void pcn_cuda_set_fatal(void (*handler)(const char *msg));
// Seconds a wait on the device may take before it is declared hung (NCCL peers gone);
// default 300. Local.
void pcn_cuda_set_timeout(double seconds);
// The NCCL communicator of the selected device, which src/dist sums gradients with: rank
// 0 makes a unique id, src/dist broadcasts it over MPI, every rank joins (Collective over
// the `size` ranks; the communicator is made on the selected device), sums run in place on
// the compute stream (Collective); free accepts none (Local).
#define PCN_CUDA_NCCL_ID_BYTES 128
pcn_status pcn_cuda_nccl_unique_id(unsigned char id[PCN_CUDA_NCCL_ID_BYTES]);
pcn_status pcn_cuda_nccl_init(const unsigned char id[PCN_CUDA_NCCL_ID_BYTES], int rank, int size);
pcn_status pcn_cuda_nccl_sum(float *v, size_t n);
void pcn_cuda_nccl_free(void);
// Moves a model's compute to dev. On CUDA the weights live on the selected device; the
// host copy that pcn_model_weights() and the layer views expose is refreshed at the end of
// pcn_train (and, inside a batch_hook, on its first read through them: weights cross to the
// host only when read) and read at the start of pcn_train/pcn_test,
// so it stays the model's truth between calls. On CUDA the step-level API (pcn_state_*,
// pcn_compute_errors, the single steps, pcn_predict) is not available. Local.
pcn_status pcn_model_to_device(pcn_model *model, pcn_device dev);
pcn_device pcn_model_device(const pcn_model *model);

// ----------------------------------------------------------------------------------------
// Batch state: latents and errors on caller-visible buffers (pcn-torch latents, PCNErrors)
// ----------------------------------------------------------------------------------------

typedef struct pcn_state pcn_state;

// Holds latents, preactivations and errors for batches of up to max_batch rows.
pcn_state *pcn_state_init(const pcn_model *model, int max_batch);
void pcn_state_free(pcn_state *state);
// Sets the number of rows in use (0..max_batch). Latent contents become undefined.
pcn_status pcn_state_set_batch(pcn_state *state, int batch);
int pcn_state_batch(const pcn_state *state);
// Latent X[l], l = 1..L: (B, d_l) row-major, writable. For a state on a device (inside a
// latent_init callback of a GPU run) a host buffer that the trainer uploads after the
// callback; NULL when out of memory or l is out of range.
float *pcn_state_latent(pcn_state *state, int l);

// Where a latent draw sits, so that its values depend on nothing else (not on the rank
// count, the device, or a stop and resume).
typedef enum {
    PCN_STREAM_TRAIN = 0,   // latents of a training batch's inference and learning
    PCN_STREAM_ACCURACY = 1,// fresh latents for the train-accuracy free inference
    PCN_STREAM_TEST = 2,    // latents of test / predict inference
    PCN_STREAM_USER = 3     // pcn_init_latents called by a user
} pcn_stream;

typedef struct {
    uint64_t seed;        // run seed
    pcn_stream stream;    // which draw
    uint32_t epoch;       // epoch (0 for test)
    int64_t first_row;    // global position (within the epoch's order) of the state's row 0
} pcn_latent_key;

// Draws every latent from N(0,1) with Philox4x32-10: the value of unit j of layer l for
// row r is a function of (seed, stream, epoch, first_row + r, l, j) only.
void pcn_init_latents(pcn_state *state, const pcn_latent_key *key);

// Error signals of one snapshot (pcn-torch PCNErrors). Pointers into the state.
typedef struct {
    int n_layers;              // L
    int batch;                 // B
    const int *dims;           // [d0..dL]
    int output_dim;            // K
    float *const *errors;      // [L]: E[l] = X[l] - f(A[l]), (B, d_l)
    float *const *gm_errors;   // [L]: H[l] = E[l] * f'(A[l]), (B, d_l)
    float *supervised_error;   // Yhat - Y, (B, K); NULL without a target
    float *top_error;          // Esup Wout, (B, dL); NULL without a target
} pcn_errors;

// Computes every error from the current latents (x: (B, d0); y: (B, K) one-hot or targets,
// or NULL for free inference). Fills *out with views into the state.
pcn_status pcn_compute_errors(const pcn_model *model, pcn_state *state, const float *x,
                              const float *y, pcn_errors *out);
// Batch-mean energy: (1/B) sum_b (1/2 sum_l ||E_b[l]||^2 + 1/2 ||Esup_b||^2).
double pcn_compute_energy(const pcn_errors *errors);
// Per-layer terms 1/2 (1/B) sum_b ||E_b[l]||^2, l = 0..L-1, then the supervised term if any.
// out must hold L + 1 values; returns how many were written.
int pcn_compute_energy_per_layer(const pcn_errors *errors, double *out);
// Yhat = X[L] Wout^T into yhat (B, K).
pcn_status pcn_predict(const pcn_model *model, const pcn_state *state, float *yhat);

// One inference step: errors from the current snapshot, then X[l] -= lr (E[l] - H[l-1] W[l-1])
// for l = 1..L (E[L] = Esup Wout with a target, 0 without). Returns the energy of the snapshot
// before the update (NaN on error).
double pcn_inference_step(const pcn_model *model, pcn_state *state, const float *x,
                          const float *y, float lr_infer);
// `steps` inference steps as the trainer runs them: one phase of the model's backend (on the
// CPU split over its threads when split is true, else step by step with every product
// threading itself). Returns the energy of the last step's snapshot before its update (NaN
// on error, with pcn_last_error()). Local.
double pcn_inference_steps(const pcn_model *model, pcn_state *state, const float *x,
                           const float *y, float lr_infer, int steps, bool split);
// One learning step (latents fixed): W[l] += (lr/B) H[l]^T X[l+1], Wout -= (lr/B) Esup^T X[L].
// y may be NULL (then the readout is not updated). Returns the energy before the update.
double pcn_learning_step(pcn_model *model, pcn_state *state, const float *x, const float *y,
                         float lr_learn);

// ----------------------------------------------------------------------------------------
// Data sources (pcn-torch DataLoader)
// ----------------------------------------------------------------------------------------

// A data set the trainer reads rows from. Classification: labels in [0, K). Regression:
// float targets (N, K). The trainer validates every batch it reads (finite x, labels in
// range, targets finite) and refuses bad data with PCN_EDATA.
typedef struct pcn_data {
    int64_t n;      // number of samples
    int x_dim;      // features per sample (must equal d0)
    int y_dim;      // 0: integer labels; K > 0: float targets (N, K)
    void *ctx;      // source state, passed to read
    // Copies rows rows[0..count) into x (count, x_dim) and labels (count) or targets
    // (count, y_dim). Returns PCN_OK or an error with pcn_last_error set.
    pcn_status (*read)(void *ctx, const int64_t *rows, int count, float *x, int32_t *labels,
                       float *targets);
    // Optional hint: the rows the next read will ask for, so a source can fetch them while
    // the current batch computes. NULL when the source has no use for it.
    void (*prefetch)(void *ctx, const int64_t *rows, int count);
} pcn_data;

// Caller-owned arrays for pcn_data_from_arrays. Classification: labels (n); regression (or
// pre-encoded one-hot classification): targets (n, y_dim) and y_dim = K.
typedef struct {
    const float *x;         // (n, x_dim) row-major
    const int32_t *labels;  // (n) or NULL
    const float *targets;   // (n, y_dim) or NULL
    int64_t n;
    int x_dim;
    int y_dim;              // 0 with labels
} pcn_arrays;

// A source reading from arrays (kept by pointer: arrays and what it points to must outlive
// the source).
pcn_data pcn_data_from_arrays(const pcn_arrays *arrays);

// ----------------------------------------------------------------------------------------
// History (pcn-torch TrainHistory, EnergyHistory)
// ----------------------------------------------------------------------------------------

typedef enum {
    PCN_HIST_PER_BATCH = 0,          // energy after learning, one per batch
    PCN_HIST_PER_BATCH_PRE_LEARN,    // energy after inference, before learning, per batch
    PCN_HIST_PER_EPOCH,              // sample-weighted mean of PER_BATCH over the epoch
    PCN_HIST_PER_EPOCH_PRE_LEARN,    // likewise of PER_BATCH_PRE_LEARN
    PCN_HIST_TRAIN_LOSS,             // = PER_EPOCH
    PCN_HIST_TRAIN_ACCURACY,         // per epoch (classification with train accuracy on)
    PCN_HIST_TEST_LOSS,              // per epoch where a test set is evaluated
    PCN_HIST_TEST_ACCURACY,          // likewise
    PCN_HIST_LR_PER_EPOCH,           // lr_learn at each epoch's end
    PCN_HIST_STEP_INFER,             // every inference step's energy (keep_step_energies)
    PCN_HIST_STEP_LEARN,             // every learning step's energy (keep_step_energies)
    PCN_HIST_INFER_STEPS,            // inference steps taken per batch (early stopping)
    PCN_HIST_COUNT
} pcn_history_series;

typedef struct pcn_history pcn_history;

pcn_history *pcn_history_init(void);
void pcn_history_free(pcn_history *history);
void pcn_history_clear(pcn_history *history);
size_t pcn_history_len(const pcn_history *history, pcn_history_series s);
const double *pcn_history_data(const pcn_history *history, pcn_history_series s);
const char *pcn_history_series_name(pcn_history_series s);
pcn_status pcn_history_append(pcn_history *history, pcn_history_series s, double v);
// Accuracy over the batches seen so far in the current epoch (for progress displays).
double pcn_history_running_accuracy(const pcn_history *history);

// ----------------------------------------------------------------------------------------
// Training configuration and callbacks (pcn-torch TrainConfig, TrainCallback)
// ----------------------------------------------------------------------------------------

typedef enum {
    PCN_LR_NONE = 0,      // constant lr_learn (pcn-torch 1.1.0's default)
    PCN_LR_PLATEAU = 1,   // reduce on plateau of the per-batch energy (earlier pcn-torch)
    PCN_LR_STEPS = 2,     // manual (epoch, batch, lr) list (pcn-torch 1.1.0 lr_learn_steps)
    PCN_LR_COSINE = 3     // warm-up then cosine decay over the run's optimizer steps, as
                          //   optax.warmup_cosine_decay_schedule (see pcn_lr_cosine)
} pcn_lr_schedule;

// The weights' optimizer (both directions). The gradient it steps on is that of the
// batch-mean energy (generative: -(1/B) H^T X per learning step, so sgd is pcn-torch's
// update); weight decay is decoupled and multiplied by the step's lr (optax's adamw):
// w -= lr * (update + weight_decay * w), biases included.
typedef enum {
    PCN_OPT_SGD = 0,      // update = g
    PCN_OPT_MOMENTUM = 1, // heavy ball: m = g + momentum m; update = m
    PCN_OPT_ADAMW = 2     // m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; update =
                          //   (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps), t = 1, 2, ...
} pcn_optimizer;

const char *pcn_optimizer_name(pcn_optimizer o);
pcn_status pcn_optimizer_from_name(const char *name, pcn_optimizer *out);

// How a discriminative batch's latents start.
typedef enum {
    PCN_LATENT_FORWARD = 0, // x_l = mu_l from a forward pass (discriminative's default)
    PCN_LATENT_RANDOM = 1   // N(0, latent_init_std^2), Philox (generative: std 1, always)
} pcn_latent_start;

// Large-batch learning-rate scaling with the global batch B against a reference batch.
typedef enum {
    PCN_LR_SCALE_NONE = 0,   // lr as given
    PCN_LR_SCALE_LINEAR = 1, // lr * B / ref
    PCN_LR_SCALE_SQRT = 2    // lr * sqrt(B / ref)
} pcn_lr_scaling;

// How the learning phase runs (results equal up to rounding; see README "Performance").
typedef enum {
    PCN_LEARN_AUTO = 0,   // per layer, whichever path costs less (flops, and across ranks
                          //   the bytes of its collectives)
    PCN_LEARN_PLAIN = 1,  // per-step weight updates, as pcn-torch
    PCN_LEARN_GRAM = 2    // batch space (B x B Gram matrices) for every layer
    // Several ranks with a model on a GPU always take the per-step path.
} pcn_learn_path;

typedef struct {
    int epoch;            // 0-based
    int batch;            // 0-based
    double lr;            // > 0
} pcn_lr_step;

typedef struct pcn_train_params pcn_train_params;

// Hooks, each optional, called where pcn-torch calls them; user is passed back.
typedef struct {
    void *user;
    void (*on_train_start)(void *user, const pcn_train_params *params, const pcn_history *h);
    void (*on_epoch_start)(void *user, int epoch, int num_epochs);
    void (*on_batch_start)(void *user, int batch, int num_batches);
    void (*on_inference_step)(void *user, int step, double energy);
    void (*on_learning_step)(void *user, int step, double energy);
    void (*on_batch_end)(void *user, int batch, double batch_energy, double pre_learn_energy);
    void (*on_epoch_end)(void *user, int epoch, const pcn_history *h);
    void (*on_lr_reduced)(void *user, double old_lr, double new_lr);
    void (*on_train_end)(void *user, const pcn_history *h);
} pcn_callbacks;

// Where the trainer is when it asks for latents (see latent_init below).
typedef struct {
    pcn_stream stream;
    int epoch;
    int batch;
    int64_t first_row;    // position of the state's first row in the epoch's order
} pcn_latent_request;

// The sums of an epoch so far, over its batches.
typedef struct {
    double energy;          // batch energy * B
    double pre_learn;       // pre-learn energy * B
    double correct;         // train accuracy: samples scored correct
    double scored;          // train accuracy: samples scored
} pcn_epoch_sums;

// Cumulative seconds of this process in each part of training.
typedef struct {
    double inference;       // supervised and train-accuracy inference phases
    double learning;        // learning phases
    double collectives;     // sums across ranks (inside the phases' time as well); a GPU's
                            //   NCCL sums count their time on the device, not the queuing
    double data;            // reading batches
} pcn_train_seconds;

// Where a training run stands between two batches: enough, with the weights and the
// history, to resume it bitwise identically (randomness is counter-based).
typedef struct {
    int epoch;              // epoch of the next batch
    int batch;              // index of the next batch within that epoch
    double lr;              // current lr_learn
    double plateau_best;    // reduce-on-plateau: best batch energy so far (+inf at start)
    int plateau_patience;   // reduce-on-plateau: batches without improvement
    pcn_epoch_sums sums;    // this epoch so far
    int64_t opt_steps;      // weight optimizer steps taken so far (the cosine schedule's
                            //   position, adamw's bias-correction count)
    pcn_train_seconds seconds; // this process's, since the run (or resume) began
    int64_t samples;        // training samples processed since the run (or resume) began
} pcn_train_position;

// Called after every batch (after on_batch_end) on every process, with the position of the
// next batch. Setting *stop ends pcn_train with PCN_STOPPED; a non-OK return ends it with
// that status. The hook may be Collective (checkpoint writing) since every process calls it
// at the same point. It may score the model with pcn_test / pcn_test_sharded (which only
// read the weights, on a device too) without changing the run.
typedef pcn_status (*pcn_batch_hook)(void *user, pcn_model *model, const pcn_history *history,
                                     const pcn_train_position *next, bool *stop);

struct pcn_train_params {
    pcn_task task;               // classification or regression; default classification
    int t_infer;                 // supervised inference steps per batch, >= 1; default 50
    int t_infer_test;            // free inference steps in test and train accuracy, >= 1;
                                 //   0 means 10 * t_infer; default 0
    int t_learn;                 // learning steps per batch, >= 1; 0 means the batch's
                                 //   global size; default 0
    double lr_infer;             // latent step size, > 0; default 0.05
    double lr_learn;             // weight step size, > 0; default 0.005
    int num_epochs;              // epochs, >= 0; default 4
    double early_stop_threshold; // stop inference when |E_t - E_{t-1}| < this; 0 disables;
                                 //   >= 0; default 0 (pcn-torch None)
    int energy_window_size;      // rolling energy window for early stopping, >= 1 (early
                                 //   stopping needs >= 2, as in pcn-torch); default 10
    bool use_mixed_precision;    // on a GPU, the inference phase's matrix products use
                                 //   mixed_precision (pcn-torch's autocast); ignored on CPUs;
                                 //   default true
    pcn_precision mixed_precision; // that arithmetic; default PCN_PRECISION_FP16 (autocast)
    pcn_lr_schedule lr_schedule; // default PCN_LR_NONE
    double lr_decay_factor;      // plateau: lr *= this, in (0, 1); default 0.5
    int lr_patience;             // plateau: batches without improvement, >= 1; default 1
    const pcn_lr_step *lr_steps; // PCN_LR_STEPS: the list (not copied); default NULL
    int n_lr_steps;              // entries in lr_steps, >= 1 with PCN_LR_STEPS; default 0
    pcn_lr_scaling lr_scaling;   // scale lr_learn (and the lr_steps values) with
                                 //   batch_size / lr_ref_batch; default none
    int lr_ref_batch;            // reference batch of the scaling, >= 1 when scaling;
                                 //   default 0
    int lr_warmup_batches;       // the first N batches of the run learn with lr * (k+1)/N
                                 //   (k = batches since epoch 0 began), >= 0; default 0
    int batch_size;              // global training batch, >= 1; default 500
    int test_batch_size;         // global test batch; 0 means batch_size; default 0
    bool shuffle;                // reshuffle training rows every epoch (Philox on seed,
                                 //   epoch); default true
    uint64_t seed;               // seed of latents and shuffles; default 0
    int train_accuracy_every;    // classification: free-inference train accuracy every N
                                 //   batches (pcn-torch: every batch = 1); 0 off; default 1
    int top_k;                   // test: also report top-k accuracy, >= 1; default 3
    int64_t *confusion;          // test, classification: unless NULL, gets the (K, K) counts
                                 //   of [label][argmax output] over every rank's samples;
                                 //   default NULL
    bool keep_step_energies;     // keep every step's energy in the history; default false
    pcn_learn_path learn_path;   // learning phase: auto, plain or gram; several processes
                                 //   with a model on a GPU take plain; default auto
    double learn_flops_per_byte; // what the learning-phase planner charges for each byte a
                                 //   rank sends, in flops (a rank's flop rate over its
                                 //   network bandwidth), >= 0; rank 0's value is used on
                                 //   every rank; default 80
    bool split_phases;           // CPU: split each inference phase's rows and each
                                 //   one-process batch-space learning phase's output units
                                 //   over the OpenMP threads; false: every product threads
                                 //   itself (the plain path); default true
    // ---- optimizers and schedules (both directions) ----
    pcn_optimizer optimizer;     // default sgd (pcn-torch's update)
    double momentum;             // momentum optimizer's coefficient, in [0, 1); default 0.9
    double beta1, beta2;         // adamw, each in [0, 1); defaults 0.9, 0.999
    double eps;                  // adamw, > 0; default 1e-8
    double weight_decay;         // decoupled, times the step's lr, >= 0; default 0
    double lr_warmup_frac;       // cosine: share of all optimizer steps spent rising from
                                 //   lr to lr_peak_factor * lr, in [0, 1); default 0
    double lr_peak_factor;       // cosine: peak / lr, > 0; default 1
    double lr_final_factor;      // cosine: the value at the last step / lr, >= 0;
                                 //   default 0
    // ---- discriminative mode (ignored by generative models) ----
    pcn_latent_start latent_start; // default forward
    double latent_init_std;      // random latent start: sigma, > 0; default 1
    double infer_momentum;       // latent heavy-ball momentum, in [0, 1), reset every
                                 //   batch; default 0
    bool ipc;                    // incremental PC: one weight step after every inference
                                 //   step, on that step's latents; default false
    pcn_callbacks callbacks;     // hooks; default none
    // Latent initialiser; NULL means pcn_init_latents with (seed, stream, epoch, first_row).
    // Tests use it to replay a fixed state.
    void (*latent_init)(void *user, pcn_state *state, const pcn_latent_request *req);
    void *latent_user;           // passed to latent_init; default NULL
    pcn_batch_hook batch_hook;   // after every batch (checkpoints, stop requests); default NULL
    void *batch_hook_user;       // passed to batch_hook; default NULL
    // Resume from this position (with the weights and history it was saved with); NULL
    // starts at epoch 0, batch 0. Default NULL.
    const pcn_train_position *resume;
};

pcn_train_params pcn_train_default_params(void);
// The cosine schedule's lr at optimizer step s (0-based) of a run of `total` steps with
// base lr: warm-up W = lr_warmup_frac * total steps from lr to peak = lr_peak_factor * lr
// (linear; s < W), then peak -> lr_final_factor * lr by a half cosine over the remaining
// steps, reaching the final value at s = total (optax.warmup_cosine_decay_schedule with
// init_value lr, decay_steps total). Local.
double pcn_lr_cosine(const pcn_train_params *params, double lr, int64_t s, int64_t total);
// Checks every field; PCN_EINVAL with a message naming the field and its allowed range.
pcn_status pcn_train_params_validate(const pcn_train_params *params);

// ----------------------------------------------------------------------------------------
// Training and testing (pcn-torch train_pcn, test_pcn)
// ----------------------------------------------------------------------------------------

// Trains model on data (Algorithm 3). history may be NULL; otherwise it is appended to.
// Returns PCN_STOPPED when params->batch_hook asked to stop.
pcn_status pcn_train(pcn_model *model, const pcn_data *data, const pcn_train_params *params,
                     pcn_history *history);

typedef struct {
    double accuracy;     // classification: share of argmax Yhat == label (0 for regression)
    double top_k;        // classification: share with the label among the top_k outputs
    int k;               // the k of top_k
    double energy;       // sample-weighted mean of the final (target-free) energy
    double mse;          // regression: mean over samples and outputs of (Yhat - y)^2
    int64_t samples;     // samples scored
} pcn_test_result;

// Flops of one learning phase (t_learn steps on a batch of `batch` rows) on the path the
// trainer takes on one process for `path` (auto: per layer, the cheaper one). Local.
double pcn_learning_phase_flops(const pcn_model *model, int batch, int t_learn,
                                pcn_learn_path path);
// Which layers that phase runs in batch space: batch_space[l], l = 0..L (L: the readout).
// Local.
void pcn_learning_phase_plan(const pcn_model *model, int batch, int t_learn,
                             pcn_learn_path path, bool *batch_space);

// Free inference (no target) on every batch, then scores. yhat, if not NULL, receives the
// (n, K) outputs in data order.
pcn_status pcn_test(const pcn_model *model, const pcn_data *data, const pcn_train_params *params,
                    pcn_test_result *result, float *yhat);

// ----------------------------------------------------------------------------------------
// Sharded training: every process trains on its rows of each global batch and every sum
// goes through a table of collectives. src/dist fills the table with MPI and NCCL
// (pcn_dist_train in pcn_dist.h); pcn_train is the same loop on one process.
// ----------------------------------------------------------------------------------------

typedef struct pcn_collectives {
    void *ctx;
    int rank, size;
    // In-place global sums of host memory. Collective.
    pcn_status (*sum_f64)(void *ctx, double *v, int n);
    pcn_status (*sum_f32)(void *ctx, float *v, size_t n);
    // The same in the memory of the selected GPU (NCCL); NULL where there is none (the
    // trainer then stages a device model's sums through host memory and sum_f32).
    // Collective.
    pcn_status (*sum_f32_device)(void *ctx, float *v, size_t n);
    // Agreement on a local status: every rank returns the status and message (in
    // pcn_last_error()) of the lowest failing rank. Collective.
    pcn_status (*agree)(void *ctx, pcn_status local);
    // All-gather of a batch sharded by rows (pcn_train_shard): rank r passes its rows of
    // `width` floats in mine and every rank receives all `global` rows, in order, in all
    // (host buffers; mine and all do not overlap). Collective.
    pcn_status (*gather_rows_f32)(void *ctx, const float *mine, float *all, int64_t global,
                                  int width);
    // All-gather of varying lengths: rank r passes counts[r] floats in mine and every rank
    // receives all of them, rank after rank, in all (host buffers). Collective.
    pcn_status (*gather_f32)(void *ctx, const float *mine, float *all, const int64_t *counts);
} pcn_collectives;

// Rows [*lo, *lo + *count) of a global batch of `global` rows taken by `rank` of `size`:
// contiguous, balanced, the first global % size ranks take one more. Local.
void pcn_train_shard(int64_t global, int rank, int size, int64_t *lo, int64_t *count);

// pcn_train and pcn_test with this process's shard of every batch and coll's sums (NULL:
// one process). Collective over coll's ranks.
pcn_status pcn_train_sharded(pcn_model *model, const pcn_data *data,
                             const pcn_train_params *params, pcn_history *history,
                             const pcn_collectives *coll);
pcn_status pcn_test_sharded(const pcn_model *model, const pcn_data *data,
                            const pcn_train_params *params, pcn_test_result *result,
                            float *yhat, const pcn_collectives *coll);

// Seconds on a monotonic clock. Local.
double pcn_now(void);

// ----------------------------------------------------------------------------------------
// Progress display (pcn-torch RichCallback)
// ----------------------------------------------------------------------------------------

typedef struct pcn_progress pcn_progress;

// On a terminal: a live bar per epoch (batches done, elapsed, ETA, energy, running
// accuracy) and a line per LR reduction. Otherwise one plain line per epoch.
// device may be NULL.
pcn_progress *pcn_progress_init(FILE *out, const char *device);
void pcn_progress_free(pcn_progress *progress);
// Forces terminal (1) or plain (0) mode; -1 detects with isatty.
void pcn_progress_set_mode(pcn_progress *progress, int live);
pcn_callbacks pcn_progress_callbacks(pcn_progress *progress);

#ifdef __cplusplus
}
#endif
#endif // PCN_H
