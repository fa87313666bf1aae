// Executing plans inside the models: several methods in one model, layer gates (a static skip list
// is the model without those blocks; PLD's 1/p scaling), token-evolution statistics from the
// blocks, auxiliary losses and learned components' parameters in the optimizer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/flops.h"
#include "compression/planner.h"
#include "compression/token_evolution.h"
#include "compression/token_evolution_monitor.h"
#include "dist/communicator.h"
#include "tests/train/tiny_models.h"
#include "train/plan_hooks.h"
#include "train/trainer.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

// 8×8 images on 2×2 patches: a 4×4 grid, 16 patches + CLS = 17 tokens, width 16.
VitOptions vit_options(int64_t depth) {
  VitOptions o;
  o.image_height = o.image_width = 8;
  o.patch = 2;
  o.dim = 16;
  o.depth = depth;
  o.heads = 2;
  o.num_classes = 3;
  return o;
}

compression::StageConfig stage(const std::string& name, const std::string& criterion,
                               const std::string& strategy, std::vector<int64_t> layers,
                               double keep) {
  compression::StageConfig s;
  s.name = name;
  s.reduction.criterion = criterion;
  s.reduction.strategy = strategy;
  s.reduction.layers = std::move(layers);
  s.reduction.keep = {keep};
  return s;
}

ModelOutput run(TransformerModel& model, const torch::Tensor& inputs,
                const compression::Planner& planner, int64_t step = 0, bool training = true,
                compression::TokenEvolutionMonitor* monitor = nullptr) {
  ForwardContext context;
  context.step = step;
  context.sample_ids = torch::arange(inputs.size(0), torch::kInt64);
  const compression::Plan plan = planner.plan(step, training);
  PlanHooks hooks(plan, 0, context.sample_ids, monitor);
  context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  context.aux_losses = &hooks.aux_losses();
  return model.forward(inputs, context);
}

}  // namespace

// 2×2 pooling before block 1 (16 patches → 4) and ToMe merging after block 3's attention (4 → 2):
// hand-computed tokens and FLOPs per layer.
TEST(PlanExecution, TwoMethodsInOneModelGiveTheHandComputedTokensAndFlops) {
  torch::manual_seed(0);
  VisionTransformerImpl vit(vit_options(5));
  compression::StaticPlannerConfig config;
  config.stages.push_back(stage("pool", "uniform", "pool", {1}, 0.25));
  config.stages.push_back(stage("tome", "similarity", "merge", {3}, 0.5));
  compression::StaticPlanner planner(config, {5, 16, 4, 4});
  const int64_t batch = 2;
  auto out = run(vit, torch::randn({batch, 1, 8, 8}), planner);
  // Attention tokens per layer: 17, then 1 + 4 from block 1 on; block 3's MLP sees 1 + 2.
  EXPECT_EQ(out.tokens_per_layer,
            (std::vector<int64_t>{batch * 17, batch * 5, batch * 5, batch * 5, batch * 3}));
  const compression::BlockShape shape{16, 64};
  const double per_sample =
      compression::block_forward_flops(shape, 17, 17) +
      2 * compression::block_forward_flops(shape, 5, 5) +
      compression::attention_forward_flops(shape, 5, 5) + compression::mlp_forward_flops(shape, 3) +
      compression::block_forward_flops(shape, 3, 3) + compression::linear_forward_flops(16, 4, 16) +
      compression::linear_forward_flops(1, 16, 3);
  EXPECT_NEAR(out.forward_flops, batch * per_sample, 1e-9 * batch * per_sample);
}

