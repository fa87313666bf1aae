// norm and key_norm: token scores from L2 norms of the features or of the attention keys.
#pragma once

#include "compression/criterion.h"

namespace winnow::compression {

// norm: s_i = ‖x_i‖₂ over channels; large activations are kept (the magnitude baseline of the
// token-reduction literature; arXiv 2505.19147 lists it with K-norm and V-norm).
class NormCriterion : public Criterion {
 public:
  std::string name() const override { return "norm"; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
};

// key_norm (KNorm, Devoto et al., EMNLP 2024, arXiv 2406.11430, code alessiodevoto/l2compress):
// s_i = −‖k̄_i‖₂. The paper finds that a *low* key norm goes with *high* attention, and keeps the
// keys with the lowest norms, hence the minus sign. We differ in one way: KNorm takes per-head key
// norms; we take the norm of the head-averaged key, which the attention exposes (mean_keys)
// without per-head outputs. Attention-free, so it works with fused attention kernels.
class KeyNormCriterion : public Criterion {
 public:
  std::string name() const override { return "key_norm"; }
  CriterionNeeds needs() const override { return {false, false, true}; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
};

}  // namespace winnow::compression
