/*
 * convert_idx.c — the IDX converter (MNIST, Fashion-MNIST; see pcn_io.h): reads the four
 * IDX files (each gzipped or plain, through zlib), checks their headers, sizes and labels
 * before any output exists, and hands the rows to the writer (convert.c).
 *
 * Invariants: every failure returns a status with one line in pcn_last_error() naming the
 * file and the problem; a header's counts are checked against MAX_FEATURES and the bytes
 * that follow before they are trusted.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "convert_impl.h"

#define IDX_MAGIC_IMAGES 0x00000803u // unsigned byte data, 3 dimensions
#define IDX_MAGIC_LABELS 0x00000801u // unsigned byte data, 1 dimension
#define MAX_FEATURES (1 << 24)       // refuse absurd image sizes from a corrupt header

// ----------------------------------------------------------------------------------------
// Input files through zlib (gzipped or plain)
// ----------------------------------------------------------------------------------------

typedef struct {
    const char *path;
    gzFile gz;
    bool gzip;      // gzip-compressed (by its magic bytes 1f 8b)
    int64_t pos;    // uncompressed bytes consumed
    int64_t expect; // bytes the header promises in all (header included)
    char what[96];  // what those bytes are, for messages ("60000 images of 28x28")
} src;

static pcn_status src_open(src *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2] = {0, 0};
    s->gzip = fread(m, 1, 2, fp) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    fclose(fp);
    s->gz = gzopen(path, "rb"); // reads plain files unchanged
    if (!s->gz) return pcn_set_error(PCN_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(s->gz, 1 << 20);
    return PCN_OK;
}

static void src_close(src *s) {
    if (s->gz) gzclose(s->gz);
    s->gz = NULL;
}

// Reads exactly n bytes; a short read is reported as a truncated file.
static pcn_status src_read(src *s, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < (1u << 30) ? n - got : (1u << 30);
        int r = gzread(s->gz, (char *)buf + got, (unsigned)want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    s->pos += (int64_t)got;
    if (got == n) return PCN_OK;
    int zerr = Z_OK;
    const char *zmsg = gzerror(s->gz, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
        return pcn_set_error(PCN_EDATA, "%s: corrupt %s: %s", s->path,
                             s->gzip ? "gzip data" : "file", zmsg);
    if (s->pos == 0) return pcn_set_error(PCN_EDATA, "%s: file is empty", s->path);
    return pcn_set_error(PCN_EDATA, "%s: truncated: %s need %lld bytes%s, but it ends after %lld",
                s->path, s->what, (long long)s->expect, s->gzip ? " uncompressed" : "",
                (long long)s->pos);
}

// After the last byte the header promises: refuses trailing data (a wrong or damaged file).
static pcn_status src_expect_end(src *s) {
    char c;
    int r = gzread(s->gz, &c, 1);
    if (r == 0) return PCN_OK;
    if (r < 0) {
        int zerr;
        return pcn_set_error(PCN_EDATA, "%s: corrupt gzip data: %s", s->path,
                             gzerror(s->gz, &zerr));
    }
    return pcn_set_error(PCN_EDATA, "%s: has more data after the %s its header declares", s->path,
                s->what);
}

// ----------------------------------------------------------------------------------------
// IDX headers and labels
// ----------------------------------------------------------------------------------------

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Reads an IDX header: the magic, the count n and (images) rows, cols.
static pcn_status idx_header(src *s, bool images, int64_t *n, int *rows, int *cols) {
    unsigned char h[16];
    size_t hlen = images ? 16 : 8;
    s->expect = (int64_t)hlen;
    snprintf(s->what, sizeof s->what, "an IDX %s header", images ? "image" : "label");
    pcn_status st = src_read(s, h, hlen);
    if (st != PCN_OK) return st;
    uint32_t magic = be32(h), want = images ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS;
    if (magic != want)
        return pcn_set_error(PCN_EDATA, "%s: bad magic 0x%08x, expected 0x%08x (an IDX %s file)",
                    s->path, magic, want, images ? "image" : "label");
    *n = be32(h + 4);
    *rows = *cols = 1;
    if (images) {
        uint32_t r = be32(h + 8), c = be32(h + 12);
        if (r == 0 || c == 0 || (uint64_t)r * c > MAX_FEATURES)
            return pcn_set_error(PCN_EDATA, "%s: bad image size %ux%u in the header", s->path, r,
                                 c);
        *rows = (int)r, *cols = (int)c;
    }
    if (*n == 0)
        return pcn_set_error(PCN_EDATA, "%s: header declares no %s", s->path,
                    images ? "images" : "labels");
    s->expect = (int64_t)hlen + *n * *rows * *cols;
    if (images)
        snprintf(s->what, sizeof s->what, "%lld images of %dx%d", (long long)*n, *rows, *cols);
    else
        snprintf(s->what, sizeof s->what, "%lld labels", (long long)*n);
    return PCN_OK;
}

// One IDX split: its image stream (read row by row later) and all its labels.
typedef struct {
    src images, labels;
    int64_t n;   // examples in the files
    int rows, cols;
    uint8_t *y;  // all n labels
    int64_t next; // next row to stream
} idx_split;

static pcn_status idx_split_open(idx_split *s, const char *images, const char *labels) {
    memset(s, 0, sizeof *s);
    int64_t nl;
    int r1, c1;
    pcn_status st;
    if ((st = src_open(&s->images, images)) != PCN_OK ||
        (st = idx_header(&s->images, true, &s->n, &s->rows, &s->cols)) != PCN_OK ||
        (st = src_open(&s->labels, labels)) != PCN_OK ||
        (st = idx_header(&s->labels, false, &nl, &r1, &c1)) != PCN_OK)
        return st;
    if (nl != s->n)
        return pcn_set_error(PCN_EDATA, "%s: %lld labels, but %s has %lld images", labels,
                    (long long)nl, images, (long long)s->n);
    s->y = malloc((size_t)nl);
    if (!s->y)
        return pcn_set_error(PCN_ENOMEM, "%s: out of memory for %lld labels", labels,
                             (long long)nl);
    if ((st = src_read(&s->labels, s->y, (size_t)nl)) != PCN_OK ||
        (st = src_expect_end(&s->labels)) != PCN_OK)
        return st;
    src_close(&s->labels);
    return PCN_OK;
}

static void idx_split_close(idx_split *s) {
    src_close(&s->images);
    src_close(&s->labels);
    free(s->y);
    s->y = NULL;
}

// Checks the labels against the class count (classes > 0) or raises *max_label.
static pcn_status idx_check_labels(const idx_split *s, int classes, int *max_label) {
    for (int64_t i = 0; i < s->n; i++) {
        if (classes > 0 && s->y[i] >= classes)
            return pcn_set_error(PCN_EDATA,
                                 "%s: label %d at row %lld is out of range for %d classes",
                                 s->labels.path, s->y[i], (long long)i, classes);
        if (s->y[i] > *max_label) *max_label = s->y[i];
    }
    return PCN_OK;
}

static pcn_status idx_read(void *ctx, void *x, int32_t *y, int64_t rows) {
    idx_split *s = ctx;
    size_t d = (size_t)s->rows * (size_t)s->cols;
    pcn_status st = src_read(&s->images, x, (size_t)rows * d);
    if (st != PCN_OK) return st;
    for (int64_t i = 0; i < rows; i++) y[i] = s->y[s->next + i];
    s->next += rows;
    if (s->next == s->n) return src_expect_end(&s->images);
    return PCN_OK;
}


// Opens and checks both IDX splits and fills desc (all but source).
static pcn_status idx_open_all(const pcn_io_idx_paths *paths, int classes, idx_split *tr,
                               idx_split *te, convert_desc *desc) {
    pcn_status st;
    if ((st = idx_split_open(tr, paths->train_images, paths->train_labels)) != PCN_OK ||
        (st = idx_split_open(te, paths->test_images, paths->test_labels)) != PCN_OK)
        return st;
    if (te->rows != tr->rows || te->cols != tr->cols)
        return pcn_set_error(PCN_EDATA,
                             "%s: images are %dx%d, but the training images (%s) are %dx%d",
                             paths->test_images, te->rows, te->cols, paths->train_images,
                             tr->rows, tr->cols);
    int max_label = 0;
    if ((st = idx_check_labels(tr, classes, &max_label)) != PCN_OK ||
        (st = idx_check_labels(te, classes, &max_label)) != PCN_OK)
        return st;
    desc->classes = classes > 0 ? classes : (max_label + 1 < 2 ? 2 : max_label + 1);
    desc->d = (int64_t)tr->rows * tr->cols;
    desc->shape[0] = 1, desc->shape[1] = tr->rows, desc->shape[2] = tr->cols;
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

pcn_status pcn_io_convert_idx(const pcn_io_idx_paths *paths, const char *out,
                              const pcn_io_convert_params *params) {
    pcn_io_convert_params p = params ? *params : pcn_io_convert_default_params();
    pcn_status st = convert_check_params(&p, out);
    if (st != PCN_OK) return st;
    if (!paths || !paths->train_images || !paths->train_labels || !paths->test_images ||
        !paths->test_labels)
        return pcn_set_error(PCN_EINVAL, "an IDX conversion needs all four files "
                                         "(train images and labels, test images and labels)");
    idx_split tr, te;
    memset(&te, 0, sizeof te);
    convert_desc desc = {0};
    st = idx_open_all(paths, p.classes, &tr, &te, &desc);
    char *source = st == PCN_OK ? convert_source_text(&p, "idx", paths->train_images) : NULL;
    if (st == PCN_OK && !source) st = pcn_set_error(PCN_ENOMEM, "out of memory");
    if (st == PCN_OK) {
        desc.source = source;
        convert_split train = {convert_limited(tr.n, p.limit_train), idx_read, &tr};
        convert_split test = {convert_limited(te.n, p.limit_test), idx_read, &te};
        st = convert_run(out, &desc, &train, &test);
    }
    free(source);
    idx_split_close(&tr);
    idx_split_close(&te);
    return st;
}

// Finds name or name.gz in dir: *path (malloc'd), or an error.
static pcn_status find_in_dir(const char *dir, const char *name, char **path) {
    size_t len = strlen(dir) + strlen(name) + 5;
    char *p = *path = malloc(len);
    if (!p) return pcn_set_error(PCN_ENOMEM, "%s: out of memory", dir);
    snprintf(p, len, "%s/%s", dir, name);
    if (access(p, F_OK) == 0) return PCN_OK;
    snprintf(p, len, "%s/%s.gz", dir, name);
    if (access(p, F_OK) == 0) return PCN_OK;
    free(p);
    *path = NULL;
    return pcn_set_error(PCN_EIO, "%s: neither %s nor %s.gz found there", dir, name, name);
}

pcn_status pcn_io_convert_idx_dir(const char *dir, const char *out,
                                  const pcn_io_convert_params *params) {
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    if (!dir) return pcn_set_error(PCN_EINVAL, "no input directory given");
    char *found[4] = {NULL, NULL, NULL, NULL};
    pcn_status st = PCN_OK;
    for (int i = 0; i < 4 && st == PCN_OK; i++) st = find_in_dir(dir, names[i], &found[i]);
    if (st == PCN_OK) {
        pcn_io_idx_paths paths = {found[0], found[1], found[2], found[3]};
        st = pcn_io_convert_idx(&paths, out, params);
    }
    for (int i = 0; i < 4; i++) free(found[i]);
    return st;
}
