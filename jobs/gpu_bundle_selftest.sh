#!/usr/bin/env bash
# Proves HERE that a bundle made by jobs/gpu_bundle.sh runs from wherever it is unpacked with
# nothing of this machine's but what a bare GPU machine has (glibc, libstdc++, libgcc_s, the
# CUDA libraries): in a private mount namespace it
#   - unpacks the bundle into a fresh folder (not where gpu_check.sh puts it),
#   - hides everything the bundle brings: /usr/lib/<multiarch> becomes a tmpfs of symbolic
#     links to the real folder minus every library the bundle holds (all versions of each
#     soname) and minus openmpi/, pmix2/, hwloc/, ucx/, libfabric/, libibverbs/ and the folders
#     of bundled libraries (openblas-openmp/, ...); /usr/bin likewise minus Open MPI's programs
#     (mpirun, mpiexec, orterun, orted, ompi_info, ...), ssh and rsh; empty folders over
#     /usr/share/openmpi and /etc/openmpi,
#   - shows the hiding works (the original build's pcn_dist no longer finds libmpi),
#   - runs from the bundle, with LD_DEBUG=files tracing every process: relocate.sh; ompi_info's
#     relocated paths and components; an Open MPI help message (help files found); pcn_dist
#     --help; mpirun -np 2 test_dist; mpirun -np 2 test_io_read; pcn_testtool mkdata; a 2-rank
#     `pcn_dist train` and a 1-process one without mpirun (an MPI singleton starting the
#     bundle's orted), equal to 1e-5; a 2-rank `pcn_dist test`; `pcn_dist info`; a few
#     relocated CTest tests through the system's ctest; and jobs/gpu_check.sh end to end
#     (no GPU here: its GPU steps skip) with only the MPI / HDF5 / BLAS stack hidden, since a
#     device's python and cmake bring zlib, OpenSSL, libcurl and the like,
#   - then audits the traces: every shared object loaded by every process that runs a program of
#     the bundle must come from the bundle, glibc, libstdc++, libgcc_s or CUDA; anything else is
#     a leak and fails the test.
# Usage: jobs/gpu_bundle_selftest.sh [BUNDLE.tar.xz]   (default .gpubundle/pcn-gpu-bundle.tar.xz)
# Needs root (or unprivileged user namespaces), Debian (dpkg) and python3 for the audit.
# KEEP=1 keeps the scratch folder (/tmp/pcn-bundle-selftest.*) for reading the traces.
set -uo pipefail

die() { echo "gpu_bundle_selftest: $*" >&2; exit 1; }

# ---- inside the mount namespace ------------------------------------------------------------------
results=()
# check NAME 'bash code': run it traced, print its output, record ok/FAILED.
check() {
  local name=$1 code=$2 rc
  echo; echo "---- $name"
  echo "\$ $code" | sed '2,$s/^/  /'
  timeout -k 5 180 env LD_DEBUG=files LD_DEBUG_OUTPUT="$T/ld/trace" bash -o pipefail -c "$code" < /dev/null 2>&1 \
    | tail -n "${TAIL:-15}"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then results+=("ok      $name"); echo "     -> ok"
  else results+=("FAILED  $name (exit $rc)"); echo "     -> FAILED (exit $rc)"; fi
}

