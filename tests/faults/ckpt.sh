#!/usr/bin/env bash
# What this proves: writing and loading checkpoints never hangs, corrupts or lies. Each
# failing run goes through the harness's expect_fail (tests/cli/harness.sh): every rank
# exits non-zero with the same status, exactly one `pcn_dist:` line with the case's key
# words, no hang; here also within 20 s, the previous checkpoint byte-identical and still
# loadable, and no temporary file (*.tmp*) left anywhere.
#
#   full_disk_np1, full_disk_np2  the new checkpoint does not fit a 200 KiB tmpfs, at 1 and 2
#                  ranks (before the fix: 2 ranks hung in HDF5's collective write, 1 rank
#                  printed the error and then died in MPI_Finalize)
#   full_disk_old_kept  an older, smaller checkpoint in that tmpfs stays byte-identical and
#                  loadable when the new one does not fit (1 and 2 ranks)
#   one_rank_fault  --inject-fault ckpt-write@R (R = 0, 1) at the final and at a periodic
#                  write: every rank ends together, the old checkpoint intact; bad R refused
#                  (runs that fail to write over an old checkpoint pass --overwrite, so the
#                  write, not the refusal of an existing file, is what fails)
#   concurrent_writers  two runs (different seeds) started at once on the same --checkpoint,
#                  10 trials (FAULT_REPEATS: 3 under the sanitizers): the final file is exactly one run's model (its weights and
#                  state equal that run's own output, written alone), no *.tmp* left. Since
#                  main.c's lock file the second run is refused at start (one message); the
#                  case still checks the end result, and tmp_names checks the names.
#   tmp_names      under strace, a run writing 4 checkpoints creates 4 distinct temporary
#                  files PATH.tmp.<host>.<pid>.<counter>, each with O_CREAT|O_EXCL, and renames
#                  each over PATH (the names no other run or write can share)
#   legacy_v1_file  a version 1 checkpoint written by the previous writer (no checksums, no
#                  activations attribute; tests/faults/ckpt_v1.h5) loads, and a run resumed
#                  from it writes the same weights in the new layout
#   ckpt_transposed  W0 stored transposed, or as integers: refused, naming the dataset, the
#                  shape found and the shape wanted (or the type)
#   ckpt_nan       a NaN in W1, an Inf in Wout: refused, naming the dataset and the index
#   ckpt_corrupt_meta  8 metadata bytes flipped (outside every dataset's raw data), 12
#                  seeds (3 under the sanitizers), np 1 and 2: each run either fails with one message on every rank
#                  or, where the flips hit unused bytes, loads the very same model
#   per_layer_activation  a checkpoint whose layers have different activations (written
#                  through the library by make_bad_h5 per-layer-act) keeps them on load:
#                  `pcn_dist test` on it differs from the same weights with one activation,
#                  and a resumed run writes them back
#
# Usage: ckpt.sh CASE. Environment (set by CTest): those of harness.sh, and FAULT_SCRATCH.
set -u
case_name=${1:?usage: ckpt.sh CASE}
here=$(cd "$(dirname "$0")" && pwd)
SCRATCH=${FAULT_SCRATCH:?}/ckpt
. "$(dirname "$0")/../cli/harness.sh"

# ---- this script's additions to the harness ---------------------------------------------

# Harness settings: every failing run must end within 20 s; np (rank count) set per case.
max_seconds=20
bad() { failures=$((failures + 1)); say "FAIL $*"; }
# repeats N: how many times a random trial runs: N, or FAULT_REPEATS where CTest sets it
# (3 under the sanitizers).
repeats() { local r=${FAULT_REPEATS:-0}; [ "$r" -gt 0 ] 2> /dev/null && echo "$r" || echo "$1"; }

# no_tmp DIR...: no temporary checkpoint file left.
no_tmp() {
  local left; left=$(find "$@" -name '*.tmp*' 2> /dev/null)
  [ -z "$left" ] || bad "temporary files left: $(tr '\n' ' ' <<< "$left")"
}

# still_loads NAME FILE: `pcn_dist test` loads FILE and scores it.
still_loads() {
  runs=$((runs + 1))
  if expect_ok "$1" test --data d.h5 --checkpoint "$2" && grep -q '^test: accuracy' "$log/$1.out"
  then say "PASS $1: $2 loads: $(cat "$log/$1.out")"
  else bad "$1: $2 no longer loads with pcn_dist test"; fi
}

