#!/usr/bin/env bash
# The GPU machine check: run THERE (a lent GPU machine with glibc, the NVIDIA driver, the CUDA
# toolkit, Python with PyTorch, cmake; no apt, no network, maybe no MPI), from the repository
# root, with the bundle made HERE by jobs/gpu_bundle.sh (.gpubundle/) and the pcn-torch wheel
# (.whl/) carried along. Steps, each with its own timeout inside one overall budget, each
# recorded ok / failed / skipped with its seconds, the script going on after a failure:
#   host        OS, glibc, CPUs, memory, python, cmake/ctest, nvcc
#   nvidia_smi  the GPU and the driver
#   unpack      the bundle into PCN_GPU_BUNDLE_DIR; then its env.sh is sourced (Open MPI and
#               PMIx relocated with OPAL_PREFIX / PMIX_*, the device's CUDA library folders:
#               /usr/local/cuda/lib64 and every pip nvidia/*/lib)
#   relocate    the CTest files: this machine's build/source folders and mpiexec -> the bundle's
#   libs        ldd of every executable under the bundle's library path: no "not found", where
#               cudart/cuBLAS/NCCL/libcuda resolved, glibc new enough
#   mpi_smoke   mpirun -np 2 uname -n, pcn_dist --help, mpirun -np 2 test_dist (CPU)
#   ctest_gpu   ctest -L gpu --output-on-failure (tests labelled gpu; skipped if there are none):
#               test_gpu (ops), test_gpu_train(_nographs), test_gpu_disc (the discriminative
#               mode's ops and runs), gpu_dist_nccl_np1 (NCCL at 1 rank), gpu_dist_mpi_np2 (MPI
#               staging through the host at 2 ranks), program_gpu (a GPU run stopped and resumed
#               bitwise, nccl = mpi, fp16); the list is printed first, and one of those three
#               missing fails the step. On a GPU machine (/dev/nvidia[0-9]* or nvidia-smi -L) a
#               test that skips itself (exit 77, ctest's "Not Run"/***Skipped) FAILS the step,
#               the skipped tests named in the summary's note; without a GPU all skip: skipped
#   memcheck,   compute-sanitizer --tool memcheck / racecheck --error-exitcode 1 on `test_gpu
#   racecheck   quick` (every op of both modes at small sizes); skipped without compute-sanitizer
#               (PATH, then nvcc's folder, /usr/local/cuda*/bin, .../compute-sanitizer/)
#   pip_whl     pcn-torch from .whl/ into GPU_CHECK_SITE (pip --target, or unzipped if pip
#               fails: a pure-Python wheel), then PYTHONPATH points there
#   bench_*     the engineer's benchmark hook (the marked section below)
#   ctest_cpu   a few CPU/MPI/HDF5 tests from the bundle, if time is left
# Everything is teed to $OUT/gpu_check.log, ctest's logs are copied to $OUT, and a summary
# table ends the log ($OUT/gpu_check_summary.txt). Exit status: 0 when no step failed.
#
# Usage:  bash jobs/gpu_check.sh
# Settings (environment, all optional):
#   OUT                  where logs go (default ./gpu-check-out)
#   GPU_CHECK_BUDGET_S   seconds for the whole script (default 540, the issue's 9 minutes; the
#                        device's 10-minute command limit leaves room); steps that would start
#                        with under 20 s left are skipped, timeouts shrink to fit
#   PCN_GPU_BUNDLE_TAR   the bundle (default .gpubundle/pcn-gpu-bundle.tar.xz)
#   PCN_GPU_BUNDLE_DIR   where it is unpacked (default /tmp/pcn-gpu-bundle)
#   GPU_CHECK_WHL_DIR    wheels to install (default .whl); GPU_CHECK_SITE (default /tmp/site)
#   GPU_CHECK_CPU_TESTS  0 turns the ctest_cpu step off
#   GPU_CHECK_CTEST_TIMEOUT  the ctest_gpu step's timeout (default 300)
#   GPU_CHECK_SANITIZER_TIMEOUT  each compute-sanitizer step's timeout (default 90)
set -u
repo=$(pwd -P)
OUT=${OUT:-$repo/gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
export OUT
log=$OUT/gpu_check.log
: > "$log"
exec > >(tee -a "$log") 2>&1
tee_pid=$!

budget=${GPU_CHECK_BUDGET_S:-540}
t_start=$(date +%s)
export PCN_GPU_CHECK_ID="$$-$t_start"   # marks every process this script starts (see strays)
bundle_tar=${PCN_GPU_BUNDLE_TAR:-$repo/.gpubundle/pcn-gpu-bundle.tar.xz}
bundle_dir=${PCN_GPU_BUNDLE_DIR:-/tmp/pcn-gpu-bundle}
whl_dir=${GPU_CHECK_WHL_DIR:-$repo/.whl}
site_dir=${GPU_CHECK_SITE:-/tmp/site}
export bundle_tar bundle_dir whl_dir site_dir repo
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}

