// LayerTimingTable: the measured wall-clock of one training forward + backward of each block on
// the per-rank micro-batch, as a function of the tokens it processes (co_compression.md §7.2,
// "wall-clock model"), so that the co-scheduler can budget time instead of FLOPs. A block is
// timed as its two halves, the attention half (norm1, attention, residual) and the MLP half
// (norm2, MLP, residual), because in drop mode a method acting between them (prune at
// post_attention) gives them different token counts, as the FLOPs model counts them.
//
// The table holds the times at a few token counts; between them it interpolates piecewise
// linearly in n. Attention grows as n² and the MLP as n, so a chord between neighbouring measured
// counts overestimates the n² part by at most (Δn)²/4 per unit of its coefficient: with counts
// every N/G tokens (the grid's own counts) this is below the timing noise of the small blocks and
// a few percent of a ViT-B block's attention.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace winnow::compression {

class LayerTimingTable {
 public:
  LayerTimingTable() = default;
  // token_counts: [P] strictly increasing, >= 1. attention_seconds, mlp_seconds: [L, P] float64,
  // finite and >= 0: seconds of the attention and MLP halves of layer l at token_counts[p].
  LayerTimingTable(std::vector<int64_t> token_counts, torch::Tensor attention_seconds,
                   torch::Tensor mlp_seconds);

  bool empty() const { return token_counts_.empty(); }
  int64_t depth() const { return empty() ? 0 : attention_seconds_.size(0); }
  const std::vector<int64_t>& token_counts() const { return token_counts_; }
  const torch::Tensor& attention_seconds() const { return attention_seconds_; }  // [L, P]
  const torch::Tensor& mlp_seconds() const { return mlp_seconds_; }              // [L, P]

  // Seconds of layer `layer`'s attention half on `tokens` tokens (0 tokens: 0 s), interpolated
  // between the measured counts; `tokens` must lie in [token_counts().front(), back()] or be 0.
  double attention(int64_t layer, int64_t tokens) const;
  double mlp(int64_t layer, int64_t tokens) const;

  // Saved in the planner's state (checkpoints): "timing.tokens" [P] int64,
  // "timing.attention_seconds" and "timing.mlp_seconds" [L, P] float64.
  std::map<std::string, torch::Tensor> state() const;
  // The table in `state`, or an empty one when it has none of the three entries; errors name
  // `owner` and say what was expected.
  static LayerTimingTable from_state(const std::map<std::string, torch::Tensor>& state,
                                     const std::string& owner);

  // A few lines: per layer, the milliseconds of the whole block at each measured count.
  std::string describe() const;

 private:
  double interpolate(const torch::Tensor& seconds, int64_t layer, int64_t tokens) const;

  std::vector<int64_t> token_counts_;
  torch::Tensor attention_seconds_;  // [L, P] float64, contiguous
  torch::Tensor mlp_seconds_;        // [L, P] float64, contiguous
};

}  // namespace winnow::compression
