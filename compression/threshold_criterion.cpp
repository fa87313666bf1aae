// LTMP's learned per-layer thresholds on a base criterion's scores.
#include "compression/threshold_criterion.h"

#include <cmath>
#include <string>

namespace winnow::compression {

ThresholdImpl::ThresholdImpl(double init) {
  TORCH_CHECK(std::isfinite(init), "threshold criterion: expected a finite threshold_init, got ",
              init);
  threshold = register_parameter("threshold", torch::tensor(init, torch::kFloat32));
}

ThresholdCriterion::ThresholdCriterion(std::unique_ptr<Criterion> base, double init)
    : base_(std::move(base)), init_(init) {
  TORCH_CHECK(base_, "threshold criterion: expected a base criterion, got none");
  TORCH_CHECK(
      !base_->learned() && !base_->saliency_table(),
      "threshold criterion: expected a parameter-free base criterion (threshold_base), got '",
      base_->name(), "'");
  TORCH_CHECK(std::isfinite(init_), "threshold criterion: expected a finite threshold_init, got ",
              init_);
}

void ThresholdCriterion::create_parameters(torch::nn::Module& stage,
                                           const std::vector<int64_t>& layers, int64_t /*width*/) {
  for (int64_t layer : layers) {
    TORCH_CHECK(!thresholds_.count(layer), "threshold criterion: layer ", layer, " given twice");
    thresholds_.emplace(layer, stage.register_module(std::to_string(layer), Threshold(init_)));
  }
}

torch::Tensor ThresholdCriterion::threshold(int64_t layer) const {
  const auto it = thresholds_.find(layer);
  if (it != thresholds_.end()) return it->second->threshold;
  std::string names;
  for (const auto& entry : thresholds_)
    names += (names.empty() ? "" : ",") + std::to_string(entry.first);
  TORCH_CHECK(false, "threshold criterion: no threshold for layer ", layer, " (it has layers ",
              names.empty() ? std::string("none") : names,
              "); thresholds are created for the stage's configured layers");
  return {};
}

torch::Tensor ThresholdCriterion::score(const TokenState& state,
                                        const ScoreContext& context) const {
  // Detached: the masks' gradients (task and FLOPs loss) train θ, not the attention that produced
  // the scores (LTMP trains θ alone; jointly trained, the backbone would learn to game the
  // criterion, with gradients scaled by 1/τ).
  const auto base_scores = base_->score(state, context).detach();  // [B, N]
  return base_scores - threshold(context.layer).to(base_scores.scalar_type());
}

}  // namespace winnow::compression
