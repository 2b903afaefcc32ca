#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR: installs the build to a temporary prefix, then builds
# tests/install/consumer.c against the installed package twice — through CMake
# (find_package(pcn CONFIG), pcn::io) and through pkg-config (pcn) — and runs both. Under
# the sanitizers (PCN_SANITIZE=1) the consumers are built with them too, as the archives
# were. Fails on any step; leaves nothing outside BUILD_DIR/install_test.
set -euo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
work=$build/install_test
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
flags=""
[ "${PCN_SANITIZE:-0}" = 1 ] && flags="-fsanitize=address,undefined"

cmake --install "$build" --prefix "$prefix" > "$work/install.log"
for f in bin/pcn_dist bin/pcn_convert include/pcn.h include/pcn_dist.h include/pcn_io.h \
         lib/libpcn.a lib/libpcn_mpi.a lib/libpcn_io.a lib/cmake/pcn/pcnConfig.cmake \
         lib/pkgconfig/pcn.pc; do
  [ -e "$prefix/$f" ] || { echo "install_test: $f not installed"; exit 1; }
done
# No private header travels: only the three public ones are installed.
extra=$(cd "$prefix/include" && ls | grep -v -x -e pcn.h -e pcn_dist.h -e pcn_io.h || true)
[ -z "$extra" ] || { echo "install_test: private headers installed: $extra"; exit 1; }
# An MPI singleton: LeakSanitizer crashes in the helper daemon Open MPI forks for it (as in
# tests/program_runs.sh); leak checks stay on for the consumers below.
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$prefix/bin/pcn_dist" --version > "$work/version.txt" 2>&1 ||
  { echo "install_test: the installed pcn_dist does not run"; cat "$work/version.txt"; exit 1; }

echo "== through CMake: find_package(pcn CONFIG), pcn::io"
cmake -S "$src/tests/install" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" > "$work/cmake.log" ||
  { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake" > "$work/cmake_build.log" 2>&1 || { cat "$work/cmake_build.log"; exit 1; }
"$work/cmake/consumer"

echo "== through pkg-config: pcn"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --exists pcn-io || { echo "install_test: pkg-config does not resolve pcn-io"; exit 1; }
# shellcheck disable=SC2046
cc -std=c11 $flags "$src/tests/install/consumer.c" -o "$work/consumer_pc" \
  $(pkg-config --cflags --libs pcn)
"$work/consumer_pc"
