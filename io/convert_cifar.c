/*
 * convert_cifar.c — the CIFAR-10 converter (the binary version; see pcn_io.h): sizes the
 * six batch files before any output exists, then reads their records (1 label byte + 3072
 * pixel bytes, CHW) in order and hands the rows to the writer (convert.c).
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() naming the
 * file and the problem (a label out of range names its file and record).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert_impl.h"

#define CIFAR_PIXELS 3072 // 3 x 32 x 32, channel-major
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10

// ----------------------------------------------------------------------------------------
// The batch files of one split, read record by record
// ----------------------------------------------------------------------------------------

typedef struct {
    char *paths[5];
    int64_t records[5]; // records per file (from its size)
    int nfiles;
    int file;           // file being read
    FILE *fp;
    int64_t left;       // records left in it
    uint8_t rec[CIFAR_RECORD];
} cifar_split;

static pcn_status cifar_next_file(cifar_split *s) {
    if (s->fp) fclose(s->fp);
    s->fp = NULL;
    if (s->file + 1 >= s->nfiles) return pcn_set_error(PCN_EDATA, "cifar-10: ran out of records");
    s->file++;
    const char *path = s->paths[s->file];
    s->fp = fopen(path, "rb");
    if (!s->fp) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    s->left = s->records[s->file];
    return PCN_OK;
}

static pcn_status cifar_read(void *ctx, void *out, int32_t *y, int64_t rows) {
    cifar_split *s = ctx;
    uint8_t *x = out;
    for (int64_t i = 0; i < rows; i++) {
        pcn_status st = s->left == 0 ? cifar_next_file(s) : PCN_OK;
        if (st != PCN_OK) return st;
        const char *path = s->paths[s->file];
        int64_t rec = s->records[s->file] - s->left;
        if (fread(s->rec, 1, CIFAR_RECORD, s->fp) != CIFAR_RECORD)
            return pcn_set_error(PCN_EIO, "%s: %s at record %lld", path,
                        ferror(s->fp) ? strerror(errno) : "file ended early (it shrank?)",
                        (long long)rec);
        if (s->rec[0] >= CIFAR_CLASSES)
            return pcn_set_error(PCN_EDATA,
                                 "%s: label %d at record %lld is out of range for %d classes", path,
                                 s->rec[0], (long long)rec, CIFAR_CLASSES);
        y[i] = s->rec[0];
        memcpy(x + i * CIFAR_PIXELS, s->rec + 1, CIFAR_PIXELS);
        s->left--;
    }
    return PCN_OK;
}

static void cifar_split_close(cifar_split *s) {
    if (s->fp) fclose(s->fp);
    for (int i = 0; i < s->nfiles; i++) free(s->paths[i]);
    memset(s, 0, sizeof *s);
}

// Finds names[0..count) in dir and sizes them; total records in *total.
static pcn_status cifar_split_open(cifar_split *s, const char *dir, const char *const *names,
                            int count, int64_t *total) {
    memset(s, 0, sizeof *s);
    s->file = -1;
    *total = 0;
    for (int i = 0; i < count; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = s->paths[s->nfiles++] = malloc(len);
        if (!path) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", dir);
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) return pcn_set_error(PCN_EIO, "%s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode)) return pcn_set_error(PCN_EIO, "%s: not a regular file", path);
        if (st.st_size == 0 || st.st_size % CIFAR_RECORD != 0)
            return pcn_set_error(PCN_EDATA,
                        "%s: size %lld bytes is not a non-zero multiple of %d (1 label byte + "
                        "%d pixel bytes per record)",
                        path, (long long)st.st_size, CIFAR_RECORD, CIFAR_PIXELS);
        s->records[i] = st.st_size / CIFAR_RECORD;
        *total += s->records[i];
    }
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

pcn_status pcn_io_convert_cifar10(const char *dir, const char *out,
                                  const pcn_io_convert_params *params) {
    static const char *const train_names[5] = {"data_batch_1.bin", "data_batch_2.bin",
                                               "data_batch_3.bin", "data_batch_4.bin",
                                               "data_batch_5.bin"};
    static const char *const test_names[1] = {"test_batch.bin"};
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    pcn_status st = convert_check_params(&p, out);
    if (st != PCN_OK) return st;
    if (!dir) return pcn_set_error(PCN_EINVAL, "no input directory given");
    if (p.classes != 0 && p.classes != CIFAR_CLASSES)
        return pcn_set_error(PCN_EINVAL, "classes = %d: CIFAR-10 has %d classes", p.classes,
                             CIFAR_CLASSES);
    cifar_split tr, te;
    int64_t ntr = 0, nte = 0;
    memset(&te, 0, sizeof te);
    st = cifar_split_open(&tr, dir, train_names, 5, &ntr);
    if (st == PCN_OK) st = cifar_split_open(&te, dir, test_names, 1, &nte);
    char *source = st == PCN_OK ? convert_source_text(&p, "cifar-10 binary", dir) : NULL;
    if (st == PCN_OK && !source) st = pcn_set_error(PCN_ENOMEM, "out of memory");
    if (st == PCN_OK) {
        convert_desc desc = {CIFAR_PIXELS, {3, 32, 32}, CIFAR_CLASSES, source, CONVERT_X_U8};
        convert_split train = {convert_limited(ntr, p.limit_train), cifar_read, &tr};
        convert_split test = {convert_limited(nte, p.limit_test), cifar_read, &te};
        st = convert_run(out, &desc, &train, &test);
    }
    free(source);
    cifar_split_close(&tr);
    cifar_split_close(&te);
    return st;
}
