#!/usr/bin/env bash
# What this proves: `pcn_dist train` does not replace a checkpoint of another run unless
# told. A training run whose checkpoint file exists (--checkpoint C.h5, or the default
# pcn_dist_checkpoint.h5 without --checkpoint; with --keep-checkpoints K > 1 also a kept
# file C.h5.1 ... C.h5.{K-1} that its writes would rotate) and that does not resume from
# it (--resume C.h5 or one of its kept files, compared by identity, not spelling) is
# refused at start-up unless --overwrite is given.
#   refused:   each such run, under mpirun -np 2 (and -np 3), is refused by every rank
#              together (same non-zero status, exit status 2, no hang), with exactly one
#              `pcn_dist:` line that names the file and the ways out (--resume, --overwrite),
#              and leaves the folder as it was: C.h5 byte-identical, no new file. A
#              different spelling of the path (./C.h5, an absolute path, a symbolic link)
#              is refused too; --overwrite in a --config file is refused (a command-line
#              decision, not a setting).
#   overwrite: with --overwrite the same run succeeds and replaces C.h5 (another seed, so
#              other weights; it loads); the flag is not stored in the checkpoint (a run
#              resumed from the new file onto another existing file is still refused); a
#              kept file C.h5.1 beyond --keep-checkpoints 1 is not in the way and stays.
#   resume:    --resume C.h5 --checkpoint C.h5 continues without --overwrite (also spelled
#              ./C.h5 and as an absolute path), as does a resume from a kept file C.h5.1
#              onto C.h5 (what jobs/slurm/pcn_job.sh does when the newest does not load).
# Runs go through tests/cli/harness.sh (2 ranks unless np says otherwise).
#
# Usage: overwrite.sh CASE   (CASE: refused overwrite resume)
# Environment (set by CTest): PCN_DIST, PCN_CONVERT, MAKE_BAD_H5, MPIEXEC, SCRATCH.
set -u
case_name=${1:?usage: overwrite.sh CASE}
. "$(dirname "$0")/harness.sh"

fresh=(train --data d.h5 --dims 16,8,4 "${small[@]}")

# refuse NAME ARGS...: expect_fail with the refusal's key words and exit status 2 on every
# rank.
refuse() {
  local name=$1 file=$2; shift 2
  expect_fail "$name" "$file|exists|does not resume|--resume $file|--overwrite" "$@"
  local codes; codes=$(rank_codes "$name")
  if [ -n "${codes//[2 ]/}" ]; then
    failures=$((failures + 1)); say "FAIL $name: want exit status 2 on every rank, got [$codes]"
  fi
}

# pcn_dist info under mpirun, as every run here: a singleton Open MPI process crashes
# LeakSanitizer's exit-time thread stop in the sanitizer build ("Tracer caught signal 11").
info() { "$MPIEXEC" -np 1 "$PCN_DIST" info "$@"; }

# changed NAME: a check that C.h5 is no longer the set-up copy and loads.
changed() {
  runs=$((runs + 1))
  if cmp -s "$top/keep/C.h5" C.h5; then
    failures=$((failures + 1)); say "FAIL $1: C.h5 is still the set-up copy"
  elif ! info C.h5 2> /dev/null | grep -q pcn-checkpoint; then
    failures=$((failures + 1)); say "FAIL $1: C.h5 does not load: $(info C.h5 2>&1)"
  else
    say "PASS $1: C.h5 replaced, $(info C.h5 | grep 'next batch')"
  fi
}

case $case_name in
refused)
  setup_ckpt
  refuse fresh C.h5 "${fresh[@]}" --checkpoint C.h5
  np=3 refuse fresh_np3 C.h5 "${fresh[@]}" --checkpoint C.h5
  refuse dot_spelling ./C.h5 "${fresh[@]}" --checkpoint ./C.h5
  refuse absolute "$work/C.h5" "${fresh[@]}" --checkpoint "$work/C.h5"
  ln -s C.h5 L.h5
  refuse symlink L.h5 "${fresh[@]}" --checkpoint L.h5
  rm L.h5
  # a run resumed from another checkpoint does not continue this one
  cp C.h5 "$top/O.h5"
  refuse other_resume C.h5 train --data d.h5 --resume "$top/O.h5" --epochs 2 --progress 0 \
    --checkpoint C.h5
  # a kept file that a write keeping 3 would rotate (C.h5 itself absent)
  mkdir k && cp C.h5 k/C.h5.2
  refuse kept k/C.h5.2 "${fresh[@]}" --checkpoint k/C.h5 --keep-checkpoints 3
  rm -r k
  # the default checkpoint of a run without --checkpoint
  cp C.h5 pcn_dist_checkpoint.h5
  refuse default pcn_dist_checkpoint.h5 "${fresh[@]}"
  rm pcn_dist_checkpoint.h5
  printf 'overwrite = 1\n' > o.ini
  expect_fail overwrite_in_config "overwrite|command-line flag" \
    "${fresh[@]}" --checkpoint C.h5 --config o.ini
  ;;
overwrite)
  setup_ckpt
  cp C.h5 C.h5.1 # a kept file of an earlier run: --keep-checkpoints 1 neither needs nor moves it
  runs=$((runs + 1))
  expect_ok overwrite "${fresh[@]}" --seed 7 --checkpoint C.h5 --overwrite || exit 1
  changed overwrite
  runs=$((runs + 1))
  cmp -s "$top/keep/C.h5" C.h5.1 && ! ls ./*.tmp* > /dev/null 2>&1 && [ ! -e C.h5.2 ] ||
    { failures=$((failures + 1)); say "FAIL kept: C.h5.1 changed, or a file appeared: $(ls)"; }
  cp C.h5 "$top/keep/C.h5" # the new checkpoint is the one a refused run must keep
  cp C.h5 E.h5
  refuse not_stored E.h5 train --data d.h5 --resume C.h5 --epochs 2 --progress 0 \
    --checkpoint E.h5
  ;;
resume)
  setup_ckpt
  runs=$((runs + 1))
  expect_ok resume train --data d.h5 --resume C.h5 --epochs 2 --progress 0 --checkpoint C.h5 ||
    exit 1
  changed resume
  cp C.h5 "$top/keep/C.h5"
  runs=$((runs + 1))
  expect_ok resume_spelled train --data d.h5 --resume ./C.h5 --epochs 3 --progress 0 \
    --checkpoint "$work/C.h5" --keep-checkpoints 2 || exit 1
  changed resume_spelled
  runs=$((runs + 1))
  cmp -s "$top/keep/C.h5" C.h5.1 ||
    { failures=$((failures + 1)); say "FAIL resume_spelled: C.h5.1 is not the previous C.h5"; }
  # from the kept file onto the checkpoint (the newest did not load)
  cp C.h5 "$top/keep/C.h5"
  runs=$((runs + 1))
  expect_ok resume_kept train --data d.h5 --resume C.h5.1 --epochs 4 --progress 0 \
    --checkpoint C.h5 --keep-checkpoints 2 || exit 1
  changed resume_kept
  ;;
*)
  say "unknown case '$case_name'"; exit 2 ;;
esac

say "$case_name: $((runs - failures)) of $runs checks passed"
[ "$failures" -eq 0 ]
