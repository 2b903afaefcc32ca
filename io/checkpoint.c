/*
 * checkpoint.c — the checkpoint writer (layout in pcn_io.h, "Checkpoints").
 *
 * Writing is collective, atomic and rank 0's alone. The weights, the position and the
 * history are replicated on every rank, so a collective MPI-IO write would add nothing but
 * the risk of one rank failing (a full disk) while another sits inside HDF5's collective
 * write, waiting forever. Instead rank 0 builds the whole file in memory (HDF5's core
 * driver, no backing store), takes its image and writes the bytes with plain POSIX calls:
 *   1. rank 0: build the image; create PATH.tmp.<host>.<pid>.<counter> with O_EXCL (a name
 *      no other run or write can share); write; fsync; close. Every other rank: its own
 *      part, which today is only the fault-injection hook. Each step's failure is a status,
 *      and rank 0 removes its temporary file on every failure path.
 *   2. agreement (pcn_dist_agree): all ranks learn whether every part succeeded.
 *   3. rank 0, only if all did: rotate the kept files (PATH stays in place: it is hard-
 *      linked to PATH.1), rename the temporary file over PATH, fsync the folder; otherwise
 *      remove the temporary file.
 *   4. agreement again: every rank returns the same status, within the time of one write.
 * Nothing in between can block one rank while another waits, so a failure ends every rank
 * together, with PATH untouched (the previous checkpoint byte-identical) and no temporary
 * file left.
 *
 * Integrity. Files use the HDF5 1.8 format (H5Pset_libver_bounds V18): the superblock,
 * object headers (and so every attribute and link) carry Jenkins lookup3 checksums, so a
 * damaged metadata byte is an error on open, not a crash inside HDF5. HDF5 1.10's
 * H5Fget_file_image clears the superblock's "open for writing" flag in the image without
 * updating the superblock's checksum; fix_superblock() recomputes it, and the image is
 * opened once from memory before any byte reaches the disk. Raw data has no HDF5 checksum
 * in contiguous storage, so every dataset carries an attribute `checksum` (lookup3 of its
 * little-endian bytes); the reader checks it where present (files from before it have none).
 *
 * Reading is in checkpoint_read.c; the checksum helpers both use are declared in
 * checkpoint_impl.h.
 */
#include "pcn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint_impl.h"
#include "h5util.h"

static int fault_rank = PCN_CKPT_FAULT_OFF;

void pcn_io_ckpt_inject_fault(int rank) { fault_rank = rank; }

static bool fault_here(int rank) {
    return fault_rank == PCN_CKPT_FAULT_ALL || (fault_rank >= 0 && fault_rank == rank);
}

// ----------------------------------------------------------------------------------------
// Checksums
// ----------------------------------------------------------------------------------------

// Bob Jenkins' lookup3 hashlittle (public domain), byte by byte: HDF5's metadata checksum.
#define ROT(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
uint32_t pcn_ckpt_lookup3(const void *data, size_t len, uint32_t init) {
    const uint8_t *k = data;
    uint32_t a, b, c;
    a = b = c = 0xdeadbeefu + (uint32_t)len + init;
    for (; len > 12; len -= 12, k += 12) {
        a += k[0] + ((uint32_t)k[1] << 8) + ((uint32_t)k[2] << 16) + ((uint32_t)k[3] << 24);
        b += k[4] + ((uint32_t)k[5] << 8) + ((uint32_t)k[6] << 16) + ((uint32_t)k[7] << 24);
        c += k[8] + ((uint32_t)k[9] << 8) + ((uint32_t)k[10] << 16) + ((uint32_t)k[11] << 24);
        a -= c, a ^= ROT(c, 4), c += b, b -= a, b ^= ROT(a, 6), a += c;
        c -= b, c ^= ROT(b, 8), b += a, a -= c, a ^= ROT(c, 16), c += b;
        b -= a, b ^= ROT(a, 19), a += c, c -= b, c ^= ROT(b, 4), b += a;
    }
    if (len == 0) return c;
    uint32_t w[3] = {0, 0, 0};
    for (size_t i = 0; i < len; i++) w[i / 4] += (uint32_t)k[i] << (8 * (i % 4));
    a += w[0], b += w[1], c += w[2];
    c ^= b, c -= ROT(b, 14), a ^= c, a -= ROT(c, 11), b ^= a, b -= ROT(a, 25);
    c ^= b, c -= ROT(b, 16), a ^= c, a -= ROT(c, 4), b ^= a, b -= ROT(a, 14);
    c ^= b, c -= ROT(b, 24);
    return c;
}
#undef ROT

