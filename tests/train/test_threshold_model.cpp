// Learned thresholds (LTMP) in a model: live-token FLOPs, the FLOPs regulariser by hand, θ's
// gradients from the task and the FLOPs loss, padded batched inference equal to batch 1, and the
// thresholds' optimizer group.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <tuple>

#include "compression/flops.h"
#include "compression/planner.h"
#include "tests/train/tiny_models.h"
#include "train/flops_regularizer.h"
#include "train/optimizer.h"
#include "train/plan_hooks.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;

namespace {

constexpr int64_t kWidth = 32, kDepth = 3, kTokens = 17;

// Two threshold stages on a 3-block ViT: the token norm before block 1, the attention received
// after block 2's attention (LTMP's criterion, which then reads a padded batch in evaluation).
struct ThresholdModel {
  std::shared_ptr<VisionTransformerImpl> vit;
  std::shared_ptr<compression::StaticPlanner> planner;
  torch::Tensor norm_theta, received_theta;  // [] each
};

ThresholdModel threshold_model(double temperature = 0.5) {
  compression::StaticPlannerConfig config;
  for (const auto& [name, base, layer] :
       {std::tuple<std::string, std::string, int64_t>{"by_norm", "norm", 1},
        {"by_received", "attention_received", 2}}) {
    config.stages.push_back({name, {}});
    auto& c = config.stages.back().reduction;
    c.criterion = "threshold";
    c.strategy = "policy";
    c.threshold_base = base;
    c.layers = {layer};
    c.temperature = temperature;
  }
  torch::manual_seed(4);
  ThresholdModel m;
  m.vit = tiny::small_vit(kDepth, kWidth);
  m.planner = std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{kDepth, kWidth, 4, 4});
  m.vit->attach_compression(m.planner->parameters());
  m.vit->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    // A head that reads the CLS, so that the task loss depends on the tokens it attends to.
    m.vit->head->weight.normal_(0.0, 0.5);
  }
  const auto names = m.vit->named_parameters();
  m.norm_theta = names["compress.by_norm.1.threshold"];
  m.received_theta = names["compress.by_received.2.threshold"];
  return m;
}

torch::Tensor images(int64_t batch) {
  const auto set = tiny::images(batch, /*seed=*/3);
  std::vector<int64_t> ids(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) ids[static_cast<size_t>(i)] = i;
  return set->fetch(ids).inputs.to(torch::kFloat64);
}

// Thresholds that split the tokens: θ of the norm stage at the median norm of block 1's input
// over the batch, θ of the received stage at the uniform share 1/17.
void place_thresholds(ThresholdModel& m, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  compression::TokenState state;
  const auto patches = m.vit->patch_embed->forward(images);
  state.x = torch::cat({m.vit->cls_token.expand({images.size(0), 1, kWidth}), patches}, 1) +
            m.vit->pos_embed;
  state.protected_count = 1;
  m.vit->blocks[0]->as<BlockImpl>()->forward(state);
  m.norm_theta.fill_(state.x.slice(1, 1).norm(2, -1).median().item<double>());
  m.received_theta.fill_(1.0 / kTokens);
}

ModelOutput run(ThresholdModel& m, const torch::Tensor& images, bool training) {
  const auto plan = m.planner->plan(0, training);
  const auto ids = torch::arange(images.size(0), torch::kInt64);
  PlanHooks hooks(plan, 0, ids);
  ForwardContext context;
  context.sample_ids = ids;
  context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  context.aux_losses = &hooks.aux_losses();
  return m.vit->forward(images, context);
}

}  // namespace

// Each block is charged a·n + b·n² (attention over its live tokens) + m·n (MLP) per sample, with
// the coefficients of compression/flops.h; blocks without keep count every token.
TEST(LiveBlockFlops, AttentionQuadraticAndMlpLinearInTheLiveTokensBySample) {
  const BlockOptions block(8, 2);
  const compression::BlockShape shape{8, block.mlp_hidden()};
  LayerAccounting accounting(block, 3);
  BlockTokens dense;
  dense.attention = dense.mlp = 2 * 5;
  accounting.record(dense, 2);  // no keep: 5 tokens each
  BlockTokens masked;
  masked.attention = masked.mlp = 2 * 5;
  masked.attention_live = torch::tensor({3.0, 5.0});
  masked.mlp_live = torch::tensor({2.0, 4.0});
  accounting.record(masked, 2);
  accounting.record(BlockTokens{}, 2);  // gated off
  ModelOutput output;
  accounting.finish(output);
  ASSERT_TRUE(output.live_block_flops.defined());
  const double base = compression::block_forward_flops(shape, 5, 5);
  const double expected[] = {base + compression::attention_forward_flops(shape, 3, 3) +
                                 compression::mlp_forward_flops(shape, 2),
                             base + compression::attention_forward_flops(shape, 5, 5) +
                                 compression::mlp_forward_flops(shape, 4)};
  for (int64_t b = 0; b < 2; ++b)
    EXPECT_NEAR(output.live_block_flops[b].item<double>(), expected[b], 1e-9 * expected[b]);
  // What ran is charged in full: masked tokens are computed.
  EXPECT_NEAR(output.forward_flops, 2 * 2 * base, 1e-9 * base);
}

