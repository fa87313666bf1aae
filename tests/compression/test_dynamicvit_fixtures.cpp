// The predictor criterion and the policy strategy against DynamicViT's published code
// (tests/fixtures/make_dynamicvit_fixtures.py): prediction module, hard Gumbel-softmax decision,
// inference top-k and ratio loss. The attention's policy softmax and the whole model are in
// tests/train/test_dynamicvit_model.cpp.
#include <gtest/gtest.h>

#include "compression/method.h"
#include "compression/policy.h"
#include "compression/predictor_criterion.h"
#include "compression/prune.h"
#include "fixture.h"

using namespace winnow::compression;
using winnow::compression::testing::entry;
using winnow::compression::testing::load_fixture;

namespace {

using Fixture = std::map<std::string, torch::Tensor>;

// |a − b| <= 1e-6 + 1e-5·|b|, in float64.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const auto a = actual.detach().to(torch::kFloat64), b = expected.to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-6))
      << what << ": max |difference| = " << (a - b).abs().max().item<double>();
}

torch::Tensor f64(const torch::Tensor& t) {
  return t.to(torch::kFloat64);
}

// Copies the fixture's "param.<name>" entries into the parameters of the same names; every
// parameter must be given.
void load_parameters(torch::nn::Module& module, const Fixture& fixture) {
  torch::NoGradGuard no_grad;
  auto parameters = module.named_parameters();
  size_t loaded = 0;
  for (const auto& [key, value] : fixture) {
    if (key.rfind("param.", 0) != 0) continue;
    auto* parameter = parameters.find(key.substr(6));
    ASSERT_NE(parameter, nullptr) << key;
    parameter->copy_(value);
    ++loaded;
  }
  EXPECT_EQ(loaded, parameters.size());
}

// A predictor criterion whose module at `layer` holds the fixture's PredictorLG, in float64.
std::unique_ptr<PredictorCriterion> fixture_predictor(const Fixture& fixture, int64_t width,
                                                      int64_t layer = 0) {
  auto criterion = std::make_unique<PredictorCriterion>();
  torch::nn::Module stage;
  criterion->create_parameters(stage, {layer}, width);
  auto module = criterion->predictor(layer);
  load_parameters(*module, fixture);
  module->to(torch::kFloat64);
  return criterion;
}

// [B, N, C] → [B, 1 + N, C] with a zero CLS token in front.
torch::Tensor with_cls(const torch::Tensor& tokens) {
  return torch::cat({torch::zeros({tokens.size(0), 1, tokens.size(2)}, tokens.options()), tokens},
                    1);
}

class PredictorFixture : public ::testing::TestWithParam<std::string> {};

// PredictorLG(x, policy): log-probabilities, and the gradients to the tokens and to the policy
// (through the keep-weighted global feature).
TEST_P(PredictorFixture, ForwardAndGradientsMatchPredictorLG) {
  const auto f = load_fixture(GetParam());
  const auto x = f64(entry(f, "x"));
  const auto policy = f64(entry(f, "policy")).squeeze(-1);  // [B, N]
  const bool all_kept = policy.eq(1).all().item<bool>();
  auto criterion = fixture_predictor(f, x.size(2));

  TokenState state;
  state.x = with_cls(x).requires_grad_(true);
  state.protected_count = 1;
  if (!all_kept) {  // a first stage has no policy yet: keep stays undefined (all ones)
    state.keep =
        torch::cat({torch::ones({x.size(0), 1}, x.options()), policy}, 1).requires_grad_(true);
  }
  const auto log_p = criterion->log_probabilities(state, 0);
  expect_close(log_p, entry(f, "log_probs"), "log-probabilities");

  (log_p * f64(entry(f, "weight"))).sum().backward();
  expect_close(state.x.grad().slice(1, 1), entry(f, "grad_x"), "dL/dx");
  EXPECT_TRUE(state.x.grad().select(1, 0).eq(0).all().item<bool>()) << "CLS is not scored";
  if (!all_kept) {
    expect_close(state.keep.grad().slice(1, 1), entry(f, "grad_policy").squeeze(-1), "dL/dpolicy");
  }

  // Evaluation scores: the log-odds of keeping, log p_keep − log p_drop.
  ScoreContext context;
  const auto scores = criterion->score(state, context);
  expect_close(scores.slice(1, 1), log_p.select(2, 0) - log_p.select(2, 1), "scores");
}

INSTANTIATE_TEST_SUITE_P(Reference, PredictorFixture,
                         ::testing::Values("dynamicvit_predictor_16",
                                           "dynamicvit_predictor_12_ones"));