# ---- steps -------------------------------------------------------------------------------------
names=(); states=(); secs=(); notes=()
record() { names+=("$1"); states+=("$2"); secs+=("$3"); notes+=("${4:-}"); }
elapsed() { echo $(( $(date +%s) - t_start )); }

# Kill what this script started and left behind (a rank orphaned by a timeout keeps the
# output pipe open): every process whose environment holds our PCN_GPU_CHECK_ID, except this
# shell and tee. Bash builtins only, so the scan does not find itself.
strays() {
  local p pid e
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] || [ "$pid" = "$tee_pid" ] && continue
    [ -r "$p/environ" ] || continue
    while IFS= read -r -d '' e; do
      if [ "$e" = "PCN_GPU_CHECK_ID=$PCN_GPU_CHECK_ID" ]; then
        echo "gpu_check: killing leftover process $pid: $(tr '\0' ' ' < "$p/cmdline" 2> /dev/null | cut -c1-120)"
        kill -9 "$pid" 2> /dev/null
        break
      fi
    done 2> /dev/null < "$p/environ"
  done 2> /dev/null
}

# step NAME TIMEOUT_S 'bash code': runs the code in a fresh bash (exported variables and
# functions only) with stdin from /dev/null, under `timeout`; exit 77 means skipped. What the
# code writes to "$STEP_NOTE" is added to the step's note in the summary (one line).
export STEP_NOTE=$OUT/.step_note
step() {
  local name=$1 t=$2 code=$3 left rc t0 t1 dt state note="" extra
  left=$(( budget - $(elapsed) ))
  if [ "$left" -lt 20 ]; then
    echo; echo "== [$name] skipped: ${left}s of the ${budget}s budget left"
    record "$name" skipped 0 "no time left"; return 1
  fi
  [ "$t" -gt $((left - 10)) ] && t=$((left - 10))
  echo; echo "== [$name] $(date -u +%H:%M:%S) timeout ${t}s"
  rm -f "$STEP_NOTE"
  t0=$(date +%s.%N)
  timeout -k 10 "$t" bash -o pipefail -c "$code" < /dev/null
  rc=$?
  t1=$(date +%s.%N)
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  case $rc in
    0) state=ok ;;
    77) state=skipped; note="skipped by the step" ;;
    124|137) state=failed; note="timed out after ${t}s"; strays ;;
    *) state=failed; note="exit $rc" ;;
  esac
  extra=""
  [ -f "$STEP_NOTE" ] && extra=$(tr '\n' ' ' < "$STEP_NOTE" | sed 's/ *$//') && rm -f "$STEP_NOTE"
  if [ -n "$extra" ]; then
    if [ "$rc" = 77 ] || [ -z "$note" ]; then note=$extra; else note="$note: $extra"; fi
  fi
  echo "== [$name] $state ($dt s${note:+, $note})"
  record "$name" "$state" "$dt" "$note"
  [ "$state" = ok ]
}
skip() { echo; echo "== [$1] skipped: $2"; record "$1" skipped 0 "$2"; }

# has_opt CMD... OPT: does `CMD... --help` mention OPT (for steps that need a feature not built
# yet); e.g. has_opt pcn_bench --device, has_opt python3 script.py --device
has_opt() { local opt=${!#} h; h=$("${@:1:$#-1}" --help 2>&1); [[ $h == *"$opt"* ]]; }
export -f has_opt

# ctest: the device's, or the one in a pip cmake package.
find_ctest() {
  command -v ctest && return
  python3 -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "ctest"))' 2> /dev/null
}

