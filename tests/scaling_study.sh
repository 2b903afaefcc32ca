#!/usr/bin/env bash
# Proves that jobs/scaling/study.sh, run here with P = 1, 2 on a small config, produces the
# CSV (one row per P, speedup 1 at P = 1, the same final energy at both P up to 1e-5), the
# Markdown table and, where gnuplot exists, the two PNG plots; for strong and large modes.
# And that a run that fails is named and fails the study (the report still made).
set -u
dir=$SCRATCH/scaling && rm -rf "$dir" && mkdir -p "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
"$PCN_TESTTOOL" mkdata "$dir/d.h5" 600 100 32 4 5 || fail mkdata
export DATA=$dir/d.h5 BATCH=50 ARGS="--dims 32,24,4 --epochs 1 --t-infer 5 --t-learn 5 --t-infer-test 10"
for mode in strong large; do
  "$STUDY" $mode "$dir/out" 1 2 > "$dir/$mode.txt" 2>&1 || fail "$mode: $(cat "$dir/$mode.txt")"
  csv=$dir/out/$mode.csv
  [ "$(wc -l < "$csv")" -eq 3 ] || fail "$mode.csv: $(cat "$csv")"
  awk -F, 'NR == 2 && $7 != 1.0 { exit 1 }' "$csv" || fail "$mode: speedup at P=1 is not 1: $(cat "$csv")"
  grep -q "^| 2 |" "$dir/out/$mode.md" || fail "$mode.md has no P = 2 row"
  if command -v gnuplot > /dev/null; then
    for png in speedup energy; do
      [ -s "$dir/out/$mode-$png.png" ] || fail "$mode-$png.png missing"
    done
  fi
done
# Strong scaling: the same training at P = 1 and 2 ends at the same energy.
awk -F, 'NR == 2 { e = $10 } NR == 3 { d = $10 - e; if (d < 0) d = -d; if (d > 1e-5 * (e < 0 ? -e : e)) exit 1 }' \
  "$dir/out/strong.csv" || fail "strong: final energies differ: $(cat "$dir/out/strong.csv")"
# A run that cannot train (ARGS names a width the data does not have).
ARGS="--dims 31,4 --epochs 1" "$STUDY" weak "$dir/bad" 1 > "$dir/bad.txt" 2>&1 \
  && fail "a study whose run failed succeeded: $(cat "$dir/bad.txt")"
grep -q "no metrics from weak-p1" "$dir/bad.txt" || fail "the failed run is not named: $(cat "$dir/bad.txt")"
echo "PASS: scaling study tables and plots; a failed run fails the study"
