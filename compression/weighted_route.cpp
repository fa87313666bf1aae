// Mixture-of-Depths routing: top-C gather, router-weighted update, causal gather for evaluation.
#include "compression/weighted_route.h"

#include <algorithm>
#include <cmath>

#include "compression/token_selection.h"

namespace winnow::compression {

int64_t router_capacity(double keep, int64_t reducible) {
  TORCH_CHECK(keep > 0.0 && keep <= 1.0,
              "router capacity: expected a keep fraction in (0, 1], got ", keep);
  if (reducible <= 0) return 0;
  // The epsilon absorbs rounding of fractions such as 0.125 · 128 written in decimal.
  const auto capacity =
      static_cast<int64_t>(std::floor(keep * static_cast<double>(reducible) + 1e-9));
  return std::clamp<int64_t>(capacity, 1, reducible);
}

torch::Tensor router_weight(const torch::Tensor& scores, const StrategyOptions& options) {
  if (options.router_weight() == "sigmoid") return torch::sigmoid(scores);
  TORCH_CHECK(options.router_weight() == "tanh",
              "weighted_route: expected router_weight sigmoid or tanh, got '",
              options.router_weight(), "'");
  return options.tanh_alpha() * torch::tanh(scores) + options.tanh_beta();
}

torch::Tensor routed_update_weights(const torch::Tensor& scores, const torch::Tensor& indices,
                                    int64_t protected_count, const StrategyOptions& options) {
  TORCH_CHECK(scores.dim() == 2 && indices.dim() == 2 && scores.size(0) == indices.size(0),
              "weighted_route: expected scores [B, N] and indices [B, M], got ", scores.sizes(),
              " and ", indices.sizes());
  const auto weights = router_weight(scores.gather(1, indices), options);  // [B, M]
  if (protected_count == 0) return weights;
  return torch::cat({torch::ones({indices.size(0), protected_count}, weights.options()),
                     weights.slice(1, protected_count)},
                    1);
}

TokenState weighted_route_scatter(const TokenState& full, const torch::Tensor& routed_input,
                                  const TokenState& processed, const torch::Tensor& indices,
                                  const torch::Tensor& weights, const torch::Tensor& active) {
  TORCH_CHECK(processed.x.defined() && indices.defined() && processed.tokens() == indices.size(1),
              "weighted_route_scatter: expected processed tokens = routed indices = ",
              indices.defined() ? indices.size(1) : 0, ", got ",
              processed.x.defined() ? processed.x.sizes() : torch::IntArrayRef{},
              " (a routed block must not change the token count)");
  TORCH_CHECK(routed_input.sizes() == processed.x.sizes(),
              "weighted_route_scatter: expected the block's input ", processed.x.sizes(),
              " like its output, got ", routed_input.sizes());
  TORCH_CHECK(weights.sizes() == indices.sizes(), "weighted_route_scatter: expected weights ",
              indices.sizes(), " (one per routed token), got ", weights.sizes());
  auto update = processed.x - routed_input;  // [B, M, C]
  if (active.defined()) {
    TORCH_CHECK(active.sizes() == indices.sizes(), "weighted_route_scatter: expected active ",
                indices.sizes(), ", got ", active.sizes());
    // where, not a product: a padding slot's output may be NaN (all its keys masked).
    update = torch::where(active.unsqueeze(-1), update, torch::zeros_like(update));
  }
  update = update * weights.to(update.scalar_type()).unsqueeze(-1);
  TokenState out = full;
  out.x = full.x.scatter_add(1, indices.unsqueeze(-1).expand_as(update), update);
  return out;
}

CausalRoutedTokens causal_route_gather(const TokenState& state, const torch::Tensor& log_odds) {
  TORCH_CHECK(log_odds.dim() == 2 && log_odds.size(0) == state.batch() &&
                  log_odds.size(1) == state.tokens(),
              "causal route: expected log-odds [B, N] = [", state.batch(), ", ", state.tokens(),
              "], got ", log_odds.sizes());
  const int64_t batch = state.batch(), protect = state.protected_count;
  auto chosen = log_odds.detach().slice(1, protect) > 0;  // [B, R]
  if (state.keep.defined()) chosen = chosen.logical_and(state.keep.slice(1, protect) > 0);
  const int64_t most = chosen.sum(1).max().item<int64_t>();
  const auto bool_options = chosen.options();
  const auto chosen_all =
      torch::cat({torch::ones({batch, protect}, bool_options), chosen}, 1);  // [B, N]
  torch::Tensor indices;                                                     // [B, P + M]
  if (most == 0) {
    indices = torch::arange(protect, log_odds.options().dtype(torch::kInt64))
                  .expand({batch, protect})
                  .contiguous();
  } else {
    // Chosen tokens rank 1, the others 0; ties go to the lower index, so the padding is the
    // earliest unchosen tokens and everything comes back in ascending order.
    indices = select_tokens(state, chosen_all.to(state.x.scalar_type()), most).kept;
  }
  CausalRoutedTokens result;
  result.routed.state = gather_tokens(state, indices);
  result.routed.indices = indices;
  result.active = chosen_all.gather(1, indices);
  const auto keep = result.active.to(state.x.scalar_type());
  auto& gathered = result.routed.state;
  gathered.keep = gathered.keep.defined() ? gathered.keep * keep : keep;
  return result;
}

WeightedRouteStrategy::WeightedRouteStrategy(StrategyOptions options)
    : Strategy(std::move(options)) {
  TORCH_CHECK(options_.router_weight() == "sigmoid" || options_.router_weight() == "tanh",
              "weighted_route: expected router_weight sigmoid or tanh, got '",
              options_.router_weight(), "'");
}

int64_t WeightedRouteStrategy::output_tokens(int64_t tokens, int64_t protected_count,
                                             int64_t keep_count) const {
  return protected_count + std::min(keep_count, tokens - protected_count);
}

TokenState WeightedRouteStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                         int64_t keep_count,
                                         const torch::Tensor& /*metric*/) const {
  return route_gather(state, scores, keep_count).state;
}

}  // namespace winnow::compression
