// Learned thresholds (LTMP): the threshold criterion's margin, the straight-through σ mask and its
// gradient to θ through the policy strategy, per-sample hard pruning at inference
// (threshold_prune), and a stage that trains with policy and evaluates with threshold_prune.
#include <gtest/gtest.h>

#include <cmath>

#include "compression/criterion_registry.h"
#include "compression/pairing.h"
#include "compression/planner.h"
#include "compression/policy.h"
#include "compression/strategy_registry.h"
#include "compression/threshold_criterion.h"
#include "compression/threshold_prune.h"

using namespace winnow::compression;

namespace {

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// One sample, a CLS and three patches whose L2 norms are 1, 2 and 3 (x = [norm, 0]): the `norm`
// criterion's scores are exactly those.
TokenState norm_state() {
  TokenState state;
  state.x =
      torch::tensor({5.0, 0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0}, torch::kFloat64).view({1, 4, 2});
  state.protected_count = 1;
  return state;
}

std::unique_ptr<ThresholdCriterion> norm_threshold(torch::nn::Module& stage, double theta) {
  auto criterion = std::make_unique<ThresholdCriterion>(make_criterion("norm"), theta);
  criterion->create_parameters(stage, {2}, 2);
  stage.to(torch::kFloat64);
  return criterion;
}

ScoreContext layer_context(int64_t layer = 2) {
  ScoreContext context;
  context.layer = layer;
  return context;
}

StaticPlannerConfig threshold_stage(const std::string& strategy = "policy") {
  StaticPlannerConfig config;
  config.stages.push_back({"ltmp", {}});
  auto& c = config.stages.back().reduction;
  c.criterion = "threshold";
  c.strategy = strategy;
  c.threshold_base = "norm";
  c.threshold_init = 2.5;
  c.layers = {1, 2};
  return config;
}

}  // namespace

TEST(ThresholdCriterion, ScoreIsTheBaseScoreMinusTheLayersThreshold) {
  torch::nn::Module stage;
  auto criterion = norm_threshold(stage, 2.5);
  const auto names = stage.named_parameters();
  ASSERT_NE(names.find("2.threshold"), nullptr);
  EXPECT_EQ(names["2.threshold"].dim(), 0);
  const auto margin = criterion->score(norm_state(), layer_context());
  EXPECT_TRUE(torch::allclose(margin, torch::tensor({{2.5, -1.5, -0.5, 0.5}}, torch::kFloat64)));
  EXPECT_TRUE(criterion->decides_count());
  EXPECT_TRUE(criterion->scores_are_log_odds());
  EXPECT_TRUE(criterion->learned());
  EXPECT_THROW(criterion->score(norm_state(), layer_context(3)), c10::Error);  // no θ there
}

TEST(ThresholdCriterion, BaseMustBeParameterFree) {
  EXPECT_THROW(ThresholdCriterion(make_criterion("linear"), 0.0), c10::Error);
  EXPECT_THROW(make_criterion("threshold", CriterionOptions().threshold_base("threshold")),
               c10::Error);
  EXPECT_THROW(make_criterion("threshold", CriterionOptions().threshold_base("bogus")), c10::Error);
  const auto received = make_criterion("threshold");  // LTMP's default: attention received
  EXPECT_TRUE(received->needs().received);
}

// LTMP's ThresholdMasker: forward hard [s ≥ θ], backward the gradient of σ((s − θ)/τ).
TEST(ThresholdCriterion, PolicyMaskIsHardForwardAndSigmoidGradientToTheta) {
  torch::nn::Module stage;
  auto criterion = norm_threshold(stage, 2.5);
  const double tau = 0.5;
  PolicyStrategy policy(StrategyOptions().temperature(tau));
  const auto state = norm_state();
  const auto reduced = policy.apply(state, criterion->score(state, layer_context()), 0);
  EXPECT_TRUE(reduced.policy_attention);
  EXPECT_TRUE(torch::equal(reduced.keep, torch::tensor({{1.0, 0.0, 0.0, 1.0}}, torch::kFloat64)));
  // L = Σ w_i keep_i: dL/dθ = −Σ_i w_i σ'(m_i/τ)/τ over the patches, m = s − θ.
  const std::vector<double> weights = {0.0, 1.0, 2.0, -3.0};
  const auto loss = (reduced.keep * torch::tensor(weights, torch::kFloat64).view({1, 4})).sum();
  loss.backward();
  const double margins[] = {-1.5, -0.5, 0.5};
  double expected = 0.0;
  for (int i = 0; i < 3; ++i) {
    const double s = sigmoid(margins[i] / tau);
    expected -= weights[static_cast<size_t>(i + 1)] * s * (1.0 - s) / tau;
  }
  const auto theta = stage.named_parameters()["2.threshold"];
  ASSERT_TRUE(theta.grad().defined());
  EXPECT_NEAR(theta.grad().item<double>(), expected, 1e-12);
}

