// Key-similarity metric and redundancy scores.
#include "compression/similarity_criterion.h"

#include <limits>

namespace winnow::compression {

torch::Tensor unit_rows(const torch::Tensor& features) {
  return features / features.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

torch::Tensor SimilarityCriterion::metric(const TokenState& state,
                                          const ScoreContext& context) const {
  check_context_extra(context.keys, state, name(), "keys", 3);
  return context.keys;
}

torch::Tensor SimilarityCriterion::score(const TokenState& state,
                                         const ScoreContext& context) const {
  const auto unit = unit_rows(metric(state, context));  // [B, N, D]
  if (state.tokens() < 2) return torch::zeros({state.batch(), state.tokens()}, unit.options());
  auto cosine = torch::matmul(unit, unit.transpose(1, 2));  // [B, N, N]
  const auto self = torch::eye(state.tokens(), unit.options().dtype(torch::kBool));
  cosine = cosine.masked_fill(self, -std::numeric_limits<double>::infinity());
  return -std::get<0>(cosine.max(-1));
}

}  // namespace winnow::compression
