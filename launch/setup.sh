#!/usr/bin/env bash
# Installs the Debian packages winnow needs to build, test and run its demo, when they are
# missing. Idempotent: a second run installs nothing and says so. Needs root or sudo.
#   launch/setup.sh            build + test + demo packages
#   launch/setup.sh --check    only report what is missing (exit 1 if anything is)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp       # LibTorch; OpenBLAS (the reference BLAS is ~40x slower)
  libtcmalloc-minimal4                   # the allocator linked in (glibc malloc: 2 ranks ~2x slower)
  libhdf5-dev hdf5-tools zlib1g-dev      # data and checkpoints; h5ls/h5dump to inspect them
  libboost-program-options-dev           # CLI and config files
  nlohmann-json3-dev                     # JSON reading (study reports read summary.json)
  libopenmpi-dev openmpi-bin             # multi-process training
  slurm-wlm munge                        # Slurm launch test: a private single-node cluster
  libgtest-dev libgmock-dev              # tests
  python3-torch python3-torchvision python3-h5py  # PyTorch references: tests/interop, fixtures
  python3-matplotlib                     # plots: winnow study report, launch/experiments/*.py
  dataset-fashion-mnist fortunes         # the demo's image and text data
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${1:-}" = "--check" ]; then
  if [ ${#missing[@]} -eq 0 ]; then echo "setup: all ${#packages[@]} packages present"; exit 0; fi
  echo "setup: missing: ${missing[*]}"; exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed; nothing to do"
else
  echo "setup: installing ${#missing[@]} missing package(s): ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo; install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
  echo "setup: installed ${missing[*]}"
fi

# LibTorch calls whatever libblas.so.3 the alternatives system selects; OpenBLAS must win.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) echo "setup: BLAS behind LibTorch: $blas (OpenBLAS)" ;;
  *) echo "setup: warning: libblas.so.3 is $blas, not OpenBLAS; run: update-alternatives --config libblas.so.3-x86_64-linux-gnu" ;;
esac
