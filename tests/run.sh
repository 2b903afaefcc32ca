#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages), configures, builds and runs
# the CTest suite twice — a Release build, then a build under AddressSanitizer and
# UndefinedBehaviorSanitizer that must run without a report (all but the release_only
# tests: orchestration and the quickstart, see tests/CMakeLists.txt).
#   tests/run.sh            # from the repository root (or anywhere)
# Environment: BUILD_DIR (default build), JOBS (default nproc), SKIP_SANITIZE=1 skips the
# second build, PCN_CMAKE_ARGS adds configure options to both builds (for example
# "-DOPENBLAS_OPENMP_LIBRARY=OFF" to build against the pthread OpenBLAS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/jobs/install_deps.sh" --tests

jobs=${JOBS:-$(nproc)}
build=${BUILD_DIR:-build}

echo "== Release build in $build"
# Tests on explicitly: jobs/quickstart.sh configures the same folder without them.
extra=(${PCN_CMAKE_ARGS:-})
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPCN_BUILD_TESTS=ON -DPCN_SANITIZE=OFF \
  ${extra[@]+"${extra[@]}"}
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure --no-tests=error -j "$jobs")

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build in $build-asan"
  cmake -S . -B "$build-asan" -DCMAKE_BUILD_TYPE=Debug -DPCN_SANITIZE=ON -DPCN_BUILD_TESTS=ON \
    ${extra[@]+"${extra[@]}"}
  cmake --build "$build-asan" -j "$jobs"
  # Leaks inside Open MPI, its plugins and HDF5's MPI-IO layer are theirs: suppressed by
  # library name in tests/lsan.supp; leaks in our code still fail.
  # Plugins stay mapped until exit (tests/asan/keep_modules.c): LeakSanitizer then names
  # their module at once instead of rescanning the process's maps, a third of the
  # sanitizer run's time.
  keep="$(cd "$build-asan" && pwd)/libpcn_keep_modules.so"
  cc -shared -fPIC -O2 -o "$keep" tests/asan/keep_modules.c
  export LD_PRELOAD="$keep${LD_PRELOAD:+:$LD_PRELOAD}"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:verify_asan_link_order=0}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # The tests labelled release_only ran above; they add nothing here (tests/CMakeLists.txt).
  (cd "$build-asan" && ctest --output-on-failure --no-tests=error -j "$jobs" -LE release_only)
fi
