// Batched matrix product that is fast on CPU with Debian's LibTorch: its bmm kernel does not
// call BLAS (0.6 GFLOP/s for attention-sized batches here), so on CPU each matrix of the batch
// goes through torch::mm (BLAS gemm, 10-30x faster). On other devices it is torch::matmul.
#pragma once

#include <torch/torch.h>

namespace winnow::train {

// a: [..., M, K], b: [..., K, N] with identical leading dimensions -> [..., M, N].
// Differentiable: the backward uses the same kernel (grad_a = g·bᵀ, grad_b = aᵀ·g).
torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace winnow::train
