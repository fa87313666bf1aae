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

void Method::set_eval_strategy(std::unique_ptr<Strategy> strategy) {
  TORCH_CHECK(strategy, "method: expected an evaluation strategy, got none");
  check_pairing(*criterion_, *strategy, /*for_training=*/false);
  TORCH_CHECK(strategy->traits().wraps_block == strategy_->traits().wraps_block,
              "method: the evaluation strategy '", strategy->name(),
              "' and the training strategy '", strategy_->name(),
              "' must both route or both not (they act at the same site)");
  eval_strategy_ = std::move(strategy);
}

void Method::set_causal_eval() {
  TORCH_CHECK(eval_strategy().traits().wraps_block, "method: causal evaluation routes tokens ",
              "around a block, so it needs a route strategy, got '", eval_strategy().name(), "'");
  TORCH_CHECK(criterion_->predicts_routing(), "method: causal evaluation needs a criterion with ",
              "a causal routing predictor (criterion 'router'), got '", criterion_->name(), "'");
  causal_eval_ = true;
}

std::string Method::name() const {
  return criterion_->name() + "+" + strategy_->name();
}

CriterionNeeds Method::needs() const {
  const auto reads_criterion = [](const Strategy& strategy) {
    const auto traits = strategy.traits();
    return traits.uses_scores || traits.needs_metric;
  };
  if (!reads_criterion(*strategy_) && !reads_criterion(eval_strategy())) return {};
  return criterion_->needs();
}

TokenState Method::apply(const TokenState& state, const ScoreContext& context,
                         int64_t keep_count) const {
  if (keep_count >= state.reducible()) return state;  // skip scoring when nothing is reduced
  const Strategy& strategy = context.training ? *strategy_ : eval_strategy();
  const auto traits = strategy.traits();
  const auto scores = traits.uses_scores ? criterion_->score(state, context) : torch::Tensor();
  const auto metric = traits.needs_metric ? criterion_->metric(state, context) : torch::Tensor();
  auto reduced = strategy.apply(state, scores, keep_count, metric);
  if (context.aux_losses) criterion_->add_losses(reduced, context);
  return reduced;
}

}  // namespace winnow::compression