// Datasets' checksums are of their little-endian bytes: taken only on little-endian hosts.
bool pcn_ckpt_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

// Superblock versions 2 and 3: signature, version, offset size O, length size, flags, four
// addresses of O bytes, then the lookup3 checksum of everything before it.
static void fix_superblock(uint8_t *img, size_t n) {
    static const uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n < 12 || memcmp(img, sig, 8) != 0 || img[8] < 2 || img[8] > 3) return;
    size_t at = 12 + 4 * (size_t)img[9];
    if (at + 4 > n) return;
    uint32_t sum = pcn_ckpt_lookup3(img, at, 0);
    for (int i = 0; i < 4; i++) img[at + i] = (uint8_t)(sum >> (8 * i));
}

// ----------------------------------------------------------------------------------------
// Writing: the file image (rank 0)
// ----------------------------------------------------------------------------------------

// A dataset of file type ftype written whole from data (memory type mtype, elem bytes per
// value), with its `checksum` attribute.
static herr_t write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                            const hsize_t *dims, const void *data, size_t elem) {
    hid_t sp = H5Screate_simple(rank, dims, NULL), d = -1;
    herr_t st = -1;
    hsize_t count = 1;
    for (int i = 0; i < rank; i++) count *= dims[i];
    if (sp >= 0) d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) st = count ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (st >= 0 && pcn_ckpt_little_endian()) {
        uint32_t sum = pcn_ckpt_lookup3(data, (size_t)count * elem, 0);
        st = pcn_h5_attr_write(d, "checksum", H5T_NATIVE_UINT32, 1, &sum);
    }
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

// Layer l's weights (l = L: the readout, generative only) as /weights/W<l> or Wout.
static herr_t write_layer(hid_t g, pcn_model *m, int l) {
    const int L = pcn_model_num_layers(m);
    char name[32];
    hsize_t dims[2];
    const float *w;
    if (l < L) {
        pcn_layer_view v = pcn_model_layer(m, l);
        snprintf(name, sizeof name, "W%d", l);
        dims[0] = (hsize_t)v.out_features, dims[1] = (hsize_t)v.in_features, w = v.weight;
    } else {
        snprintf(name, sizeof name, "Wout");
        dims[0] = (hsize_t)pcn_model_output_dim(m), dims[1] = (hsize_t)pcn_model_dim(m, L);
        w = pcn_model_readout(m);
    }
    return write_dataset(g, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, w, sizeof(float));
}

