// Argument checks that every Communicator backend applies, so a mistake fails the same way on all.
#pragma once

#include <torch/torch.h>

#include <string>

#include "dist/communicator.h"

namespace winnow::dist {

// "sum", "avg", "max", "min".
std::string reduce_op_name(ReduceOp op);

namespace detail {

// `tensor` must be defined and strided (dense). `backend` and `what` name the call in messages.
void check_dense_tensor(const torch::Tensor& tensor, const std::string& backend, const char* what);

// all_reduce accepts float32, float64, bfloat16, float16, int8, int16, int32, int64, uint8 and
// bool. kAvg needs a floating dtype (an integer average would silently truncate); bool supports
// only kMax (logical or) and kMin (logical and).
void check_all_reduce_args(const torch::Tensor& tensor, ReduceOp op, const std::string& backend);

// `root` must be in [0, world_size).
void check_root(int root, int world_size, const std::string& backend);

}  // namespace detail
}  // namespace winnow::dist
