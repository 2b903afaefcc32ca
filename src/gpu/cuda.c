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
 * Without a module every function answers as "no CUDA": no devices, a clear message. With
 * one, the module's probe (once) says how many devices there are or why there are none
 * (the driver older than the runtime, CUDA's error), and pcn_cuda_select refuses a device
 * that this build has no kernels for, before CUDA would fail at the first launch.
 */
#define _GNU_SOURCE
#include <ctype.h>
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
static int visible = -1;        // the probe's device count; -1: not probed yet
static pcn_gpu_props chosen;    // the selected device's, once selected

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
    // Found on the loader's path but a library it needs is missing: that message stays.
    if (!strstr(why, PCN_GPU_MODULE_NAME ": cannot open shared object file")) return NULL;
    snprintf(why, sizeof why, PCN_CUDA_MODULE_DIR[0]
                 ? "the CUDA module " PCN_GPU_MODULE_NAME " is not next to this program, in "
                   PCN_CUDA_MODULE_DIR " or on LD_LIBRARY_PATH (set PCN_CUDA_MODULE to it)"
                 : "this libpcn was built without CUDA (no nvcc at configure time)");
    return NULL;
}

// ----------------------------------------------------------------------------------------

// The devices the module's CUDA runtime sees, probed once; 0 with why set when none.
static int probed(void) {
    if (visible >= 0) return visible;
    if (!module()) return visible = 0;
    pcn_gpu_probe p;
    memset(&p, 0, sizeof p);
    mod->probe(&p);
    if (p.count <= 0) pcn_cuda_probe_reason(&p, why, sizeof why);
    return visible = p.count > 0 ? p.count : 0;
}

bool pcn_cuda_built(void) { return module() != NULL; }
bool pcn_cuda_built_nccl(void) { return module() && mod->has_nccl; }
const char *pcn_cuda_unavailable_reason(void) { return probed() > 0 ? NULL : why; }

bool pcn_cuda_expected(void) {
    if (access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0) return true;
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (driver) dlclose(driver);
    return driver != NULL;
}

pcn_status pcn_cuda_device_uuid(unsigned char uuid[PCN_CUDA_UUID_BYTES]) {
    if (pcn_cuda_device_index() < 0) return pcn_set_error(PCN_ESTATE, "no CUDA device selected");
    memcpy(uuid, chosen.uuid, PCN_CUDA_UUID_BYTES);
    return PCN_OK;
}

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

int pcn_cuda_device_count(void) { return probed(); }

