#!/usr/bin/env bash
# How pcn_dist finds, chooses and refuses a GPU, and says why, on a machine without one:
#   stub_cuda   with the toolkit's stub driver standing in for libcuda.so.1 (CUDA loads and
#               fails: cudaErrorStubLibrary), --device cuda exits non-zero with one
#               message that names CUDA's error;
#   stub_auto   there, --device auto trains on the CPU and says so, once, with the reason;
#   no_driver   without a driver (skipped where this machine has one), --device cuda names
#               "no NVIDIA driver", and --device auto trains on the CPU without a word;
#   no_cublas   (root) with cuBLAS hidden in a private mount namespace, --device cuda names the
#               library the CUDA module lacks (the loader's message reaches the user);
#   cpu_maps    --device cpu under the stub driver opens none of libcuda, libcudart,
#               libcublas, libnccl or the module libpcn_cuda (strace -f, every openat);
#   gate        the GPU tests (test_gpu, test_gpu_dist, program_runs.sh gpu) fail, with the
#               reason, where an NVIDIA device node exists but CUDA cannot use it (a fake
#               node through PCN_TEST_NVIDIA_NODE), and exit 77 (not run) where none does.
#               Skipped on a machine with a usable GPU.
# Usage: gpu_select.sh CASE   (PCN_DIST, PCN_TESTTOOL, PCN_TESTGPU, PCN_TESTGPUDIST,
#                             PCN_STUB_DRIVER, MPIEXEC, SCRATCH from CTest)
set -u
case_name=$1
here=$(cd "$(dirname "$0")" && pwd)
scratch=$SCRATCH/$case_name
rm -rf "$scratch" && mkdir -p "$scratch/stub" && cd "$scratch" || exit 1
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" # singletons fork Open MPI's helper

fail() { echo "FAIL: $*"; exit 1; }
# The stub driver as libcuda.so.1, first on the loader's path.
ln -s "${PCN_STUB_DRIVER:-/nonexistent}" stub/libcuda.so.1
stub() { LD_LIBRARY_PATH=$scratch/stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"; }
needs_stub() { [ -f "${PCN_STUB_DRIVER:-}" ] || { echo "no stub driver: not run"; exit 77; }; }
"$PCN_TESTTOOL" mkdata data.h5 40 10 6 3 7 > /dev/null || fail "mkdata"
run=(train --data data.h5 --dims 6,5 --output-dim 3 --epochs 1 --batch-size 20 --t-infer 3
     --t-learn 2 --t-infer-test 3 --progress 0)
# pcn_dist's own lines on stderr (Open MPI may add its framed banners)
own_lines() { grep -c '^pcn_dist:' "$1"; }

case $case_name in
stub_cuda)
  needs_stub
  stub timeout 60 "$PCN_DIST" "${run[@]}" --device cuda > out.log 2> err.log
  rc=$?; cat err.log
  [ $rc -ne 0 ] || fail "--device cuda under the stub driver exited 0"
  [ "$(own_lines err.log)" -eq 1 ] || fail "want one pcn_dist: line: $(cat err.log)"
  grep -q '^pcn_dist: .*sees no CUDA device.*cudaErrorStubLibrary' err.log ||
    fail "the message does not name CUDA's error"
  ;;
stub_auto)
  needs_stub
  stub timeout 60 "$PCN_DIST" "${run[@]}" --device auto > out.log 2> err.log ||
    fail "--device auto under the stub driver: $(cat err.log)"
  cat err.log
  [ "$(grep -c 'device auto' err.log)" -eq 1 ] || fail "want one note: $(cat err.log)"
  grep -q '^pcn_dist: --device auto: using the CPU: .*cudaErrorStubLibrary' err.log ||
    fail "no note that says why the CPU is used"
  grep -q '^test: accuracy' out.log || fail "did not train and test: $(cat out.log)"
  ! grep -q '^device:' out.log || fail "not on the CPU: $(cat out.log)" # a GPU run names it
  ;;
