// Physical layer removal (winnow prune): the smaller model computes what the gated model computed,
// learned per-layer components follow their blocks, and ShortGPT's calibration influence finds a
// block that does nothing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/co_scheduler.h"
#include "tests/train/tiny_models.h"
#include "train/layer_removal.h"
#include "train/plan_hooks.h"

namespace winnow::train {
namespace {

compression::ModelShape shape_of(int64_t depth) {
  compression::ModelShape shape{depth, 32, 4, 4};
  shape.mlp_hidden = 128;
  shape.tokens = 17;
  shape.protected_tokens = 1;
  return shape;
}

// A co-scheduler that starts (and, with no step, stays) at `capacities` on a grid of halves.
std::shared_ptr<compression::CoScheduler> structure(const std::vector<double>& capacities,
                                                    const std::string& execution) {
  compression::CoSchedulerConfig c;
  c.mode = "joint";
  c.budget.warmup_steps = 1;
  c.allocator.grid = 2;
  c.allocator.min_protected_level = 1;
  c.execution = execution;
  c.capacities = capacities;
  return std::make_shared<compression::CoScheduler>(
      c, shape_of(static_cast<int64_t>(capacities.size())));
}

// Fresh blocks barely change their tokens (small output projections at init) and the head starts
// at zero; give the blocks and the head sizeable random values so that each block shows in the
// logits.
void make_blocks_matter(TransformerModel& model) {
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters())
    if (item.key().rfind("blocks.", 0) == 0 || item.key().rfind("head.", 0) == 0)
      item.value().normal_(0.0, 0.3);
}

torch::Tensor logits_of(TransformerModel& model, const compression::Planner& planner,
                        const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  model.eval();
  const auto plan = planner.plan(0, /*training=*/false);
  ForwardContext context;
  context.sample_ids = torch::arange(images.size(0));
  PlanHooks hooks(plan, 0, context.sample_ids);
  if (hooks.any()) context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  return model.forward(images, context).logits;  // [B, classes]
}

void expect_same_logits_after_removal(const std::string& execution) {
  torch::manual_seed(3);
  auto gated = tiny::small_vit(4);
  make_blocks_matter(*gated);
  auto gated_structure = structure({1.0, 0.0, 0.5, 1.0}, execution);
  gated->attach_compression(gated_structure->parameters());
  auto smaller = tiny::small_vit(3);
  auto smaller_structure = structure({1.0, 0.5, 1.0}, execution);
  smaller->attach_compression(smaller_structure->parameters());
  copy_kept_blocks(*gated, *smaller, {0, 2, 3});
  const auto images = torch::randn({6, 1, 8, 8});
  const auto a = logits_of(*gated, *gated_structure, images);
  const auto b = logits_of(*smaller, *smaller_structure, images);
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-6)) << (a - b).abs().max().item<double>();
  // And the removal mattered: the dense 4-block model computes something else.
  const auto dense = logits_of(*gated, *structure({1.0, 1.0, 1.0, 1.0}, execution), images);
  EXPECT_FALSE(torch::allclose(a, dense, 1e-4, 1e-4));
}

TEST(LayerRemoval, SmallerModelGivesTheGatedModelsLogitsInDropMode) {
  expect_same_logits_after_removal("drop");  // cls_attention + prune, cumulative
}

TEST(LayerRemoval, SmallerModelGivesTheGatedModelsLogitsInSkipMode) {
  expect_same_logits_after_removal("skip");  // norm + route: tokens come back after the block
}

// A learned stage's parameters are per layer (compress.<stage>.<layer>.*): they follow their block.
TEST(LayerRemoval, LearnedComponentsFollowTheirBlocks) {
  auto planner_for = [](int64_t depth, std::vector<int64_t> layers) {
    compression::StaticPlannerConfig config;
    config.stages.push_back({"scorer", {}});
    auto& c = config.stages.back().reduction;
    c.criterion = "linear";
    c.strategy = "mask";
    c.straight_through = true;
    c.layers = std::move(layers);
    return std::make_shared<compression::StaticPlanner>(config, shape_of(depth));
  };
  auto source = tiny::small_vit(4);
  source->attach_compression(planner_for(4, {1, 2, 3})->parameters());
  auto target = tiny::small_vit(3);
  target->attach_compression(planner_for(3, {1, 2})->parameters());
  copy_kept_blocks(*source, *target, {0, 2, 3});
  const auto from = source->named_parameters(), to = target->named_parameters();
  ASSERT_NE(to.find("compress.scorer.1.score.weight"), nullptr);
  EXPECT_TRUE(
      torch::equal(to["compress.scorer.1.score.weight"], from["compress.scorer.2.score.weight"]));
  EXPECT_TRUE(
      torch::equal(to["compress.scorer.2.score.bias"], from["compress.scorer.3.score.bias"]));
  EXPECT_TRUE(torch::equal(to["blocks.2.mlp.fc2.weight"], from["blocks.3.mlp.fc2.weight"]));
}

TEST(LayerRemoval, MismatchedModelsAreRejectedWithTheNames) {
  auto source = tiny::small_vit(3);
  auto wider = tiny::small_vit(2, /*dim=*/64);
  try {
    copy_kept_blocks(*source, *wider, {0, 2});
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.msg()).find("shapes differ"), std::string::npos) << e.msg();
  }
  auto two = tiny::small_vit(2);
  EXPECT_THROW(copy_kept_blocks(*source, *two, {2, 0}), c10::Error);
  EXPECT_THROW(copy_kept_blocks(*source, *two, {0, 3}), c10::Error);
}

TEST(LayerRemoval, ShortGptFindsTheBlockThatDoesNothing) {
  torch::manual_seed(5);
  auto model = tiny::small_vit(4);
  make_blocks_matter(*model);
  {
    // Block 2 adds nothing to the residual stream: its output projections are zero.
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      const std::string& name = item.key();
      if (name.rfind("blocks.2.", 0) == 0 &&
          (name.find("proj") != std::string::npos || name.find("fc2") != std::string::npos))
        item.value().zero_();
    }
  }
  const auto data = tiny::images(64);
  const auto influence = calibration_block_influence(*model, *data, 40, 16, 0);
  ASSERT_EQ(influence.size(), 4u);
  EXPECT_NEAR(influence[2], 0.0, 1e-6);
  for (int64_t l : {0, 1, 3}) EXPECT_GT(influence[static_cast<size_t>(l)], 1e-3) << l;
  EXPECT_EQ(lowest_influence_layers(influence, 1), (std::vector<int64_t>{2}));
  EXPECT_EQ(lowest_influence_layers({0.3, 0.1, 0.2, 0.4}, 2), (std::vector<int64_t>{1, 2}));
  EXPECT_THROW(lowest_influence_layers(influence, 4), c10::Error);
}

}  // namespace
}  // namespace winnow::train
