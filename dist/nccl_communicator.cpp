// The NCCL Communicator: MPI bootstrap, checked NCCL/CUDA calls, event-polled waits under the
// collective watchdog.
#include "dist/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <thread>

#include "dist/collective_checks.h"

#if WINNOW_TORCH_HAS_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace winnow::dist {
namespace {

// CUDA runtime errors become c10::Error with the call and the runtime's own words.
void cuda_check(cudaError_t result, const char* call, const char* file, int line) {
  if (result == cudaSuccess) return;
  TORCH_CHECK(false, "CUDA error: ", call, " failed at ", file, ":", line, ": ",
              cudaGetErrorName(result), ": ", cudaGetErrorString(result));
}

#define WINNOW_CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)
#define WINNOW_NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__)

ncclDataType_t nccl_datatype(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return ncclFloat32;
    case torch::kDouble:
      return ncclFloat64;
    case torch::kHalf:
      return ncclFloat16;
    case torch::kBFloat16:
      return ncclBfloat16;
    case torch::kChar:
      return ncclInt8;
    case torch::kByte:
      return ncclUint8;
    case torch::kInt:
      return ncclInt32;
    case torch::kLong:
      return ncclInt64;
    default:
      TORCH_INTERNAL_ASSERT(false, "no NCCL datatype for ", dtype, " (converted before)");
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled ReduceOp ", static_cast<int>(op));
}

int64_t payload_bytes(const torch::Tensor& tensor) {
  return tensor.numel() * static_cast<int64_t>(tensor.element_size());
}

// Buffers of collectives abandoned during an exception (see ~NcclWork); never freed.
std::vector<torch::Tensor>& abandoned_buffers() {
  static auto* buffers = new std::vector<torch::Tensor>();
  return *buffers;
}

}  // namespace

int cuda_device_count(std::string* why) {
  int count = 0;
  const cudaError_t result = cudaGetDeviceCount(&count);
  if (result != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(result);
    cudaGetLastError();  // clear the error so later runtime calls do not report it
    return 0;
  }
  if (count == 0 && why) *why = "cudaGetDeviceCount found 0 devices";
  return count;
}

// An enqueued collective: the event recorded after it and the tensors it reads and writes.
class NcclCommunicator::NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator& owner, CollectiveId id, cudaEvent_t event, torch::Tensor keep_alive)
      : owner_(owner), id_(id), event_(event), keep_alive_(std::move(keep_alive)) {}

  ~NcclWork() override {
    if (!done_ && std::uncaught_exceptions() > 0) {
      // Unwinding towards the CLI, which ends the job: do not wait for peers that may never
      // come; the kernels may still use the buffers, so they are kept alive.
      abandoned_buffers().push_back(keep_alive_);
      done_ = true;
    }
    if (!done_) {
      try {
        wait();
      } catch (const std::exception& error) {
        const auto* torch_error = dynamic_cast<const c10::Error*>(&error);  // no C++ backtrace
        std::fprintf(stderr, "nccl: a collective destroyed before wait() failed: %s\n",
                     torch_error ? torch_error->what_without_backtrace() : error.what());
      }
    }
    cudaEventDestroy(event_);
  }

  void wait() override {
    if (done_) return;
    owner_.wait_for(id_, event_);
    done_ = true;
  }

  bool test() override {
    if (!done_ && cudaEventQuery(event_) == cudaSuccess) done_ = true;
    return done_;
  }

 private:
  NcclCommunicator& owner_;
  CollectiveId id_;
  cudaEvent_t event_;
  torch::Tensor keep_alive_;  // buffers the kernels use, alive until they are done
  bool done_ = false;
};

