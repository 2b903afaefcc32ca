#!/usr/bin/env bash
# Scaling studies of pcn_dist: runs the same training for a list of rank counts and collects
# the metrics into a CSV, a Markdown table and PNG plots (jobs/scaling/report.py + gnuplot).
#
#   jobs/scaling/study.sh MODE OUT [P ...]                      # a loop of mpirun runs here
#   RUNNER=slurm jobs/scaling/study.sh MODE OUT [P ...]         # one Slurm job per P, in turn
#   RUNNER=slurm-array jobs/scaling/study.sh MODE OUT [P ...]   # one Slurm job array, then a
#                                                               # report job after all of it
# MODE: strong  fixed global batch (BATCH), P = 1..N
#       weak    fixed per-rank batch (BATCH per rank: global batch = BATCH x P)
#       large   large-batch sweep: global batch BATCH x P with --lr-scaling $LR_SCALING
#               (default sqrt) against the reference batch BATCH, and --lr-warmup $WARMUP
# Environment: PCN_DIST (default build/pcn_dist), DATA (a pcn-dataset file; required),
# ARGS (training options besides the batch, e.g. "--dims 784,256,10 --epochs 1"),
# BATCH (default 100), LR_SCALING, WARMUP (default 0), MPIRUN (RUNNER=local; default mpirun).
# Slurm runners: SLURM_ARGS (extra sbatch options for the runs), REPORT_SLURM_ARGS (for the
# report job), ARRAY_LIMIT (slurm-array: at most this many runs at once, e.g. 1 for timings
# on a shared node), WAIT=1 (slurm-array: wait for the report instead of returning once the
# jobs are queued), POLL (seconds between asking Slurm whether a job has ended; default 5).
# Ranks start as in the batch scripts (jobs/slurm/pcn_job.sh: srun with PMIx or PMI-2, else
# mpirun; PCN_LAUNCH, PCN_SRUN_ARGS, ...); site settings go through sbatch's own variables
# (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT, ...). A Slurm job array asks the same
# resources for every task, so each task gets the largest P's ranks and uses P of them;
# RUNNER=slurm sizes each job to its P but runs the jobs one after another.
#
# The study is written first as OUT/MODE.manifest, one run a line (P, name, the command);
# every runner starts the lines through this script (--task MANIFEST [INDEX]), and the
# report (--collect MANIFEST) names the runs that left no metrics and then fails. Each run
# writes OUT/MODE-pP.jsonl (metrics) and OUT/MODE-pP.log; each Slurm job's own output (a
# status line, Slurm's messages) is OUT/slurm-*.out, the report job's OUT/MODE-report.log.
# The folder, the data and this repository must be on a file system the compute nodes see.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
self=$root/jobs/scaling/study.sh
# shellcheck source=SCRIPTDIR/../slurm/pcn_job.sh
. "$root/jobs/slurm/pcn_job.sh"   # pcn_launcher

# run_line MANIFEST INDEX: runs the manifest's line INDEX (from 0) with ${LAUNCH[@]} -n P.
run_line() {
  local out p name cmd
  out=$(dirname "$1")
  IFS=$'\t' read -r p name cmd < <(sed -n "$(( $2 + 1 ))p" "$1")
  [ -n "${cmd:-}" ] || { echo "no line $2 in $1" >&2; return 2; }
  eval "set -- $cmd"
  if "${LAUNCH[@]}" -n "$p" "$@" > "$out/$name.log" 2>&1; then echo "== $name done"
  else echo "== $name failed: $out/$name.log"; return 1; fi
}

# collect MANIFEST: the report, then the runs that left no metrics (exit 1 if any).
collect() {
  local out mode name rc=0 missing=()
  out=$(dirname "$1") mode=$(basename "$1" .manifest)
  python3 "$root/jobs/scaling/report.py" "$out" "$mode" || rc=1
  while IFS=$'\t' read -r _ name _; do
    grep -qs '"event":"epoch"' "$out/$name.jsonl" || missing+=("$name (see $out/$name.log)")
  done < "$1"
  [ ${#missing[@]} -eq 0 ] || { printf 'no metrics from %s\n' "${missing[@]}"; rc=1; }
  return $rc
}

# job_wait JOBID: waits, asking slurmctld every POLL seconds (default 5), until the job has
# ended; 0 when it completed. (sbatch --wait polls ever more rarely: 2, 8, 32, ... s.)
job_wait() {
  local info
  while true; do
    if info=$(scontrol show job "$1" 2>&1); then
      case $(grep -o 'JobState=[A-Z_]*' <<<"$info") in
        JobState=COMPLETED) return 0 ;;
        JobState=FAILED|JobState=CANCELLED|JobState=TIMEOUT|JobState=NODE_FAIL|JobState=OUT_OF_MEMORY|JobState=BOOT_FAIL|JobState=DEADLINE|JobState=PREEMPTED) return 1 ;;
      esac
    elif grep -q "Invalid job id" <<<"$info"; then
      return 1   # long gone from slurmctld (MinJobAge)
    fi
    sleep "${POLL:-5}"
  done
}

