// predictor: DynamicViT's learned prediction module — per reducing layer an MLP on LayerNorm'd
// tokens with local features and a global feature (the keep-weighted mean under the current
// policy), giving each token's keep/drop log-probabilities; in training, keyed Gumbel noise makes
// the keep decisions stochastic, and a ratio loss pulls the kept fraction to its target.
#pragma once

#include <map>

#include "compression/criterion.h"

namespace winnow::compression {

// One layer's prediction module, DynamicViT's PredictorLG (raoyongming/DynamicViT 1322e62,
// models/dyvit.py), with its parameter names, so that compress.<stage>.<layer>.* maps one to one
// onto score_predictor.<s>.*:
//   z = GELU(in_conv.1(LayerNorm in_conv.0(x)))                            [B, R, C]
//   f = cat(z[..., :C/2], Σ_i z_i[C/2:]·D_i / Σ_i D_i)                      [B, R, C]
//   log p = LogSoftmax(out_conv.4(GELU(out_conv.2(GELU(out_conv.0(f))))))   [B, R, 2]
// with C → C/2 → C/4 → 2 and channel 0 = keep. D is the current keep policy of the reducible
// tokens. Linear weights start N(0, 0.02²) with zero biases, as DynamicViT's _init_weights.
class PredictorImpl : public torch::nn::Module {
 public:
  explicit PredictorImpl(int64_t width);
  torch::Tensor forward(const torch::Tensor& x,        // [B, R, C]
                        const torch::Tensor& policy);  // [B, R, 1] -> [B, R, 2] log-probs
  torch::nn::Sequential in_conv{nullptr};
  torch::nn::Sequential out_conv{nullptr};
};
TORCH_MODULE(Predictor);

// Scores are the log-odds of keeping each reducible token, log p_keep − log p_drop (an order
// equal to DynamicViT's ranking by log p_keep). In training (ScoreContext::training) the scores
// get g_keep − g_drop, two Gumbel draws keyed on (seed, step, layer, sample id, position, class),
// so that [score ≥ 0] is the hard Gumbel-max decision of F.gumbel_softmax(log p, hard=True) and
// σ(score) its soft keep probability (strategy 'policy'). Protected tokens score 0 (ignored).
// Pairs with 'policy' for training (then 'prune' in evaluation, DynamicViT's inference top-k) or
// with 'mask' + straight_through (a top-k mask over the noisy scores).
class PredictorCriterion : public Criterion {
 public:
  // ratio_loss: weight of the auxiliary loss "ratio" (0 = none), see add_losses.
  explicit PredictorCriterion(double ratio_loss = 2.0) : ratio_loss_(ratio_loss) {}
  std::string name() const override { return "predictor"; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
  bool scores_are_log_odds() const override { return true; }
  // DynamicViT's ratio loss (losses.py DistillDiffPruningLoss_dynamic, dynamic=False) for this
  // layer: Σ over samples of (mean_i keep_i − ρ)² over the reducible tokens of the reduced state,
  // ρ = context.planned_keep, divided by the number of the criterion's layers (DynamicViT divides
  // by len(pruning_loc)), so that the weighted global mean is ratio_weight · pred_loss / S.
  void add_losses(const TokenState& reduced, const ScoreContext& context) const override;
  void create_parameters(torch::nn::Module& stage, const std::vector<int64_t>& layers,
                         int64_t width) override;
  bool learned() const override { return true; }
  // The four linear layers C → C → C/2 → C/4 → 2 of every scored token.
  double score_flops(double tokens, int64_t width) const override;

  // The keep/drop log-probabilities of the reducible tokens at `layer` (no noise): [B, R, 2].
  torch::Tensor log_probabilities(const TokenState& state, int64_t layer) const;
  // The module of `layer` (throws when the criterion has none there).
  Predictor predictor(int64_t layer) const;

 private:
  double ratio_loss_;
  std::map<int64_t, Predictor> predictors_;  // by layer
};

// Standard Gumbel noise −log(−log u), u in (0, 1) keyed on (seed, step, layer, global sample id,
// original position, class c ∈ {0, 1}) through data::hash_keys: [B, N, 2] float64 on positions'
// device. The same keys give bitwise the same noise on any rank, and resumed runs draw it again.
torch::Tensor keyed_gumbel_noise(uint64_t seed, int64_t step, int64_t layer,
                                 const torch::Tensor& sample_ids,  // [B] int64
                                 const torch::Tensor& positions);  // [B, N] int64

}  // namespace winnow::compression
