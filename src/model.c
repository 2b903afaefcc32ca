/*
 * model.c — the network's shapes and weights (pcn-torch PredictiveCodingNetwork, PCNLayer).
 *
 * All weights live in one buffer: W[0] (d0, d1), ..., W[L-1] (d_{L-1}, dL), Wout (K, dL),
 * each row-major out x in; the gradient buffer mirrors it. Initialisation is Philox-based,
 * so the same seed gives the same weights on every rank and device.
 *
 * On a GPU (pcn_model_to_device) w and g are device buffers and hw is the host copy the
 * public accessors expose; the trainer pushes hw to the device when it starts and pulls it
 * back at its end; during training (a batch hook) the accessors pull it first when the
 * device's weights changed since (host_stale), so weights cross to the host only when
 * read: for a checkpoint, not after every batch. On the host hw == w.
 */
#include <math.h>
#include <string.h>

#include "core.h"

pcn_model_params pcn_model_default_params(void) {
    return (pcn_model_params){
        .n_dims = 0,
        .dims = NULL,
        .activation = PCN_ACT_RELU,
        .output_dim = 0,
        .mode = PCN_TASK_CLASSIFICATION,
        .seed = 0,
    };
}

// ----------------------------------------------------------------------------------------

static pcn_model *model_alloc(const int *dims, int L, int K, pcn_task mode) {
    if (L < 1) {
        pcn_set_error(PCN_EINVAL, "dims must have at least 2 elements, got %d", L + 1);
        return NULL;
    }
    if (L > PCN_MAX_LAYERS) {
        pcn_set_error(PCN_EINVAL, "at most %d layers are supported, got %d", PCN_MAX_LAYERS, L);
        return NULL;
    }
    for (int l = 0; l <= L; l++) {
        if (dims[l] < 1) {
            pcn_set_error(PCN_EINVAL, "dims[%d] must be >= 1, got %d", l, dims[l]);
            return NULL;
        }
    }
    if (K < 0) {
        pcn_set_error(PCN_EINVAL, "output_dim must be >= 1 (or 0 for dL), got %d", K);
        return NULL;
    }
    if (mode != PCN_TASK_CLASSIFICATION && mode != PCN_TASK_REGRESSION) {
        pcn_set_error(PCN_EINVAL, "mode must be classification or regression, got %d", (int)mode);
        return NULL;
    }
    pcn_model *m = pcn_alloc(sizeof *m);
    if (!m) {
        pcn_set_error(PCN_ENOMEM, "out of memory allocating the model");
        return NULL;
    }
    m->L = L;
    memcpy(m->dims, dims, (size_t)(L + 1) * sizeof *dims);
    m->K = K > 0 ? K : dims[L];
    m->mode = mode;
    m->ops = &pcn_backend_cpu;
    size_t off = 0;
    for (int l = 0; l < L; l++) {
        m->woff[l] = off;
        off += (size_t)dims[l] * dims[l + 1];
    }
    m->woff[L] = off;
    off += (size_t)m->K * dims[L];
    m->woff[L + 1] = off;
    m->w = pcn_alloc(off * sizeof(float));
    m->g = pcn_alloc(off * sizeof(float));
    m->hw = m->w;
    m->device = PCN_DEVICE_CPU;
    if (!m->w || !m->g) {
        pcn_model_free(m);
        pcn_set_error(PCN_ENOMEM, "out of memory allocating %zu weights", off);
        return NULL;
    }
    return m;
}

// Xavier for W[l]; the readout like torch.nn.Linear's default (kaiming_uniform, a = sqrt 5).
static void init_weights(pcn_model *m, int l, uint64_t seed) {
    float *w = m->w + m->woff[l];
    size_t n;
    double bound;
    if (l < m->L) {
        n = (size_t)m->dims[l] * m->dims[l + 1];
        bound = sqrt(6.0 / (m->dims[l] + m->dims[l + 1]));
    } else {
        n = (size_t)m->K * m->dims[m->L];
        bound = 1.0 / sqrt((double)m->dims[m->L]);
    }
    pcn_rng_uniform(seed, (uint32_t)l, PCN_RNG_WEIGHTS, 0, (float)-bound, (float)bound, w, n);
}

pcn_model *pcn_model_init(const pcn_model_params *p) {
    if (!p || !p->dims) {
        pcn_set_error(PCN_EINVAL, "model params: dims must be given");
        return NULL;
    }
    if ((unsigned)p->activation >= PCN_ACT_COUNT) {
        pcn_set_error(PCN_EINVAL, "model params: activation %d is not one of relu, tanh, "
                                  "sigmoid, identity", (int)p->activation);
        return NULL;
    }
    pcn_model *m = model_alloc(p->dims, p->n_dims - 1, p->output_dim, p->mode);
    if (!m) return NULL;
    for (int l = 0; l < m->L; l++) m->act[l] = p->activation;
    for (int l = 0; l <= m->L; l++) init_weights(m, l, p->seed);
    return m;
}

