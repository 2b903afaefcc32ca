/*
 * consumer.c — a program outside pcn_dist, built against its installed package
 * (install_test.sh): it trains a small network through pcn.h on two separable blobs and
 * prints the test accuracy; built with WITH_DIST (through CMake, pcn::io) it also calls
 * the dist and io libraries' headers, so their installed headers and archives link.
 * Exits 0 only when the accuracy is above 0.9.
 */
#include <stdio.h>
#include <stdlib.h>

#include "pcn.h"
#ifdef WITH_DIST
#include "pcn_dist.h"
#include "pcn_io.h"
#endif

enum { N = 400, D = 8, K = 2 };

int main(void) {
    static float x[N * D];
    static int32_t y[N];
    for (int i = 0; i < N; i++) { // two blobs: class c is centred at +-1 in every feature
        y[i] = i % K;
        for (int j = 0; j < D; j++)
            x[i * D + j] = (y[i] ? 1.0f : -1.0f) + 0.3f * (float)(((i * 7 + j * 13) % 11) - 5) / 5;
    }
    const int dims[] = {D, 16, K};
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims, mp.n_dims = 3, mp.activation = PCN_ACT_TANH, mp.seed = 1;
    pcn_model *m = pcn_model_init(&mp);
    pcn_arrays a = {x, y, NULL, N, D, 0};
    pcn_data data = pcn_data_from_arrays(&a);
    pcn_train_params p = pcn_train_default_params();
    p.num_epochs = 3, p.batch_size = 50, p.t_infer = 10, p.t_learn = 10, p.lr_learn = 0.05;
    pcn_test_result r;
    if (!m || pcn_train(m, &data, &p, NULL) != PCN_OK ||
        pcn_test(m, &data, &p, &r, NULL) != PCN_OK) {
        fprintf(stderr, "consumer: %s\n", pcn_last_error());
        return 1;
    }
#ifdef WITH_DIST
    int64_t lo, count;
    pcn_dist_shard(10, 1, 2, &lo, &count);
    if (lo != 5 || count != 5) return fprintf(stderr, "consumer: shard %lld+%lld\n",
                                              (long long)lo, (long long)count), 1;
    if (pcn_io_file_regular("/", "probe") == PCN_OK) // a folder is no regular file
        return fprintf(stderr, "consumer: / taken for a regular file\n"), 1;
    printf("consumer: pcn %s, dist and io linked\n", pcn_version());
#endif
    printf("consumer: accuracy %.3f\n", r.accuracy);
    pcn_model_free(m);
    return r.accuracy > 0.9 ? 0 : 1;
}
