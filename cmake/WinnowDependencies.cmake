# Finds winnow's dependencies and records what was found for the configure summary.
include(FeatureSummary)

# ccache, when present, makes rebuilds after a branch switch, and builds of a second clone, nearly
# free. With the precompiled header ccache needs GCC's -fpch-preprocess and the pch_defines and
# time_macros sloppiness (its manual, "Precompiled headers"); without them every call is
# "uncacheable". CCACHE_BASEDIR turns this tree's absolute paths into relative ones, so clones at
# other paths hit the same entries. The precompiled header is ~570 MB and is an input of every
# compile: the inode cache hashes it once instead of once per file (a hit took 4.4 s without it).
find_program(WINNOW_CCACHE ccache)
if(WINNOW_CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env
      "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime"
      "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}" CCACHE_NOHASHDIR=1 CCACHE_INODECACHE=true ${WINNOW_CCACHE})
  if(WINNOW_USE_PCH AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fpch-preprocess>)
  endif()
endif()

# LibTorch: Debian's libtorch-dev installs TorchConfig.cmake under /usr/lib/<arch>/cmake/Torch or
# /usr/share/cmake/Torch; a pip PyTorch gives its prefix via torch.utils.cmake_prefix_path.
find_package(Torch REQUIRED)
if(Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "winnow needs LibTorch >= 1.13, found ${Torch_VERSION}")
endif()
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(Boost 1.67 REQUIRED COMPONENTS program_options)
# JSON reading (study reports read each run's summary.json): Debian's nlohmann-json3-dev.
find_package(nlohmann_json 3 REQUIRED)
if(WINNOW_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# The memory allocator linked into every executable. glibc malloc returns large tensor buffers to
# the kernel after each step and faults them back in; on two busy cores 2-rank training then runs
# at half speed (docs/results.md, "Allocator"). gperftools' tcmalloc_minimal (Debian package
# libtcmalloc-minimal4) keeps them and measured fastest; jemalloc measured 4x slower.
set(WINNOW_ALLOCATOR "tcmalloc" CACHE STRING "Allocator linked into the executables: tcmalloc | system")
set_property(CACHE WINNOW_ALLOCATOR PROPERTY STRINGS tcmalloc system)
set(WINNOW_ALLOCATOR_LIBRARY "")
set(WINNOW_ALLOCATOR_NOTE "system (glibc malloc)")
if(WINNOW_ALLOCATOR STREQUAL "tcmalloc")
  find_library(WINNOW_TCMALLOC_LIBRARY NAMES tcmalloc_minimal libtcmalloc_minimal.so.4)
  if(WINNOW_TCMALLOC_LIBRARY)
    set(WINNOW_ALLOCATOR_LIBRARY ${WINNOW_TCMALLOC_LIBRARY})
    set(WINNOW_ALLOCATOR_NOTE "tcmalloc ${WINNOW_TCMALLOC_LIBRARY}")
  else()
    message(WARNING "WINNOW_ALLOCATOR=tcmalloc, but libtcmalloc_minimal was not found: building with "
                    "glibc malloc, which trains up to 2x slower on 2 ranks here. Install it with "
                    "launch/setup.sh (apt install libtcmalloc-minimal4), or pass -DWINNOW_ALLOCATOR=system "
                    "to silence this.")
  endif()
elseif(NOT WINNOW_ALLOCATOR STREQUAL "system")
  message(FATAL_ERROR "WINNOW_ALLOCATOR must be tcmalloc or system, got '${WINNOW_ALLOCATOR}'")
endif()

# Optional GPU pieces: CUDA toolkit and NCCL. With both (and WINNOW_WITH_NCCL), winnow_dist gets
# the nccl communicator, which compiles against the CUDA runtime alone; its tests on CUDA tensors
# need a CUDA-enabled LibTorch.
set(WINNOW_HAVE_CUDA OFF)
set(WINNOW_HAVE_NCCL OFF)
set(WINNOW_TORCH_HAS_CUDA OFF)
if(TORCH_CUDA_LIBRARIES)
  set(WINNOW_TORCH_HAS_CUDA ON)
endif()
if(WINNOW_WITH_CUDA)
  if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    set(WINNOW_HAVE_CUDA ON)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_ROOT}/include $ENV{NCCL_HOME}/include)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_ROOT}/lib64 $ENV{NCCL_HOME}/lib)
    if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY AND WINNOW_WITH_NCCL)
      set(WINNOW_HAVE_NCCL ON)
    endif()
  endif()
endif()

# Which BLAS the system LibTorch will call (Debian's is the alternatives-selected libblas.so.3).
set(WINNOW_BLAS_NOTE "unknown")
if(EXISTS /etc/alternatives/libblas.so.3-x86_64-linux-gnu)
  get_filename_component(_blas /etc/alternatives/libblas.so.3-x86_64-linux-gnu REALPATH)
  set(WINNOW_BLAS_NOTE "${_blas}")
endif()

function(_winnow_mark ok label detail)
  if(${ok})
    message(STATUS "  ✓ ${label} ${detail}")
  else()
    message(STATUS "  ✗ ${label} ${detail}")
  endif()
endfunction()

function(winnow_print_summary)
  message(STATUS "")
  message(STATUS "winnow ${PROJECT_VERSION} configuration (${CMAKE_BUILD_TYPE})")
  _winnow_mark(Torch_FOUND "LibTorch" "${Torch_VERSION} (CUDA in LibTorch: ${WINNOW_TORCH_HAS_CUDA})")
  _winnow_mark(MPI_CXX_FOUND "MPI" "${MPI_CXX_LIBRARY_VERSION_STRING}")
  _winnow_mark(HDF5_FOUND "HDF5" "${HDF5_VERSION}")
  _winnow_mark(Boost_FOUND "Boost.Program_options" "${Boost_VERSION}")
  _winnow_mark(GTest_FOUND "GoogleTest" "")
  _winnow_mark(WINNOW_HAVE_CUDA "CUDA toolkit (optional)" "${CUDAToolkit_VERSION}")
  _winnow_mark(WINNOW_HAVE_NCCL "NCCL (optional)" "${NCCL_LIBRARY}")
  _winnow_mark(WINNOW_HAVE_NCCL "nccl communicator (dist.backend=nccl)" "")
  _winnow_mark(WINNOW_TORCH_HAS_CUDA "CUDA tests (test_dist_nccl_CUDA)" "")
  _winnow_mark(WINNOW_CCACHE "ccache (optional)" "${WINNOW_CCACHE}")
  message(STATUS "  BLAS behind LibTorch: ${WINNOW_BLAS_NOTE}")
  message(STATUS "  allocator: ${WINNOW_ALLOCATOR_NOTE}")
  message(STATUS "  precompiled header: ${WINNOW_USE_PCH}")
  message(STATUS "")
endfunction()
