// similarity: ToMe's matching metric (head-averaged keys) and a redundancy score from it.
#pragma once

#include "compression/criterion.h"

namespace winnow::compression {

// similarity (ToMe, Bolya et al., ICLR 2023; facebookresearch/ToMe af95e4b, tome/merge.py).
// metric(): the head-averaged attention keys k̄ [B, N, D]; merge pairs tokens by their cosine.
// score(): s_i = −max_{j≠i} cos(k̄_i, k̄_j), "distinctiveness": a token with a near-duplicate is
// redundant and goes first. With prune this drops both members of a near-duplicate pair where
// merge would keep their average; it is offered as the similarity-driven pruning baseline.
class SimilarityCriterion : public Criterion {
 public:
  std::string name() const override { return "similarity"; }
  CriterionNeeds needs() const override { return {false, false, true}; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  torch::Tensor metric(const TokenState& state, const ScoreContext& context) const override;
  bool provides_metric() const override { return true; }
};

// Rows scaled to unit L2 norm: [B, N, D]. ToMe divides without an epsilon; we clamp the norm at
// 1e-12 so that a zero vector gives zeros instead of NaN (identical for every non-zero row).
torch::Tensor unit_rows(const torch::Tensor& features);  // [B, N, D]

}  // namespace winnow::compression
