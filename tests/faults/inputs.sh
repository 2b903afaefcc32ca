#!/usr/bin/env bash
# What this proves: pcn_dist under `mpirun -np 2` never destroys an input, never ignores a
# setting and never trains on what it could not read. Each failing run is checked by the
# harness (tests/cli/harness.sh): every rank exits non-zero with the same status within
# max_seconds, one `pcn_dist:` line with the case's key words, the working folder (and the
# checkpoint C.h5 in it) exactly as it was, no temporary or lock file left.
#
# Cases:
#   same_file             an output that is an input (by inode: other spellings, symbolic
#                         and hard links) or another output is refused before anything is
#                         written: --metrics on --resume, predict --output on --checkpoint,
#                         --checkpoint on --data, --metrics on --checkpoint, --output on
#                         --config
#   config_keys           resume, checkpoint and output work from a --config file: a run
#                         resumed through the file ends with the same weights as one resumed
#                         by the flag, and other weights than a fresh run
#   resume_contradiction  a resumed or tested checkpoint refuses --activation, --task,
#                         --output-dim and --dims that contradict its model (flag or file)
#   keep_bound            --keep-checkpoints outside [1, 1000] is refused at once
#   not_regular           a FIFO as --data, --resume, --config or test's --checkpoint is
#                         refused at once (it used to block forever)
#   early_signal          SIGUSR1 to mpirun while its ranks are inside MPI_Init: every rank
#                         stops with status 3 after writing a checkpoint that loads (it used
#                         to kill the ranks with status 138)
#   stream_changed        a data set truncated in place, or rewritten with its size kept,
#                         under a --data-mode stream run stops every rank with a message
#                         (it used to train on zero-filled rows and exit 0)
#   shm_small             memory mode with a training split larger than the free space of
#                         /dev/shm (a private tmpfs in a mount namespace; root) fails with a
#                         message that suggests --data-mode stream (it used to end in an
#                         Open MPI abort)
#   label_int64           an int64 label of 2^33 + 1 is reported with its own value (it used
#                         to be reported as 2147483647), in memory and stream mode
#   second_writer         a second run on a checkpoint that a running job writes is refused
#                         at start, naming the other writer (it used to run, and the last
#                         rename won); the first run, stopped by SIGUSR1, ends normally
#                         (status 3, a checkpoint) and leaves no lock file
#   json_valid            test --json of a diverging inference prints null, not nan, under
#                         the metrics file's names (top_k, with k beside it)
#   threads_over_cores    a run whose OpenMP threads exceed the cores it may run on (taskset
#                         to one core, OMP_NUM_THREADS=2) warns once and still trains; with
#                         one thread, or two on two cores, it says nothing
# Usage: inputs.sh CASE. Environment: as tests/cli/harness.sh, and FAULT_SCRATCH.
set -u
case_name=${1:?usage: inputs.sh CASE}
SCRATCH=${FAULT_SCRATCH:?set by CTest}
. "$(dirname "$0")/../cli/harness.sh"

# same_weights A.h5 B.h5: whether two checkpoints hold the same weights, value for value.
weights_of() { h5dump -d /weights/W0 -d /weights/W1 -d /weights/Wout "$1" | sed 1d; }
same_weights() { cmp -s <(weights_of "$1") <(weights_of "$2"); }

# check NAME CONDITION-RESULT MESSAGE: one counted check outside expect_fail.
check() {
  runs=$((runs + 1))
  if [ "$2" = 0 ]; then say "PASS $1"; else failures=$((failures + 1)); say "FAIL $1: $3"; fi
}

# A bigger data set: N rows of 28 x 28 (for runs that must last, or be large).
make_big() {
  local out=$1 n=$2 idx=$top/idx
  mkdir -p "$idx"
  idx_images "$idx/bi" "$n" 28 28 3 && idx_labels "$idx/bl" "$n" &&
    idx_images "$idx/bti" 32 28 28 7 && idx_labels "$idx/btl" 32 || setup_fail "IDX files"
  "$PCN_CONVERT" idx --train-images "$idx/bi" --train-labels "$idx/bl" \
    --test-images "$idx/bti" --test-labels "$idx/btl" --classes 4 -o "$out" \
    > "$log/convert_big.out" 2>&1 || setup_fail "pcn_convert: $(cat "$log/convert_big.out")"
}

