// Scores from the EMA table of the Taylor skip saliency.
#include "compression/saliency_criterion.h"

#include <limits>

namespace winnow::compression {

void SaliencyCriterion::create_parameters(torch::nn::Module& /*stage*/,
                                          const std::vector<int64_t>& layers, int64_t /*width*/) {
  TORCH_CHECK(!table_, "saliency criterion: its table was already made");
  std::vector<int64_t> rows;
  if (source_layer_ >= 0)
    rows.push_back(source_layer_);
  else
    rows = layers;
  table_ = std::make_shared<TokenSaliencyTable>(table_options_, rows);
}

torch::Tensor SaliencyCriterion::score(const TokenState& state, const ScoreContext& context) const {
  TORCH_CHECK(state.x.defined() && state.x.dim() == 3, "saliency: expected x [B, N, C], got ",
              state.x.defined() ? state.x.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(table_, "saliency criterion: no table; the planner makes it for the stage's layers");
  const auto keys = table_->keys_of(state.positions(), context.token_ids);  // [B, N]
  // ±∞ (unseen keys' default) become the largest float, so that score differences stay finite
  // (mask's straight-through threshold sits halfway between two scores).
  const double largest = std::numeric_limits<float>::max();
  auto scores = table_->lookup(source_of(context.layer), keys).clamp(-largest, largest);  // [B, N]
  scores.narrow(1, 0, state.protected_count).zero_();
  return scores.to(state.x.device());
}

}  // namespace winnow::compression
