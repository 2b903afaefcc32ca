#!/usr/bin/env bash
# Proves, on a real one-node Slurm cluster (tests/slurm/cluster.sh), that
# jobs/slurm/pcn_train.sbatch trains to completion as a batch job, and that a job sent
# USR1 (as Slurm does before the time limit) checkpoints, requeues itself, resumes from the
# checkpoint and ends bitwise identical to the unbroken job. The cluster is stopped at the
# end, also on failure. Skipped (77) where slurm-wlm/munge are missing or not root.
# Environment from CTest: PCN_DIST, PCN_TESTTOOL, SBATCH_SCRIPT, CLUSTER, SCRATCH.
# shellcheck disable=SC2015  # "A && B || fail" fails when either does, as meant
set -u
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh" slurm_job
export PCN_DIST PCN_DATA=$dir/data.h5
"$PCN_TESTTOOL" mkdata "$PCN_DATA" 2000 100 64 4 7 || fail "mkdata"
export PCN_ARGS="--dims 64,48,24 --output-dim 4 --epochs 12 --batch-size 50 --t-infer 10 --t-learn 10 --t-infer-test 20 --lr-learn 0.05 --seed 3"

# 1. The unbroken job.
a=$(PCN_RUN_DIR=$dir/a sbatch --parsable -n 2 -o "$dir/a.out" "$SBATCH_SCRIPT") || fail "sbatch"
wait_done "$a" || fail "job $a did not complete: $(state "$a")"
grep -q "pcn_dist exited with 0" a.out || fail "job $a: pcn_dist failed"
grep -q "^test: accuracy" a.out || fail "job $a printed no test result"

# 2. The same job, sent USR1 once it is training: checkpoint, requeue, resume, finish.
b=$(PCN_RUN_DIR=$dir/b sbatch --parsable -n 2 -o "$dir/b.out" "$SBATCH_SCRIPT") || fail "sbatch"
usr1_requeue "$b" "$dir/b"
requeued_like "$b" b.out "$dir/a"
echo "PASS: slurm jobs $a (unbroken) and $b (USR1, requeued, resumed) agree bitwise"
