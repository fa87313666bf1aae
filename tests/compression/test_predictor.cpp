// The predictor criterion (DynamicViT) and the policy strategy: keyed Gumbel noise, cumulative
// decisions, straight-through gradients to the predictor's parameters, the ratio loss, and a
// stage that trains with policy and evaluates with prune.
#include <gtest/gtest.h>

#include <cmath>

#include "compression/pairing.h"
#include "compression/planner.h"
#include "compression/policy.h"
#include "compression/predictor_criterion.h"
#include "compression/prune.h"
#include "compression/strategy_registry.h"

using namespace winnow::compression;

namespace {

constexpr int64_t kBatch = 3, kPatches = 16, kWidth = 8;

TokenState make_state(int64_t seed = 1) {
  torch::manual_seed(seed);
  TokenState state;
  state.x = torch::randn({kBatch, 1 + kPatches, kWidth}, torch::kFloat64);
  state.protected_count = 1;
  return state;
}

ScoreContext training_context(int64_t layer = 2, int64_t step = 5) {
  ScoreContext context;
  context.layer = layer;
  context.step = step;
  context.seed = 77;
  context.sample_ids = torch::tensor({10, 11, 12}, torch::kInt64);
  context.training = true;
  return context;
}

// A predictor with parameters at `layers`, in float64. Its biases are made non-zero so that the
// untrained module does not sit at p_keep = 1/2 everywhere.
std::unique_ptr<PredictorCriterion> make_predictor(torch::nn::Module& stage,
                                                   std::vector<int64_t> layers = {2},
                                                   double ratio_loss = 2.0) {
  torch::manual_seed(3);
  auto criterion = std::make_unique<PredictorCriterion>(ratio_loss);
  criterion->create_parameters(stage, layers, kWidth);
  stage.to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  for (auto& parameter : stage.parameters()) parameter.add_(0.3 * torch::randn_like(parameter));
  return criterion;
}

torch::Tensor positions_of(int64_t batch, int64_t tokens) {
  return torch::arange(tokens, torch::kInt64).expand({batch, tokens}).contiguous();
}

}  // namespace

TEST(KeyedGumbelNoise, SameKeysGiveBitwiseTheSameNoise) {
  const auto ids = torch::tensor({3, 9}, torch::kInt64);
  const auto pos = positions_of(2, 50);
  const auto noise = keyed_gumbel_noise(5, 7, 2, ids, pos);
  EXPECT_EQ(noise.sizes(), torch::IntArrayRef({2, 50, 2}));
  EXPECT_TRUE(torch::equal(noise, keyed_gumbel_noise(5, 7, 2, ids, pos)));
  EXPECT_TRUE(noise.isfinite().all().item<bool>());
  // Each key changes the draw.
  EXPECT_FALSE(torch::equal(noise, keyed_gumbel_noise(6, 7, 2, ids, pos))) << "seed";
  EXPECT_FALSE(torch::equal(noise, keyed_gumbel_noise(5, 8, 2, ids, pos))) << "step";
  EXPECT_FALSE(torch::equal(noise, keyed_gumbel_noise(5, 7, 3, ids, pos))) << "layer";
  EXPECT_FALSE(torch::equal(noise.select(0, 0), noise.select(0, 1))) << "sample id";
  EXPECT_FALSE(torch::equal(noise.select(2, 0), noise.select(2, 1))) << "class";
  // A sample's noise depends on its id, not its row (N ranks ≡ 1 rank), and a token's on its
  // original position, not its slot (it follows the token through pruning).
  const auto alone = keyed_gumbel_noise(5, 7, 2, ids.slice(0, 1), pos.slice(0, 1));
  EXPECT_TRUE(torch::equal(alone, noise.slice(0, 1)));
  const auto reversed = pos.flip(1);
  EXPECT_TRUE(torch::equal(keyed_gumbel_noise(5, 7, 2, ids, reversed), noise.flip(1)));
}

