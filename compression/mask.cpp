// Attention masking of unselected tokens, hard or straight-through.
#include "compression/mask.h"

#include "compression/token_selection.h"

namespace winnow::compression {

int64_t MaskStrategy::output_tokens(int64_t tokens, int64_t /*protected_count*/,
                                    int64_t /*keep_count*/) const {
  return tokens;
}

TokenState MaskStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                int64_t keep_count, const torch::Tensor& /*metric*/) const {
  const auto selection = select_tokens(state, scores, keep_count);
  const auto dtype = state.x.scalar_type();
  auto mask = torch::zeros({state.batch(), state.tokens()}, state.x.options());
  mask.scatter_(1, selection.kept, 1.0);
  if (options_.straight_through()) {
    TORCH_CHECK(options_.temperature() > 0, "mask: expected temperature > 0, got ",
                options_.temperature());
    const int64_t protect = state.protected_count;
    const auto sorted = std::get<0>(
        live_scores(state, scores).sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
    const auto last_kept = sorted.select(1, keep_count > 0 ? keep_count - 1 : 0);
    const auto first_dropped = sorted.select(1, keep_count);
    const auto zero = torch::zeros_like(last_kept);
    // Halfway between the two; fall back to a finite edge when one of them is masked (−inf).
    auto threshold = torch::where(first_dropped.isfinite(), (last_kept + first_dropped) / 2,
                                  torch::where(last_kept.isfinite(), last_kept, zero));
    if (keep_count == 0) {
      threshold = torch::where(first_dropped.isfinite(), first_dropped + 1, zero);
    }
    const auto soft =
        torch::sigmoid((scores.slice(1, protect) - threshold.unsqueeze(1)) / options_.temperature())
            .to(dtype);
    const auto straight = torch::cat(
        {torch::zeros({state.batch(), protect}, soft.options()), soft - soft.detach()}, 1);
    mask = mask + straight;
  }
  TokenState out = state;
  out.keep = state.keep.defined() ? state.keep * mask : mask;
  return out;
}

}  // namespace winnow::compression
