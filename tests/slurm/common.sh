# shellcheck shell=bash disable=SC2015
# Sourced by the tests in tests/slurm/: skips (77) where slurm-wlm, munge or root are
# missing, makes the test's folder $dir ($SCRATCH/NAME) and goes there, starts a real
# one-node cluster in it (cluster.sh; FAKE_GPUS=N declares N fake GPUs) and stops it when
# the test ends, also on failure. Gives fail MESSAGE, state JOBID, wait_done JOBID and
# usr1_requeue JOBID RUN_DIR, requeued_like JOBID OUT UNBROKEN_DIR.
# Environment from CTest: CLUSTER, SCRATCH (and what each test names).
command -v slurmctld > /dev/null && command -v munged > /dev/null && [ "$(id -u)" -eq 0 ] || {
  echo "slurm-wlm, munge or root missing: not run"; exit 77; }
dir=$SCRATCH/$1
[ -d "$dir/cluster" ] && "$CLUSTER" stop "$dir/cluster"   # left by a run that was killed
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
fail() { echo "FAIL: $*"; for f in "$dir"/*.out; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }
cleanup() { scancel --user=root 2>/dev/null; "$CLUSTER" stop "$dir/cluster"; }
trap cleanup EXIT
trap 'exit 1' TERM INT   # so that the EXIT trap runs
out=$("$CLUSTER" start "$dir/cluster") || { echo "$out"; exit 1; }
eval "$(grep ^export <<<"$out")"
# Under the sanitizer build: no leak check in the job's processes (MPI singletons and
# srun-launched ranks trip LeakSanitizer inside Open MPI); errors are still caught.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# usr1_requeue JOBID RUN_DIR: once the job trains (its metrics file has a line), USR1 to its
# batch shell (as Slurm sends before the time limit); then the requeued job is released.
# Slurm holds a requeued job for about two minutes before it may start again; it is
# released, but not within the second of the requeue: slurmd refuses a credential issued in
# the same second as the one it revoked ("Job credential revoked").
usr1_requeue() {
  for _ in $(seq 600); do [ -s "$2/metrics.jsonl" ] && break; sleep 0.05; done
  [ -s "$2/metrics.jsonl" ] || fail "job $1 never started training"
  scancel --signal=USR1 --batch "$1" || fail "scancel --signal=USR1"
  for _ in $(seq 300); do
    scontrol show job "$1" | grep -q 'Restarts=[1-9]' && [ "$(state "$1")" = PENDING ] && break
    sleep 0.1
  done
  scontrol update JobId="$1" StartTime=now+2 2>/dev/null
}

# requeued_like JOBID OUT UNBROKEN_DIR: the job completed after a requeue and a resume (OUT
# its output file) and its checkpoint equals the unbroken job's, bit for bit.
requeued_like() {
  wait_done "$1" || fail "job $1 did not complete: $(state "$1")"
  grep -q "requeueing" "$2" || fail "job $1 was not requeued (did it finish before the signal?)"
  grep -q "restart 1" "$2" && grep -q "resuming from" "$2" || fail "job $1 did not resume"
  "$PCN_TESTTOOL" compare "$dir/$(basename "$2" .out)/checkpoint.h5" "$3/checkpoint.h5" exact \
    || fail "the requeued job $1 differs from the unbroken one"
}

# state JOBID: the job's state from slurmctld (no accounting database needed)
state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
# wait_done JOBID: 0 once the job completed, 1 when it ended otherwise or after 180 s
wait_done() {
  for _ in $(seq 900); do
    case $(state "$1") in COMPLETED) return 0 ;; FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) return 1 ;; esac
    sleep 0.2
  done
  return 1
}
