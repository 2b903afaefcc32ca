/*
 * dataset_stream.c — stream mode of the data set reader (see pcn_io.h and dataset.c): the
 * requested rows of every rank read with one collective H5Dread per dataset and batch, and
 * a prefetch thread that reads the next batch through its own handle meanwhile.
 *
 * Invariants: staging buffers are allocated at open and grow only when a request is larger
 * than every earlier one. The prefetch thread touches only ds->pf*, calls no MPI, and holds
 * pcn_h5_lock for its HDF5 calls; the main thread joins it before reading, and checkpoint
 * I/O takes the same lock.
 */
#include <stdlib.h>
#include <string.h>

#include "dataset_impl.h"
// ----------------------------------------------------------------------------------------
// Stream mode: collective reads of the requested rows
// ----------------------------------------------------------------------------------------

static pcn_status stage_grow(pcn_dataset *ds, stage *sg, int rows) {
    if (rows <= sg->cap) return PCN_OK;
    const size_t n = (size_t)rows;
    void *sx = realloc(sg->sx, n * ds->D * x_size(ds));
    if (sx) sg->sx = sx;
    int32_t *sl = realloc(sg->slabels, n * sizeof *sl);
    if (sl) sg->slabels = sl;
    float *stg = ds->K ? realloc(sg->stargets, n * ds->K * sizeof *stg) : sg->stargets;
    if (stg) sg->stargets = stg;
    row_ref *o = realloc(sg->order, n * sizeof *o);
    if (o) sg->order = o;
    int *pl = realloc(sg->place, n * sizeof *pl);
    if (pl) sg->place = pl;
    hsize_t *runs = realloc(sg->runs, 2 * n * sizeof *runs);
    if (runs) sg->runs = runs;
    if (!sx || !sl || (ds->K && !stg) || !o || !pl || !runs)
        return pcn_h5_path_error(ds->path, PCN_ENOMEM, "out of memory staging %d rows of /%s", rows,
                                 ds->split);
    sg->cap = rows;
    return PCN_OK;
}

static void stage_free(stage *sg) {
    free(sg->sx), free(sg->slabels), free(sg->stargets), free(sg->order), free(sg->place);
    free(sg->runs);
}

static int cmp_row(const void *a, const void *b) {
    int64_t x = ((const row_ref *)a)->row, y = ((const row_ref *)b)->row;
    return (x > y) - (x < y);
}

// Sorts the request, maps each request position to its staged row (duplicates share one)
// and records maximal runs of consecutive rows in sg->runs. Returns the number of runs;
// *staged receives the number of distinct rows.
static int plan_runs(stage *sg, const int64_t *rows, int count, int *staged) {
    for (int i = 0; i < count; i++) sg->order[i] = (row_ref){rows[i], i};
    qsort(sg->order, (size_t)count, sizeof *sg->order, cmp_row);
    int u = -1, nruns = 0;
    for (int i = 0; i < count; i++) {
        int64_t r = sg->order[i].row;
        if (u < 0 || r != sg->order[i - 1].row) {
            u++;
            if (nruns > 0 && (int64_t)(sg->runs[2 * nruns - 2] + sg->runs[2 * nruns - 1]) == r) {
                sg->runs[2 * nruns - 1]++;
            } else {
                sg->runs[2 * nruns] = (hsize_t)r, sg->runs[2 * nruns + 1] = 1;
                nruns++;
            }
        }
        sg->place[sg->order[i].idx] = u;
    }
    *staged = u + 1;
    return nruns;
}

