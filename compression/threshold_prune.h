// threshold_prune: the inference form of learned thresholds — each sample keeps exactly the tokens
// whose score reaches the threshold (score ≥ 0), so samples keep different numbers of tokens; the
// batch is cut to its largest count, shorter samples padded with masked slots.
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// threshold_prune (LTMP's InferenceLTMPBlock, Mxbonn/ltmp 1a9c055,
// ltmp/timm/lt_pruning_inference.py: `x[prune_mask]`): a reducible token stays iff its score is
// ≥ 0 (the threshold criterion's margin s − θ; the predictor's log-odds) and it was live (keep >
// 0). LTMP's code removes the tokens with a reshape that only works when every sample keeps the
// same count, so it evaluates with batch 1. Here each sample's kept tokens come first, in original
// order, after the protected ones; the sequence is cut to M = the largest kept count of the batch,
// and a sample that keeps k < M tokens fills its last M − k slots with some of its dropped tokens
// at keep 0, which attention removes exactly as keys (log 0 = −∞ on the key logits; the state is
// marked for that key mask, not the policy softmax). Their own outputs are never read as keys and
// never kept by a later layer, so every sample's live tokens get exactly the result of running
// that sample alone (batch 1); the padding costs M − k rows of compute. keep_count is not read:
// the count is the scores'. output_tokens() announces the upper bound N (traits variable_count).
class ThresholdPruneStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "threshold_prune"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.needs_log_odds = true;
    traits.variable_count = true;
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

// Whether each reducible token stays under a threshold decision: score ≥ 0 and (when the state
// has keep) keep > 0. [B, N] scores → [B, R] bool.
torch::Tensor threshold_decisions(const TokenState& state, const torch::Tensor& scores);

}  // namespace winnow::compression
