#!/usr/bin/env bash
# Proves, on a real two-node Slurm cluster on this machine (tests/slurm/cluster.sh with
# NODES=2: two slurmd, each in its own UTS namespace with its node's host name, TCP between
# the nodes over lo), that jobs/slurm/pcn_train_multinode.sbatch with -N 2 runs its
# preflight on both nodes and trains 2 nodes x 1 rank (srun, PMIx; one rank per core of
# this 2-core machine) to the weights of one node x 2 ranks (pcn_train.sbatch) within 1e-5; and that the same two-node job sent USR1
# checkpoints, requeues itself, resumes and ends bitwise identical to the unbroken job.
# Skipped (77) without slurm-wlm, munge, root or unshare --uts.
# Environment from CTest: PCN_DIST, PCN_TESTTOOL, JOBS, CLUSTER, SCRATCH.
# shellcheck disable=SC2015  # "A && B || fail" fails when either does, as meant
set -u
unshare --uts true 2> /dev/null || { echo "unshare --uts is not allowed here: not run"; exit 77; }
export NODES=2
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh" slurm_two_nodes
# Open MPI's TCP transport between the nodes: both are this machine, so over lo, which it
# leaves out by default.
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export PCN_DIST PCN_DATA=$dir/data.h5
"$PCN_TESTTOOL" mkdata "$PCN_DATA" 2000 100 64 4 7 || fail "mkdata"
export PCN_ARGS="--dims 64,48,24 --output-dim 4 --epochs 6 --batch-size 50 --t-infer 10 --t-learn 10 --t-infer-test 20 --lr-learn 0.05 --seed 3"
two=(-N 2 --ntasks-per-node=1 --cpus-per-task=1)

# 1. Unbroken, on two nodes and on one.
a=$(PCN_RUN_DIR=$dir/a sbatch --parsable "${two[@]}" -o "$dir/a.out" "$JOBS/pcn_train_multinode.sbatch") || fail "sbatch"
c=$(PCN_RUN_DIR=$dir/c sbatch --parsable -N 1 -n 2 -o "$dir/c.out" "$JOBS/pcn_train.sbatch") || fail "sbatch"
for j in "$a" "$c"; do wait_done "$j" || fail "job $j did not complete: $(state "$j")"; done
grep -q "2 ranks, 2 node(s)" a.out || fail "job $a: not 2 ranks on 2 nodes"
grep -q "pcn_dist exited with 0" a.out && grep -q "^test: accuracy" a.out || fail "job $a did not train"
"$PCN_TESTTOOL" compare "$dir/a/checkpoint.h5" "$dir/c/checkpoint.h5" 1e-5 \
  || fail "2 nodes x 1 rank differ from 1 node x 2 ranks"

# 2. The two-node job sent USR1 once it is training: checkpoint, requeue, resume, finish.
b=$(PCN_RUN_DIR=$dir/b sbatch --parsable "${two[@]}" -o "$dir/b.out" "$JOBS/pcn_train_multinode.sbatch") || fail "sbatch"
usr1_requeue "$b" "$dir/b"
requeued_like "$b" b.out "$dir/a"
echo "PASS: 2 nodes x 1 rank train like 1 node x 2 (1e-5); the two-node job $b, sent USR1, requeued and resumed, ends bitwise as the unbroken $a"