// Selects the union of runs [a, b) (rows of width w) in sp. OR-ing one hyperslab at a time
// costs time linear in the selection so far (quadratic overall: 16000 runs took 3 s with
// HDF5 1.10.8), so halves are built apart and merged: O(n log n), 9 ms for 16000 runs.
static herr_t select_runs(const hsize_t *runs, int a, int b, hsize_t w, hid_t sp) {
#if H5_VERSION_GE(1, 10, 6)
    if (b - a > 32) {
        int m = a + (b - a) / 2;
        // sp selects nothing before the copy, so copying costs nothing whatever sp held
        hid_t right = H5Sselect_none(sp) < 0 ? -1 : H5Scopy(sp);
        herr_t rc = right < 0 ? -1 : select_runs(runs, m, b, w, right);
        if (rc >= 0) rc = select_runs(runs, a, m, w, sp);
        if (rc >= 0) rc = H5Smodify_select(sp, H5S_SELECT_OR, right);
        if (right >= 0) H5Sclose(right);
        return rc;
    }
#endif
    for (int k = a; k < b; k++) {
        hsize_t start[2] = {runs[2 * k], 0}, count[2] = {runs[2 * k + 1], w};
        if (H5Sselect_hyperslab(sp, k > a ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL, count,
                                NULL) < 0)
            return -1;
    }
    return 0;
}

// Selects the runs (row width w) in fs, n = 0 selecting none, and reads them collectively
// into buf in sorted order. Every rank calls it. Collective.
static pcn_status read_runs(pcn_dataset *ds, hid_t d, hid_t fs, hid_t ms, int rank, hsize_t w,
                            hid_t memtype, int nruns, int staged, void *buf, const char *what) {
    pcn_status st = PCN_OK;
    unsigned char dummy[16];
    if (nruns == 0) {
        H5_CHECK(H5Sselect_none(fs), what);
        H5_CHECK(H5Dread(d, memtype, ds->msnone, fs, ds->dxpl, dummy), what);
        goto done;
    }
    H5_CHECK(select_runs(ds->main.runs, 0, nruns, w, fs), what);
    hsize_t dims[2] = {(hsize_t)staged, w};
    H5_CHECK(H5Sset_extent_simple(ms, rank, dims, NULL), what);
    H5_CHECK(H5Sselect_all(ms), what);
    H5_CHECK(H5Dread(d, memtype, ms, fs, ds->dxpl, buf), what);
done:
    return st;
}

// Keeps the first failure (status and message) of a sequence of steps.
static void keep_first(pcn_status st, pcn_status *first, char *msg, size_t len) {
    if (*first == PCN_OK && st != PCN_OK) *first = st, snprintf(msg, len, "%s", pcn_last_error());
}

// Converts and checks staged rows into the caller's buffers, in request order.
static pcn_status deliver(pcn_dataset *ds, const stage *sg, const int64_t *rows, int count,
                          float *x, int32_t *labels, float *targets) {
    const size_t xrow = (size_t)ds->D * x_size(ds);
    for (int i = 0; i < count; i++) {
        int u = sg->place[i];
        dataset_convert_row(ds, (const unsigned char *)sg->sx + (size_t)u * xrow,
                            x + (size_t)i * ds->D);
        if (!ds->K) {
            pcn_status st = dataset_check_label(ds, sg->slabels[u], rows[i]);
            if (st != PCN_OK) return st;
            if (labels) labels[i] = sg->slabels[u];
        } else if (targets) {
            memcpy(targets + (size_t)i * ds->K, sg->stargets + (size_t)u * ds->K,
                   (size_t)ds->K * sizeof(float));
        }
    }
    return PCN_OK;
}

// Waits for the prefetch thread, if one runs.
static void prefetch_join(pcn_dataset *ds) {
    if (!ds->pf_running) return;
    pthread_join(ds->pf_thread, NULL);
    ds->pf_running = false;
}

// Whether this rank's prefetch holds exactly these rows; then every rank must agree, or all
// read collectively (a rank alone in a collective read would hang). Collective.
static bool prefetch_hit(pcn_dataset *ds, const int64_t *rows, int count) {
    prefetch_join(ds);
    int mine = ds->pf_count >= 0 && ds->pf_status == PCN_OK && ds->pf_count == count &&
               (count == 0 || memcmp(ds->pf_rows, rows, (size_t)count * sizeof *rows) == 0);
    int all = 0;
    PCN_MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, pcn_dist_mpi(ds->c)));
    ds->pf_count = -1; // used once
    return all == 1;
}

