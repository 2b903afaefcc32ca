#!/usr/bin/env bash
# Proves that jobs/plot_metrics.py draws a real run's metrics: a 2-rank training of 2 epochs
# (mpirun -np 2) gives the four PNG files it promises (energy, accuracy, lr, seconds), each a
# PNG (its 8 magic bytes) of more than 5 kB, printed one per line; a run stopped mid-epoch
# and resumed into the same metrics file reads as one run of 3 epochs (24 batches), with its
# test accuracy; the stopped run's file alone has no test record, and the accuracy plot
# says it shows train accuracy only. And that a missing, empty or malformed metrics file
# fails with exit status 1 and one line naming the file (and the line). It draws with
# gnuplot, else with matplotlib; with neither it exits 77 (not run).
# Usage: plot_metrics.sh   (PCN_DIST, PCN_TESTTOOL, MPIEXEC, PYTHON, PLOT, SCRATCH from CTest)
set -u
dir=$SCRATCH/plot_metrics && rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fail() { echo "FAIL: $*"; exit 1; }
if command -v gnuplot > /dev/null; then backend=gnuplot
elif "$PYTHON" -c "import matplotlib" 2> /dev/null; then backend=matplotlib
else echo "neither gnuplot nor matplotlib: not run"; exit 77
fi
mpi() { timeout 120 "$MPIEXEC" -np 2 --oversubscribe "$PCN_DIST" "$@"; }
plot() { "$PYTHON" "$PLOT" --backend "$backend" "$@"; }

"$PCN_TESTTOOL" mkdata d.h5 400 100 20 4 7 || fail mkdata
common=(--data d.h5 --dims 20,12,4 --batch-size 50 --t-infer 5 --t-learn 5 --t-infer-test 10
        --seed 1 --progress 0 --lr-schedule plateau)

# pngs OUT LIST: LIST (the script's stdout) names exactly the four plots in OUT, each a PNG.
pngs() {
  local out=$1 list=$2 want
  want=$(for k in energy accuracy lr seconds; do echo "$out-$k.png"; done)
  [ "$(cat "$list")" = "$want" ] || fail "printed paths: $(cat "$list"), want: $want"
  for png in $want; do
    [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
      fail "$png is not a PNG"
    [ "$(stat -c %s "$png")" -gt 5000 ] || fail "$png has $(stat -c %s "$png") bytes only"
  done
}

# A whole run: 2 epochs, its test.
mpi train "${common[@]}" --epochs 2 --metrics m.jsonl --checkpoint m.h5 > train.log 2>&1 ||
  fail "training: $(cat train.log)"
plot m.jsonl -o plots > list.txt 2> notes.txt || fail "plot: $(cat notes.txt)"
pngs plots/m list.txt
grep -q "16 batches, 2 epoch(s) finished (8 batches each), 1 test record" notes.txt ||
  fail "summary: $(cat notes.txt)"

# Stopped after 11 batches (epoch 2, batch 3), then resumed to 3 epochs into the same file.
mpi train "${common[@]}" --epochs 2 --metrics r.jsonl --checkpoint r.h5 \
  --stop-after-batches 11 > stop.log 2>&1
rc=$?; [ $rc -eq 3 ] || fail "the stopped run exited $rc, want 3: $(cat stop.log)"
cp r.jsonl stopped.jsonl
plot stopped.jsonl > list.txt 2> notes.txt || fail "plot stopped: $(cat notes.txt)"
pngs "$dir/stopped" list.txt
grep -q "no test accuracy" notes.txt || fail "no note of the missing test: $(cat notes.txt)"
mpi train --resume r.h5 --epochs 3 --metrics r.jsonl --checkpoint r.h5 --progress 0 \
  > resume.log 2>&1 || fail "resume: $(cat resume.log)"
plot r.jsonl -o plots > list.txt 2> notes.txt || fail "plot resumed: $(cat notes.txt)"
pngs plots/r list.txt
grep -q "24 batches, 3 epoch(s) finished (8 batches each), 1 test record" notes.txt ||
  fail "the resumed run does not read as one: $(cat notes.txt)"

# Bad files: exit 1 and one line naming the file (and the line).
: > empty.jsonl
{ head -2 m.jsonl; echo '{"event":"batch","epoch":0,'; } > bad.jsonl
for f in missing.jsonl empty.jsonl bad.jsonl; do
  plot $f -o bad > out.txt 2> err.txt
  rc=$?; [ $rc -eq 1 ] || fail "$f: exit $rc, want 1: $(cat err.txt)"
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "$f: not one line: $(cat err.txt)"
  [ -s out.txt ] && fail "$f: printed $(cat out.txt)"
done
grep -q "bad.jsonl:3: not JSON" err.txt || fail "bad.jsonl: $(cat err.txt)"
[ -e bad ] && fail "a refused file left an output folder"
echo "PASS: plots of a whole, a stopped and a resumed run ($backend); bad files refused"
