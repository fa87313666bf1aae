// cls_attention and attention_received: token scores read off the attention probabilities.
#pragma once

#include "compression/criterion.h"

namespace winnow::compression {

// cls_attention (EViT, Liang et al., ICLR 2022; youweiliang/evit 5ca95a7, evit.py):
// s_i = (1/H) Σ_h A_h[0, i], the attention the class token pays to token i, averaged over heads.
// Needs a class token (protected_count ≥ 1). The scores are probabilities, so prune can use them
// as EViT's fuse weights.
class ClsAttentionCriterion : public Criterion {
 public:
  std::string name() const override { return "cls_attention"; }
  CriterionNeeds needs() const override { return {true, false, false}; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  bool scores_are_weights() const override { return true; }
};

// attention_received (FastV-style, Chen et al., ECCV 2024): s_j = (1/(H·N)) Σ_h Σ_i A_h[i, j],
// the attention token j receives, averaged over heads and all queries, as the FastV paper defines
// it (its in-place code and llmc use the last query's row only; the mean suits encoders too).
class AttentionReceivedCriterion : public Criterion {
 public:
  std::string name() const override { return "attention_received"; }
  CriterionNeeds needs() const override { return {false, true, false}; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  bool scores_are_weights() const override { return true; }
};

}  // namespace winnow::compression
