/*
 * pcn_io.h — pcn_dist's files: the HDF5 data set schema, converters from MNIST-style IDX
 * and CIFAR-10 binary files to it, and (to come) the parallel data set reader, checkpoints
 * and metrics.
 *
 * Conventions: as in pcn.h, every function is Local (no communication) unless its comment
 * says Collective. Functions that can fail return 0 or -1 with a one-line message naming
 * the file and the problem in the caller's err buffer.
 */
#ifndef PCN_IO_H
#define PCN_IO_H

#include <stddef.h>
#include <stdint.h>

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
//   x               uint8 [N, D], row-major, chunked by rows, no filters (so parallel HDF5
//                   can read it); CIFAR keeps its channel-major (CHW) pixel order
//   x@scale         double attribute, 1/255: multiply x by it first
//   y               int32 [N] labels
// /norm:
//   mean, std       float32 [D]: mean and std applied per feature; the converters write the
//                   mean and population std over all pixels of the TRAINING split after
//                   scaling, the same value for every feature (std 1.0 if below 1e-6)
// A reader computes x_used = (x * scale - mean) / std.

#define PCN_IO_DATASET_FORMAT "pcn-dataset"
#define PCN_IO_DATASET_VERSION 1

// ----------------------------------------------------------------------------------------
// Converters (Local; serial, need no MPI_Init)
// ----------------------------------------------------------------------------------------
//
// Each writes OUT atomically: into OUT.tmp.<pid>, closed and fsynced, then renamed to OUT
// (replacing an existing OUT). On any error the temporary file is removed, OUT is neither
// created nor changed, and err holds one line such as
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
int pcn_io_convert_idx(const pcn_io_idx_paths *paths, const char *out,
                       const pcn_io_convert_params *params, char *err, size_t errlen);

// As pcn_io_convert_idx, with the four standard names looked up in dir, each plain or with
// ".gz" (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte). Local.
int pcn_io_convert_idx_dir(const char *dir, const char *out,
                           const pcn_io_convert_params *params, char *err, size_t errlen);

// Converts the CIFAR-10 binary version in dir: data_batch_1.bin .. data_batch_5.bin (train)
// and test_batch.bin (test), records of 1 label byte + 3072 pixel bytes (3 x 32 x 32, CHW).
// Checks that each file's size is a non-zero multiple of 3073 and every label is below 10.
// Local.
int pcn_io_convert_cifar10(const char *dir, const char *out,
                           const pcn_io_convert_params *params, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif // PCN_IO_H
