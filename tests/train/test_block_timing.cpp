// Block timing for the co-scheduler's wall-clock cost model: a real measurement of a tiny ViT's
// blocks, handed to the co-scheduler.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/co_scheduler.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/block_timing.h"

namespace winnow::train {
namespace {

// No assertion compares times: on a shared machine interference reorders them (a timing claim
// belongs in a benchmark; docs/results.md has the measured table).
TEST(BlockTiming, EveryLayerAndCountIsTimedAndAPrunedLayerCostsNothing) {
  auto comm = dist::make_communicator("local");
  auto model = tiny::small_vit(3, 64);  // 16 patches + CLS
  compression::CoSchedulerConfig config;
  config.mode = "joint";
  config.cost = "time";
  config.budget.warmup_steps = 1;
  config.allocator.grid = 4;
  config.allocator.min_protected_level = 2;
  compression::ModelShape shape{3, 64, 4, 4};
  shape.mlp_hidden = 256;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  compression::CoScheduler planner(config, shape);
  BlockTimingOptions options;
  options.batch = 32;
  options.token_counts = planner.timing_token_counts();  // 2, 5, 9, 13, 17
  ASSERT_EQ(options.token_counts.size(), 5u);
  for (const auto& p : model->parameters()) ASSERT_FALSE(p.grad().defined());
  const auto table = measure_block_times(*model, options, *comm);
  for (const auto& p : model->parameters()) EXPECT_FALSE(p.grad().defined());  // left as found
  EXPECT_TRUE(model->is_training());
  ASSERT_EQ(table.depth(), 3);
  EXPECT_EQ(table.token_counts(), options.token_counts);
  for (int64_t l = 0; l < 3; ++l) {
    for (int64_t n : table.token_counts()) {
      EXPECT_GT(table.attention(l, n), 0.0) << "layer " << l << ", " << n << " tokens";
      EXPECT_GT(table.mlp(l, n), 0.0) << "layer " << l << ", " << n << " tokens";
    }
    EXPECT_EQ(table.attention(l, 0) + table.mlp(l, 0), 0.0);
  }
  planner.set_timing(table);
  EXPECT_EQ(planner.block_cost({0, 0, 0}), 0.0);
  EXPECT_LT(planner.block_cost({4, 4, 0}), planner.dense_block_cost());
  EXPECT_LT(planner.block_cost({4, 2, 2}), planner.dense_block_cost());
}

}  // namespace
}  // namespace winnow::train
