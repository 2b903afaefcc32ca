# shellcheck shell=bash
# pcn_job.sh — the logic of pcn_dist's Slurm batch scripts, sourced by each of them
# (pcn_train.sbatch: CPU; pcn_train_gpu.sbatch: one rank per GPU; pcn_train_multinode.sbatch:
# several nodes) and by jobs/scaling/study.sh. Sourcing only defines functions; a batch script
# calls pcn_job_main, which:
#   1. runs the site's set-up hook (PCN_SETUP), picks the device, the launcher and checks
#      that the job's GPUs and ranks match;
#   2. checks from every node that the data set can be read and the run folder written, and
#      on GPUs prints which devices each rank sees;
#   3. starts pcn_dist, resuming from the newest checkpoint that loads;
#   4. on USR1 (Slurm sends it --signal=B:USR1@120 before the time limit) asks the ranks to
#      checkpoint; when pcn_dist exits with 3 (stopped with a checkpoint) it requeues the job.
#
# Variables (set them in the environment of sbatch, which passes them on):
#   PCN_DATA        the data set (HDF5); required
#   PCN_ARGS        training options (default none; see pcn_dist --help)
#   PCN_DIST        the pcn_dist binary (default: pcn_dist on PATH, else ./build/pcn_dist)
#   PCN_RUN_DIR     checkpoints and metrics (default ./pcn-run-$SLURM_JOB_ID); on several
#                   nodes it and PCN_DATA must be on a file system every node sees
#   PCN_KEEP        checkpoints kept (default 2: a damaged newest one has a fallback)
#   PCN_CKPT_EVERY  batches between checkpoints (default 0: at the end and on USR1 only)
#   PCN_SETUP       a command run first in the job's shell, for the site's environment:
#                   PCN_SETUP="module load openmpi cuda" (default none)
#   PCN_DEVICE      cpu | cuda | auto (default: cuda when the job has GPUs on its first
#                   node, else cpu; pcn_train_gpu.sbatch: cuda)
#   PCN_COMM        with cuda: nccl | mpi, how weight updates are summed (default nccl)
#   PCN_LAUNCH      srun | mpirun (default: srun --mpi=pmix, else --mpi=pmi2, whichever
#                   `srun --mpi=list` offers, else mpirun inside the allocation)
#   PCN_SRUN_MPI    the PMI for PCN_LAUNCH=srun (default pmix)
#   PCN_SRUN_ARGS, PCN_MPIRUN_ARGS   extra options for srun or mpirun (default none)
#   PCN_GPU_BIND    passed to srun as --gpu-bind (default: not passed; see pcn_gpu_setup)
#   PCN_PREFLIGHT   0 skips step 2 (default 1)
#   OMP_NUM_THREADS threads per rank (default: --cpus-per-task)
# The #SBATCH lines are defaults. sbatch options override them, and so do sbatch's own
# input variables, which suit site-wide settings: SBATCH_PARTITION, SBATCH_ACCOUNT,
# SBATCH_QOS, SBATCH_CONSTRAINT, SBATCH_TIMELIMIT, SBATCH_GPUS_PER_NODE (man sbatch).

# ---- launcher ---------------------------------------------------------------------------

# pcn_launcher: sets the array LAUNCH to the command that starts the ranks inside an
# allocation: srun with the site's PMI (PMIx, else PMI-2), else mpirun, which takes the
# nodes and rank counts from Slurm. Local.
pcn_launcher() {
  local how=${PCN_LAUNCH:-} mpis
  if [ -z "$how" ]; then
    mpis=$(srun --mpi=list 2>&1) || mpis=""
    if grep -qw pmix <<<"$mpis"; then how=pmix
    elif grep -qw pmi2 <<<"$mpis"; then how=pmi2
    else how=mpirun; fi
  elif [ "$how" = srun ]; then how=${PCN_SRUN_MPI:-pmix}
  fi
  # shellcheck disable=SC2206  # the *_ARGS variables are word lists on purpose
  if [ "$how" = mpirun ]; then
    LAUNCH=(mpirun)
    # Open MPI's mpirun refuses to start as root without it (containers often run as root).
    [ "$(id -u)" -eq 0 ] && LAUNCH+=(--allow-run-as-root)
    LAUNCH+=(${PCN_MPIRUN_ARGS:-})
  else
    LAUNCH=(srun --mpi="$how" ${PCN_SRUN_ARGS:-})
  fi
}

