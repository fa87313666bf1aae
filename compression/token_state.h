// TokenState: the token sequence that travels through the transformer blocks, with the
// bookkeeping that token reduction needs (sizes of merged tokens, original positions, soft masks).
#pragma once

#include <torch/torch.h>

namespace winnow::compression {

// Undefined tensors mean "trivial": every slot stands for one original token, positions are
// 0..N-1, and every token is kept. Dense models never define them, so they cost nothing.
struct TokenState {
  torch::Tensor x;     // [B, N, C] residual stream
  torch::Tensor size;  // [B, N, 1] float: original tokens each slot stands for (merge/pool)
  torch::Tensor pos;   // [B, N] int64: original position of each slot (causal masks, scatter-back)
  torch::Tensor keep;  // [B, N] float in [0, 1]: soft keep mask (mask-mode training)
  int64_t protected_count = 0;  // leading tokens no strategy may drop (CLS)
  // How attention reads keep: false = log keep added to the key logits (a 0 removes the key
  // exactly); true = DynamicViT's policy softmax (strategy 'policy': each token still attends to
  // itself, masked keys keep an ε floor, gradients reach the decisions of masked tokens).
  bool policy_attention = false;
  // Patch grid (rows × columns) formed by the reducible tokens (those after the protected ones) in
  // row-major order, e.g. 14 × 14 for a ViT with patch 16 on 224². 0 = unknown, or no longer a
  // grid (after prune or merge). Spatial pooling reads it and writes the pooled grid.
  int64_t grid_height = 0;
  int64_t grid_width = 0;

  int64_t batch() const { return x.size(0); }
  int64_t tokens() const { return x.size(1); }
  int64_t width() const { return x.size(2); }
  // Tokens a strategy may drop or merge: all but the protected leading ones.
  int64_t reducible() const { return tokens() - protected_count; }

  // Positions as a tensor even when trivial: [B, N] int64.
  torch::Tensor positions() const {
    if (pos.defined()) return pos;
    return torch::arange(tokens(), x.options().dtype(torch::kInt64)).expand({batch(), tokens()});
  }
};

}  // namespace winnow::compression
