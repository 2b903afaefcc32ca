#!/usr/bin/env bash
# Proves, on a real one-node Slurm cluster (tests/slurm/cluster.sh), that
# jobs/slurm/pcn_train_multinode.sbatch, submitted with -N 1 (this cluster has one node),
# runs its preflight step on every node of the job and trains to completion, ending
# bitwise identical to pcn_train.sbatch with the same ranks, launched by srun (PMIx) and
# by the fallback, mpirun inside the allocation (PCN_LAUNCH=mpirun); and that a data set the
# nodes cannot read stops the job in the preflight with a message, without training or
# requeueing. Several real nodes are not tested. Skipped (77) without slurm-wlm, munge, root.
# Environment from CTest: PCN_DIST, PCN_TESTTOOL, JOBS, CLUSTER, SCRATCH.
# shellcheck disable=SC2015  # "A && B || fail" fails when either does, as meant
set -u
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh" slurm_multinode
export PCN_DIST PCN_DATA=$dir/data.h5
"$PCN_TESTTOOL" mkdata "$PCN_DATA" 1000 100 32 4 5 || fail "mkdata"
export PCN_ARGS="--dims 32,24 --output-dim 4 --epochs 3 --batch-size 50 --t-infer 5 --t-learn 5 --t-infer-test 10 --seed 2"
one=(-N 1 --ntasks-per-node=2 --cpus-per-task=1)

m=$(PCN_RUN_DIR=$dir/m sbatch --parsable "${one[@]}" -o "$dir/m.out" "$JOBS/pcn_train_multinode.sbatch") || fail "sbatch"
o=$(PCN_LAUNCH=mpirun PCN_RUN_DIR=$dir/o sbatch --parsable "${one[@]}" -o "$dir/o.out" \
    "$JOBS/pcn_train_multinode.sbatch") || fail "sbatch"
c=$(PCN_RUN_DIR=$dir/c sbatch --parsable -n 2 -o "$dir/c.out" "$JOBS/pcn_train.sbatch") || fail "sbatch"
for j in "$m" "$o" "$c"; do wait_done "$j" || fail "job $j did not complete: $(state "$j")"; done
grep -q "2 ranks, 1 node(s)" m.out || fail "job $m: not 2 ranks on 1 node"
grep -q "launcher: srun --mpi=pmix; pcn_dist --device cpu" m.out || fail "job $m: not srun, CPU"
grep -q "launcher: mpirun" o.out || fail "job $o: not mpirun"
for j in m o; do
  grep -q "pcn_dist exited with 0" $j.out && grep -q "^test: accuracy" $j.out || fail "job $j did not train"
  "$PCN_TESTTOOL" compare "$dir/$j/checkpoint.h5" "$dir/c/checkpoint.h5" exact \
    || fail "the multi-node script's result ($j) differs from pcn_train.sbatch's"
done

# A data set that is not there: refused by the preflight, no training, no requeue.
x=$(PCN_DATA=$dir/absent.h5 PCN_RUN_DIR=$dir/x sbatch --parsable "${one[@]}" -o "$dir/x.out" \
    "$JOBS/pcn_train_multinode.sbatch") || fail "sbatch"
wait_done "$x" && fail "job $x with a missing data set completed"
grep -q "cannot read $dir/absent.h5" x.out && grep -q "preflight failed" x.out \
  || fail "job $x: no preflight message"
grep -q "pcn_dist exited\|requeueing" x.out && fail "job $x went past the preflight"
echo "PASS: pcn_train_multinode.sbatch with -N 1 (srun and mpirun) trains like pcn_train.sbatch (bitwise); its preflight refuses an unreadable data set"
