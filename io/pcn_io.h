/*
 * pcn_io.h — pcn_dist's files, the one public header of the io library: the HDF5 data set
 * schema, converters from MNIST-style IDX and CIFAR-10 binary files, NumPy .npy/.npz
 * arrays and datasets of any HDF5 file to it, the parallel
 * data set reader, checkpoints, the metrics file, the predictions file, the checks made on
 * files before they are read or written, and file inspection. io's other headers
 * (h5util.h, dataset_impl.h, convert_impl.h) are private to io/.
 *
 * Conventions: as in pcn.h, every function is Local (no communication) unless its comment
 * says Collective. Functions that can fail return a pcn_status with a one-line message
 * naming the file and the problem in pcn_last_error().
 */
#ifndef PCN_IO_H
#define PCN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcn.h"
#include "pcn_dist.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------------------
// Data set schema, version 1 (HDF5)
// ----------------------------------------------------------------------------------------
//
// Root attributes:
//   pcn_format      fixed-length string "pcn-dataset"
//   format_version  int32, PCN_IO_DATASET_VERSION
//   task            string "classification"
//   num_classes     int32, labels lie in [0, num_classes)
//   source          string, where the data came from (e.g. "fashion-mnist idx")
//   image_shape     int32 [3] = {channels, rows, cols} of one example (D = their product)
// /train and /test, each:
//   x               uint8 or float32 [N, D], row-major, chunked by rows, no filters (so
//                   parallel HDF5 can read it); CIFAR keeps its channel-major (CHW) pixel
//                   order. The converters write uint8 from IDX, CIFAR-10 and uint8 arrays,
//                   float32 from arrays of every other dtype (see "Arrays" below)
//   x@scale         double attribute: multiply x by it first; 1/255 for uint8 x, 1 for
//                   float32 x (the reader takes 1 where it is absent)
//   y               int32 [N] labels
// /norm:
//   mean, std       float32 [D]: mean and std applied per feature; the converters write the
//                   mean and population std over all values of the TRAINING split after
//                   scaling, computed in double, the same value for every feature (std 1.0
//                   if below 1e-6)
// A reader computes x_used = (x * scale - mean) / std.

#define PCN_IO_DATASET_FORMAT "pcn-dataset"
#define PCN_IO_DATASET_VERSION 1

// ----------------------------------------------------------------------------------------
// Converters (Local; serial, need no MPI_Init)
// ----------------------------------------------------------------------------------------
//
// Each writes OUT atomically: into OUT.tmp.<pid>, closed and fsynced, then renamed to OUT
// (replacing an existing OUT). On any error the temporary file is removed, OUT is neither
// created nor changed, and pcn_last_error() holds one line such as
//   "train-images-idx3-ubyte.gz: bad magic 0x00000801, expected 0x00000803 (an IDX image file)".

// The four files of an MNIST-style IDX data set (each gzipped or plain).
typedef struct {
    const char *train_images; // IDX image file, magic 0x00000803, uint8 [N, rows, cols]
    const char *train_labels; // IDX label file, magic 0x00000801, uint8 [N]
    const char *test_images;
    const char *test_labels;
} pcn_io_idx_paths;

typedef struct {
    int classes;          // class count; 0 = max label + 1 over both splits, at least 2 (IDX)
                          // or 10 (CIFAR-10, where any other value is refused). Default 0.
    int64_t limit_train;  // keep the first limit_train training rows (all when fewer);
                          // -1 = all. Default -1.
    int64_t limit_test;   // likewise for the test split. Default -1.
    const char *source;   // text of the source attribute; NULL = "<format>: <input path>".
                          // Default NULL.
} pcn_io_convert_params;

pcn_io_convert_params pcn_io_convert_default_params(void);

// Converts an IDX data set (MNIST, Fashion-MNIST) given by its four file paths. Checks the
// magic numbers, the dimensions (the same image size in both splits), that image and label
// counts agree, and that every label is below the class count. Local.
// PCN_EINVAL for bad parameters, PCN_EDATA for bad input, PCN_EIO for unreadable input or
// a failed write, PCN_ENOMEM.
pcn_status pcn_io_convert_idx(const pcn_io_idx_paths *paths, const char *out,
                              const pcn_io_convert_params *params);

