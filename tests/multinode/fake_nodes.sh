#!/usr/bin/env bash
# What this proves: pcn_dist on several nodes, on one machine. Open MPI's rsh launcher
# starts each node's daemon through agent.sh, which runs it here in a private UTS namespace
# named after the node (unshare --uts: root; exit 77 otherwise), so every fake node has
# its own node name, node-local ranks, MPI_COMM_TYPE_SHARED group and shared-memory
# segments, and traffic between nodes goes over TCP (btl self,vader,tcp on lo).
#
# Cases:
#   topology    2 nodes x 2 ranks: every rank sees 2 ranks on its node, 2 nodes, one host
#               name per node (tests/multinode/topology.c)
#   invariance  2 nodes x 2 ranks train (memory mode: one shared copy of the data per node)
#               to the weights and history of P = 1 within 1e-5 relative, and --data-mode
#               stream to the same weights bit for bit as memory mode; 2 nodes x 1 rank too
#   resume      a 2 x 2 run stopped after 3 batches (a checkpoint) and resumed on 1 node x
#               2 ranks, and on 2 nodes x 1 rank, ends like the unbroken P = 1 run (1e-5)
# Usage: fake_nodes.sh CASE   (PCN_DIST, PCN_TESTTOOL, TOPOLOGY, MPIEXEC, SCRATCH from CTest)
set -u
case_name=${1:?usage: fake_nodes.sh CASE}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$SCRATCH/$case_name
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "fake nodes need root (unshare --uts)"
unshare --uts true 2> /dev/null || skip "unshare --uts is not allowed here"
nodes=(pcnfake1 pcnfake2)
for n in "${nodes[@]}"; do # a name that resolves (to this machine) would run locally
  getent hosts "$n" > /dev/null && skip "the fake node name $n resolves on this machine"
done

# fake N PER CMD...: CMD on N fake nodes with PER ranks each.
fake() {
  local n=$1 per=$2 hosts=""
  shift 2
  for ((i = 0; i < n; i++)); do hosts+="${hosts:+,}${nodes[$i]}:$per"; done
  timeout 120 "$MPIEXEC" --mca plm_rsh_agent "$here/agent.sh" --host "$hosts" \
    -np $((n * per)) --mca btl self,vader,tcp --mca btl_tcp_if_include lo \
    --mca oob_tcp_if_include lo -x OMP_NUM_THREADS "$@"
}
single() { timeout 120 "$MPIEXEC" -np 1 "$PCN_DIST" "$@"; }

"$PCN_TESTTOOL" mkdata data.h5 103 37 20 4 7 || fail "mkdata"
common=(--data data.h5 --dims 20,12,8 --output-dim 4 --activation tanh --epochs 2
        --batch-size 25 --t-infer 6 --t-learn 5 --t-infer-test 10 --lr-infer 0.1
        --lr-learn 0.05 --seed 3 --progress 0)

case $case_name in
topology)
  fake 2 2 "$TOPOLOGY" 2 2 > topo.log 2>&1 || fail "$(cat topo.log)"
  cat topo.log
  ;;
invariance)
  single train "${common[@]}" --checkpoint p1.h5 > p1.log 2>&1 || fail "P=1: $(cat p1.log)"
  fake 2 2 "$PCN_DIST" train "${common[@]}" --checkpoint n22.h5 > n22.log 2>&1 ||
    fail "2 x 2: $(cat n22.log)"
  "$PCN_TESTTOOL" compare n22.h5 p1.h5 1e-5 || fail "2 nodes x 2 ranks differ from P=1"
  fake 2 2 "$PCN_DIST" train "${common[@]}" --data-mode stream --checkpoint s22.h5 > s22.log 2>&1 ||
    fail "2 x 2 stream: $(cat s22.log)"
  "$PCN_TESTTOOL" compare s22.h5 n22.h5 0 || fail "stream mode differs from memory mode on 2 x 2"
  fake 2 1 "$PCN_DIST" train "${common[@]}" --checkpoint n21.h5 > n21.log 2>&1 ||
    fail "2 x 1: $(cat n21.log)"
  "$PCN_TESTTOOL" compare n21.h5 p1.h5 1e-5 || fail "2 nodes x 1 rank differ from P=1"
  echo "PASS 2 x 2 and 2 x 1 match P = 1; stream matches memory mode bitwise"
  ;;
resume)
  single train "${common[@]}" --checkpoint full.h5 > full.log 2>&1 || fail "$(cat full.log)"
  for to in "1 2" "2 1"; do
    rm -f part.h5
    fake 2 2 "$PCN_DIST" train "${common[@]}" --checkpoint part.h5 --stop-after-batches 3 \
      > stop.log 2>&1
    rc=$?; [ $rc -eq 3 ] || fail "the stopped 2 x 2 run exited $rc, want 3: $(cat stop.log)"
    # shellcheck disable=SC2086
    fake $to "$PCN_DIST" train --resume part.h5 --checkpoint part.h5 --progress 0 \
      > resume.log 2>&1 || fail "resume on ${to/ / x }: $(cat resume.log)"
    "$PCN_TESTTOOL" compare part.h5 full.h5 1e-5 || fail "resumed on ${to/ / x } differs"
    echo "PASS stopped on 2 x 2, resumed on ${to/ / x }: as the unbroken run"
  done
  ;;
*)
  echo "unknown case '$case_name'"; exit 2 ;;
esac
