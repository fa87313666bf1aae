// Criterion defaults and the shared check of attention extras.
#include "compression/criterion.h"

namespace winnow::compression {

torch::Tensor Criterion::metric(const TokenState& /*state*/,
                                const ScoreContext& /*context*/) const {
  TORCH_CHECK(false, "criterion '", name(),
              "' provides no matching metric; merging needs one (criterion 'similarity')");
  return {};
}

torch::Tensor Criterion::routing_log_odds(const TokenState& /*state*/,
                                          const ScoreContext& /*context*/) const {
  TORCH_CHECK(false, "criterion '", name(),
              "' has no causal routing predictor; eval = causal needs one (criterion 'router')");
  return {};
}

void check_context_extra(const torch::Tensor& extra, const TokenState& state,
                         const std::string& criterion, const char* what, int64_t dims) {
  TORCH_CHECK(extra.defined(), "criterion '", criterion, "' needs ScoreContext::", what,
              ", got an undefined tensor (request it from the attention via needs())");
  TORCH_CHECK(
      extra.dim() == dims && extra.size(0) == state.batch() && extra.size(1) == state.tokens(),
      "criterion '", criterion, "': expected ScoreContext::", what, " of ", dims,
      " dimensions starting [B, N] = [", state.batch(), ", ", state.tokens(), "], got ",
      extra.sizes());
}

void add_aux_loss(AuxLosses& losses, const std::string& name, const torch::Tensor& sum,
                  double weight) {
  auto [it, inserted] = losses.try_emplace(name, AuxLoss{sum, weight});
  if (!inserted) it->second.sum = it->second.sum + sum;
}

void add_aux_metric(AuxMetrics& metrics, const std::string& name, double sum, double count) {
  auto& metric = metrics[name];
  metric.sum += sum;
  metric.count += count;
}

}  // namespace winnow::compression
