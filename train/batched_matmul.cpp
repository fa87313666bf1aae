// Batched matrix product through per-matrix BLAS calls on CPU.
#include "train/batched_matmul.h"

namespace winnow::train {
namespace {

// out[i...] = a[i...] @ b[i...] over every leading index; views only, so strided operands (e.g.
// the heads of a permuted qkv projection) reach BLAS without a copy when their rows are dense.
void batched_mm_out(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
  if (a.dim() == 2) {
    torch::mm_out(out, a, b);
    return;
  }
  for (int64_t i = 0; i < a.size(0); ++i) batched_mm_out(out.select(0, i), a.select(0, i), b.select(0, i));
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
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a, const torch::Tensor& b) {
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
  TORCH_CHECK(a.dim() >= 2 && a.dim() == b.dim() && a.size(-1) == b.size(-2) &&
                  a.sizes().slice(0, a.dim() - 2) == b.sizes().slice(0, b.dim() - 2),
              "batched_matmul: expected [..., M, K] x [..., K, N] with the same leading dimensions, got ", a.sizes(),
              " and ", b.sizes());
  if (!a.device().is_cpu()) return torch::matmul(a, b);
  return BatchedMatmul::apply(a, b);
}

}  // namespace winnow::train