TEST(KeyedGumbelNoise, FollowsTheStandardGumbelDistribution) {
  const auto ids = torch::arange(40, torch::kInt64);
  const auto noise = keyed_gumbel_noise(1, 0, 0, ids, positions_of(40, 500));  // 40 000 draws
  const double mean = noise.mean().item<double>(), variance = noise.var().item<double>();
  EXPECT_NEAR(mean, 0.5772156649, 0.02);           // Euler–Mascheroni constant
  EXPECT_NEAR(variance, M_PI * M_PI / 6.0, 0.05);  // π²/6
  // g_keep − g_drop is logistic: P(> 0) = 1/2.
  const double positive =
      (noise.select(2, 0) > noise.select(2, 1)).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(positive, 0.5, 0.01);
}

// Training scores are the log-odds plus keyed noise; evaluation scores have none.
TEST(PredictorCriterion, TrainingAddsKeyedNoiseToTheLogOdds) {
  torch::nn::Module stage;
  auto criterion = make_predictor(stage);
  const auto state = make_state();
  auto context = training_context();
  ScoreContext evaluation = context;
  evaluation.training = false;
  const auto noisy = criterion->score(state, context);
  const auto clean = criterion->score(state, evaluation);
  const auto noise = keyed_gumbel_noise(context.seed, context.step, context.layer,
                                        context.sample_ids, state.positions().slice(1, 1));
  EXPECT_TRUE(torch::allclose(noisy.slice(1, 1) - clean.slice(1, 1),
                              noise.select(2, 0) - noise.select(2, 1), 1e-12, 1e-12));
  EXPECT_TRUE(noisy.select(1, 0).eq(0).all().item<bool>());
  EXPECT_TRUE(torch::equal(noisy, criterion->score(state, context))) << "same keys, same scores";
  context.step += 1;
  EXPECT_FALSE(torch::equal(noisy, criterion->score(state, context)));
  // Each sample's scores depend only on that sample and its id (N ranks ≡ 1 rank).
  TokenState one = state;
  one.x = state.x.slice(0, 2, 3);
  auto one_context = training_context();
  one_context.sample_ids = context.sample_ids.slice(0, 2, 3);
  EXPECT_TRUE(torch::allclose(criterion->score(one, one_context),
                              criterion->score(state, training_context()).slice(0, 2, 3), 1e-12,
                              1e-12));
}

TEST(PredictorCriterion, UnknownLayerAndNarrowModelsAreErrors) {
  torch::nn::Module stage;
  auto criterion = make_predictor(stage, {2});
  auto context = training_context(/*layer=*/4);
  EXPECT_THROW(criterion->score(make_state(), context), c10::Error);
  PredictorCriterion narrow;
  torch::nn::Module other;
  EXPECT_THROW(narrow.create_parameters(other, {1}, 3), c10::Error);
  EXPECT_THROW(criterion->create_parameters(stage, {2}, kWidth), c10::Error) << "layer twice";
}

// The policy: decisions from the sign of the scores, multiplied into keep (a token dropped
// earlier stays dropped), protected tokens kept, the state marked for the policy softmax.
TEST(PolicyStrategy, DecisionsMultiplyAcrossStages) {
  auto state = make_state();
  const auto scores = torch::randn({kBatch, 1 + kPatches}, torch::kFloat64);
  const PolicyStrategy policy;
  const auto first = policy.apply(state, scores, 4);
  const auto expected = scores.slice(1, 1).ge(0).to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(first.keep.slice(1, 1), expected));
  EXPECT_TRUE(first.keep.select(1, 0).eq(1).all().item<bool>());
  EXPECT_TRUE(first.policy_attention);
  EXPECT_TRUE(torch::equal(first.x, state.x));
  // The count is the scores', not keep_count's.
  const auto counts = first.keep.slice(1, 1).sum(1);
  EXPECT_TRUE(torch::equal(counts, expected.sum(1)));

  const auto second_scores = torch::randn({kBatch, 1 + kPatches}, torch::kFloat64);
  const auto second = policy.apply(first, second_scores, 4);
  EXPECT_TRUE(torch::equal(second.keep.slice(1, 1),
                           expected * second_scores.slice(1, 1).ge(0).to(torch::kFloat64)));
  // keep_count >= reducible: the identity, like every strategy.
  const auto all = policy.apply(state, scores, kPatches);
  EXPECT_FALSE(all.keep.defined());
  EXPECT_FALSE(all.policy_attention);
}

