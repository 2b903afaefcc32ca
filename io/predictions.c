/*
 * predictions.c — the predictions file (layout and guarantees in pcn_io.h, "Predictions").
 *
 * Rank 0 does all the file work: HDF5 only ever writes to memory (the core driver with no
 * backing store), so HDF5 never meets a full disk; the image then goes to disk through
 * write(), where every failure has an errno to report. Invariants: the temporary name is
 * unique to the host and process and created with O_EXCL (a second writer of the same
 * PATH, here or on another node, cannot clobber it); PATH appears only by rename of a
 * complete, synced file; no temporary file outlives a failed write.
 */
#include "pcn_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

// ----------------------------------------------------------------------------------------
// The file in memory
// ----------------------------------------------------------------------------------------

// pred[i] = argmax_k yhat[i, k] (the first largest).
static void argmax_rows(const float *yhat, int64_t n, int K, int32_t *pred) {
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < K; k++)
            if (yhat[i * K + k] > yhat[i * K + best]) best = k;
        pred[i] = best;
    }
}

// A dataset of the given native type and shape, written whole.
static herr_t dataset_write(hid_t f, const char *name, hid_t type, int rank,
                            const hsize_t *dims, const void *v) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = d < 0 ? -1 : H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (d >= 0 && H5Dclose(d) < 0) st = -1;
    if (sp >= 0) H5Sclose(sp);
    return st;
}

// Everything between create and close of the in-memory file.
static pcn_status contents(hid_t f, const float *yhat, const int32_t *pred, int64_t n, int K,
                           const pcn_io_predictions_meta *meta) {
    hsize_t d2[2] = {(hsize_t)n, (hsize_t)K}, d1 = (hsize_t)n;
    PCN_H5_TRY(dataset_write(f, "yhat", H5T_NATIVE_FLOAT, 2, d2, yhat));
    PCN_H5_TRY(dataset_write(f, "pred", H5T_NATIVE_INT32, 1, &d1, pred));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "pcn_format", "pcn-predictions"));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "checkpoint", meta->checkpoint ? meta->checkpoint : ""));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "data", meta->data ? meta->data : ""));
    PCN_H5_TRY(pcn_h5_attr_write_str(f, "split", meta->split ? meta->split : ""));
    PCN_H5_TRY(H5Fflush(f, H5F_SCOPE_GLOBAL));
    return PCN_OK;
fail:
    return PCN_EIO;
}

// Builds the file's bytes in *image (malloc'd), *size long. name only labels the file
// inside HDF5; nothing touches the disk.
static pcn_status build_image(const char *name, const float *yhat, const int32_t *pred,
                              int64_t n, int K, const pcn_io_predictions_meta *meta,
                              void **image, size_t *size) {
    hid_t fapl = -1, f = -1;
    ssize_t len = -1;
    *image = NULL;
    PCN_H5_TRY(fapl = H5Pcreate(H5P_FILE_ACCESS));
    PCN_H5_TRY(H5Pset_fapl_core(fapl, 1 << 20, 0)); // memory only: no backing store
    PCN_H5_TRY(f = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    if (contents(f, yhat, pred, n, K, meta) != PCN_OK) goto fail;
    PCN_H5_TRY(len = H5Fget_file_image(f, NULL, 0));
    if (!(*image = malloc((size_t)len))) {
        pcn_set_error(PCN_ENOMEM, "out of memory for the %zd-byte predictions file", len);
        goto fail;
    }
    PCN_H5_TRY(H5Fget_file_image(f, *image, (size_t)len));
    hid_t done = f;
    f = -1;
    PCN_H5_TRY(H5Fclose(done));
    H5Pclose(fapl);
    *size = (size_t)len;
    return PCN_OK;
fail:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    free(*image);
    *image = NULL;
    return pcn_last_error()[0] ? PCN_EIO : pcn_set_error(PCN_EIO, "HDF5 failed");
}

// ----------------------------------------------------------------------------------------
// The file on disk
// ----------------------------------------------------------------------------------------

// Writes all size bytes to the new file tmp and syncs it. 0, or an errno.
static int write_new(const char *tmp, const void *image, size_t size) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return errno;
    int err = 0;
    for (size_t done = 0; done < size && !err;) {
        ssize_t w = write(fd, (const char *)image + done, size - done);
        if (w > 0) done += (size_t)w;
        else if (w == 0) err = ENOSPC; // no room was made
        else if (errno != EINTR) err = errno;
    }
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    return err;
}

// Makes the rename durable (best effort: some file systems refuse fsync on a folder).
static void sync_folder(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) dir[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        if (fsync(fd) != 0) { /* best effort */ }
        close(fd);
    }
}

// Rank 0: the whole file, from yhat (n, K) to path.
static pcn_status publish(const char *path, const float *yhat, int64_t n, int K,
                          const pcn_io_predictions_meta *meta) {
    char host[256] = "host", tmp[4096 + 320];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(tmp, sizeof tmp, "%s.tmp.%s.%ld", path, host, (long)getpid());
    int32_t *pred = malloc((size_t)(n > 0 ? n : 1) * sizeof *pred);
    if (!pred) return pcn_set_error(PCN_ENOMEM, "%s: out of memory for %lld predictions", path,
                                    (long long)n);
    argmax_rows(yhat, n, K, pred);
    void *image = NULL;
    size_t size = 0;
    pcn_h5_lock(); // a stream-mode prefetch thread may use HDF5
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    pcn_status st = build_image(tmp, yhat, pred, n, K, meta, &image, &size);
    pcn_h5_unlock();
    free(pred);
    if (st != PCN_OK)
        return pcn_set_error(st, "%s: cannot make the predictions file: %s", path, pcn_last_error());
    int err = write_new(tmp, image, size);
    free(image);
    if (err == EEXIST)
        return pcn_set_error(PCN_EIO, "%s: cannot write the predictions: the temporary file %s "
                             "exists already", path, tmp);
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return pcn_set_error(PCN_EIO, "%s: cannot write the predictions (%zu bytes, via %s): %s",
                             path, size, tmp, strerror(err));
    }
    sync_folder(path);
    return PCN_OK;
}

// ----------------------------------------------------------------------------------------
// Public API
// ----------------------------------------------------------------------------------------

pcn_status pcn_io_predictions_write(pcn_comm *c, const char *path, float *yhat, int64_t n,
                                    int K, const pcn_io_predictions_meta *meta) {
    MPI_Comm comm = pcn_dist_mpi(c);
    bool root = pcn_dist_rank(c) == 0;
    size_t total = (size_t)n * (size_t)K;
    const size_t step = (size_t)1 << 28; // values per MPI call (int counts)
    for (size_t off = 0; off < total; off += step) { // rows are disjoint: a sum gathers
        int cnt = (int)(total - off < step ? total - off : step);
        PCN_MPI_CHECK(MPI_Reduce(root ? MPI_IN_PLACE : yhat + off, yhat + off, cnt, MPI_FLOAT,
                                 MPI_SUM, 0, comm));
    }
    pcn_io_predictions_meta none = {NULL, NULL, NULL};
    pcn_status st = root ? publish(path, yhat, n, K, meta ? meta : &none) : PCN_OK;
    return pcn_dist_agree(c, st);
}
