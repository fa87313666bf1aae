// Method: a token-reduction method Φ, a criterion composed with a strategy, checked for pairing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compression/criterion_registry.h"
#include "compression/strategy_registry.h"

namespace winnow::compression {

// Φ(state) = strategy.apply(state, criterion.score(state, context), keep_count, metric). The
// criterion is evaluated only when the strategy reads its scores or metric, and needs() asks the
// attention only for the extras actually used (none for pool).
class Method {
 public:
  // Throws when the pair is invalid (pairing.h).
  Method(std::unique_ptr<Criterion> criterion, std::unique_ptr<Strategy> strategy);

  // From registry names; unknown names and invalid pairs throw.
  static Method make(const std::string& criterion, const std::string& strategy,
                     const CriterionOptions& criterion_options = {},
                     const StrategyOptions& strategy_options = {});

  // "criterion+strategy", e.g. "cls_attention+prune".
  std::string name() const;
  CriterionNeeds needs() const;

  // The reduced state; see Strategy::apply for the contract and keep_count. Outside training
  // (!context.training) the evaluation strategy acts when one is set. In training, the
  // criterion then adds its auxiliary losses on the result (Criterion::add_losses).
  TokenState apply(const TokenState& state, const ScoreContext& context, int64_t keep_count) const;

  // A different strategy for evaluation: a learned criterion trains through one strategy (policy,
  // mask) and gives its speedup through another (prune: tokens physically removed). It is checked
  // with the pairing rules but need not pass gradients, and must act at the same site (route only
  // with route).
  void set_eval_strategy(std::unique_ptr<Strategy> strategy);
  // The evaluation strategy: the one set, or the training one.
  const Strategy& eval_strategy() const { return eval_strategy_ ? *eval_strategy_ : *strategy_; }

  // Causal evaluation of a route method (Mixture-of-Depths' decoding): outside training each
  // token runs the block iff the criterion's routing_log_odds() > 0, instead of the top-k over
  // the sequence. Needs a routing strategy and a criterion that predicts_routing().
  void set_causal_eval();
  bool causal_eval() const { return causal_eval_; }

  const Criterion& criterion() const { return *criterion_; }
  // See Criterion::create_parameters.
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) {
    criterion_->create_parameters(stage, layers, width);
  }
  const Strategy& strategy() const { return *strategy_; }

 private:
  std::unique_ptr<Criterion> criterion_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<Strategy> eval_strategy_;  // null: strategy_ in evaluation too
  bool causal_eval_ = false;
};

}  // namespace winnow::compression