// As pcn_io_convert_idx, with the four standard names looked up in dir, each plain or with
// ".gz" (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte). Local.
pcn_status pcn_io_convert_idx_dir(const char *dir, const char *out,
                                  const pcn_io_convert_params *params);

// Converts the CIFAR-10 binary version in dir: data_batch_1.bin .. data_batch_5.bin (train)
// and test_batch.bin (test), records of 1 label byte + 3072 pixel bytes (3 x 32 x 32, CHW).
// Checks that each file's size is a non-zero multiple of 3073 and every label is below 10.
// Local.
pcn_status pcn_io_convert_cifar10(const char *dir, const char *out,
                                  const pcn_io_convert_params *params);

// ---- Arrays: NumPy (.npy, .npz) and any HDF5 file ---------------------------------------
//
// Four arrays: train x, train y, test x, test y. The rules, checked before any output
// exists (each failure one line naming the file, the array and, for values, the row):
//   x        shape [N, ...] with 2 to 4 dimensions, N >= 1; each row is flattened in row-major
//            (C) order to D = the product of the trailing dimensions (at most 2^24), and D
//            must be the same in both splits. image_shape: [N, D] -> {1, 1, D};
//            [N, H, W] -> {1, H, W}; [N, A, B, C] -> {A, B, C} as given (so NCHW data gives
//            {C, H, W}, NHWC data {H, W, C}: image_shape is a description, nothing reads it).
//   dtypes   uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64
//            (NumPy u1 i1 u2 i2 u4 i4 u8 i8 f4 f8). uint8 x is written uint8 with scale 1/255
//            (as IDX); x of any other dtype is written float32 with scale 1: integers must be
//            exactly representable in float32 (every int8/int16/uint16 value is; a larger
//            integer that float32 would round is refused), floats must be finite (NaN and
//            Inf are refused naming the row), float64 must lie within float32's range and is
//            rounded to nearest. Both x must be uint8 or neither.
//   y        an integer dtype, shape [N] or [N, 1], with the N of its x; every label of both
//            splits (all rows, also beyond a row limit) >= 0 and below the class count
//            (params.classes, or largest label + 1 over both splits, at least 2).
// /norm, the row limits, source and the atomic write are as for the other converters.

// The four arrays of an array conversion: names inside an archive or HDF5 file, or paths.
typedef struct {
    const char *train_x;
    const char *train_y;
    const char *test_x;
    const char *test_y;
} pcn_io_array_names;

// Converts NumPy arrays, read in C (no Python). With archive non-NULL: the .npz file (a zip
// whose entries are stored, as np.savez writes them, or deflated, as np.savez_compressed
// does; zip64 read) holding the four arrays; a NULL name (or NULL names) is the Keras
// mnist.npz default x_train, y_train, x_test, y_test, and a name matches the entry NAME or
// NAME.npy. With archive NULL: names holds the paths of four .npy files (all required).
// .npy versions 1.0, 2.0, 3.0; little-endian or byte-order-free dtypes of the list above,
// C order; big-endian, object, complex, structured and other dtypes and fortran_order True
// are refused. An archive entry's CRC-32 is checked once all of it is read (always for the
// labels; for x unless a row limit ends the reading early). Streams rows: memory stays at a
// few MiB plus the labels. source defaults to "npz: ARCHIVE" or "npy: TRAIN_X_PATH". Local.
// PCN_EINVAL for bad parameters, PCN_EDATA for bad input, PCN_EIO, PCN_ENOMEM.
pcn_status pcn_io_convert_npz(const char *archive, const pcn_io_array_names *names,
                              const char *out, const pcn_io_convert_params *params);

// Converts four datasets of the HDF5 file at path (serial HDF5; any integer or float dataset
// of the dtypes above, byte order and storage as HDF5 handles them), read in chunks of rows.
// names holds the datasets' paths; NULL (or a NULL member) means /train/x, /train/y,
// /test/x, /test/y. source defaults to "hdf5: PATH". Local.
// PCN_EINVAL for bad parameters, PCN_EDATA for bad input, PCN_EIO, PCN_ENOMEM.
pcn_status pcn_io_convert_h5(const char *path, const pcn_io_array_names *names,
                             const char *out, const pcn_io_convert_params *params);