// F.gumbel_softmax(log p, hard=True)[:, :, 0] · D_{s−1} on the same Gumbel noise: the policy
// strategy's keep mask on the noisy log-odds, with the same straight-through gradient.
TEST(DynamicViTFixture, PolicyDecisionMatchesHardGumbelSoftmax) {
  const auto f = load_fixture("dynamicvit_gumbel");
  const auto log_probs = f64(entry(f, "log_probs")).requires_grad_(true);  // [B, N, 2]
  const auto noise = f64(entry(f, "noise"));
  const auto prev = f64(entry(f, "prev"));  // [B, N]
  const int64_t batch = prev.size(0);
  const auto log_odds = (log_probs.select(2, 0) + noise.select(2, 0)) -
                        (log_probs.select(2, 1) + noise.select(2, 1));  // [B, N]

  TokenState state;
  state.x = torch::zeros({batch, 1 + prev.size(1), 4}, torch::kFloat64);
  state.protected_count = 1;
  state.keep = torch::cat({torch::ones({batch, 1}, torch::kFloat64), prev}, 1);
  const auto scores = torch::cat({torch::zeros({batch, 1}, torch::kFloat64), log_odds}, 1);
  const auto out = PolicyStrategy().apply(state, scores, /*keep_count=*/0);

  EXPECT_TRUE(torch::equal(out.keep.slice(1, 1).detach(), f64(entry(f, "decision"))))
      << "the forward decisions are exactly 0/1 and equal";
  EXPECT_TRUE(out.keep.select(1, 0).eq(1).all().item<bool>());
  EXPECT_TRUE(out.policy_attention);
  (out.keep.slice(1, 1) * f64(entry(f, "weight"))).sum().backward();
  expect_close(log_probs.grad(), entry(f, "grad_log_probs"), "dL/dlog p (straight-through)");
}

class TopKFixture : public ::testing::TestWithParam<std::string> {};

// DynamicViT's inference: argsort(log p_keep, descending)[:, :k] with CLS in front, gathered.
// The predictor's evaluation scores with prune (descending_order) keep the same tokens in the
// same order, and so does a predictor+policy method evaluating with prune.
TEST_P(TopKFixture, PruneOnPredictorScoresMatchesInferenceTopK) {
  const auto f = load_fixture(GetParam());
  const auto x = f64(entry(f, "x"));
  const int64_t keep_count = entry(f, "keep_count").item<int64_t>();
  auto criterion = fixture_predictor(f, x.size(2));
  TokenState state;
  state.x = x;
  state.protected_count = 1;
  expect_close(criterion->log_probabilities(state, 0).select(2, 0), entry(f, "score"),
               "log p_keep");

  const auto scores = criterion->score(state, ScoreContext());
  const auto out =
      PruneStrategy(StrategyOptions().descending_order(true)).apply(state, scores, keep_count);
  EXPECT_TRUE(torch::equal(out.positions(), entry(f, "kept_index"))) << "kept tokens and order";
  expect_close(out.x, entry(f, "out_x"), "selected tokens");

  // The same through a method that trains with policy and evaluates with prune.
  Method method(std::move(criterion), std::make_unique<PolicyStrategy>());
  method.set_eval_strategy(
      std::make_unique<PruneStrategy>(StrategyOptions().descending_order(true)));
  const auto evaluated = method.apply(state, ScoreContext(), keep_count);
  EXPECT_TRUE(torch::equal(evaluated.positions(), entry(f, "kept_index")));
}

INSTANTIATE_TEST_SUITE_P(Reference, TopKFixture,
                         ::testing::Values("dynamicvit_topk_070", "dynamicvit_topk_050"));

// losses.py DistillDiffPruningLoss_dynamic with only its ratio term: ratio_weight ·
// Σ_s mean_b (mean_i D_s − ρ_s)² / S. Ours: add_losses at each of the S = 3 layers with
// planned_keep = ρ_s, the sum divided by the batch (the trainer's global sample count).
TEST(DynamicViTFixture, RatioLossMatchesDistillDiffPruningLoss) {
  const auto f = load_fixture("dynamicvit_ratio_loss");
  const auto decisions = f64(entry(f, "decisions")).requires_grad_(true);  // [S, B, N]
  const auto ratios = entry(f, "keep_ratio");
  const double weight = entry(f, "ratio_weight").item<double>();
  const int64_t stages = decisions.size(0), batch = decisions.size(1), n = decisions.size(2);
  PredictorCriterion criterion(weight);
  torch::nn::Module stage;
  criterion.create_parameters(stage, {3, 6, 9}, 8);
  AuxLosses losses;
  for (int64_t s = 0; s < stages; ++s) {
    TokenState reduced;
    reduced.x = torch::zeros({batch, 1 + n, 8}, torch::kFloat64);
    reduced.protected_count = 1;
    reduced.keep =
        torch::cat({torch::ones({batch, 1}, torch::kFloat64), decisions.select(0, s)}, 1);
    ScoreContext context;
    context.aux_losses = &losses;
    context.planned_keep = ratios[s].item<double>();
    criterion.add_losses(reduced, context);
  }
  ASSERT_EQ(losses.count("ratio"), 1u);
  const auto& ratio = losses.at("ratio");
  EXPECT_DOUBLE_EQ(ratio.weight, weight);
  const auto total = ratio.sum * (ratio.weight / static_cast<double>(batch));
  expect_close(total, entry(f, "loss"), "loss");
  total.backward();
  expect_close(decisions.grad(), entry(f, "grad_decisions"), "dL/dD_s");

  // No losses without a place to put them (evaluation).
  ScoreContext evaluation;
  TokenState reduced;
  reduced.x = torch::zeros({batch, 1 + n, 8}, torch::kFloat64);
  reduced.protected_count = 1;
  reduced.keep = torch::ones({batch, 1 + n}, torch::kFloat64);
  criterion.add_losses(reduced, evaluation);  // must not crash
}

}  // namespace