TEST(FlopsRegularizer, LossAndRatioByHand) {
  ModelOutput output;
  output.logits = torch::zeros({3, 2}, torch::kFloat64);
  output.live_block_flops = torch::tensor({50.0, 80.0, 100.0}, torch::kFloat64);
  FlopsRegularizerOptions options;
  options.target = 0.6;
  options.weight = 10.0;
  FlopsRegularizer regularizer(options, 100.0);
  compression::AuxLosses losses;
  compression::AuxMetrics metrics;
  regularizer.add(output, &losses, &metrics);
  ASSERT_TRUE(losses.count("flops"));
  // (0.5 − 0.6)² + (0.8 − 0.6)² + (1 − 0.6)² = 0.01 + 0.04 + 0.16
  EXPECT_NEAR(losses["flops"].sum.item<double>(), 0.21, 1e-12);
  EXPECT_DOUBLE_EQ(losses["flops"].weight, 10.0);
  EXPECT_NEAR(metrics["flops_ratio"].sum, 2.3, 1e-12);
  EXPECT_DOUBLE_EQ(metrics["flops_ratio"].count, 3.0);
  // Off: the ratio is still reported, no loss.
  compression::AuxLosses none;
  FlopsRegularizer({}, 100.0).add(output, &none, nullptr);
  EXPECT_TRUE(none.empty());
  FlopsRegularizerOptions bad;
  bad.target = 1.5;
  EXPECT_THROW(FlopsRegularizer(bad, 100.0), c10::Error);
}

// θ of the norm stage steers the keep policy that blocks 1 and 2 attend with, so the task loss
// reaches it through the straight-through σ; the FLOPs loss reaches both thresholds, and above
// the target its gradient raises them (drops tokens).
TEST(ThresholdModel, ThetaGetsGradientsFromTheTaskAndTheFlopsLoss) {
  auto m = threshold_model();
  const auto x = images(8);
  place_thresholds(m, x);
  m.vit->train();
  auto output = run(m, x, /*training=*/true);
  // Hard decisions forward: fewer live tokens than the dense 3 × 17 per sample.
  const double dense = m.vit->dense_block_flops_per_sample();
  EXPECT_LT(output.live_block_flops.max().item<double>(), dense);
  const auto task = m.vit->loss_sum(output, torch::arange(8, torch::kInt64) % 4);
  task.backward(/*gradient=*/{}, /*retain_graph=*/true);
  ASSERT_TRUE(m.norm_theta.grad().defined());
  EXPECT_GT(std::abs(m.norm_theta.grad().item<double>()), 1e-8);

  m.vit->zero_grad();
  FlopsRegularizerOptions options;
  options.target = 0.1;
  compression::AuxLosses losses;
  FlopsRegularizer(options, dense).add(output, &losses, nullptr);
  losses.at("flops").sum.backward();
  ASSERT_TRUE(m.norm_theta.grad().defined() && m.received_theta.grad().defined());
  EXPECT_LT(m.norm_theta.grad().item<double>(), 0.0);  // descent raises θ: fewer FLOPs
  EXPECT_LT(m.received_theta.grad().item<double>(), 0.0);
  // The head is not on the FLOPs loss's path (the scores are computed before it).
  EXPECT_TRUE(!m.vit->head->weight.grad().defined() ||
              m.vit->head->weight.grad().abs().max().item<double>() == 0.0);
}