// ----------------------------------------------------------------------------------------
// The parallel data set reader (io/dataset.c, io/dataset_stream.c)
// ----------------------------------------------------------------------------------------
//
// The parallel HDF5 data set reader: opens one split ("train" or "test") of
// a pcn-dataset file (schema version 1, above, and DESIGN.md "Files") on every rank
// of a communicator and hands the trainer a pcn_data source over it.
//
// Two modes:
//   PCN_IO_MEMORY (default) — the split is read once at open, collectively, into one MPI
//     shared-memory window per node (the node's local rank 0 holds it; x keeps its file
//     dtype, so uint8 input costs 1 byte a value). Every value is checked at open (labels in
//     [0, num_classes), every float finite). read() is Local: it copies and converts rows.
//   PCN_IO_STREAM — nothing but metadata is read at open; read() is Collective and reads
//     exactly the requested rows of every rank in one collective H5Dread per dataset.
//     Labels are checked against num_classes per batch (the trainer itself checks
//     finiteness and labels against its output_dim). Prefetch: the trainer passes the
//     next batch's rows to source.prefetch; a thread reads them through its own POSIX-driver
//     handle (independent reads, under the process's HDF5 lock, no MPI) while the batch
//     computes, and the next read() uses them when every rank's prefetch matches its request
//     (one small allreduce decides); otherwise all ranks read collectively as above.
//
// Values handed out, computed in float in this order:
//   x = (float)x_file * (float)scale;  then, where /norm exists (params.norm file, the
//   default), x = (x - mean[j]) / std[j]; with params.norm given, x = (x - (float)M) /
//   (float)S for every feature j; with params.norm none, nothing more;
//   labels as int32 (from any integer type); targets as float32.
//
// Errors: pcn_io_dataset_open agrees every check across the ranks (pcn_dist_agree), so on a
// bad file every rank returns NULL with the same one-line pcn_last_error() that starts with
// the path, e.g. "data/fm.h5: /train/x has dtype int16; expected uint8 or float32".
// Opening turns HDF5's automatic error printing off for the process (H5Eset_auto2), so
// that only these messages appear.

typedef enum {
    PCN_IO_MEMORY = 0, // whole split in node shared memory; read() Local
    PCN_IO_STREAM = 1  // rows read from the file per batch; read() Collective
} pcn_io_mode;

typedef struct pcn_dataset pcn_dataset;

// Which normalisation the reader applies after x@scale.
typedef enum {
    PCN_IO_NORM_FILE = 0,  // the file's /norm where it has one (none where it has not)
    PCN_IO_NORM_NONE = 1,  // none: x = x_file * scale (/norm is not read)
    PCN_IO_NORM_GIVEN = 2  // x = (x_file * scale - norm_mean) / norm_std for every feature
                           //   (/norm is not read); PCX's Fashion-MNIST recipe: 0.5, 0.5
} pcn_io_norm;

typedef struct {
    pcn_io_mode mode;      // memory or stream; default PCN_IO_MEMORY
    pcn_io_norm norm;      // default PCN_IO_NORM_FILE (what the file says)
    double norm_mean;      // PCN_IO_NORM_GIVEN: M, finite; default 0
    double norm_std;       // PCN_IO_NORM_GIVEN: S, finite and non-zero; default 1
} pcn_io_dataset_params;

pcn_io_dataset_params pcn_io_dataset_default_params(void);

// Opens split ("train" or "test") of the file at path on every rank of c with the MPI-IO
// driver, validates the schema (and in memory mode every value) and, in memory mode, loads
// the split. Collective. On any problem every rank returns NULL and pcn_last_error() holds
// the same one-line message naming the file and the problem.
pcn_dataset *pcn_io_dataset_open(pcn_comm *c, const char *path, const char *split,
                                 pcn_io_mode mode);
// As pcn_io_dataset_open with the reader's params (NULL: the defaults); bad params are
// refused (PCN_EINVAL) on every rank. Collective.
pcn_dataset *pcn_io_dataset_open_with(pcn_comm *c, const char *path, const char *split,
                                      const pcn_io_dataset_params *params);
