#!/usr/bin/env bash
# CMakePresets.json: every configure preset configures this source tree (into a scratch
# folder, -B overriding the preset's build/<name>) with the cache values it promises; the
# cuda preset either builds the CUDA backend or stops with a message naming
# PCN_REQUIRE_CUDA; every build and test preset names an existing configure preset (cmake
# checks that when it lists them).
#   presets_test.sh SOURCE_DIR SCRATCH
set -euo pipefail
src=$1
scratch=$2
rm -rf "$scratch" && mkdir -p "$scratch"
fail() { echo "FAIL: $*" >&2; exit 1; }

cache_value() { # preset key
  sed -n "s/^$2:[A-Z]*=//p" "$scratch/$1/CMakeCache.txt"
}

expect() { # preset key value
  local got
  got=$(cache_value "$1" "$2")
  [ "$got" = "$3" ] || fail "preset $1: $2 is '$got', expected '$3'"
}

listed=$(cd "$src" && cmake --list-presets=all) || fail "cmake --list-presets=all failed"
for p in release debug asan cpu cuda; do
  for kind in configure build test; do
    echo "$listed" | awk -v k="$kind" '/presets:/{s=$2} s==k' | grep -q "\"$p\"" ||
      fail "no $kind preset '$p'"
  done
done

configure() { # preset
  (cd "$src" && cmake --preset "$1" -B "$scratch/$1" > "$scratch/$1.log" 2>&1)
}
for p in release debug asan cpu; do
  configure "$p" || { cat "$scratch/$p.log"; fail "preset $p does not configure"; }
  expect "$p" PCN_BUILD_TESTS ON
done
expect release CMAKE_BUILD_TYPE Release
expect release PCN_SANITIZE OFF
expect debug CMAKE_BUILD_TYPE Debug
expect asan PCN_SANITIZE ON
expect cpu PCN_CUDA OFF
grep -q "CUDA backend: off" "$scratch/cpu.log" || fail "preset cpu did not turn CUDA off"

if configure cuda; then
  grep -q "CUDA backend: on" "$scratch/cuda.log" || fail "preset cuda configured without CUDA"
  echo "cuda preset: the CUDA backend is on"
else
  grep -q "PCN_REQUIRE_CUDA" "$scratch/cuda.log" || { cat "$scratch/cuda.log"; fail "preset cuda failed for another reason"; }
  echo "cuda preset: refused without a CUDA compiler, naming PCN_REQUIRE_CUDA"
fi
echo "presets: all configure as promised"
