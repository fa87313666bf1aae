// Mixture-of-Depths routing (criterion router, strategy weighted_route, causal routing) against
// the paper's equations on hand-sized inputs.
#include <gtest/gtest.h>

#include <torch/torch.h>
#include <memory>

#include "compression/method.h"
#include "compression/route_predictor.h"
#include "compression/router_criterion.h"
#include "compression/schedule.h"
#include "compression/weighted_route.h"

using namespace winnow::compression;

namespace {

// A router criterion with parameters for layer 0 of width 2 and router weight w.
struct HandRouter {
  explicit HandRouter(std::vector<double> w, RouterLosses losses = {}) : criterion(losses) {
    criterion.create_parameters(stage, {0}, 2);
    torch::NoGradGuard no_grad;
    criterion.layer(0)->router->weight.copy_(torch::tensor(w).view({1, 2}));
  }
  torch::nn::Module stage;
  RouterCriterion criterion;
};

// Four tokens of width 2: router scores r = wᵀx = [1, 0.5, 2, −0.5] for w = [1, 0.5].
TokenState four_tokens() {
  TokenState state;
  state.x = torch::tensor({1.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, -1.0}).view({1, 4, 2});
  return state;
}

// The criterion's auxiliary losses on four_tokens() (x tracking gradients) with tokens 0 and 2
// routed (the top-2 of r = [1, 0.5, 2, −0.5]).
struct RouterLossRun {
  TokenState state;       // four_tokens(), x.requires_grad
  TokenState membership;  // state with keep = [1, 0, 1, 0]
  AuxLosses losses;
  AuxMetrics metrics;
};
std::unique_ptr<RouterLossRun> add_router_losses(const RouterCriterion& criterion) {
  auto run = std::make_unique<RouterLossRun>();
  run->state = four_tokens();
  run->state.x.requires_grad_(true);
  run->membership = run->state;
  run->membership.keep = torch::tensor({{1.0, 0.0, 1.0, 0.0}});
  ScoreContext context;
  context.aux_losses = &run->losses;
  context.metrics = &run->metrics;
  criterion.add_losses(run->membership, context);
  return run;
}

// A stand-in block f(x̃) = 2x̃ + 1 (its update f(x̃) − x̃ = x̃ + 1).
void stand_in_block(TokenState& s) {
  s.x = s.x * 2 + 1;
}

// One weighted MoD step: top-⌊c·S⌋ by router score, the block on those, x + w(r)·update.
TokenState mod_step(const RouterCriterion& criterion, const TokenState& state, double capacity,
                    const StrategyOptions& options) {
  ScoreContext context;
  const auto scores = criterion.score(state, context);
  auto routed = route_gather(state, scores, router_capacity(capacity, state.reducible()));
  const auto input = routed.state.x;
  stand_in_block(routed.state);
  const auto weights =
      routed_update_weights(scores, routed.indices, state.protected_count, options);
  return weighted_route_scatter(state, input, routed.state, routed.indices, weights);
}

}  // namespace

// x_{l+1,i} = x_i + σ(r_i)·f_i(X̃) − … with r = [1, 0.5, 2, −0.5], C = ⌊0.5·4⌋ = 2: tokens 0
// (r = 1) and 2 (r = 2) run the block, with updates [2, 1] and [3, 1]; tokens 1 and 3 ride the
// residual. σ(1) = 0.7310585786, σ(2) = 0.8807970780.
TEST(Router, SigmoidWeightingMatchesThePaperByHand) {
  HandRouter hand({1.0, 0.5});
  const auto out = mod_step(hand.criterion, four_tokens(), 0.5, StrategyOptions());
  const auto expected = torch::tensor({1.0 + 2 * 0.7310585786, 1 * 0.7310585786,  //
                                       0.0, 1.0,                                  //
                                       2.0 + 3 * 0.8807970780, 1 * 0.8807970780,  //
                                       0.0, -1.0})
                            .view({1, 4, 2})
                            .to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(out.x, expected, 1e-6, 1e-6)) << out.x;
}