// Closes the file / frees the shared window. Collective; accepts NULL.
void pcn_io_dataset_close(pcn_dataset *ds);

// The trainer's data source: n = rows, x_dim = features, y_dim = 0 (labels) or K
// (targets), read = this reader. In stream mode read is Collective: every rank calls it for
// every batch (count 0 allowed) with distinct rows. Rows outside [0, n) give PCN_EINVAL,
// labels outside [0, num_classes) PCN_EDATA, HDF5 failures PCN_EIO (messages name the file).
// The source points to ds: valid until pcn_io_dataset_close. Local.
pcn_data pcn_io_dataset_source(pcn_dataset *ds);

int64_t pcn_io_dataset_rows(const pcn_dataset *ds);             // N. Local.
// Stream mode: how many reads the background prefetch served (for tests). Local.
int64_t pcn_io_dataset_prefetch_hits(const pcn_dataset *ds);
int pcn_io_dataset_features(const pcn_dataset *ds);       // D. Local.
int pcn_io_dataset_num_classes(const pcn_dataset *ds);    // 0 for regression. Local.
int pcn_io_dataset_target_width(const pcn_dataset *ds);   // 0 for labels, K for targets. Local.
pcn_task pcn_io_dataset_task(const pcn_dataset *ds);      // Local.

// ----------------------------------------------------------------------------------------
// Checkpoints (io/checkpoint.c)
// ----------------------------------------------------------------------------------------
//
// checkpoints: the model, where training stands, its history, the weights' optimizer state
// and the run's configuration in one HDF5 file (format version 2), written collectively and
// atomically.
//
// Layout: root attributes pcn_format = "pcn-checkpoint", format_version, library_version,
// ranks, dims (int array), activations (one fixed-length string of PCN_CKPT_ACT_LEN bytes
// per layer l = 0..L-1), activation (their common name, or "mixed"), output_dim, mode,
// seed, config (the run's settings as INI text, the --config format), and (version 2)
// direction ("generative" or "discriminative"), bias (int 0 or 1), leaky_slope (float32).
// /weights: generative: W0 .. W{L-1} (d_l x d_{l+1}) and Wout (K x d_L); discriminative:
// W0 .. W{L-1}, layer l's (d_{l+1} x d_l: PCX's W_{l+1}), then with biases b0 .. b{L-1}
// (d_{l+1} each: b_{l+1}); all float32 (out x in). A discriminative model's activations
// are its hidden activation on layers 0..L-2 and identity on layer L-1 (so `activation`
// is "mixed" for L >= 2).
// /optimizer (version 2): attributes optimizer (its name: "sgd", "momentum", "adamw") and
// slots (int: buffers of num_weights floats, 0, 1 or 2); with slots > 0 the dataset
// /optimizer/state float32 [slots, num_weights] holds pcn_model_optimizer_state (momentum:
// m; adamw: m then v), in the weight buffer's layout (pcn_model_weight_offset).
// /state attributes epoch, batch, lr, plateau_best, plateau_patience, epoch_sums[4] and
// (version 2) opt_steps (int64); /history/<series> float64 vectors
// (pcn_history_series_name). Every dataset has a uint32 attribute checksum (Jenkins lookup3
// of its little-endian bytes, as HDF5's own metadata checksums); the file is in the HDF5 1.8
// format, whose metadata carries checksums.
//
// Version 1 files (written before the discriminative mode) are read as generative models
// without biases, without optimizer state and with opt_steps 0. Version 1 files written
// before `activations` and `checksum` existed are read as before: `activation` applies to
// every layer and datasets without a checksum are not checked. A file whose layers differ
// says activation = "mixed", which such older readers refuse.

#define PCN_CKPT_FORMAT_VERSION 2

typedef struct {
    uint64_t seed;          // the run's seed
    const char *config;     // the run's settings as INI text (may be NULL)
    const char *optimizer;  // the run's optimizer name (pcn_optimizer_name); NULL: "sgd"
} pcn_ckpt_meta;

// Length of one name in the `activations` attribute (NUL-padded).
#define PCN_CKPT_ACT_LEN 16

