/*
 * cuda.c — libpcn's side of the GPU (pcn_cuda_* in pcn.h, pcn_cuda_backend in backend.h):
 * loads the CUDA module libpcn_cuda.so (backend_cuda.cu, the device, its stream, cuBLAS
 * handle and NCCL communicator; kernels stay private to it) with dlopen the first time a
 * GPU is asked for, and forwards to it. A CPU run never loads it, so the CUDA runtime,
 * cuBLAS and NCCL are neither mapped nor initialised there.
 *
 * Where the module is looked for, in order: the file given to pcn_cuda_set_module
 * (pcn_dist maps $PCN_CUDA_MODULE onto it), the folder of the running program and its
 * parent, the installed tree's library folder (<prefix>/lib beside <prefix>/bin), the
 * build folder it was built in (PCN_CUDA_MODULE_DIR), then the loader's own search
 * (LD_LIBRARY_PATH). A machine without the NVIDIA driver (no libcuda.so.1) has no devices,
 * and the module is not even opened.
 * Without a module every function answers as "no CUDA": no devices, a clear message.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_module.h"
#include "phase.h"

#ifndef PCN_INSTALL_LIBDIR
#define PCN_INSTALL_LIBDIR "lib"
#endif
#ifndef PCN_CUDA_MODULE_DIR
#define PCN_CUDA_MODULE_DIR ""
#endif

static const pcn_gpu_module *mod;
static bool tried;
static char why[768] = "this libpcn was built without CUDA (no nvcc at configure time)";
static void (*pending_fatal)(const char *msg);
static double pending_timeout;
static bool graphs_off;
static char module_path[PATH_MAX];

static bool try_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, sizeof why, "the CUDA module %s does not load: %s", path, dlerror());
        return false;
    }
    pcn_gpu_module_entry_fn entry = (pcn_gpu_module_entry_fn)dlsym(h, PCN_GPU_MODULE_ENTRY);
    const pcn_gpu_module *m = entry ? entry(pcn_set_errorv) : NULL;
    if (!m || m->abi != PCN_GPU_MODULE_ABI) {
        snprintf(why, sizeof why, "%s is not a CUDA module of this libpcn (ABI %d, want %d)",
                 path, m ? m->abi : -1, PCN_GPU_MODULE_ABI);
        dlclose(h);
        return false;
    }
    mod = m;
    if (pending_fatal) mod->set_fatal(pending_fatal);
    if (pending_timeout > 0) mod->set_timeout(pending_timeout);
    if (graphs_off) mod->set_graphs(false);
    return true;
}

// The module, loaded on first use; NULL (with why set) when there is none.
static const pcn_gpu_module *module(void) {
    if (tried) return mod;
    tried = true;
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) {
        snprintf(why, sizeof why, "no NVIDIA driver on this machine (libcuda.so.1 not found)");
        return NULL;
    }
    dlclose(driver);
    if (module_path[0]) return try_open(module_path) ? mod : NULL;
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 2; up++) { // the program's folder, then its parent
            char *slash = strrchr(exe, '/');
            if (!slash) break;
            *slash = '\0';
            snprintf(path, sizeof path, "%s/%s", exe, PCN_GPU_MODULE_NAME);
            if (access(path, R_OK) == 0) return try_open(path) ? mod : NULL;
        }
        // An installed tree: <prefix>/bin/pcn_dist and <prefix>/<libdir>/libpcn_cuda.so.
        snprintf(path, sizeof path, "%s/%s/%s", exe, PCN_INSTALL_LIBDIR, PCN_GPU_MODULE_NAME);
        if (access(path, R_OK) == 0) return try_open(path) ? mod : NULL;
    }
    if (PCN_CUDA_MODULE_DIR[0]) {
        snprintf(path, sizeof path, "%s/%s", PCN_CUDA_MODULE_DIR, PCN_GPU_MODULE_NAME);
        if (access(path, R_OK) == 0) return try_open(path) ? mod : NULL;
    }
    if (try_open(PCN_GPU_MODULE_NAME)) return mod;
    snprintf(why, sizeof why, PCN_CUDA_MODULE_DIR[0]
                 ? "the CUDA module " PCN_GPU_MODULE_NAME " is not next to this program, in "
                   PCN_CUDA_MODULE_DIR " or on LD_LIBRARY_PATH (set PCN_CUDA_MODULE to it)"
                 : "this libpcn was built without CUDA (no nvcc at configure time)");
    return NULL;
}

// ----------------------------------------------------------------------------------------

bool pcn_cuda_built(void) { return module() != NULL; }
bool pcn_cuda_built_nccl(void) { return module() && mod->has_nccl; }
const char *pcn_cuda_unavailable_reason(void) { return module() ? NULL : why; }

void pcn_cuda_set_fatal(void (*handler)(const char *msg)) {
    pending_fatal = handler; // kept for a module loaded later
    if (mod) mod->set_fatal(handler);
}

const char *pcn_cuda_device_name(void) { return mod ? mod->device_name() : NULL; }
int pcn_cuda_device_index(void) { return mod ? mod->device_index() : -1; }

void pcn_cuda_set_timeout(double seconds) {
    pending_timeout = seconds;
    if (mod) mod->set_timeout(seconds);
}

int pcn_cuda_device_count(void) { return module() ? mod->device_count() : 0; }

pcn_status pcn_cuda_select(int device) {
    if (!module()) return pcn_set_error(PCN_EINVAL, "no CUDA device: %s", why);
    return mod->select(device);
}

void pcn_cuda_set_module(const char *path) {
    snprintf(module_path, sizeof module_path, "%s", path ? path : "");
}

void pcn_cuda_set_graphs(bool on) {
    graphs_off = !on; // kept for a module loaded later
    if (mod) mod->set_graphs(on);
}

// The module's operations with the plain phases, which run on them.
const pcn_backend_ops *pcn_cuda_backend(void) {
    static pcn_backend_ops ops;
    const pcn_backend_ops *dev = mod ? mod->backend() : NULL;
    if (!dev) return NULL;
    ops = *dev;
    ops.phase_init = pcn_phase_plain_init, ops.phase_free = pcn_phase_plain_free;
    ops.infer_phase = pcn_phase_plain_infer, ops.gram_phase = pcn_gram_phase_plain;
    return &ops;
}

pcn_status pcn_cuda_nccl_unique_id(unsigned char id[PCN_CUDA_NCCL_ID_BYTES]) {
    if (!module()) return pcn_set_error(PCN_EINVAL, "no NCCL: %s", why);
    return mod->nccl_unique_id(id);
}

pcn_status pcn_cuda_nccl_init(const unsigned char id[PCN_CUDA_NCCL_ID_BYTES], int rank, int size) {
    if (!module()) return pcn_set_error(PCN_EINVAL, "no NCCL: %s", why);
    return mod->nccl_init(id, rank, size);
}

pcn_status pcn_cuda_nccl_sum(float *v, size_t n) {
    if (!mod) return pcn_set_error(PCN_ESTATE, "no NCCL communicator");
    return mod->nccl_sum(v, n);
}

void pcn_cuda_nccl_free(void) {
    if (mod) mod->nccl_free();
}
