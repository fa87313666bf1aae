// Communicator: the collective operations the trainer needs, independent of the transport.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "data/registry.h"

namespace winnow::dist {

enum class ReduceOp { kSum, kAvg, kMax, kMin };

// What every backend is built from (make_communicator passes it on).
struct CommunicatorOptions {
  // A collective that waits longer than this on one rank ends the job with a report naming the
  // ranks that have not reached it (dist/collective_watchdog.h). 0 = wait forever. The local
  // backend never waits.
  double collective_timeout_seconds = 600.0;
  // Where the tensors handed to the collectives live. "auto" picks nccl for a CUDA device and
  // mpi/local for the CPU; the nccl backend uses device index local_rank % device count, this
  // field only says "CUDA".
  torch::Device device = torch::kCPU;
};

// A collective started by an *_async call. wait() returns when the result is in the tensor that
// was passed (for GPU backends: ordered on the current stream), applying the same timeout as the
// blocking call. A Work must be waited for before its communicator is destroyed; destroying an
// unwaited Work waits for it, except while an exception unwinds: then it keeps the buffers alive
// and returns at once, so the error reaches the CLI, which ends the job.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // Does not block: advances the collective where the transport needs the caller for that (MPI
  // progresses nonblocking collectives only inside MPI calls, so GradSync calls this from its
  // autograd hooks) and returns whether it has completed. The default knows nothing: false.
  virtual bool test() { return false; }
};

// A Work with nothing left to do (an empty tensor, or a backend that ran the collective at once).
class CompletedWork final : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// All collectives but all_reduce_async are blocking. All must be called by every rank in the same
// order with tensors of the same shape and dtype (the invariant that keeps ranks in lockstep).
// Non-contiguous tensors are accepted and go through a contiguous copy; contiguous ones avoid it.
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
  // Starts an in-place all_reduce and returns at once; the result is in `tensor` after wait().
  // `tensor` must stay alive and untouched until then. Collectives started later may complete
  // before it, but every rank must start them in the same order. The default runs all_reduce now
  // and returns a Work that is already complete (right for backends with nothing to overlap).
  virtual std::unique_ptr<Work> all_reduce_async(torch::Tensor& tensor,
                                                 ReduceOp op = ReduceOp::kSum);
  // In place: every rank ends with root's `tensor`.
  virtual void broadcast(torch::Tensor& tensor, int root = 0) = 0;
  // Returns [world_size, *tensor.shape]: every rank's `tensor`, stacked in rank order.
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job now with `exit_code` (MPI_Abort); used only by the CLI on error.
  [[noreturn]] virtual void abort(int exit_code) = 0;

  bool is_root() const { return rank() == 0; }
};

// Backends by name: "local" (world size 1, no dependencies), "mpi" (CPU tensors), "nccl" (CUDA
// tensors, bootstrapped through MPI; throws when this build has no NCCL or the machine no GPU),
// "auto" (nccl when options.device is CUDA; otherwise mpi when the process was started by an MPI
// launcher, even with one rank, or when MPI is already initialised, else local; see
// started_by_mpi_launcher() in dist/launch_environment.h).
// Unknown names throw with the list of known backends.
using CommunicatorRegistry =
    data::Registry<std::shared_ptr<Communicator>, const CommunicatorOptions&>;
const CommunicatorRegistry& communicator_registry();

// Validates the options, then communicator_registry().create(backend, options).
std::shared_ptr<Communicator> make_communicator(const std::string& backend,
                                                const CommunicatorOptions& options = {});
// communicator_registry().names(), in list order.
std::vector<std::string> known_backends();
// Whether this build contains the nccl backend (CUDA toolkit and NCCL found at configure time).
bool nccl_backend_built();

}  // namespace winnow::dist
