#!/usr/bin/env bash
# Program-level guarantees of pcn_dist, end to end through HDF5 files and mpirun:
#   invariance  the same run with P = 1, 2, 3, 4 (a last partial batch, and a global batch
#               smaller than P) ends with weights and history equal to 1e-5 relative;
#   resume      a run stopped by SIGTERM mid-epoch (P = 1, no mpirun) and by SIGTERM on one
#               rank under mpirun (P = 2), resumed from its checkpoint at the same P, ends
#               bitwise identical to an unbroken run; resumed at P = 3 it matches to 1e-5;
#   signal      SIGUSR1 sent to mpirun at an arbitrary moment: exit status 3, a checkpoint,
#               and the resumed run ends bitwise identical to the unbroken one;
#   stream      --data-mode stream trains bitwise like the default memory mode;
#   keep        periodic checkpoints keep the last K files, each loadable.
#   progress    the live progress bar only where rank 0's output reaches a terminal: under
#               mpirun into a file, plain epoch lines and no carriage return or ESC[K (Open
#               MPI gives ranks a pseudo-terminal of their own); under mpirun inside a
#               terminal (script), the live bar.
#   gpu         (exit 77 without a GPU; 1 where /dev/nvidia* exists but CUDA fails)
#               --device cuda in float32 trains like --device cpu to
#               1e-4 relative; P = 2 sharing one GPU with --comm mpi matches P = 1 to 1e-5;
#               P = 1 with --comm nccl matches --comm mpi to 1e-5; a GPU run stopped and
#               resumed ends bitwise identical to the unbroken GPU run; --precision fp16
#               trains and its test accuracy is reported.
# Usage: program_runs.sh CASE   (PCN_DIST, PCN_TESTTOOL, MPIEXEC, SCRATCH from CTest)
set -u
case_name=$1
scratch=$SCRATCH/$case_name
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL: $*"; exit 1; }
# A single process without mpirun (an MPI singleton): Open MPI forks a helper daemon, and
# LeakSanitizer crashes in that fork; leak checking stays on for every run under mpirun.
single() { ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" timeout 120 "$PCN_DIST" "$@"; }
mpi() { local np=$1; shift; timeout 120 "$MPIEXEC" -np "$np" --oversubscribe "$PCN_DIST" "$@"; }
"$PCN_TESTTOOL" mkdata data.h5 103 37 20 4 7 || fail "mkdata"
common=(--data data.h5 --dims 20,12,8 --output-dim 4 --activation tanh --epochs 2
        --batch-size 25 --t-infer 6 --t-learn 5 --t-infer-test 10 --lr-infer 0.1
        --lr-learn 0.05 --seed 3 --lr-schedule plateau --progress 0)

case $case_name in
invariance)
  mpi 1 train "${common[@]}" --checkpoint p1.h5 > p1.log 2>&1 || fail "P=1: $(cat p1.log)"
  for np in 2 3 4; do
    mpi $np train "${common[@]}" --checkpoint p$np.h5 > p$np.log 2>&1 || fail "P=$np: $(cat p$np.log)"
    "$PCN_TESTTOOL" compare p$np.h5 p1.h5 1e-5 || fail "P=$np differs from P=1"
  done
  # A global batch smaller than P: 3 rows over 4 ranks (one rank holds none).
  mpi 1 train "${common[@]}" --batch-size 3 --epochs 1 --checkpoint s1.h5 > s1.log 2>&1 || fail "$(cat s1.log)"
  mpi 4 train "${common[@]}" --batch-size 3 --epochs 1 --checkpoint s4.h5 > s4.log 2>&1 || fail "$(cat s4.log)"
  "$PCN_TESTTOOL" compare s4.h5 s1.h5 1e-5 || fail "batch 3 at P=4 differs from P=1"
  ;;
