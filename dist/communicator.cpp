// The backend registry behind make_communicator (one line per backend) and the default async
// all_reduce.
#include "dist/communicator.h"

#include <functional>
#include <sstream>

#include "dist/launch_environment.h"
#include "dist/local_communicator.h"
#include "dist/mpi_communicator.h"
#if WINNOW_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace winnow::dist {
namespace {

using Options = CommunicatorOptions;

struct BackendEntry {
  const char* name;
  std::function<std::shared_ptr<Communicator>(const Options&)> make;
};

std::shared_ptr<Communicator> make_nccl(const Options& options) {
#if WINNOW_HAVE_NCCL
  return std::make_shared<NcclCommunicator>(options);
#else
  (void)options;
  TORCH_CHECK(false,
              "nccl backend: not in this build (CMake found no CUDA toolkit and NCCL, or "
              "WINNOW_WITH_NCCL=OFF); reconfigure with CUDA and NCCL, or use backend mpi for CPU "
              "tensors");
#endif
}

// nccl for CUDA tensors; for CPU tensors mpi under an MPI launcher, else local.
std::shared_ptr<Communicator> make_auto(const Options& options) {
  if (options.device.is_cuda()) return make_nccl(options);
  return make_communicator(started_by_mpi_launcher() ? "mpi" : "local", options);
}

// The explicit list of backends; "auto" resolves to one of the others.
const std::vector<BackendEntry>& backend_registry() {
  static const std::vector<BackendEntry> registry{
      {"local", [](const Options&) { return std::make_shared<LocalCommunicator>(); }},
      {"mpi", [](const Options& o) { return std::make_shared<MpiCommunicator>(o); }},
      {"nccl", make_nccl},
      {"auto", make_auto},
  };
  return registry;
}

}  // namespace

std::unique_ptr<Work> Communicator::all_reduce_async(torch::Tensor& tensor, ReduceOp op) {
  all_reduce(tensor, op);
  return std::make_unique<CompletedWork>();
}

std::vector<std::string> known_backends() {
  std::vector<std::string> names;
  for (const auto& entry : backend_registry()) names.emplace_back(entry.name);
  return names;
}

bool nccl_backend_built() {
  return WINNOW_HAVE_NCCL != 0;
}

std::shared_ptr<Communicator> make_communicator(const std::string& backend,
                                                const CommunicatorOptions& options) {
  TORCH_CHECK(options.collective_timeout_seconds >= 0,
              "communicator: expected collective_timeout_seconds >= 0 (0 = no timeout), got ",
              options.collective_timeout_seconds);
  for (const auto& entry : backend_registry()) {
    if (backend == entry.name) return entry.make(options);
  }
  std::ostringstream known;
  for (const auto& name : known_backends()) known << (known.tellp() > 0 ? ", " : "") << name;
  TORCH_CHECK(false, "unknown communicator backend '", backend,
              "'; expected one of: ", known.str());
}

}  // namespace winnow::dist