// Writes path atomically: rank 0 alone writes path.tmp.<host>.<pid>.<counter> (created
// with O_EXCL, so never shared with another run or write), syncs it and, once every rank
// agrees, renames it over path (with keep > 1 the previous files are kept as path.1 ..
// path.{keep-1}). Collective. On failure every rank returns the same status, the temporary
// file is removed and path is untouched.
pcn_status pcn_io_ckpt_write(pcn_comm *c, const char *path, const pcn_model *model,
                             const pcn_train_position *pos, const pcn_history *history,
                             const pcn_ckpt_meta *meta, int keep);

// What a checkpoint holds besides the weights.
typedef struct {
    int n_dims;
    int dims[65];
    int output_dim;
    pcn_activation activation;   // layer 0's (the activation of every layer, unless mixed)
    pcn_activation activations[64]; // layer l's, l = 0..n_dims-2
    pcn_task mode;
    pcn_direction direction;     // generative in version 1 files
    bool bias;                   // discriminative biases
    float leaky_slope;           // leaky_relu's slope (0.01 in version 1 files)
    int version;                 // format_version of the file
    char optimizer[16];          // the optimizer whose state it holds ("sgd" in version 1)
    int opt_slots;               // its state's buffers (the model holds them once read)
    uint64_t seed;
    int ranks;                   // ranks of the run that wrote it
    char library_version[32];
    char *config;                // INI text (malloc'd; free with pcn_io_ckpt_info_free)
    pcn_train_position pos;
} pcn_ckpt_info;

// Reads path on rank 0 and broadcasts it: returns the model (NULL on error, on every rank,
// with the reason in pcn_last_error()), its optimizer state loaded
// (pcn_model_optimizer_reserve, written, pcn_model_optimizer_loaded); fills info (pos
// includes opt_steps) and, if history is not NULL, appends the saved history to it. Checks the format and version, every weight dataset's shape and type
// class against dims (before allocating), the datasets' checksums where present, and that
// every weight is finite; errors name the file, the dataset and (for values) the index.
// Collective.
pcn_model *pcn_io_ckpt_read(pcn_comm *c, const char *path, pcn_ckpt_info *info,
                            pcn_history *history);
void pcn_io_ckpt_info_free(pcn_ckpt_info *info);

// Test hook: from now on, writes fail on rank `rank` in its part of the write (on rank 0:
// after the temporary file is written), before the ranks agree; PCN_CKPT_FAULT_ALL fails
// them on every rank, PCN_CKPT_FAULT_OFF turns the hook off. Local.
#define PCN_CKPT_FAULT_OFF (-2)
#define PCN_CKPT_FAULT_ALL (-1)
void pcn_io_ckpt_inject_fault(int rank);

// ----------------------------------------------------------------------------------------
// Metrics (io/metrics.c)
// ----------------------------------------------------------------------------------------
//
// the metrics file of a training run (--metrics): JSON Lines, one object per
// batch, per epoch, per scored epoch (--test-every) and one for the final test, written by
// one process (rank 0).
//
// Records (keys in this order; numbers printed with %.10g, a non-finite number as null):
//   {"event":"batch","epoch":E,"batch":B,"samples":S,"energy":..,"pre_learn_energy":..,
//    "lr":..,"running_accuracy":..,"samples_per_s":..,"seconds":..,
//    "rank0_seconds":{"inference":..,"learning":..,"collectives":..,"io":..,"checkpoint":..},
//    "collectives":N,"bytes_sent":N}
//   {"event":"epoch","epoch":E,"ranks":P,"energy":..,"pre_learn_energy":..,
//    "train_accuracy":..,"lr":..,"seconds":..,"samples_per_s":..,
//    "seconds_max":{<the five phases>},"seconds_mean":{<the five phases>}}
//   {"event":"epoch_test","epoch":E,"samples":S,"accuracy":..,"top_k":..,"energy":..,
//    "mse":..,"seconds":..}
//   {"event":"test","samples":S,"accuracy":..,"top_k":..,"energy":..,"mse":..,"seconds":..}
//
// An epoch_test record scores the test split on the weights after epoch E (0-based, the
// epoch record's E, which it follows); with --test-every N it comes after every epoch E
// with (E + 1) % N == 0. The last epoch's, when due, is the final test's result, written
// just before the test record. accuracy and top_k are fractions; a classification run's
// mse and a regression run's accuracy and top_k are 0.
// Invariants: the file only ever holds whole lines. Each record is formatted in memory and
// handed to write() in one piece; a failed or short write (a full disk, a quota) cuts the
// file back to the end of the previous record and makes the handle failed: every later call
// returns the same error without writing. Epoch and test records are fsync'ed, so a crash
// loses at most the batch lines of the running epoch. Every function is Local; the program
// agrees a failure across its ranks (pcn_dist_agree) at the next batch boundary.

