#!/usr/bin/env bash
# What of jobs/slurm/pcn_train_gpu.sbatch can be proven without a GPU, on a real one-node
# Slurm cluster whose node declares 2 fake GPUs (cluster.sh FAKE_GPUS=2: GRES device files
# that link to /dev/null, which Slurm schedules and binds like real ones):
#   1. the script's default request of 4 GPUs per node is refused at submission here (with
#      its CPU request shrunk to the node's 2 CPUs: a job asking more CPUs than the
#      partition has is queued and pends with Reason=PartitionConfig on this cluster);
#   2. with 2 GPUs per node (SBATCH_GPUS_PER_NODE, the documented override) and 2 ranks per
#      node, a stand-in for pcn_dist records what each rank gets: both ranks see both of
#      the job's GPUs (CUDA_VISIBLE_DEVICES=0,1, not hidden by srun's binding), so node-local
#      rank mod the visible devices gives each its own GPU, and the arguments carry
#      --device cuda --comm nccl; a job with fewer ranks than GPUs is warned about;
#   3. PCN_DEVICE=cuda in a job without GPUs is refused by the script before any launch;
#   4. the real pcn_dist, given a fake GPU, refuses with its own message and the job fails
#      (not run on a machine with a real GPU, where the fake devices would mislead it).
# No GPU computation is tested here. Skipped (77) without slurm-wlm, munge or root.
# Environment from CTest: PCN_DIST, PCN_TESTTOOL, JOBS, CLUSTER, SCRATCH.
# shellcheck disable=SC2015  # "A && B || fail" fails when either does, as meant
set -u
export FAKE_GPUS=2
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh" slurm_gpu
gpu=$JOBS/pcn_train_gpu.sbatch
export PCN_DATA=$dir/data.h5
"$PCN_TESTTOOL" mkdata "$PCN_DATA" 400 100 16 4 5 || fail "mkdata"
export PCN_ARGS="--dims 16,8 --output-dim 4 --epochs 1 --batch-size 50 --t-infer 3 --t-learn 3"

# 1. The default request: 4 GPUs per node, on a node with 2.
if err=$(sbatch --parsable --ntasks-per-node=2 --cpus-per-task=1 -o "$dir/d.out" "$gpu" 2>&1); then fail "the 4-GPU job was accepted: $err"; fi
grep -q "Requested node configuration is not available" <<<"$err" || fail "sbatch said: $err"

# 2. What each rank gets, through a stand-in that writes it down.
cat > "$dir/standin.sh" <<'SH'
#!/usr/bin/env bash
[ "$1" = train ] || exit 1
echo "${CUDA_VISIBLE_DEVICES-unset}|$SLURM_LOCALID|$*" > "$PCN_RUN_DIR/rank$SLURM_PROCID"
SH
chmod +x "$dir/standin.sh"
g=$(PCN_DIST=$dir/standin.sh PCN_RUN_DIR=$dir/g SBATCH_GPUS_PER_NODE=2 sbatch --parsable \
    --ntasks-per-node=2 --cpus-per-task=1 -o "$dir/g.out" "$gpu") || fail "sbatch"
wait_done "$g" || fail "job $g did not complete: $(state "$g")"
taken=""
for r in 0 1; do
  [ -f "$dir/g/rank$r" ] || fail "rank $r did not run"
  IFS='|' read -r cvd local args < "$dir/g/rank$r"
  [ "$cvd" = 0,1 ] || fail "rank $r sees CUDA_VISIBLE_DEVICES=$cvd, not both GPUs"
  grep -q -- "--device cuda --comm nccl" <<<"$args" || fail "rank $r: arguments $args"
  n=$(tr ',' '\n' <<<"$cvd" | grep -c .)
  taken="$taken $(cut -d, -f$(( local % n + 1 )) <<<"$cvd")"
done
[ "$taken" = " 0 1" ] || fail "ranks would take GPUs$taken"
grep -q "CUDA_VISIBLE_DEVICES=0,1" g.out && ! grep -q warning g.out || fail "job $g: preflight view or a warning"
w=$(PCN_DIST=$dir/standin.sh PCN_RUN_DIR=$dir/w SBATCH_GPUS_PER_NODE=2 sbatch --parsable \
    --ntasks-per-node=1 --cpus-per-task=1 -o "$dir/w.out" "$gpu") || fail "sbatch"
wait_done "$w" || fail "job $w did not complete: $(state "$w")"
grep -q "warning: 1 ranks per node but 2 GPUs" w.out || fail "job $w: no warning of 1 rank on 2 GPUs"

# 3. cuda without GPUs.
c=$(PCN_DIST=$dir/standin.sh PCN_DEVICE=cuda PCN_RUN_DIR=$dir/c sbatch --parsable -n 2 \
    -o "$dir/c.out" "$JOBS/pcn_train.sbatch") || fail "sbatch"
wait_done "$c" && fail "job $c with --device cuda and no GPUs completed"
grep -q "this job has no GPUs" c.out || fail "job $c: no message"
[ -e "$dir/c/rank0" ] && fail "job $c launched ranks"

# 4. The real pcn_dist on a fake GPU.
if nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "not run: part 4 (this machine has a GPU; the fake devices would mislead pcn_dist)"
else
  r=$(PCN_DIST=$PCN_DIST PCN_RUN_DIR=$dir/r SBATCH_GPUS_PER_NODE=2 sbatch --parsable \
      --ntasks-per-node=2 --cpus-per-task=1 -o "$dir/r.out" "$gpu") || fail "sbatch"
  wait_done "$r" && fail "job $r: pcn_dist trained on a fake GPU"
  grep -qiE "^pcn_dist: .*(cuda|gpu|--comm)" r.out && grep -q "pcn_dist exited with [12]$" r.out \
    || fail "job $r: no refusal from pcn_dist"
  grep -q requeueing r.out && fail "job $r requeued itself"
  echo "pcn_dist refused: $(grep -m1 '^pcn_dist: ' r.out)"
fi
echo "PASS: the GPU script's request, binding, arguments and refusals (fake GPUs; no GPU computation)"