case ${1:-} in
  --task) pcn_launcher; run_line "$2" "${3:-${SLURM_ARRAY_TASK_ID:?}}"; exit ;;
  --collect) collect "$2"; exit ;;
esac

mode=$1 out=$2; shift 2
ps=("$@"); [ ${#ps[@]} -gt 0 ] || ps=(1 2)
dist=${PCN_DIST:-$root/build/pcn_dist}
batch=${BATCH:-100}
: "${DATA:?set DATA to a data set file}"
mkdir -p "$out" && out=$(cd "$out" && pwd)
manifest=$out/$mode.manifest

args_for() { # P -> the run's batch options
  case $mode in
    strong) echo "--batch-size $batch" ;;
    weak) echo "--batch-size $(( batch * $1 ))" ;;
    large) echo "--batch-size $(( batch * $1 )) --lr-scaling ${LR_SCALING:-sqrt} --lr-ref-batch $batch --lr-warmup ${WARMUP:-0}" ;;
    *) echo "unknown mode '$mode' (strong, weak, large)" >&2; exit 2 ;;
  esac
}

: > "$manifest"
maxp=1
for p in "${ps[@]}"; do
  name=$mode-p$p
  # shellcheck disable=SC2206,SC2207  # word lists on purpose
  cmd=("$dist" train --data "$DATA" ${ARGS:-} $(args_for "$p") --metrics "$out/$name.jsonl" --progress 0)
  printf '%s\t%s\t%s\n' "$p" "$name" "$(printf '%q ' "${cmd[@]}")" >> "$manifest"
  [ "$p" -gt "$maxp" ] && maxp=$p
done
n=${#ps[@]}
quote() { printf '%q ' "$@"; }

# shellcheck disable=SC2086  # SLURM_ARGS and REPORT_SLURM_ARGS are word lists on purpose
case ${RUNNER:-local} in
  local)
    for i in $(seq 0 $(( n - 1 ))); do
      p=${ps[$i]}
      read -ra LAUNCH <<< "${MPIRUN:-mpirun}"
      # Open MPI's mpirun refuses to run as root without --allow-run-as-root, and more ranks
      # than cores ("not enough slots") without --oversubscribe; report.py marks such runs.
      [ "$(id -u)" -eq 0 ] && LAUNCH+=(--allow-run-as-root)
      [ "$p" -gt "$(nproc)" ] && LAUNCH+=(--oversubscribe)
      run_line "$manifest" "$i" || true   # collect names the runs that failed
    done
    collect "$manifest" ;;
  slurm)
    for i in $(seq 0 $(( n - 1 ))); do
      job=$(sbatch --parsable -n "${ps[$i]}" -J "pcn-$mode" -o "$out/slurm-%j.out" ${SLURM_ARGS:-} \
        --wrap "bash $(quote "$self" --task "$manifest" "$i")")
      job_wait "${job%%;*}" || true   # collect names the runs that failed
      echo "== $mode-p${ps[$i]}: job ${job%%;*} ended"
    done
    collect "$manifest" ;;
  slurm-array)
    array=$(sbatch --parsable --array="0-$(( n - 1 ))${ARRAY_LIMIT:+%$ARRAY_LIMIT}" -n "$maxp" \
      -J "pcn-$mode" -o "$out/slurm-%A_%a.out" ${SLURM_ARGS:-} \
      --wrap "bash $(quote "$self" --task "$manifest")")
    array=${array%%;*}
    echo "== job array $array: $n runs (P = ${ps[*]}), $maxp ranks each"
    report=$(sbatch --parsable --dependency="afterany:$array" -n 1 -J "pcn-$mode-report" \
      -o "$out/$mode-report.log" ${REPORT_SLURM_ARGS:-} --wrap "bash $(quote "$self" --collect "$manifest")")
    report=${report%%;*}
    echo "== report job $report runs after the array: $out/$mode.csv, $out/$mode.md, $out/$mode-report.log"
    if [ "${WAIT:-0}" = 1 ]; then
      rc=0; job_wait "$report" || rc=1
      cat "$out/$mode-report.log"
      exit $rc
    fi ;;
  *) echo "unknown RUNNER '${RUNNER}' (local, slurm, slurm-array)" >&2; exit 2 ;;
esac
