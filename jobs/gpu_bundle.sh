#!/usr/bin/env bash
# Packs a pcn_dist build for a machine that has only glibc, libstdc++/libgcc_s, the NVIDIA
# driver (libcuda) and the CUDA toolkit (cudart, cuBLAS, NCCL): one compressed file holding
#   build/   the build folder's executables, CTest files and other non-object files;
#   src/     the source files the tests read (tracked and untracked-not-ignored files);
#   usr/     the ldd closure of every executable and plugin (Open MPI, parallel HDF5, OpenBLAS,
#            libgomp, libgfortran, ...), Open MPI's mpirun/mpiexec/orterun/orted/ompi_info,
#            its plugins and help files, PMIx's library, plugins and help files, laid out as
#            under /usr so Open MPI relocates with OPAL_PREFIX (see env.sh);
#   etc/openmpi/        Debian's MCA defaults (found through OPAL_SYSCONFDIR);
#   env.sh   sourced with PCN_BUNDLE set: OPAL_*, PMIX_*, HWLOC_PLUGINS_PATH, the library path;
#   relocate.sh         rewrites the CTest files from this machine's paths to the bundle's;
#   wrap/    mpirun, mpiexec, pcn_dist, pcn_bench, ... and `run CMD...`: each sets the bundle's
#            library path for that command only, so python, ctest and the shell keep theirs;
#   MANIFEST.txt        where everything came from, what the device must provide.
# Left out on purpose: glibc (libc6), ld-linux, libstdc++, libgcc_s, libcuda/libnvidia-*, and
# the CUDA toolkit's libraries (cudart, cuBLAS(Lt), NCCL, anything under /usr/local/cuda or a
# pip nvidia/*/lib folder): the device brings its own.
#
# Usage: jobs/gpu_bundle.sh BUILD_DIR [OUTDIR]     (OUTDIR default .gpubundle)
# Writes OUTDIR/pcn-gpu-bundle.tar.xz and OUTDIR/MANIFEST.txt. Debian/Ubuntu only (dpkg).
# Check it with jobs/gpu_bundle_selftest.sh; run it on the device with jobs/gpu_check.sh.
set -euo pipefail

