// Preloaded (LD_PRELOAD) into every process of the sanitizer test run by tests/run.sh;
// never linked into libpcn or pcn_dist. dlclose becomes a no-op, so the plugins Open MPI and
// HDF5 open at start-up and close at finalize stay mapped until exit. LeakSanitizer can then
// name the module of each of their allocations at once (tests/lsan.supp suppresses them by
// name) instead of re-reading /proc/self/maps and unwinding through unknown code for every
// frame, which made each pcn_dist process of the suite about a second slower. Allocations in
// our own code are reported as before.
#include <dlfcn.h>

int dlclose(void *handle) {
    (void)handle;
    return 0;
}