NcclCommunicator::NcclCommunicator(const CommunicatorOptions& options) {
  std::string why;
  const int devices = cuda_device_count(&why);
  TORCH_CHECK(devices > 0, "nccl backend: no CUDA device: ", why,
              ". Use backend mpi (or auto) for CPU tensors, or run on a machine with a GPU");
  bootstrap_ = std::make_unique<MpiCommunicator>(options);
  device_index_ = bootstrap_->local_rank() % devices;
  WINNOW_CUDA_CHECK(cudaSetDevice(device_index_));  // must precede ncclCommInitRank

  ncclUniqueId id;
  if (bootstrap_->is_root()) WINNOW_NCCL_CHECK(ncclGetUniqueId(&id));
  torch::Tensor id_bytes =  // [sizeof id], rank 0's id after the broadcast
      torch::from_blob(&id, {static_cast<int64_t>(sizeof id)}, torch::kByte);
  bootstrap_->broadcast(id_bytes, 0);
  WINNOW_NCCL_CHECK(ncclCommInitRank(&comm_, world_size(), id, rank()));
  bootstrap_->barrier();  // Horovod: lets NCCL settle after init, avoids a deadlock
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ == nullptr || comm_aborted_) return;
  ncclResult_t async_error = ncclSuccess;
  if (ncclCommGetAsyncError(comm_, &async_error) == ncclSuccess && async_error == ncclSuccess) {
    ncclCommDestroy(comm_);
  } else {
    ncclCommAbort(comm_);  // destroy can block forever after an error
  }
}

void NcclCommunicator::abort_nccl() noexcept {
  if (comm_ == nullptr || comm_aborted_) return;
  comm_aborted_ = true;
  ncclCommAbort(comm_);
}

void NcclCommunicator::nccl_check(int result, const char* call, const char* file, int line) {
  if (result == ncclSuccess) return;
  const std::string last = comm_ ? ncclGetLastError(comm_) : "";
  abort_nccl();  // peers blocked in this communicator fail instead of hanging
  TORCH_CHECK(false, "NCCL error on rank ", bootstrap_ ? bootstrap_->rank() : -1, ": ", call,
              " failed at ", file, ":", line, ": ",
              ncclGetErrorString(static_cast<ncclResult_t>(result)),
              last.empty() ? "" : " (" + last + ")",
              ". The NCCL communicator was aborted. Hint: a peer may have failed, or the ranks "
              "disagree on this collective (same order, numel and dtype on every rank)");
}

void NcclCommunicator::check_tensor(const torch::Tensor& tensor, const char* what) const {
  TORCH_CHECK(tensor.device().is_cuda() && tensor.device().index() == device_index_, "nccl ", what,
              ": expected a tensor on cuda:", device_index_, " (this rank's device), got one on ",
              tensor.device(), "; use the mpi backend for CPU tensors");
  TORCH_CHECK(!comm_aborted_, "nccl ", what,
              ": the NCCL communicator was aborted after an earlier error; no more collectives");
}

CUstream_st* NcclCommunicator::stream_of(const torch::Tensor& tensor) const {
#if WINNOW_TORCH_HAS_CUDA
  return c10::cuda::getCurrentCUDAStream(tensor.device().index()).stream();
#else
  (void)tensor;  // a LibTorch without CUDA makes no CUDA tensors; this orders with everything
  return cudaStreamLegacy;
#endif
}

std::unique_ptr<NcclCommunicator::NcclWork> NcclCommunicator::enqueued(const CollectiveId& id,
                                                                       cudaStream_t stream,
                                                                       torch::Tensor keep_alive) {
  cudaEvent_t event = nullptr;
  WINNOW_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  const cudaError_t recorded = cudaEventRecord(event, stream);
  if (recorded != cudaSuccess) cudaEventDestroy(event);
  WINNOW_CUDA_CHECK(recorded);
  return std::make_unique<NcclWork>(*this, id, event, std::move(keep_alive));
}

