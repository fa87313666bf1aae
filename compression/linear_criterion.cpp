// A learned linear token scorer per layer.
#include "compression/linear_criterion.h"

#include <string>

#include "compression/flops.h"

namespace winnow::compression {

LinearScorerImpl::LinearScorerImpl(int64_t width) {
  TORCH_CHECK(width > 0, "linear criterion: expected a model width > 0, got ", width);
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  score = register_module("score", torch::nn::Linear(width, 1));
  // Start from uniform scores (every token equally important) so that an untrained scorer does
  // not impose an arbitrary order; gradients break the tie.
  torch::NoGradGuard no_grad;
  score->weight.normal_(0.0, 0.02);
  score->bias.zero_();
}

torch::Tensor LinearScorerImpl::forward(const torch::Tensor& x) {
  return score->forward(norm->forward(x)).squeeze(-1);
}

void LinearCriterion::create_parameters(torch::nn::Module& stage,
                                        const std::vector<int64_t>& layers, int64_t width) {
  for (int64_t layer : layers) {
    TORCH_CHECK(!scorers_.count(layer), "linear criterion: layer ", layer, " given twice");
    scorers_.emplace(layer, stage.register_module(std::to_string(layer), LinearScorer(width)));
  }
}

double LinearCriterion::score_flops(double tokens, int64_t width) const {
  return linear_forward_flops(tokens, width, 1);
}

torch::Tensor LinearCriterion::score(const TokenState& state, const ScoreContext& context) const {
  const auto it = scorers_.find(context.layer);
  TORCH_CHECK(
      it != scorers_.end(), "linear criterion: no scorer parameters for layer ", context.layer,
      " (it has layers ",
      [&] {
        std::string names;
        for (const auto& entry : scorers_)
          names += (names.empty() ? "" : ",") + std::to_string(entry.first);
        return names.empty() ? std::string("none") : names;
      }(),
      "); parameters are created for the stage's configured layers");
  auto scores = it->second.ptr()->forward(state.x);  // [B, N]
  if (context.aux_losses && z_loss_ > 0 && state.reducible() > 0) {
    auto reducible = scores.slice(1, state.protected_count);  // [B, N - P]
    add_aux_loss(*context.aux_losses, "score_z", reducible.pow(2).mean(1).sum(), z_loss_);
  }
  return scores;
}

}  // namespace winnow::compression
