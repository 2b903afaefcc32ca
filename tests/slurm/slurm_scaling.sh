#!/usr/bin/env bash
# Proves, on a real one-node Slurm cluster (tests/slurm/cluster.sh), that the scaling driver's
# Slurm runners work with P = 1, 2 on a tiny config: RUNNER=slurm-array submits one job
# array of two tasks, each running its own line of the manifest (the metrics say 1 and 2
# ranks), and a report job that waits for the whole array (afterany) writes the CSV, the
# Markdown table and, where gnuplot exists, the PNG plots; RUNNER=slurm (one job per P)
# does the same for a weak-scaling study. Skipped (77) without slurm-wlm, munge or root.
# Environment from CTest: PCN_DIST, PCN_TESTTOOL, STUDY, CLUSTER, SCRATCH.
# shellcheck disable=SC2015  # "A && B || fail" fails when either does, as meant
set -u
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh" slurm_scaling
export OMP_NUM_THREADS=1 PCN_DIST
"$PCN_TESTTOOL" mkdata "$dir/d.h5" 600 100 32 4 5 || fail mkdata
export DATA=$dir/d.h5 BATCH=50 ARGS="--dims 32,24,4 --epochs 1 --t-infer 5 --t-learn 5 --t-infer-test 10"

# tables MODE: one CSV row per P with the ranks the run really had, the table, the plots
tables() {
  local csv=$dir/out/$1.csv
  [ "$(wc -l < "$csv" 2>/dev/null)" = 3 ] || fail "$1.csv: $(cat "$csv" 2>&1)"
  awk -F, 'NR > 1 { printf "%s ", $2 }' "$csv" | grep -qx "1 2 " || fail "$1.csv ranks: $(cat "$csv")"
  for p in 1 2; do
    grep -q "\"event\":\"epoch\".*\"ranks\":$p," "$dir/out/$1-p$p.jsonl" || fail "$1-p$p did not run on $p ranks"
  done
  grep -q "^| 2 |" "$dir/out/$1.md" || fail "$1.md has no P = 2 row"
  if command -v gnuplot > /dev/null; then
    for png in speedup energy; do [ -s "$dir/out/$1-$png.png" ] || fail "$1-$png.png missing"; done
  fi
}

RUNNER=slurm-array WAIT=1 POLL=0.5 "$STUDY" strong "$dir/out" 1 2 > "$dir/array.txt" 2>&1 \
  || fail "slurm-array: $(cat "$dir/array.txt" "$dir"/out/*.log)"
array=$(sed -n 's/^== job array \([0-9]*\):.*/\1/p' "$dir/array.txt")
[ -n "$array" ] || fail "no job array: $(cat "$dir/array.txt")"
tasks=$(scontrol show job "$array" | grep -c "ArrayJobId=$array ArrayTaskId=")
[ "$tasks" = 2 ] || fail "job array $array has $tasks tasks, not 2"
tables strong

RUNNER=slurm POLL=0.5 "$STUDY" weak "$dir/out" 1 2 > "$dir/jobs.txt" 2>&1 \
  || fail "slurm: $(cat "$dir/jobs.txt" "$dir"/out/*.log)"
tables weak
echo "PASS: the scaling driver as one Slurm job array (+ report job) and as one job per P"
