// Index-level building blocks of the selecting strategies: top-k choice, gather, scatter-back.
#pragma once

#include <torch/torch.h>

#include "compression/token_state.h"

namespace winnow::compression {

// The outcome of ranking the reducible tokens of a state.
struct TokenSelection {
  torch::Tensor kept;     // [B, P + K] int64: protected 0..P-1, then the K chosen tokens
  torch::Tensor dropped;  // [B, R - K] int64: the other reducible tokens, ascending
};

// The reducible tokens' scores, detached, with tokens whose keep is 0 (masked by an earlier
// layer) at −inf so that they rank below every live token: [B, R].
torch::Tensor live_scores(const TokenState& state,
                          const torch::Tensor& scores);  // [B, N]

// Chooses the keep_count highest-scoring reducible tokens of each sample. Ties go to the lower
// index (stable sort), so the choice is deterministic on every device; tokens whose keep is 0 rank
// below all others. The chosen tokens come in ascending index order (original order), or by
// descending score when descending_order (EViT's topk(sorted=True) order). Indices are into the
// state's token axis, protected tokens included.
TokenSelection select_tokens(const TokenState& state,
                             const torch::Tensor& scores,  // [B, N]
                             int64_t keep_count, bool descending_order = false);

// The tokens at `indices` with their size, pos and keep: [B, M, C]. pos is always defined in the
// result; size and keep stay undefined when they were. The result has no grid.
TokenState gather_tokens(const TokenState& state,
                         const torch::Tensor& indices);  // [B, M] int64

// full with rows `indices` overwritten by processed: [B, N, C]. Autograd matches random-LTD's
// GatherTokens/ScatterTokens pair: the gradient reaches processed at `indices` and full
// everywhere else (an overwrite, not an add).
torch::Tensor scatter_tokens(const torch::Tensor& full,       // [B, N, C]
                             const torch::Tensor& processed,  // [B, M, C]
                             const torch::Tensor& indices);   // [B, M] int64

}  // namespace winnow::compression