void NcclCommunicator::wait_for(const CollectiveId& id, cudaEvent_t event) {
  const auto is_complete = [&] {
    const cudaError_t state = cudaEventQuery(event);
    if (state == cudaSuccess) return true;
    if (state != cudaErrorNotReady) {
      abort_nccl();
      WINNOW_CUDA_CHECK(state);
    }
    ncclResult_t async_error = ncclSuccess;
    WINNOW_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async_error));
    WINNOW_NCCL_CHECK(async_error);
    return false;
  };
  if (CollectiveWatchdog* watchdog = bootstrap_->watchdog()) {
    watchdog->wait(id, is_complete, [this] { abort_nccl(); });
    return;
  }
  while (!is_complete()) std::this_thread::sleep_for(std::chrono::microseconds(50));
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(torch::Tensor& tensor, ReduceOp op) {
  detail::check_all_reduce_args(tensor, op, backend_name());
  check_tensor(tensor, "all_reduce");
  if (tensor.numel() == 0) return std::make_unique<CompletedWork>();

  // [*shape] what NCCL reduces: the tensor itself when contiguous and of an NCCL dtype.
  torch::Tensor buffer =
      tensor.scalar_type() == torch::kShort ? tensor.to(torch::kInt) : tensor.contiguous();
  const bool write_back = !buffer.is_same(tensor);
  torch::Tensor reduced = buffer.scalar_type() == torch::kBool ? buffer.view(torch::kByte) : buffer;
  CollectiveWatchdog* watchdog = bootstrap_->watchdog();
  const CollectiveId id = watchdog
                              ? watchdog->begin(CollectiveKind::kAllReduce, payload_bytes(tensor))
                              : CollectiveId{};
  const cudaStream_t stream = stream_of(tensor);
  WINNOW_NCCL_CHECK(
      ncclAllReduce(reduced.data_ptr(), reduced.data_ptr(), static_cast<size_t>(reduced.numel()),
                    nccl_datatype(reduced.scalar_type()), nccl_op(op), comm_, stream));
  if (write_back) tensor.copy_(buffer);  // stream-ordered after the reduction
  return enqueued(id, stream, buffer);
}

void NcclCommunicator::all_reduce(torch::Tensor& tensor, ReduceOp op) {
  all_reduce_async(tensor, op)->wait();
}

void NcclCommunicator::broadcast(torch::Tensor& tensor, int root) {
  detail::check_dense_tensor(tensor, backend_name(), "broadcast");
  detail::check_root(root, world_size(), backend_name());
  check_tensor(tensor, "broadcast");
  if (tensor.numel() == 0) return;

  torch::Tensor buffer = tensor.contiguous();  // [*shape]
  CollectiveWatchdog* watchdog = bootstrap_->watchdog();
  const CollectiveId id = watchdog
                              ? watchdog->begin(CollectiveKind::kBroadcast, payload_bytes(tensor))
                              : CollectiveId{};
  const cudaStream_t stream = stream_of(tensor);
  WINNOW_NCCL_CHECK(ncclBroadcast(buffer.data_ptr(), buffer.data_ptr(),
                                  static_cast<size_t>(payload_bytes(buffer)), ncclUint8, root,
                                  comm_, stream));
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
  enqueued(id, stream, buffer)->wait();
}

torch::Tensor NcclCommunicator::all_gather(const torch::Tensor& tensor) {
  detail::check_dense_tensor(tensor, backend_name(), "all_gather");
  check_tensor(tensor, "all_gather");
  std::vector<int64_t> gathered_shape{world_size()};
  gathered_shape.insert(gathered_shape.end(), tensor.sizes().begin(), tensor.sizes().end());
  torch::Tensor gathered = torch::empty(gathered_shape, tensor.options());  // [world, *shape]
  if (tensor.numel() == 0) return gathered;

  const torch::Tensor input = tensor.contiguous();  // [*shape]
  CollectiveWatchdog* watchdog = bootstrap_->watchdog();
  const CollectiveId id =
      watchdog ? watchdog->begin(CollectiveKind::kAllGather, payload_bytes(input)) : CollectiveId{};
  const cudaStream_t stream = stream_of(tensor);
  WINNOW_NCCL_CHECK(ncclAllGather(input.data_ptr(), gathered.data_ptr(),
                                  static_cast<size_t>(payload_bytes(input)), ncclUint8, comm_,
                                  stream));
  enqueued(id, stream, input)->wait();
  return gathered;
}

void NcclCommunicator::barrier() {
  bootstrap_->barrier();
}

void NcclCommunicator::abort(int exit_code) {
  abort_nccl();
  bootstrap_->abort(exit_code);
}

}  // namespace winnow::dist
