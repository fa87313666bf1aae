// The world-size-1 Communicator: collectives are identities after the shared argument checks.
#include "dist/local_communicator.h"

#include <cstdio>
#include <cstdlib>

#include "dist/collective_checks.h"

namespace winnow::dist {

void LocalCommunicator::all_reduce(torch::Tensor& tensor, ReduceOp op) {
  detail::check_all_reduce_args(tensor, op, backend_name());
}

void LocalCommunicator::broadcast(torch::Tensor& tensor, int root) {
  detail::check_dense_tensor(tensor, backend_name(), "broadcast");
  detail::check_root(root, world_size(), backend_name());
}

torch::Tensor LocalCommunicator::all_gather(const torch::Tensor& tensor) {
  detail::check_dense_tensor(tensor, backend_name(), "all_gather");
  return tensor.unsqueeze(0).clone(torch::MemoryFormat::Contiguous);  // [1, *shape]
}

void LocalCommunicator::abort(int exit_code) {
  std::fflush(nullptr);
  std::_Exit(exit_code);
}

}  // namespace winnow::dist