# A tmpfs of 200 KiB at $tiny, unmounted on exit; 77 without root or mount.
tiny=$top/tiny
mount_small() {
  [ "$(id -u)" = 0 ] || { say "SKIP: $case_name needs root (tmpfs)"; exit 77; }
  mkdir -p "$tiny" && mount -t tmpfs -o size=200k tmpfs "$tiny" ||
    { say "SKIP: cannot mount a tmpfs"; exit 77; }
  trap 'cd /; umount "$tiny"' EXIT
}
# A model whose checkpoint (about 1.1 MB) cannot fit the tmpfs, and one (few KB) that can.
big=(--data d.h5 --dims 16,512,512,4 "${small[@]}")
little=(--data d.h5 --dims 16,8,4 "${small[@]}")

# weights FILE: the datasets and state of a checkpoint as text (h5dump), to compare models.
weights() {
  h5dump -m %.9g -g /weights "$1" 2> /dev/null | sed 1d
  h5dump -m %.17g -g /state "$1" 2> /dev/null | sed 1d
}

# ---- cases -----------------------------------------------------------------------------

case $case_name in
full_disk_np1 | full_disk_np2)
  mount_small
  np=${case_name#full_disk_np}
  restore=0
  expect_fail full "C.h5|no space left" train "${big[@]}" --checkpoint "$tiny/C.h5"
  [ -z "$(ls -A "$tiny")" ] || bad "the tmpfs is not empty after the run: $(ls -A "$tiny")"
  no_tmp "$work" "$tiny"
  ;;
full_disk_old_kept)
  mount_small
  restore=0
  expect_ok old train "${little[@]}" --checkpoint "$tiny/C.h5" || setup_fail "small checkpoint"
  cp "$tiny/C.h5" "$top/keep/old.h5"
  for np in 1 2; do
    expect_fail "full_np$np" "C.h5|no space left" train "${big[@]}" --checkpoint "$tiny/C.h5" \
      --overwrite
    cmp -s "$top/keep/old.h5" "$tiny/C.h5" ||
      bad "np $np: the old checkpoint changed (or is gone): $(ls -l "$tiny")"
    [ "$(ls -A "$tiny")" = C.h5 ] || bad "np $np: tmpfs holds: $(ls -A "$tiny")"
    no_tmp "$work" "$tiny"
  done
  np=2
  still_loads old_loads "$tiny/C.h5"
  ;;
one_rank_fault)
  setup_ckpt
  restore=0
  for R in 0 1; do
    expect_fail "final_rank$R" "checkpoint|injected|rank $R" \
      train "${little[@]}" --checkpoint C.h5 --overwrite --inject-fault "ckpt-write@$R"
    expect_fail "periodic_rank$R" "checkpoint|injected|rank $R" \
      train "${little[@]}" --checkpoint C.h5 --overwrite --checkpoint-every 1 \
      --keep-checkpoints 2 --inject-fault "ckpt-write@$R"
  done
  expect_fail every_rank "checkpoint|injected" \
    train "${little[@]}" --checkpoint C.h5 --overwrite --inject-fault ckpt-write
  expect_fail rank_out_of_range "--inject-fault|ckpt-write@2|2 ranks" \
    train "${little[@]}" --checkpoint C.h5 --overwrite --inject-fault ckpt-write@2
  expect_fail rank_garbage "--inject-fault|ckpt-write@x" \
    train "${little[@]}" --checkpoint C.h5 --overwrite --inject-fault ckpt-write@x
  no_tmp "$work"
  still_loads still_loads C.h5
  ;;
