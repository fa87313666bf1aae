// Batched matrix product through per-matrix BLAS calls on CPU.
#include "train/batched_matmul.h"

#include <ATen/Parallel.h>

#include <vector>

namespace winnow::train {
namespace {

// Collects the 2-D matrices of every leading index as views, so strided operands (e.g. the heads
// of a permuted qkv projection) reach BLAS without a copy when their rows are dense.
void collect_matrices(const torch::Tensor& t, std::vector<torch::Tensor>& into) {
  if (t.dim() == 2) {
    into.push_back(t);
    return;
  }
  for (int64_t i = 0; i < t.size(0); ++i) collect_matrices(t.select(0, i), into);
}

// out[i] = a[i] @ b[i] for every leading index. Attention-sized products (e.g. 197x64x197) are
// too small for a multi-threaded gemm to pay off, so the batch is split over the intra-op threads
// and each product runs single-threaded inside the parallel region (OpenBLAS does not nest).
void batched_mm_out(const torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b) {
  std::vector<torch::Tensor> outs, as, bs;
  collect_matrices(out, outs);
  collect_matrices(a, as);
  collect_matrices(b, bs);
  const auto count = static_cast<int64_t>(outs.size());
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) torch::mm_out(outs[i], as[i], bs[i]);
  });
}

torch::Tensor batched_mm(const torch::Tensor& a, const torch::Tensor& b) {
  auto shape = a.sizes().vec();
  shape.back() = b.size(-1);
  auto out = torch::empty(shape, a.options());
  batched_mm_out(out, a, b);
  return out;
}

class BatchedMatmul : public torch::autograd::Function<BatchedMatmul> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b) {
    ctx->save_for_backward({a, b});
    return batched_mm(a, b);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const auto& b = saved[1];
    auto grad = grads[0].contiguous();
    torch::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(0)) grad_a = batched_mm(grad, b.transpose(-2, -1));
    if (ctx->needs_input_grad(1)) grad_b = batched_mm(a.transpose(-2, -1), grad);
    return {grad_a, grad_b};
  }
};

}  // namespace

torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(
      a.dim() >= 2 && a.dim() == b.dim() && a.size(-1) == b.size(-2) &&
          a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2),
      "batched_matmul: expected [..., M, K] x [..., K, N] with the same leading dimensions, got ",
      a.sizes(), " and ", b.sizes());
  if (!a.device().is_cpu()) return torch::matmul(a, b);
  return BatchedMatmul::apply(a, b);
}

}  // namespace winnow::train