pcn_model *pcn_model_init_layers(const pcn_layer_spec *layers, int n_layers, int output_dim,
                                 pcn_task mode, uint64_t seed) {
    if (!layers || n_layers < 1) {
        pcn_set_error(PCN_EINVAL, "layers must not be empty");
        return NULL;
    }
    if (n_layers > PCN_MAX_LAYERS) {
        pcn_set_error(PCN_EINVAL, "at most %d layers are supported, got %d", PCN_MAX_LAYERS,
                      n_layers);
        return NULL;
    }
    int dims[PCN_MAX_LAYERS + 1];
    dims[0] = layers[0].out_features;
    for (int l = 0; l < n_layers; l++) {
        if ((unsigned)layers[l].activation >= PCN_ACT_COUNT) {
            pcn_set_error(PCN_EINVAL, "layer %d: invalid activation %d", l,
                          (int)layers[l].activation);
            return NULL;
        }
        if (l + 1 < n_layers && layers[l].in_features != layers[l + 1].out_features) {
            pcn_set_error(PCN_EINVAL,
                          "dimension mismatch between layers %d and %d: layer %d "
                          "in_features=%d != layer %d out_features=%d",
                          l, l + 1, l, layers[l].in_features, l + 1, layers[l + 1].out_features);
            return NULL;
        }
        dims[l + 1] = layers[l].in_features;
    }
    pcn_model *m = model_alloc(dims, n_layers, output_dim, mode);
    if (!m) return NULL;
    for (int l = 0; l < n_layers; l++) {
        m->act[l] = layers[l].activation;
        if (layers[l].weight)
            memcpy(m->w + m->woff[l], layers[l].weight,
                   (size_t)dims[l] * dims[l + 1] * sizeof(float));
        else
            init_weights(m, l, seed);
    }
    init_weights(m, n_layers, seed);
    return m;
}

void pcn_model_free(pcn_model *m) {
    if (!m) return;
    if (m->hw != m->w) pcn_free(m->hw);
    m->ops->release(m->w);
    m->ops->release(m->g);
    pcn_free(m);
}

// ----------------------------------------------------------------------------------------
// Devices
// ----------------------------------------------------------------------------------------

pcn_status pcn_model_to_device(pcn_model *m, pcn_device dev) {
    if (!m) return pcn_set_error(PCN_EINVAL, "model is NULL");
    if (dev != PCN_DEVICE_CPU && dev != PCN_DEVICE_CUDA)
        return pcn_set_error(PCN_EINVAL, "device must be cpu or cuda, got %d", (int)dev);
    if (dev == m->device) return PCN_OK;
    const pcn_backend_ops *to = dev == PCN_DEVICE_CUDA ? pcn_cuda_backend() : &pcn_backend_cpu;
    if (!to)
        return pcn_set_error(PCN_EINVAL, pcn_cuda_device_count() > 0
                                 ? "no CUDA device selected: call pcn_cuda_select() first"
                                 : "no CUDA device: this libpcn has no CUDA support or sees no "
                                   "GPU");
    return pcn_model_to_backend(m, to, dev);
}

pcn_status pcn_model_to_backend(pcn_model *m, const pcn_backend_ops *to, pcn_device dev) {
    PCN_ASSERT(pcn_backend_missing(to) == NULL);
    const size_t n = m->woff[m->L + 1], bytes = n * sizeof(float);
    float *w = to->alloc(bytes), *g = to->alloc(bytes);
    if (!w || !g) {
        to->release(w), to->release(g);
        return pcn_set_error(PCN_ENOMEM, "out of %s memory for %zu weights",
                             to->on_device ? "device" : "host", n);
    }
    if (to->on_device) { // the host copy stays (or becomes) hw
        float *host = m->hw;
        if (m->ops->on_device) { // device to device: through the host copy
            pcn_model_pull(m);
            m->ops->release(m->w);
        }
        to->upload(w, host, bytes);
        m->ops->release(m->g);
    } else { // back to the host: hw becomes the compute buffer
        pcn_model_pull(m);
        memcpy(w, m->hw, bytes);
        m->ops->release(m->w), m->ops->release(m->g);
        if (m->hw != m->w) pcn_free(m->hw);
        m->hw = w;
    }
    m->w = w, m->g = g, m->ops = to, m->device = dev;
    return PCN_OK;
}

pcn_device pcn_model_device(const pcn_model *m) { return m->device; }

void pcn_model_push(pcn_model *m) {
    if (m->hw != m->w) m->ops->upload(m->w, m->hw, m->woff[m->L + 1] * sizeof(float));
}

void pcn_model_pull(pcn_model *m) {
    if (m->hw != m->w) m->ops->download(m->hw, m->w, m->woff[m->L + 1] * sizeof(float));
    m->host_stale = false;
}

void pcn_model_host_stale(pcn_model *m) { m->host_stale = m->hw != m->w; }

// The host copy, pulled first when the device's weights are newer.
static float *host_weights(pcn_model *m) {
    if (m->host_stale) pcn_model_pull(m);
    return m->hw;
}

// ----------------------------------------------------------------------------------------
// Accessors
// ----------------------------------------------------------------------------------------

int pcn_model_num_layers(const pcn_model *m) { return m->L; }
int pcn_model_dim(const pcn_model *m, int l) { return (l >= 0 && l <= m->L) ? m->dims[l] : 0; }
int pcn_model_output_dim(const pcn_model *m) { return m->K; }
pcn_task pcn_model_mode(const pcn_model *m) { return m->mode; }
size_t pcn_model_num_weights(const pcn_model *m) {
    size_t n = (size_t)m->K * m->dims[m->L];
    for (int l = 0; l < m->L; l++) n += (size_t)m->dims[l] * m->dims[l + 1];
    return n;
}

pcn_layer_view pcn_model_layer(pcn_model *m, int l) {
    if (l < 0 || l >= m->L) return (pcn_layer_view){0, 0, PCN_ACT_IDENTITY, NULL};
    return (pcn_layer_view){m->dims[l], m->dims[l + 1], m->act[l], host_weights(m) + m->woff[l]};
}

float *pcn_model_readout(pcn_model *m) { return host_weights(m) + m->woff[m->L]; }
float *pcn_model_weights(pcn_model *m) { return host_weights(m); }
size_t pcn_model_weight_offset(const pcn_model *m, int l) {
    return (l >= 0 && l <= m->L + 1) ? m->woff[l] : 0;
}

void pcn_model_set_backend(pcn_model *m, const pcn_backend_ops *ops) { m->ops = ops; }