case $case_name in
same_file)
  setup_ckpt
  ln -s d.h5 link.h5 && ln C.h5 hard.h5 || setup_fail "links"
  printf 'split = test\n' > p.ini
  expect_fail metrics_on_resume "--metrics|C.h5|same file|--resume" \
    train --data d.h5 --resume C.h5 --epochs 2 --progress 0 --metrics C.h5 --checkpoint C2.h5
  expect_fail metrics_on_resume_hardlink "--metrics|hard.h5|same file|--resume" \
    train --data d.h5 --resume C.h5 --epochs 2 --progress 0 --metrics hard.h5 --checkpoint C2.h5
  expect_fail output_on_checkpoint "--output|same file|--checkpoint" \
    predict --data d.h5 --checkpoint C.h5 --output ./C.h5
  expect_fail checkpoint_on_data "--checkpoint|same file|--data" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint "$work/d.h5"
  expect_fail checkpoint_on_data_symlink "--checkpoint|link.h5|same file|--data" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint link.h5
  expect_fail metrics_on_checkpoint "--metrics|--checkpoint|same file" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint N.h5 --metrics ./N.h5
  expect_fail output_on_config "--output|same file|--config" \
    predict --data d.h5 --checkpoint C.h5 --config p.ini --output p.ini
  ;;