concurrent_writers)
  many=(--data d.h5 --dims 16,256,256,4 --epochs 2 --batch-size 4 --t-infer 2 --t-learn 2
        --t-infer-test 2 --progress 0 --checkpoint-every 1)
  expect_ok refA train "${many[@]}" --seed 1 --checkpoint A.h5 &&
    expect_ok refB train "${many[@]}" --seed 2 --checkpoint B.h5 || setup_fail "reference runs"
  weights A.h5 > "$top/A.txt" && weights B.h5 > "$top/B.txt"
  cmp -s "$top/A.txt" "$top/B.txt" && setup_fail "the two runs' models are the same"
  both=0
  trials=$(repeats 10)
  for trial in $(seq 1 "$trials"); do
    runs=$((runs + 1))
    rm -f S.h5
    # --overwrite: the run that starts second may replace the first one's S.h5, so what
    # is tested is the lock and the atomic writes, not the refusal of an existing file
    mpi_run "a$trial" train "${many[@]}" --seed 1 --checkpoint S.h5 --overwrite &
    mpi_run "b$trial" train "${many[@]}" --seed 2 --checkpoint S.h5 --overwrite
    wait
    ca=$(rank_codes "a$trial") cb=$(rank_codes "b$trial")
    weights S.h5 > "$top/S.txt"
    if [ "$ca $cb" = "0 0 0 0" ]; then both=$((both + 1)); fi
    if [ "$ca" != "0 0" ] && [ "$cb" != "0 0" ]; then
      bad "trial $trial: both runs failed [$ca] [$cb]: $(cat "$log/a$trial.err" "$log/b$trial.err")"
    elif cmp -s "$top/S.txt" "$top/A.txt" && [ "$ca" = "0 0" ]; then say "PASS trial $trial: run A's model"
    elif cmp -s "$top/S.txt" "$top/B.txt" && [ "$cb" = "0 0" ]; then say "PASS trial $trial: run B's model"
    else bad "trial $trial: S.h5 is neither run's model (exit [$ca] [$cb]; $(ls -l S.h5 2>&1))"; fi
    for r in a b; do # a refused run (the lock): one message, the same status on every rank
      c=$(rank_codes "$r$trial")
      [ "$c" = "0 0" ] || { [ "${c% *}" = "${c#* }" ] && [ "${c% *}" != - ] &&
        [ "$(grep -c '^pcn_dist:' "$log/$r$trial.err")" = 1 ]; } ||
        bad "trial $trial: run $r failed untidily [$c]: $(head -c 300 "$log/$r$trial.err")"
    done
    no_tmp "$work"
  done
  say "runs that both succeeded (wrote at the same time): $both of $trials"
  ;;
tmp_names)
  command -v strace > /dev/null || { say "SKIP: tmp_names needs strace"; exit 77; }
  setup_ckpt
  # LeakSanitizer cannot stop the world under a tracer (sanitizer builds): leaks off here.
  launch=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
          strace -f -qq -e trace=openat,rename,renameat,renameat2 -o "$log/trace")
  expect_ok periodic train "${little[@]}" --checkpoint C.h5 --overwrite --checkpoint-every 1 \
    --keep-checkpoints 2 || exit 1
  launch=()
  runs=$((runs + 1))
  opens=$(grep -E 'openat\(.*"C\.h5\.tmp' "$log/trace")
  names=$(grep -oE '"C\.h5\.tmp[^"]*"' <<< "$opens" | sort)
  renamed=$(grep -E 'rename.*"C\.h5\.tmp[^"]*".*"C\.h5"' "$log/trace" | wc -l)
  if [ "$(wc -l <<< "$names")" = 4 ] && [ "$(uniq <<< "$names" | wc -l)" = 4 ] &&
     ! grep -v 'O_CREAT|O_EXCL' <<< "$opens" | grep -q . && [ "$renamed" = 4 ] &&
     ! grep -vqE "^\"C\.h5\.tmp\.$(hostname)\.[0-9]+\.[0-9]+\"$" <<< "$names"; then
    say "PASS tmp_names: 4 writes, 4 names, each created with O_EXCL and renamed: $(tr '\n' ' ' <<< "$names")"
  else
    bad "tmp_names: want 4 distinct C.h5.tmp.$(hostname).<pid>.<n> created with O_CREAT|O_EXCL and renamed to C.h5 ($renamed renames):"
    sed 's/^/       | /' <<< "$opens"
  fi
  no_tmp "$work"
  ;;
