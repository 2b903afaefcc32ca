/*
 * pcn_convert_main.c — the pcn_convert program: parses the command line and calls the
 * converters of pcn_io.h (IDX for MNIST/Fashion-MNIST, CIFAR-10 binary, NumPy .npz/.npy
 * arrays, datasets of any HDF5 file) to write a pcn_dist HDF5 data set. Serial; needs no mpirun. Every error is one line on stderr and exit 1.
 * HDF5's exit handler is turned off before HDF5 starts: the converter closes everything it
 * opens, and HDF5 1.10 cannot shut down cleanly after it failed to write a file (a full
 * disk): its handler then crashes or reports an "infinite loop closing library".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "pcn.h"
#include "pcn_io.h"

static const char usage[] =
    "Usage:\n"
    "  pcn_convert idx --dir D -o OUT.h5 [options]\n"
    "  pcn_convert idx --train-images F --train-labels F --test-images F --test-labels F\n"
    "                  -o OUT.h5 [options]\n"
    "  pcn_convert cifar10 --dir D -o OUT.h5 [options]\n"
    "  pcn_convert npz --input F.npz -o OUT.h5 [--train-x NAME ...] [options]\n"
    "  pcn_convert npz --train-x F.npy --train-y F.npy --test-x F.npy --test-y F.npy\n"
    "                  -o OUT.h5 [options]\n"
    "  pcn_convert h5 --input F.h5 -o OUT.h5 [--train-x PATH ...] [options]\n"
    "  pcn_convert --help | --version\n"
    "\n"
    "Converts a classification data set to the pcn_dist HDF5 data set schema (version 1):\n"
    "/train/x, /test/x [N, D], uint8 with attribute scale = 1/255 or float32 with scale = 1,\n"
    "/train/y, /test/y int32 [N], /norm/mean, /norm/std float32 [D] (one mean and std over\n"
    "all values of the scaled training split, in double; std 1 where < 1e-6).\n"
    "\n"
    "Formats:\n"
    "  idx      MNIST / Fashion-MNIST IDX files, gzipped or plain. With --dir, D holds\n"
    "           train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and\n"
    "           t10k-labels-idx1-ubyte, each optionally ending in .gz (Debian's\n"
    "           dataset-fashion-mnist: --dir /usr/share/datasets/fashion-mnist).\n"
    "  cifar10  the CIFAR-10 binary version: D holds data_batch_1.bin .. data_batch_5.bin\n"
    "           (train) and test_batch.bin (test); pixels stay in CHW order (D = 3072).\n"
    "  npz      NumPy arrays, read without Python. With --input: a .npz archive (np.savez or\n"
    "           np.savez_compressed) holding x_train, y_train, x_test, y_test (Keras's\n"
    "           mnist.npz layout); --train-x NAME etc. pick other arrays of it. Without\n"
    "           --input: --train-x, --train-y, --test-x, --test-y are four .npy files.\n"
    "           .npy versions 1.0-3.0, little-endian, C order (fortran_order False).\n"
    "  h5       datasets of any HDF5 file: --train-x, --train-y, --test-x, --test-y are\n"
    "           their paths in F.h5 (default /train/x, /train/y, /test/x, /test/y).\n"
    "\n"
    "Arrays (npz, h5): x is [N, ...] with 2 to 4 dimensions, each row flattened in C order\n"
    "to D values (the same D in train and test); image_shape is {1,1,D} for [N,D], {1,H,W}\n"
    "for [N,H,W] and the three trailing dimensions as given for 4-D x. dtypes: u1 i1 u2 i2\n"
    "u4 i4 u8 i8 f4 f8. uint8 x is written uint8 (scale 1/255); any other x float32 (scale\n"
    "1): integers must be exact in float32, floats finite (NaN/Inf refused naming the row),\n"
    "float64 within float32's range. Both x uint8 or neither. y: an integer dtype, shape\n"
    "[N] or [N,1], the N of its x, every label >= 0 and below the class count.\n"    "\n"
    "Options:\n"
    "  -o, --output OUT.h5   the file to write (required). Written as OUT.h5.tmp.<pid>, synced\n"
    "                        and renamed, so OUT.h5 is replaced only by a complete file; on an\n"
    "                        error no new file is left and an existing OUT.h5 is untouched.\n"
    "  --input F             the .npz archive (npz) or HDF5 file (h5)\n"
    "  --train-x, --train-y, --test-x, --test-y  NAME, PATH or F.npy: the arrays (see above)\n"
    "  --classes K           class count (idx, npz, h5; default: largest label + 1 over both\n"
    "                        splits, at least 2); every label must be below it. cifar10 has 10.\n"
    "  --limit-train N       keep only the first N training rows (default: all)\n"
    "  --limit-test N        keep only the first N test rows (default: all)\n"
    "  --source TEXT         the file's source attribute (default: \"<format>: <input path>\")\n"
    "  -h, --help            this text\n"
    "  --version             the version\n"
    "\n"
    "Exit status: 0 on success, 1 on any error (one line on stderr naming the file and the\n"
    "problem).\n";

typedef struct {
    const char *format; // "idx", "cifar10", "npz" or "h5"
    const char *dir;
    const char *input;  // npz, h5
    pcn_io_idx_paths files;
    pcn_io_array_names arrays; // npz, h5
    const char *out;
    pcn_io_convert_params params;
} options;

// ----------------------------------------------------------------------------------------
// Argument parsing
// ----------------------------------------------------------------------------------------

static int usage_error(const char *fmt, const char *arg) {
    fputs("pcn_convert: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see pcn_convert --help)\n", stderr);
    return -1;
}

static int parse_count(const char *opt, const char *s, int64_t max, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < 1 || x > max) {
        fprintf(stderr, "pcn_convert: %s %s: need a whole number from 1 to %lld\n", opt, s,
                (long long)max);
        return -1;
    }
    *v = x;
    return 0;
}

// The option's value: "--opt=value" or the next argument.
static const char *value_of(int argc, char **argv, int *i, const char *eq) {
    if (eq) return eq + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

// One option; 0 when understood, -1 after printing why not.
static int parse_option(options *o, int argc, char **argv, int *i) {
    char name[64];
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
    const char *v = value_of(argc, argv, i, eq);
    if (!v) return usage_error("%s needs a value", name);
    int64_t n;
    if (!strcmp(name, "-o") || !strcmp(name, "--output")) o->out = v;
    else if (!strcmp(name, "--dir")) o->dir = v;
    else if (!strcmp(name, "--train-images")) o->files.train_images = v;
    else if (!strcmp(name, "--train-labels")) o->files.train_labels = v;
    else if (!strcmp(name, "--test-images")) o->files.test_images = v;
    else if (!strcmp(name, "--test-labels")) o->files.test_labels = v;
    else if (!strcmp(name, "--input")) o->input = v;
    else if (!strcmp(name, "--train-x")) o->arrays.train_x = v;
    else if (!strcmp(name, "--train-y")) o->arrays.train_y = v;
    else if (!strcmp(name, "--test-x")) o->arrays.test_x = v;
    else if (!strcmp(name, "--test-y")) o->arrays.test_y = v;
    else if (!strcmp(name, "--source")) o->params.source = v;
    else if (!strcmp(name, "--limit-train")) {
        if (parse_count(name, v, INT64_MAX, &o->params.limit_train) < 0) return -1;
    } else if (!strcmp(name, "--limit-test")) {
        if (parse_count(name, v, INT64_MAX, &o->params.limit_test) < 0) return -1;
    } else if (!strcmp(name, "--classes")) {
        if (parse_count(name, v, 1 << 30, &n) < 0) return -1;
        o->params.classes = (int)n;
    } else
        return usage_error("unknown option %s", name);
    return 0;
}

// The array formats (npz, h5): --input and the four array options.
static int check_array_options(const options *o, bool idx_options) {
    const pcn_io_array_names *a = &o->arrays;
    bool all = a->train_x && a->train_y && a->test_x && a->test_y;
    if (idx_options || o->dir)
        return usage_error("%s takes --input and --train-x, --train-y, --test-x, --test-y, not "
                           "--dir or --train-images etc.", o->format);
    if (!strcmp(o->format, "h5") && !o->input) return usage_error("%s needs --input F.h5", o->format);
    if (!o->input && !all)
        return usage_error("%s needs --input F.npz, or all four of --train-x, --train-y, "
                           "--test-x, --test-y as .npy files", o->format);
    return 0;
}

// Checks that the options fit the format.
static int check_options(const options *o) {
    const pcn_io_idx_paths *f = &o->files;
    const pcn_io_array_names *a = &o->arrays;
    bool any_file = f->train_images || f->train_labels || f->test_images || f->test_labels;
    bool all_files = f->train_images && f->train_labels && f->test_images && f->test_labels;
    bool any_array = o->input || a->train_x || a->train_y || a->test_x || a->test_y;
    if (!o->out) return usage_error("%s needs -o OUT.h5", o->format);
    if (!strcmp(o->format, "npz") || !strcmp(o->format, "h5"))
        return check_array_options(o, any_file);
    if (any_array)
        return usage_error("%s takes no --input or --train-x etc. (see --help)", o->format);
    if (!strcmp(o->format, "cifar10")) {
        if (!o->dir) return usage_error("%s needs --dir D", o->format);
        if (any_file) return usage_error("%s takes --dir only, not --train-images etc.", o->format);
        if (o->params.classes && o->params.classes != 10)
            return usage_error("%s has 10 classes; drop --classes", o->format);
        return 0;
    }
    if (o->dir && any_file)
        return usage_error("%s: give either --dir or the four files, not both", o->format);
    if (!o->dir && !all_files)
        return usage_error("%s needs --dir D or all of --train-images, --train-labels, "
                           "--test-images, --test-labels", o->format);
    return 0;
}

// 0: convert; 1: help was asked for; -1: a usage error (printed).
static int parse_args(options *o, int argc, char **argv) {
    o->params = pcn_io_convert_default_params();
    o->format = argv[1];
    if (strcmp(o->format, "idx") && strcmp(o->format, "cifar10") && strcmp(o->format, "npz") &&
        strcmp(o->format, "h5"))
        return usage_error("unknown format '%s': use idx, cifar10, npz or h5", o->format);
    for (int i = 2; i < argc; i++) {
        if (argv[i][0] != '-') return usage_error("unexpected argument '%s'", argv[i]);
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
        if (parse_option(o, argc, argv, &i) < 0) return -1;
    }
    return check_options(o);
}

// ----------------------------------------------------------------------------------------
// main
// ----------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    H5dont_atexit(); // before any other HDF5 call (see the top of this file)
    if (argc < 2) {
        fputs("pcn_convert: no format given: idx, cifar10, npz or h5 (see pcn_convert --help)\n",
              stderr);
        return 1;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pcn_convert (pcn_dist) %s, data set format %s version %d\n", pcn_version(),
               PCN_IO_DATASET_FORMAT, PCN_IO_DATASET_VERSION);
        return 0;
    }
    options o = {0};
    int parsed = parse_args(&o, argc, argv);
    if (parsed != 0) {
        if (parsed > 0) fputs(usage, stdout);
        return parsed > 0 ? 0 : 1;
    }
    pcn_status st;
    if (!strcmp(o.format, "npz"))
        st = pcn_io_convert_npz(o.input, &o.arrays, o.out, &o.params);
    else if (!strcmp(o.format, "h5"))
        st = pcn_io_convert_h5(o.input, &o.arrays, o.out, &o.params);
    else if (!strcmp(o.format, "cifar10"))
        st = pcn_io_convert_cifar10(o.dir, o.out, &o.params);
    else if (o.dir)
        st = pcn_io_convert_idx_dir(o.dir, o.out, &o.params);
    else
        st = pcn_io_convert_idx(&o.files, o.out, &o.params);
    if (st != PCN_OK) {
        fprintf(stderr, "pcn_convert: %s\n", pcn_last_error());
        return 1;
    }
    printf("pcn_convert: wrote %s\n", o.out);
    return 0;
}