// Inference removes each sample's tokens below θ; a batch whose samples keep different counts
// runs padded to its longest sample, and every sample's logits and live FLOPs equal those of
// the sample run alone (batch 1, no padding).
TEST(ThresholdModel, PaddedBatchEqualsEachSampleAlone) {
  auto m = threshold_model();
  const int64_t batch = 6;
  const auto x = images(batch);
  place_thresholds(m, x);
  m.vit->eval();
  torch::NoGradGuard no_grad;
  const auto together = run(m, x, /*training=*/false);
  std::set<int64_t> counts;
  for (int64_t b = 0; b < batch; ++b) {
    const auto alone = run(m, x.slice(0, b, b + 1), /*training=*/false);
    counts.insert(alone.tokens_per_layer[1]);
    EXPECT_TRUE(torch::allclose(alone.logits, together.logits.slice(0, b, b + 1), 1e-10, 1e-12))
        << "sample " << b;
    EXPECT_NEAR(alone.live_block_flops[0].item<double>(),
                together.live_block_flops[b].item<double>(), 1e-6);
    // Alone nothing is padded: the live FLOPs are the blocks' share of what ran.
    const double head_and_embedding =
        m.vit->dense_forward_flops_per_sample() - m.vit->dense_block_flops_per_sample();
    EXPECT_NEAR(alone.live_block_flops[0].item<double>(), alone.forward_flops - head_and_embedding,
                1e-6 * alone.forward_flops);
  }
  // The samples really kept different counts (else the test says nothing about padding).
  EXPECT_GT(counts.size(), 1u);
  EXPECT_LT(together.tokens_per_layer[1], batch * kTokens);
}

// Thresholds train in their own group, at optim.threshold_lr on the same schedule, without
// weight decay; the rest of the model keeps its groups.
TEST(ThresholdModel, ThresholdsHaveTheirOwnOptimizerGroup) {
  auto m = threshold_model();
  const auto groups = split_parameter_groups(*m.vit);
  EXPECT_EQ(groups.threshold_names, (std::vector<std::string>{"compress.by_norm.1.threshold",
                                                              "compress.by_received.2.threshold"}));
  EXPECT_TRUE(groups.compress_decayed.empty() && groups.compress_exempt.empty());
  OptimizerOptions options;
  options.lr = 1e-3;
  options.threshold_lr = 5e-2;
  const auto adamw = make_adamw(*m.vit, options);
  ASSERT_EQ(adamw->param_groups().size(), 3u);
  const auto& group =
      static_cast<const torch::optim::AdamWOptions&>(adamw->param_groups()[2].options());
  EXPECT_NEAR(group.lr(), 5e-2, 1e-15);
  EXPECT_DOUBLE_EQ(group.weight_decay(), 0.0);
  const auto scales = group_lr_scales(*m.vit, options);
  ASSERT_EQ(scales.size(), 3u);
  EXPECT_NEAR(scales[2], 50.0, 1e-12);  // threshold_lr / lr, on the run's schedule
  options.threshold_lr = 0.0;           // 0: the components' rate
  options.compress_lr_scale = 2.0;
  EXPECT_EQ(group_lr_scales(*m.vit, options), (std::vector<double>{1.0, 1.0, 2.0}));
  EXPECT_TRUE(is_threshold_parameter("compress.by_norm.1.threshold"));
  EXPECT_FALSE(is_threshold_parameter("blocks.0.threshold"));
}

// With a key mask (mask strategy, threshold_prune's padding) the attention received is averaged
// over the live queries only: the masked tokens are as if removed.
TEST(ThresholdModel, AttentionReceivedCountsOnlyLiveQueries) {
  torch::manual_seed(3);
  MultiHeadAttention attn(AttentionOptions(8, 2));
  attn->to(torch::kFloat64);
  const auto x = torch::randn({1, 5, 8}, torch::kFloat64);
  AttentionInputs inputs;
  inputs.key_keep = torch::tensor({{1.0, 1.0, 0.0, 1.0, 0.0}}, torch::kFloat64);
  AttentionRequest request;
  request.probabilities = request.received = true;
  const auto out = attn->forward(x, inputs, request);
  const auto live = torch::tensor({0, 1, 3}, torch::kInt64);
  const auto expected = out.probabilities.index_select(2, live).mean({1, 2});  // [1, 5]
  EXPECT_TRUE(torch::allclose(out.received, expected, 1e-12, 1e-12));
  EXPECT_EQ(out.received[0][2].item<double>(), 0.0);  // a masked key receives nothing
  // The live tokens alone give the same received attention.
  const auto alone = attn->forward(x.index_select(1, live), {}, request);
  EXPECT_TRUE(torch::allclose(alone.received, out.received.index_select(1, live), 1e-12, 1e-12));
}
