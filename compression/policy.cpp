// DynamicViT's training-mode token policy.
#include "compression/policy.h"

namespace winnow::compression {

torch::Tensor policy_decisions(const torch::Tensor& scores, double temperature,
                               torch::ScalarType dtype) {
  TORCH_CHECK(temperature > 0, "policy: expected temperature > 0, got ", temperature);
  const auto hard = scores.detach().ge(0).to(dtype);
  const auto soft = torch::sigmoid(scores / temperature).to(dtype);
  // hard + (soft − soft) is exactly hard in the forward pass (DynamicViT's y_hard − sg(y_soft) +
  // y_soft rounds to within an ulp of it).
  return hard + (soft - soft.detach());
}

int64_t PolicyStrategy::output_tokens(int64_t tokens, int64_t /*protected_count*/,
                                      int64_t /*keep_count*/) const {
  return tokens;
}

TokenState PolicyStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                  int64_t /*keep_count*/, const torch::Tensor& /*metric*/) const {
  const int64_t protect = state.protected_count;
  const auto dtype = state.x.scalar_type();
  const auto decisions = policy_decisions(scores.slice(1, protect), options_.temperature(), dtype);
  const auto mask = torch::cat(
      {torch::ones({state.batch(), protect}, decisions.options()), decisions}, 1);  // [B, N]
  TokenState out = state;
  out.keep = state.keep.defined() ? state.keep * mask : mask;
  out.policy_attention = true;
  return out;
}

}  // namespace winnow::compression