# compute-sanitizer: on PATH, else beside nvcc, else in a CUDA toolkit's folder.
find_sanitizer() {
  local c d
  command -v compute-sanitizer && return
  d=$(command -v nvcc 2> /dev/null) && d=${d%/*}
  for c in ${d:+"$d/compute-sanitizer" "$d/../compute-sanitizer/compute-sanitizer"} \
           /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
           /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda-*/compute-sanitizer/compute-sanitizer; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  return 1
}

# A GPU machine: a device node or a GPU that nvidia-smi lists. There a GPU test that skips
# itself (exit 77) is a failure, not a skip.
have_gpu=0
if ls /dev/nvidia[0-9]* > /dev/null 2>&1 || nvidia-smi -L 2> /dev/null | grep -q "^GPU"; then have_gpu=1; fi
export have_gpu

echo "gpu_check.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ), repo $repo, OUT $OUT, budget ${budget}s, GPU machine: $([ $have_gpu = 1 ] && echo yes || echo no)"

# ---- host and GPU --------------------------------------------------------------------------------
step host 30 '
  uname -a
  grep -E "^(PRETTY_NAME|VERSION_ID)=" /etc/os-release 2> /dev/null
  echo "glibc: $(ldd --version 2>&1 | head -1)"
  echo "cpus: $(nproc), memory: $(free -g 2> /dev/null | awk "/^Mem:/ {print \$2 \" GiB\"}"), /tmp: $(df -h /tmp | awk "NR == 2 {print \$4 \" free\"}"), /dev/shm: $(df -h /dev/shm 2> /dev/null | awk "NR == 2 {print \$2}")"
  for t in python3 cmake ctest nvcc nvidia-smi mpirun xz; do printf "%-11s %s\n" "$t" "$(command -v $t || echo -)"; done
  python3 --version
  cmake --version 2> /dev/null | head -1
  nvcc --version 2> /dev/null | tail -2
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  ls -d /usr/local/cuda* 2> /dev/null
'
if command -v nvidia-smi > /dev/null; then
  step nvidia_smi 45 '
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv'
else
  skip nvidia_smi "no nvidia-smi on PATH"
fi

# ---- the bundle ----------------------------------------------------------------------------------
have_bundle=0
if [ -f "$bundle_tar" ]; then
  step unpack 180 '
    set -e
    rm -rf "$bundle_dir.part" && mkdir -p "$bundle_dir.part"
    if command -v xz > /dev/null; then
      tar -C "$bundle_dir.part" -xJf "$bundle_tar"
    else   # no xz binary: Python'"'"'s tarfile reads .tar.xz itself
      python3 -c "import sys, tarfile; t = tarfile.open(sys.argv[1]); kw = {\"filter\": \"tar\"} if hasattr(tarfile, \"tar_filter\") else {}; t.extractall(sys.argv[2], **kw)" "$bundle_tar" "$bundle_dir.part"
    fi
    rm -rf "$bundle_dir" && mv "$bundle_dir.part/pcn-gpu-bundle" "$bundle_dir" && rm -rf "$bundle_dir.part"
    echo "unpacked $(du -sh "$bundle_dir" | cut -f1) into $bundle_dir"
    sed -n "1,/^== bundled libraries/p" "$bundle_dir/MANIFEST.txt"' && have_bundle=1
elif [ -f "$bundle_dir/env.sh" ]; then
  skip unpack "no $bundle_tar; using the bundle already in $bundle_dir"
  have_bundle=1
else
  skip unpack "no bundle: $bundle_tar is missing (make it with jobs/gpu_bundle.sh and carry .gpubundle)"
fi

if [ $have_bundle = 1 ]; then
  # A machine with its own MPI may preset Open MPI / PMIx variables (an OPAL_PREFIX, a pml) that
  # would steer the bundle's Open MPI wrong: shown and dropped (GPU_CHECK_KEEP_MPI_ENV=1 keeps).
  preset=$(env | grep -E '^(OMPI_|OPAL_|PMIX_|PRTE_|ORTE_)' | grep -vE '^OMPI_ALLOW_RUN_AS_ROOT' | cut -d= -f1)
  if [ -n "$preset" ] && [ "${GPU_CHECK_KEEP_MPI_ENV:-0}" != 1 ]; then
    echo; echo "dropping this machine's MPI settings: $(env | grep -E "^($(echo $preset | tr ' ' '|'))=" | tr '\n' ' ')"
    for v in $preset; do unset "$v"; done
  fi
  export PCN_BUNDLE=$bundle_dir
  # shellcheck disable=SC1091
  . "$PCN_BUNDLE/env.sh"
  echo
  echo "bundle environment: OPAL_PREFIX=$OPAL_PREFIX"
  echo "  CUDA library folders found: ${PCN_BUNDLE_CUDA_DIRS:-none}"
  echo "  library path of bundle commands: $PCN_BUNDLE_LD_LIBRARY_PATH"
  step relocate 30 '"$PCN_BUNDLE/relocate.sh"'
  step libs 90 '
    fail=0
    need=$(sed -n "s/^glibc >= \([0-9.]*\).*/\1/p" "$PCN_BUNDLE/MANIFEST.txt")
    have=$(ldd --version 2>&1 | head -1 | grep -oE "[0-9]+\.[0-9]+$")
    if [ -n "$need" ] && [ -n "$have" ] && [ "$(printf "%s\n%s\n" "$need" "$have" | sort -V | head -1)" != "$need" ]; then
      echo "glibc $have here, the bundle needs $need"; fail=1
    else echo "glibc $have here, the bundle needs ${need:-?}: fine"; fi
    outside=""
    for f in "$PCN_BUNDLE"/build/* "$PCN_BUNDLE"/build/tests/* "$PCN_BUNDLE"/usr/bin/orterun; do
      [ -f "$f" ] && [ -x "$f" ] && head -c 4 "$f" | grep -q ELF || continue
      out=$(LD_LIBRARY_PATH="$PCN_BUNDLE_LD_LIBRARY_PATH" ldd "$f" 2>&1)
      if [ "${f##*/}" = pcn_dist ]; then echo "-- ldd pcn_dist"; echo "$out"; fi
      missing=$(echo "$out" | grep "not found" || true)
      if [ -n "$missing" ]; then echo "-- ${f#$PCN_BUNDLE/}: NOT FOUND:"; echo "$missing"; fail=1; fi
      outside="$outside
