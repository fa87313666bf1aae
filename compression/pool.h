// pool: size-weighted average pooling of the patch grid in square windows.
#pragma once

#include <utility>

#include "compression/strategy.h"

namespace winnow::compression {

// The grid pool acts on: the state's own grid when set and consistent, else the options' grid
// when it has exactly the reducible tokens, else the square grid when their count is a square.
// Throws when none applies. Returns {rows, columns}.
std::pair<int64_t, int64_t> resolve_pool_grid(const TokenState& state,
                                              const StrategyOptions& options);

// The window side pool uses on an H × W grid: options.window when set, else the smallest side w
// with ceil(H/w)·ceil(W/w) <= keep_count (keep a quarter: w = 2, "2×2 pooling").
int64_t pool_window(int64_t grid_height, int64_t grid_width, int64_t keep_count,
                    const StrategyOptions& options);

// pool: the reducible tokens, a row-major H × W grid, are averaged in w × w windows (windows at
// the right and bottom edges may be partial and then average fewer tokens):
//   x' = Σ size·x / Σ size, size' = Σ size, pos' = min pos (top-left member), keep' = max keep,
// weighted by size so that pooling merged tokens is a true average of the original patches. The
// output is the pooled grid, row-major, after the protected tokens; the state's grid is updated so
// that pools chain. Scores are not used. The average-pooling baseline of arXiv 2505.19147 App. B.
class PoolStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "pool"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.uses_scores = false;
    traits.conserves_size = true;
    return traits;
  }
  // Resolves the grid from the options or as a square (a state's own grid is not known here).
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
