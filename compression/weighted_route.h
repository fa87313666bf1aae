// weighted_route: Mixture-of-Depths routing (Raposo et al., 2024) — a block runs on the top-C
// tokens of each sequence by a learned router score r, and each routed token's update is scaled by
// the router weight w(r), x_{l+1} = x_l + w(r)·(block(x̃)_i − x̃_i), so that the router is on the
// gradient path; the other tokens ride the residual unchanged. Also the causal variant used in
// evaluation: route token t iff the criterion's causal predictor says so.
#pragma once

#include "compression/route.h"

namespace winnow::compression {

// MoD's capacity: exactly ⌊keep · reducible⌋ tokens (at least 1 of a non-empty sequence), the
// paper's C = ⌊c·S⌋ — not EViT's ceil of keep_count_for_rate, and not the k − 1 of a community
// port that selects with `weights > kth_value`.
int64_t router_capacity(double keep, int64_t reducible);

// The router weight w(r) of each score: σ(r) ("sigmoid") or α·tanh(r) + β ("tanh"), with
// options.router_weight(), tanh_alpha(), tanh_beta(). Same shape as `scores`.
torch::Tensor router_weight(const torch::Tensor& scores, const StrategyOptions& options);

// The update weights of the tokens that ran the block, aligned with `indices` ([B, P + K]): 1 for
// the P protected tokens (they always run, unscaled), w(r) of their own score for the others.
torch::Tensor routed_update_weights(const torch::Tensor& scores,   // [B, N]
                                    const torch::Tensor& indices,  // [B, P + K] int64
                                    int64_t protected_count, const StrategyOptions& options);

// The full state after a weighted block: full.x plus, at the routed rows, weight ⊙ (processed.x −
// routed_input) — the block's update, not its output, so the residual is added once. Rows whose
// `active` is false (padding of a causal gather) add nothing. size, pos and keep are full's.
// Gradients reach full.x everywhere (the residual), the update (so the block and, through the
// gather, the routed inputs), and the weights (so the router).
TokenState weighted_route_scatter(const TokenState& full,             // [B, N, C]
                                  const torch::Tensor& routed_input,  // [B, M, C] before block
                                  const TokenState& processed,        // [B, M, C] after block
                                  const torch::Tensor& indices,       // [B, M] int64
                                  const torch::Tensor& weights,       // [B, M]
                                  const torch::Tensor& active = {});  // [B, M] bool

// Causal routing: each sample's reducible tokens with log_odds > 0 (and the protected ones) run
// the block. Counts differ between samples, so every sample gathers M = the largest count of the
// batch, the chosen tokens first, then the lowest-indexed others as padding, in ascending order;
// the padding slots get keep = 0 (no token attends to them) and are marked inactive, so
// weighted_route_scatter drops their output. A token's decision reads only its own log-odds.
struct CausalRoutedTokens {
  RoutedTokens routed;   // state [B, P + M, C] (keep defined), indices [B, P + M]
  torch::Tensor active;  // [B, P + M] bool: slots of tokens that chose the block
};
CausalRoutedTokens causal_route_gather(const TokenState& state,
                                       const torch::Tensor& log_odds);  // [B, N]

// weighted_route as a Strategy: apply() is route_gather(...).state, like route; its traits say
// that the scores get a gradient (through w(r)) and that the caller scales the update
// (weighted_route_scatter). Reads router_weight, tanh_alpha and tanh_beta.
class WeightedRouteStrategy : public Strategy {
 public:
  explicit WeightedRouteStrategy(StrategyOptions options = {});
  std::string name() const override { return "weighted_route"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.wraps_block = true;
    traits.scores_get_gradient = true;
    traits.scales_update = true;
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
