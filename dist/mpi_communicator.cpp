// The MPI Communicator: process-wide MPI lifetime, checked collectives on CPU tensors.
#include "dist/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <vector>

#include "dist/collective_checks.h"
#include "dist/mpi_check.h"

namespace winnow::dist {
namespace {

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// Initialises MPI once per process if nobody else did, and finalises it at process exit only in
// that case. It is a function-local static constructed by the first MpiCommunicator, so it is
// destroyed after every MpiCommunicator that is itself a static constructed later; communicators
// that outlive it (leaked, or statics constructed earlier) see MPI finalised and skip freeing.
class MpiRuntime {
 public:
  static void ensure_initialized() { static MpiRuntime runtime; }

  ~MpiRuntime() {
    if (owns_mpi_ && !mpi_finalized()) MPI_Finalize();
  }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

 private:
  MpiRuntime() {
    int initialized = 0;
    WINNOW_MPI_CHECK(MPI_Initialized(&initialized));
    if (initialized) {
      TORCH_CHECK(!mpi_finalized(),
                  "mpi backend: expected MPI to be running, but MPI_Finalize was already called in "
                  "this process; MPI cannot be initialised twice");
      return;
    }
    int provided = MPI_THREAD_SINGLE;
    WINNOW_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    owns_mpi_ = true;
    TORCH_CHECK(
        provided >= MPI_THREAD_FUNNELED,
        "mpi backend: expected thread support MPI_THREAD_FUNNELED from MPI_Init_thread, got level ",
        provided);
  }

  bool owns_mpi_ = false;
};

MPI_Datatype mpi_datatype(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return MPI_FLOAT;
    case torch::kDouble:
      return MPI_DOUBLE;
    case torch::kChar:
      return MPI_INT8_T;
    case torch::kShort:
      return MPI_INT16_T;
    case torch::kInt:
      return MPI_INT32_T;
    case torch::kLong:
      return MPI_INT64_T;
    case torch::kByte:
      return MPI_UINT8_T;
    case torch::kBool:
      return MPI_CXX_BOOL;
    default:
      TORCH_INTERNAL_ASSERT(false, "no MPI datatype for ", dtype, " (checked before)");
  }
}

MPI_Op mpi_op(ReduceOp op, bool is_bool) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:  // sum, then divide
      return MPI_SUM;
    case ReduceOp::kMax:
      return is_bool ? MPI_LOR : MPI_MAX;
    case ReduceOp::kMin:
      return is_bool ? MPI_LAND : MPI_MIN;
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled ReduceOp ", static_cast<int>(op));
}

// MPI counts are int: large tensors go in pieces of at most this many elements or bytes.
constexpr int64_t kMaxCount = INT_MAX;

// Waits for the requests of collective `id`: under the watchdog (polled, ends the job past the
// timeout), or with MPI_Waitall when there is none.
void wait_for_requests(CollectiveWatchdog* watchdog, const CollectiveId& id,
                       std::vector<MPI_Request>& requests) {
  const int count = static_cast<int>(requests.size());
  if (watchdog == nullptr) {
    WINNOW_MPI_CHECK(MPI_Waitall(count, requests.data(), MPI_STATUSES_IGNORE));
    return;
  }
  watchdog->wait(id, [&] {
    int completed = 0;
    WINNOW_MPI_CHECK(MPI_Testall(count, requests.data(), &completed, MPI_STATUSES_IGNORE));
    return completed != 0;
  });
}

// Buffers of collectives abandoned during an exception (see ~MpiAllReduceWork); never freed.
std::vector<torch::Tensor>& abandoned_buffers() {
  static auto* buffers = new std::vector<torch::Tensor>();
  return *buffers;
}

// An MPI_Iallreduce in flight (one request per piece of at most kMaxCount elements). It owns the
// buffer MPI reduces into and, at completion, finishes kAvg and writes the result back into the
// caller's tensor when the buffer is a contiguous or widened copy of it.
class MpiAllReduceWork final : public Work {
 public:
  MpiAllReduceWork(torch::Tensor target, torch::Tensor buffer, std::vector<MPI_Request> requests,
                   int64_t divisor, CollectiveWatchdog* watchdog, CollectiveId id)
      : target_(std::move(target)),
        buffer_(std::move(buffer)),
        requests_(std::move(requests)),
        divisor_(divisor),
        watchdog_(watchdog),
        id_(id) {}

