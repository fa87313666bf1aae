// A criterion composed with a strategy.
#include "compression/method.h"

#include "compression/pairing.h"

namespace winnow::compression {

Method::Method(std::unique_ptr<Criterion> criterion, std::unique_ptr<Strategy> strategy)
    : criterion_(std::move(criterion)), strategy_(std::move(strategy)) {
  TORCH_CHECK(criterion_ && strategy_, "method: expected a criterion and a strategy, got ",
              criterion_ ? "no strategy" : "no criterion");
  check_pairing(*criterion_, *strategy_);
}

Method Method::make(const std::string& criterion, const std::string& strategy,
                    const CriterionOptions& criterion_options,
                    const StrategyOptions& strategy_options) {
  return Method(make_criterion(criterion, criterion_options),
                make_strategy(strategy, strategy_options));
}

std::string Method::name() const {
  return criterion_->name() + "+" + strategy_->name();
}

CriterionNeeds Method::needs() const {
  const auto traits = strategy_->traits();
  if (!traits.uses_scores && !traits.needs_metric) return {};
  return criterion_->needs();
}

TokenState Method::apply(const TokenState& state, const ScoreContext& context,
                         int64_t keep_count) const {
  if (keep_count >= state.reducible()) return state;  // skip scoring when nothing is reduced
  const auto traits = strategy_->traits();
  const auto scores = traits.uses_scores ? criterion_->score(state, context) : torch::Tensor();
  const auto metric = traits.needs_metric ? criterion_->metric(state, context) : torch::Tensor();
  return strategy_->apply(state, scores, keep_count, metric);
}

}  // namespace winnow::compression
