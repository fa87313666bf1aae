// Analytic FLOPs of transformer blocks, from the token counts each layer actually processed.
#pragma once

#include <cstdint>
#include <vector>

namespace winnow::compression {

// Shape of one pre-LN transformer block: width C, MLP hidden width M.
struct BlockShape {
  int64_t width = 0;
  int64_t mlp_hidden = 0;
};

// Forward FLOPs (multiply-add = 2 FLOPs) of one block processing `tokens` tokens of one sample,
// attending over `keys` keys (keys = tokens for self-attention):
//   qkv 2·N·C·3C + scores 2·N·K·C + weighted sum 2·N·K·C + proj 2·N·C·C + MLP 2·2·N·C·M.
// Norms, softmax and activations are O(N·C) and ignored, as is customary (Kaplan et al. 2020).
double block_forward_flops(const BlockShape& shape, double tokens, double keys);
// The attention half (qkv, scores, weighted sum, proj) and the MLP half of the same sum, for
// blocks whose MLP sees fewer tokens than their attention (a merge or prune after attention).
double attention_forward_flops(const BlockShape& shape, double tokens, double keys);
double mlp_forward_flops(const BlockShape& shape, double tokens);
// The part of attention that grows with tokens × keys: the scores Q·Kᵀ and the weighted sum A·V,
// 2·2·N·K·C. Keeping m of n tokens scales it by m²/n² (the rest of the block by m/n).
double attention_core_forward_flops(const BlockShape& shape, double tokens, double keys);

// Forward FLOPs of a linear map applied to `rows` rows: 2·rows·in·out.
double linear_forward_flops(double rows, int64_t in_features, int64_t out_features);

// Training FLOPs = forward + backward, with backward = 2 × forward (gradients w.r.t. activations
// and weights), the standard 3× rule.
constexpr double kTrainingFlopsPerForwardFlop = 3.0;

}  // namespace winnow::compression
