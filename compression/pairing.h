// Which criterion × strategy pairs make a method, and why the others do not.
#pragma once

#include <string>

#include "compression/criterion.h"
#include "compression/strategy.h"

namespace winnow::compression {

// Empty when the pair is valid, otherwise the reason in one sentence. The rules:
//   - a strategy that needs a matching metric (merge) pairs only with a criterion that provides
//     one (similarity);
//   - a strategy that weights tokens by their scores (prune with fuse) pairs only with criteria
//     whose scores are attention probabilities (cls_attention, attention_received);
//   - a strategy that reads scores as log-odds (policy) pairs only with criteria whose scores are
//     log-odds (predictor);
//   - a learned criterion trains only through a strategy that passes gradients to its scores
//     (mask with straight_through, policy); `for_training` = false (the strategy a stage
//     evaluates with, e.g. prune after training with policy) drops this rule;
//   - every other pair is valid; a strategy that uses no scores (pool) ignores the criterion.
std::string pairing_problem(const Criterion& criterion, const Strategy& strategy,
                            bool for_training = true);

// Throws with pairing_problem's reason when the pair is invalid.
void check_pairing(const Criterion& criterion, const Strategy& strategy, bool for_training = true);

}  // namespace winnow::compression
