#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repository root, with .gpu-debs/ carried along
# (launch/gpu/collect_debs.sh made it here). Unpacks the Debian packages into $WINNOW_DEPS
# (default /opt/deps, never /), configures winnow against the Python PyTorch (a CUDA LibTorch) and
# the NCCL that PyTorch uses, builds, runs the CUDA and dist tests, and writes logs to $OUT.
#
#   bash launch/gpu/build_and_test.sh              # everything
#   bash launch/gpu/build_and_test.sh --configure  # stop after cmake (check the paths it found)
#
# Overrides: WINNOW_DEPS, WINNOW_DEBS (.deb folder), WINNOW_TORCH_PREFIX (CMake prefix of a
# LibTorch), WINNOW_BUILD (build folder, default build-gpu), OUT (log folder, default
# build-gpu/logs).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
deps=${WINNOW_DEPS:-/opt/deps}
debs=${WINNOW_DEBS:-$top/.gpu-debs}
build=${WINNOW_BUILD:-$top/build-gpu}
out=${OUT:-$build/logs}
mkdir -p "$deps" "$out"
log() { echo "[build_and_test] $*" | tee -a "$out/steps.log"; }

# 1. Dependencies from the carried .debs.
ls "$debs"/*.deb >/dev/null 2>&1 || { echo "no .deb files in $debs: run launch/gpu/collect_debs.sh here first" >&2; exit 2; }
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$deps"; done
arch=x86_64-linux-gnu
libs=$deps/usr/lib/$arch
export PATH=$deps/usr/bin:$PATH
export LD_LIBRARY_PATH=$libs:$libs/openmpi/lib:$libs/hdf5/serial:${LD_LIBRARY_PATH:-}
export OPAL_PREFIX=$deps/usr                    # Open MPI finds its components and help files
export OPAL_SYSCONFDIR=$deps/etc/openmpi        # and its MCA parameter file
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
log "unpacked $(ls "$debs"/*.deb | wc -l) packages into $deps"

# 2. The CUDA LibTorch and the NCCL it ships with (nvidia-nccl-cu13 has libnccl.so.2 only).
torch_prefix=${WINNOW_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
torch_info=$(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>/dev/null || echo "python torch: unavailable")
log "LibTorch prefix $torch_prefix; $torch_info"
nccl_args=()
nccl_dir=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null || true)
if [ -n "$nccl_dir" ] && [ -f "$nccl_dir/include/nccl.h" ]; then
  mkdir -p "$build/nccl-link"
  ln -sf "$(ls "$nccl_dir"/lib/libnccl.so* | head -n 1)" "$build/nccl-link/libnccl.so"
  nccl_args=(-DNCCL_INCLUDE_DIR="$nccl_dir/include" -DNCCL_LIBRARY="$build/nccl-link/libnccl.so")
  export LD_LIBRARY_PATH=$nccl_dir/lib:$LD_LIBRARY_PATH
  log "NCCL from PyTorch's nvidia-nccl package: $nccl_dir"
fi

# 3. Configure: MPI through the relocated wrapper, HDF5 by its serial folder, the rest by prefix.
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr" \
  -DMPI_CXX_COMPILER="$deps/usr/bin/mpicxx.openmpi" \
  -DMPIEXEC_EXECUTABLE="$deps/usr/bin/mpirun.openmpi" \
  -DHDF5_ROOT="$libs/hdf5/serial" -DHDF5_C_COMPILER_EXECUTABLE=HDF5_C_COMPILER_EXECUTABLE-NOTFOUND \
  -DWINNOW_USE_PCH=OFF "${nccl_args[@]}" 2>&1 | tee "$out/configure.log"
grep -E "✓|✗" "$out/configure.log" >>"$out/steps.log" || true
[ "${1:-}" = "--configure" ] && exit 0

# 4. Build and test: the *_CUDA tests, then the dist suite (MPI on CPU, fail-fast, watchdog).
ninja -C "$build" 2>&1 | tail -n 50 | tee "$out/build.log"
if ldd "$build/tests/dist/test_dist_mpi" | grep "not found" | tee "$out/missing_libs.txt" | grep -q .; then
  log "shared libraries missing on this machine (add their packages to collect_debs.sh):"
  cat "$out/missing_libs.txt" | tee -a "$out/steps.log"
fi
(cd "$build" && OMP_NUM_THREADS=1 ctest -R "_CUDA" --output-on-failure) 2>&1 | tee "$out/ctest_cuda.log"
(cd "$build" && OMP_NUM_THREADS=1 ctest -L "dist|mpi" --output-on-failure) 2>&1 | tee "$out/ctest_dist.log"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
log "done: logs in $out (record figures with the device name, LibTorch version and date: $(date -u +%F))"