no_driver)
  if ldconfig -p 2> /dev/null | grep -q 'libcuda\.so\.1' || ls /dev/nvidia* > /dev/null 2>&1; then
    echo "this machine has an NVIDIA driver or device node: not run"; exit 77
  fi
  timeout 60 "$PCN_DIST" "${run[@]}" --device cuda > out.log 2> err.log
  rc=$?; cat err.log
  [ $rc -ne 0 ] || fail "--device cuda without a driver exited 0"
  [ "$(own_lines err.log)" -eq 1 ] || fail "want one pcn_dist: line"
  grep -q '^pcn_dist: .*no NVIDIA driver' err.log || fail "the message does not say why"
  timeout 60 "$PCN_DIST" "${run[@]}" > out.log 2> err.log || fail "auto: $(cat err.log)"
  [ ! -s err.log ] || fail "--device auto said something with no GPU to expect: $(cat err.log)"
  ;;
cpu_maps)
  needs_stub
  command -v strace > /dev/null || { echo "no strace: not run"; exit 77; }
  stub timeout 120 strace -f -qq -e trace=openat -o trace.log "$PCN_DIST" "${run[@]}" \
    --device cpu > out.log 2> err.log || fail "--device cpu: $(cat err.log)"
  grep -q 'data\.h5' trace.log || fail "strace saw nothing (the trace is empty?)"
  if grep -E 'lib(cuda|cudart|cublas|cublasLt|nccl|pcn_cuda)\.so' trace.log; then
    fail "--device cpu opened a CUDA library (above)"
  fi
  ;;
no_cublas)
  # cuBLAS hidden in a private mount namespace (root): the module does not load, and the
  # message names the library it lacks.
  needs_stub
  [ "$(id -u)" = 0 ] && command -v unshare > /dev/null ||
    { echo "needs root and unshare: not run"; exit 77; }
  module=$(dirname "$PCN_DIST")/libpcn_cuda.so
  dir=$(ldd "$module" 2> /dev/null | awk '/libcublas\.so/ {print $3; exit}')
  [ -n "$dir" ] || { echo "no cuBLAS found for $module: not run"; exit 77; }
  dir=$(dirname "$dir")
  rm stub/libcuda.so.1 && cp "$PCN_STUB_DRIVER" stub/libcuda.so.1 # the stub may live in $dir
  stub unshare -m bash -c "mount -t tmpfs none '$dir' && timeout 60 '$PCN_DIST' \
    ${run[*]} --device cuda" > out.log 2> err.log
  rc=$?; cat err.log
  [ $rc -ne 0 ] || fail "--device cuda without cuBLAS exited 0"
  [ "$(own_lines err.log)" -eq 1 ] || fail "want one pcn_dist: line"
  grep -q '^pcn_dist: .*does not load: .*libcublas.*\.so.*: cannot open shared object' err.log ||
    fail "the message does not name the missing library"
  ;;
gate)
  if [ "$("$PCN_TESTGPU" count)" -gt 0 ] 2> /dev/null; then
    echo "a usable GPU: not run"; exit 77
  fi
  node=$scratch/nvidia0 && : > "$node"
  for absent in 1 0; do
    if [ $absent = 1 ]; then export PCN_TEST_NVIDIA_NODE=$scratch/none want=77
    else export PCN_TEST_NVIDIA_NODE=$node want=1; fi
    "$PCN_TESTGPU" ops > t.log 2>&1; rc=$?
    [ $rc -eq $want ] || fail "test_gpu ops exited $rc, want $want: $(cat t.log)"
    timeout 60 "$MPIEXEC" -np 1 --oversubscribe -x PCN_TEST_NVIDIA_NODE "$PCN_TESTGPUDIST" mpi \
      > d.log 2>&1; rc=$?
    [ $rc -eq $want ] || fail "test_gpu_dist exited $rc, want $want: $(cat d.log)"
    SCRATCH=$scratch bash "$here/program_runs.sh" gpu > p.log 2>&1; rc=$?
    [ $rc -eq $want ] || fail "program_runs.sh gpu exited $rc, want $want: $(cat p.log)"
    if [ $want = 1 ]; then
      for f in t.log d.log p.log; do
        grep -q "NVIDIA device node ($node) but CUDA cannot use it: " $f ||
          fail "$f does not give the reason: $(cat $f)"
      done
    fi
  done
  cat t.log
  ;;
*) fail "unknown case $case_name" ;;
esac
echo "gpu_select $case_name: ok"
