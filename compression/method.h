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

  // The reduced state; see Strategy::apply for the contract and keep_count.
  TokenState apply(const TokenState& state, const ScoreContext& context, int64_t keep_count) const;

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
};

}  // namespace winnow::compression