// A static skip list gives the logits of the model with those blocks removed, and its FLOPs.
TEST(PlanExecution, SkipListIsTheModelWithoutThoseBlocks) {
  torch::manual_seed(1);
  VisionTransformerImpl full(vit_options(4));
  VisionTransformerImpl shallow(vit_options(2));
  {
    torch::NoGradGuard no_grad;
    full.head->weight.normal_(0.0, 0.5);  // a zero head would make every logit equal
    const auto source = full.named_parameters();
    for (auto& item : shallow.named_parameters()) {
      std::string name = item.key();
      if (name.rfind("blocks.1.", 0) == 0) name = "blocks.3." + name.substr(9);
      item.value().copy_(source[name]);
    }
  }
  compression::StaticPlannerConfig config;
  config.gate.kind = "skip";
  config.gate.layers = {1, 2};
  compression::StaticPlanner planner(config, {4, 16, 4, 4});
  const auto images = torch::randn({3, 1, 8, 8});
  const auto gated = run(full, images, planner);
  ForwardContext dense;
  dense.sample_ids = torch::arange(3, torch::kInt64);
  const auto removed = shallow.forward(images, dense);
  EXPECT_TRUE(torch::allclose(gated.logits, removed.logits, 1e-6, 1e-6));
  EXPECT_FALSE(torch::allclose(gated.logits, full.forward(images, dense).logits, 1e-4, 1e-4));
  EXPECT_EQ(gated.tokens_per_layer, (std::vector<int64_t>{3 * 17, 0, 0, 3 * 17}));
  EXPECT_NEAR(gated.forward_flops, removed.forward_flops, 1e-9 * removed.forward_flops);
  // Evaluation keeps the removed layers removed (gate.eval = auto).
  EXPECT_TRUE(
      torch::allclose(run(full, images, planner, 0, false).logits, removed.logits, 1e-6, 1e-6));
}

// A kept stochastic layer's residual updates are scaled by 1/p (PLD): with the attention's output
// projection zeroed, the block is y = x + s·mlp(norm2(x)).
TEST(PlanExecution, StochasticGateScalesTheUpdateByOneOverP) {
  torch::manual_seed(2);
  Block block(BlockOptions(16, 2));
  {
    torch::NoGradGuard no_grad;
    block->attn->proj->weight.zero_();
    block->attn->proj->bias.zero_();
  }
  compression::LayerPlan layer;
  layer.gate.mode = compression::LayerGate::Mode::kStochastic;
  layer.gate.keep_probability = 0.999999;  // runs at any key; scale 1/p
  layer.gate.scale_update = true;
  compression::Plan plan;
  plan.layers = {layer};
  PlanHooks hooks(plan, 0, torch::zeros({2}, torch::kInt64));
  ASSERT_TRUE(hooks.layers_run()[0]);
  compression::TokenState state;
  state.x = torch::randn({2, 5, 16});
  const auto x = state.x.clone();
  block->forward(state, hooks(0));
  const auto expected = x + block->mlp->forward(block->norm2->forward(x)) / 0.999999;
  EXPECT_TRUE(torch::allclose(state.x, expected, 1e-6, 1e-6));
  // p = 0: never runs, the state is untouched and no token is counted.
  plan.layers[0].gate.keep_probability = 0.0;
  PlanHooks never(plan, 0, torch::zeros({2}, torch::kInt64));
  EXPECT_FALSE(never.layers_run()[0]);
  compression::TokenState untouched;
  untouched.x = x.clone();
  EXPECT_EQ(block->forward(untouched, never(0)).attention, 0);
  EXPECT_TRUE(torch::equal(untouched.x, x));
}

