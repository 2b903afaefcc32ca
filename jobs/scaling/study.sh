#!/usr/bin/env bash
# Scaling studies of pcn_dist: runs the same training for a list of rank counts and collects
# the metrics into a CSV, a Markdown table and PNG plots (jobs/scaling/report.py + gnuplot).
#
#   jobs/scaling/study.sh MODE OUT [P ...]        # a plain loop of mpirun runs on this machine
#   RUNNER=slurm jobs/scaling/study.sh MODE OUT [P ...]   # one Slurm job per P (an array), then report
#
# MODE: strong  fixed global batch (BATCH), P = 1..N
#       weak    fixed per-rank batch (BATCH per rank: global batch = BATCH x P)
#       large   large-batch sweep: global batch BATCH x P with --lr-scaling $LR_SCALING
#               (default sqrt) against the reference batch BATCH, and --lr-warmup $WARMUP
# Environment: PCN_DIST (default build/pcn_dist), DATA (a pcn-dataset file; required),
# ARGS (training options besides the batch, e.g. "--dims 784,256,10 --epochs 1"),
# BATCH (default 100), LR_SCALING, WARMUP (default 0), MPIRUN (default mpirun),
# SLURM_ARGS (extra sbatch options). Each run writes OUT/MODE-pP.jsonl (metrics) and .log.
set -euo pipefail
mode=$1 out=$2; shift 2
ps=("$@"); [ ${#ps[@]} -gt 0 ] || ps=(1 2)
root=$(cd "$(dirname "$0")/../.." && pwd)
dist=${PCN_DIST:-$root/build/pcn_dist}
batch=${BATCH:-100}
: "${DATA:?set DATA to a data set file}"
mkdir -p "$out"
mpirun_cmd=(${MPIRUN:-mpirun})
[ "$(id -u)" -eq 0 ] && mpirun_cmd+=(--allow-run-as-root)

args_for() { # P -> the run's batch options
  case $mode in
    strong) echo "--batch-size $batch" ;;
    weak) echo "--batch-size $(( batch * $1 ))" ;;
    large) echo "--batch-size $(( batch * $1 )) --lr-scaling ${LR_SCALING:-sqrt} --lr-ref-batch $batch --lr-warmup ${WARMUP:-0}" ;;
    *) echo "unknown mode '$mode' (strong, weak, large)" >&2; exit 2 ;;
  esac
}

for p in "${ps[@]}"; do
  name=$mode-p$p
  # shellcheck disable=SC2046,SC2086  # word lists on purpose
  cmd=("$dist" train --data "$DATA" ${ARGS:-} $(args_for "$p") --metrics "$out/$name.jsonl" --progress 0)
  if [ "${RUNNER:-local}" = slurm ]; then
    sbatch --parsable --wait -n "$p" -o "$out/$name.log" ${SLURM_ARGS:-} \
      --wrap "srun --mpi=${PCN_SRUN_MPI:-pmix} ${cmd[*]}" > /dev/null
  else
    extra=(); [ "$p" -gt "$(nproc)" ] && extra=(--oversubscribe)
    "${mpirun_cmd[@]}" -np "$p" "${extra[@]}" "${cmd[@]}" > "$out/$name.log" 2>&1
  fi
  echo "== $name done"
done
python3 "$root/jobs/scaling/report.py" "$out" "$mode"
