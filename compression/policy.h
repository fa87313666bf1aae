// policy: DynamicViT's training-mode token policy — each token's own keep/drop decision, taken
// from the sign of its score, multiplied into the keep mask and read by attention as DynamicViT's
// policy softmax.
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// policy (Rao et al., NeurIPS 2021; raoyongming/DynamicViT 1322e62, models/dyvit.py
// VisionTransformerDiffPruning.forward, training branch): shapes stay; for the reducible tokens
//   D_new = [s ≥ 0] + (σ(s/τ) − sg(σ(s/τ)))      (forward exactly 0/1, gradient of σ to s)
//   keep' = keep · D_new                            (decisions multiply across stages)
// and protected tokens stay at keep 1. With s the log-odds of keeping plus the difference of two
// Gumbel draws (criterion 'predictor' in training) and τ = 1 (`temperature`), D_new is exactly
// the keep channel of F.gumbel_softmax(log_probs, hard=True). The count is the criterion's, not
// keep_count: the planned keep only sets the ratio loss's target, and keep_count ≥ reducible
// (keep 1) leaves the state unchanged like every strategy. The state is marked
// policy_attention, so attention applies DynamicViT's softmax_with_policy (train/attention.h):
// every token still attends to itself, masked keys keep an ε floor, and the gradient reaches the
// decisions of dropped tokens too. Scores must be log-odds (criterion trait scores_are_log_odds).
class PolicyStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "policy"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.keeps_length = true;
    traits.scores_get_gradient = true;
    traits.needs_log_odds = true;
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

// The straight-through decision of each score: [s ≥ 0] forward, ∂/∂s = σ'(s/τ)/τ. [B, R] → [B, R]
// in `dtype`.
torch::Tensor policy_decisions(const torch::Tensor& scores, double temperature,
                               torch::ScalarType dtype);

}  // namespace winnow::compression
