// NcclCommunicator: the Communicator over NCCL for CUDA tensors ("nccl"), bootstrapped through MPI.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"
#include "dist/mpi_communicator.h"

// NCCL and CUDA runtime types stay out of this header, so code that includes it needs neither.
struct ncclComm;
struct CUevent_st;
struct CUstream_st;

namespace winnow::dist {

// The number of CUDA devices the runtime sees; 0 with the reason in `why` when it sees none
// (no driver, "driver version is insufficient", CUDA_VISIBLE_DEVICES empty, ...).
int cuda_device_count(std::string* why = nullptr);

// Bootstrap (Horovod's and llm.c's order, docs/distributed.md):
//   1. no CUDA device -> throws "nccl backend: no CUDA device: <reason>" before touching MPI;
//   2. an MpiCommunicator (the same options) gives rank, world size and the local rank
//      (MPI_Comm_split_type); device = local_rank % device count; cudaSetDevice(device), which
//      must precede ncclCommInitRank;
//   3. rank 0 makes the NCCL unique id, MPI broadcasts it; ncclCommInitRank; an MPI barrier.
//
// Collectives are enqueued on the stream the tensor's work runs on (LibTorch's current CUDA
// stream when the LibTorch has CUDA, else the legacy default stream) and then waited for: an
// event recorded after the call is polled together with ncclCommGetAsyncError under the MPI
// communicator's CollectiveWatchdog, so a missing rank is named and the job ends after
// options.collective_timeout_seconds, with the NCCL communicator aborted first. all_reduce_async
// returns after enqueueing; its Work waits the same way.
//
// Errors: every CUDA and NCCL call is checked; on an NCCL error the NCCL communicator is aborted
// (ncclCommAbort, so peers do not hang in it) before the c10::Error is thrown. The destructor
// calls ncclCommDestroy, or ncclCommAbort when NCCL reported an asynchronous error (destroy could
// block forever then).
//
// Dtypes: all_reduce maps float32, float64, float16, bfloat16, int8, uint8, int32 and int64 to
// NCCL types; int16 goes through int32; bool is reduced as uint8 (max = or, min = and). kAvg is
// ncclAvg. broadcast and all_gather move raw bytes. Tensors must be on this rank's CUDA device.
// NCCL refuses two ranks on one GPU, so multi-rank runs need one device per rank.
class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(const CommunicatorOptions& options = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return bootstrap_->rank(); }
  int world_size() const override { return bootstrap_->world_size(); }
  int local_rank() const override { return bootstrap_->local_rank(); }
  int local_size() const override { return bootstrap_->local_size(); }
  std::string backend_name() const override { return "nccl"; }
  // The CUDA device index this rank uses: local_rank % device count.
  int device_index() const { return device_index_; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::kSum) override;
  std::unique_ptr<Work> all_reduce_async(torch::Tensor& tensor,
                                         ReduceOp op = ReduceOp::kSum) override;
  void broadcast(torch::Tensor& tensor, int root = 0) override;
  // Returns [world_size, *tensor.shape] on this rank's device.
  torch::Tensor all_gather(const torch::Tensor& tensor) override;
  // MPI_Barrier over the bootstrap communicator (NCCL has no barrier).
  void barrier() override;
  // Aborts the NCCL communicator, then MPI_Abort: ends every rank with `exit_code`.
  [[noreturn]] void abort(int exit_code) override;

 private:
  class NcclWork;

  void check_tensor(const torch::Tensor& tensor, const char* what) const;
  CUstream_st* stream_of(const torch::Tensor& tensor) const;
  // Records an event on `stream` after the enqueued collective `id` and returns its Work.
  std::unique_ptr<NcclWork> enqueued(const CollectiveId& id, CUstream_st* stream,
                                     torch::Tensor keep_alive);
  // Polls `event` and NCCL's asynchronous error until the collective is done (watchdog applies).
  void wait_for(const CollectiveId& id, CUevent_st* event);
  // Throws after aborting the NCCL communicator when `result` is not ncclSuccess.
  void nccl_check(int result, const char* call, const char* file, int line);
  void abort_nccl() noexcept;

  std::unique_ptr<MpiCommunicator> bootstrap_;
  int device_index_ = 0;
  ncclComm* comm_ = nullptr;
  bool comm_aborted_ = false;
};

}  // namespace winnow::dist
