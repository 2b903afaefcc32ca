#!/usr/bin/env bash
# Installs the Debian packages pcn_dist builds, tests and runs with, when missing
# (apt-get update first; sudo when not root): python3 and gnuplot-nox draw the plots of a
# run (jobs/plot_metrics.py). Used by tests/run.sh (with --tests: also a real Slurm and
# munge for the job and scaling tests, strace for the faults tests) and jobs/quickstart.sh.
set -euo pipefail
packages=(build-essential cmake pkg-config libopenblas-openmp-dev librandom123-dev
          openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools zlib1g-dev
          dataset-fashion-mnist python3 gnuplot-nox)
[ "${1:-}" = --tests ] && packages+=(slurm-wlm munge strace)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing: ${missing[*]}"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
