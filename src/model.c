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
        .direction = PCN_DIR_GENERATIVE,
        .bias = false,
        .leaky_slope = 0.01f,
    };
}

// ----------------------------------------------------------------------------------------

static pcn_model *model_alloc(const int *dims, int L, int K, pcn_task mode, pcn_direction dir,
                              bool bias) {
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
    m->dir = dir;
    m->bias = bias;
    m->slope = 0.01f;
    m->ops = &pcn_backend_cpu;
    size_t off = 0;
    for (int l = 0; l < L; l++) {
        m->woff[l] = off;
        off += (size_t)dims[l] * dims[l + 1];
    }
    m->woff[L] = off; // generative: the readout; discriminative: the biases (if any)
    if (dir == PCN_DIR_GENERATIVE) off += (size_t)m->K * dims[L];
    else if (bias) off += pcn_disc_bias_off(m, L);
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

// Discriminative (PCX, equinox's Linear): W_{l+1} and b_{l+1} ~ U(+-1/sqrt(d_l)).
static void init_disc(pcn_model *m, uint64_t seed) {
    for (int l = 0; l < m->L; l++) {
        const float bound = (float)(1.0 / sqrt((double)m->dims[l]));
        pcn_rng_uniform(seed, (uint32_t)l, PCN_RNG_WEIGHTS, 0, -bound, bound, m->w + m->woff[l],
                        (size_t)m->dims[l] * m->dims[l + 1]);
        if (m->bias)
            pcn_rng_uniform(seed, (uint32_t)l, PCN_RNG_WEIGHTS, 1, -bound, bound,
                            m->w + m->woff[m->L] + pcn_disc_bias_off(m, l),
                            (size_t)m->dims[l + 1]);
    }
}

static pcn_status check_params(const pcn_model_params *p) {
    PCN_CHECK(p && p->dims, PCN_EINVAL, "model params: dims must be given");
    PCN_CHECK(p->direction == PCN_DIR_GENERATIVE || p->direction == PCN_DIR_DISCRIMINATIVE,
              PCN_EINVAL, "model params: direction must be generative or discriminative, got %d",
              (int)p->direction);
    const bool gen = p->direction == PCN_DIR_GENERATIVE;
    PCN_CHECK((unsigned)p->activation < (gen ? PCN_ACT_GENERATIVE_COUNT : PCN_ACT_COUNT),
              PCN_EINVAL, "model params: activation %s is not one of relu, tanh, sigmoid, "
              "identity%s", pcn_activation_name(p->activation),
              gen ? " (gelu, leaky_relu and hard_tanh need --direction discriminative)"
                  : ", gelu, leaky_relu, hard_tanh");
    PCN_CHECK(!(gen && p->bias), PCN_EINVAL,
              "model params: biases are a discriminative-mode feature (pcn-torch's generative "
              "network has none); use --direction discriminative or --bias 0");
    PCN_CHECK(isfinite(p->leaky_slope), PCN_EINVAL, "model params: leaky_slope must be finite, "
              "got %g", (double)p->leaky_slope);
    PCN_CHECK(gen || p->output_dim == 0 || p->n_dims < 2 || p->output_dim == p->dims[p->n_dims - 1],
              PCN_EINVAL, "model params: a discriminative network's output is its last layer: "
              "output_dim must be 0 or dims[L] = %d, got %d", p->dims[p->n_dims - 1],
              p->output_dim);
    return PCN_OK;
}

pcn_model *pcn_model_init(const pcn_model_params *p) {
    if (check_params(p) != PCN_OK) return NULL;
    pcn_model *m = model_alloc(p->dims, p->n_dims - 1, p->output_dim, p->mode, p->direction,
                               p->bias);
    if (!m) return NULL;
    m->slope = p->leaky_slope;
    if (m->dir == PCN_DIR_DISCRIMINATIVE) {
        for (int l = 0; l < m->L; l++)
            m->act[l] = l + 1 < m->L ? p->activation : PCN_ACT_IDENTITY;
        init_disc(m, p->seed);
        return m;
    }
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
        if ((unsigned)layers[l].activation >= PCN_ACT_GENERATIVE_COUNT) {
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
    pcn_model *m = model_alloc(dims, n_layers, output_dim, mode, PCN_DIR_GENERATIVE, false);
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
    if (m->hopt != m->opt) pcn_free(m->hopt);
    m->ops->release(m->w);
    m->ops->release(m->g);
    m->ops->release(m->opt);
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

static size_t opt_bytes(const pcn_model *m) {
    return (size_t)m->opt_slots * m->woff[m->L + 1] * sizeof(float);
}

// The optimizer state from backend `from` to the model's (new) backend, through a fresh
// host copy (which stays the host view on a device).
static pcn_status move_optimizer(pcn_model *m, const pcn_backend_ops *from) {
    if (!m->opt_slots) return PCN_OK;
    const size_t bytes = opt_bytes(m);
    float *host = pcn_alloc(bytes), *dev = m->ops->on_device ? m->ops->alloc(bytes) : host;
    if (!host || !dev) {
        pcn_free(host);
        if (dev != host) m->ops->release(dev);
        return pcn_set_error(PCN_ENOMEM, "out of memory moving the optimizer state");
    }
    if (m->hopt != m->opt) from->download(m->hopt, m->opt, bytes);
    memcpy(host, m->hopt, bytes);
    if (m->hopt != m->opt) pcn_free(m->hopt);
    from->release(m->opt);
    if (dev != host) m->ops->upload(dev, host, bytes);
    m->opt = dev, m->hopt = host;
    return PCN_OK;
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
    const pcn_backend_ops *from = m->ops;
    m->w = w, m->g = g, m->ops = to, m->device = dev;
    return move_optimizer(m, from);
}

pcn_device pcn_model_device(const pcn_model *m) { return m->device; }

void pcn_model_push(pcn_model *m) {
    if (m->hw != m->w) m->ops->upload(m->w, m->hw, m->woff[m->L + 1] * sizeof(float));
    if (m->hopt != m->opt) m->ops->upload(m->opt, m->hopt, opt_bytes(m));
}

void pcn_model_pull(pcn_model *m) {
    if (m->hw != m->w) m->ops->download(m->hw, m->w, m->woff[m->L + 1] * sizeof(float));
    if (m->hopt != m->opt) m->ops->download(m->hopt, m->opt, opt_bytes(m));
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
pcn_direction pcn_model_direction(const pcn_model *m) { return m->dir; }
bool pcn_model_has_bias(const pcn_model *m) { return m->bias; }
float pcn_model_leaky_slope(const pcn_model *m) { return m->slope; }
pcn_activation pcn_model_activation(const pcn_model *m) { return m->act[0]; }
size_t pcn_model_num_weights(const pcn_model *m) { return m->woff[m->L + 1]; }

pcn_layer_view pcn_model_layer(pcn_model *m, int l) {
    if (l < 0 || l >= m->L) return (pcn_layer_view){0, 0, PCN_ACT_IDENTITY, NULL};
    if (m->dir == PCN_DIR_DISCRIMINATIVE)
        return (pcn_layer_view){m->dims[l + 1], m->dims[l], m->act[l],
                                host_weights(m) + m->woff[l]};
    return (pcn_layer_view){m->dims[l], m->dims[l + 1], m->act[l], host_weights(m) + m->woff[l]};
}

float *pcn_model_bias(pcn_model *m, int l) {
    if (m->dir != PCN_DIR_DISCRIMINATIVE || !m->bias || l < 1 || l > m->L) return NULL;
    return host_weights(m) + m->woff[m->L] + pcn_disc_bias_off(m, l - 1);
}

// ----------------------------------------------------------------------------------------
// Optimizer state
// ----------------------------------------------------------------------------------------

int pcn_model_optimizer_slots(const pcn_model *m) { return m->opt_slots; }

float *pcn_model_optimizer_state(pcn_model *m) {
    if (!m->opt_slots) return NULL;
    if (m->host_stale) pcn_model_pull(m);
    return m->hopt;
}

pcn_status pcn_model_optimizer_reserve(pcn_model *m, int slots) {
    PCN_CHECK(slots >= 0 && slots <= 2, PCN_EINVAL, "optimizer slots must be 0, 1 or 2, got %d",
              slots);
    if (slots == m->opt_slots) return PCN_OK;
    if (m->hopt != m->opt) pcn_free(m->hopt);
    m->ops->release(m->opt);
    m->opt = m->hopt = NULL;
    m->opt_slots = slots;
    if (!slots) return PCN_OK;
    const size_t bytes = opt_bytes(m);
    m->opt = m->ops->alloc(bytes);
    m->hopt = m->ops->on_device ? pcn_alloc(bytes) : m->opt;
    if (!m->opt || !m->hopt) {
        pcn_model_optimizer_reserve(m, 0);
        return pcn_set_error(PCN_ENOMEM, "out of memory for the optimizer state (%zu bytes)",
                             bytes);
    }
    return PCN_OK;
}

void pcn_model_optimizer_loaded(pcn_model *m) {
    if (m->hopt != m->opt) m->ops->upload(m->opt, m->hopt, opt_bytes(m));
}

float *pcn_model_readout(pcn_model *m) { return host_weights(m) + m->woff[m->L]; }
float *pcn_model_weights(pcn_model *m) { return host_weights(m); }
size_t pcn_model_weight_offset(const pcn_model *m, int l) {
    return (l >= 0 && l <= m->L + 1) ? m->woff[l] : 0;
}

void pcn_model_set_backend(pcn_model *m, const pcn_backend_ops *ops) { m->ops = ops; }
