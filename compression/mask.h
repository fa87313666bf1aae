// mask: keep every token but mark the unselected ones as masked out of attention.
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// mask: shapes stay; keep'[i] = keep[i] · m_i with m_i = 1 for protected and selected tokens and
// 0 for the others (the attention adds log keep to the key logits, so 0 removes a key exactly).
// Like DynamicViT's training mode, decisions accumulate over layers (D_s = D_new · D_{s−1}), and
// tokens masked earlier rank last. With straight_through, m = hard + (soft − soft.detach()),
// soft_i = σ((s_i − t)/τ) and t halfway between the k-th and (k+1)-th live score: the forward
// value is exactly hard, and the gradient of the sigmoid reaches the scores (learned criteria).
// x, size and pos are unchanged, so masking saves no compute: it is the training mode for
// criteria that must stay differentiable.
class MaskStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "mask"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.keeps_length = true;
    traits.scores_get_gradient = options_.straight_through();
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
