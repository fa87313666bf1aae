// L2-norm token scores.
#include "compression/norm_criteria.h"

namespace winnow::compression {

torch::Tensor NormCriterion::score(const TokenState& state, const ScoreContext& /*context*/) const {
  TORCH_CHECK(state.x.defined() && state.x.dim() == 3, "norm: expected x [B, N, C], got ",
              state.x.defined() ? state.x.sizes() : torch::IntArrayRef{});
  return state.x.norm(2, {-1});
}

torch::Tensor KeyNormCriterion::score(const TokenState& state, const ScoreContext& context) const {
  check_context_extra(context.keys, state, name(), "keys", 3);
  return -context.keys.norm(2, {-1});
}

}  // namespace winnow::compression
