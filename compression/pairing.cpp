// Pairing rules of criteria and strategies.
#include "compression/pairing.h"

namespace winnow::compression {

std::string pairing_problem(const Criterion& criterion, const Strategy& strategy,
                            bool for_training) {
  if (strategy.traits().needs_metric && !criterion.provides_metric()) {
    return "strategy '" + strategy.name() + "' needs a matching metric, which criterion '" +
           criterion.name() + "' does not provide (use criterion 'similarity')";
  }
  if (strategy.traits().needs_score_weights && !criterion.scores_are_weights()) {
    return "strategy '" + strategy.name() + "' weights tokens by their scores, but criterion '" +
           criterion.name() +
           "' gives rankings, not attention probabilities (use 'cls_attention' or "
           "'attention_received', or turn fuse off)";
  }
  if (strategy.traits().needs_log_odds && !criterion.scores_are_log_odds()) {
    return "strategy '" + strategy.name() + "' reads each score as the log-odds of keeping its " +
           "token, which criterion '" + criterion.name() +
           "' does not give (use criterion 'predictor' or 'threshold')";
  }
  if (for_training && criterion.learned() && !strategy.traits().scores_get_gradient) {
    return "criterion '" + criterion.name() + "' is learned, but strategy '" + strategy.name() +
           "' passes no gradient to its scores, so it would never train (use strategy 'mask' "
           "with straight_through = true, 'weighted_route' (Mixture-of-Depths), or 'policy' with "
           "criterion 'predictor' or 'threshold')";
  }
  return {};
}

void check_pairing(const Criterion& criterion, const Strategy& strategy, bool for_training) {
  const auto problem = pairing_problem(criterion, strategy, for_training);
  TORCH_CHECK(problem.empty(), problem);
}

}  // namespace winnow::compression
