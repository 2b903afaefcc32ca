#!/usr/bin/env bash
# The "run it" command: on a fresh Debian machine, installs what is missing, builds,
# converts Fashion-MNIST (Debian's dataset-fashion-mnist) to the HDF5 data set schema,
# trains with MPI ranks, then ends with the checkpoint's test accuracy on the full
# 10,000-image test set, its per-class accuracy and confusion matrix (pcn_dist test), and
# the paths of the run's plots (jobs/plot_metrics.py on OUT/metrics.jsonl, in OUT/plots).
#   jobs/quickstart.sh                 # 2 ranks; NP=4 jobs/quickstart.sh for 4
#   RECIPE=discriminative jobs/quickstart.sh   # PCX's recipe (jobs/configs/
#                                              # fmnist_discriminative.ini), EPOCHS of it
# Environment: NP (ranks, default 2), BUILD_DIR (default build), OUT (default quickstart-out),
# EPOCHS (default 1), RECIPE (seed: pcn-torch's generative network, the default;
# discriminative: PCX's, about 89.5 % after 25 epochs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
np=${NP:-2}
build=${BUILD_DIR:-build}
out=${OUT:-quickstart-out}
epochs=${EPOCHS:-1}
recipe=${RECIPE:-seed}
case "$recipe" in
  seed) model=(--dims 784,256,10 --activation relu --batch-size 100 --t-infer 20 --t-learn 20
               --t-infer-test 100 --lr-infer 0.1 --lr-learn 0.02 --train-accuracy-every 0
               --seed 1) ;;
  discriminative) model=(--config "$root/jobs/configs/fmnist_discriminative.ini" --seed 1) ;;
  *) echo "quickstart: RECIPE must be seed or discriminative, got '$recipe'" >&2; exit 2 ;;
esac

"$root/jobs/install_deps.sh"

echo "== building in $build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DPCN_BUILD_TESTS=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target pcn_dist pcn_convert

mkdir -p "$out"
data="$out/fashion-mnist.h5"
if [ ! -f "$data" ]; then
  echo "== converting Fashion-MNIST to $data"
  "$build/pcn_convert" idx --dir /usr/share/datasets/fashion-mnist -o "$data"
fi

mpi=(mpirun -np "$np")
# Open MPI's mpirun refuses to run as root (a container's or a fresh VM's user) unless told.
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
# More ranks than cores: Open MPI counts one slot per core and otherwise stops with "not
# enough slots available".
[ "$np" -gt "$(nproc)" ] && mpi+=(--oversubscribe)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

echo "== training ($recipe): ${mpi[*]} pcn_dist train (metrics in $out/metrics.jsonl)"
# Every quickstart is a fresh run into the same folder: --overwrite lets it replace the
# previous quickstart's checkpoint (pcn_dist refuses to replace one it does not resume from).
start=$(date +%s)
"${mpi[@]}" "$build/pcn_dist" train --data "$data" "${model[@]}" --epochs "$epochs" \
  --checkpoint "$out/checkpoint.h5" --overwrite --metrics "$out/metrics.jsonl"
echo "== trained and tested in $(( $(date +%s) - start )) s with $np ranks"

# The plots first, their paths last: the notes of plot_metrics.py (what the metrics hold,
# a plot left out) go to stderr here, the paths it prints are kept for the end.
plots=$(python3 "$root/jobs/plot_metrics.py" "$out/metrics.jsonl" -o "$out/plots")
echo "== the checkpoint scored again: ${mpi[*]} pcn_dist test --checkpoint $out/checkpoint.h5"
# (test takes the run's settings, --t-infer-test included, from the checkpoint)
"${mpi[@]}" "$build/pcn_dist" test --data "$data" --checkpoint "$out/checkpoint.h5"
echo "== plots of the run ($out/metrics.jsonl):"
echo "$plots"