inside() {
  T=$1; B=$2; tarball=$3; repo=$4
  export T B
  local ma libdir hide_dirs prefixes p
  ma=$(gcc -print-multiarch 2> /dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
  libdir=/usr/lib/$ma
  local path0=$PATH
  . "$B/origin.env"

  # -- what to hide: every bundled library (by soname stem) and the folders it came from
  : > "$T/hide_prefixes"; : > "$T/hide_dirs"; : > "$T/hide_other_dirs"
  for f in "$B/usr/lib/$ma"/*.so*; do
    p=${f##*/}; echo "${p%%.so*}.so" >> "$T/hide_prefixes"
  done
  printf '%s\n' openmpi pmix2 hwloc ucx libfabric libibverbs >> "$T/hide_dirs"
  sed -n '/^== bundled libraries/,/^$/p' "$B/MANIFEST.txt" | awk 'NF >= 3 && $2 ~ /^\// { print $2 }' | while read -r real; do
    d=$(dirname "$real")
    if [ "$d" = "$libdir" ]; then p=${real##*/}; echo "${p%%.so*}.so" >> "$T/hide_prefixes"
    elif [ "$(dirname "$d")" = "$libdir" ]; then basename "$d" >> "$T/hide_dirs"
    else echo "$d" >> "$T/hide_other_dirs"; fi
  done
  sort -u -o "$T/hide_prefixes" "$T/hide_prefixes"; sort -u -o "$T/hide_dirs" "$T/hide_dirs"
  sort -u -o "$T/hide_other_dirs" "$T/hide_other_dirs"
  { dpkg -L openmpi-bin 2> /dev/null | grep '^/usr/bin/' | xargs -r -n1 basename
    printf '%s\n' mpirun mpiexec orterun orted ompi_info ssh rsh slogin; } | sort -u > "$T/hide_bin"

  # -- the symbolic-link farms
  mkdir -p "$T/mnt/orig-lib" "$T/mnt/farm-lib" "$T/mnt/orig-bin" "$T/mnt/farm-bin" "$T/mnt/empty"
  mount --bind "$libdir" "$T/mnt/orig-lib" || die "mount --bind failed (root or user namespaces needed)"
  mount --bind /usr/bin "$T/mnt/orig-bin"
  mount -t tmpfs tmpfs "$T/mnt/farm-lib"
  mount -t tmpfs tmpfs "$T/mnt/farm-bin"
  ls -A "$T/mnt/orig-lib" | awk -v pf="$T/hide_prefixes" -v df="$T/hide_dirs" '
    BEGIN { while ((getline l < pf) > 0) P[++n] = l; while ((getline l < df) > 0) D[l] = 1 }
    { if ($0 in D) { hidden++; next }
      for (i = 1; i <= n; i++) if (index($0, P[i]) == 1) { hidden++; next }
      print }
    END { print hidden " entries of the library folder hidden" > "/dev/stderr" }' \
    | sed "s|^|$T/mnt/orig-lib/|" | xargs -d '\n' ln -s -t "$T/mnt/farm-lib"
  ls -A "$T/mnt/orig-bin" | grep -vxF -f "$T/hide_bin" | sed "s|^|$T/mnt/orig-bin/|" \
    | xargs -d '\n' ln -s -t "$T/mnt/farm-bin"
  mount --bind "$T/mnt/farm-lib" "$libdir"
  mount --bind "$T/mnt/farm-bin" /usr/bin
  for d in /usr/share/openmpi /etc/openmpi $(cat "$T/hide_other_dirs"); do
    [ -d "$d" ] && mount --bind "$T/mnt/empty" "$d"
  done
  echo "hidden: $(wc -l < "$T/hide_prefixes") library names (every version), folders $(tr '\n' ' ' < "$T/hide_dirs")in $libdir, $(tr '\n' ' ' < "$T/hide_other_dirs")/usr/share/openmpi /etc/openmpi, $(wc -l < "$T/hide_bin") programs in /usr/bin (Open MPI's, ssh, rsh)"

  echo; echo "---- the hiding works"
  local bad=0
  [ -e "$libdir/libmpi.so.40" ] && { echo "libmpi.so.40 still visible"; bad=1; }
  [ -e "$libdir/openblas-openmp" ] && { echo "openblas-openmp still visible"; bad=1; }
  command -v mpirun > /dev/null && { echo "mpirun still on PATH"; bad=1; }
  command -v ssh > /dev/null && { echo "ssh still on PATH"; bad=1; }
  [ -n "$(ls -A /usr/share/openmpi 2> /dev/null)" ] && { echo "/usr/share/openmpi still has files"; bad=1; }
  echo "\$ $PCN_ORIG_BUILD/pcn_dist --help   (the original build, outside the bundle)"
  out=$("$PCN_ORIG_BUILD/pcn_dist" --help 2>&1); rc=$?
  echo "$out" | head -2 | sed 's/^/  /'
  if [[ $out != *"error while loading shared libraries"* ]]; then
    echo "  the original build does not fail for a missing library (exit $rc): the hiding failed"; bad=1
  fi
  if [ $bad = 0 ]; then results+=("ok      hiding (libmpi, OpenBLAS, mpirun, ssh, Open MPI's files gone)"); echo "     -> ok"
  else results+=("FAILED  hiding"); echo "     -> FAILED"; fi

  # -- the bundle's environment (python for the CUDA folder search sees the real libraries)
  export PCN_BUNDLE=$B PCN_BUNDLE_BASE_LD_LIBRARY_PATH=
  export LD_LIBRARY_PATH=$T/mnt/orig-lib
  . "$B/env.sh"
  unset LD_LIBRARY_PATH
  W=$T/work; mkdir -p "$W" "$T/ld"; export W
  echo "PATH starts with $PCN_BUNDLE/wrap; OPAL_PREFIX=$OPAL_PREFIX"
  echo "CUDA folders found: ${PCN_BUNDLE_CUDA_DIRS:-none}"
  common="--data $W/data.h5 --dims 20,12,8 --output-dim 4 --activation tanh --epochs 2 --batch-size 25 --t-infer 6 --t-learn 5 --t-infer-test 10 --lr-infer 0.1 --lr-learn 0.05 --seed 3 --progress 0"
  export common

  check relocate '"$B/relocate.sh" && grep -c "$B" "$B/build/tests/CTestTestfile.cmake" | sed "s/^/lines naming the bundle: /"'
  check ompi_info_paths 'ompi_info --path all | grep -E "Prefix|Libdir|Pkglibdir|Pkgdatadir|Sysconfdir" | tee /dev/stderr | grep -v "$B" | grep -q . && exit 1 || exit 0'
  check ompi_components 'n=$(ompi_info | grep -c "MCA "); echo "$n MCA components"; [ "$n" -ge 50 ]'
  check help_files 'out=$(mpirun -np 1 /nonexistent-program 2>&1); echo "$out" | head -4
    [[ $out != *"supposed to get help"* && $out == *"unable to launch"* ]]'
  check pcn_dist_help 'pcn_dist --help > "$T/help.txt" && head -4 "$T/help.txt"'   # no SIGPIPE from head
  check mpirun_test_dist 'mpirun --oversubscribe -np 2 "$B/build/tests/test_dist"'
  check mpirun_test_io_read 'mpirun --oversubscribe -np 2 "$B/build/tests/test_io_read"'
  check mkdata 'pcn_testtool mkdata "$W/data.h5" 103 37 20 4 7 && ls -l "$W/data.h5"'
  check train_np2 'mpirun --oversubscribe -np 2 "$B/build/pcn_dist" train $common --checkpoint "$W/c2.h5" --metrics "$W/m2.jsonl" && tail -1 "$W/m2.jsonl" | cut -c1-150'
  check train_singleton 'pcn_dist train $common --checkpoint "$W/c1.h5"'
  check np2_equals_np1 'pcn_testtool compare "$W/c2.h5" "$W/c1.h5" 1e-5'
  check test_np2 'mpirun --oversubscribe -np 2 "$B/build/pcn_dist" test --data "$W/data.h5" --checkpoint "$W/c2.h5" --json --progress 0'
  check info 'pcn_dist info "$W/c2.h5" | head -8'
  # The system's ctest runs with the real libraries (a device's ctest brings its own); the
  # tests themselves run through $B/wrap/run, with the bundle's.
  TAIL=30 check ctest_relocated 'cd "$B/build" && LD_LIBRARY_PATH="$T/mnt/orig-lib" ctest -j2 --output-on-failure --no-tests=error \
    -R "^(dist_invariance_np2|io_read_np3|program_invariance|cli_good_run|cli_bad_not_hdf5|golden_cls_relu|test_convert)\$" \
    && LD_LIBRARY_PATH="$T/mnt/orig-lib" ctest -N -L gpu | tail -1'
  # gpu_check.sh end to end, from a clean environment, as on the device (no GPU here). A device
  # has the common libraries its python and cmake need (zlib, OpenSSL, libcurl, ...), so for
  # this run the library folder shows everything again but the MPI / HDF5 / BLAS stack: what
  # came from the packages named below (a second farm mounted over the first).
  mild='^(libopenmpi|libhdf5|libopenblas|libpmix|libhwloc|libevent|libgfortran|libquadmath|libsz|libaec|libfabric|libucx|libibverbs|ibverbs-providers|librdmacm|libpsm|libnl-|libnuma|libmunge|libgomp|libatomic)'
  sed -n '/^== bundled libraries/,/^$/p' "$B/MANIFEST.txt" | awk -v re="$mild" 'NF >= 3 && $3 ~ re { print $1 }' \
    | sed 's/\.so.*/.so/' | sort -u > "$T/hide_prefixes_mild"
  mkdir -p "$T/mnt/farm-lib2"
  mount -t tmpfs tmpfs "$T/mnt/farm-lib2"
  ls -A "$T/mnt/orig-lib" | awk -v pf="$T/hide_prefixes_mild" -v df="$T/hide_dirs" '
    BEGIN { while ((getline l < pf) > 0) P[++n] = l; while ((getline l < df) > 0) D[l] = 1 }
    { if ($0 in D) next; for (i = 1; i <= n; i++) if (index($0, P[i]) == 1) next; print }' \
    | sed "s|^|$T/mnt/orig-lib/|" | xargs -d '\n' ln -s -t "$T/mnt/farm-lib2"
  mount --bind "$T/mnt/farm-lib2" "$libdir"
  echo; echo "library folder for gpu_check: hiding $(wc -l < "$T/hide_prefixes_mild") library names of the MPI/HDF5/BLAS stack: $(tr '\n' ' ' < "$T/hide_prefixes_mild")and the folders above"
  TAIL=40 check gpu_check "cd '$repo' && env -i HOME=\"\$HOME\" PATH='$path0' LD_DEBUG=files LD_DEBUG_OUTPUT='$T/ld/trace' \
    PCN_GPU_BUNDLE_TAR='$tarball' PCN_GPU_BUNDLE_DIR='$T/gpu_check/pcn-gpu-bundle' GPU_CHECK_SITE='$T/site' \
    OUT='$T/gpu_check/out' GPU_CHECK_BUDGET_S=400 bash jobs/gpu_check.sh; rc=\$?
    n=\$(grep -cE '^(unpack|relocate|libs|mpi_smoke|pip_whl|ctest_cpu) +ok' '$T/gpu_check/out/gpu_check_summary.txt')
    echo \"\$n of the 6 steps that can run without a GPU passed\"; [ \$rc = 0 ] && [ \$n = 6 ]"

  echo; echo "== checks"
  printf '  %s\n' "${results[@]}"
  printf '%s\n' "${results[@]}" > "$T/results"
  ! grep -q FAILED "$T/results"
}

if [ "${1:-}" = --inside ]; then
  shift; inside "$@"; exit
fi

# ---- outside: unpack, enter the namespace, audit the traces ---------------------------------------
repo=$(cd "$(dirname "$0")/.." && pwd -P)
tarball=$(readlink -f "${1:-$repo/.gpubundle/pcn-gpu-bundle.tar.xz}")
[ -f "$tarball" ] || die "no bundle $tarball (make one with jobs/gpu_bundle.sh BUILD_DIR)"
command -v unshare > /dev/null || die "needs unshare (util-linux)"
T=$(mktemp -d /tmp/pcn-bundle-selftest.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$T"' EXIT
mkdir -p "$T/elsewhere/unpacked-here"
tar -C "$T/elsewhere/unpacked-here" -xJf "$tarball" || die "cannot unpack $tarball"
B=$T/elsewhere/unpacked-here/pcn-gpu-bundle
echo "gpu_bundle_selftest: $tarball ($(du -h "$tarball" | cut -f1)) unpacked into $B"
flags=(-m --propagation private)
[ "$(id -u)" = 0 ] || flags=(-r "${flags[@]}")
unshare "${flags[@]}" bash "$0" --inside "$T" "$B" "$tarball" "$repo"
rc=$?

echo; echo "== audit of every shared object loaded by the bundle's programs (LD_DEBUG=files)"
dpkg -L libc6 libstdc++6 libgcc-s1 2> /dev/null | grep -E '/lib[^/]*\.so' | xargs -r -n1 basename | sort -u > "$T/system_names"
python3 - "$T" "$B" "$T/gpu_check/pcn-gpu-bundle" << 'PY' || rc=1
import collections, glob, os, sys
T, bundles = sys.argv[1], [os.path.realpath(b) + "/" for b in sys.argv[2:]]
system = set(open(os.path.join(T, "system_names")).read().split())

# A program started by a bare name (Open MPI starts "orted" so) is traced by that name only;
# the system's programs of those names are hidden, so such a name means the bundle's.
bare = set()
for b in bundles:
    for d in ("usr/bin", "build", "build/tests", "wrap"):
        if os.path.isdir(b + d):
            bare.update(os.listdir(b + d))

def in_bundle(p):
    if "/" not in p:
        return p in bare
    return any(os.path.realpath(p).startswith(b) or p.startswith(b) for b in bundles)

def kind(lib):
    if in_bundle(lib):
        return "bundle"
    base = os.path.basename(lib)
    if base in system or base.startswith("ld-linux"):
        return "system"
    if lib.startswith("/usr/local/cuda") or "/nvidia/" in lib or base.startswith(("libcuda.so", "libnvidia-")):
        return "cuda"
    return "leak"

programs = collections.Counter()
loaded = collections.defaultdict(set)  # kind -> libs
leaks = collections.defaultdict(set)   # lib -> programs
for fn in glob.glob(os.path.join(T, "ld", "trace.*")):
    lines = []
    for raw in open(fn, errors="replace"):
        _, _, rest = raw.partition(":")
        lines.append(rest.strip())
    # An image's own loading starts at "needed by PROGRAM [0]"; an exec starts a new image in
    # the same file after "transferring control:"; dlopens follow their image's transfer.
    segs, cur = [], []
    for l in lines:
        cur.append(l)
        if l.startswith("transferring control:"):
            segs.append(cur); cur = []
    segs.append(cur)
    prev = None
    for seg in segs:
        prog = next((l.split(":", 1)[1].strip() for l in seg if l.startswith("initialize program:")), None)
        k = len(seg)
        if prog:
            k = next((i for i, l in enumerate(seg) if ("needed by %s [0]" % prog) in l), 0)
        for owner, part in ((prev, seg[:k]), (prog, seg[k:])):
            if owner is None or not in_bundle(owner):
                continue
            for l in part:
                if l.startswith("calling init:"):
                    lib = l.split(":", 1)[1].strip()
                    kd = kind(lib)
                    loaded[kd].add(lib if kd != "bundle" else os.path.basename(lib))
                    if kd == "leak":
                        leaks[lib].add(owner)
        if prog:
            if in_bundle(prog):
                programs[os.path.basename(prog)] += 1
            prev = prog

print("bundle programs traced (processes): " + ", ".join("%s %d" % kv for kv in sorted(programs.items())))
print("from the bundle: %d shared objects (libraries and plugins)" % len(loaded["bundle"]))
print("from the system: " + " ".join(sorted({os.path.basename(l) for l in loaded["system"]})))
print("from CUDA: " + (" ".join(sorted(loaded["cuda"])) or "none (a CPU-only build)"))
if leaks:
    print("LEAKS (loaded from this machine, not in the bundle):")
    for lib, progs in sorted(leaks.items()):
        print("  %s  <- %s" % (lib, ", ".join(sorted({os.path.basename(p) for p in progs}))))
    sys.exit(1)
if not programs:
    print("no bundle program was traced: the audit saw nothing"); sys.exit(1)
print("no leaks")
PY
echo
if [ $rc = 0 ]; then echo "gpu_bundle_selftest: PASSED"; else echo "gpu_bundle_selftest: FAILED"; fi
exit $rc
