// uniform: scores that make every top-k a spatially uniform subset of the patch grid.
#pragma once

#include "compression/criterion.h"

namespace winnow::compression {

// uniform: a fixed, data-independent order of the patch grid whose every prefix is spread evenly
// over the image, so that top-k keeps a near-regular lattice for any k. arXiv 2505.19147 finds
// that spatial uniformity is what makes random selection and pooling strong baselines.
//
// Stride pattern: pad the H × W grid to a 2^m × 2^m square, interleave the bits of (row, column)
// into a Morton (Z-order) code and reverse its 2m bits. Ordered by that reversed code, cells on
// the stride-2 lattice (even row and column) come first, within them the stride-4 lattice, and so
// on: keeping a quarter of a 14 × 14 grid keeps exactly the 7 × 7 cells with even coordinates (the
// top-left of every 2 × 2 window); intermediate k fill the next finer lattice in a spread order.
//
// A token's cell comes from its original position: cell = pos − protected_count, row-major on the
// original grid, so the criterion works at any layer, after pruning too. Scores are
// (H·W − rank) / (H·W) in (0, 1]; tokens outside the grid (protected ones, EViT's fused token
// whose position is −1) score 0.
class UniformCriterion : public Criterion {
 public:
  UniformCriterion(int64_t grid_height, int64_t grid_width);
  std::string name() const override { return "uniform"; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;

 private:
  int64_t grid_height_, grid_width_;
  torch::Tensor cell_scores_;  // [H·W] float64, score of each cell, row-major
};

// Rank of each cell of an H × W grid in the bit-reversed Morton order: [H·W] int64, row-major.
torch::Tensor uniform_grid_ranks(int64_t grid_height, int64_t grid_width);

}  // namespace winnow::compression
