// Per-sample threshold pruning, padded to the batch's largest kept count.
#include "compression/threshold_prune.h"

#include "compression/token_selection.h"

namespace winnow::compression {

torch::Tensor threshold_decisions(const TokenState& state, const torch::Tensor& scores) {
  const int64_t protect = state.protected_count;
  auto decisions = scores.slice(1, protect).detach().ge(0);  // [B, R]
  if (state.keep.defined()) decisions = decisions.logical_and(state.keep.slice(1, protect).gt(0));
  return decisions;
}

int64_t ThresholdPruneStrategy::output_tokens(int64_t tokens, int64_t /*protected_count*/,
                                              int64_t /*keep_count*/) const {
  return tokens;
}

TokenState ThresholdPruneStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                          int64_t /*keep_count*/,
                                          const torch::Tensor& /*metric*/) const {
  const int64_t protect = state.protected_count, batch = state.batch();
  const auto decisions = threshold_decisions(state, scores);  // [B, R]
  const int64_t longest = decisions.sum(1).max().item<int64_t>();
  // Kept tokens first, then the dropped ones, each group in original order (a stable sort).
  const auto order = std::get<1>(decisions.logical_not()
                                     .to(torch::kInt32)
                                     .sort(
                                         /*stable=*/true, /*dim=*/1, /*descending=*/false))
                         .slice(1, 0, longest);  // [B, M]
  const auto index_options = scores.options().dtype(torch::kInt64);
  const auto indices = torch::cat(
      {torch::arange(protect, index_options).expand({batch, protect}), order + protect}, 1);
  TokenState out = gather_tokens(state, indices);  // [B, P + M, C]
  const auto live =
      torch::cat({torch::ones({batch, protect}, decisions.options()), decisions.gather(1, order)},
                 1)
          .to(state.x.scalar_type());  // [B, P + M]: 0 on the padding
  out.keep = out.keep.defined() ? out.keep * live : live;
  out.policy_attention = false;
  return out;
}

}  // namespace winnow::compression
