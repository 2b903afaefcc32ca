#!/usr/bin/env bash
# Issue 16's must-show point: NumPy and HDF5 files that pcn_dist did not write (written by
# NumPy and h5py themselves: tests/convert/make_fixtures.py) convert and train.
#   npz             plain.npz (np.savez, entries stored), Keras's default array names
#   npz_compressed  compressed.npz (np.savez_compressed, deflated), uint8 [N, 8, 8] images,
#                   its own array names given with --train-x etc.
#   npy             four .npy files: int16 x [N, 4, 8], int64 y [N, 1]
#   h5              plain.h5 (h5py): /features/train ... (gzip-compressed float32) and int64
#                   /labels/train ...
# Each case: pcn_convert exits 0 and writes OUT; `pcn_dist info` shows the pcn-dataset with 4
# classes and the expected shapes; x has the documented dtype and scale (h5dump); then
# pcn_dist trains on it under mpirun -np 2 and `pcn_dist test --json` reports a test
# accuracy of at least 0.6 on the 64 test rows (chance is 0.25), which wrong values,
# misaligned rows or shuffled labels could not reach.
# Usage: train_fixtures.sh CASE   (PCN_DIST, PCN_CONVERT, MPIEXEC, SCRATCH, FIXTURES from CTest)
set -u
case_name=$1
for v in PCN_DIST PCN_CONVERT MPIEXEC SCRATCH FIXTURES; do
  [ -n "${!v:-}" ] || { echo "FAIL: $v is not set (run through ctest)"; exit 1; }
done
scratch=$SCRATCH/$case_name
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fail() { echo "FAIL ($case_name): $*"; exit 1; }
f=$FIXTURES
d=32 dtype=H5T_IEEE_F32LE scale=1
case $case_name in
npz) args=(npz --input "$f/plain.npz") ;;
npz_compressed)
  args=(npz --input "$f/compressed.npz" --train-x images_train --train-y labels_train
        --test-x images_test --test-y labels_test)
  d=64 dtype=H5T_STD_U8LE scale=0.00392157 ;;
npy)
  args=(npz --train-x "$f/npy/x_train.npy" --train-y "$f/npy/y_train.npy"
        --test-x "$f/npy/x_test.npy" --test-y "$f/npy/y_test.npy") ;;
h5)
  args=(h5 --input "$f/plain.h5" --train-x /features/train --train-y /labels/train
        --test-x /features/test --test-y /labels/test) ;;
*) fail "unknown case" ;;
esac

"$PCN_CONVERT" "${args[@]}" -o data.h5 > convert.log 2>&1 || fail "pcn_convert: $(cat convert.log)"
grep -q "wrote data.h5" convert.log || fail "pcn_convert said: $(cat convert.log)"

ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" "$PCN_DIST" info data.h5 > info.log 2>&1 ||
  fail "pcn_dist info: $(cat info.log)"
for want in "pcn-dataset" "4 classes" "train x \[256, $d\]  y \[256\]" "test  x \[64, $d\]  y \[64\]"; do
  grep -q "$want" info.log || fail "pcn_dist info lacks '$want': $(cat info.log)"
done
if command -v h5dump > /dev/null; then
  h5dump -A -d /train/x data.h5 > dump.log 2>&1 || fail "h5dump: $(cat dump.log)"
  grep -q "DATATYPE  $dtype" dump.log || fail "/train/x is not $dtype: $(cat dump.log)"
  grep -q "(0): $scale" dump.log || fail "/train/x@scale is not $scale: $(cat dump.log)"
else
  echo "note: no h5dump, dtype check skipped"
fi

mpi() { timeout 120 "$MPIEXEC" -np 2 --oversubscribe "$PCN_DIST" "$@"; }
mpi train --data data.h5 --dims "$d,16,4" --activation relu --epochs 5 --batch-size 32 \
  --t-infer 20 --t-learn 20 --t-infer-test 100 --lr-infer 0.1 --lr-learn 0.02 \
  --train-accuracy-every 0 --seed 1 --progress 0 --checkpoint ck.h5 > train.log 2>&1 ||
  fail "train: $(cat train.log)"
mpi test --data data.h5 --checkpoint ck.h5 --json > test.json 2> test.err ||
  fail "test: $(cat test.err test.json)"
acc=$(sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p' test.json | head -1)
samples=$(sed -n 's/.*"samples":\([0-9]*\).*/\1/p' test.json | head -1)
[ -n "$acc" ] && [ "$samples" = 64 ] || fail "no accuracy over 64 samples in: $(cat test.json)"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.6) }' ||
  fail "test accuracy $acc is below 0.6 (chance 0.25): $(cat test.json)"
echo "PASS ($case_name): converted ($(head -c 200 convert.log | tr '\n' ' ')), test accuracy $acc over $samples rows"
