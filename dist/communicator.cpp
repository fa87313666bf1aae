// The backend registry behind make_communicator (one line per backend) and the default async
// all_reduce.
#include "dist/communicator.h"

#include "dist/launch_environment.h"
#include "dist/local_communicator.h"
#include "dist/mpi_communicator.h"
#if WINNOW_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace winnow::dist {
namespace {

using Options = CommunicatorOptions;

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

}  // namespace

std::unique_ptr<Work> Communicator::all_reduce_async(torch::Tensor& tensor, ReduceOp op) {
  all_reduce(tensor, op);
  return std::make_unique<CompletedWork>();
}

const CommunicatorRegistry& communicator_registry() {
  static const CommunicatorRegistry registry(
      "unknown communicator backend '{name}'; expected one of: {names}",
      {
          {"local", "one process, no dependencies (world size 1)",
           [](const Options&) { return std::make_shared<LocalCommunicator>(); }},
          {"mpi", "MPI collectives on CPU tensors",
           [](const Options& o) { return std::make_shared<MpiCommunicator>(o); }},
          {"nccl", "NCCL collectives on CUDA tensors, bootstrapped through MPI", make_nccl},
          {"auto", "nccl for CUDA tensors, else mpi under an MPI launcher, else local", make_auto},
      });
  return registry;
}

std::vector<std::string> known_backends() {
  return communicator_registry().names();
}

bool nccl_backend_built() {
  return WINNOW_HAVE_NCCL != 0;
}

std::shared_ptr<Communicator> make_communicator(const std::string& backend,
                                                const CommunicatorOptions& options) {
  TORCH_CHECK(options.collective_timeout_seconds >= 0,
              "communicator: expected collective_timeout_seconds >= 0 (0 = no timeout), got ",
              options.collective_timeout_seconds);
  return communicator_registry().create(backend, options);
}

}  // namespace winnow::dist