die() { echo "gpu_bundle: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,24p' "$0"; exit 2; }
build=$(cd "$1" && pwd -P) || die "no build folder $1"
outdir=${2:-.gpubundle}
cache=$build/CMakeCache.txt
[ -f "$cache" ] || die "$build has no CMakeCache.txt"
[ -f "$build/CTestTestfile.cmake" ] || die "$build has no CTestTestfile.cmake (configure with tests)"
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
[ -d "$src" ] || die "source folder '$src' (from CMakeCache.txt) is missing"
src=$(cd "$src" && pwd -P)
mpiexec=$(sed -n 's/^MPIEXEC_EXECUTABLE:[A-Z]*=//p' "$cache")
[ -n "$mpiexec" ] || mpiexec=/usr/bin/mpiexec
ma=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=/usr/lib/$ma
for t in ldd dpkg readelf objdump xz tar; do
  command -v $t > /dev/null || die "needs $t"
done
orterun=$(readlink -f "$(command -v orterun || echo /usr/bin/orterun)")
[ -x "$orterun" ] || die "no orterun (Debian openmpi-bin)"
[ -d "$libdir/openmpi/lib/openmpi3" ] || die "no $libdir/openmpi/lib/openmpi3 (Debian libopenmpi3)"
[ -d "$libdir/pmix2/lib" ] || die "no $libdir/pmix2/lib (Debian libpmix2)"

name=pcn-gpu-bundle
stage=$(mktemp -d "${TMPDIR:-/tmp}/pcn-gpu-bundle-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
B=$stage/$name
mkdir -p "$B"/{build,src,wrap,etc,usr/bin,usr/share,usr/lib/$ma/openmpi/lib,usr/lib/$ma/pmix2,usr/lib/$ma/hwloc}
echo "gpu_bundle: build $build, source $src, mpiexec $mpiexec"

# ---- the build folder: executables, CTest files, no object files ----------------------------
tar -C "$build" -cf - \
  --exclude=CMakeFiles --exclude=Testing --exclude='*_scratch' --exclude='*.o' --exclude='*.obj' \
  --exclude='*.a' --exclude='*.d' --exclude=Makefile --exclude=cmake_install.cmake \
  --exclude='*.ninja' --exclude='.ninja_*' --exclude=install_manifest.txt --exclude='*.h5' \
  --exclude='*.jsonl' --exclude='*.log' --exclude='*.tmp' . | tar -C "$B/build" -xf -
# The folders the CTest files name (as CMake wrote them: not always the physical path).
orig_build=$(sed -n 's/^# Build directory: //p' "$build/CTestTestfile.cmake" | head -1)
orig_src=$(sed -n 's/^# Source directory: //p' "$build/CTestTestfile.cmake" | head -1)
[ -n "$orig_build" ] && [ -n "$orig_src" ] || die "$build/CTestTestfile.cmake names no build/source folder"
[ "$(cd "$orig_build" 2> /dev/null && pwd -P)" = "$build" ] \
  || die "the CTest files in $build were written for $orig_build (a copied build folder?); configure it in place"
# relocate.sh regenerates the CTest files from these pristine copies, so it can run again.
find "$B/build" -name CTestTestfile.cmake -exec cp {} {}.orig \;

# ---- the source files the tests and benchmarks read ------------------------------------------
if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
  (cd "$src" && git ls-files -z --cached --others --exclude-standard \
     | xargs -0 -r sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh \
     | tar --null -T - -cf -) | tar -C "$B/src" -xf -
  src_rev="$(git -C "$src" rev-parse HEAD)$(git -C "$src" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
else
  tar -C "$src" -cf - CMakeLists.txt tests jobs $( [ -d "$src/cmake" ] && echo cmake) | tar -C "$B/src" -xf -
  src_rev="(not a git checkout)"
fi

# ---- Open MPI: launcher, plugins, help files, MCA defaults ------------------------------------
for exe in orterun orted ompi_info; do
  cp -L "$(readlink -f "$(dirname "$orterun")/$exe")" "$B/usr/bin/$exe"
done
ln -s orterun "$B/usr/bin/mpirun"
ln -s orterun "$B/usr/bin/mpiexec"
cp -a "$libdir/openmpi/lib/openmpi3" "$B/usr/lib/$ma/openmpi/lib/"
cp -a /usr/share/openmpi "$B/usr/share/"
[ -d /etc/openmpi ] && cp -a /etc/openmpi "$B/etc/"

# ---- PMIx (Open MPI 4.1 on Debian uses the external libpmix2): library, plugins, help -------
cp -a "$libdir/pmix2/lib" "$libdir/pmix2/share" "$B/usr/lib/$ma/pmix2/"
# Its MCA file names the plugin folder by absolute path; env.sh sets the bundle's instead.
conf=$B/usr/lib/$ma/pmix2/share/pmix-mca-params.conf
[ -f "$conf" ] && sed -i 's|^\(mca_base_component_path *=.*\)|# relocated by env.sh (PMIX_MCA_mca_base_component_path): \1|' "$conf"

# ---- the ldd closure of every ELF file in the bundle ---------------------------------------
is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
elves=$stage/elves
: > "$elves"
while IFS= read -r -d '' f; do is_elf "$f" && echo "$f" >> "$elves"; done \
  < <(find "$B/build" "$B/usr" -type f -print0)
# The system's own runtime (always on the device): glibc, libstdc++, libgcc_s.
system_names=$stage/system_names
dpkg -L libc6 libstdc++6 libgcc-s1 2>/dev/null | grep -E '/lib[^/]*\.so' | xargs -r -n1 basename | sort -u > "$system_names"
device_re='^(libcuda|libnvidia-|libcudart|libcublas|libcublasLt|libnccl|libcurand|libcusparse|libcusolver|libcufft|libnvrtc|libnvJitLink|libnvToolsExt|libnvtx)[.-]'
pairs=$stage/pairs   # soname<TAB>path, from ldd
: > "$pairs"
while read -r f; do
  LD_LIBRARY_PATH="$libdir/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$f" 2>/dev/null \
    | awk -v f="$f" '$2 == "=>" { print $1 "\t" ($3 == "not" ? "NOTFOUND" : $3) "\t" f }' >> "$pairs" || true
done < "$elves"
bundled=$stage/bundled; device=$stage/device; missing=$stage/missing
: > "$bundled"; : > "$device"; : > "$missing"
# One line per soname; a path found for it wins over "NOTFOUND" ('/' sorts first).
sort -t $'\t' -k1,1 -k2,2 "$pairs" | awk -F '\t' '!seen[$1]++' | while IFS=$'\t' read -r so path from; do
  base=$(basename "$path")
  if grep -qxF "$so" "$system_names" || grep -qxF "$base" "$system_names"; then continue; fi
  if [[ $so =~ $device_re ]] || [[ $path == /usr/local/cuda* ]] || [[ $path == */nvidia/*/lib/* ]]; then
    ver=""
    [[ $so == libnccl* ]] && [ -f "$path" ] && ver=" ($(strings -a "$path" | grep -m1 -oE 'NCCL version [^ ]+' || true))"
    echo "$so	$(readlink -f "$path")$ver" >> "$device"; continue
  fi
  if [ "$path" = NOTFOUND ]; then echo "$so	needed by ${from#$B/}" >> "$missing"; continue; fi
  real=$(readlink -f "$path")
  case $real in "$libdir/pmix2/lib/"*) continue ;; esac   # already under usr/lib/$ma/pmix2/lib
  cp -L "$real" "$B/usr/lib/$ma/$so"
  pkg=$(dpkg -S "$real" 2>/dev/null | head -1 | cut -d: -f1 || true)
  [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1 || true)
  echo "$so	$real	${pkg:-?}" >> "$bundled"
done
if [ -s "$missing" ]; then
  echo "gpu_bundle: warning: libraries ldd could not find here (left out):" >&2
  sed 's/^/  /' "$missing" >&2
fi

# ---- what the device must bring ---------------------------------------------------------------
all_elves=$stage/all_elves
while IFS= read -r -d '' f; do is_elf "$f" && echo "$f"; done < <(find "$B" -type f -print0) > "$all_elves"
versions=$stage/versions
while read -r f; do objdump -T "$f" 2>/dev/null; done < "$all_elves" | grep -oE '(GLIBC|GLIBCXX|CXXABI)_[0-9][0-9.]*' | sort -u -V > "$versions"
maxver() { { grep "^$1_[0-9]" "$versions" || true; } | tail -1; }  # the highest version any bundled file asks for
need_glibc=$(maxver GLIBC); need_glibcxx=$(maxver GLIBCXX); need_cxxabi=$(maxver CXXABI)
cuda_info=""
cuobjdump=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2> /dev/null || true)
for f in $(grep -e "^$B/build/[^/]*$" -e "^$B/build/tests/" "$elves"); do
  [ "$(readelf -S "$f" 2> /dev/null | grep -c nv_fatbin)" -gt 0 ] || continue
  if [ -n "$cuobjdump" ]; then
    archs=$("$cuobjdump" --list-elf --list-ptx "$f" 2>&1 | grep -oE '(sm|compute)_[0-9]+[af]?' | sort -u | tr '\n' ' ' || true)
  else
    archs="$(strings -a "$f" | grep -oE '\b(sm|compute)_[0-9]+[af]?\b' | sort -u | tr '\n' ' ' || true)(no cuobjdump: names found in the file)"
  fi
  cuda_info+="${f#$B/}: $archs"$'\n'
done
[ -n "$cuda_info" ] || cuda_info="(no executable holds CUDA device code: a CPU-only build)"$'\n'

# ---- env.sh, relocate.sh, the wrappers ----------------------------------------------------------
cat > "$B/origin.env" << EOF
PCN_ORIG_BUILD='$orig_build'
PCN_ORIG_SRC='$orig_src'
PCN_ORIG_MPIEXEC='$mpiexec'
EOF

cat > "$B/env.sh" << 'EOF'
# Sourced by POSIX sh or bash with PCN_BUNDLE set to the unpacked bundle (written by
# jobs/gpu_bundle.sh). Exports Open MPI's and PMIx's relocation variables, root permission for
# mpirun, and PCN_BUNDLE_LD_LIBRARY_PATH; it does not change LD_LIBRARY_PATH itself: the
# wrappers in $PCN_BUNDLE/wrap do, for their command only. Sourcing it twice is harmless.
: "${PCN_BUNDLE:?set PCN_BUNDLE to the unpacked bundle before sourcing env.sh}"
EOF
cat >> "$B/env.sh" << EOF
pcn_ma=$ma
EOF
cat >> "$B/env.sh" << 'EOF'
export PCN_BUNDLE
pcn_lib=$PCN_BUNDLE/usr/lib/$pcn_ma
# Open MPI 4.1: every install folder follows OPAL_PREFIX except sysconfdir (/etc/openmpi).
export OPAL_PREFIX="$PCN_BUNDLE/usr" OPAL_EXEC_PREFIX="$PCN_BUNDLE/usr"
export OPAL_BINDIR="$PCN_BUNDLE/usr/bin" OPAL_LIBDIR="$pcn_lib/openmpi/lib"
export OPAL_PKGLIBDIR="$pcn_lib/openmpi/lib/openmpi3" OPAL_DATAROOTDIR="$PCN_BUNDLE/usr/share"
export OPAL_DATADIR="$PCN_BUNDLE/usr/share" OPAL_PKGDATADIR="$PCN_BUNDLE/usr/share/openmpi"
export OPAL_SYSCONFDIR="$PCN_BUNDLE/etc/openmpi"
# PMIx 4.2 (Debian libpmix2): its folders are absolute, so each one is set.
export PMIX_PREFIX="$pcn_lib/pmix2" PMIX_INSTALL_PREFIX="$pcn_lib/pmix2" PMIX_EXEC_PREFIX="$pcn_lib/pmix2"
export PMIX_LIBDIR="$pcn_lib/pmix2/lib" PMIX_PKGLIBDIR="$pcn_lib/pmix2/lib/pmix"
export PMIX_DATAROOTDIR="$pcn_lib/pmix2/share" PMIX_DATADIR="$pcn_lib/pmix2/share"
export PMIX_PKGDATADIR="$pcn_lib/pmix2/share/pmix" PMIX_SYSCONFDIR="$pcn_lib/pmix2/share"
export PMIX_MCA_mca_base_component_path="$pcn_lib/pmix2/lib/pmix"
# hwloc: no plugins (PCI, OpenCL, XML) are bundled; this keeps a device's own out.
export HWLOC_PLUGINS_PATH="$pcn_lib/hwloc"
# mpirun as root; one node without ssh; no CMA single-copy (containers often forbid it).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm="${OMPI_MCA_plm:-isolated}"
export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"

# The CUDA libraries the device brings: /usr/local/cuda and pip's nvidia/*/lib folders.
# Found once and exported (PCN_BUNDLE_CUDA_DIRS, possibly empty), so wrappers reuse it.
if [ -z "${PCN_BUNDLE_CUDA_DIRS+x}" ]; then
  PCN_BUNDLE_CUDA_DIRS=""
  for d in ${CUDA_HOME:+"$CUDA_HOME/lib64"} ${CUDA_PATH:+"$CUDA_PATH/lib64"} /usr/local/cuda/lib64 \
           /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    pcn_so=""
    for pcn_f in "$d"/*.so*; do [ -e "$pcn_f" ] && pcn_so=1; break; done
    if [ -n "$pcn_so" ]; then
      d=$(cd "$d" && pwd -P)
      case ":$PCN_BUNDLE_CUDA_DIRS:" in *":$d:"*) ;; *) PCN_BUNDLE_CUDA_DIRS="$PCN_BUNDLE_CUDA_DIRS${PCN_BUNDLE_CUDA_DIRS:+:}$d" ;; esac
    fi
  done
  for py in python3 python; do
    command -v "$py" > /dev/null 2>&1 || continue
    pydirs=$("$py" - 2> /dev/null << 'PY'
import glob, os, site, sys
roots = []
try:
    import nvidia
    roots += list(getattr(nvidia, "__path__", []))
except Exception:
    pass
sp = []
try:
    sp += site.getsitepackages() + [site.getusersitepackages()]
except Exception:
    pass
sp += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
roots += [os.path.join(p, "nvidia") for p in sp]
seen = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "*", "lib")) + glob.glob(os.path.join(r, "*", "*", "lib"))):
        d = os.path.realpath(d)
        if d not in seen and glob.glob(os.path.join(d, "*.so*")):
            seen.append(d)
print(":".join(seen))
PY
)
    [ -n "$pydirs" ] && PCN_BUNDLE_CUDA_DIRS="$PCN_BUNDLE_CUDA_DIRS${PCN_BUNDLE_CUDA_DIRS:+:}$pydirs"
    break
  done
  export PCN_BUNDLE_CUDA_DIRS
fi
# The caller's own library path, kept behind ours (the driver may live there in a container).
if [ -z "${PCN_BUNDLE_BASE_LD_LIBRARY_PATH+x}" ]; then
  export PCN_BUNDLE_BASE_LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}"
fi
PCN_BUNDLE_LD_LIBRARY_PATH="$pcn_lib:$pcn_lib/pmix2/lib"
[ -n "$PCN_BUNDLE_CUDA_DIRS" ] && PCN_BUNDLE_LD_LIBRARY_PATH="$PCN_BUNDLE_LD_LIBRARY_PATH:$PCN_BUNDLE_CUDA_DIRS"
[ -n "$PCN_BUNDLE_BASE_LD_LIBRARY_PATH" ] && PCN_BUNDLE_LD_LIBRARY_PATH="$PCN_BUNDLE_LD_LIBRARY_PATH:$PCN_BUNDLE_BASE_LD_LIBRARY_PATH"
export PCN_BUNDLE_LD_LIBRARY_PATH
case ":$PATH:" in *":$PCN_BUNDLE/wrap:"*) ;; *) PATH="$PCN_BUNDLE/wrap:$PATH" ;; esac
export PATH
unset pcn_lib pcn_ma d py pydirs pcn_so pcn_f
EOF

cat > "$B/relocate.sh" << 'EOF'
#!/bin/sh
# Rewrites the bundle's CTest files for where the bundle now lies: the build folder, the source
# folder and mpiexec of the machine that built it become $PCN_BUNDLE/build, $PCN_BUNDLE/src and
# the bundle's mpiexec, and every test command runs through $PCN_BUNDLE/wrap/run (the bundle's
# library path for the test only). Starts from the pristine *.orig copies, so it can run again.
# Usage: relocate.sh [BUNDLE_DIR]     (default: the folder this script is in)
set -eu
B=$(cd "${1:-$(dirname "$0")}" && pwd -P)
. "$B/origin.env"
esc() { printf '%s' "$1" | sed 's/[]\/$*.^|[&]/\\&/g'; }
n=0
for orig in $(find "$B/build" -name CTestTestfile.cmake.orig); do
  sed -e "s|$(esc "$PCN_ORIG_BUILD")|@@PCN_BUILD@@|g" \
      -e "s|$(esc "$PCN_ORIG_SRC")|@@PCN_SRC@@|g" \
      -e "s|$(esc "$PCN_ORIG_MPIEXEC")|@@PCN_MPIEXEC@@|g" \
      -e 's|^add_test(\([^ ]*\) |add_test(\1 "@@PCN_RUN@@" |' \
      -e "s|@@PCN_BUILD@@|$(esc "$B/build")|g" \
      -e "s|@@PCN_SRC@@|$(esc "$B/src")|g" \
      -e "s|@@PCN_MPIEXEC@@|$(esc "$B/usr/bin/mpiexec")|g" \
      -e "s|@@PCN_RUN@@|$(esc "$B/wrap/run")|g" "$orig" > "${orig%.orig}"
  n=$((n + 1))
done
left=$(grep -l -e "$PCN_ORIG_BUILD" -e "$PCN_ORIG_SRC" $(find "$B/build" -name CTestTestfile.cmake) 2>/dev/null || true)
[ -z "$left" ] || { echo "relocate.sh: old paths left in: $left" >&2; exit 1; }
echo "relocate.sh: $n CTest files now point at $B"
EOF
chmod +x "$B/relocate.sh"

wrapper() {  # wrapper NAME TARGET(relative to the bundle, or empty for `run`)
  {
    echo '#!/bin/sh'
    echo "# Written by jobs/gpu_bundle.sh: runs ${2:-its arguments} with the bundle's libraries."
    echo 'PCN_BUNDLE=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)'
    echo '. "$PCN_BUNDLE/env.sh"'
    echo 'export LD_LIBRARY_PATH="$PCN_BUNDLE_LD_LIBRARY_PATH"'
    if [ -n "$2" ]; then echo "exec \"\$PCN_BUNDLE/$2\" \"\$@\""; else echo 'exec "$@"'; fi
  } > "$B/wrap/$1"
  chmod +x "$B/wrap/$1"
}
wrapper run ""
for exe in mpirun mpiexec orterun orted ompi_info; do wrapper $exe usr/bin/$exe; done
for f in "$B"/build/*; do
  is_elf "$f" && [ -x "$f" ] && wrapper "$(basename "$f")" "build/$(basename "$f")"
done
for f in "$B"/build/tests/*; do
  is_elf "$f" && [ -x "$f" ] && [ ! -e "$B/wrap/$(basename "$f")" ] && wrapper "$(basename "$f")" "build/tests/$(basename "$f")"
done

# ---- MANIFEST ----------------------------------------------------------------------------------
{
  echo "pcn_dist GPU bundle (jobs/gpu_bundle.sh), made $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
  echo "build:   $build"
  echo "source:  $src at $src_rev"
  echo "mpiexec: $mpiexec (relocated to usr/bin/mpiexec = Open MPI $(ompi_info --version 2>/dev/null | head -1 | awk '{print $NF}'))"
  echo "cmake:   $(sed -n 's/^CMAKE_COMMAND:INTERNAL=//p' "$cache"), build type $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")"
  cuda_compiler=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$cache")
  echo "nvcc:    ${cuda_compiler:-none (no CUDA language in this build)}"
  echo
  echo "== the device must provide"
  if [ -n "$need_glibcxx$need_cxxabi" ]; then cxx="libstdc++ with ${need_glibcxx:+$need_glibcxx }${need_cxxabi}"
  else cxx="libstdc++ (no versioned symbols needed)"; fi
  echo "glibc >= ${need_glibc#GLIBC_}; $cxx; libgcc_s"
  if [ -s "$device" ]; then
    echo "CUDA libraries (found here at):"; sort -u "$device" | sed 's/^/  /'
  else
    echo "no CUDA libraries (none of the executables links one)"
  fi
  echo "the NVIDIA driver (libcuda.so.1) new enough for the CUDA runtime above"
  echo
  echo "== CUDA device code in the executables (GPU architectures)"
  printf '%s' "$cuda_info"
  echo
  echo "== bundled libraries: soname, from, Debian package"
  sort "$bundled" | column -t -s $'\t'
  if [ -s "$missing" ]; then echo; echo "== not found here by ldd (left out)"; cat "$missing"; fi
  echo
  echo "== executables"
  (cd "$B" && find build usr/bin -type f -perm -u+x | sort | while read -r f; do is_elf "$f" && echo "$f"; done)
} > "$B/MANIFEST.txt"

# ---- compress ------------------------------------------------------------------------------------
mkdir -p "$outdir"
rm -f "$outdir/$name.tar.xz" "$outdir/$name.tar.xz.tmp"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -cf - "$name" | xz -T0 -9 > "$outdir/$name.tar.xz.tmp"
mv "$outdir/$name.tar.xz.tmp" "$outdir/$name.tar.xz"
cp "$B/MANIFEST.txt" "$outdir/MANIFEST.txt"
raw=$(du -sm "$B" | cut -f1)
size=$(stat -c %s "$outdir/$name.tar.xz")
echo "gpu_bundle: $outdir/$name.tar.xz: $((size / 1024)) KiB ($raw MiB unpacked; $(wc -l < "$bundled") libraries bundled, $(wc -l < "$elves") ELF files scanned)"
echo "gpu_bundle: the device must provide glibc >= ${need_glibc#GLIBC_}; CUDA libraries expected there: $( [ -s "$device" ] && cut -f1 "$device" | sort -u | tr '\n' ' ' || echo none)"
[ "$size" -lt $((40 * 1024 * 1024)) ] || die "the bundle is over 40 MiB"
