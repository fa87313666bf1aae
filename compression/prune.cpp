// Top-k pruning with EViT's optional fused token.
#include "compression/prune.h"

#include "compression/token_selection.h"

namespace winnow::compression {

int64_t PruneStrategy::output_tokens(int64_t tokens, int64_t protected_count,
                                     int64_t keep_count) const {
  const int64_t reducible = tokens - protected_count;
  if (keep_count >= reducible) return tokens;
  return protected_count + keep_count + (options_.fuse() ? 1 : 0);
}

TokenState PruneStrategy::reduce(const TokenState& state, const torch::Tensor& scores,
                                 int64_t keep_count, const torch::Tensor& /*metric*/) const {
  const auto selection = select_tokens(state, scores, keep_count, options_.descending_order());
  TokenState out = gather_tokens(state, selection.kept);
  if (!options_.fuse()) return out;

  // EViT: weights are the dropped tokens' scores, not renormalised; gradients reach them.
  const int64_t batch = state.batch(), dropped = selection.dropped.size(1);
  const auto weights = scores.gather(1, selection.dropped).to(state.x.scalar_type());  // [B, D]
  const auto members =
      state.x.gather(1, selection.dropped.unsqueeze(-1).expand({batch, dropped, state.width()}));
  const auto fused = (members * weights.unsqueeze(-1)).sum(1, /*keepdim=*/true);  // [B, 1, C]
  out.x = torch::cat({out.x, fused}, 1);
  out.pos = torch::cat({out.pos, torch::full({batch, 1}, -1, out.pos.options())}, 1);
  if (out.size.defined())
    out.size = torch::cat({out.size, torch::ones({batch, 1, 1}, out.size.options())}, 1);
  if (out.keep.defined())
    out.keep = torch::cat({out.keep, torch::ones({batch, 1}, out.keep.options())}, 1);
  return out;
}

}  // namespace winnow::compression