# ---- device -----------------------------------------------------------------------------

# pcn_gpu_setup: for --device cuda. GPU binding: pcn_dist takes GPU (node-local rank mod
# the number of devices it sees), so every rank must see its node's GPUs of this job, in
# the same order. srun's default does exactly that (each rank gets CUDA_VISIBLE_DEVICES
# = all of the job's GPUs on its node); so does --gpus-per-task or --gpu-bind=single:1
# (one each, device 0 is its own). --gpu-bind=none does not: Slurm 22.05 then leaves
# CUDA_VISIBLE_DEVICES unset (seen on the test cluster), and without device cgroups a rank
# would see, and might take, GPUs of other jobs. So the script passes no --gpu-bind (unless
# PCN_GPU_BIND asks) and clears an inherited SLURM_GPU_BIND. mpirun passes the batch
# step's CUDA_VISIBLE_DEVICES on. Returns 1 when the job has no GPUs.
pcn_gpu_setup() {
  local gpus=${SLURM_GPUS_ON_NODE:-} ranks=${SLURM_TASKS_PER_NODE:-1}
  ranks=${ranks%%[(,]*}   # "4(x2)" or "4,3": this node's first count
  if [ -z "$gpus" ] && [ -n "${SLURM_JOB_GPUS:-}" ]; then
    gpus=$(tr ',' '\n' <<<"$SLURM_JOB_GPUS" | grep -c .)
  fi
  if [ "${gpus:-0}" -eq 0 ]; then
    echo "== --device cuda, but this job has no GPUs: request them (sbatch --gpus-per-node=N" \
         "or SBATCH_GPUS_PER_NODE=N), or set PCN_DEVICE=cpu"
    return 1
  fi
  [ "$ranks" -eq "$gpus" ] || echo "== warning: $ranks ranks per node but $gpus GPUs per node:" \
    "ranks share GPUs (node-local rank mod $gpus) or GPUs idle; use --ntasks-per-node=$gpus"
  if [ -n "${PCN_GPU_BIND:-}" ]; then
    [ "${LAUNCH[0]}" = srun ] && LAUNCH+=(--gpu-bind="$PCN_GPU_BIND")
  else
    unset SLURM_GPU_BIND
  fi
  echo "== $gpus GPUs and $ranks ranks per node; CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset} here"
}

# pcn_device: sets the array DEVICE_ARGS (pcn_dist's --device, and --comm on GPUs).
pcn_device() {
  local device=${PCN_DEVICE:-auto}
  if [ "$device" = auto ]; then
    device=cpu
    [ "${SLURM_GPUS_ON_NODE:-0}" -gt 0 ] || [ -n "${SLURM_JOB_GPUS:-}" ] && device=cuda
  fi
  DEVICE_ARGS=(--device "$device")
  if [ "$device" = cuda ]; then
    DEVICE_ARGS+=(--comm "${PCN_COMM:-nccl}")
    pcn_gpu_setup || return 1
  fi
}

# ---- checks from every node -------------------------------------------------------------

# pcn_preflight: one task per rank on GPUs (each prints the devices it sees), else one per
# node, checks that the data set is readable and the run folder writable there.
pcn_preflight() {
  [ "${PCN_PREFLIGHT:-1}" = 0 ] && return 0
  local per=(--nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --ntasks="$SLURM_JOB_NUM_NODES")
  [ "${DEVICE_ARGS[1]}" = cuda ] && per=()
  # shellcheck disable=SC2016  # expanded by each task
  PCN_DATA=$PCN_DATA PCN_RUN_DIR=$run_dir PCN_GPU_VIEW=${DEVICE_ARGS[1]} \
  srun "${per[@]}" ${PCN_GPU_BIND:+--gpu-bind="$PCN_GPU_BIND"} bash -c '
    at="rank $SLURM_PROCID on $(hostname) (node-local $SLURM_LOCALID)" ok=0
    [ -r "$PCN_DATA" ] || { echo "== $at: cannot read $PCN_DATA"; ok=1; }
    f=$PCN_RUN_DIR/.preflight.$SLURM_PROCID
    { : > "$f" && rm -f "$f"; } 2>/dev/null || { echo "== $at: cannot write in $PCN_RUN_DIR"; ok=1; }
    [ "$PCN_GPU_VIEW" = cuda ] && echo "== $at: CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
    exit $ok' || { echo "== preflight failed (on several nodes, PCN_DATA and PCN_RUN_DIR must be on a shared file system)"; return 1; }
}

# ---- resume, run, requeue ---------------------------------------------------------------

# pcn_resume_args: sets RESUME_ARGS to --resume the newest checkpoint that loads (writes are
# atomic; the older ones kept by --keep-checkpoints are the fallback), or to nothing. A
# resume from a kept file onto checkpoint.h5 continues the same run, so pcn_dist allows it;
# a fresh start over checkpoints that exist but do not load is refused by pcn_dist unless
# PCN_ARGS has --overwrite (a person should look at them first).
pcn_resume_args() {
  RESUME_ARGS=()
  local f seen=0
  for f in "$run_dir/checkpoint.h5" "$run_dir/checkpoint.h5".{1..9}; do
    [ -f "$f" ] || continue
    if "$dist" info "$f" 2>/dev/null | grep -q pcn-checkpoint; then
      RESUME_ARGS=(--resume "$f"); echo "== resuming from $f"; return 0
    fi
    echo "== $f does not load; trying an older one"
    seen=1
  done
  [ $seen = 0 ] || echo "== no checkpoint in $run_dir loads: pcn_dist will not start afresh" \
    "over them unless PCN_ARGS has --overwrite (or move them away)"
}

# pcn_run: starts the ranks, passes USR1 on to them, requeues the job when pcn_dist stopped
# with a checkpoint (exit 3). Returns pcn_dist's status (0 after a requeue).
pcn_run() {
  local pid rc
  # shellcheck disable=SC2086  # PCN_ARGS is a word list on purpose
  "${LAUNCH[@]}" "$dist" train --data "$PCN_DATA" ${PCN_ARGS:-} "${DEVICE_ARGS[@]}" \
    "${RESUME_ARGS[@]}" --checkpoint "$run_dir/checkpoint.h5" --keep-checkpoints "$keep" \
    --checkpoint-every "${PCN_CKPT_EVERY:-0}" --metrics "$run_dir/metrics.jsonl" --progress 0 &
  pid=$!
  # USR1 from Slurm (or scancel --signal=USR1 --batch): srun and mpirun forward it.
  trap 'echo "== USR1: asking the ranks to checkpoint"; kill -USR1 $pid' USR1
  while true; do
    wait $pid; rc=$?
    kill -0 $pid 2>/dev/null || break   # wait returned for the trap, not the exit
  done
  if [ $rc -eq 3 ]; then
    echo "== stopped with a checkpoint: requeueing"
    scontrol requeue "$SLURM_JOB_ID"
    return 0
  fi
  echo "== pcn_dist exited with $rc"
  return $rc
}

# pcn_job_main: the whole batch job (see the top of this file). Exits with pcn_dist's status.
pcn_job_main() {
  if [ -n "${PCN_SETUP:-}" ]; then
    eval "$PCN_SETUP" || { echo "== PCN_SETUP failed: $PCN_SETUP"; exit 1; }
  fi
  : "${PCN_DATA:?set PCN_DATA to the data set file}"
  dist=${PCN_DIST:-$(command -v pcn_dist || echo ./build/pcn_dist)}
  run_dir=${PCN_RUN_DIR:-$PWD/pcn-run-${SLURM_JOB_ID}}
  keep=${PCN_KEEP:-2}
  mkdir -p "$run_dir" || exit 1
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  echo "== job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST}:" \
       "${SLURM_NTASKS} ranks, ${SLURM_JOB_NUM_NODES} node(s)"
  pcn_launcher
  pcn_device || exit 1
  echo "== launcher: ${LAUNCH[*]}; pcn_dist ${DEVICE_ARGS[*]}"
  pcn_preflight || exit 1
  pcn_resume_args
  pcn_run
  exit $?
}
