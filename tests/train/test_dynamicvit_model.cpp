// DynamicViT end to end against its published code (tests/fixtures/make_dynamicvit_fixtures.py):
// the attention's policy softmax, and a whole ViT with a predictor stage, both its inference
// (two prune stages) and its training forward (keyed Gumbel decisions, cumulative policy, policy
// attention in every later block, ratio loss) with the gradients of every parameter.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compression/flops.h"
#include "compression/planner.h"
#include "compression/predictor_criterion.h"
#include "tests/compression/fixture.h"
#include "train/attention.h"
#include "train/plan_hooks.h"
#include "train/vit.h"

using namespace winnow;
using namespace winnow::train;
using compression::testing::entry;
using compression::testing::load_fixture;

namespace {

using Fixture = std::map<std::string, torch::Tensor>;

// |a − b| <= atol + 1e-5·|b| with atol = 1e-5 of the expected tensor's largest magnitude, in
// float64.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected,
                  const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const auto a = actual.detach().to(torch::kFloat64), b = expected.to(torch::kFloat64);
  const double scale = std::max(b.abs().max().item<double>(), 1e-12);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5 * scale))
      << what << ": max |difference| = " << (a - b).abs().max().item<double>() << " (scale "
      << scale << ")";
}

// The fixture's "param.<prefix><name>" entries, renamed by `rename`, into `module`'s parameters.
// Returns how many were loaded.
size_t load_parameters(torch::nn::Module& module, const Fixture& fixture,
                       const std::function<std::string(const std::string&)>& rename) {
  torch::NoGradGuard no_grad;
  auto parameters = module.named_parameters();
  size_t loaded = 0;
  for (const auto& [key, value] : fixture) {
    if (key.rfind("param.", 0) != 0) continue;
    const auto name = rename(key.substr(6));
    auto* parameter = parameters.find(name);
    EXPECT_NE(parameter, nullptr) << key << " -> " << name;
    if (!parameter) continue;
    parameter->copy_(value);
    ++loaded;
  }
  return loaded;
}

}  // namespace

// Attention.forward(x, policy) of DynamicViT: probabilities, output and gradients to x and to
// the policy (masked keys included: their ε-floored weight keeps them on the gradient path).
TEST(DynamicViTReference, PolicyAttentionMatchesSoftmaxWithPolicy) {
  const auto f = load_fixture("dynamicvit_policy_attention");
  const auto x = entry(f, "x").to(torch::kFloat64).requires_grad_(true);
  const int64_t width = x.size(2), heads = entry(f, "heads").item<int64_t>();
  MultiHeadAttention attention(AttentionOptions(width, heads));
  EXPECT_EQ(load_parameters(*attention, f, [](const std::string& n) { return n; }), 4u);
  attention->to(torch::kFloat64);
  AttentionInputs inputs;
  inputs.key_policy = entry(f, "policy").to(torch::kFloat64).requires_grad_(true);
  AttentionRequest request;
  request.probabilities = true;
  const auto out = attention->forward(x, inputs, request);
  expect_close(out.probabilities, entry(f, "probabilities"), "probabilities");
  expect_close(out.out, entry(f, "out"), "output");
  expect_close(softmax_with_policy(entry(f, "logits").to(torch::kFloat64), inputs.key_policy),
               entry(f, "probabilities"), "softmax_with_policy on the logits");
  (out.out * entry(f, "weight").to(torch::kFloat64)).sum().backward();
  expect_close(x.grad(), entry(f, "grad_x"), "dL/dx");
  expect_close(inputs.key_policy.grad(), entry(f, "grad_policy"), "dL/dpolicy");

  // A masked token still attends to itself; other masked keys get only the ε floor, orders of
  // magnitude below.
  const auto policy = inputs.key_policy.detach();
  const auto masked = policy.eq(0).nonzero();
  ASSERT_GT(masked.size(0), 1);
  const int64_t b = masked[0][0].item<int64_t>(), i = masked[0][1].item<int64_t>();
  const auto row = out.probabilities.detach()[b][0][i];  // head 0, query i
  for (int64_t j = 0; j < policy.size(1); ++j) {
    if (j != i && policy[b][j].item<double>() == 0) {
      EXPECT_LT(row[j].item<double>(), 1e-4);
      EXPECT_GT(row[i].item<double>(), 1e3 * row[j].item<double>());
    }
  }
  EXPECT_NEAR(row.sum().item<double>(), 1.0, 1e-12);
}