resume)
  # P = 1 without mpirun: the process signals itself with SIGTERM after 3 of 5 batches.
  single train "${common[@]}" --checkpoint full1.h5 > full1.log 2>&1 || fail "$(cat full1.log)"
  single train "${common[@]}" --checkpoint part1.h5 --stop-after-batches 3 > stop1.log 2>&1
  rc=$?; [ $rc -eq 3 ] || fail "stopped run exited $rc, want 3: $(cat stop1.log)"
  grep -q "resume with --resume" stop1.log || fail "no stop message: $(cat stop1.log)"
  single train --resume part1.h5 --checkpoint part1.h5 --progress 0 > res1.log 2>&1 || fail "resume: $(cat res1.log)"
  "$PCN_TESTTOOL" compare part1.h5 full1.h5 exact || fail "P=1 resume is not bitwise identical"
  # P = 2 under mpirun: rank 0 receives SIGTERM after 7 batches (mid-epoch 2).
  mpi 2 train "${common[@]}" --checkpoint full2.h5 > full2.log 2>&1 || fail "$(cat full2.log)"
  mpi 2 train "${common[@]}" --checkpoint part2.h5 --stop-after-batches 7 > stop2.log 2>&1
  rc=$?; [ $rc -ne 0 ] || fail "stopped P=2 run exited 0"
  cp part2.h5 part2-for-p3.h5
  mpi 2 train --resume part2.h5 --checkpoint part2.h5 --progress 0 > res2.log 2>&1 || fail "resume: $(cat res2.log)"
  "$PCN_TESTTOOL" compare part2.h5 full2.h5 exact || fail "P=2 resume is not bitwise identical"
  mpi 3 train --resume part2-for-p3.h5 --checkpoint part3.h5 --progress 0 > res3.log 2>&1 || fail "resume at P=3: $(cat res3.log)"
  "$PCN_TESTTOOL" compare part3.h5 full2.h5 1e-5 || fail "resume at P=3 differs"
  ;;
signal)
  mpi 2 train "${common[@]}" --epochs 6 --checkpoint full.h5 > full.log 2>&1 || fail "$(cat full.log)"
  "$MPIEXEC" -np 2 --oversubscribe "$PCN_DIST" train "${common[@]}" --epochs 6 \
    --checkpoint part.h5 --metrics m.jsonl > stop.log 2>&1 &
  pid=$!
  (sleep 120; kill -9 $pid) > /dev/null 2>&1 & watchdog=$!
  for _ in $(seq 600); do [ -s m.jsonl ] && break; sleep 0.05; done
  kill -USR1 $pid   # mpirun forwards SIGUSR1 to every rank
  wait $pid; rc=$?
  kill $watchdog 2>/dev/null
  if [ $rc -eq 0 ]; then echo "note: the run finished before the signal; nothing to resume"
  else
    [ $rc -eq 3 ] || fail "exit $rc after SIGUSR1, want 3: $(cat stop.log)"
    mpi 2 train --resume part.h5 --checkpoint part.h5 --progress 0 > res.log 2>&1 || fail "resume: $(cat res.log)"
  fi
  "$PCN_TESTTOOL" compare part.h5 full.h5 exact || fail "SIGUSR1 stop and resume is not bitwise identical"
  ;;
