// Strategy: the "what happens to the other tokens" half of a token-reduction method.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "compression/token_state.h"

namespace winnow::compression {

// Options of every strategy; each reads only its own.
struct StrategyOptions {
  // prune: append EViT's fused token, Σ_j s_j·x_j over the dropped tokens (raw scores).
  TORCH_ARG(bool, fuse) = false;
  // prune: order the kept tokens by descending score, as EViT does, instead of original order.
  TORCH_ARG(bool, descending_order) = false;
  // merge: output in the tokens' current order (each merged token where its destination was)
  // instead of ToMe's [unmerged A, B] order; keeps causal order for decoders and dense tasks.
  TORCH_ARG(bool, keep_order) = false;
  // pool: patch grid of the reducible tokens, used when the state carries none.
  TORCH_ARG(int64_t, grid_height) = 0;
  TORCH_ARG(int64_t, grid_width) = 0;
  // pool: side of the square window; 0 = the smallest window whose output fits keep_count.
  TORCH_ARG(int64_t, window) = 0;
  // mask: straight-through soft mask (forward hard 0/1, gradient of a sigmoid to the scores).
  TORCH_ARG(bool, straight_through) = false;
  // mask: temperature of that sigmoid, in score units.
  TORCH_ARG(double, temperature) = 1.0;
  // weighted_route: the weight w(r) that scales a routed token's block update, from its router
  // score r: "sigmoid" σ(r) (Mixture-of-Depths) or "tanh" α·tanh(r) + β (p-MoD's TanhNorm).
  TORCH_ARG(std::string, router_weight) = "sigmoid";
  TORCH_ARG(double, tanh_alpha) = 0.2;  // p-MoD's tanh_0.2_1
  TORCH_ARG(double, tanh_beta) = 1.0;
};

// What a strategy reads and guarantees, for pairing rules, hooks and plans.
struct StrategyTraits {
  bool uses_scores = true;           // false: pool (the criterion need not run)
  bool needs_metric = false;         // true: merge (a criterion with a matching metric)
  bool needs_score_weights = false;  // true: prune with fuse (scores must be probabilities)
  bool keeps_length = false;         // true: mask (shapes kept, keep mask updated)
  bool conserves_size = false;       // true: merge, pool (Σ size and Σ size·x constant)
  // True for route: apply() gives the tokens that run the block; the caller scatters the block's
  // output back with route_scatter (see route.h).
  bool wraps_block = false;
  // True when the scores receive gradients (mask with straight_through), so a learned criterion
  // can be trained through this strategy.
  bool scores_get_gradient = false;
  // True for weighted_route: the routed tokens' block update is scaled by the router weight of
  // their score, x + w(r)·(block(x) − x), scattered back with weighted_route_scatter.
  bool scales_update = false;
  // True when the strategy reads each score as the log-odds of keeping its token (policy), so it
  // pairs only with criteria whose scores_are_log_odds().
  bool needs_log_odds = false;
  // True when each sample keeps its own number of tokens (threshold_prune): the output is cut to
  // the batch's largest count, shorter samples padded with keep-0 slots, and output_tokens()
  // announces an upper bound.
  bool variable_count = false;
};

// A strategy reduces a TokenState given per-token scores and the number of reducible tokens to
// keep. Common contract, enforced by apply() and checked for every registered strategy by the
// conformance suite:
//   - the protected leading tokens stay first, unchanged, in order;
//   - keep_count >= state.reducible() returns the state unchanged (keep-all is the identity);
//   - size, pos and keep travel with the tokens (pos is always defined in a reduced state);
//   - gradients flow to x (selection itself is discrete and takes none);
//   - each sample is reduced independently and deterministically (N ranks ≡ 1 rank).
// Tokens whose keep is 0 (masked earlier) rank below every live token.
class Strategy {
 public:
  explicit Strategy(StrategyOptions options = {}) : options_(std::move(options)) {}
  virtual ~Strategy() = default;

  const StrategyOptions& options() const { return options_; }

  // Registry name, as the configuration spells it.
  virtual std::string name() const = 0;

  virtual StrategyTraits traits() const { return {}; }

  // Number of tokens apply() returns for a state of `tokens` tokens, `protected_count` of them
  // protected, and this keep_count: for plans and FLOPs budgets.
  virtual int64_t output_tokens(int64_t tokens, int64_t protected_count,
                                int64_t keep_count) const = 0;

  // Checks the inputs, returns `state` itself when keep_count keeps every reducible token, and
  // reduces otherwise. scores may be undefined when !traits().uses_scores; metric is needed
  // only when traits().needs_metric.
  TokenState apply(const TokenState& state,
                   const torch::Tensor& scores,  // [B, N], higher = keep
                   int64_t keep_count,           // reducible tokens to keep (EViT's left_tokens)
                   const torch::Tensor& metric = torch::Tensor()) const;  // [B, N, D]

 protected:
  // Called with checked inputs and keep_count < state.reducible().
  virtual TokenState reduce(const TokenState& state,
                            const torch::Tensor& scores,  // [B, N]
                            int64_t keep_count,
                            const torch::Tensor& metric) const = 0;  // [B, N, D]

  StrategyOptions options_;  // the fields a strategy reads are listed in its header
};

// EViT's kept count for a keep rate: ceil(keep_rate · reducible), with 0 < keep_rate <= 1.
int64_t keep_count_for_rate(double keep_rate, int64_t reducible);

}  // namespace winnow::compression