// Inference removes exactly the tokens below θ, per sample; the batch is cut to its longest
// sample and the shorter ones padded with keep-0 slots.
TEST(ThresholdPrune, RemovesExactlyTheTokensBelowTheThresholdPerSample) {
  TokenState state;
  state.x = torch::arange(2 * 6 * 1, torch::kFloat64).view({2, 6, 1});
  state.protected_count = 1;
  // Margins of the five patches: sample 0 keeps patches 2 and 4 (0 keeps, ≥), sample 1 keeps 1.
  const auto scores = torch::tensor(
      {{9.0, -1.0, 0.0, -0.5, 3.0, -2.0}, {9.0, 0.1, -0.1, -3.0, -1.0, -4.0}}, torch::kFloat64);
  ThresholdPruneStrategy prune;
  const auto out = prune.apply(state, scores, /*keep_count=*/0);
  ASSERT_EQ(out.tokens(), 1 + 2);  // CLS + the longest sample's two patches
  EXPECT_TRUE(torch::equal(out.positions(), torch::tensor({{0, 2, 4}, {0, 1, 2}}, torch::kInt64)))
      << out.positions();
  // Sample 1's second slot is padding (a dropped token, masked).
  EXPECT_TRUE(
      torch::equal(out.keep, torch::tensor({{1.0, 1.0, 1.0}, {1.0, 1.0, 0.0}}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(out.x.select(2, 0),
                           torch::tensor({{0.0, 2.0, 4.0}, {6.0, 7.0, 8.0}}, torch::kFloat64)));
  EXPECT_FALSE(out.policy_attention);  // padding is removed exactly (log 0 on the key logits)

  // Tokens masked earlier never come back, whatever their score; nothing kept → only the CLS.
  TokenState masked = state;
  masked.keep = torch::ones({2, 6}, torch::kFloat64);
  masked.keep.index_put_({0, 4}, 0.0);
  const auto again = prune.apply(masked, scores, 0);
  EXPECT_TRUE(torch::equal(again.positions().select(0, 0), torch::tensor({0, 2}, torch::kInt64)));
  const auto none = prune.apply(state, torch::full({2, 6}, -1.0, torch::kFloat64), 0);
  EXPECT_EQ(none.tokens(), 1);
  // Each sample alone gives its own tokens, without padding (batch 1 ≡ its slice of the batch).
  for (int64_t b = 0; b < 2; ++b) {
    TokenState one = state;
    one.x = state.x.slice(0, b, b + 1);
    const auto alone = prune.apply(one, scores.slice(0, b, b + 1), 0);
    const int64_t own = alone.tokens();
    EXPECT_TRUE(torch::equal(alone.x, out.x.slice(0, b, b + 1).slice(1, 0, own)));
    EXPECT_TRUE(alone.keep.eq(1).all().item<bool>());
  }
}

TEST(ThresholdStage, TrainsWithPolicyAndEvaluatesWithThresholdPrune) {
  const ModelShape shape{4, 2, 0, 0};
  StaticPlanner planner(threshold_stage(), shape);
  ASSERT_NE(planner.parameters(), nullptr);
  const auto names = planner.parameters()->named_parameters();
  EXPECT_NE(names.find("ltmp.1.threshold"), nullptr);
  EXPECT_NE(names.find("ltmp.2.threshold"), nullptr);
  EXPECT_DOUBLE_EQ(names["ltmp.1.threshold"].item<double>(), 2.5);
  EXPECT_NE(planner.describe().find("threshold_prune in eval"), std::string::npos)
      << planner.describe();
  planner.parameters()->to(torch::kFloat64);
  const auto eval_plan = planner.plan(0, /*training=*/false);
  EXPECT_NE(eval_plan.describe().find("1: threshold+threshold_prune@pre_block by threshold"),
            std::string::npos)
      << eval_plan.describe();
  // The count is the scores': the planned reduction carries keep_count 0 and still acts.
  const auto& reduction = eval_plan.layers[1].reductions.at(0);
  EXPECT_EQ(reduction.keep_of(3), 0);
  ScoreContext context = layer_context(1);
  const auto pruned = reduction.method->apply(norm_state(), context, reduction.keep_of(3));
  EXPECT_TRUE(torch::equal(pruned.positions(), torch::tensor({{0, 3}}, torch::kInt64)));
  context.training = true;
  const auto masked = reduction.method->apply(norm_state(), context, reduction.keep_of(3));
  EXPECT_EQ(masked.tokens(), 4);
  EXPECT_TRUE(masked.policy_attention);
  // Warmup: no reduction before it ends.
  auto warm = threshold_stage();
  warm.stages[0].reduction.warmup_steps = 5;
  StaticPlanner warmup(warm, shape);
  EXPECT_TRUE(warmup.plan(4, true).layers[1].reductions.empty());
  EXPECT_EQ(warmup.plan(5, true).layers[1].reductions.size(), 1u);
}

TEST(ThresholdStage, CountDecidingCriterionNeedsDecisionStrategiesAndNoRamp) {
  const ModelShape shape{4, 2, 0, 0};
  auto expect_error = [&](const StaticPlannerConfig& config, const std::string& text) {
    try {
      StaticPlanner planner(config, shape);
      ADD_FAILURE() << "accepted; expected an error with '" << text << "'";
    } catch (const c10::Error& error) {
      EXPECT_NE(std::string(error.what()).find(text), std::string::npos) << error.what();
    }
  };
  auto masked = threshold_stage("mask");
  masked.stages[0].reduction.straight_through = true;
  expect_error(masked, "stage.ltmp.strategy");
  auto ramped = threshold_stage();
  ramped.stages[0].reduction.ramp_steps = 10;
  expect_error(ramped, "stage.ltmp.ramp_steps");
  // threshold_prune reads decisions, so it pairs with the predictor's log-odds too, not with norm.
  EXPECT_TRUE(pairing_problem(*make_criterion("norm"), *make_strategy("threshold_prune"), false)
                  .find("log-odds") != std::string::npos);
  EXPECT_TRUE(
      pairing_problem(*make_criterion("predictor"), *make_strategy("threshold_prune"), false)
          .empty());
}
