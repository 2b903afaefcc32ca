#!/usr/bin/env bash
# What this proves: pcn_dist's discriminative-mode settings, under `mpirun -np 2`.
#   config   the shipped jobs/configs/fmnist_discriminative.ini trains (every setting of it
#            reaches the run: --epochs 1 and a small batch override it on a synthetic
#            784-feature data set), `pcn_dist info` shows the checkpoint as discriminative
#            with biases, gelu and AdamW state of 2 slots, and `pcn_dist test` reloads it
#            with the same score; --input-norm changes the result (0.5,0.5 vs none).
#   refused  every option of the other direction (from a flag or from --config), --bias 1
#            and the new activations with generative, --t-learn and --early-stop with
#            discriminative, --t-infer-test with discriminative train (flag or --config)
#            and test, bad --input-norm/--optimizer/--direction values, a resume that
#            contradicts the checkpoint's direction, and a resume whose --optimizer is not
#            the checkpoint's (AdamW state resumed as momentum or sgd; sgd as adamw): one
#            `pcn_dist:` line naming the flag, the same non-zero status on every rank,
#            nothing written (harness.sh).
#   resume   a discriminative AdamW run (biases, cosine schedule with warm-up, latent
#            momentum) stopped mid-run by its signal path (--stop-after-batches 5) and resumed from the
#            checkpoint ends bitwise identical to the unbroken run: weights, biases,
#            history and the optimizer state (pcn_testtool compare ... exact).
#   resume_ipc  the same with --ipc 1 (T = 4 weight steps a batch, the schedule's position
#            4 per batch in the stopped checkpoint).
# Usage: discriminative.sh CASE. Environment (CTest): as harness.sh, plus PCN_TESTTOOL and
# PCN_CONFIG (the shipped .ini).
set -u
case_name=${1:?usage: discriminative.sh CASE}
. "$(dirname "$0")/harness.sh"
for v in PCN_TESTTOOL PCN_CONFIG; do
  [ -n "${!v:-}" ] || { echo "FAIL: $v is not set (run through ctest)"; exit 1; }
done

disc=(--direction discriminative --dims 16,8,8,4 --activation gelu --bias 1 --optimizer adamw
      --lr-learn 0.003 --weight-decay 0.001 --lr-schedule cosine --lr-warmup-frac 0.2
      --lr-peak-factor 1.1 --lr-final-factor 0.1 --t-infer 4 --lr-infer 0.05
      --infer-momentum 0.1 --input-norm 0.5,0.5 --epochs 3 --batch-size 16 --progress 0)
check() { # check NAME CONDITION-COMMAND...: one more run, failed when the command fails
  local name=$1; shift
  runs=$((runs + 1))
  if "$@"; then say "PASS $name"; else failures=$((failures + 1)); say "FAIL $name"; fi
}

case $case_name in
config)
  make_data f.h5 28 28   # D = 784, 4 classes (the config's 10 outputs hold them)
  args=(train --config "$PCN_CONFIG" --data f.h5 --epochs 1 --batch-size 16 --progress 0)
  check config_train expect_ok train "${args[@]}" --checkpoint D.h5
  check config_score grep -q '^test: accuracy' "$log/train.out"
  check info expect_ok info info D.h5
  check info_says grep -q 'direction discriminative  bias yes  hidden activation gelu' "$log/info.out"
  check info_adamw grep -Eq 'optimizer adamw, state 2 slots x 134794 floats' "$log/info.out"
  check info_steps grep -q 'optimizer steps 4' "$log/info.out"
  check retest expect_ok test test --data f.h5 --checkpoint D.h5
  check same_score bash -c 'grep -q "^test: accuracy" "$0" &&
    cmp -s <(grep "^test:" "$0") <(grep "^test:" "$1")' "$log/train.out" "$log/test.out"
  check no_norm expect_ok train_none "${args[@]}" --input-norm none --checkpoint N.h5
  # compare exits 1 on a mismatch (2 when a file does not open)
  check norm_matters bash -c '"$0" compare N.h5 D.h5 exact > /dev/null; [ $? = 1 ]' \
    "$PCN_TESTTOOL"
  sed -n '1,12p' "$log/info.out"
  ;;
