// Facts about the running process that runs report: the BLAS library LibTorch calls and the
// memory allocator.
#pragma once

#include <string>

namespace winnow::launch {

// The BLAS/LAPACK shared libraries mapped into this process (from /proc/self/maps), e.g.
// "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 (OpenBLAS)". The reference BLAS is
// ~40x slower than OpenBLAS for LibTorch's matmuls; a warning says so when it is the one loaded.
std::string loaded_blas();
bool reference_blas_loaded();

// The malloc this process uses: "tcmalloc (gperftools 2.10)", "jemalloc" or "glibc malloc"
// (whatever won at link time or through LD_PRELOAD), found by the allocators' own symbols.
std::string active_allocator();

}  // namespace winnow::launch
