// threshold: LTMP's learned thresholds — a per-layer learned threshold θ_l on the scores of a
// parameter-free base criterion; a token is kept where its score reaches θ_l, so each sample keeps
// its own number of tokens.
#pragma once

#include <map>
#include <memory>

#include "compression/criterion.h"

namespace winnow::compression {

// One layer's threshold θ_l, a scalar parameter: compress.<stage>.<layer>.threshold.
class ThresholdImpl : public torch::nn::Module {
 public:
  explicit ThresholdImpl(double init);
  torch::Tensor threshold;  // []
};
TORCH_MODULE(Threshold);

// Learned Threshold token reduction (Bonnaerens & Dambre, TMLR 2023; Mxbonn/ltmp 1a9c055,
// ltmp/timm/threshold_masking.py ThresholdMasker, lt_pruning.py). The score is the margin
//   m_i = sg(s_i) − θ_l                   s: the base criterion's score (LTMP: attention received)
// so m_i ≥ 0 keeps token i. With strategy 'policy' (training) the keep mask is
// [m ≥ 0] + σ(m/τ) − sg(σ(m/τ)), LTMP's straight-through σ((s − θ)/τ), and θ_l receives the
// gradient of σ; with 'threshold_prune' (inference) the tokens with m < 0 are removed. The margin
// over τ is the log-odds of the soft mask, hence scores_are_log_odds(). The count is the scores':
// decides_count() tells the schedule that the stage's keep does not apply.
class ThresholdCriterion : public Criterion {
 public:
  // base: a parameter-free criterion; init: θ_l at creation (LTMP's pruning thresholds start at 0,
  // which keeps every token of a non-negative score).
  ThresholdCriterion(std::unique_ptr<Criterion> base, double init);
  std::string name() const override { return "threshold"; }
  CriterionNeeds needs() const override { return base_->needs(); }
  // [B, N]: the base scores minus θ of context.layer (protected tokens too; strategies ignore
  // them).
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  bool scores_are_log_odds() const override { return true; }
  bool decides_count() const override { return true; }
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) override;
  bool learned() const override { return true; }
  // The subtraction is free; the base criterion's own FLOPs (0 for parameter-free ones).
  double score_flops(double tokens, int64_t width) const override {
    return base_->score_flops(tokens, width);
  }

  const Criterion& base() const { return *base_; }
  // θ of `layer` (throws when the criterion has none there): [] on the autograd graph.
  torch::Tensor threshold(int64_t layer) const;

 private:
  std::unique_ptr<Criterion> base_;
  double init_;
  std::map<int64_t, Threshold> thresholds_;  // by layer
};

}  // namespace winnow::compression