  // Waits, as Work promises: MPI forbids freeing an active collective's request, and it would
  // write into a freed buffer. No throwing from here; an error is already on its way elsewhere.
  ~MpiAllReduceWork() override {
    if (done_ || mpi_finalized()) return;
    if (std::uncaught_exceptions() > 0) {
      // Unwinding towards the CLI, which ends the job: waiting could block forever on a peer that
      // never starts this collective, and the abort would never come. MPI may still write into
      // the buffer, so it is kept alive instead of waited for.
      abandoned_buffers().push_back(buffer_);
      return;
    }
    MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }

  bool test() override {
    if (done_) return true;
    int completed = 0;
    WINNOW_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &completed,
                                 MPI_STATUSES_IGNORE));
    if (completed) complete();
    return done_;
  }

  void wait() override {
    if (done_) return;
    wait_for_requests(watchdog_, id_, requests_);
    complete();
  }

 private:
  void complete() {
    done_ = true;
    if (divisor_ != 1) buffer_.div_(divisor_);
    if (!buffer_.is_same(target_)) target_.copy_(buffer_);
  }

  torch::Tensor target_;  // [*shape] the caller's tensor
  torch::Tensor buffer_;  // [*shape] contiguous; float32 for bfloat16/float16
  std::vector<MPI_Request> requests_;
  int64_t divisor_ = 1;
  CollectiveWatchdog* watchdog_;  // nullptr: no timeout
  CollectiveId id_;
  bool done_ = false;
};

}  // namespace

MpiCommunicator::MpiCommunicator(const CommunicatorOptions& options) {
  TORCH_CHECK(options.collective_timeout_seconds >= 0,
              "mpi backend: expected collective_timeout_seconds >= 0 (0 = no timeout), got ",
              options.collective_timeout_seconds);
  MpiRuntime::ensure_initialized();
  WINNOW_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
  WINNOW_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  WINNOW_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  WINNOW_MPI_CHECK(MPI_Comm_size(comm_, &world_size_));

  MPI_Comm node_comm = MPI_COMM_NULL;
  WINNOW_MPI_CHECK(
      MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_comm));
  WINNOW_MPI_CHECK(MPI_Comm_rank(node_comm, &local_rank_));
  WINNOW_MPI_CHECK(MPI_Comm_size(node_comm, &local_size_));
  WINNOW_MPI_CHECK(MPI_Comm_free(&node_comm));
  if (options.collective_timeout_seconds > 0) {
    watchdog_ = std::make_unique<CollectiveWatchdog>(comm_, options.collective_timeout_seconds);
  }
}

MpiCommunicator::~MpiCommunicator() {
  watchdog_.reset();
  // No throwing here; after MPI_Finalize the handle is gone with MPI itself.
  if (comm_ != MPI_COMM_NULL && !mpi_finalized()) MPI_Comm_free(&comm_);
}

void MpiCommunicator::check_cpu_and_thread(const torch::Tensor& tensor, const char* what) const {
  TORCH_CHECK(tensor.device().is_cpu(), "mpi ", what, ": expected a CPU tensor, got one on ",
              tensor.device(), "; use the nccl backend for GPU tensors");
  int is_main = 0;
  WINNOW_MPI_CHECK(MPI_Is_thread_main(&is_main));
  TORCH_CHECK(is_main, "mpi ", what,
              ": expected a call from the thread that initialised MPI (MPI_THREAD_FUNNELED), got a "
              "call from another thread");
}

double MpiCommunicator::collective_timeout_seconds() const {
  return watchdog_ ? watchdog_->timeout_seconds() : 0.0;
}

CollectiveId MpiCommunicator::begin_collective(CollectiveKind kind, int64_t bytes) {
  return watchdog_ ? watchdog_->begin(kind, bytes) : CollectiveId{};
}

