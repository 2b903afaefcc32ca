/*
 * gpu_module.h — the table of entry points that the CUDA module (libpcn_cuda.so, built from
 * backend_cuda.cu) hands to libpcn's loader (cuda.c). Private to libpcn.
 *
 * The CUDA runtime, cuBLAS and NCCL are linked into the module only, and libpcn loads it
 * with dlopen the first time a GPU is asked for on a machine with an NVIDIA driver: a CPU
 * run never maps those libraries (they cost over 200 MiB of resident memory at load).
 * The module calls nothing in libpcn; it reports errors through the function it is given.
 * Its backend table leaves the phase operations NULL: the loader fills in the plain phases
 * (phases.c, and disc.c's pcn_disc_phase_plain), which run on the module's operations.
 * The ABI covers this table and pcn_backend_ops (backend.h), whose layout the module fills:
 * bump it when either changes (4: the discriminative mode's and the optimizers' operations;
 * 5: mark and wait_mark, the events of the bounded queue of steps; 6: timer_begin, timer_end
 * and timer_read, the collectives' device time; 7: host_alloc and host_free, pinned staging).
 */
#ifndef PCN_GPU_MODULE_H
#define PCN_GPU_MODULE_H

#include <stdarg.h>

#include "backend.h"

#define PCN_GPU_MODULE_ABI 7
#define PCN_GPU_MODULE_NAME "libpcn_cuda.so"
#define PCN_GPU_MODULE_ENTRY "pcn_gpu_module_init"

// What the CUDA runtime says about this machine (probe): the devices, or why there are none.
typedef struct {
    int count;               // devices visible to this process (0 when CUDA failed)
    int error;               // cudaGetDeviceCount's cudaError_t (0: cudaSuccess)
    char error_name[64];     // its cudaGetErrorName, "" on success
    char error_string[160];  // its cudaGetErrorString, "" on success
    int driver_version;      // cudaDriverGetVersion: 1000 major + 10 minor; 0: no usable driver
    int runtime_version;     // cudaRuntimeGetVersion of the runtime linked into the module
} pcn_gpu_probe;

// One device's identity and capability (device_props).
typedef struct {
    char name[256];
    int major, minor;                          // compute capability
    unsigned char uuid[PCN_CUDA_UUID_BYTES];   // cudaDeviceProp.uuid
} pcn_gpu_props;

typedef struct {
    int abi;        // PCN_GPU_MODULE_ABI
    bool has_nccl;
    const char *archs; // CMAKE_CUDA_ARCHITECTURES of the module's build, comma-separated
                       //   ("80,90"); "" when unknown
    void (*set_fatal)(void (*handler)(const char *msg));
    const char *(*device_name)(void);
    int (*device_index)(void);
    void (*set_timeout)(double seconds);
    void (*set_graphs)(bool on);
    void (*probe)(pcn_gpu_probe *out);
    pcn_status (*device_props)(int device, pcn_gpu_props *out);
    pcn_status (*select)(int device);
    const pcn_backend_ops *(*backend)(void);
    pcn_status (*nccl_unique_id)(unsigned char *id);
    pcn_status (*nccl_init)(const unsigned char *id, int rank, int size); // on the selected device
    pcn_status (*nccl_sum)(float *v, size_t n);
    void (*nccl_free)(void);
} pcn_gpu_module;

typedef pcn_status (*pcn_errorv_fn)(pcn_status status, const char *fmt, va_list ap);
typedef const pcn_gpu_module *(*pcn_gpu_module_entry_fn)(pcn_errorv_fn set_errorv);

// ---- Pure decisions of the loader (cuda.c), tested on any machine ----------------------

// Why a probe found no device, in one line: the driver older than the runtime (with the
// driver release it needs), the CUDA error's name and text, or no device. Local.
void pcn_cuda_probe_reason(const pcn_gpu_probe *p, char *why, size_t n);
// Whether a device of compute capability major.minor runs a build for `archs` (the module's
// comma-separated CMAKE_CUDA_ARCHITECTURES: "80" embeds sm_80 code and compute_80 PTX,
// "80-real" the code only, "80-virtual" the PTX only, "90a" code for 9.0 alone). Machine
// code runs on the same major at an equal or higher minor; PTX is compiled by the driver
// for any device at least as new. An unknown list ("", "native", "all") passes. When it
// does not run, why says so, naming the device (index, name) and the fix. Local.
bool pcn_cuda_arch_check(const char *archs, int device, const char *name, int major, int minor,
                         char *why, size_t n);

#endif // PCN_GPU_MODULE_H
