#!/usr/bin/env bash
# What this proves: pcn_dist refuses bad input cleanly under `mpirun -np 2`. For every run
# of a bad-input case, ALL of these must hold, else the case fails:
#   - every rank exits non-zero, all with the same status (each rank's status is recorded
#     by a small wrapper; mpirun is told not to kill the others when one exits), and
#     nothing hangs (timeout 60 s: a timeout is a failure, as is a rank killed by a signal
#     or by MPI_Abort);
#   - stderr holds exactly one line starting with `pcn_dist:` and it contains the case's
#     key words; besides it only Open MPI's own "---"-framed banner may appear (no HDF5
#     error stacks, no second message from another rank);
#   - the working directory is left exactly as it was: no new file (no *.tmp, no --output,
#     no rotated checkpoint), none removed, none changed; in particular the existing
#     checkpoint C.h5 stays byte-identical (also cmp'd against a copy made at set-up).
#     Fresh training runs onto C.h5 pass --overwrite (without it they would be refused
#     for the existing C.h5 before the bad input is seen; tests/cli/overwrite.sh tests
#     that): even a run allowed to replace C.h5 must leave it as it was.
# The positive control `good_run` proves the harness can pass: a small training run exits
# 0 on every rank, prints a test accuracy line and writes a checkpoint that `pcn_dist info`
# describes and `pcn_dist test` loads.
#
# Data: synthetic IDX files written here with perl (no real data set needed), converted by
# pcn_convert to a valid data set (64 train / 32 test rows of 4x4 = 16 features, 4 classes;
# and a 3x3 one for a checkpoint of other dims); the malformed variants are made from a
# copy by make_bad_h5 (tests/cli/make_bad_h5.c).
#
# Usage: bad_input.sh CASE
#   CASE: good_run missing_file not_hdf5 truncated missing_train_x wrong_rank wrong_dtype
#         x_y_length label_range nan_float dims_mismatch ckpt_shape ckpt_version
#         nonsense_options ckpt_write_fault
# Environment (set by CTest): PCN_DIST, PCN_CONVERT, MAKE_BAD_H5, MPIEXEC, SCRATCH.
set -u
case_name=${1:?usage: bad_input.sh CASE}
. "$(dirname "$0")/harness.sh"

# ---- cases -----------------------------------------------------------------------------

