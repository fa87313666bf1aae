// Spatial average pooling of the patch grid.
#include "compression/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace winnow::compression {
namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

std::pair<int64_t, int64_t> grid_for(int64_t reducible, int64_t state_height, int64_t state_width,
                                     const StrategyOptions& options) {
  if (state_height > 0 && state_width > 0 && state_height * state_width == reducible) {
    return {state_height, state_width};
  }
  if (options.grid_height() > 0 && options.grid_width() > 0 &&
      options.grid_height() * options.grid_width() == reducible) {
    return {options.grid_height(), options.grid_width()};
  }
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(reducible))));
  TORCH_CHECK(reducible > 0 && side * side == reducible,
              "pool: expected the reducible tokens to form a patch grid (state grid, options "
              "grid_height x grid_width = ",
              options.grid_height(), " x ", options.grid_width(), ", or a square), got ", reducible,
              " tokens");
  return {side, side};
}

// Sums t [B, H, W, F] over w × w windows (zero padding at the far edges): [B, H'·W', F].
torch::Tensor window_sum(const torch::Tensor& t, int64_t window) {
  const int64_t batch = t.size(0), height = t.size(1), width = t.size(2), features = t.size(3);
  const int64_t rows = ceil_div(height, window), cols = ceil_div(width, window);
  const auto padded =
      torch::constant_pad_nd(t, {0, 0, 0, cols * window - width, 0, rows * window - height}, 0);
  return padded.view({batch, rows, window, cols, window, features})
      .sum({2, 4})
      .view({batch, rows * cols, features});
}

// Window-wise reduction of an integer/float map m [B, H, W] with amin or amax: [B, H'·W'].
torch::Tensor window_extreme(const torch::Tensor& m, int64_t window, bool minimum,
                             const c10::Scalar& pad) {
  const int64_t batch = m.size(0), height = m.size(1), width = m.size(2);
  const int64_t rows = ceil_div(height, window), cols = ceil_div(width, window);
  const auto padded =
      torch::constant_pad_nd(m, {0, cols * window - width, 0, rows * window - height}, pad);
  const auto blocks = padded.view({batch, rows, window, cols, window});
  const auto reduced = minimum ? blocks.amin({2, 4}) : blocks.amax({2, 4});
  return reduced.reshape({batch, rows * cols});
}

}  // namespace

std::pair<int64_t, int64_t> resolve_pool_grid(const TokenState& state,
                                              const StrategyOptions& options) {
  return grid_for(state.reducible(), state.grid_height, state.grid_width, options);
}

int64_t pool_window(int64_t grid_height, int64_t grid_width, int64_t keep_count,
                    const StrategyOptions& options) {
  if (options.window() > 0) return options.window();
  const int64_t largest = std::max(grid_height, grid_width);
  for (int64_t window = 1; window < largest; ++window) {
    if (ceil_div(grid_height, window) * ceil_div(grid_width, window) <= keep_count) return window;
  }
  return largest;
}

int64_t PoolStrategy::output_tokens(int64_t tokens, int64_t protected_count,
                                    int64_t keep_count) const {
  const int64_t reducible = tokens - protected_count;
  if (keep_count >= reducible) return tokens;
  const auto grid = grid_for(reducible, 0, 0, options_);
  const int64_t height = grid.first, width = grid.second;
  const int64_t window = pool_window(height, width, keep_count, options_);
  return protected_count + ceil_div(height, window) * ceil_div(width, window);
}

TokenState PoolStrategy::reduce(const TokenState& state, const torch::Tensor& /*scores*/,
                                int64_t keep_count, const torch::Tensor& /*metric*/) const {
  const auto grid = resolve_pool_grid(state, options_);
  const int64_t height = grid.first, width = grid.second;
  const int64_t window = pool_window(height, width, keep_count, options_);
  const int64_t batch = state.batch(), protect = state.protected_count, channels = state.width();
  const auto grid_of = [&](const torch::Tensor& t) {  // reducible rows of [B, N, ...] as a grid
    std::vector<int64_t> shape{batch, height, width};
    for (int64_t d = 2; d < t.dim(); ++d) shape.push_back(t.size(d));
    return t.slice(1, protect).reshape(shape);
  };

  const auto size = state.size.defined()
                        ? state.size
                        : torch::ones({batch, state.tokens(), 1}, state.x.options());
  const auto sums = window_sum(grid_of(torch::cat({state.x * size, size}, -1)), window);
  TokenState out;
  const auto pooled_size = sums.slice(-1, channels);
  out.x = torch::cat({state.x.slice(1, 0, protect), sums.slice(-1, 0, channels) / pooled_size}, 1);
  out.size = torch::cat({size.slice(1, 0, protect), pooled_size}, 1);
  const auto pos = state.positions();
  out.pos = torch::cat(
      {pos.slice(1, 0, protect),
       window_extreme(grid_of(pos), window, /*minimum=*/true, std::numeric_limits<int64_t>::max())},
      1);
  if (state.keep.defined()) {
    out.keep = torch::cat({state.keep.slice(1, 0, protect),
                           window_extreme(grid_of(state.keep), window, /*minimum=*/false, 0.0)},
                          1);
  }
  out.protected_count = protect;
  out.policy_attention = state.policy_attention;
  out.grid_height = ceil_div(height, window);
  out.grid_width = ceil_div(width, window);
  return out;
}

}  // namespace winnow::compression
