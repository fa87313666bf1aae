// MpiCommunicator: the Communicator over MPI for CPU tensors ("mpi").
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/collective_watchdog.h"
#include "dist/communicator.h"

namespace winnow::dist {

// Collectives over a private duplicate of MPI_COMM_WORLD, so they never match messages of other
// code that uses MPI_COMM_WORLD directly.
//
// MPI lifetime: the first MpiCommunicator initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED)
// unless something else already did; a process-wide guard then calls MPI_Finalize at process exit,
// but only when winnow initialised MPI and nobody finalised it yet. Every MPI call must come from
// the thread that initialised MPI (the main thread); collectives check this.
//
// Collectives are nonblocking MPI calls (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather, MPI_Ibarrier)
// waited for by a CollectiveWatchdog when options.collective_timeout_seconds > 0 (a rank that waits
// longer ends the job with a report naming the ranks that have not reached the collective), and
// by MPI_Waitall when it is 0. all_reduce_async starts the same call and waits in Work::wait().
//
// Errors: the duplicate has MPI_ERRORS_RETURN, and every call is wrapped in WINNOW_MPI_CHECK, so a
// failing collective throws c10::Error naming the call, the rank and a hint. The CLI catches it and
// calls abort(), which ends every rank (peers blocked in a collective would otherwise hang).
//
// Dtypes: all_reduce maps float32, float64, int8, int16, int32, int64 and uint8 to MPI types and
// bool to MPI_CXX_BOOL (max = logical or, min = logical and). bfloat16 and float16 have no MPI
// type: they are reduced in float32 and rounded once at the end. broadcast and all_gather move raw
// bytes and accept every dtype. Tensors must be on the CPU; non-contiguous tensors are reduced
// through a contiguous copy and written back.
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommunicatorOptions& options = {});
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  // From MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): right under mpirun and srun alike (launcher
  // environment variables such as OMPI_COMM_WORLD_LOCAL_RANK are unset under srun).
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend_name() const override { return "mpi"; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) override;
  // MPI_Iallreduce. Open MPI advances it only inside MPI calls on this process: call the Work's
  // test() now and then while computing (GradSync does so from its autograd hooks).
  std::unique_ptr<Work> all_reduce_async(torch::Tensor& tensor,
                                         ReduceOp op = ReduceOp::kSum) override;
  void broadcast(torch::Tensor& tensor, int root = 0) override;
  // Returns [world_size, *tensor.shape]. At most 2 GiB per rank.
  torch::Tensor all_gather(const torch::Tensor& tensor) override;
  void barrier() override;
  // MPI_Abort on this communicator: ends every rank of the job with `exit_code`.
  [[noreturn]] void abort(int exit_code) override;

  // The duplicated communicator, for bootstrapping other transports (NCCL's unique id).
  MPI_Comm comm() const { return comm_; }
  // options.collective_timeout_seconds; 0 = no watchdog.
  double collective_timeout_seconds() const;
  // The watchdog over comm(), or nullptr when the timeout is 0; the nccl backend numbers and waits
  // for its own collectives with it.
  CollectiveWatchdog* watchdog() const { return watchdog_.get(); }

 private:
  void check_cpu_and_thread(const torch::Tensor& tensor, const char* what) const;
  // Numbers a collective for the watchdog (sequence 0 when there is none).
  CollectiveId begin_collective(CollectiveKind kind, int64_t bytes);

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
};

}  // namespace winnow::dist