legacy_v1_file)
  # tests/faults/ckpt_v1.h5: written by the writer before this one (MPI-IO, HDF5's earliest
  # format: superblock 0, no checksums, no activations attribute), dims 16,8,4, on this d.h5
  cp "$here/ckpt_v1.h5" V1.h5 || setup_fail "no fixture $here/ckpt_v1.h5"
  [ "$(od -A n -t u1 -j 8 -N 1 V1.h5 | tr -d ' ')" = 0 ] || setup_fail "fixture not superblock 0"
  runs=$((runs + 1))
  if expect_ok test_v1 test --data d.h5 --checkpoint V1.h5 && grep -q '^test: accuracy' "$log/test_v1.out"
  then say "PASS test_v1: $(cat "$log/test_v1.out")"; else bad "test_v1: V1.h5 does not load"; fi
  # resumed at its end (epoch 1 of 1): the new-format file holds the very same weights
  runs=$((runs + 1))
  if expect_ok resume_v1 train --data d.h5 --resume V1.h5 --epochs 1 --progress 0 --checkpoint N.h5 &&
     cmp -s <(h5dump -m %.9g -A 0 -g /weights V1.h5 | sed 1d) <(h5dump -m %.9g -A 0 -g /weights N.h5 | sed 1d) &&
     h5dump -a /weights/W0/checksum N.h5 > /dev/null 2>&1
  then say "PASS resume_v1: N.h5 (new format, with checksums) holds V1.h5's weights"
  else bad "resume_v1: N.h5 missing, without checksums, or its weights differ from V1.h5's"; fi
  ;;
ckpt_transposed)
  setup_ckpt
  bad_variant w0-transpose T.h5 C.h5
  expect_fail test "T.h5|/weights/W0|[8, 16]|[16, 8]" test --data d.h5 --checkpoint T.h5
  expect_fail resume "T.h5|/weights/W0|[8, 16]|[16, 8]" \
    train --data d.h5 --resume T.h5 --epochs 2 --progress 0 --checkpoint C.h5
  bad_variant w0-int32 I.h5 C.h5
  expect_fail int32 "I.h5|/weights/W0|integer|float" test --data d.h5 --checkpoint I.h5
  ;;
ckpt_nan)
  setup_ckpt
  bad_variant w1-nan N.h5 C.h5
  expect_fail nan "N.h5|/weights/W1|nan|[2, 3]" test --data d.h5 --checkpoint N.h5
  expect_fail nan_resume "N.h5|/weights/W1|nan|[2, 3]" \
    train --data d.h5 --resume N.h5 --epochs 2 --progress 0 --checkpoint C.h5
  bad_variant wout-inf F.h5 C.h5
  expect_fail inf "F.h5|/weights/Wout|inf|[1, 0]" test --data d.h5 --checkpoint F.h5
  ;;
ckpt_corrupt_meta)
  setup_ckpt
  for np in 1 2; do # the undamaged file's output at each rank count
    mpi_run "clean_np$np" test --data d.h5 --checkpoint C.h5
    [ "$mpi_status" = 0 ] || setup_fail "C.h5 does not load at np $np"
  done
  # flip N SEED IN OUT: N bytes outside every dataset's raw data (h5dump -p) XOR-ed with a
  # non-zero byte; RAW instead of N: one byte inside /weights/W0's raw data.
  flip() {
    h5dump -p -H "$3" > "$top/layout.txt" 2> /dev/null || return 1
    python3 - "$@" "$top/layout.txt" << 'PY'
import random, re, sys
n, seed, src, dst, layout = sys.argv[1:6]
data = bytearray(open(src, 'rb').read())
text = open(layout).read()
raw = [(int(o), int(s)) for s, o in re.findall(r'SIZE (\d+)\s+OFFSET (\d+)', text)]
rng = random.Random(int(seed))
if n == 'RAW':
    w0 = re.search(r'DATASET "W0".*?SIZE (\d+)\s+OFFSET (\d+)', text, re.S)
    spots = [int(w0.group(2)) + int(w0.group(1)) // 2]
else:
    inside = set()
    for o, s in raw:
        inside.update(range(o, o + s))
    meta = [i for i in range(len(data)) if i not in inside]
    spots = rng.sample(meta, int(n))
for i in spots:
    data[i] ^= rng.randrange(1, 256)
open(dst, 'wb').write(data)
PY
  }
  np=2
  flip RAW 0 C.h5 R.h5 || setup_fail "flip"
  expect_fail raw_flip "R.h5|/weights/W0|checksum" test --data d.h5 --checkpoint R.h5
  failed=0 same=0
  for np in 1 2; do
    for seed in $(seq 1 "$(repeats 12)"); do
      runs=$((runs + 1))
      name=np${np}_seed$seed
      flip 8 "$seed" C.h5 X.h5 || setup_fail "flip"
      mpi_run "$name" test --data d.h5 --checkpoint X.h5
      codes=$(rank_codes "$name")
      lines=$(grep -c '^pcn_dist:' "$log/$name.err")
      if [ "$mpi_status" != 124 ] && [ "${codes//[ 0]/}" = "" ] &&
         cmp -s "$log/clean_np$np.out" "$log/$name.out"; then
        same=$((same + 1)); say "PASS $name: flips in unused bytes, the same model loads"
      elif [ "$mpi_status" = 124 ] || [ -n "$(stray_stderr "$log/$name.err")" ] ||
           [ "$lines" != 1 ] || ! grep -q '^pcn_dist: .*X.h5' "$log/$name.err" ||
           case " $codes " in *" 0 "* | *" - "*) true ;; *) false ;; esac ||
           [ "$(tr ' ' '\n' <<< "$codes" | sort -u | wc -l)" != 1 ] ||
           [ "${codes%% *}" -gt 125 ] ||
           awk -v s="$mpi_seconds" 'BEGIN { exit !(s > 20) }'; then
        bad "$name: exit [$codes] (mpirun $mpi_status, $mpi_seconds s), stderr:"
        sed 's/^/       | /' "$log/$name.err" | head -n 12
        sed 's/^/       out| /' "$log/$name.out" | head -n 3
      else
        failed=$((failed + 1)); say "PASS $name: exit [$codes]: $(grep '^pcn_dist:' "$log/$name.err")"
      fi
    done
  done
  say "damaged files refused: $failed, loaded the same model: $same"
  ;;
