// Attention-derived token scores.
#include "compression/attention_criteria.h"

namespace winnow::compression {

torch::Tensor ClsAttentionCriterion::score(const TokenState& state,
                                           const ScoreContext& context) const {
  TORCH_CHECK(state.protected_count >= 1,
              "cls_attention: expected a class token (protected_count >= 1), got protected_count=",
              state.protected_count);
  check_context_extra(context.cls_row, state, name(), "cls_row", 2);
  return context.cls_row;
}

torch::Tensor AttentionReceivedCriterion::score(const TokenState& state,
                                                const ScoreContext& context) const {
  check_context_extra(context.received, state, name(), "received", 2);
  return context.received;
}

}  // namespace winnow::compression