typedef struct pcn_io_metrics pcn_io_metrics;

// The phases whose seconds a record holds, in this order.
enum {
    PCN_IO_PHASE_INFERENCE,
    PCN_IO_PHASE_LEARNING,
    PCN_IO_PHASE_COLLECTIVES,
    PCN_IO_PHASE_IO,
    PCN_IO_PHASE_CHECKPOINT,
    PCN_IO_METRICS_PHASES
};

typedef struct {
    int epoch, batch;           // the batch just done (0-based)
    int64_t samples;            // its global row count
    double energy;              // batch energy after learning
    double pre_learn_energy;    // batch energy before learning
    double lr;                  // lr_learn the batch used
    double running_accuracy;    // running train accuracy (NaN: none yet)
    double samples_per_s, seconds;          // wall clock of the batch on rank 0
    double rank0_seconds[PCN_IO_METRICS_PHASES]; // rank 0's seconds per phase in the batch
    int64_t collectives;        // rank 0's collectives since the previous batch line (MPI
                                //   calls between ranks, NCCL sums; pcn_dist_traffic)
    int64_t bytes_sent;         // the bytes rank 0 contributed to them
} pcn_io_metrics_batch_rec;

typedef struct {
    int epoch, ranks;           // the epoch just done (0-based), ranks of the run
    double energy, pre_learn_energy, train_accuracy, lr; // NaN where there is none
    double seconds, samples_per_s;                       // wall clock of the epoch
    double seconds_max[PCN_IO_METRICS_PHASES];  // per phase: max over ranks
    double seconds_mean[PCN_IO_METRICS_PHASES]; // per phase: mean over ranks
} pcn_io_metrics_epoch_rec;

typedef struct {
    int64_t samples;
    double accuracy, top_k, energy, mse, seconds;
} pcn_io_metrics_test_rec;

// Opens path for writing: truncated, or with append (a resumed run) added to. NULL on
// failure with "PATH: cannot open the metrics file for writing: <strerror>" in
// pcn_last_error(). Local.
pcn_io_metrics *pcn_io_metrics_open(const char *path, bool append);

// Appends one record. PCN_OK, or PCN_EIO with "PATH: cannot write the metrics: <strerror>"
// in pcn_last_error() (then and on every later call). Local.
pcn_status pcn_io_metrics_batch(pcn_io_metrics *m, const pcn_io_metrics_batch_rec *r);
// As pcn_io_metrics_batch, then fsync. Local.
pcn_status pcn_io_metrics_epoch(pcn_io_metrics *m, const pcn_io_metrics_epoch_rec *r);
pcn_status pcn_io_metrics_test(pcn_io_metrics *m, const pcn_io_metrics_test_rec *r);
// The epoch_test record of epoch (>= 0, 0-based), then fsync. Local.
pcn_status pcn_io_metrics_epoch_test(pcn_io_metrics *m, int epoch,
                                     const pcn_io_metrics_test_rec *r);

// Syncs and closes the file and frees m (NULL is fine): PCN_EIO if the handle had failed or
// the sync or close fails. Local.
pcn_status pcn_io_metrics_close(pcn_io_metrics *m);

// ----------------------------------------------------------------------------------------
// Predictions (io/predictions.c)
// ----------------------------------------------------------------------------------------
//
// the predictions file of `pcn_dist predict` (HDF5), written atomically.
//
// Layout: /yhat float32 (n, K), the readout of every row; /pred int32 (n), argmax of each
// row of yhat (the first largest); root attributes (fixed-length strings) pcn_format =
// "pcn-predictions", checkpoint, data and split (where the predictions came from).
//
// Writing: rank 0 gathers the rows, builds the whole file in memory (HDF5's core driver, no
// backing store), writes the image with write() to PATH.tmp.<host>.<pid> (created with
// O_EXCL), fsyncs it and renames it over PATH. On any failure the temporary file is removed,
// PATH is neither created nor changed, and every rank returns the same status with one
// message naming PATH and the reason (e.g. "No space left on device").