namespace {

// VisionTransformerDiffPruning as the fixture built it: 224² one-channel images, 16² patches,
// width 16, 4 blocks, 2 heads, 5 classes, LayerNorm ε 1e-6, predictors before blocks 1 and 3
// keeping 1/2 of the tokens each (DynamicViT's token_ratio [0.5, 0.25]).
struct FixtureModel {
  std::shared_ptr<VisionTransformerImpl> vit;
  std::shared_ptr<compression::StaticPlanner> planner;
};

FixtureModel fixture_model(const Fixture& f) {
  VitOptions o;
  o.image_channels = 1;
  o.image_height = o.image_width = 224;
  o.patch = 16;
  o.dim = 16;
  o.depth = 4;
  o.heads = 2;
  o.num_classes = 5;
  o.norm_eps = 1e-6;
  FixtureModel model;
  model.vit = std::make_shared<VisionTransformerImpl>(o);
  compression::StaticPlannerConfig config;
  config.stages.push_back({"dyvit", {}});
  auto& r = config.stages.back().reduction;
  r.criterion = "predictor";
  r.strategy = "policy";
  r.layers = {1, 3};
  r.keep = {0.5};
  r.descending_order = true;  // DynamicViT's argsort order (the logits do not depend on it)
  model.planner = std::make_shared<compression::StaticPlanner>(
      config, compression::ModelShape{o.depth, o.dim, 14, 14});
  model.vit->attach_compression(model.planner->parameters());
  // score_predictor.<s> is our compress.dyvit.<layer of stage s>.
  const auto rename = [](const std::string& name) {
    const std::string prefix = "score_predictor.";
    if (name.rfind(prefix, 0) != 0) return name;
    const auto stage = name.substr(prefix.size(), 1);
    return std::string("compress.dyvit.") + (stage == "0" ? "1" : "3") +
           name.substr(prefix.size() + 1);
  };
  EXPECT_EQ(load_parameters(*model.vit, f, rename), model.vit->named_parameters().size());
  model.vit->to(torch::kFloat64);
  return model;
}

// make_dynamicvit_fixtures.py fractional_images: frac(0.7548…·i) − 0.5, bitwise the same.
torch::Tensor fractional_images(int64_t batch) {
  const auto flat = torch::arange(batch * 224 * 224, torch::kFloat64) * 0.7548776662466927;
  return (torch::fmod(flat, 1.0) - 0.5).reshape({batch, 1, 224, 224});
}

ModelOutput run(VisionTransformerImpl& vit, const compression::Planner& planner,
                const torch::Tensor& images, const torch::Tensor& sample_ids, uint64_t seed,
                int64_t step, bool training) {
  ForwardContext context;
  context.step = step;
  context.seed = seed;
  context.sample_ids = sample_ids;
  const auto plan = planner.plan(step, training);
  PlanHooks hooks(plan, seed, sample_ids);
  context.hook_for = [&hooks](int64_t layer) { return hooks(layer); };
  context.aux_losses = &hooks.aux_losses();
  return vit.forward(images, context);
}

}  // namespace

// Inference: the predictors' top-k with tokens physically removed (196 → 98 → 49 patches) gives
// the reference's logits.
TEST(DynamicViTReference, ModelInferenceMatches) {
  const auto f = load_fixture("dynamicvit_model");
  auto model = fixture_model(f);
  const auto images = fractional_images(2);
  torch::NoGradGuard no_grad;
  const auto out = run(*model.vit, *model.planner, images, entry(f, "sample_ids"), 0, 0, false);
  expect_close(out.logits, entry(f, "eval_logits"), "inference logits");
  EXPECT_EQ(out.tokens_per_layer, (std::vector<int64_t>{2 * 197, 2 * 99, 2 * 99, 2 * 50}));
  EXPECT_TRUE(out.aux_losses.empty());
}

