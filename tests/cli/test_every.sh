#!/usr/bin/env bash
# What this proves: `pcn_dist train --test-every N` scores the test split during training
# without changing the training, under `mpirun -np 2`.
#   every   a discriminative AdamW run (3 epochs of 4 batches) with --test-every 1 prints one
#           "epoch E test:" line per epoch (E = 1, 2, 3) and writes one epoch_test metrics
#           record per epoch (epoch 0, 1, 2, each after that epoch's epoch record); the last
#           one's accuracy, top-k and energy are the final test's ("test:" line and record);
#           its checkpoint is bitwise that of the same run without --test-every (weights,
#           biases, history, AdamW state: pcn_testtool compare ... exact), and the two
#           metrics files hold the same batch and epoch records. A generative run with
#           --test-every 2 over 3 epochs scores after epoch 2 only (the last is not due),
#           and is bitwise its run without the flag too. --test-every -1 is refused.
#   resume  the --test-every 1 run stopped by its signal path (--stop-after-batches 5) and
#           resumed ends bitwise equal to the unbroken run, and its metrics file (appended
#           by the resume) holds epoch_test records of epochs 0, 1, 2, each once.
# Usage: test_every.sh CASE. Environment (CTest): as harness.sh, plus PCN_TESTTOOL.
set -u
case_name=${1:?usage: test_every.sh CASE}
. "$(dirname "$0")/harness.sh"
[ -n "${PCN_TESTTOOL:-}" ] || { echo "FAIL: PCN_TESTTOOL is not set (run through ctest)"; exit 1; }

disc=(--direction discriminative --dims 16,8,8,4 --activation gelu --bias 1 --optimizer adamw
      --lr-learn 0.003 --lr-schedule cosine --lr-warmup-frac 0.2 --t-infer 4 --lr-infer 0.05
      --input-norm 0.5,0.5 --epochs 3 --batch-size 16 --progress 0)
gen=(--dims 16,8,4 --epochs 3 --batch-size 16 --t-infer 5 --t-learn 4 --t-infer-test 10
     --progress 0)
check() { # check NAME CONDITION-COMMAND...: one more check, failed when the command fails
  local name=$1; shift
  runs=$((runs + 1))
  if "$@"; then say "PASS $name"; else failures=$((failures + 1)); say "FAIL $name"; fi
}
# events FILE: the "event" of every record, one per line.
events() { sed 's/^{"event":"\([a-z_]*\)".*/\1/' "$1"; }
# field FILE EVENT KEY: KEY's value in every EVENT record of FILE, one per line.
field() { grep "^{\"event\":\"$2\"" "$1" | sed "s/.*\"$3\":\([^,}]*\).*/\1/"; }
# same_bits A.h5 B.h5: the checkpoints' weights, history and optimizer state are identical.
same_bits() { "$PCN_TESTTOOL" compare "$1" "$2" exact > "$log/compare_$1.out" 2>&1; }
# scores OUT: the numbers of the last "epoch E test:" line and of the "test:" line.
last_epoch_line_is_test() {
  local a b
  a=$(grep '^epoch [0-9]* test:' "$1" | tail -n 1 | sed 's/^epoch [0-9]* test://')
  b=$(grep '^test:' "$1" | sed 's/^test://')
  [ -n "$a" ] && [ "$a" = "$b" ]
}

case $case_name in
every)
  expect_ok with train --data d.h5 "${disc[@]}" --test-every 1 --checkpoint A.h5 \
    --metrics A.jsonl || exit 1
  expect_ok without train --data d.h5 "${disc[@]}" --checkpoint B.h5 --metrics B.jsonl || exit 1
  check lines [ "$(grep '^epoch [0-9]* test:' "$log/with.out" | cut -d' ' -f2 | tr '\n' ' ')" = "1 2 3 " ]
  check no_lines_without [ "$(grep -c '^epoch [0-9]* test:' "$log/without.out")" = 0 ]
  check last_line_is_final last_epoch_line_is_test "$log/with.out"
  check records [ "$(field A.jsonl epoch_test epoch | tr '\n' ' ')" = "0 1 2 " ]
  check after_epochs [ "$(events A.jsonl | grep -A1 '^epoch$' | grep -c '^epoch_test$')" = 3 ]
  check last_record_is_final bash -c '[ "$(grep "\"epoch_test\",\"epoch\":2" "$0" |
    sed "s/.*\"samples\"://; s/,\"seconds\".*//")" = "$(grep "\"event\":\"test\"" "$0" |
    sed "s/.*\"samples\"://; s/,\"seconds\".*//")" ]' A.jsonl
  # the records without their clocks (batch: from samples_per_s on; epoch, test: seconds on)
  check same_records bash -c 'c() { sed "s/,\"samples_per_s\".*//; s/,\"seconds\".*//"; }
    cmp -s <(grep -v epoch_test "$0" | c) <(c < "$1")' A.jsonl B.jsonl
  check bitwise same_bits A.h5 B.h5
  expect_ok gen_with train --data d.h5 "${gen[@]}" --test-every 2 --checkpoint G.h5 \
    --metrics G.jsonl || exit 1
  expect_ok gen_without train --data d.h5 "${gen[@]}" --checkpoint H.h5 || exit 1
  check gen_lines [ "$(grep '^epoch [0-9]* test:' "$log/gen_with.out" | cut -d' ' -f2)" = 2 ]
  check gen_records [ "$(field G.jsonl epoch_test epoch | tr '\n' ' ')" = "1 " ]
  check gen_bitwise same_bits G.h5 H.h5
  expect_fail negative "--test-every|-1" train --data d.h5 "${gen[@]}" --test-every -1 \
    --checkpoint N.h5
  ;;
resume)
  expect_ok full train --data d.h5 "${disc[@]}" --test-every 1 --checkpoint full.h5 || exit 1
  mpi_run stop train --data d.h5 "${disc[@]}" --test-every 1 --checkpoint part.h5 \
    --metrics part.jsonl --stop-after-batches 5
  check stopped [ "$(rank_codes stop)" = "3 3" ]
  expect_ok resume train --resume part.h5 --checkpoint part.h5 --test-every 1 \
    --metrics part.jsonl --progress 0 || exit 1
  check bitwise same_bits part.h5 full.h5
  check records [ "$(field part.jsonl epoch_test epoch | tr '\n' ' ')" = "0 1 2 " ]
  check lines [ "$(cat "$log/stop.out" "$log/resume.out" | grep '^epoch [0-9]* test:' |
    cut -d' ' -f2 | tr '\n' ' ')" = "1 2 3 " ]
  check last_line_is_final last_epoch_line_is_test "$log/resume.out"
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs checks passed"
[ "$failures" -eq 0 ]
