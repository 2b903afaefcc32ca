#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd
# with their files (key, state, logs, slurm.conf) under one folder and ports of their own,
# so it touches nothing of the machine's and can run beside another. What holds unix
# sockets (munged's socket, slurmd's spool: slurmstepd's and PMIx's sockets) and the pid
# files live in a short private folder, mktemp -d /tmp/pcn-XXXXXX, named in DIR/run: a
# socket's path may not exceed 108 bytes, and DIR lies under the build folder, whose path
# may be long. stop removes it.
#   cluster.sh start DIR   # prints "export SLURM_CONF=DIR/slurm.conf" once the node is idle
#   cluster.sh stop DIR    # ends the three daemons (also after a failure), removes DIR/run's folder
# With NODES=N (default 1) the cluster has N nodes pcnn1..pcnnN on this machine: one slurmd
# each, on a port of its own, started inside a private UTS namespace (unshare --uts) whose
# host name is the node's, with spool, pid, log and TmpFS (where PMIx keeps its per-step
# folders) per node (%n). Open MPI's ranks then see one host name per node.
# With FAKE_GPUS=N the node also declares N GPUs (GRES gpu) whose device files
# DIR/dev/gpuI are links to /dev/null: Slurm schedules, counts and binds them (it sets
# CUDA_VISIBLE_DEVICES) as it does real ones, but nothing can compute on them.
# Needs Debian's slurm-wlm and munge, and root (slurmd runs jobs as their user).
set -u
cmd=$1 dir=$(mkdir -p "$2" && cd "$2" && pwd)

stop() {
  local run
  run=$(cat "$dir/run" 2>/dev/null) || return 0
  case $run in /tmp/pcn-??????) ;; *) echo "cluster.sh: $dir/run names $run"; return 1 ;; esac
  local pids=("$run"/slurmd.*.pid "$run/slurmctld.pid" "$run/munge/munged.pid") f
  for f in "${pids[@]}"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=0
    for f in "${pids[@]}"; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for f in "${pids[@]}"; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  rm -rf "$run" && rm -f "$dir/run"
}

# node_lines N BASE GRES: the NodeName lines of slurm.conf.
node_lines() {
  if [ "$1" -eq 1 ]; then
    echo "NodeName=localhost CPUs=$(nproc) $3 State=UNKNOWN"
    return
  fi
  for i in $(seq 1 "$1"); do
    echo "NodeName=pcnn$i NodeAddr=127.0.0.1 NodeHostname=pcnn$i Port=$(( $2 + i )) CPUs=$(nproc) State=UNKNOWN"
  done
}

# start_slurmds N: one slurmd, or N of them, each in its own UTS namespace named after it.
start_slurmds() {
  if [ "$1" -eq 1 ]; then
    mkdir -p "$run/spool/localhost" "$run/tmp/localhost"
    slurmd -f "$SLURM_CONF" || { echo "slurmd did not start"; return 1; }
    return 0
  fi
  for i in $(seq 1 "$1"); do
    mkdir -p "$run/spool/pcnn$i" "$run/tmp/pcnn$i"
    unshare --uts sh -c 'hostname "$1" && exec slurmd -f "$2" -N "$1"' sh "pcnn$i" "$SLURM_CONF" ||
      { echo "slurmd pcnn$i did not start"; return 1; }
  done
}

start() {
  local run
  stop || return 1   # a cluster left in DIR by a killed run
  run=$(mktemp -d /tmp/pcn-XXXXXX) || { echo "mktemp failed"; return 1; }
  echo "$run" > "$dir/run"
  mkdir -p "$run/munge" "$run/spool" "$dir/key" "$dir/state" "$dir/log"
  chmod 755 "$dir" "$dir/log" "$run" "$run/munge" && chmod 700 "$dir/key"   # munged's rules
  head -c 1024 /dev/urandom > "$dir/key/munge.key" && chmod 400 "$dir/key/munge.key"
  munged --key-file="$dir/key/munge.key" --socket="$run/munge/munge.sock" \
         --pid-file="$run/munge/munged.pid" --log-file="$dir/log/munged.log" \
         --seed-file="$dir/key/seed" || { echo "munged did not start"; stop; return 1; }
  local base=$(( 20000 + (RANDOM % 2000) * 4 )) gres="" gpus=${FAKE_GPUS:-0}
  local nodes=${NODES:-1} names=localhost
  [ "$nodes" -gt 1 ] && names="pcnn[1-$nodes]"
  if [ "$gpus" -gt 0 ]; then
    mkdir -p "$dir/dev" && for i in $(seq 0 $(( gpus - 1 ))); do ln -sf /dev/null "$dir/dev/gpu$i"; done
    echo "NodeName=localhost Name=gpu File=$dir/dev/gpu[0-$(( gpus - 1 ))]" > "$dir/gres.conf"
    gres="Gres=gpu:$gpus"
  fi
  cat > "$dir/slurm.conf" <<CONF
ClusterName=pcntest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$run/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$run/spool/%n
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
TmpFS=$run/tmp/%n
SlurmctldPort=$base
SlurmdPort=$(( base + 1 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
${gres:+GresTypes=gpu}
$(node_lines "$nodes" "$base" "$gres")
PartitionName=debug Nodes=$names Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" || { echo "slurmctld did not start"; stop; return 1; }
  start_slurmds "$nodes" || { stop; return 1; }
  for _ in $(seq 150); do
    if [ "$(sinfo -h -N -o %t 2>/dev/null | grep -cx idle)" = "$nodes" ]; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  echo "the nodes did not become idle"; tail -5 "$dir/log/slurmctld.log" "$dir"/log/slurmd.*.log
  stop
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR"; exit 2 ;;
esac
