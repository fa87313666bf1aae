// Spatially uniform token order on the patch grid.
#include "compression/uniform_criterion.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace winnow::compression {

torch::Tensor uniform_grid_ranks(int64_t grid_height, int64_t grid_width) {
  TORCH_CHECK(grid_height > 0 && grid_width > 0,
              "uniform: needs the patch grid (options grid_height and grid_width > 0), got ",
              grid_height, " x ", grid_width);
  int bits = 0;  // m: side of the padded square is 2^m
  while ((int64_t{1} << bits) < std::max(grid_height, grid_width)) ++bits;
  const int64_t cells = grid_height * grid_width;
  std::vector<uint64_t> reversed(static_cast<size_t>(cells));
  for (int64_t row = 0; row < grid_height; ++row) {
    for (int64_t col = 0; col < grid_width; ++col) {
      uint64_t code = 0;  // Morton code: column bit i at 2i, row bit i at 2i + 1
      for (int i = 0; i < bits; ++i) {
        code |= ((static_cast<uint64_t>(col) >> i) & 1U) << (2 * i);
        code |= ((static_cast<uint64_t>(row) >> i) & 1U) << (2 * i + 1);
      }
      uint64_t flipped = 0;  // the 2m bits of the code in reverse order
      for (int i = 0; i < 2 * bits; ++i) flipped |= ((code >> i) & 1U) << (2 * bits - 1 - i);
      reversed[static_cast<size_t>(row * grid_width + col)] = flipped;
    }
  }
  std::vector<int64_t> order(static_cast<size_t>(cells));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return reversed[static_cast<size_t>(a)] < reversed[static_cast<size_t>(b)];
  });
  auto ranks = torch::empty({cells}, torch::kInt64);
  auto rank = ranks.accessor<int64_t, 1>();
  for (int64_t r = 0; r < cells; ++r) rank[order[static_cast<size_t>(r)]] = r;
  return ranks;
}

UniformCriterion::UniformCriterion(int64_t grid_height, int64_t grid_width)
    : grid_height_(grid_height), grid_width_(grid_width) {
  const auto ranks = uniform_grid_ranks(grid_height, grid_width);
  const double cells = static_cast<double>(grid_height * grid_width);
  cell_scores_ = (cells - ranks.to(torch::kFloat64)) / cells;
}

torch::Tensor UniformCriterion::score(const TokenState& state,
                                      const ScoreContext& /*context*/) const {
  const int64_t cells = grid_height_ * grid_width_;
  const auto cell = state.positions() - state.protected_count;  // [B, N]
  const auto inside = cell.ge(0).logical_and(cell.lt(cells));
  const auto table = cell_scores_.to(cell.device());
  const auto scores = table.index({cell.clamp(0, cells - 1)});  // [B, N]
  return torch::where(inside, scores, torch::zeros_like(scores));
}

}  // namespace winnow::compression