$(echo "$out" | grep "=> /" | grep -v "=> $PCN_BUNDLE/" | awk "{print \$1, \$2, \$3}")"
    done
    echo "-- libraries the executables take from outside the bundle (should be glibc, libstdc++, libgcc_s, CUDA):"
    echo "$outside" | sort -u | grep .
    if command -v cuobjdump > /dev/null; then
      echo "-- CUDA device code in the CUDA module:"; cuobjdump --list-elf --list-ptx "$PCN_BUNDLE/build/libpcn_cuda.so" 2>&1 | head -10
    fi
    exit $fail'
  step mpi_smoke 90 '
    set -e
    mpirun -np 2 uname -n
    pcn_dist --help > "$OUT/pcn_dist_help.txt" 2>&1 || { cat "$OUT/pcn_dist_help.txt"; exit 1; }
    head -3 "$OUT/pcn_dist_help.txt"
    mpirun -np 2 "$PCN_BUNDLE/build/tests/test_dist"'

  ctest=$(find_ctest)
  export ctest
  if [ -z "$ctest" ]; then
    skip ctest_gpu "no ctest on this machine (nor a pip cmake package)"
  else
    step ctest_gpu "${GPU_CHECK_CTEST_TIMEOUT:-300}" '
      cd "$PCN_BUNDLE/build"
      n=$("$ctest" -N -L gpu | sed -n "s/^Total Tests: //p")
      if [ "${n:-0}" -eq 0 ]; then echo "no tests labelled gpu in this build"; exit 77; fi
      "$ctest" -N -L gpu | grep "Test *#"
      "$ctest" -N -L gpu | grep "test_gpu_disc\$" > /dev/null || echo "note: this build has no test_gpu_disc (the bundle predates it?)"
      list=$("$ctest" -N -L gpu); missing=""   # (no grep -q on a pipe: SIGPIPE under pipefail)
      for t in gpu_dist_nccl_np1 gpu_dist_mpi_np2 program_gpu; do
        echo "$list" | grep " $t\$" > /dev/null || missing="$missing $t"
      done
      "$ctest" -L gpu --output-on-failure --timeout 240 2>&1 | tee "$OUT/ctest_gpu.txt"; rc=${PIPESTATUS[0]}
      mkdir -p "$OUT/ctest_gpu" && cp Testing/Temporary/LastTest*.log "$OUT/ctest_gpu/" 2> /dev/null
      # Skipped tests (exit 77 = SKIP_RETURN_CODE): "Test #3: name ....***Skipped" lines and the
      # "did not run" list ("3 - name (Skipped)"); ctest itself exits 0 for them.
      skipped=$( { sed -n "s/.*Test *#[0-9]*: *\([^ ]*\) .*\*\*\*Skipped.*/\1/p" "$OUT/ctest_gpu.txt"
                   sed -n "s/^[[:space:]]*[0-9]* - \([^ ]*\) (\(Skipped\|Not Run\|Disabled\)).*/\1/p" "$OUT/ctest_gpu.txt"; } | sort -u | tr "\n" " " | sed "s/ *\$//")
      ns=$(echo $skipped | wc -w)
      note=""
      [ -n "$missing" ] && { echo "MISSING from the gpu tests:$missing"; note="missing:$missing;"; rc=1; }
      if [ "$ns" -gt 0 ]; then
        if [ "$have_gpu" = 1 ]; then
          echo "FAILED: $ns gpu test(s) skipped themselves (exit 77) on a GPU machine: $skipped"
          echo "$note $ns skipped (exit 77) on a GPU machine: $skipped" > "$STEP_NOTE"; exit 1
        elif [ "$rc" = 0 ] && [ "$ns" -ge "$n" ]; then
          echo "all $n gpu tests skipped themselves (exit 77): no GPU here"
          echo "no GPU: all $n gpu tests skipped" > "$STEP_NOTE"; exit 77
        fi
        note="$note $ns skipped: $skipped"
      fi
      [ -n "$note" ] && echo "$note" > "$STEP_NOTE"
      exit $rc'
    # compute-sanitizer on the ops at small sizes (test_gpu quick), the real binary with the
    # bundle library path (a wrapper script would put bash under the sanitizer).
    san=$(find_sanitizer)
    export san
    for tool in memcheck racecheck; do
      if [ -z "$san" ]; then skip $tool "no compute-sanitizer (PATH, nvcc's folder, /usr/local/cuda*)"; continue; fi
      if [ "$have_gpu" = 0 ]; then skip $tool "no GPU"; continue; fi
      step $tool "${GPU_CHECK_SANITIZER_TIMEOUT:-90}" '
        echo "$san"; "$san" --version | tail -1
        LD_LIBRARY_PATH="$PCN_BUNDLE_LD_LIBRARY_PATH" "$san" --tool '$tool' --error-exitcode 1 \
          --print-limit 50 "$PCN_BUNDLE/build/tests/test_gpu" quick 2>&1 | tee "$OUT/'$tool'.txt" | tail -40
        rc=${PIPESTATUS[0]}
        if [ "$rc" = 77 ] && [ "$have_gpu" = 1 ]; then echo "test_gpu quick found no usable GPU" > "$STEP_NOTE"; exit 1; fi
        exit $rc'
    done

  fi