static pcn_status write_model(hid_t f, const pcn_model *m) {
    hid_t g = -1;
    const int L = pcn_model_num_layers(m);
    pcn_model *mm = (pcn_model *)m; // accessors take non-const; nothing is written
    const bool disc = pcn_model_direction(m) == PCN_DIR_DISCRIMINATIVE;
    PCN_H5_TRY(g = H5Gcreate2(f, "weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (int l = 0; l < (disc ? L : L + 1); l++) PCN_H5_TRY(write_layer(g, mm, l));
    for (int l = 0; disc && pcn_model_has_bias(m) && l < L; l++) { // b_{l+1}, (d_{l+1})
        char name[32];
        hsize_t n = (hsize_t)pcn_model_dim(m, l + 1);
        snprintf(name, sizeof name, "b%d", l);
        PCN_H5_TRY(write_dataset(g, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &n,
                                 pcn_model_bias(mm, l + 1), sizeof(float)));
    }
    H5Gclose(g);
    return PCN_OK;
fail:
    if (g >= 0) H5Gclose(g);
    return PCN_EIO;
}

// /optimizer: its name and slots, and with slots the state [slots, num_weights].
static pcn_status write_optimizer(hid_t f, const pcn_model *m, const pcn_ckpt_meta *meta) {
    hid_t g = -1;
    pcn_model *mm = (pcn_model *)m;
    const int slots = pcn_model_optimizer_slots(m);
    const char *name = meta && meta->optimizer ? meta->optimizer : "sgd";
    PCN_H5_TRY(g = H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    PCN_H5_TRY(pcn_h5_attr_write_str(g, "optimizer", name));
    PCN_H5_TRY(pcn_h5_attr_write(g, "slots", H5T_NATIVE_INT, 1, &slots));
    if (slots > 0) {
        const hsize_t dims[2] = {(hsize_t)slots, (hsize_t)pcn_model_num_weights(m)};
        PCN_H5_TRY(write_dataset(g, "state", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims,
                                 pcn_model_optimizer_state(mm), sizeof(float)));
    }
    H5Gclose(g);
    return PCN_OK;
fail:
    if (g >= 0) H5Gclose(g);
    return PCN_EIO;
}

// `activations`: one fixed-length string per layer; `activation`: their common name, or
// "mixed" (so that a reader of `activation` alone refuses the file rather than misread it).
static herr_t write_activations(hid_t f, const pcn_model *m) {
    const int L = pcn_model_num_layers(m);
    char (*names)[PCN_CKPT_ACT_LEN] = calloc((size_t)L, sizeof *names);
    bool mixed = false;
    for (int l = 0; names && l < L; l++) {
        pcn_activation a = pcn_model_layer((pcn_model *)m, l).activation;
        snprintf(names[l], sizeof names[l], "%s", pcn_activation_name(a));
        mixed = mixed || a != pcn_model_layer((pcn_model *)m, 0).activation;
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    herr_t st = names && t >= 0 ? H5Tset_size(t, PCN_CKPT_ACT_LEN) : -1;
    if (st >= 0) st = pcn_h5_attr_write(f, "activations", t, L, names);
    if (st >= 0) st = pcn_h5_attr_write_str(f, "activation", mixed ? "mixed" : names[0]);
    if (t >= 0) H5Tclose(t);
    free(names);
    return st;
}

static pcn_status write_root_attrs(hid_t f, const pcn_model *m, const pcn_ckpt_meta *meta,
                                   int ranks) {
    const int L = pcn_model_num_layers(m), version = PCN_CKPT_FORMAT_VERSION;
    int dims[65], K = pcn_model_output_dim(m);
    for (int l = 0; l <= L; l++) dims[l] = pcn_model_dim(m, l);
    unsigned long long seed = meta ? meta->seed : 0;
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "pcn_format", "pcn-checkpoint"));
    PCN_H5_TRY(pcn_h5_attr_write(f, "format_version", H5T_NATIVE_INT, 1, &version));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "library_version", pcn_version()));
    PCN_H5_TRY(pcn_h5_attr_write(f, "ranks", H5T_NATIVE_INT, 1, &ranks));
    PCN_H5_TRY(pcn_h5_attr_write(f, "dims", H5T_NATIVE_INT, L + 1, dims));
    PCN_H5_TRY(write_activations(f, m));
    PCN_H5_TRY(pcn_h5_attr_write(f, "output_dim", H5T_NATIVE_INT, 1, &K));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "mode", pcn_task_name(pcn_model_mode(m))));
    PCN_H5_TRY(pcn_h5_attr_write(f, "seed", H5T_NATIVE_ULLONG, 1, &seed));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "config", meta && meta->config ? meta->config : ""));
    const int bias = pcn_model_has_bias(m);
    const float slope = pcn_model_leaky_slope(m);
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "direction",
                                     pcn_direction_name(pcn_model_direction(m))));
    PCN_H5_TRY(pcn_h5_attr_write(f, "bias", H5T_NATIVE_INT, 1, &bias));
    PCN_H5_TRY(pcn_h5_attr_write(f, "leaky_slope", H5T_NATIVE_FLOAT, 1, &slope));
    return PCN_OK;