// p-MoD's TanhNorm w = 0.2·tanh(r) + 1: 0.2·tanh(1) + 1 = 1.1523188312, 0.2·tanh(2) + 1 =
// 1.1928055160.
TEST(Router, TanhWeightingMatchesPModByHand) {
  HandRouter hand({1.0, 0.5});
  const auto options = StrategyOptions().router_weight("tanh").tanh_alpha(0.2).tanh_beta(1.0);
  const auto out = mod_step(hand.criterion, four_tokens(), 0.5, options);
  const auto expected = torch::tensor({1.0 + 2 * 1.1523188312, 1 * 1.1523188312,  //
                                       0.0, 1.0,                                  //
                                       2.0 + 3 * 1.1928055160, 1 * 1.1928055160,  //
                                       0.0, -1.0})
                            .view({1, 4, 2})
                            .to(torch::kFloat32);
  EXPECT_TRUE(torch::allclose(out.x, expected, 1e-6, 1e-6)) << out.x;
}

// The residual is added once: a block whose update is zero leaves every token unchanged (the
// community port that adds the whole block output onto a clone of x doubles the routed tokens).
TEST(Router, ResidualIsAddedOnceNotDoubleCounted) {
  HandRouter hand({1.0, 0.5});
  const auto state = four_tokens();
  const auto scores = hand.criterion.score(state, {});
  auto routed = route_gather(state, scores, 2);
  const auto input = routed.state.x;  // identity block: output = input
  const auto weights = routed_update_weights(scores, routed.indices, 0, StrategyOptions());
  const auto out = weighted_route_scatter(state, input, routed.state, routed.indices, weights);
  EXPECT_TRUE(torch::equal(out.x, state.x));
}

// C = ⌊c·S⌋ exactly, also when every score ties (a `weights > kth_value` selection, as in
// astramind-ai/Mixture-of-depths, picks k − 1 tokens, or none under ties).
TEST(Router, ExactlyCapacityTokensEvenWithTiesNotKMinusOne) {
  EXPECT_EQ(router_capacity(0.125, 128), 16);
  EXPECT_EQ(router_capacity(0.125, 127), 15);  // ⌊15.875⌋, not ceil
  EXPECT_EQ(router_capacity(0.3, 10), 3);
  EXPECT_EQ(router_capacity(0.01, 10), 1);  // at least one token
  EXPECT_EQ(router_capacity(1.0, 10), 10);
  EXPECT_THROW(router_capacity(0.0, 10), c10::Error);
  TokenState state;
  state.x = torch::randn({3, 128, 4});
  for (const auto& scores : {torch::zeros({3, 128}), torch::randn({3, 128})}) {
    const auto routed = route_gather(state, scores, router_capacity(0.125, 128));
    EXPECT_EQ(routed.indices.size(1), 16);
    // 16 distinct tokens per sample.
    for (int64_t b = 0; b < 3; ++b)
      EXPECT_EQ(std::get<0>(at::_unique(routed.indices[b])).numel(), 16);
  }
}

