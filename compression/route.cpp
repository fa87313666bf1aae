// Gather before a block, scatter back after it.
#include "compression/route.h"

#include <algorithm>

#include "compression/token_selection.h"

namespace winnow::compression {

RoutedTokens route_gather(const TokenState& state, const torch::Tensor& scores,
                          int64_t keep_count) {
  const auto selection = select_tokens(state, scores, std::min(keep_count, state.reducible()));
  return {gather_tokens(state, selection.kept), selection.kept};
}

TokenState route_scatter(const TokenState& full, const TokenState& processed,
                         const torch::Tensor& indices) {
  TORCH_CHECK(processed.x.defined() && indices.defined() && processed.tokens() == indices.size(1),
              "route_scatter: expected processed tokens = routed indices = ",
              indices.defined() ? indices.size(1) : 0, ", got ",
              processed.x.defined() ? processed.x.sizes() : torch::IntArrayRef{},
              " (a routed block must not change the token count)");
  TokenState out = full;
  out.x = scatter_tokens(full.x, processed.x, indices);
  return out;
}

int64_t RouteStrategy::output_tokens(int64_t tokens, int64_t protected_count,
                                     int64_t keep_count) const {
  return protected_count + std::min(keep_count, tokens - protected_count);
}

TokenState RouteStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                 int64_t keep_count, const torch::Tensor& /*metric*/) const {
  return route_gather(state, scores, keep_count).state;
}

}  // namespace winnow::compression
