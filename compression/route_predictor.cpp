// The causal routing predictor of Mixture-of-Depths.
#include "compression/route_predictor.h"

namespace winnow::compression {

RoutePredictorImpl::RoutePredictorImpl(int64_t width) {
  TORCH_CHECK(width > 0, "route predictor: expected a model width > 0, got ", width);
  fc1 = register_module("fc1", torch::nn::Linear(width, hidden_width(width)));
  fc2 = register_module("fc2", torch::nn::Linear(hidden_width(width), 1));
}

torch::Tensor RoutePredictorImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3, "route predictor: expected tokens [B, N, C], got ", x.sizes());
  return fc2->forward(torch::gelu(fc1->forward(x))).squeeze(-1);
}

torch::Tensor route_predictor_loss(const torch::Tensor& logits, const torch::Tensor& membership) {
  TORCH_CHECK(logits.dim() == 2 && logits.sizes() == membership.sizes(),
              "route predictor: expected logits and membership of the same shape [B, R], got ",
              logits.sizes(), " and ", membership.sizes());
  if (logits.size(1) == 0) return logits.sum();
  const auto bce = torch::binary_cross_entropy_with_logits(
      logits, membership.to(logits.scalar_type()), /*weight=*/{}, /*pos_weight=*/{},
      at::Reduction::None);  // [B, R]
  return bce.mean(1).sum();
}

double route_predictor_correct(const torch::Tensor& logits, const torch::Tensor& membership) {
  TORCH_CHECK(logits.sizes() == membership.sizes(),
              "route predictor: expected logits and membership of the same shape, got ",
              logits.sizes(), " and ", membership.sizes());
  return (logits.detach() > 0).eq(membership > 0.5).sum().item<double>();
}

}  // namespace winnow::compression