config_keys)
  setup_ckpt
  expect_ok seed5 train --data d.h5 --dims 16,8,4 "${small[@]}" --seed 5 --checkpoint C5.h5 ||
    setup_fail "training C5.h5"
  printf 'resume = C5.h5\nepochs = 2\n' > r.ini
  expect_ok by_file train --data d.h5 --config r.ini --progress 0 --checkpoint R1.h5
  check by_file_runs $? "resume = C5.h5 in --config: the run failed"
  expect_ok by_flag train --data d.h5 --resume C5.h5 --epochs 2 --progress 0 --checkpoint R2.h5 ||
    setup_fail "resuming C5.h5 by the flag"
  expect_ok fresh train --data d.h5 --dims 16,8,4 "${small[@]}" --epochs 2 --checkpoint R3.h5 ||
    setup_fail "a fresh two-epoch run"
  same_weights R1.h5 R2.h5
  check resumed_through_file $? "the run with resume = C5.h5 in its file differs from --resume C5.h5"
  ! same_weights R1.h5 R3.h5
  check not_a_fresh_run $? "the run with resume = C5.h5 in its file equals a fresh run"
  printf 'checkpoint = C.h5\n' > t.ini
  expect_ok test_by_file test --data d.h5 --config t.ini &&
    grep -q '^test: accuracy' "$log/test_by_file.out"
  check test_checkpoint_from_file $? "test with checkpoint = C.h5 in --config: $(cat "$log/test_by_file.err")"
  printf 'checkpoint = C.h5\noutput = P.h5\n' > p.ini
  expect_ok predict_by_file predict --data d.h5 --config p.ini && [ -f P.h5 ]
  check predict_output_from_file $? "predict with output = P.h5 in --config: $(cat "$log/predict_by_file.err")"
  ls ./*.lock > /dev/null 2>&1
  check no_lock_left $((! $?)) "lock files left: $(ls ./*.lock 2> /dev/null)"
  ;;
resume_contradiction)
  setup_ckpt
  resume=(train --data d.h5 --resume C.h5 --epochs 2 --progress 0 --checkpoint C.h5)
  expect_fail activation_flag "C.h5|relu|--activation|tanh" "${resume[@]}" --activation tanh
  printf 'activation = sigmoid\n' > a.ini
  expect_fail activation_file "C.h5|relu|--activation|sigmoid" "${resume[@]}" --config a.ini
  expect_fail task_flag "C.h5|classification|--task|regression" "${resume[@]}" --task regression
  expect_fail output_dim_flag "C.h5|4 outputs|--output-dim|7" "${resume[@]}" --output-dim 7
  printf 'dims = 16,6,4\n' > d.ini
  expect_fail dims_file "C.h5|16,8,4|16,6,4" "${resume[@]}" --config d.ini
  expect_fail test_activation "C.h5|relu|tanh" test --data d.h5 --checkpoint C.h5 --activation tanh
  ;;
keep_bound)
  setup_ckpt
  max_seconds=15
  base=(train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5)
  expect_fail keep_huge "--keep-checkpoints|1000|2000000000" "${base[@]}" --keep-checkpoints 2000000000
  expect_fail keep_zero "--keep-checkpoints|1000|0" "${base[@]}" --keep-checkpoints 0
  ;;
not_regular)
  setup_ckpt
  max_seconds=15
  fifo=$top/fifo.h5   # outside the folder the harness compares (diff would read a FIFO)
  rm -f "$fifo" && mkfifo "$fifo" || setup_fail "mkfifo"
  # --overwrite: the FIFO, not the existing C.h5, must be what refuses the fresh run
  expect_fail data_fifo "fifo.h5|FIFO|regular file" \
    train --data "$fifo" --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite
  expect_fail resume_fifo "--resume|fifo.h5|FIFO" \
    train --data d.h5 --resume "$fifo" --epochs 2 --progress 0 --checkpoint C.h5
  expect_fail config_fifo "--config|fifo.h5|FIFO" \
    train --data d.h5 --dims 16,8,4 "${small[@]}" --config "$fifo" --checkpoint C.h5
  expect_fail test_checkpoint_fifo "--checkpoint|fifo.h5|FIFO" \
    test --data d.h5 --checkpoint "$fifo"
  rm -f "$fifo"
  ;;
early_signal)
  # mpirun forwards SIGUSR1 to its ranks. The signal goes to mpirun once both ranks are
  # inside MPI_Init (Open MPI's plugins, mca_*.so, are mapped: main has begun, MPI_Init has
  # not returned), where the stop handler used to be missing; then after a further pause.
  # A rank must never die of it: each run stops after its first batch with status 3
  # (mpirun's status: the ranks' own) and a checkpoint that loads. No per-rank wrapper
  # here: mpirun would forward the signal to the wrapper shell.
  make_big big.h5 256
  in_mpi_init() { grep -q '/mca_' "/proc/$1/maps" 2> /dev/null; }
  for pause in 0 0.02 0 0.1; do
    name=usr1_$runs
    rm -f E.h5
    env -u OMPI_MCA_orte_abort_on_non_zero_status timeout -s KILL 60 "$MPIEXEC" -np 2 \
      --oversubscribe "$PCN_DIST" train --data big.h5 \
      --dims 784,32,4 --epochs 3 --batch-size 8 --t-infer 5 --progress 0 --checkpoint E.h5 \
      > "$log/$name.out" 2> "$log/$name.err" &
    tpid=$!
    mpid= ranks=
    for _ in $(seq 1 10000); do
      mpid=$(pgrep -P "$tpid" | head -n 1)
      ranks=$([ -n "$mpid" ] && pgrep -P "$mpid" -x pcn_dist)
      [ "$(wc -w <<< "$ranks")" = 2 ] && in_mpi_init ${ranks%%[[:space:]]*} &&
        in_mpi_init ${ranks##*[[:space:]]} && break
      sleep 0.001
    done
    sleep "$pause"
    [ -n "$mpid" ] && kill -USR1 "$mpid"
    wait "$tpid"
    status=$?
    ok=0 why=""
    [ "$status" = 3 ] || { ok=1; why="mpirun status $status, want 3 (stopped on every rank)"; }
    grep -q 'exited on signal' "$log/$name.err" && { ok=1; why="$why; a rank died of the signal"; }
    grep -q 'stop signal: checkpoint written to E.h5' "$log/$name.err" ||
      { ok=1; why="$why; no stop message"; }
    if [ $ok = 0 ]; then
      np=1 mpi_run "${name}_info" info E.h5
      grep -q 'pcn-checkpoint' "$log/${name}_info.out" || { ok=1; why="E.h5 does not load"; }
    fi
    check "$name (signal $pause s after both ranks entered MPI_Init)" $ok \
      "$why; stderr: $(grep -v '^---' "$log/$name.err" | head -n 4 | tr '\n' '|')"
  done
  ;;
stream_changed)
  # The data set lives outside the compared folder (the case changes it on purpose).
  data=$top/s.h5
  for how in truncate rewrite; do
    cp d.h5 "$data" || setup_fail "copy"
    size=$(stat -c %s "$data")
    if [ $how = truncate ]; then change="truncate -s $((size / 2)) '$data'"
    else change="printf 'garbage!' | dd of='$data' bs=1 seek=$((size - 64)) conv=notrunc status=none"
    fi
    # The run (64 batches an epoch, 40 epochs) lasts well past the change, made once its
    # metrics show five batches.
    during="for i in \$(seq 1 2000); do [ \$(wc -l < '$top/m.jsonl' 2> /dev/null || echo 0) -ge 5 ] && break; sleep 0.01; done; $change"
    rm -f "$top/m.jsonl"
    expect_fail "stream_$how" "s.h5|changed during the run" \
      train --data "$data" --data-mode stream --dims 16,8,4 --epochs 40 --batch-size 1 \
      --t-infer 5 --t-learn 2 --progress 0 --train-accuracy-every 0 --metrics "$top/m.jsonl"
    during=
  done
  ;;
shm_small)
  [ "$(id -u)" = 0 ] && command -v unshare > /dev/null || { say "needs root and unshare"; exit 77; }
  unshare -m --propagation private true 2> /dev/null || { say "no mount namespaces here"; exit 77; }
  make_big big.h5 2048   # 1.5 MiB of pixels
  # A private /dev/shm of 1 MiB for this run only; the ranks talk over TCP (their
  # shared-memory transport would need /dev/shm too).
  launch=(env OMPI_MCA_btl=self,tcp unshare -m --propagation private bash -c
          'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$@"' --)
  expect_fail memory_mode "big.h5|shared memory|/dev/shm|--data-mode stream" \
    train --data big.h5 --dims 784,16,4 "${small[@]}"
  launch=()
  ;;
label_int64)
  setup_ckpt
  bad_variant label-int64 l64.h5
  # --overwrite: the label, not the existing C.h5, must be what refuses these runs
  expect_fail memory "l64.h5|/train/y|8589934593" \
    train --data l64.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 --overwrite
  expect_fail stream "l64.h5|/train/y|8589934593" \
    train --data l64.h5 --dims 16,8,4 "${small[@]}" --data-mode stream --checkpoint C.h5 \
    --overwrite
  ;;
second_writer)
  # Run A holds S.h5 (its lock file names it) for as long as it runs: here until it is told
  # to stop, so that its length does not race run B. B, on the same file spelled otherwise,
  # is refused at start with a message naming A; then SIGUSR1 stops A the normal way
  # (status 3 on every rank, a checkpoint written, the lock file gone). Launched without
  # the harness's per-rank wrapper, which would take the signal (see early_signal).
  long=(--dims 16,8,4 --epochs 100000 --batch-size 1 --t-infer 5 --t-learn 2 --progress 0
        --train-accuracy-every 0)
  env -u OMPI_MCA_orte_abort_on_non_zero_status timeout -s KILL 120 "$MPIEXEC" -np 2 \
    --oversubscribe "$PCN_DIST" train --data d.h5 "${long[@]}" --checkpoint S.h5 \
    --metrics "$top/A.jsonl" > "$log/A.out" 2> "$log/A.err" &
  tpid=$!
  # B starts once A trains (its first metrics line): A then holds the lock, and Open MPI's
  # transient d.h5.locktest.* files of A's opening the data set are gone, so B's snapshot
  # of the folder does not catch them (at most 30 s)
  for _ in $(seq 1 3000); do [ -s S.h5.lock ] && [ -s "$top/A.jsonl" ] && break; sleep 0.01; done
  expect_fail B "S.h5|being written by another run|pid|lock file" \
    train --data d.h5 "${long[@]}" --checkpoint "$work/./S.h5"
  kill -USR1 "$(pgrep -P "$tpid" | head -n 1)" 2> /dev/null
  wait "$tpid"
  a_status=$?
  [ "$a_status" = 3 ] && [ -f S.h5 ] && [ ! -e S.h5.lock ]
  check A_unharmed $? "run A: status $a_status (want 3), files: $(ls), $(tail -c 300 "$log/A.err")"
  ;;
json_valid)
  # test --json prints JSON for every value: a diverging free inference (lr_infer 1e30)
  # gives a non-finite energy, printed as null (it was printed as nan).
  setup_ckpt
  expect_ok diverge test --data d.h5 --checkpoint C.h5 --json --lr-infer 1e30
  check diverge_runs $? "test --json with lr_infer 1e30 failed"
  python3 -c 'import json, sys; v = json.loads(sys.stdin.read()); sys.exit(v["energy"] is not None or list(v) != ["split", "accuracy", "top_k", "k", "energy", "mse", "samples", "ranks", "seconds", "per_class_accuracy", "confusion"])' \
    < "$log/diverge.out"
  check json_null $? "not JSON, the energy is not null, or the keys are not split, accuracy, top_k, k, energy, mse, samples, ranks, seconds, per_class_accuracy, confusion: $(cat "$log/diverge.out")"
  ;;
threads_over_cores)
  # pcn_dist alone (an MPI singleton), its affinity set by taskset. A singleton's Open MPI
  # forks a helper daemon, and LeakSanitizer crashes at times in that fork ("Tracer caught
  # signal 11"; seen once in three sanitizer runs): leak checks stay on under mpirun only,
  # as in program_runs.sh.
  [ "$(nproc --all)" -ge 2 ] || { say "SKIP: one core"; exit 77; }
  over() { # NAME CPUS THREADS
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" OMP_NUM_THREADS=$3 timeout 60 \
      taskset -c "$2" "$PCN_DIST" train --data d.h5 --dims 16,8,4 --epochs 1 --progress 0 \
      > "$log/$1.out" 2> "$log/$1.err"
  }
  over two_on_one 0 2
  check two_on_one_trains $? "$(cat "$log/two_on_one.err")"
  [ "$(grep -c 'warning: a rank runs 1 more OpenMP thread than the cores' "$log/two_on_one.err")" = 1 ]
  check two_on_one_warns $? "no single warning: $(cat "$log/two_on_one.err")"
  for quiet in "one_on_one 0 1" "two_on_two 0,1 2"; do
    over $quiet
    check "${quiet%% *}_trains" $? "$(cat "$log/${quiet%% *}.err")"
    ! grep -q 'warning' "$log/${quiet%% *}.err"
    check "${quiet%% *}_quiet" $? "warned: $(cat "$log/${quiet%% *}.err")"
  done
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs runs passed"
[ "$failures" -eq 0 ]