// The statistics a block reports are block_evolution_sums of its own input and output; after a
// merge inside the block, each output token is compared with its own input token.
TEST(PlanExecution, StatisticsAreTheBlocksInputAgainstItsOutput) {
  torch::manual_seed(3);
  Block block(BlockOptions(16, 2));
  compression::TokenEvolutionMonitor monitor(1);
  compression::Plan plan;
  plan.layers.resize(1);
  plan.statistics = true;
  compression::TokenState state;
  state.x = torch::randn({2, 9, 16});
  state.protected_count = 1;
  const auto x = state.x.clone();
  {
    PlanHooks hooks(plan, 0, torch::zeros({2}, torch::kInt64), &monitor);
    block->forward(state, hooks(0));
  }
  const auto expected = compression::block_evolution_sums(x, state.x, torch::Tensor(), 1);
  EXPECT_TRUE(torch::allclose(monitor.step_sums()[0], expected, 1e-9, 1e-12));

  // Merge 4 of 8 after attention: compare with the merged state's own positions.
  compression::TokenEvolutionMonitor merged_monitor(1);
  auto merge = stage("m", "similarity", "merge", {0}, 0.5);
  merge.reduction.keep_order = true;
  compression::StaticPlannerConfig config;
  config.stages.push_back(merge);
  config.statistics = true;
  compression::StaticPlanner planner(config, {1, 16, 0, 0});
  const auto merge_plan = planner.plan(0, true);
  compression::TokenState merged;
  merged.x = x.clone();
  merged.protected_count = 1;
  PlanHooks hooks(merge_plan, 0, torch::zeros({2}, torch::kInt64), &merged_monitor);
  block->forward(merged, hooks(0));
  ASSERT_EQ(merged.tokens(), 5);
  const auto own_inputs = x.gather(1, merged.pos.unsqueeze(-1).expand({-1, -1, 16}));
  const auto expected_merged =
      compression::block_evolution_sums(own_inputs, merged.x, merged.keep, 1);
  EXPECT_TRUE(torch::allclose(merged_monitor.step_sums()[0], expected_merged, 1e-9, 1e-12));
}

// A learned scorer's z-loss is in ModelOutput::aux_losses, on the graph: its gradient reaches the
// scorer's parameters.
TEST(PlanExecution, AuxiliaryLossesReachTheGradients) {
  torch::manual_seed(4);
  auto vit = std::make_shared<VisionTransformerImpl>(vit_options(3));
  compression::StaticPlannerConfig config;
  config.stages.push_back(stage("router", "linear", "mask", {1}, 0.5));
  config.stages.back().reduction.straight_through = true;
  compression::StaticPlanner planner(config, {3, 16, 4, 4});
  vit->attach_compression(planner.parameters());
  auto out = run(*vit, torch::randn({2, 1, 8, 8}), planner);
  ASSERT_EQ(out.aux_losses.count("score_z"), 1u);
  const auto& aux = out.aux_losses.at("score_z");
  EXPECT_DOUBLE_EQ(aux.weight, 1e-3);
  EXPECT_GT(aux.sum.item<double>(), 0.0);
  aux.sum.backward();
  const auto weight = vit->named_parameters()["compress.router.1.score.weight"];
  ASSERT_TRUE(weight.grad().defined());
  EXPECT_GT(weight.grad().abs().sum().item<double>(), 0.0);
  // No auxiliary loss in evaluation.
  EXPECT_TRUE(run(*vit, torch::randn({2, 1, 8, 8}), planner, 0, false).aux_losses.empty());
}

