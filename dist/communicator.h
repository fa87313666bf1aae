// Communicator: the collective operations the trainer needs, independent of the transport.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace winnow::dist {

enum class ReduceOp { kSum, kAvg, kMax, kMin };

// All collectives are blocking and must be called by every rank in the same order with tensors of
// the same shape and dtype (the invariant that keeps ranks in lockstep). Non-contiguous tensors are
// accepted and go through a contiguous copy; contiguous ones avoid that copy.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank among the processes on this node (chooses the GPU; informs thread counts).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual std::string backend_name() const = 0;

  // In place: every rank ends with the reduction of all ranks' `tensor`.
  virtual void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) = 0;
  // In place: every rank ends with root's `tensor`.
  virtual void broadcast(torch::Tensor& tensor, int root = 0) = 0;
  // Returns [world_size, *tensor.shape]: every rank's `tensor`, stacked in rank order.
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job now with `exit_code` (MPI_Abort); used only by the CLI on error.
  [[noreturn]] virtual void abort(int exit_code) = 0;

  bool is_root() const { return rank() == 0; }
};

// Backends by name: "local" (world size 1, no dependencies), "mpi", "auto" (mpi when the process
// was started by an MPI launcher, even with one rank, or when MPI is already initialised, else
// local; see started_by_mpi_launcher() in dist/launch_environment.h).
// Unknown names throw with the list of known backends.
std::shared_ptr<Communicator> make_communicator(const std::string& backend);
std::vector<std::string> known_backends();

}  // namespace winnow::dist
