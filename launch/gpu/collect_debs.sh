#!/usr/bin/env bash
# Run HERE (Debian 12, network): downloads the Debian packages that the GPU machine lacks for
# building winnow (OpenMPI, HDF5, Boost.Program_options, GoogleTest and their runtime libraries)
# into .gpu-debs/ (git-ignored), to be carried to the device with `carry: [".gpu-debs"]` and
# unpacked there by launch/gpu/build_and_test.sh. Leaves out what the device image has (libc,
# libstdc++, zlib) and LibTorch (the device uses its Python PyTorch). Prints the total size: all
# that travels must stay under 64 MiB.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/.gpu-debs}
mkdir -p "$out"
cd "$out"

packages=(
  # OpenMPI: headers, wrappers, mpirun/orted and the libraries libmpi and its components load
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common
  libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 libpmix2 libfabric1 libucx0
  libibverbs1 librdmacm1 libpsm2-2 libpsm-infinipath1 libnl-3-200 libnl-route-3-200 libmunge2
  libnuma1 libltdl7 libgfortran5
  # HDF5 (serial C library, what winnow uses) and its compression libraries
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 hdf5-helpers
  libsz2 libaec0 libaec-dev libcurl3-gnutls
  # Boost.Program_options (library and the Boost headers it needs)
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev
  # GoogleTest and GoogleMock
  libgtest-dev libgmock-dev
)
apt-get download "${packages[@]}" >/dev/null
ls -1 ./*.deb | wc -l | xargs echo "packages:"
du -sh . | awk '{print "total size: " $1 " (limit for everything carried: 64 MiB)"}'