fail:
    return PCN_EIO;
}

static pcn_status write_state(hid_t f, const pcn_train_position *pos, const pcn_history *h) {
    hid_t s = -1, g = -1;
    PCN_H5_TRY(s = H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    PCN_H5_TRY(pcn_h5_attr_write(s, "epoch", H5T_NATIVE_INT, 1, &pos->epoch));
    PCN_H5_TRY(pcn_h5_attr_write(s, "batch", H5T_NATIVE_INT, 1, &pos->batch));
    PCN_H5_TRY(pcn_h5_attr_write(s, "lr", H5T_NATIVE_DOUBLE, 1, &pos->lr));
    PCN_H5_TRY(pcn_h5_attr_write(s, "plateau_best", H5T_NATIVE_DOUBLE, 1, &pos->plateau_best));
    PCN_H5_TRY(pcn_h5_attr_write(s, "plateau_patience", H5T_NATIVE_INT, 1, &pos->plateau_patience));
    const double sums[4] = {pos->sums.energy, pos->sums.pre_learn, pos->sums.correct,
                            pos->sums.scored};
    PCN_H5_TRY(pcn_h5_attr_write(s, "epoch_sums", H5T_NATIVE_DOUBLE, 4, sums));
    const long long opt_steps = (long long)pos->opt_steps;
    PCN_H5_TRY(pcn_h5_attr_write(s, "opt_steps", H5T_NATIVE_LLONG, 1, &opt_steps));
    PCN_H5_TRY(g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    for (int k = 0; k < PCN_HIST_COUNT; k++) {
        hsize_t n = pcn_history_len(h, (pcn_history_series)k);
        static const double none = 0.0;
        const double *v = n ? pcn_history_data(h, (pcn_history_series)k) : &none;
        PCN_H5_TRY(write_dataset(g, pcn_history_series_name((pcn_history_series)k),
                                 H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, v, sizeof(double)));
    }
    H5Gclose(g);
    H5Gclose(s);
    return PCN_OK;
fail:
    if (g >= 0) H5Gclose(g);
    if (s >= 0) H5Gclose(s);
    return PCN_EIO;
}

// File image callbacks that lend HDF5 the caller's buffer instead of copying it (a
// read-only open never writes to it): every "allocation" is that buffer, copies onto itself
// are nothing, and nothing is freed.
typedef struct {
    const void *buf;
    size_t size;
} lent_image;

static void *lend_malloc(size_t size, H5FD_file_image_op_t op, void *u) {
    const lent_image *l = u;
    (void)op;
    return size == l->size ? (void *)l->buf : NULL;
}
static void *lend_memcpy(void *dst, const void *src, size_t size, H5FD_file_image_op_t op,
                         void *u) {
    (void)op, (void)u;
    return dst == src ? dst : memcpy(dst, src, size);
}
static herr_t lend_free(void *ptr, H5FD_file_image_op_t op, void *u) {
    (void)ptr, (void)op, (void)u;
    return 0;
}
static void *lend_udata_copy(void *u) { return u; }
static herr_t lend_udata_free(void *u) {
    (void)u;
    return 0;
}

// Whether the image opens as an HDF5 file and reads back its format attribute (without a
// copy of the image: it may be as large as the model).
static bool image_opens(const void *img, size_t n) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
    char fmt[32] = "";
    lent_image lent = {img, n};
    H5FD_file_image_callbacks_t cb = {lend_malloc, lend_memcpy, NULL, lend_free,
                                      lend_udata_copy, lend_udata_free, &lent};
    if (fapl >= 0 && H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 &&
        H5Pset_file_image_callbacks(fapl, &cb) >= 0 &&
        H5Pset_file_image(fapl, (void *)img, n) >= 0)
        f = H5Fopen("pcn-checkpoint-image-check", H5F_ACC_RDONLY, fapl);
    bool ok = f >= 0 && pcn_h5_attr_read_str(f, "pcn_format", fmt, sizeof fmt) >= 0 &&
              strcmp(fmt, "pcn-checkpoint") == 0;
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    return ok;
}

// The whole checkpoint as a file image in memory (malloc'd into *img, *n bytes).
static pcn_status build_image(const char *path, const pcn_model *m, const pcn_train_position *pos,
                              const pcn_history *h, const pcn_ckpt_meta *meta, int ranks,
                              uint8_t **img, size_t *n) {
    hid_t fapl = -1, f = -1;
    ssize_t size = -1;
    *img = NULL;
    PCN_H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS));
    PCN_H5_TRY(H5Pset_fapl_core(fapl, 1 << 20, 0));
    PCN_H5_TRY(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18));
    PCN_H5_TRY(f = H5Fcreate("pcn-checkpoint-image", H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    if (write_root_attrs(f, m, meta, ranks) != PCN_OK || write_model(f, m) != PCN_OK ||
        write_optimizer(f, m, meta) != PCN_OK || write_state(f, pos, h) != PCN_OK)
        goto fail;
    PCN_H5_TRY(H5Fflush(f, H5F_SCOPE_GLOBAL));
    PCN_H5_TRY(size = H5Fget_file_image(f, NULL, 0));
    if (!(*img = malloc((size_t)size + 1))) {
        pcn_set_error(PCN_ENOMEM, "%s: no memory for the checkpoint's %zd bytes", path, size);
        goto fail;
    }
    PCN_H5_TRY(H5Fget_file_image(f, *img, (size_t)size));
    PCN_H5_TRY(H5Fclose(f));
    f = -1;
    H5Pclose(fapl);
    *n = (size_t)size;
    fix_superblock(*img, *n);
    if (!image_opens(*img, *n)) {
        free(*img), *img = NULL;
        return pcn_set_error(PCN_EIO, "%s: the checkpoint built in memory does not open again "
                             "with HDF5 %u.%u.%u; nothing was written", path, H5_VERS_MAJOR,
                             H5_VERS_MINOR, H5_VERS_RELEASE);
    }
    return PCN_OK;
fail:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    free(*img), *img = NULL;
    char why[512];
    snprintf(why, sizeof why, "%s", pcn_last_error());
    return pcn_set_error(PCN_EIO, "%s: building the checkpoint failed: %s", path, why);
}

// ----------------------------------------------------------------------------------------
// Writing: the bytes (rank 0), publishing, the protocol
// ----------------------------------------------------------------------------------------

// Creates tmp (PATH.tmp.<host>.<pid>.<counter>, O_EXCL), writes img, fsyncs and closes it.
// On failure tmp is removed and emptied.
static pcn_status write_temporary(const char *path, const uint8_t *img, size_t n, char *tmp,
                                  size_t size) {
    static unsigned counter;
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    for (char *p = host; *p; p++)
        if (*p == '/' || *p == ' ') *p = '_';
    int fd = -1, err = 0;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        if (snprintf(tmp, size, "%s.tmp.%s.%ld.%u", path, host, (long)getpid(), counter++) >=
            (int)size)
            return tmp[0] = '\0', pcn_set_error(PCN_EINVAL, "%s: path too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && (err = errno) != EEXIST) break;
    }
    if (fd < 0) {
        pcn_set_error(PCN_EIO, "%s: cannot create the temporary checkpoint %s: %s", path, tmp,
                      strerror(err));
        return tmp[0] = '\0', PCN_EIO;
    }
    const char *what = "writing";
    for (size_t done = 0; done < n && !err;) {
        ssize_t w = write(fd, img + done, n - done);
        if (w < 0 && errno != EINTR) err = errno;
        else if (w == 0) err = EIO; // no progress: never loop on it
        else if (w > 0) done += (size_t)w;
    }
    if (!err && fsync(fd) != 0) err = errno, what = "syncing";
    if (close(fd) != 0 && !err) err = errno, what = "closing";
    if (!err) return PCN_OK;
    unlink(tmp);
    pcn_set_error(PCN_EIO, "%s: %s the checkpoint (%zu bytes, temporary file %s) failed: %s",
                  path, what, n, tmp, strerror(err));
    return tmp[0] = '\0', PCN_EIO;
}

// path.{keep-2} -> path.{keep-1}, ..., path.1 -> path.2, path linked as path.1 (path stays
// in place), then tmp renamed over path, and the folder synced.
static pcn_status publish(const char *tmp, const char *path, int keep) {
    char from[4096], to[4096];
    for (int k = keep - 1; k >= 2; k--) {
        snprintf(from, sizeof from, "%s.%d", path, k - 1);
        snprintf(to, sizeof to, "%s.%d", path, k);
        if (access(from, F_OK) == 0 && rename(from, to) != 0)
            return pcn_set_error(PCN_EIO, "%s: cannot rotate %s to %s: %s", path, from, to,
                                 strerror(errno));
    }
    snprintf(to, sizeof to, "%s.1", path);
    if (keep > 1 && access(path, F_OK) == 0 &&
        ((unlink(to) != 0 && errno != ENOENT) || (link(path, to) != 0 && rename(path, to) != 0)))
        return pcn_set_error(PCN_EIO, "%s: cannot keep it as %s: %s", path, to, strerror(errno));
    if (rename(tmp, path) != 0)
        return pcn_set_error(PCN_EIO, "%s: cannot rename %s to it: %s", path, tmp,
                             strerror(errno));
    snprintf(from, sizeof from, "%s", path);
    char *slash = strrchr(from, '/');
    if (slash) *slash = '\0';
    int fd = open(slash ? (from[0] ? from : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
        int err = errno;
        if (fd >= 0) close(fd);
        return pcn_set_error(PCN_EIO, "%s: the checkpoint is in place, but syncing its folder "
                             "failed: %s", path, strerror(err));
    }
    close(fd);
    return PCN_OK;
}

static pcn_status ckpt_write(pcn_comm *c, const char *path, const pcn_model *m,
                             const pcn_train_position *pos, const pcn_history *h,
                             const pcn_ckpt_meta *meta, int keep) {
    const int rank = pcn_dist_rank(c);
    char tmp[4096] = "";
    pcn_status st = PCN_OK;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (rank == 0) { // this rank's part: the whole file, as a temporary file
        uint8_t *img = NULL;
        size_t n = 0;
        st = build_image(path, m, pos, h, meta, pcn_dist_size(c), &img, &n);
        if (st == PCN_OK) st = write_temporary(path, img, n, tmp, sizeof tmp);
        free(img);
    }
    if (st == PCN_OK && fault_here(rank))
        st = pcn_set_error(PCN_EIO, "%s: injected fault: checkpoint write failed on rank %d",
                           path, rank);
    st = pcn_dist_agree(c, st);
    if (rank == 0 && tmp[0]) {
        if (st == PCN_OK) st = publish(tmp, path, keep < 1 ? 1 : keep);
        if (st != PCN_OK) unlink(tmp);
    }
    return pcn_dist_agree(c, st);
}

pcn_status pcn_io_ckpt_write(pcn_comm *c, const char *path, const pcn_model *m,
                             const pcn_train_position *pos, const pcn_history *h,
                             const pcn_ckpt_meta *meta, int keep) {
    pcn_h5_lock(); // a stream-mode prefetch may be reading
    pcn_status st = ckpt_write(c, path, m, pos, h, meta, keep);
    pcn_h5_unlock();
    return st;
}
