// linear: a learned token scorer, s_i = wᵀ·LayerNorm(x_i) + b, one per reducing layer (the router
// of Mixture-of-Depths, Raposo et al. 2024, on normalised tokens). Its parameters are trained
// through a strategy that passes gradients to the scores (mask with straight_through; routing
// that scales the block's update by the router weight).
#pragma once

#include <map>

#include "compression/criterion.h"

namespace winnow::compression {

// Parameters of one layer's scorer: compress.<stage>.<layer>.{norm,score}.{weight,bias}.
class LinearScorerImpl : public torch::nn::Module {
 public:
  explicit LinearScorerImpl(int64_t width);
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, C] -> [B, N]
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear score{nullptr};
};
TORCH_MODULE(LinearScorer);

class LinearCriterion : public Criterion {
 public:
  // z_loss: weight of the auxiliary loss "score_z" = Σ over samples of the mean s_i² over the
  // reducible tokens (0 = none).
  explicit LinearCriterion(double z_loss = 1e-3) : z_loss_(z_loss) {}
  std::string name() const override { return "linear"; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) override;
  bool learned() const override { return true; }
  double score_flops(double tokens, int64_t width) const override;  // the wᵀx product

 private:
  double z_loss_;
  std::map<int64_t, LinearScorer> scorers_;  // by layer
};

}  // namespace winnow::compression
