/*
 * gpu_module.h — the table of entry points that the CUDA module (libpcn_cuda.so, built from
 * backend_cuda.cu) hands to libpcn's loader (cuda.c). Private to libpcn.
 *
 * The CUDA runtime, cuBLAS and NCCL are linked into the module only, and libpcn loads it
 * with dlopen the first time a GPU is asked for on a machine with an NVIDIA driver: a CPU
 * run never maps those libraries (they cost over 200 MiB of resident memory at load).
 * The module calls nothing in libpcn; it reports errors through the function it is given.
 * Its backend table leaves the phase operations NULL: the loader fills in the plain phases
 * (phases.c), which run on the module's operations.
 */
#ifndef PCN_GPU_MODULE_H
#define PCN_GPU_MODULE_H

#include <stdarg.h>

#include "backend.h"

#define PCN_GPU_MODULE_ABI 2
#define PCN_GPU_MODULE_NAME "libpcn_cuda.so"
#define PCN_GPU_MODULE_ENTRY "pcn_gpu_module_init"

typedef struct {
    int abi;        // PCN_GPU_MODULE_ABI
    bool has_nccl;
    void (*set_fatal)(void (*handler)(const char *msg));
    const char *(*device_name)(void);
    int (*device_index)(void);
    void (*set_timeout)(double seconds);
    void (*set_graphs)(bool on);
    int (*device_count)(void);
    pcn_status (*select)(int device);
    const pcn_backend_ops *(*backend)(void);
    pcn_status (*nccl_unique_id)(unsigned char *id);
    pcn_status (*nccl_init)(const unsigned char *id, int rank, int size);
    pcn_status (*nccl_sum)(float *v, size_t n);
    void (*nccl_free)(void);
} pcn_gpu_module;

typedef pcn_status (*pcn_errorv_fn)(pcn_status status, const char *fmt, va_list ap);
typedef const pcn_gpu_module *(*pcn_gpu_module_entry_fn)(pcn_errorv_fn set_errorv);

#endif // PCN_GPU_MODULE_H