// The step's FLOPs count the predictors' four linear layers on every token they score (196
// patches at layer 1, the 98 left at layer 3) besides the blocks, patch embedding and head.
TEST(DynamicViTReference, PredictorFlopsAreCounted) {
  const auto f = load_fixture("dynamicvit_model");
  auto model = fixture_model(f);
  torch::NoGradGuard no_grad;
  const auto out =
      run(*model.vit, *model.planner, fractional_images(2), entry(f, "sample_ids"), 0, 0, false);
  const compression::BlockShape shape{16, 64};
  const auto predictor = [](double tokens) {
    return compression::linear_forward_flops(tokens, 16, 16) +
           compression::linear_forward_flops(tokens, 16, 8) +
           compression::linear_forward_flops(tokens, 8, 4) +
           compression::linear_forward_flops(tokens, 4, 2);
  };
  const double expected = 2 * (compression::block_forward_flops(shape, 197, 197) +
                               2 * compression::block_forward_flops(shape, 99, 99) +
                               compression::block_forward_flops(shape, 50, 50)) +
                          compression::linear_forward_flops(2 * 196, 256, 16) +
                          compression::linear_forward_flops(2, 16, 5) + predictor(2 * 196) +
                          predictor(2 * 98);
  EXPECT_NEAR(out.forward_flops, expected, 1e-9 * expected);
}

// Training: keyed Gumbel decisions (the fixture's noise is ours, re-implemented in Python and
// checked here), decisions multiplied across the two stages, policy attention in every block
// after the first stage, the ratio loss with targets 0.5 and 0.25, and the gradients of every
// backbone and predictor parameter through the straight-through decisions.
TEST(DynamicViTReference, ModelTrainingForwardAndGradientsMatch) {
  const auto f = load_fixture("dynamicvit_model");
  auto model = fixture_model(f);
  const auto images = fractional_images(2);
  const auto sample_ids = entry(f, "sample_ids");
  const auto seed = static_cast<uint64_t>(entry(f, "seed").item<int64_t>());
  const int64_t step = entry(f, "step").item<int64_t>();
  const auto positions = torch::arange(1, 197, torch::kInt64).expand({2, 196});
  for (const int64_t layer : {1, 3}) {
    expect_close(compression::keyed_gumbel_noise(seed, step, layer, sample_ids, positions),
                 entry(f, "noise_" + std::to_string(layer)),
                 "keyed noise of layer " + std::to_string(layer));
  }

  const auto out = run(*model.vit, *model.planner, images, sample_ids, seed, step, true);
  expect_close(out.logits, entry(f, "train_logits"), "training logits");
  EXPECT_EQ(out.tokens_per_layer, (std::vector<int64_t>(4, 2 * 197))) << "mask mode";
  ASSERT_EQ(out.aux_losses.count("ratio"), 1u);
  const auto& ratio = out.aux_losses.at("ratio");
  EXPECT_DOUBLE_EQ(ratio.weight, 2.0);
  const auto ratio_mean = ratio.sum / 2.0;  // the trainer divides by the global sample count
  expect_close(ratio_mean, entry(f, "ratio_loss"), "ratio loss");

  const auto loss =
      (out.logits * entry(f, "weight").to(torch::kFloat64)).sum() + ratio.weight * ratio_mean;
  expect_close(loss, entry(f, "loss"), "loss");
  loss.backward();
  size_t compared = 0;
  for (const auto& [key, grad] : f) {
    if (key.rfind("grad.", 0) != 0) continue;
    std::string name = key.substr(5);
    if (name.rfind("score_predictor.", 0) == 0)
      name = std::string("compress.dyvit.") + (name[16] == '0' ? "1" : "3") + name.substr(17);
    const auto* parameter = model.vit->named_parameters().find(name);
    ASSERT_NE(parameter, nullptr) << name;
    ASSERT_TRUE(parameter->grad().defined()) << name;
    expect_close(parameter->grad(), grad, "d loss / d " + name);
    ++compared;
  }
  EXPECT_EQ(compared, model.vit->named_parameters().size());
  // The predictors are on the gradient path through the straight-through decisions.
  EXPECT_GT(model.vit->named_parameters()["compress.dyvit.1.in_conv.1.weight"]
                .grad()
                .abs()
                .sum()
                .item<double>(),
            0.0);
}