// train.freeze=backbone: backbone parameters have no optimizer state and do not move; the
// scorer's do, in their own groups with optim.compress_lr_scale.
TEST(PlanExecution, FrozenBackboneTrainsOnlyTheComponents) {
  torch::manual_seed(5);
  auto options = vit_options(3);
  options.num_classes = 4;  // tiny::images' classes
  auto vit = std::make_shared<VisionTransformerImpl>(options);
  compression::StaticPlannerConfig config;
  config.stages.push_back(stage("router", "linear", "mask", {1}, 0.5));
  config.stages.back().reduction.straight_through = true;
  auto planner =
      std::make_shared<compression::StaticPlanner>(config, compression::ModelShape{3, 16, 4, 4});
  vit->attach_compression(planner->parameters());
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : vit->named_parameters()) before[item.key()] = item.value().clone();
  OptimizerOptions optimizer;
  optimizer.freeze = "backbone";
  optimizer.compress_lr_scale = 4.0;
  Trainer trainer(vit, tiny::images(64), nullptr, dist::make_communicator("local"),
                  tiny::quick_options(3, 16, 1, 1), optimizer);
  trainer.set_planner(planner);
  trainer.run();
  auto& groups = trainer.optimizer().param_groups();
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_TRUE(groups[0].params().empty() && groups[1].params().empty());
  EXPECT_DOUBLE_EQ(groups[2].options().get_lr(), 4.0 * groups[0].options().get_lr());
  for (const auto& item : vit->named_parameters()) {
    const bool component = TransformerModel::is_compression_parameter(item.key());
    const bool moved = !torch::equal(item.value(), before[item.key()]);
    if (component && item.key().find("score.weight") != std::string::npos) {
      EXPECT_TRUE(moved) << item.key();
    }
    if (!component) {
      EXPECT_FALSE(moved) << item.key();
      EXPECT_FALSE(item.value().requires_grad()) << item.key();
    }
  }
  EXPECT_EQ(trainer.optimizer().state().size(), 4u);  // the scorer's four tensors only
}

// train.unfreeze_at: the backbone joins the optimizer at that step, at optim.backbone_lr_scale,
// and the scorer's moments carry over (their AdamW step count runs from step 0).
TEST(PlanExecution, BackboneUnfreezesAtTheConfiguredStep) {
  torch::manual_seed(6);
  auto options = vit_options(3);
  options.num_classes = 4;
  auto vit = std::make_shared<VisionTransformerImpl>(options);
  compression::StaticPlannerConfig config;
  config.stages.push_back(stage("router", "linear", "mask", {1}, 0.5));
  config.stages.back().reduction.straight_through = true;
  auto planner =
      std::make_shared<compression::StaticPlanner>(config, compression::ModelShape{3, 16, 4, 4});
  vit->attach_compression(planner->parameters());
  OptimizerOptions optimizer;
  optimizer.freeze = "backbone";
  optimizer.unfreeze_at = 3;
  optimizer.backbone_lr_scale = 0.25;
  Trainer trainer(vit, tiny::images(64), nullptr, dist::make_communicator("local"),
                  tiny::quick_options(5, 16, 1, 1), optimizer);
  trainer.set_planner(planner);
  const auto batch = [](int64_t step) {
    data::Batch b;
    b.inputs = torch::randn({16, 1, 8, 8});
    b.targets = torch::randint(0, 4, {16}, torch::kInt64);
    b.sample_ids = torch::arange(16 * step, 16 * (step + 1), torch::kInt64);
    b.global_position = 16 * step;
    b.global_batch_size = 16;
    return b;
  };
  for (int64_t step = 0; step < 3; ++step) trainer.train_step(batch(step), step);
  EXPECT_TRUE(trainer.optimizer().param_groups()[0].params().empty());
  const auto frozen = vit->named_parameters()["blocks.0.mlp.fc1.weight"].clone();
  for (int64_t step = 3; step < 5; ++step) trainer.train_step(batch(step), step);
  auto& groups = trainer.optimizer().param_groups();
  ASSERT_EQ(groups.size(), 4u);
  EXPECT_FALSE(groups[0].params().empty());
  EXPECT_DOUBLE_EQ(groups[0].options().get_lr(), 0.25 * groups[2].options().get_lr());
  const auto backbone = vit->named_parameters()["blocks.0.mlp.fc1.weight"];
  EXPECT_TRUE(backbone.requires_grad());
  EXPECT_FALSE(torch::equal(backbone, frozen));
  const auto step_count = [&](const torch::Tensor& p) {
    const auto& state = trainer.optimizer().state().at(optimizer_state_key(p));
    return static_cast<const torch::optim::AdamWParamState&>(*state).step();
  };
  EXPECT_EQ(step_count(backbone), 2);
  EXPECT_EQ(step_count(vit->named_parameters()["compress.router.1.score.weight"]), 5);
}