// The routed tokens keep their original positions (no renumbering to 0..C−1, the RoPE bug of
// slicing freqs_cis[:k]), in ascending order, so the block's causal mask is the original one.
TEST(Router, RoutedTokensKeepTheirOriginalPositions) {
  HandRouter hand({1.0, 0.5});
  const auto state = four_tokens();
  const auto routed = route_gather(state, hand.criterion.score(state, {}), 2);
  EXPECT_TRUE(torch::equal(routed.state.pos, torch::tensor({{0, 2}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(routed.indices, torch::tensor({{0, 2}}, torch::kInt64)));
}

// The router is on the gradient path through w(r)·update: its weight gets a gradient, with both
// weightings; the tokens that skip contribute the identity (gradient 1 to their input).
TEST(Router, GradientReachesTheRouterWeights) {
  for (const std::string weighting : {"sigmoid", "tanh"}) {
    HandRouter hand({1.0, 0.5});
    auto state = four_tokens();
    state.x.requires_grad_(true);
    const auto out =
        mod_step(hand.criterion, state, 0.5, StrategyOptions().router_weight(weighting));
    out.x.sum().backward();
    const auto grad = hand.criterion.layer(0)->router->weight.grad();
    ASSERT_TRUE(grad.defined()) << weighting;
    EXPECT_GT(grad.abs().sum().item<double>(), 1e-3) << weighting;
    // Token 1 skipped the block: ∂Σout/∂x_1 = 1 (residual) + its share of the router's gradient
    // (its score is read, but it was not routed, so only the identity).
    EXPECT_TRUE(torch::allclose(state.x.grad()[0][1], torch::ones({2}))) << weighting;
  }
}

// A batch of two samples with different winners gives each sample what it gets alone.
TEST(Router, BatchOfTwoWithDifferentWinnersMatchesEachAlone) {
  HandRouter hand({1.0, 0.5});
  TokenState batch;
  batch.x = torch::cat({four_tokens().x, four_tokens().x.flip(1)}, 0);  // [2, 4, 2]
  const auto scores = hand.criterion.score(batch, {});
  const auto routed = route_gather(batch, scores, 2);
  EXPECT_TRUE(torch::equal(routed.indices, torch::tensor({{0, 2}, {1, 3}}, torch::kInt64)));
  const auto together = mod_step(hand.criterion, batch, 0.5, StrategyOptions());
  for (int64_t b = 0; b < 2; ++b) {
    TokenState one;
    one.x = batch.x.slice(0, b, b + 1);
    const auto alone = mod_step(hand.criterion, one, 0.5, StrategyOptions());
    EXPECT_TRUE(torch::allclose(together.x.slice(0, b, b + 1), alone.x)) << b;
  }
}

// Protected leading tokens always run the block, with weight 1.
TEST(Router, ProtectedTokensRunUnscaled) {
  const auto scores = torch::tensor({{5.0, 1.0, 2.0}});
  const auto indices = torch::tensor({{0, 2}}, torch::kInt64);
  const auto weights = routed_update_weights(scores, indices, 1, StrategyOptions());
  EXPECT_TRUE(torch::allclose(
      weights, torch::tensor({{1.0, 0.8807970780}}).to(torch::kFloat64).to(weights.scalar_type())));
}

// The predictor reads stop-gradient inputs: its loss trains its own parameters and nothing
// upstream, nor the router.
TEST(Router, PredictorLossReachesOnlyThePredictor) {
  HandRouter hand({1.0, 0.5});
  const auto run = add_router_losses(hand.criterion);
  const auto& [state, membership, losses, metrics] = *run;
  ASSERT_EQ(losses.count("router_predictor"), 1u);
  losses.at("router_predictor").sum.backward();
  EXPECT_FALSE(state.x.grad().defined());
  EXPECT_FALSE(hand.criterion.layer(0)->router->weight.grad().defined());
  EXPECT_TRUE(hand.criterion.layer(0)->predictor->fc1->weight.grad().defined());
  ASSERT_EQ(metrics.count("router_predictor_accuracy"), 1u);
  EXPECT_EQ(metrics.at("router_predictor_accuracy").count, 4.0);
}

// Saliency supervision (co_compression.md §7.6 point 5): a BCE between σ(r) and the top-C by the
// τ table. r = [1, 0.5, 2, −0.5] routes tokens 0 and 2 (C = 2); the table ranks positions 1 and 3
// highest, so the target is [0, 1, 0, 1] and no routed token agrees with it.
TEST(Router, SaliencyLossIsTheBceTowardTheTopCByTheTable) {
  RouterLosses weights;
  weights.saliency.loss = 0.5;
  weights.saliency.table.keys = 4;
  HandRouter hand({1.0, 0.5}, weights);
  const auto& criterion = hand.criterion;
  auto table = criterion.saliency_table();
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->layers(), std::vector<int64_t>{0});
  const auto tau = torch::tensor({0.1, 5.0, 0.2, 3.0}, torch::kFloat64);
  table->update(torch::stack({tau, torch::ones(4, torch::kFloat64)}).unsqueeze(0), 1.0);

  const auto run = add_router_losses(criterion);
  const auto& [state, membership, losses, metrics] = *run;
  ASSERT_EQ(losses.count("router_saliency"), 1u);
  EXPECT_DOUBLE_EQ(losses.at("router_saliency").weight, 0.5);
  // BCE(σ(r), 0) = log(1 + e^r), BCE(σ(r), 1) = log(1 + e^{−r}).
  const double expected = 0.25 * (std::log1p(std::exp(1.0)) + std::log1p(std::exp(-0.5)) +
                                  std::log1p(std::exp(2.0)) + std::log1p(std::exp(0.5)));
  EXPECT_NEAR(losses.at("router_saliency").sum.item<double>(), expected, 1e-6);
  ASSERT_EQ(metrics.count("router_saliency_agreement"), 1u);
  EXPECT_EQ(metrics.at("router_saliency_agreement").sum, 0.0);
  EXPECT_EQ(metrics.at("router_saliency_agreement").count, 2.0);
  // It trains the router's w only: not the tokens, not the predictor.
  losses.at("router_saliency").sum.backward();
  EXPECT_FALSE(state.x.grad().defined());
  EXPECT_TRUE(criterion.layer(0)->router->weight.grad().defined());
  EXPECT_FALSE(criterion.layer(0)->predictor->fc1->weight.grad().defined());
}

// MoD's other causal fix: a BCE with the router's own logits against their top-C membership. It
// is part of the objective: it reaches w and the tokens (the blocks below), not the predictor.
TEST(Router, TopkLossIsTheRoutersOwnBceAgainstItsMembership) {
  RouterLosses weights;
  weights.topk = 0.25;
  HandRouter hand({1.0, 0.5}, weights);
  const auto& criterion = hand.criterion;
  const auto run = add_router_losses(criterion);
  const auto& [state, membership, losses, metrics] = *run;
  ASSERT_EQ(losses.count("router_topk"), 1u);
  EXPECT_DOUBLE_EQ(losses.at("router_topk").weight, 0.25);
  // r = [1, 0.5, 2, −0.5] against [1, 0, 1, 0].
  const double expected = 0.25 * (std::log1p(std::exp(-1.0)) + std::log1p(std::exp(0.5)) +
                                  std::log1p(std::exp(-2.0)) + std::log1p(std::exp(-0.5)));
  EXPECT_NEAR(losses.at("router_topk").sum.item<double>(), expected, 1e-6);
  losses.at("router_topk").sum.backward();
  EXPECT_TRUE(state.x.grad().defined());
  EXPECT_TRUE(criterion.layer(0)->router->weight.grad().defined());
  EXPECT_FALSE(criterion.layer(0)->predictor->fc1->weight.grad().defined());
  // Off by default.
  HandRouter plain({1.0, 0.5});
  const auto none = add_router_losses(plain.criterion);
  EXPECT_EQ(none->losses.count("router_topk"), 0u);
  EXPECT_EQ(none->losses.count("router_predictor"), 1u);
}

// Without a weight there is no table and no loss; the option belongs to the router alone.
TEST(Router, SaliencyLossIsOffByDefaultAndRouterOnly) {
  HandRouter hand({1.0, 0.5});
  EXPECT_EQ(hand.criterion.saliency_table(), nullptr);
  ReductionConfig c;
  c.criterion = "norm";
  c.strategy = "route";
  c.layers = {1};
  c.keep = {0.5};
  c.router_saliency_loss = 1.0;
  try {
    ReductionSchedule(c, 4);
    FAIL() << "router_saliency_loss with criterion norm was accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(error.msg().find("router_saliency_loss"), std::string::npos) << error.msg();
  }
}

TEST(Router, PredictorLossIsTheMeanBceSummedOverSamples) {
  const auto logits = torch::tensor({{0.0, 2.0}, {-1.0, 1.0}});
  const auto membership = torch::tensor({{1.0, 0.0}, {0.0, 1.0}});
  // BCE(σ(z), y) = log(1 + e^{−z}) for y = 1, log(1 + e^{z}) for y = 0.
  const double expected = 0.5 * (std::log(2.0) + std::log1p(std::exp(2.0))) +
                          0.5 * (std::log1p(std::exp(-1.0)) + std::log1p(std::exp(-1.0)));
  EXPECT_NEAR(route_predictor_loss(logits, membership).item<double>(), expected, 1e-6);
  EXPECT_EQ(route_predictor_correct(logits, membership), 2.0);  // (0 → no, 1) wrong, (2, 0) wrong
}

// Causal routing: token t runs iff its log-odds > 0; samples with different counts are padded
// with inactive, fully masked slots; decisions read each token alone.
TEST(Router, CausalGatherRoutesByThePredictorsSign) {
  TokenState state;
  state.x = torch::arange(10, torch::kFloat32).view({2, 5, 1});
  const auto log_odds = torch::tensor({{1.0, -1.0, 2.0, -3.0, 0.5}, {-1.0, -1.0, 3.0, -1.0, -2.0}});
  const auto causal = causal_route_gather(state, log_odds);
  // Sample 0 routes 0, 2, 4; sample 1 routes 2, padded with its earliest unchosen tokens 0, 1.
  EXPECT_TRUE(
      torch::equal(causal.routed.indices, torch::tensor({{0, 2, 4}, {0, 1, 2}}, torch::kInt64)));
  EXPECT_TRUE(
      torch::equal(causal.active, torch::tensor({{true, true, true}, {false, false, true}})));
  EXPECT_TRUE(torch::equal(causal.routed.state.keep, causal.active.to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(causal.routed.state.pos, causal.routed.indices));
  // Inactive slots add nothing, even when the block left NaN in them.
  TokenState processed = causal.routed.state;
  processed.x = torch::where(causal.active.unsqueeze(-1), processed.x + 1,
                             torch::full_like(processed.x, NAN));
  const auto out =
      weighted_route_scatter(state, causal.routed.state.x, processed, causal.routed.indices,
                             torch::ones({2, 3}), causal.active);
  const auto expected =
      state.x + torch::tensor({{1.0, 0.0, 1.0, 0.0, 1.0}, {0.0, 0.0, 1.0, 0.0, 0.0}}).unsqueeze(-1);
  EXPECT_TRUE(torch::equal(out.x, expected)) << out.x;
}

TEST(Router, CausalEvalNeedsAPredictingCriterionAndARoute) {
  auto with_router = Method::make("router", "weighted_route");
  EXPECT_NO_THROW(with_router.set_causal_eval());
  EXPECT_TRUE(with_router.causal_eval());
  auto without = Method::make("norm", "weighted_route");
  EXPECT_THROW(without.set_causal_eval(), c10::Error);
  auto not_routing = Method::make("router", "mask", {}, StrategyOptions().straight_through(true));
  EXPECT_THROW(not_routing.set_causal_eval(), c10::Error);
}

// The router is learned: it trains only through a strategy that scales the update by w(r)
// (random-LTD's plain route passes no gradient to the scores).
TEST(Router, PairsWithWeightedRouteNotWithPlainRoute) {
  EXPECT_NO_THROW(Method::make("router", "weighted_route"));
  EXPECT_THROW(Method::make("router", "route"), c10::Error);
  EXPECT_THROW(make_strategy("weighted_route", StrategyOptions().router_weight("softmax")),
               c10::Error);
}

// The stage options: eval = causal needs the router; weighted_route evaluates with its router by
// default (auto), unlike random-LTD's route; a bad router_weight names the option.
TEST(Router, StageOptionsAreCheckedAndNamed) {
  ReductionConfig c;
  c.criterion = "router";
  c.strategy = "weighted_route";
  c.layers = {1, 3};
  c.keep = {0.125};
  const ReductionSchedule automatic(c, 4);
  EXPECT_TRUE(automatic.reduce_in_eval());
  EXPECT_FALSE(automatic.method().causal_eval());
  c.eval = "causal";
  const ReductionSchedule causal(c, 4);
  EXPECT_TRUE(causal.method().causal_eval());
  EXPECT_NE(causal.describe().find("causal routing in eval"), std::string::npos);
  c.criterion = "norm";
  try {
    ReductionSchedule bad(c, 4);
    ADD_FAILURE() << "eval = causal with criterion norm was accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.msg()).find("compress.eval"), std::string::npos) << error.msg();
  }
  c.criterion = "router";
  c.eval = "same";
  c.router_weight = "softmax";
  try {
    ReductionSchedule bad(c, 4);
    ADD_FAILURE() << "router_weight = softmax was accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.msg()).find("compress.router_weight"), std::string::npos)
        << error.msg();
  }
}
