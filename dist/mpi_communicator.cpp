// The MPI Communicator: process-wide MPI lifetime, checked collectives on CPU tensors.
#include "dist/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

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

}  // namespace

MpiCommunicator::MpiCommunicator() {
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
}

MpiCommunicator::~MpiCommunicator() {
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

void MpiCommunicator::all_reduce(torch::Tensor& tensor, ReduceOp op) {
  detail::check_all_reduce_args(tensor, op, backend_name());
  check_cpu_and_thread(tensor, "all_reduce");
  if (tensor.numel() == 0) return;

  const auto dtype = tensor.scalar_type();
  if (dtype == torch::kBFloat16 || dtype == torch::kHalf) {
    torch::Tensor wide = tensor.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
    all_reduce(wide, op);
    tensor.copy_(wide);
    return;
  }

  torch::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();  // [*shape]
  const MPI_Datatype datatype = mpi_datatype(dtype);
  const MPI_Op reduce = mpi_op(op, dtype == torch::kBool);
  auto* data = static_cast<char*>(buffer.data_ptr());
  const int64_t element_size = buffer.element_size();
  for (int64_t begin = 0; begin < buffer.numel(); begin += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, buffer.numel() - begin));
    WINNOW_MPI_CHECK(
        MPI_Allreduce(MPI_IN_PLACE, data + begin * element_size, count, datatype, reduce, comm_));
  }
  if (op == ReduceOp::kAvg) buffer.div_(world_size_);
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void MpiCommunicator::broadcast(torch::Tensor& tensor, int root) {
  detail::check_dense_tensor(tensor, backend_name(), "broadcast");
  detail::check_root(root, world_size_, backend_name());
  check_cpu_and_thread(tensor, "broadcast");
  if (tensor.numel() == 0) return;

  torch::Tensor buffer = tensor.is_contiguous() ? tensor : tensor.contiguous();  // [*shape]
  auto* data = static_cast<char*>(buffer.data_ptr());
  const int64_t bytes = buffer.numel() * buffer.element_size();
  for (int64_t begin = 0; begin < bytes; begin += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, bytes - begin));
    WINNOW_MPI_CHECK(MPI_Bcast(data + begin, count, MPI_BYTE, root, comm_));
  }
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
  WINNOW_MPI_CHECK(MPI_Allgather(input.data_ptr(), count, MPI_BYTE, gathered.data_ptr(), count,
                                 MPI_BYTE, comm_));
  return gathered;
}

void MpiCommunicator::barrier() {
  WINNOW_MPI_CHECK(MPI_Barrier(comm_));
}

void MpiCommunicator::abort(int exit_code) {
  std::fflush(nullptr);
  MPI_Abort(comm_ == MPI_COMM_NULL ? MPI_COMM_WORLD : comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps the [[noreturn]] promise.
}

}  // namespace winnow::dist
