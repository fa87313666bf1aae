// LocalCommunicator: the dependency-free world-size-1 backend ("local").
#pragma once

#include <string>

#include "dist/communicator.h"

namespace winnow::dist {

// Every collective over a world of one process: all_reduce leaves the tensor as is (avg divides by
// one), broadcast does nothing, all_gather returns a [1, *shape] copy, barrier returns at once.
// Arguments are checked exactly as the mpi backend checks them, so code that passes here does not
// fail later for a dtype or op reason under mpirun. Tensors may live on any device.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string backend_name() const override { return "local"; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) override;
  void broadcast(torch::Tensor& tensor, int root = 0) override;
  // Returns [1, *tensor.shape], a new tensor (never aliases `tensor`, as with mpi).
  torch::Tensor all_gather(const torch::Tensor& tensor) override;
  void barrier() override {}
  // Flushes stdio and ends the process with `exit_code` through std::_Exit: like MPI_Abort, no
  // destructors or atexit handlers run.
  [[noreturn]] void abort(int exit_code) override;
};

}  // namespace winnow::dist