typedef struct {
    const char *checkpoint; // the model's checkpoint path (attribute checkpoint)
    const char *data;       // the data set's path (attribute data)
    const char *split;      // the split predicted, "train" or "test" (attribute split)
} pcn_io_predictions_meta;

// Writes the predictions of n rows of K outputs to path. yhat (n, K) is given on every
// rank with that rank's own rows filled in and every other row zero (as pcn_dist_test
// leaves it); the rows are summed into rank 0's yhat, which then holds them all (the other
// ranks' buffers are unchanged). Collective; every rank returns the same status.
pcn_status pcn_io_predictions_write(pcn_comm *c, const char *path, float *yhat, int64_t n,
                                    int K, const pcn_io_predictions_meta *meta);

// ----------------------------------------------------------------------------------------
// File checks and the writer lock (io/files.c)
// ----------------------------------------------------------------------------------------
//
// what pcn_dist checks about its files before it reads or writes them: an input
// must be a regular file (a FIFO or a device would block or stream forever), an output must
// not be the same file as an input (compared by device and inode, not by spelling), a
// checkpoint has one writer at a time (a lock file beside it, held for the whole run), and
// the program can see whether a checkpoint (or a kept file of it) is already there.
//

// PCN_OK when path does not exist (the reader says so in its own words) or is a regular
// file; otherwise an error naming the option (what, e.g. "--data"), the path and its kind.
// Local.
pcn_status pcn_io_file_regular(const char *path, const char *what);

// Whether a and b name the same file: the same device and inode when both exist (links and
// other spellings included), the same folder and name when neither does. Local.
bool pcn_io_file_same(const char *a, const char *b);

// Whether the checkpoint path exists, or, when keep > 1, one of the kept files that writes
// keeping keep files rotate (path.1 ... path.{keep-1}); found (len bytes) gets the first
// name that exists, a dangling link included. Local.
bool pcn_io_ckpt_exists(const char *path, int keep, char *found, size_t len);

// Whether the existing file is the checkpoint path itself or one of its kept files
// path.1 ... path.{max_keep}, compared as pcn_io_file_same does. Local.
bool pcn_io_ckpt_of(const char *path, const char *file, int max_keep);

// A held lock on an output file (PATH.lock beside it).
typedef struct pcn_io_lock pcn_io_lock;

// Takes the lock of the output path for this run: rank 0 creates PATH.lock, locks it with
// fcntl (released by the kernel if the process dies, so a killed run leaves no stale lock)
// and writes its owner (host, pid, start time) into it. When another live process holds it,
// every rank gets an error that names that writer. *out is the handle on rank 0 and NULL
// elsewhere. Collective; every rank returns the same status.
pcn_status pcn_io_lock_take(pcn_comm *c, const char *path, const char *what, pcn_io_lock **out);

// Removes the lock file and releases the lock. NULL is fine. Local.
void pcn_io_lock_release(pcn_io_lock *lock);

// ----------------------------------------------------------------------------------------
// File inspection (io/info.c)
// ----------------------------------------------------------------------------------------

#include <stdio.h>

// Prints what `pcn_dist info` shows about path to out: its pcn_format, then for a data set
// its version, classes, normalisation and split shapes, for a checkpoint its version,
// writer, dims, activation, mode, direction, biases, optimizer (and its state's size),
// next batch and optimizer steps, for predictions their rows, outputs,
// source and, when the data set they name is readable (as named, else beside the
// predictions file), their accuracy against its labels. Lenient: missing attributes print as 0 or
// empty. PCN_EIO when path is not readable, PCN_EDATA when it is not an HDF5 file (message
// set, nothing printed). Local.
pcn_status pcn_io_info_print(const char *path, FILE *out);

#ifdef __cplusplus
}
#endif

#endif // PCN_IO_H