// One code path: the blocking call is the nonblocking one waited for at once.
void MpiCommunicator::all_reduce(torch::Tensor& tensor, ReduceOp op) {
  all_reduce_async(tensor, op)->wait();
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_async(torch::Tensor& tensor, ReduceOp op) {
  detail::check_all_reduce_args(tensor, op, backend_name());
  check_cpu_and_thread(tensor, "all_reduce_async");
  if (tensor.numel() == 0) return std::make_unique<CompletedWork>();

  const auto dtype = tensor.scalar_type();
  const bool widen = dtype == torch::kBFloat16 || dtype == torch::kHalf;
  torch::Tensor buffer =  // [*shape]
      widen ? tensor.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true)
            : (tensor.is_contiguous() ? tensor : tensor.contiguous());
  const MPI_Datatype datatype = mpi_datatype(buffer.scalar_type());
  const MPI_Op reduce = mpi_op(op, dtype == torch::kBool);
  auto* data = static_cast<char*>(buffer.data_ptr());
  const int64_t element_size = buffer.element_size();
  const CollectiveId id =
      begin_collective(CollectiveKind::kAllReduce, tensor.numel() * tensor.element_size());
  std::vector<MPI_Request> requests;
  for (int64_t begin = 0; begin < buffer.numel(); begin += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, buffer.numel() - begin));
    requests.push_back(MPI_REQUEST_NULL);
    WINNOW_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + begin * element_size, count, datatype,
                                    reduce, comm_, &requests.back()));
  }
  return std::make_unique<MpiAllReduceWork>(tensor, std::move(buffer), std::move(requests),
                                            op == ReduceOp::kAvg ? world_size_ : 1, watchdog_.get(),
                                            id);
}

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  detail::check_dense_tensor(tensor, backend_name(), "broadcast");
  detail::check_root(root, world_size_, backend_name());
  check_cpu_and_thread(tensor, "broadcast");
  if (tensor.numel() == 0) return;

  torch::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();  // [*shape]
  auto* data = static_cast<char*>(buffer.data_ptr());
  const int64_t bytes = buffer.numel() * buffer.element_size();
  const CollectiveId id = begin_collective(CollectiveKind::kBroadcast, bytes);
  std::vector<MPI_Request> requests;
  for (int64_t begin = 0; begin < bytes; begin += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, bytes - begin));
    requests.push_back(MPI_REQUEST_NULL);
    WINNOW_MPI_CHECK(MPI_Ibcast(data + begin, count, MPI_BYTE, root, comm_, &requests.back()));
  }
  wait_for_requests(watchdog_.get(), id, requests);
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

torch::Tensor MpiCommunicator::all_gather(const torch::Tensor& tensor) {
  detail::check_dense_tensor(tensor, backend_name(), "all_gather");
  check_cpu_and_thread(tensor, "all_gather");
  std::vector<int64_t> gathered_shape{world_size_};
  gathered_shape.insert(gathered_shape.end(), tensor.sizes().begin(), tensor.sizes().end());
  torch::Tensor gathered = torch::empty(gathered_shape, tensor.options());  // [world, *shape]
  if (tensor.numel() == 0) return gathered;

  const torch::Tensor input = tensor.contiguous();  // [*shape]
  const int64_t bytes = input.numel() * input.element_size();
  TORCH_CHECK(bytes <= kMaxCount, "mpi all_gather: expected at most ", kMaxCount,
              " bytes per rank, got ", bytes, " (shape ", tensor.sizes(), ", dtype ",
              tensor.scalar_type(), "); gather in pieces");
  const int count = static_cast<int>(bytes);
  const CollectiveId id = begin_collective(CollectiveKind::kAllGather, bytes);
  std::vector<MPI_Request> requests{MPI_REQUEST_NULL};
  WINNOW_MPI_CHECK(MPI_Iallgather(input.data_ptr(), count, MPI_BYTE, gathered.data_ptr(), count,
                                  MPI_BYTE, comm_, &requests.front()));
  wait_for_requests(watchdog_.get(), id, requests);
  return gathered;
}

void MpiCommunicator::barrier() {
  int is_main = 0;
  WINNOW_MPI_CHECK(MPI_Is_thread_main(&is_main));
  TORCH_CHECK(is_main,
              "mpi barrier: expected a call from the thread that initialised MPI "
              "(MPI_THREAD_FUNNELED), got a call from another thread");
  const CollectiveId id = begin_collective(CollectiveKind::kBarrier, 0);
  std::vector<MPI_Request> requests{MPI_REQUEST_NULL};
  WINNOW_MPI_CHECK(MPI_Ibarrier(comm_, &requests.front()));
  wait_for_requests(watchdog_.get(), id, requests);
}

void MpiCommunicator::abort(int exit_code) {
  std::fflush(nullptr);
  MPI_Abort(comm_ == MPI_COMM_NULL ? MPI_COMM_WORLD : comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps the [[noreturn]] promise.
}

}  // namespace winnow::dist
