// Strategy::apply: the checks and the keep-all identity shared by every strategy.
#include "compression/strategy.h"

#include <cmath>

namespace winnow::compression {

TokenState Strategy::apply(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                           const torch::Tensor& metric) const {
  TORCH_CHECK(state.x.defined() && state.x.dim() == 3, name(), ": expected x [B, N, C], got ",
              state.x.defined() ? state.x.sizes() : torch::IntArrayRef{});
  const int64_t batch = state.batch(), tokens = state.tokens();
  TORCH_CHECK(state.protected_count >= 0 && state.protected_count <= tokens, name(),
              ": expected 0 <= protected_count <= N = ", tokens, ", got ", state.protected_count);
  TORCH_CHECK(keep_count >= 0, name(), ": expected keep_count >= 0, got ", keep_count);
  if (state.size.defined()) {
    TORCH_CHECK(state.size.sizes() == torch::IntArrayRef({batch, tokens, 1}), name(),
                ": expected size [B, N, 1] = [", batch, ", ", tokens, ", 1], got ",
                state.size.sizes());
  }
  if (state.pos.defined()) {
    TORCH_CHECK(state.pos.sizes() == torch::IntArrayRef({batch, tokens}), name(),
                ": expected pos [B, N] = [", batch, ", ", tokens, "], got ", state.pos.sizes());
  }
  if (state.keep.defined()) {
    TORCH_CHECK(state.keep.sizes() == torch::IntArrayRef({batch, tokens}), name(),
                ": expected keep [B, N] = [", batch, ", ", tokens, "], got ", state.keep.sizes());
  }
  const StrategyTraits traits = this->traits();
  if (traits.uses_scores) {
    TORCH_CHECK(scores.defined() && scores.sizes() == torch::IntArrayRef({batch, tokens}), name(),
                ": expected scores [B, N] = [", batch, ", ", tokens, "], got ",
                scores.defined() ? scores.sizes() : torch::IntArrayRef{});
    TORCH_CHECK(scores.is_floating_point(), name(), ": expected floating-point scores, got ",
                scores.scalar_type());
  }
  if (traits.needs_metric) {
    TORCH_CHECK(metric.defined() && metric.dim() == 3 && metric.size(0) == batch &&
                    metric.size(1) == tokens,
                name(), ": expected a matching metric [B, N, D] with [B, N] = [", batch, ", ",
                tokens, "] (criterion 'similarity'), got ",
                metric.defined() ? metric.sizes() : torch::IntArrayRef{});
  }
  if (keep_count >= state.reducible()) return state;
  return reduce(state, scores, keep_count, metric);
}

int64_t keep_count_for_rate(double keep_rate, int64_t reducible) {
  TORCH_CHECK(keep_rate > 0.0 && keep_rate <= 1.0, "expected a keep rate in (0, 1], got ",
              keep_rate);
  TORCH_CHECK(reducible >= 0, "expected a reducible token count >= 0, got ", reducible);
  return static_cast<int64_t>(std::ceil(keep_rate * static_cast<double>(reducible)));
}

}  // namespace winnow::compression
