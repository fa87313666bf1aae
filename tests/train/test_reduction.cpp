// Token reduction inside the models: hooks at the block sites change the token counts and FLOPs
// as planned, keep-all is the dense model bitwise, route restores causal sequences, and training
// with a reduction method learns.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/flops.h"
#include "compression/planner.h"
#include "tests/train/tiny_models.h"
#include "train/gpt.h"
#include "train/plan_hooks.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

VitOptions vit_options() {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.patch = 2;  // 16 patches + CLS
  o.dim = 16;
  o.depth = 4;
  o.heads = 2;
  o.num_classes = 3;
  return o;
}

compression::ReductionConfig method(const std::string& criterion, const std::string& strategy,
                                    double keep) {
  compression::ReductionConfig c;
  c.criterion = criterion;
  c.strategy = strategy;
  c.keep = {keep};
  return c;
}

// The static planner of one [compress] method on a model of `depth` blocks of width 16.
compression::StaticPlanner planner_of(const compression::ReductionConfig& method, int64_t depth,
                                      int64_t grid = 0) {
  compression::StaticPlannerConfig config;
  config.stages.push_back({"compress", method});
  return compression::StaticPlanner(config, {depth, 16, grid, grid});
}

ModelOutput run(TransformerModel& model, const torch::Tensor& inputs,
                const compression::Planner* planner, bool training = true) {
  ForwardContext context;
  context.sample_ids = torch::arange(inputs.size(0), torch::kInt64);
  compression::Plan plan;
  std::unique_ptr<PlanHooks> hooks;
  if (planner) {
    plan = planner->plan(0, training);
    hooks = std::make_unique<PlanHooks>(plan, 0, context.sample_ids);
    context.hook_for = [&hooks](int64_t layer) { return (*hooks)(layer); };
  }
  return model.forward(inputs, context);
}

}  // namespace

TEST(Reduction, PruneHalvesTheReducibleTokensAtEachLayer) {
  torch::manual_seed(0);
  VisionTransformerImpl vit(vit_options());
  auto schedule = planner_of(method("random", "prune", 0.5), 4, 4);
  auto images = torch::randn({3, 1, 8, 8});
  auto dense = run(vit, images, nullptr);
  auto pruned = run(vit, images, &schedule);
  // Layer 0 dense (17 tokens), then 1 + ceil(16/2) = 9, 1 + 4 = 5, 1 + 2 = 3, per sample.
  EXPECT_EQ(pruned.tokens_per_layer, (std::vector<int64_t>{3 * 17, 3 * 9, 3 * 5, 3 * 3}));
  EXPECT_LT(pruned.forward_flops, dense.forward_flops);
  EXPECT_EQ(pruned.logits.sizes(), dense.logits.sizes());
}

TEST(Reduction, KeepAllIsTheDenseModelBitwise) {
  torch::manual_seed(1);
  VisionTransformerImpl vit(vit_options());
  auto images = torch::randn({2, 1, 8, 8});
  auto dense = run(vit, images, nullptr);
  for (const auto& [criterion, strategy] :
       std::vector<std::pair<std::string, std::string>>{{"random", "prune"},
                                                        {"cls_attention", "prune"},
                                                        {"similarity", "merge"},
                                                        {"norm", "route"}}) {
    auto schedule = planner_of(method(criterion, strategy, 1.0), 4, 4);
    auto out = run(vit, images, &schedule);
    EXPECT_TRUE(torch::equal(out.logits, dense.logits)) << criterion << "+" << strategy;
  }
}

TEST(Reduction, PostAttentionMergeCountsAttentionAndMlpTokensApart) {
  torch::manual_seed(2);
  VisionTransformerImpl vit(vit_options());
  auto c = method("similarity", "merge", 0.5);
  c.layers = {1};
  auto schedule = planner_of(c, 4, 4);
  auto out = run(vit, torch::randn({1, 1, 8, 8}), &schedule);
  // Block 1's attention sees 17 tokens and merges 8 of 16 away before its MLP; blocks 2-3 see 9.
  EXPECT_EQ(out.tokens_per_layer, (std::vector<int64_t>{17, 17, 9, 9}));
  const compression::BlockShape shape{16, 64};
  const double expected =
      compression::block_forward_flops(shape, 17, 17) +
      compression::attention_forward_flops(shape, 17, 17) +
      compression::mlp_forward_flops(shape, 9) + 2 * compression::block_forward_flops(shape, 9, 9) +
      compression::linear_forward_flops(16, 4, 16) + compression::linear_forward_flops(1, 16, 3);
  EXPECT_NEAR(out.forward_flops, expected, 1e-9 * expected);
}

TEST(Reduction, RouteRestoresTheCausalSequence) {
  torch::manual_seed(3);
  auto model = tiny::small_gpt(13, 10, 16, 4);
  GptImpl& gpt = *model;
  auto schedule = planner_of(method("random", "route", 0.5), 4);
  auto tokens = torch::randint(0, 13, {2, 10}, torch::kInt64);
  auto out = run(gpt, tokens, &schedule);
  EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({2, 10, 13}));
  EXPECT_EQ(out.tokens_per_layer,
            (std::vector<int64_t>{20, 10, 10, 20}));  // layers 1, 2 run on 5 of 10
  EXPECT_FALSE(torch::allclose(out.logits, run(gpt, tokens, nullptr).logits));
  // Still causal: the random choice does not look at token values, so changing the last token
  // changes no earlier position's logits.
  auto changed = tokens.clone();
  changed.select(1, 9).add_(1).remainder_(13);
  auto out_changed = run(gpt, changed, &schedule);
  EXPECT_TRUE(
      torch::allclose(out.logits.narrow(1, 0, 9), out_changed.logits.narrow(1, 0, 9), 1e-6, 1e-6));
}

TEST(Reduction, PruningACausalModelIsRejected) {
  auto model = tiny::small_gpt(13, 10, 16, 2);
  GptImpl& gpt = *model;
  auto schedule = planner_of(method("random", "prune", 0.5), 2);
  EXPECT_THROW(run(gpt, torch::zeros({1, 10}, torch::kInt64), &schedule), c10::Error);
}

TEST(Reduction, GradientsReachEveryParameterThroughPruning) {
  torch::manual_seed(4);
  VisionTransformerImpl vit(vit_options());
  {
    torch::NoGradGuard g;
    vit.head->weight.normal_(0.0, 0.5);
  }
  auto schedule = planner_of(method("cls_attention", "prune", 0.5), 4, 4);
  auto out = run(vit, torch::randn({2, 1, 8, 8}), &schedule);
  vit.loss_sum(out, torch::tensor({0, 2}, torch::kInt64)).backward();
  for (const auto& p : vit.named_parameters())
    EXPECT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
        << p.key();
}

TEST(Reduction, EvaluationUsesTheTargetKeepOrNone) {
  auto c = method("random", "prune", 0.5);
  c.warmup_steps = 100;  // training at step 0 is still dense
  auto schedule = planner_of(c, 4, 4);
  const auto ids = torch::zeros({1}, torch::kInt64);
  const auto training = schedule.plan(0, true), evaluation = schedule.plan(0, false);
  EXPECT_FALSE(PlanHooks(training, 0, ids).any());
  EXPECT_TRUE(PlanHooks(evaluation, 0, ids).any());
  auto route = planner_of(method("random", "route", 0.5), 4);
  const auto route_evaluation = route.plan(0, false);
  EXPECT_FALSE(PlanHooks(route_evaluation, 0, ids).any());
}
