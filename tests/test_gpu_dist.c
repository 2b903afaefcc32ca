/*
 * test_gpu_dist.c — distributed training on GPUs sums gradients correctly. Run under mpirun
 * with P ranks and a comm kind: every rank drives GPU (node-local rank mod visible), trains
 * with pcn_dist_train, and
 *   - every rank ends with bitwise the same weights (one all-reduce result everywhere);
 *   - they match a single-process run of the same model on the GPU to 1e-4 relative
 *     (P ranks sum their shards' gradients in another order than one process does);
 *   - the history (per-batch energies) matches too.
 * `mpi` stages the sums through host memory, so P = 2 runs on one GPU; `nccl` needs a GPU
 * per rank (CTest runs it with P = 1, which still goes through ncclAllReduce).
 * Exits 77 on every rank when any rank sees no GPU, but 1 where a rank's machine has an
 * NVIDIA device node (its CUDA is broken: tu_gpu_absent).
 *   owners  (any machine) the verdict on GPU identities that allows NCCL: pure, and gathered
 *           over the node from fake identities (distinct, then two ranks on one GPU).
 *
 * Usage: mpirun -np P test_gpu_dist mpi|nccl|owners
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pcn_dist.h"
#include "pcn.h"
#include "testutil.h"

// Fills n rows of inputs x (d wide) and labels lab (K classes) from fixed formulas.
static void fill_data(int64_t n, int d, int K, float *x, int32_t *lab) {
    for (int64_t i = 0; i < n; i++) {
        lab[i] = (int32_t)((i * 7) % K);
        for (int j = 0; j < d; j++)
            x[i * d + j] = (float)sin(0.37 * (double)(i * d + j)) + (j % K == lab[i]);
    }
}

// Every rank holds rank 0's weights, and they and the batch energies match the one process.
static void compare_runs(int rank, pcn_model *dist, pcn_model *one, const pcn_history *hd,
                         const pcn_history *h1) {
    size_t nw = pcn_model_num_weights(dist);
    float *w0 = malloc(nw * sizeof(float));
    memcpy(w0, pcn_model_weights(dist), nw * sizeof(float));
    MPI_Bcast(w0, (int)nw, MPI_FLOAT, 0, MPI_COMM_WORLD);
    size_t differ = 0;
    for (size_t i = 0; i < nw; i++) differ += w0[i] != pcn_model_weights(dist)[i];
    TU_CHECK(differ == 0, "rank %d: %zu weights differ from rank 0's", rank, differ);
    tu_close_f("P ranks vs one process: weights", pcn_model_weights(dist), pcn_model_weights(one),
               nw, 1e-6, 1e-4);
    size_t len = pcn_history_len(h1, PCN_HIST_PER_BATCH);
    TU_CHECK(len == pcn_history_len(hd, PCN_HIST_PER_BATCH), "history lengths");
    tu_close_d("P ranks vs one process: batch energies", pcn_history_data(hd, PCN_HIST_PER_BATCH),
               pcn_history_data(h1, PCN_HIST_PER_BATCH), len, 1e-8, 1e-4);
    free(w0);
}

// The pure verdict on GPU identities, and the collective one on fake identities: every rank
// its own (distinct ids), then ranks 0 and 1 on one (the message names both and the GPU).
static int check_owners(pcn_comm *c) {
    unsigned char ids[4][PCN_CUDA_UUID_BYTES] = {{1}, {2}, {3}, {2}};
    int i = -1, j = -1;
    TU_CHECK(!pcn_dist_gpu_shared(&ids[0][0], 3, &i, &j), "3 distinct ids seen as shared");
    TU_CHECK(pcn_dist_gpu_shared(&ids[0][0], 4, &i, &j) && i == 1 && j == 3,
             "ids 1 and 3 are equal: got %d, %d", i, j);
    TU_CHECK(!pcn_dist_gpu_shared(&ids[0][0], 1, &i, &j), "one id seen as shared");
    const int rank = pcn_dist_rank(c), size = pcn_dist_size(c);
    unsigned char id[PCN_CUDA_UUID_BYTES] = {0xab, 0xcd};
    id[15] = (unsigned char)rank; // distinct
    bool own = false;
    char why[512] = "", label[32];
    snprintf(label, sizeof label, "cuda:%d Fake GPU", rank);
    pcn_dist_gpus_own(c, id, label, &own, why, sizeof why);
    TU_CHECK(own, "rank %d: distinct GPUs seen as shared: %s", rank, why);
    id[15] = (unsigned char)(rank == 1 ? 0 : rank); // ranks 0 and 1 share
    snprintf(label, sizeof label, "cuda:0 Fake GPU");
    pcn_dist_gpus_own(c, id, label, &own, why, sizeof why);
    TU_CHECK(own == (size == 1), "rank %d: %d ranks, own %d", rank, size, own);
    if (size > 1)
        TU_CHECK(strstr(why, "ranks 0 and 1 both drive one GPU (cuda:0 Fake GPU, "
                        "GPU-abcd0000-0000-0000-0000-000000000000)"),
                 "rank %d: message \"%s\"", rank, why);
    int failed = tu_failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0) printf("test_gpu_dist owners: %d ranks, %s\n", size, any ? "FAILED" : "ok");
    return any ? 1 : 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    pcn_comm *c = pcn_dist_init(MPI_COMM_WORLD);
    if (argc > 1 && strcmp(argv[1], "owners") == 0) {
        int rc = check_owners(c);
        pcn_dist_free(c);
        MPI_Finalize();
        return rc;
    }
    int rank = pcn_dist_rank(c), visible = pcn_cuda_device_count(), fewest = 0;
    MPI_Allreduce(&visible, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (fewest == 0) { // 77 (not run), or 1 where a device node shows CUDA is broken
        int rc = visible ? 77 : tu_gpu_absent("test_gpu_dist"), worst = rc;
        MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD); // 1 before 77
        pcn_dist_free(c);
        MPI_Finalize();
        return worst;
    }
    pcn_comm_kind kind = argc > 1 && strcmp(argv[1], "nccl") == 0 ? PCN_COMM_NCCL : PCN_COMM_MPI;
    TU_CHECK(pcn_cuda_select(pcn_dist_gpu_for_rank(c)) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(pcn_dist_use_gpu(c, kind, 60.0) == PCN_OK, "%s", pcn_last_error());

    const int dims[] = {30, 20, 12}, K = 5;
    const int64_t n = 157;
    float *x = malloc(n * dims[0] * sizeof(float));
    int32_t *lab = malloc(n * sizeof(int32_t));
    fill_data(n, dims[0], K, x, lab);
    pcn_arrays arr = {x, lab, NULL, n, dims[0], 0};
    pcn_data d = pcn_data_from_arrays(&arr);
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.output_dim = K, mp.seed = 4;
    pcn_model *dist = pcn_model_init(&mp), *one = pcn_model_init(&mp);
    TU_CHECK(pcn_model_to_device(dist, PCN_DEVICE_CUDA) == PCN_OK, "%s", pcn_last_error());
    TU_CHECK(pcn_model_to_device(one, PCN_DEVICE_CUDA) == PCN_OK, "%s", pcn_last_error());
    pcn_train_params p = pcn_train_default_params();
    p.t_infer = 8, p.t_learn = 6, p.t_infer_test = 10, p.batch_size = 40, p.num_epochs = 2;
    p.lr_infer = 0.1, p.lr_learn = 0.03, p.seed = 9, p.use_mixed_precision = false;
    pcn_history *hd = pcn_history_init(), *h1 = pcn_history_init();
    TU_CHECK(pcn_dist_train(dist, &d, &p, hd, c) == PCN_OK, "dist: %s", pcn_last_error());
    TU_CHECK(pcn_train(one, &d, &p, h1) == PCN_OK, "one: %s", pcn_last_error());
    compare_runs(rank, dist, one, hd, h1);
    int failed = tu_failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test_gpu_dist: %d ranks, %s sums, %s\n", pcn_dist_size(c),
               kind == PCN_COMM_NCCL ? "nccl" : "mpi staged", any ? "FAILED" : "ok");
    pcn_history_free(hd), pcn_history_free(h1);
    pcn_model_free(dist), pcn_model_free(one);
    free(x), free(lab);
    pcn_dist_free(c);
    MPI_Finalize();
    return any ? 1 : 0;
}
