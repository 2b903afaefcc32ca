// The C counterpart of pcn-torch's README quickstart (README.md shows this file).
// Toy classification: 64-dim input, 10 classes, 500 samples, batches of 32.
#include <stdio.h>
#include <stdlib.h>

#include "pcn.h"

int main(void) {
    enum { N = 500, D = 64, CLASSES = 10 };
    static float x[N * D];
    static int32_t y[N];
    for (int i = 0; i < N * D; i++) x[i] = (float)rand() / RAND_MAX * 2.0f - 1.0f;
    for (int i = 0; i < N; i++) y[i] = rand() % CLASSES;
    pcn_arrays arrays = {.x = x, .labels = y, .n = N, .x_dim = D};
    pcn_data loader = pcn_data_from_arrays(&arrays);

    int dims[] = {64, 128, 64}; // input=64, hidden=128, top_latent=64
    pcn_model_params mp = pcn_model_default_params();
    mp.dims = dims;
    mp.n_dims = 3;
    mp.activation = PCN_ACT_RELU;
    mp.output_dim = CLASSES;
    mp.mode = PCN_TASK_CLASSIFICATION;
    pcn_model *model = pcn_model_init(&mp);

    pcn_progress *progress = pcn_progress_init(stdout, "cpu");
    pcn_train_params config = pcn_train_default_params();
    config.task = PCN_TASK_CLASSIFICATION;
    config.t_infer = 50;
    config.lr_infer = 0.05;
    config.lr_learn = 0.005;
    config.num_epochs = 4;
    config.batch_size = 32;
    config.shuffle = false; // like the Python quickstart's DataLoader
    config.callbacks = pcn_progress_callbacks(progress);

    pcn_history *history = pcn_history_init();
    pcn_test_result results;
    if (pcn_train(model, &loader, &config, history) != PCN_OK ||
        pcn_test(model, &loader, &config, &results, NULL) != PCN_OK) {
        fprintf(stderr, "error: %s\n", pcn_last_error());
        return 1;
    }
    printf("Accuracy: %.1f%%\n", 100.0 * results.accuracy);

    pcn_history_free(history);
    pcn_progress_free(progress);
    pcn_model_free(model);
    return 0;
}
