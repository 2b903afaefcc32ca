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
  for p in slurmd slurmctld munge/munged; do
    [ -f "$run/$p.pid" ] && kill "$(cat "$run/$p.pid")" 2>/dev/null
  done
  for _ in $(seq 50); do
    alive=0
    for p in slurmd slurmctld munge/munged; do
      [ -f "$run/$p.pid" ] && kill -0 "$(cat "$run/$p.pid")" 2>/dev/null && alive=1
    done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for p in slurmd slurmctld munge/munged; do
    [ -f "$run/$p.pid" ] && kill -9 "$(cat "$run/$p.pid")" 2>/dev/null
  done
  rm -rf "$run" && rm -f "$dir/run"
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
  local base=$(( 20000 + (RANDOM % 2000) * 2 )) gres="" gpus=${FAKE_GPUS:-0}
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
SlurmdSpoolDir=$run/spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
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
NodeName=localhost CPUs=$(nproc) $gres State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -f "$SLURM_CONF" || { echo "slurmctld did not start"; stop; return 1; }
  slurmd -f "$SLURM_CONF" || { echo "slurmd did not start"; stop; return 1; }
  for _ in $(seq 150); do
    if sinfo -h -o %t 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  echo "the node did not become idle"; tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log"
  stop
  return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop DIR"; exit 2 ;;
esac
