// Which BLAS library and which allocator this process uses.
#include "launch/system_info.h"

#include <dlfcn.h>

#include <fstream>
#include <set>

namespace winnow::launch {
namespace {

std::set<std::string> blas_paths() {
  std::set<std::string> paths;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const auto base = path.substr(path.rfind('/') + 1);
    if (base.find("blas") != std::string::npos || base.find("mkl_core") != std::string::npos ||
        base.find("blis") != std::string::npos)
      paths.insert(path);
  }
  return paths;
}

}  // namespace

std::string loaded_blas() {
  std::string text;
  for (const auto& path : blas_paths()) {
    std::string kind;
    if (path.find("openblas") != std::string::npos)
      kind = " (OpenBLAS)";
    else if (path.find("mkl") != std::string::npos)
      kind = " (MKL)";
    else if (path.find("blis") != std::string::npos)
      kind = " (BLIS)";
    else if (path.find("/blas/") != std::string::npos)
      kind = " (reference BLAS: slow; apt install libopenblas0-openmp)";
    text += (text.empty() ? "" : ", ") + path + kind;
  }
  return text.empty() ? "none found in /proc/self/maps (statically linked or not loaded yet)"
                      : text;
}

bool reference_blas_loaded() {
  for (const auto& path : blas_paths())
    if (path.find("/blas/") != std::string::npos && path.find("openblas") == std::string::npos)
      return true;
  return false;
}

std::string active_allocator() {
  // gperftools exports tc_version(int* major, int* minor, const char** patch); jemalloc mallctl.
  using TcVersion = const char* (*)(int*, int*, const char**);
  if (auto tc_version = reinterpret_cast<TcVersion>(dlsym(RTLD_DEFAULT, "tc_version"))) {
    int major = 0, minor = 0;
    const char* patch = nullptr;
    const char* text = tc_version(&major, &minor, &patch);
    return std::string("tcmalloc (") + (text ? text : "gperftools") + ")";
  }
  if (dlsym(RTLD_DEFAULT, "mallctl")) return "jemalloc";
  return "glibc malloc";
}

}  // namespace winnow::launch