else
  for s in relocate libs mpi_smoke ctest_gpu memcheck racecheck; do skip $s "no bundle"; done
fi

# ---- pcn-torch for the side-by-side benchmark ------------------------------------------------------
if ls "$whl_dir"/*.whl > /dev/null 2>&1; then
  step pip_whl 120 '
    set -e
    if ! python3 -m pip install -q --no-index --no-deps --upgrade --target "$site_dir" "$whl_dir"/*.whl; then
      echo "pip failed; unzipping the wheels into $site_dir instead"
      for w in "$whl_dir"/*.whl; do python3 -m zipfile -e "$w" "$site_dir"; done
    fi
    PYTHONPATH="$site_dir${PYTHONPATH:+:$PYTHONPATH}" python3 -c "
import pcn_torch, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(\"pcn_torch\", pcn_torch.__version__, \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"gpu\", gpu)"' \
    && export PYTHONPATH="$site_dir${PYTHONPATH:+:$PYTHONPATH}"
else
  skip pip_whl "no wheels in $whl_dir (python3 -m pip download --no-deps pcn-torch==1.1.0 -d .whl)"
fi

# =====================================================================================================
# ENGINEER: the benchmark hook. Edit bench_hook; each `step NAME TIMEOUT_S 'bash code'` is one row
# of the summary (exit 0 ok, 77 skipped, anything else failed), run in a fresh bash with a timeout
# cut to the budget left. Available there: the bundle's wrappers first on PATH (pcn_dist, pcn_bench,
# pcn_convert, mpirun, ... each with the bundle's libraries and the device's CUDA libraries),
# $PCN_BUNDLE/build (the real binaries), $PCN_BUNDLE/src (the sources they were built from),
# $PCN_BUNDLE/wrap (give it as --build to compare_pcn_torch.py), $OUT (comes back with the log),
# PYTHONPATH with pcn-torch when pip_whl passed, `has_opt CMD... OPT` (does `CMD... --help` mention
# OPT), NCCL_DEBUG=WARN unless set.
# Output goes to the log; write files for later reading under $OUT.
# =====================================================================================================
bench_hook() {
  # The issue's side-by-side: pcn-torch's CIFAR-10 config on synthetic data, float32 on both
  # sides (TF32 off) and fp16 inference (pcn-torch's autocast default); then the quickstart
  # config; then pcn_dist alone with CUDA graphs off, for their effect.
  local py='$PCN_BUNDLE/src/jobs/bench/compare_pcn_torch.py'
  step bench_cifar_fp32 200 "python3 -c 'import pcn_torch' || exit 77
    python3 $py --device cuda --config cifar --batches 4 --build \$PCN_BUNDLE/wrap --precision fp32"
  step bench_cifar_fp16 150 "python3 -c 'import pcn_torch' || exit 77
    python3 $py --device cuda --config cifar --batches 4 --build \$PCN_BUNDLE/wrap --precision fp16"
  step bench_fmnist_fp32 120 "python3 -c 'import pcn_torch' || exit 77
    python3 $py --device cuda --config fmnist --batches 30 --train-accuracy --build \$PCN_BUNDLE/wrap"
  step bench_fmnist_nographs 120 "python3 -c 'import pcn_torch' || exit 77
    PCN_CUDA_GRAPHS=0 python3 $py --device cuda --config fmnist --batches 30 --train-accuracy --build \$PCN_BUNDLE/wrap"
}
# ===================================================================================== end of hook

if [ $have_bundle = 1 ]; then
  bench_hook
  if [ "${GPU_CHECK_CPU_TESTS:-1}" != 0 ] && [ -n "$ctest" ]; then
    step ctest_cpu 180 '
      cd "$PCN_BUNDLE/build"
      "$ctest" -R "^(dist_invariance_np2|io_read_np2|program_invariance|cli_good_run|golden_cls_relu)\$" \
        -j "$(nproc)" --output-on-failure --timeout 120 --no-tests=error; rc=$?
      mkdir -p "$OUT/ctest_cpu" && cp Testing/Temporary/LastTest*.log "$OUT/ctest_cpu/" 2> /dev/null
      exit $rc'
  else
    skip ctest_cpu "GPU_CHECK_CPU_TESTS=0 or no ctest"
  fi
else
  skip bench "no bundle"
fi

strays

# ---- summary -------------------------------------------------------------------------------------
failed=0
{
  echo
  echo "== gpu_check summary: $(elapsed) s of the ${budget} s budget; log $log"
  printf '%-24s %-8s %8s  %s\n' step status seconds note
  for i in "${!names[@]}"; do
    printf '%-24s %-8s %8s  %s\n' "${names[$i]}" "${states[$i]}" "${secs[$i]}" "${notes[$i]}"
    [ "${states[$i]}" = failed ] && failed=$((failed + 1))
  done
  echo "== $failed step(s) failed"
} | tee "$OUT/gpu_check_summary.txt"
for s in "${states[@]}"; do [ "$s" = failed ] && failed=1; done
exec >&- 2>&-
wait "$tee_pid" 2> /dev/null
[ "$failed" = 0 ]