gpu)
  # Not run (77) without a GPU, but failed (1, with the reason) where an NVIDIA device node
  # shows that CUDA is broken rather than absent.
  "$PCN_TESTGPU" gate; rc=$?; [ $rc -eq 0 ] || exit $rc
  mpi 1 train "${common[@]}" --device cpu --checkpoint cpu.h5 > cpu.log 2>&1 || fail "cpu: $(cat cpu.log)"
  mpi 1 train "${common[@]}" --device cuda --comm mpi --checkpoint g1.h5 > g1.log 2>&1 || fail "gpu: $(cat g1.log)"
  grep "^device:" g1.log
  "$PCN_TESTTOOL" compare g1.h5 cpu.h5 1e-4 || fail "GPU run differs from the CPU run"
  mpi 2 train "${common[@]}" --device cuda --comm mpi --checkpoint g2.h5 > g2.log 2>&1 || fail "P=2: $(cat g2.log)"
  "$PCN_TESTTOOL" compare g2.h5 g1.h5 1e-5 || fail "P=2 on one GPU differs from P=1"
  mpi 1 train "${common[@]}" --device cuda --comm nccl --checkpoint gn.h5 > gn.log 2>&1 || fail "nccl: $(cat gn.log)"
  "$PCN_TESTTOOL" compare gn.h5 g1.h5 1e-5 || fail "NCCL run differs from the staged-MPI run"
  mpi 1 train "${common[@]}" --device cuda --checkpoint gp.h5 --stop-after-batches 3 > gs.log 2>&1
  rc=$?; [ $rc -eq 3 ] || fail "stopped GPU run exited $rc, want 3: $(cat gs.log)"
  mpi 1 train --resume gp.h5 --checkpoint gp.h5 --device cuda --progress 0 > gr.log 2>&1 || fail "resume: $(cat gr.log)"
  mpi 1 train "${common[@]}" --device cuda --checkpoint gf.h5 > gf.log 2>&1 || fail "$(cat gf.log)"
  "$PCN_TESTTOOL" compare gp.h5 gf.h5 exact || fail "GPU resume is not bitwise identical"
  mpi 1 train "${common[@]}" --device cuda --precision fp16 --checkpoint h.h5 > h.log 2>&1 || fail "fp16: $(cat h.log)"
  grep "^test" h.log
  ;;
keep)
  # --checkpoint-every 2 --keep-checkpoints 3 over 10 batches: c.h5, c.h5.1, c.h5.2, each a
  # loadable checkpoint of an earlier position, and no temporary file left.
  mpi 2 train "${common[@]}" --checkpoint c.h5 --checkpoint-every 2 --keep-checkpoints 3 > k.log 2>&1 || fail "$(cat k.log)"
  for f in c.h5 c.h5.1 c.h5.2; do
    single info $f > $f.info 2>&1 || fail "$f: $(cat $f.info)"
    grep -q "pcn-checkpoint" $f.info || fail "$f is not a checkpoint"
  done
  [ ! -e c.h5.3 ] || fail "kept more than 3 checkpoints"
  ls *.tmp* 2>/dev/null && fail "temporary files left"
  grep -q "epoch 2, batch 0" c.h5.info || fail "c.h5 is not the final checkpoint: $(cat c.h5.info)"
  grep -q "epoch 1, batch 3" c.h5.1.info || fail "c.h5.1 is not the previous periodic one: $(cat c.h5.1.info)"
  grep -q "epoch 1, batch 1" c.h5.2.info || fail "c.h5.2 is not the one before: $(cat c.h5.2.info)"
  ;;
stream)
  mpi 2 train "${common[@]}" --checkpoint mem.h5 > mem.log 2>&1 || fail "$(cat mem.log)"
  mpi 2 train "${common[@]}" --data-mode stream --checkpoint str.h5 > str.log 2>&1 || fail "$(cat str.log)"
  "$PCN_TESTTOOL" compare str.h5 mem.h5 exact || fail "stream mode differs from memory mode"
  ;;
progress)
  command -v script > /dev/null || { echo "no script(1): not run"; exit 77; }
  run=(train "${common[@]}" --progress 1 --epochs 1)
  mpi 2 "${run[@]}" --checkpoint f.h5 > file.log 2>&1 || fail "$(cat file.log)"
  grep -q $'[\r\e]' file.log && fail "live frames in a file: $(od -c file.log | head -5)"
  grep -q '^  Epoch 1/1 | energy=' file.log || fail "no plain epoch line: $(cat file.log)"
  script -qfec "timeout 120 $MPIEXEC -np 2 --oversubscribe $PCN_DIST ${run[*]} --checkpoint t.h5" \
    tty.log > /dev/null 2>&1 || fail "under script: $(cat tty.log)"
  grep -q $'\e\[K' tty.log || fail "no live bar on a terminal: $(cat tty.log)"
  ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
