#!/usr/bin/env bash
# The harness of the program-level failure tests (tests/cli/bad_input.sh, tests/faults/*.sh),
# sourced after the caller sets case_name. It makes a small synthetic data set, runs
# pcn_dist on 2 ranks with each rank's exit status recorded, and checks a failing run:
# every rank exits non-zero with the same status within $max_seconds (default 30; a hang is
# cut at 60 s), stderr holds exactly one
# `pcn_dist:` line with the case's key words (besides Open MPI's framed banner), and the
# working directory is left exactly as it was (C.h5 byte-identical to the set-up copy).
# Environment (set by CTest): PCN_DIST, PCN_CONVERT, MAKE_BAD_H5, MPIEXEC, SCRATCH.
set -u
: "${case_name:?set case_name before sourcing harness.sh}"
for v in PCN_DIST PCN_CONVERT MAKE_BAD_H5 MPIEXEC SCRATCH; do
  [ -n "${!v:-}" ] || { echo "FAIL: $v is not set (run through ctest)"; exit 1; }
done
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Let every rank finish by itself, so its own exit status can be seen (and a rank stuck in
# a collective shows up as a hang rather than being killed by mpirun).
export OMPI_MCA_orte_abort_on_non_zero_status=0

top=$SCRATCH/$case_name
rm -rf "$top" && mkdir -p "$top/work" "$top/log" "$top/keep" || exit 1
work=$top/work log=$top/log
cd "$work" || exit 1

failures=0
runs=0
restore=1
say() { printf '%s\n' "$*"; }
setup_fail() { say "FAIL (set-up): $*"; exit 1; }

# ---- synthetic data -------------------------------------------------------------------

# idx_images FILE N ROWS COLS SEED: IDX image file (magic 0x803), class i%4 lights every
# 4th pixel from offset i%4, plus a little deterministic noise.
idx_images() {
  perl -e 'my ($f,$n,$r,$c,$s)=@ARGV; open(my $h,">:raw",$f) or die "$f: $!";
    print $h pack("NNNN",0x803,$n,$r,$c);
    for my $i (0..$n-1) { for my $j (0..$r*$c-1) {
      print $h pack("C", (($j % 4) == ($i % 4) ? 200 : 20) + (($i*7 + $j*13 + $s) % 30)); } }
    close $h or die;' "$@"
}
# idx_labels FILE N: IDX label file (magic 0x801), label i%4.
idx_labels() {
  perl -e 'my ($f,$n)=@ARGV; open(my $h,">:raw",$f) or die "$f: $!";
    print $h pack("NN",0x801,$n); print $h pack("C",$_ % 4) for 0..$n-1; close $h or die;' "$@"
}
# make_data OUT.h5 ROWS COLS: a valid data set (64 train, 32 test rows, 4 classes).
make_data() {
  local out=$1 r=$2 c=$3 idx=$top/idx
  mkdir -p "$idx"
  idx_images "$idx/tri" 64 "$r" "$c" 1 && idx_labels "$idx/trl" 64 &&
    idx_images "$idx/tei" 32 "$r" "$c" 5 && idx_labels "$idx/tel" 32 ||
    setup_fail "cannot write IDX files"
  "$PCN_CONVERT" idx --train-images "$idx/tri" --train-labels "$idx/trl" \
    --test-images "$idx/tei" --test-labels "$idx/tel" --classes 4 -o "$out" \
    > "$log/convert.out" 2>&1 || setup_fail "pcn_convert: $(cat "$log/convert.out")"
}
# bad_variant VARIANT OUT.h5 [FROM.h5]: a copy of FROM (default d.h5) broken by make_bad_h5.
bad_variant() {
  cp "${3:-d.h5}" "$2" && "$MAKE_BAD_H5" "$1" "$2" || setup_fail "make_bad_h5 $1 $2"
}

# ---- running pcn_dist on 2 ranks -------------------------------------------------------

# mpi_run NAME ARGS...: runs pcn_dist on 2 ranks (timeout 60) with stdout, stderr and each
# rank's exit status in $log/NAME.{out,err,rc0,rc1}; sets $mpi_status (mpirun's, 124 on
# timeout).
# Optional settings of the caller: launch=(words) runs mpirun under a prefix (a namespace,
# env), during='command' runs in the background while pcn_dist runs (it is waited for),
# np=N changes the rank count (rank_codes then lists N statuses). $mpi_seconds is the run's
# wall time.
mpi_run() {
  local name=$1; shift
  rm -f "$log/$name".rc*
  local t0 pid=
  t0=$(date +%s.%N)
  [ -n "${during:-}" ] && { bash -c "$during" > "$log/$name.during" 2>&1 & pid=$!; }
  RCFILE=$log/$name.rc ${launch[@]+"${launch[@]}"} timeout 60 "$MPIEXEC" -np "${np:-2}" \
    --oversubscribe -x RCFILE \
    bash -c '"$0" "$@"; s=$?; echo $s > "$RCFILE$OMPI_COMM_WORLD_RANK"; exit $s' \
    "$PCN_DIST" "$@" > "$log/$name.out" 2> "$log/$name.err"
  mpi_status=$?
  [ -n "$pid" ] && wait "$pid"
  mpi_seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# rank_codes NAME: "s0 s1" (a "-" where a rank left no status: killed or aborted).
rank_codes() {
  local r out=""
  for ((r = 0; r < ${np:-2}; r++)); do
    if [ -s "$log/$1.rc$r" ]; then out+="$(cat "$log/$1.rc$r") "; else out+="- "; fi
  done
  printf '%s' "${out% }"
}

# Lines of stderr that are neither `pcn_dist:` lines nor inside Open MPI's "-----" frames.
stray_stderr() {
  awk '/^-----+$/ { frame = !frame; next } !frame && NF && !/^pcn_dist:/' "$1"
}

# Snapshot of the working directory (a copy), to compare after a run.
snapshot() { rm -rf "$top/snap" && cp -a "$work" "$top/snap"; }

# expect_fail NAME 'kw1|kw2|...' ARGS...: one bad-input run and every check above.
expect_fail() {
  local name=$1 keys=$2; shift 2
  local args=("$@") why=() kws=() msg codes lines k d
  runs=$((runs + 1))
  snapshot
  mpi_run "$name" "$@"
  codes=$(rank_codes "$name")
  [ "$mpi_status" = 124 ] && why+=("hang: no exit within 60 s (mpirun killed by timeout)")
  awk -v s="$mpi_seconds" -v m="${max_seconds:-30}" 'BEGIN { exit !(s > m) }' &&
    why+=("took $mpi_seconds s to exit (limit ${max_seconds:-30} s)")
  case " $codes " in
  *" - "*) why+=("a rank left no exit status (killed, aborted or hung): ranks [$codes]") ;;
  *" 0 "*) why+=("a rank exited 0: ranks [$codes]") ;;
  esac
  local r=0
  for k in $codes; do
    [ "$k" != - ] && [ "$k" -gt 125 ] && why+=("rank $r died of signal $((k - 128)) (status $k)")
    r=$((r + 1))
  done
  [ "${codes% *}" != "${codes#* }" ] && why+=("ranks disagree on the exit status: [$codes]")
  lines=$(grep -c '^pcn_dist:' "$log/$name.err")
  msg=$(grep '^pcn_dist:' "$log/$name.err" | head -n 1)
  [ "$lines" = 1 ] || why+=("$lines stderr lines start with 'pcn_dist:' (want exactly 1)")
  IFS='|' read -r -a kws <<< "$keys"
  for k in "${kws[@]}"; do
    grep -q -i -F -- "$k" <<< "$msg" || why+=("message lacks the key word '$k'")
  done
  [ -z "$(stray_stderr "$log/$name.err")" ] ||
    why+=("other stderr output: $(stray_stderr "$log/$name.err" | head -n 5 | tr '\n' '|')")
  d=$(diff -rq "$top/snap" "$work" 2>&1 | sed "s|$top/snap|before|g; s|$work|after|g")
  [ -z "$d" ] || why+=("working directory changed: $(tr '\n' '|' <<< "$d")")
  if [ -f "$top/keep/C.h5" ] && [ -f C.h5 ] && ! cmp -s "$top/keep/C.h5" C.h5; then
    why+=("C.h5 is not byte-identical to the copy made at set-up")
  fi
  if [ ${#why[@]} -eq 0 ]; then
    say "PASS $name: exit [$codes]: $msg"
  else
    failures=$((failures + 1))
    say "FAIL $name: exit [$codes], message: ${msg:-(none)}"
    for k in "${why[@]}"; do say "     - $k"; done
    say "     command: mpirun -np 2 pcn_dist $(printf '%q ' "${args[@]}")"
    say "     stderr:"; sed 's/^/       | /' "$log/$name.err" | head -n 30
  fi
  # a hang costs 60 s: stop here rather than run into CTest's TIMEOUT with no report
  if [ "$mpi_status" = 124 ]; then say "$case_name: stopped after a hang"; exit 1; fi
  # restore the directory so one failing run does not spoil the next (ckpt_write_fault
  # keeps what the run left, to load it afterwards)
  if [ -n "$d" ] && [ "$restore" = 1 ]; then rm -rf "$work" && cp -a "$top/snap" "$work" && cd "$work"; fi
}

# expect_ok NAME ARGS...: a run that must succeed on every rank; returns 1 otherwise.
expect_ok() {
  local name=$1; shift
  mpi_run "$name" "$@"
  local codes; codes=$(rank_codes "$name")
  if [ "$mpi_status" != 0 ] || [ "$codes" != "0 0" ]; then
    say "FAIL $name: expected success, mpirun status $mpi_status, ranks [$codes]"
    say "     command: mpirun -np 2 pcn_dist $(printf '%q ' "$@")"
    sed 's/^/       out| /' "$log/$name.out" | head -n 20
    sed 's/^/       err| /' "$log/$name.err" | head -n 20
    return 1
  fi
  return 0
}

# ---- set-up: data set, checkpoint ------------------------------------------------------

small=(--epochs 1 --batch-size 16 --t-infer 5 --t-infer-test 10 --progress 0)
make_data d.h5 4 4   # D = 16
setup_ckpt() {
  expect_ok setup_train train --data d.h5 --dims 16,8,4 "${small[@]}" --checkpoint C.h5 ||
    setup_fail "training the reference checkpoint failed"
  cp C.h5 "$top/keep/C.h5"
}

# The three runs of a bad data set: train (memory mode: every value checked at open), train
# (stream mode: values checked per batch), predict on the train split (--output must not
# appear). Each must print the one message with the key words. The training runs may
# replace C.h5 (--overwrite), so the bad input, not the existing checkpoint, refuses them.
bad_data_runs() {
  local file=$1 keys=$2
  expect_fail train "$keys" train --data "$file" --dims 16,8,4 "${small[@]}" \
    --checkpoint C.h5 --overwrite
  expect_fail train_stream "$keys" train --data "$file" --dims 16,8,4 "${small[@]}" \
    --data-mode stream --checkpoint C.h5 --overwrite
  expect_fail predict "$keys" predict --data "$file" --checkpoint C.h5 --split train \
    --output P.h5
}