per_layer_activation)
  setup_ckpt
  restore=0
  cp C.h5 M.h5 && "$MAKE_BAD_H5" act=relu,tanh M.h5 || setup_fail "act=relu,tanh"
  expect_ok test_uniform test --data d.h5 --checkpoint C.h5 &&
    expect_ok test_mixed test --data d.h5 --checkpoint M.h5 || setup_fail "test runs"
  runs=$((runs + 1))
  if cmp -s "$log/test_uniform.out" "$log/test_mixed.out"; then
    bad "layer 1's tanh was not used: the same test line as relu,relu: $(cat "$log/test_mixed.out")"
  else say "PASS mixed: $(cat "$log/test_mixed.out") (relu,relu: $(cat "$log/test_uniform.out"))"; fi
  # round trip: a run resumed from M.h5 writes both activations back
  runs=$((runs + 1))
  if expect_ok resume train --data d.h5 --resume M.h5 --epochs 2 --progress 0 --checkpoint M2.h5 &&
     h5dump -a /activations M2.h5 | grep -q '"relu", *"tanh"' &&
     h5dump -a /activation M2.h5 | grep -q '"mixed"'; then
    say "PASS round_trip: $(h5dump -a /activations M2.h5 | grep -o '(0): .*')"
  else bad "round_trip: M2.h5 lacks activations relu, tanh: $(h5dump -A M2.h5 2>&1 | grep -A3 activation)"; fi
  # files without the attribute (and without checksums) read `activation` for every layer
  cp C.h5 L.h5 && "$MAKE_BAD_H5" legacy L.h5 || setup_fail "legacy"
  runs=$((runs + 1))
  if expect_ok test_legacy test --data d.h5 --checkpoint L.h5 &&
     cmp -s "$log/test_uniform.out" "$log/test_legacy.out"; then
    say "PASS legacy: $(cat "$log/test_legacy.out")"
  else bad "legacy: L.h5 does not load as C.h5 does"; fi
  cp C.h5 B.h5 && "$MAKE_BAD_H5" act=relu,gelu B.h5 || setup_fail "act=relu,gelu"
  expect_fail bad_name "B.h5|layer 1|gelu" test --data d.h5 --checkpoint B.h5
  cp C.h5 W.h5 && "$MAKE_BAD_H5" act=relu W.h5 || setup_fail "act=relu"
  expect_fail bad_count "W.h5|activations|2 strings" test --data d.h5 --checkpoint W.h5
  no_tmp "$work"
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs runs passed"
[ "$failures" -eq 0 ]
