// Facts about the running process that runs report: the BLAS library LibTorch calls.
#pragma once

#include <string>

namespace winnow::launch {

// The BLAS/LAPACK shared libraries mapped into this process (from /proc/self/maps), e.g.
// "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 (OpenBLAS)". The reference BLAS is
// ~40x slower than OpenBLAS for LibTorch's matmuls; a warning says so when it is the one loaded.
std::string loaded_blas();
bool reference_blas_loaded();

}  // namespace winnow::launch