pcn_status pcn_cuda_select(int device) {
    if (probed() == 0) return pcn_set_error(PCN_EINVAL, "no CUDA device: %s", why);
    if (device < 0 || device >= visible)
        return pcn_set_error(PCN_EINVAL, "CUDA device %d does not exist (%d visible)", device,
                             visible);
    pcn_gpu_props props;
    memset(&props, 0, sizeof props);
    pcn_status st = mod->device_props(device, &props);
    if (st != PCN_OK) return st;
    char refused[512];
    if (!pcn_cuda_arch_check(mod->archs, device, props.name, props.major, props.minor, refused,
                             sizeof refused))
        return pcn_set_error(PCN_EINVAL, "%s", refused);
    if ((st = mod->select(device)) == PCN_OK) chosen = props;
    return st;
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
    ops.disc_phase = pcn_disc_phase_plain;
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

// ----------------------------------------------------------------------------------------
// Pure decisions (gpu_module.h)
// ----------------------------------------------------------------------------------------

// The oldest driver release of a CUDA major version (NVIDIA's compatibility table).
static int min_driver(int runtime_major) {
    return runtime_major >= 13 ? 580 : runtime_major == 12 ? 525 : runtime_major == 11 ? 450 : 0;
}

void pcn_cuda_probe_reason(const pcn_gpu_probe *p, char *why, size_t n) {
    const int dv = p->driver_version, rv = p->runtime_version;
    if (p->error == 0) {
        snprintf(why, n, "the NVIDIA driver sees no CUDA device (is CUDA_VISIBLE_DEVICES "
                 "empty?)");
    } else if (dv > 0 && dv < rv) {
        char needs[48] = "";
        if (min_driver(rv / 1000))
            snprintf(needs, sizeof needs, " (needs driver >= %d)", min_driver(rv / 1000));
        snprintf(why, n, "CUDA driver %d.%d is older than this build's runtime %d.%d%s: %s",
                 dv / 1000, dv % 1000 / 10, rv / 1000, rv % 1000 / 10, needs, p->error_name);
    } else {
        char driver[32] = "none usable";
        if (dv > 0) snprintf(driver, sizeof driver, "%d.%d", dv / 1000, dv % 1000 / 10);
        snprintf(why, n, "CUDA cannot be used: cudaGetDeviceCount: %s (%s); CUDA driver %s, "
                 "runtime %d.%d", p->error_name, p->error_string, driver, rv / 1000,
                 rv % 1000 / 10);
    }
}

typedef struct {
    int cap;          // 10 major + minor, as in sm_80 / sm_103
    char suffix;      // 'a' (this exact GPU), 'f' (its family), or 0
    bool sass, ptx;   // machine code, PTX
} arch_entry;

// One entry of CMAKE_CUDA_ARCHITECTURES ("80", "90a", "80-real", "90-virtual"); false for
// anything else ("native", "all", "all-major").
static bool parse_arch(const char *tok, size_t len, arch_entry *e) {
    size_t i = 0;
    e->cap = 0, e->suffix = 0, e->sass = e->ptx = true;
    while (i < len && isdigit((unsigned char)tok[i])) e->cap = 10 * e->cap + (tok[i++] - '0');
    if (i == 0 || e->cap < 10) return false;
    if (i < len && (tok[i] == 'a' || tok[i] == 'f')) e->suffix = tok[i++];
    if (len - i == 5 && strncmp(tok + i, "-real", 5) == 0) e->ptx = false, i += 5;
    else if (len - i == 8 && strncmp(tok + i, "-virtual", 8) == 0) e->sass = false, i += 8;
    return i == len;
}

static bool entry_runs(const arch_entry *e, int major, int minor) {
    const int cap = 10 * major + minor;
    const bool same_major = major == e->cap / 10;
    if (e->suffix == 'a') return cap == e->cap;  // code and PTX for this GPU alone
    if (e->suffix == 'f') return same_major && cap >= e->cap;
    return (e->sass && same_major && cap >= e->cap) || (e->ptx && cap >= e->cap);
}

bool pcn_cuda_arch_check(const char *archs, int device, const char *name, int major, int minor,
                         char *why, size_t n) {
    char list[256] = "";
    bool runs = false, older = true, any = false;
    for (const char *t = archs ? archs : ""; *t;) {
        size_t len = strcspn(t, ",;");
        arch_entry e;
        if (len && !parse_arch(t, len, &e)) return true; // not a list we can judge
        if (len) {
            any = true;
            runs = runs || entry_runs(&e, major, minor);
            older = older && 10 * major + minor < e.cap;
            size_t at = strlen(list);
            snprintf(list + at, sizeof list - at, "%s%s_%d%s%s", at ? ", " : "",
                     e.sass ? "sm" : "compute", e.cap, e.suffix ? (char[2]){e.suffix, 0} : "",
                     e.sass && !e.ptx ? " without PTX" : "");
        }
        t += len + (t[len] != '\0');
    }
    if (runs || !any) return true;
    snprintf(why, n, "GPU %d (%s, sm_%d%d) %s the architectures this build has kernels for "
             "(%s): rebuild with -DCMAKE_CUDA_ARCHITECTURES=%d%d", device, name, major, minor,
             older ? "is older than" : "is not among", list, major, minor);
    return false;
}
