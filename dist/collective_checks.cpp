// Argument checks shared by the Communicator backends.
#include "dist/collective_checks.h"

namespace winnow::dist {

std::string reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled ReduceOp ", static_cast<int>(op));
}

namespace detail {

void check_dense_tensor(const torch::Tensor& tensor, const std::string& backend, const char* what) {
  TORCH_CHECK(tensor.defined(), backend, " ", what,
              ": expected a defined tensor, got an undefined one");
  TORCH_CHECK(tensor.layout() == torch::kStrided, backend, " ", what,
              ": expected a dense (strided) tensor, got layout ", tensor.layout());
}

void check_all_reduce_args(const torch::Tensor& tensor, ReduceOp op, const std::string& backend) {
  check_dense_tensor(tensor, backend, "all_reduce");
  const auto dtype = tensor.scalar_type();
  switch (dtype) {
    case torch::kFloat:
    case torch::kDouble:
    case torch::kBFloat16:
    case torch::kHalf:
      return;
    case torch::kChar:
    case torch::kShort:
    case torch::kInt:
    case torch::kLong:
    case torch::kByte:
      TORCH_CHECK(op != ReduceOp::kAvg, backend,
                  " all_reduce: expected a floating dtype for op avg, got ", dtype,
                  "; reduce with sum and divide in floating point instead");
      return;
    case torch::kBool:
      TORCH_CHECK(
          op == ReduceOp::kMax || op == ReduceOp::kMin, backend,
          " all_reduce: expected op max (logical or) or min (logical and) for a bool tensor, got ",
          reduce_op_name(op));
      return;
    default:
      TORCH_CHECK(false, backend,
                  " all_reduce: expected dtype float32, float64, bfloat16, float16, int8, int16, "
                  "int32, int64, uint8 or bool, got ",
                  dtype);
  }
}

void check_root(int root, int world_size, const std::string& backend) {
  TORCH_CHECK(root >= 0 && root < world_size, backend, " broadcast: expected root in [0, ",
              world_size, "), got ", root);
}

}  // namespace detail
}  // namespace winnow::dist