case $case_name in
good_run)
  runs=1
  expect_ok train train --data d.h5 --dims 16,8,4 --epochs 2 --batch-size 16 --t-infer 5 \
    --t-infer-test 10 --progress 0 --checkpoint C.h5 || exit 1
  grep -Eq '^test: accuracy [0-9]+\.[0-9]{2} % \| top-3 [0-9.]+ % \| energy [0-9.e+-]+ \| 32 samples$' \
    "$log/train.out" || { say "FAIL: no test accuracy line in: $(cat "$log/train.out")"; exit 1; }
  [ -f C.h5 ] && ! ls ./*.tmp > /dev/null 2>&1 ||
    { say "FAIL: no checkpoint C.h5, or a *.tmp left: $(ls)"; exit 1; }
  if grep -q '^pcn_dist:' "$log/train.err"; then
    say "FAIL: a successful run printed an error: $(cat "$log/train.err")"; exit 1
  fi
  expect_ok info info C.h5 || exit 1
  grep -q '^C.h5: pcn-checkpoint$' "$log/info.out" &&
    grep -q 'format_version 2, written by libpcn .* with 2 ranks' "$log/info.out" &&
    grep -q 'dims 16,8,4  output_dim 4  activation relu  mode classification' "$log/info.out" &&
    grep -q 'next batch: epoch 2, batch 0' "$log/info.out" ||
    { say "FAIL: pcn_dist info does not describe the checkpoint: $(cat "$log/info.out")"; exit 1; }
  expect_ok test test --data d.h5 --checkpoint C.h5 || exit 1
  cmp -s <(sed -n '/^test:/,$p' "$log/train.out") "$log/test.out" ||
    { say "FAIL: pcn_dist test on the checkpoint differs from the training run's test lines (the score, per class, confusion):";
      cat "$log/train.out" "$log/test.out"; exit 1; }
  say "PASS good_run: $(grep '^test:' "$log/train.out")"
  say "     info: $(tr '\n' ' ' < "$log/info.out")"
  exit 0
  ;;
missing_file)
  setup_ckpt
  bad_data_runs nope.h5 "nope.h5|no such file"
  ;;
not_hdf5)
  setup_ckpt
  printf 'train,x,y\n1,2,3\nthis is a text file, not HDF5\n' > text.h5
  bad_data_runs text.h5 "text.h5|not an HDF5 file"
  ;;
truncated)
  setup_ckpt
  size=$(stat -c %s d.h5)
  head -c $((size / 2)) d.h5 > half.h5
  bad_data_runs half.h5 "half.h5|truncated"
  ;;
missing_train_x)
  setup_ckpt
  bad_variant drop-train-x nox.h5
  bad_data_runs nox.h5 "nox.h5|/train/x|missing"
  ;;
wrong_rank)
  setup_ckpt
  bad_variant x-rank3 rank3.h5
  bad_data_runs rank3.h5 "rank3.h5|/train/x|rank 3"
  ;;
wrong_dtype)
  setup_ckpt
  bad_variant x-int16 int16.h5
  bad_data_runs int16.h5 "int16.h5|/train/x|int16"
  ;;
x_y_length)
  setup_ckpt
  bad_variant y-short short.h5
  bad_data_runs short.h5 "short.h5|/train/y|64|63"
  ;;
label_range)
  setup_ckpt
  bad_variant label-range label.h5
  bad_data_runs label.h5 "label.h5|label 4|row 5|[0, 4)"
  ;;
nan_float)
  setup_ckpt
  bad_variant x-nan nan.h5
  # memory mode names the file; stream mode finds it in the trainer's own check
  expect_fail train "nan.h5|nan|row 3|feature 2" \
    train --data nan.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite
  expect_fail train_stream "nan|row 3|feature 2" \
    train --data nan.h5 --dims 16,8,4 "${small[@]}" --data-mode stream --checkpoint C.h5 \
    --overwrite
  expect_fail predict "nan.h5|nan|row 3|feature 2" \
    predict --data nan.h5 --checkpoint C.h5 --split train --output P.h5
  ;;
dims_mismatch)
  setup_ckpt
  expect_fail train "16 features|100" \
    train --data d.h5 --dims 100,10 "${small[@]}" --checkpoint C.h5 --overwrite
  expect_fail train_stream "16 features|100" \
    train --data d.h5 --dims 100,10 "${small[@]}" --data-mode stream --checkpoint C.h5 \
    --overwrite
  ;;
ckpt_shape)
  setup_ckpt
  make_data d9.h5 3 3   # D = 9
  expect_ok setup_train9 train --data d9.h5 --dims 9,8,4 "${small[@]}" --checkpoint C9.h5 ||
    setup_fail "training the 9-feature checkpoint failed"
  expect_fail test_other_dims "16 features|9" test --data d.h5 --checkpoint C9.h5
  expect_fail predict_other_dims "16 features|9" \
    predict --data d.h5 --checkpoint C9.h5 --output P.h5
  expect_fail test_dims_flag "C.h5|16,8,4|16,6,4" \
    test --data d.h5 --checkpoint C.h5 --dims 16,6,4
  expect_fail resume_dims_flag "C.h5|16,8,4|16,6,4" \
    train --data d.h5 --resume C.h5 --dims 16,6,4 --epochs 2 --progress 0 --checkpoint C.h5
  expect_fail resume_other_data "9 features|16" \
    train --data d9.h5 --resume C.h5 --epochs 2 --progress 0 --checkpoint C.h5
  ;;
ckpt_version)
  setup_ckpt
  bad_variant version=99 V.h5 C.h5
  expect_fail test "V.h5|version 99|HINT" test --data d.h5 --checkpoint V.h5
  expect_fail predict "V.h5|version 99|HINT" \
    predict --data d.h5 --checkpoint V.h5 --output P.h5
  expect_fail resume "V.h5|version 99|HINT" \
    train --data d.h5 --resume V.h5 --epochs 2 --progress 0 --checkpoint V.h5
  ;;
nonsense_options)
  setup_ckpt
  base=(--data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite)
  expect_fail epochs_abc "--epochs|abc" train "${base[@]}" --epochs abc
  expect_fail lr_learn_negative "lr_learn|-1" train "${base[@]}" --lr-learn -1
  expect_fail activation_gelu "activation|gelu" train "${base[@]}" --activation gelu
  expect_fail unknown_flag "--unknown-flag" train "${base[@]}" --unknown-flag
  # GPU options: refused on every rank where they cannot apply (this machine's GPU, if it
  # has one, would make the first two valid; then they are not bad input).
  if ! { command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q GPU; }; then
    expect_fail device_cuda "--device|cuda|no CUDA device" train "${base[@]}" --device cuda
    expect_fail precision_bf16 "--precision|bf16|needs a GPU" train "${base[@]}" --precision bf16
  fi
  expect_fail comm_nccl_cpu "--comm nccl|--device cuda" train "${base[@]}" --device cpu --comm nccl
  expect_fail precision_cpu "--precision fp16|CPU" train "${base[@]}" --device cpu --precision fp16
  expect_fail comm_bogus "--comm|ucx" train "${base[@]}" --comm ucx
  expect_fail comm_timeout_zero "--comm-timeout|0" train "${base[@]}" --comm-timeout 0
  expect_fail lr_schedule_bogus "--lr-schedule|bogus" train "${base[@]}" --lr-schedule bogus
  expect_fail missing_data "--data|required" \
    train --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite
  expect_fail batch_size_zero "batch_size|0" train "${base[@]}" --batch-size 0
  expect_fail dims_garbage "--dims|16,abc" train "${base[@]}" --dims 16,abc
  expect_fail value_missing "--batch-size|needs a value" train "${base[@]}" --batch-size
  expect_fail config_missing "--config|missing.ini" train "${base[@]}" --config missing.ini
  expect_fail test_no_checkpoint "--checkpoint|required" test --data d.h5
  if ! { command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q GPU; }; then
    expect_fail test_device_cuda "--device|cuda" \
      test --data d.h5 --checkpoint C.h5 --device cuda
  fi
  expect_fail predict_no_output "--output|required" predict --data d.h5 --checkpoint C.h5
  ;;
ckpt_write_fault)
  setup_ckpt
  restore=0
  expect_fail final_write "checkpoint|injected" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite \
    --inject-fault ckpt-write
  expect_fail periodic_write "checkpoint|injected" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite \
    --checkpoint-every 1 --keep-checkpoints 2 --inject-fault ckpt-write
  expect_fail resume_write "checkpoint|injected" \
    train --data d.h5 --resume C.h5 --epochs 2 --progress 0 --checkpoint C.h5 \
    --inject-fault ckpt-write
  expect_fail fault_name "--inject-fault|ckpt-write" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite --inject-fault bogus
  expect_fail missing_dir "nodir/C.h5|does not exist" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint nodir/C.h5
  # the checkpoint that survived still loads
  runs=$((runs + 1))
  if expect_ok still_loads test --data d.h5 --checkpoint C.h5 &&
     grep -q '^test: accuracy' "$log/still_loads.out"; then
    say "PASS still_loads: $(cat "$log/still_loads.out")"
  else
    failures=$((failures + 1)); say "FAIL still_loads: C.h5 no longer loads with pcn_dist test"
  fi
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs runs passed"
[ "$failures" -eq 0 ]
