// Top-k token choice, gather and scatter-back.
#include "compression/token_selection.h"

#include <limits>

namespace winnow::compression {

torch::Tensor live_scores(const TokenState& state, const torch::Tensor& scores) {
  const int64_t protect = state.protected_count;
  auto live = scores.slice(1, protect).detach();
  if (state.keep.defined()) {
    live = live.masked_fill(state.keep.slice(1, protect).detach().le(0),
                            -std::numeric_limits<double>::infinity());
  }
  return live;
}

TokenSelection select_tokens(const TokenState& state, const torch::Tensor& scores,
                             int64_t keep_count, bool descending_order) {
  const int64_t batch = state.batch(), protect = state.protected_count;
  const int64_t reducible = state.reducible();
  TORCH_CHECK(keep_count >= 0 && keep_count <= reducible, "select_tokens: expected 0 <= keep_count",
              " <= reducible tokens = ", reducible, ", got ", keep_count);
  const auto order =
      std::get<1>(live_scores(state, scores).sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  auto chosen = order.slice(1, 0, keep_count);
  if (!descending_order) chosen = std::get<0>(chosen.sort(1));
  const auto rest = std::get<0>(order.slice(1, keep_count).sort(1));
  const auto leading = torch::arange(protect, order.options()).expand({batch, protect});
  return {torch::cat({leading, chosen + protect}, 1), rest + protect};
}

TokenState gather_tokens(const TokenState& state, const torch::Tensor& indices) {
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == state.batch() &&
                  indices.scalar_type() == torch::kInt64,
              "gather_tokens: expected int64 indices [B, M] with B = ", state.batch(), ", got ",
              indices.scalar_type(), " ", indices.sizes());
  const int64_t batch = state.batch(), count = indices.size(1);
  TokenState out;
  out.x = state.x.gather(1, indices.unsqueeze(-1).expand({batch, count, state.width()}));
  if (state.size.defined()) out.size = state.size.gather(1, indices.unsqueeze(-1));
  out.pos = state.positions().gather(1, indices);
  if (state.keep.defined()) out.keep = state.keep.gather(1, indices);
  out.policy_attention = state.policy_attention;
  out.protected_count = state.protected_count;
  return out;
}

torch::Tensor scatter_tokens(const torch::Tensor& full, const torch::Tensor& processed,
                             const torch::Tensor& indices) {
  TORCH_CHECK(full.dim() == 3 && processed.dim() == 3 && full.size(0) == processed.size(0) &&
                  full.size(2) == processed.size(2),
              "scatter_tokens: expected full [B, N, C] and processed [B, M, C], got ", full.sizes(),
              " and ", processed.sizes());
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == processed.size(0) &&
                  indices.size(1) == processed.size(1) && indices.scalar_type() == torch::kInt64,
              "scatter_tokens: expected int64 indices [B, M] = ", processed.sizes().slice(0, 2),
              ", got ", indices.scalar_type(), " ", indices.sizes());
  return full.scatter(1, indices.unsqueeze(-1).expand(processed.sizes()),
                      processed.to(full.scalar_type()));
}

}  // namespace winnow::compression