pcn_status dataset_stream_read(pcn_dataset *ds, const int64_t *rows, int count, float *x,
                               int32_t *labels, float *targets) {
    if (prefetch_hit(ds, rows, count)) {
        ds->pf_hits++;
        pcn_status st = dataset_check_unchanged(ds);
        return st == PCN_OK ? deliver(ds, &ds->pf, rows, count, x, labels, targets) : st;
    }
    // A rank whose request is bad still takes part in both collective reads, selecting none.
    pcn_status st = dataset_check_rows(ds, rows, count), first = PCN_OK;
    if (st == PCN_OK) st = stage_grow(ds, &ds->main, count);
    char msg[1024] = "", what[96];
    keep_first(st, &first, msg, sizeof msg);
    int staged = 0;
    int nruns = st == PCN_OK && count > 0 ? plan_runs(&ds->main, rows, count, &staged) : 0;
    snprintf(what, sizeof what, "cannot read rows of /%s/x", ds->split);
    st = read_runs(ds, ds->dx, ds->fsx, ds->msx, 2, (hsize_t)ds->D, x_memtype(ds), nruns, staged,
                   ds->main.sx, what);
    keep_first(st, &first, msg, sizeof msg);
    snprintf(what, sizeof what, "cannot read rows of /%s/y", ds->split);
    st = read_runs(ds, ds->dy, ds->fsy, ds->msy, ds->K ? 2 : 1, (hsize_t)ds->K,
                   ds->K ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, nruns, staged,
                   ds->K ? (void *)ds->main.stargets : (void *)ds->main.slabels, what);
    keep_first(dataset_label_read_failed(ds, &ds->overflow, st), &first, msg, sizeof msg);
    keep_first(dataset_check_unchanged(ds), &first, msg, sizeof msg);
    if (first != PCN_OK) return pcn_set_error(first, "%s", msg);
    return deliver(ds, &ds->main, rows, count, x, labels, targets);
}

// ----------------------------------------------------------------------------------------
// Stream mode prefetch: independent reads on a thread, under the process's HDF5 lock
// ----------------------------------------------------------------------------------------