refused)
  setup_ckpt
  base=(train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite)
  for o in "latent-init random" "latent-init-std 2" "infer-momentum 0.1" "ipc 1" \
           "leaky-slope 0.2"; do
    set -- $o
    expect_fail "gen_$1" "--$1|discriminative" "${base[@]}" "--$1" "$2"
  done
  expect_fail gen_bias "--bias 1|discriminative" "${base[@]}" --bias 1
  expect_fail gen_gelu "--activation gelu|discriminative" "${base[@]}" --activation gelu
  expect_fail gen_hard_tanh "--activation hard_tanh|discriminative" "${base[@]}" \
    --activation hard_tanh
  printf 'direction = generative\nlatent-init = random\n' > gen.ini
  expect_fail gen_config "--latent-init|discriminative" "${base[@]}" --config gen.ini
  dbase=("${base[@]}" --direction discriminative)
  expect_fail disc_t_learn "--t-learn|generative" "${dbase[@]}" --t-learn 3
  expect_fail disc_early_stop "--early-stop|generative" "${dbase[@]}" --early-stop 1e-4
  expect_fail bad_norm "--input-norm|0.5" "${dbase[@]}" --input-norm 0.5
  expect_fail zero_std "--input-norm|0.5,0" "${dbase[@]}" --input-norm 0.5,0
  expect_fail bad_optimizer "--optimizer|adam" "${dbase[@]}" --optimizer adam
  expect_fail bad_direction "--direction|sideways" "${base[@]}" --direction sideways
  expect_fail bad_schedule "--lr-schedule|cosine" "${dbase[@]}" --lr-schedule cosin
  expect_fail disc_t_infer_test "--t-infer-test|generative|forward pass" "${dbase[@]}" \
    --t-infer-test 7
  printf 'direction = discriminative\nt-infer-test = 20\n' > disc.ini
  expect_fail disc_t_infer_test_config "--t-infer-test|generative" train --data d.h5 \
    --dims 16,8,4 --epochs 1 --batch-size 16 --progress 0 --checkpoint C.h5 --overwrite \
    --config disc.ini
  # a resume may not change the optimizer whose moments the checkpoint holds
  expect_ok setup_adamw train --data d.h5 --dims 16,8,4 --direction discriminative \
    --optimizer adamw --epochs 1 --batch-size 16 --t-infer 3 --progress 0 --checkpoint W.h5 ||
    setup_fail "training the AdamW checkpoint failed"
  expect_fail test_t_infer_test "--t-infer-test|generative" test --data d.h5 \
    --checkpoint W.h5 --t-infer-test 5
  for o in momentum sgd; do
    expect_fail "resume_adamw_$o" "W.h5|adamw|--optimizer is $o|--optimizer adamw" \
      train --data d.h5 --resume W.h5 --optimizer "$o" --epochs 2 --progress 0 --checkpoint W.h5
  done
  expect_fail resume_sgd_adamw "C.h5|sgd|--optimizer is adamw|--optimizer sgd" \
    train --data d.h5 --resume C.h5 --optimizer adamw --epochs 2 --progress 0 --checkpoint C.h5
  expect_fail resume_gen "C.h5|generative|--direction is discriminative" \
    train --data d.h5 --resume C.h5 --direction discriminative --epochs 2 --progress 0 \
    --checkpoint C.h5
  ;;
resume|resume_ipc)
  runs=1
  spb=1 # optimizer steps a batch: 1, or T = 4 with iPC
  if [ "$case_name" = resume_ipc ]; then disc+=(--ipc 1); spb=4; fi
  expect_ok full train --data d.h5 "${disc[@]}" --checkpoint full.h5 || exit 1
  mpi_run stop train --data d.h5 "${disc[@]}" --checkpoint part.h5 --stop-after-batches 5
  [ "$(rank_codes stop)" = "3 3" ] ||
    { say "FAIL: the stopped run exited [$(rank_codes stop)], want [3 3]: $(cat "$log/stop.err")"; exit 1; }
  expect_ok info_part info part.h5 || exit 1
  # the stop lands at a batch boundary after the signal (4 batches an epoch of 64 rows)
  pos=$(sed -n 's/.*next batch: epoch \([0-9]*\), batch \([0-9]*\);.*optimizer steps \([0-9]*\)$/\1 \2 \3/p' \
    "$log/info_part.out")
  read -r e b n <<< "${pos:-x x x}"
  [ "$e" != x ] && [ $((spb * (4 * e + b))) = "$n" ] && [ "$n" -ge $((5 * spb)) ] &&
    [ "$n" -lt $((12 * spb)) ] ||
    { say "FAIL: the stopped checkpoint is not mid-run with $spb optimizer step(s) a batch: $(cat "$log/info_part.out")"; exit 1; }
  expect_ok resume train --resume part.h5 --checkpoint part.h5 --progress 0 || exit 1
  "$PCN_TESTTOOL" compare part.h5 full.h5 exact > "$log/compare.out" 2>&1 ||
    { say "FAIL: the resumed run differs from the unbroken one: $(cat "$log/compare.out")"; exit 1; }
  h5dump -d /optimizer/state part.h5 > /dev/null 2>&1 ||
    { say "FAIL: part.h5 has no /optimizer/state"; exit 1; }
  say "PASS $case_name: stopped after $n optimizer steps at 2 ranks, resumed, bitwise equal (weights, biases, history, AdamW state)"
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs runs passed"
[ "$failures" -eq 0 ]
