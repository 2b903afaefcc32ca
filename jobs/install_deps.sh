#!/usr/bin/env bash
# Installs the Debian packages pcn_dist builds, tests and runs with, when missing
# (apt-get update first; sudo when not root). Used by tests/run.sh (with --tests: also a
# real Slurm, munge and gnuplot for the job and scaling tests, strace and python3 for the
# faults tests) and jobs/quickstart.sh.
set -euo pipefail
packages=(build-essential cmake pkg-config libopenblas-openmp-dev librandom123-dev
          openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools zlib1g-dev
          dataset-fashion-mnist)
[ "${1:-}" = --tests ] && packages+=(slurm-wlm munge gnuplot-nox strace python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing: ${missing[*]}"
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
$sudo_cmd apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