// Reads the staged runs of one dataset through the thread's handle (row width w).
static herr_t pf_read_one(hid_t d, hid_t dxpl, int rank, hsize_t w, hid_t memtype,
                          const stage *sg, int nruns, int staged, void *buf) {
    hid_t fs = H5Dget_space(d), ms = -1;
    hsize_t dims[2] = {(hsize_t)staged, w};
    herr_t rc = fs < 0 ? -1 : select_runs(sg->runs, 0, nruns, w, fs);
    if (rc >= 0) rc = (ms = H5Screate_simple(rank, dims, NULL)) < 0 ? -1 : 0;
    if (rc >= 0) rc = H5Dread(d, memtype, ms, fs, dxpl, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static void *pf_main(void *arg) {
    pcn_dataset *ds = arg;
    pcn_h5_lock();
    herr_t rc = 0;
    if (ds->pf_file < 0) { // first prefetch: the thread's own handle, POSIX driver
        ds->pf_file = H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT);
        char name[32];
        snprintf(name, sizeof name, "/%s/x", ds->split);
        ds->pf_dx = ds->pf_file < 0 ? -1 : H5Dopen2(ds->pf_file, name, H5P_DEFAULT);
        snprintf(name, sizeof name, "/%s/y", ds->split);
        ds->pf_dy = ds->pf_file < 0 ? -1 : H5Dopen2(ds->pf_file, name, H5P_DEFAULT);
        // A label that does not fit fails the prefetch (a miss): the collective read names it.
        ds->pf_dxpl = H5Pcreate(H5P_DATASET_XFER);
        if (ds->pf_dxpl >= 0 &&
            H5Pset_type_conv_cb(ds->pf_dxpl, dataset_on_overflow, &ds->pf_overflow) < 0)
            H5Pclose(ds->pf_dxpl), ds->pf_dxpl = H5I_INVALID_HID;
        rc = ds->pf_dx < 0 || ds->pf_dy < 0 || ds->pf_dxpl < 0 ? -1 : 0;
    }
    int nruns = 0;
    if (rc >= 0 && ds->pf_count > 0) {
        nruns = plan_runs(&ds->pf, ds->pf_rows, ds->pf_count, &ds->pf_staged);
        rc = pf_read_one(ds->pf_dx, ds->pf_dxpl, 2, (hsize_t)ds->D, x_memtype(ds), &ds->pf,
                         nruns, ds->pf_staged, ds->pf.sx);
        if (rc >= 0)
            rc = pf_read_one(ds->pf_dy, ds->pf_dxpl, ds->K ? 2 : 1, (hsize_t)ds->K,
                             ds->K ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, &ds->pf, nruns,
                             ds->pf_staged,
                             ds->K ? (void *)ds->pf.stargets : (void *)ds->pf.slabels);
    }
    pcn_h5_unlock();
    ds->pf_status = rc < 0 ? PCN_EIO : PCN_OK; // a failed prefetch is a miss: read() retries
    return NULL;
}

// Starts reading rows (the next batch of this rank) in the background. Local.
void dataset_stream_prefetch(void *ctx, const int64_t *rows, int count) {
    pcn_dataset *ds = ctx;
    if (ds->mode != PCN_IO_STREAM) return;
    prefetch_join(ds);
    ds->pf_count = -1;
    for (int i = 0; i < count; i++)
        if (rows[i] < 0 || rows[i] >= ds->N) return; // read() reports bad rows
    if (count > ds->pf_cap) {
        int64_t *r = realloc(ds->pf_rows, (size_t)count * sizeof *r);
        if (!r) return;
        ds->pf_rows = r, ds->pf_cap = count;
    }
    if (count > 0 && stage_grow(ds, &ds->pf, count) != PCN_OK) return;
    if (count > 0) memcpy(ds->pf_rows, rows, (size_t)count * sizeof *rows);
    ds->pf_count = count;
    ds->pf_status = PCN_EIO;
    ds->pf_running = pthread_create(&ds->pf_thread, NULL, pf_main, ds) == 0;
    if (!ds->pf_running) ds->pf_count = -1;
}

// Memory spaces and staging for stream mode. Local.
pcn_status dataset_stream_setup(pcn_dataset *ds) {
    pcn_status st = PCN_OK;
    hsize_t one = 1;
    H5_CHECK(ds->msx = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    H5_CHECK(ds->msy = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    H5_CHECK(ds->msnone = H5Screate_simple(1, &one, NULL), "cannot set up stream reads");
    H5_CHECK(H5Sselect_none(ds->msnone), "cannot set up stream reads");
    int64_t first = ds->N < STAGE_ROWS ? ds->N : STAGE_ROWS;
    st = stage_grow(ds, &ds->main, first > 0 ? (int)first : 1);
done:
    return st;
}

// Joins the prefetch thread and frees the stream mode's handles and staging. Local.
void dataset_stream_free(pcn_dataset *ds) {
    prefetch_join(ds);
    if (ds->pf_dx >= 0) H5Dclose(ds->pf_dx);
    if (ds->pf_dy >= 0) H5Dclose(ds->pf_dy);
    if (ds->pf_dxpl >= 0) H5Pclose(ds->pf_dxpl);
    if (ds->pf_file >= 0) H5Fclose(ds->pf_file);
    stage_free(&ds->main);
    stage_free(&ds->pf);
    free(ds->pf_rows);
}