// Straight-through: ∂keep_i/∂s_i = σ'(s_i/τ)/τ · keep_before_i, so tokens dropped earlier get no
// gradient and live ones get the sigmoid's.
TEST(PolicyStrategy, StraightThroughGradientIsTheSigmoids) {
  auto state = make_state();
  state.keep = torch::ones({kBatch, 1 + kPatches}, torch::kFloat64);
  state.keep.slice(1, 1, 5).zero_();  // dropped by an earlier stage
  const auto scores = torch::randn({kBatch, 1 + kPatches}, torch::kFloat64).requires_grad_(true);
  const double tau = 2.0;
  const auto out = PolicyStrategy(StrategyOptions().temperature(tau)).apply(state, scores, 0);
  out.keep.sum().backward();
  const auto s = scores.detach().slice(1, 1);
  const auto sigma = torch::sigmoid(s / tau);
  const auto expected = sigma * (1 - sigma) / tau * state.keep.slice(1, 1);
  EXPECT_TRUE(torch::allclose(scores.grad().slice(1, 1), expected, 1e-12, 1e-14));
  EXPECT_TRUE(scores.grad().select(1, 0).eq(0).all().item<bool>());
}

// Gradients reach every predictor parameter through the straight-through decisions: from a loss
// on the kept mask (what the attention reads) and from the ratio loss alone.
TEST(PredictorCriterion, GradientsReachEveryParameterThroughStraightThrough) {
  for (const bool ratio_only : {false, true}) {
    SCOPED_TRACE(ratio_only ? "ratio loss" : "loss on the mask");
    torch::nn::Module stage;
    auto criterion = make_predictor(stage);
    const PolicyStrategy policy;
    auto state = make_state();
    AuxLosses losses;
    auto context = training_context();
    context.aux_losses = &losses;
    context.planned_keep = 0.3;
    const auto reduced = policy.apply(state, criterion->score(state, context), 0);
    criterion->add_losses(reduced, context);
    torch::Tensor loss;
    if (ratio_only) {
      loss = losses.at("ratio").sum;
    } else {
      torch::manual_seed(9);
      loss = (reduced.keep * torch::randn_like(reduced.keep)).sum();
    }
    loss.backward();
    for (const auto& item : stage.named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
  }
}

// The ratio loss is Σ_b (mean keep_b − ρ)² / (number of the criterion's layers), weight given.
TEST(PredictorCriterion, RatioLossOfTheReducedPolicy) {
  torch::nn::Module stage;
  auto criterion = make_predictor(stage, {1, 2, 3, 4}, 5.0);
  TokenState reduced = make_state();
  reduced.keep = torch::ones({kBatch, 1 + kPatches}, torch::kFloat64);
  reduced.keep.slice(1, 1, 9).zero_();  // half of the patches kept
  reduced.keep[0].slice(0, 9).zero_();  // sample 0 keeps none
  AuxLosses losses;
  ScoreContext context;
  context.aux_losses = &losses;
  context.planned_keep = 0.25;
  criterion->add_losses(reduced, context);
  const double expected = (std::pow(0.0 - 0.25, 2) + 2 * std::pow(0.5 - 0.25, 2)) / 4.0;
  EXPECT_NEAR(losses.at("ratio").sum.item<double>(), expected, 1e-12);
  EXPECT_DOUBLE_EQ(losses.at("ratio").weight, 5.0);
  // Weight 0: no loss.
  torch::nn::Module other;
  AuxLosses none;
  context.aux_losses = &none;
  make_predictor(other, {1}, 0.0)->add_losses(reduced, context);
  EXPECT_TRUE(none.empty());
}

// A sample whose every token is already masked gets a finite global feature (DynamicViT: 0/0).
TEST(PredictorCriterion, EmptyPolicyGivesFiniteScores) {
  torch::nn::Module stage;
  auto criterion = make_predictor(stage);
  auto state = make_state();
  state.keep = torch::ones({kBatch, 1 + kPatches}, torch::kFloat64);
  state.keep[1].slice(0, 1).zero_();
  EXPECT_TRUE(criterion->score(state, training_context()).isfinite().all().item<bool>());
}

TEST(PredictorPairing, PolicyNeedsLogOddsAndTrainingNeedsGradients) {
  PredictorCriterion predictor;
  const auto policy = make_strategy("policy");
  const auto prune = make_strategy("prune");
  EXPECT_TRUE(pairing_problem(predictor, *policy).empty());
  EXPECT_TRUE(
      pairing_problem(predictor, *make_strategy("mask", StrategyOptions().straight_through(true)))
          .empty());
  EXPECT_FALSE(pairing_problem(predictor, *prune).empty()) << "would never train";
  EXPECT_TRUE(pairing_problem(predictor, *prune, /*for_training=*/false).empty());
  EXPECT_NE(pairing_problem(*make_criterion("norm"), *policy).find("log-odds"), std::string::npos);
}

namespace {

StaticPlannerConfig predictor_stage(const std::string& eval) {
  StaticPlannerConfig config;
  config.stages.push_back({"dyvit", {}});
  auto& r = config.stages.back().reduction;
  r.criterion = "predictor";
  r.strategy = "policy";
  r.layers = {1, 3};
  r.keep = {0.5};
  r.eval = eval;
  return config;
}

}  // namespace

// A predictor+policy stage evaluates with prune by default (DynamicViT's inference: tokens
// physically removed, ⌈keep · entering⌉ kept); eval = same keeps the policy, dense none.
TEST(PredictorStage, TrainsWithPolicyAndEvaluatesWithPrune) {
  const ModelShape shape{4, kWidth, 4, 4};
  StaticPlanner planner(predictor_stage("auto"), shape);
  ASSERT_NE(planner.parameters(), nullptr);
  const auto names = planner.parameters()->named_parameters();
  EXPECT_NE(names.find("dyvit.1.in_conv.1.weight"), nullptr);
  EXPECT_NE(names.find("dyvit.3.out_conv.4.bias"), nullptr);
  EXPECT_NE(planner.describe().find("prune in eval"), std::string::npos) << planner.describe();
  planner.parameters()->to(torch::kFloat64);

  const auto eval_plan = planner.plan(0, /*training=*/false);
  EXPECT_NE(eval_plan.describe().find("1: predictor+prune@pre_block"), std::string::npos)
      << eval_plan.describe();
  EXPECT_NE(planner.plan(0, true).describe().find("1: predictor+policy@pre_block"),
            std::string::npos);
  const auto& reduction = eval_plan.layers[1].reductions.at(0);
  auto state = make_state();
  ScoreContext context;
  context.layer = 1;
  const auto pruned = reduction.method->apply(state, context, reduction.keep_of(kPatches));
  EXPECT_EQ(pruned.tokens(), 1 + 8);
  EXPECT_FALSE(pruned.keep.defined());

  context.training = true;
  context.sample_ids = torch::tensor({1, 2, 3}, torch::kInt64);
  const auto masked = reduction.method->apply(state, context, reduction.keep_of(kPatches));
  EXPECT_EQ(masked.tokens(), 1 + kPatches);
  EXPECT_TRUE(masked.policy_attention);

  StaticPlanner same(predictor_stage("same"), shape);
  EXPECT_NE(same.describe().find("same in eval"), std::string::npos);
  StaticPlanner dense(predictor_stage("dense"), shape);
  EXPECT_TRUE(dense.plan(0, false).layers[1].reductions.empty());
  try {
    StaticPlanner bogus(predictor_stage("bogus"), shape);
    ADD_FAILURE() << "eval = bogus accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("stage.dyvit.eval"), std::string::npos);
  }
  // An evaluation strategy must act at the same site (route wraps the block).
  try {
    StaticPlanner routed(predictor_stage("route"), shape);
    ADD_FAILURE() << "eval = route accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("same site"), std::string::npos) << error.what();
  }
}
