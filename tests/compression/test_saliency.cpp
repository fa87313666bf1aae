// Per-token Taylor saliency (τ from backward), its EMA table keyed by position or token id, and
// the saliency criterion that ranks tokens by it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "compression/method.h"
#include "compression/planner.h"
#include "compression/saliency_criterion.h"
#include "compression/token_saliency.h"

using namespace winnow::compression;

namespace {

constexpr int64_t kBatch = 3, kTokens = 6, kWidth = 4;

// A tiny block y = x + tanh(x W) and a loss L = Σ y·R, in float64.
struct TinyBlock {
  torch::Tensor x, y, readout, loss;
};
TinyBlock tiny_block(int64_t seed = 3) {
  torch::manual_seed(seed);
  const auto weight = torch::randn({kWidth, kWidth}, torch::kFloat64);
  TinyBlock block;
  block.readout = torch::randn({kBatch, kTokens, kWidth}, torch::kFloat64);
  block.x = torch::randn({kBatch, kTokens, kWidth}, torch::kFloat64).requires_grad_(true);
  block.y = block.x + torch::tanh(torch::matmul(block.x, weight));
  block.loss = (block.y * block.y * block.readout).sum();
  return block;
}

SaliencyTableOptions table_options(int64_t keys, double decay = 0.5) {
  SaliencyTableOptions options;
  options.keys = keys;
  options.decay = decay;
  return options;
}

// Step sums [1, 2, keys] holding Σ τ and counts for one source layer.
torch::Tensor sums_of(const std::vector<double>& tau, const std::vector<double>& count) {
  return torch::stack({torch::tensor(tau, torch::kFloat64), torch::tensor(count, torch::kFloat64)})
      .unsqueeze(0);
}

}  // namespace

// τ_i = |⟨∂L/∂y_i, y_i − x_i⟩| against autograd's ∂L/∂y and a per-token loop.
TEST(TokenSaliency, TauIsTheGradientDotTheUpdate) {
  auto block = tiny_block();
  const auto grad = torch::autograd::grad({block.loss}, {block.y}, {}, true)[0];  // [B, N, C]
  const auto tau = token_taylor_saliency(block.x, block.y, grad);
  ASSERT_EQ(tau.sizes(), torch::IntArrayRef({kBatch, kTokens}));
  EXPECT_EQ(tau.scalar_type(), torch::kFloat64);
  for (int64_t b = 0; b < kBatch; ++b) {
    for (int64_t n = 0; n < kTokens; ++n) {
      double dot = 0;
      for (int64_t c = 0; c < kWidth; ++c)
        dot += grad[b][n][c].item<double>() *
               (block.y[b][n][c].item<double>() - block.x[b][n][c].item<double>());
      EXPECT_NEAR(tau[b][n].item<double>(), std::abs(dot), 1e-12) << b << "," << n;
    }
  }
  // ∂L/∂y = 2·y·R: the closed form.
  EXPECT_GT(tau.sum().item<double>(), 0);
  EXPECT_THROW(token_taylor_saliency(block.x, block.y, grad.slice(1, 1)), c10::Error);
}

// The table's backward hook adds Σ τ and counts per key over the counted tokens; update() turns
// them into the mean τ per key (× the gradient scale).
TEST(TokenSaliency, HookAccumulatesTauByKeyOverCountedTokens) {
  auto block = tiny_block();
  const auto grad = torch::autograd::grad({block.loss}, {block.y}, {}, true)[0];
  const auto tau = token_taylor_saliency(block.x, block.y, grad);

  TokenSaliencyTable table(table_options(kTokens), {2});
  // Token 0 protected; sample 1 has token 3 masked; keys are the positions.
  auto keep = torch::ones({kBatch, kTokens}, torch::kFloat64);
  keep[1][3] = 0;
  const auto keys = table.keys_of(torch::arange(kTokens).expand({kBatch, kTokens}), {});
  table.observe(2, block.x, block.y, keep, /*protected_count=*/1, keys);
  EXPECT_THROW(table.observe(5, block.x, block.y, keep, 1, keys), c10::Error);  // no such row
  block.loss.backward();

  const auto sums = table.step_sums();         // [1, 2, keys]
  EXPECT_EQ(sums[0][1][0].item<double>(), 0);  // protected
  EXPECT_EQ(sums[0][1][3].item<double>(), 2);  // masked in one sample
  EXPECT_EQ(sums[0][1][1].item<double>(), 3);
  EXPECT_NEAR(sums[0][0][1].item<double>(), tau.select(1, 1).sum().item<double>(), 1e-12);
  EXPECT_NEAR(sums[0][0][3].item<double>(), tau[0][3].item<double>() + tau[2][3].item<double>(),
              1e-12);

  table.update(sums.clone(), /*gradient_scale=*/4.0);
  const auto values = table.values(2);
  EXPECT_TRUE(std::isinf(values[0].item<double>()));  // never observed: init (+∞)
  EXPECT_NEAR(values[1].item<double>(), 4.0 * tau.select(1, 1).mean().item<double>(), 1e-12);
  EXPECT_NEAR(values[3].item<double>(),
              4.0 * (tau[0][3].item<double>() + tau[2][3].item<double>()) / 2, 1e-12);
  // update() started a fresh step.
  EXPECT_EQ(table.step_sums().abs().sum().item<double>(), 0);
}

// A token a later layer dropped never reaches the loss: its ∂L/∂y is exactly 0 there. It is not
// observed (no τ, no count), so an unseen key stays +∞ and is tried again, instead of being
// recorded as τ = 0 and locked out (the fixed crop the first saliency study measured).
TEST(TokenSaliency, TokensThatDidNotReachTheLossAreNotObserved) {
  auto block = tiny_block();
  TokenSaliencyTable table(table_options(kTokens), {0});
  const auto keys = table.keys_of(torch::arange(kTokens).expand({kBatch, kTokens}), {});
  table.observe(0, block.x, block.y, {}, /*protected_count=*/0, keys);
  // The loss reads only tokens 0-2 (3-5 "pruned after the block").
  const auto loss = (block.y.narrow(1, 0, 3) * block.readout.narrow(1, 0, 3)).sum();
  loss.backward();
  const auto sums = table.step_sums();  // [1, 2, keys]
  for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(sums[0][1][k].item<double>(), kBatch) << k;
  for (int64_t k = 3; k < kTokens; ++k) EXPECT_EQ(sums[0][1][k].item<double>(), 0) << k;
  table.update(sums.clone(), 1.0);
  EXPECT_TRUE(std::isinf(table.values(0)[4].item<double>()));
  EXPECT_GT(table.values(0)[1].item<double>(), 0);
}

// A route leaves the tokens it did not choose on the residual stream (y = x): they skipped the
// block, so they are not observed (τ would be 0 and lock them out, as above).
TEST(TokenSaliency, TokensThatSkippedTheBlockAreNotObserved) {
  torch::manual_seed(5);
  const auto weight = torch::randn({kWidth, kWidth}, torch::kFloat64);
  const auto x = torch::randn({kBatch, kTokens, kWidth}, torch::kFloat64).requires_grad_(true);
  // Tokens 0 and 2 run the block; the others ride the residual.
  auto routed = torch::zeros({1, kTokens, 1}, torch::kFloat64);
  routed[0][0][0] = 1.0;
  routed[0][2][0] = 1.0;
  const auto y = x + routed * torch::tanh(torch::matmul(x, weight));
  TokenSaliencyTable table(table_options(kTokens), {0});
  table.observe(0, x, y, {}, /*protected_count=*/0,
                table.keys_of(torch::arange(kTokens).expand({kBatch, kTokens}), {}));
  (y * y).sum().backward();
  const auto counts = table.step_sums()[0][1];  // [keys]
  for (int64_t k = 0; k < kTokens; ++k)
    EXPECT_EQ(counts[k].item<double>(), k == 0 || k == 2 ? kBatch : 0) << k;
}

// v_k ← τ̄_k at the first observation, then β·v_k + (1 − β)·τ̄_k; keys not observed in a step keep
// their value; keys never observed score init; non-finite means leave the key alone.
TEST(TokenSaliency, EmaUpdateByHand) {
  auto options = table_options(4, /*decay=*/0.75);
  options.init = -1.0;
  TokenSaliencyTable table(options, {0});
  table.update(sums_of({2.0, 0.0, 9.0, 0.0}, {1, 0, 3, 0}), 1.0);
  auto v = table.values(0);
  EXPECT_DOUBLE_EQ(v[0].item<double>(), 2.0);
  EXPECT_DOUBLE_EQ(v[1].item<double>(), -1.0);
  EXPECT_DOUBLE_EQ(v[2].item<double>(), 3.0);
  EXPECT_DOUBLE_EQ(v[3].item<double>(), -1.0);
  table.update(sums_of({0.0, 5.0, 3.0, std::nan("")}, {0, 2, 1, 1}), 2.0);
  v = table.values(0);
  EXPECT_DOUBLE_EQ(v[0].item<double>(), 2.0);                      // not observed: unchanged
  EXPECT_DOUBLE_EQ(v[1].item<double>(), 5.0);                      // first: 2 · 5 / 2
  EXPECT_DOUBLE_EQ(v[2].item<double>(), 0.75 * 3.0 + 0.25 * 6.0);  // 2 · 3 / 1 = 6
  EXPECT_DOUBLE_EQ(v[3].item<double>(), -1.0);                     // NaN: left alone
  EXPECT_EQ(table.non_finite(), 1);
  EXPECT_EQ(table.updates(), 2);
  EXPECT_TRUE(torch::equal(table.observations(0), torch::tensor({1, 1, 2, 0}, torch::kInt64)));
  // A discarded step changes nothing.
  const auto before = table.state();
  table.discard_step();
  EXPECT_TRUE(torch::equal(table.values(0), v));
  EXPECT_THROW(table.update(sums_of({1, 1, 1}, {1, 1, 1}), 1.0), c10::Error);  // wrong shape
  EXPECT_THROW(TokenSaliencyTable(table_options(4, 1.0), {0}), c10::Error);    // decay in [0, 1)
}

// Two halves of a batch (two ranks) give step sums that add up to the whole batch's, so the table
// after the all-reduced update is the whole batch's.
TEST(TokenSaliency, SplitBatchSumsAddUpToTheWholeBatch) {
  auto whole = tiny_block();
  TokenSaliencyTable one(table_options(kTokens), {1});
  const auto positions = torch::arange(kTokens).expand({kBatch, kTokens});
  one.observe(1, whole.x, whole.y, {}, 1, one.keys_of(positions, {}));
  whole.loss.backward();

  auto halves = torch::zeros_like(one.step_sums());
  for (const auto& [begin, end] : {std::pair<int64_t, int64_t>{0, 1}, {1, kBatch}}) {
    auto part = tiny_block();
    TokenSaliencyTable table(table_options(kTokens), {1});
    // This rank's samples only: its own loss on its slice of the batch.
    const auto x = part.x.slice(0, begin, end);
    const auto y = part.y.slice(0, begin, end);
    table.observe(1, x, y, {}, 1, table.keys_of(positions.slice(0, begin, end), {}));
    (y * y * part.readout.slice(0, begin, end)).sum().backward();
    halves += table.step_sums();
  }
  EXPECT_EQ(one.step_sums().select(1, 1).sum().item<double>(), kBatch * (kTokens - 1));
  EXPECT_TRUE(torch::allclose(halves, one.step_sums(), 1e-14, 1e-14));
}

// Keys by token id: the input token at each slot's original position; fused slots (pos −1) get
// key −1 and score init; keys beyond the table are an error when observed.
TEST(TokenSaliency, KeysByTokenIdFollowThePositions) {
  auto options = table_options(10);
  options.key = SaliencyKey::kToken;
  TokenSaliencyTable table(options, {0});
  const auto token_ids = torch::tensor({{7, 3, 9, 3}, {1, 2, 8, 0}}, torch::kInt64);  // [2, 4]
  const auto positions = torch::tensor({{0, 2, 3}, {1, 3, -1}}, torch::kInt64);       // [2, 3]
  const auto keys = table.keys_of(positions, token_ids);
  EXPECT_TRUE(torch::equal(keys, torch::tensor({{7, 9, 3}, {2, 0, -1}}, torch::kInt64)));
  EXPECT_THROW(table.keys_of(positions, {}), c10::Error);  // token keys need token ids
  // Same token, same key: both 3s share one slot.
  table.update(sums_of({0, 0, 0, 6, 0, 0, 0, 1, 0, 0}, {0, 0, 0, 2, 0, 0, 0, 1, 0, 0}), 1.0);
  const auto scores = table.lookup(0, keys);
  EXPECT_DOUBLE_EQ(scores[0][0].item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(scores[0][2].item<double>(), 3.0);
  EXPECT_TRUE(std::isinf(scores[1][2].item<double>()));  // fused slot

  auto block = tiny_block();
  auto big = torch::full({kBatch, kTokens}, 10, torch::kInt64);
  EXPECT_THROW(table.observe(0, block.x, block.y, {}, 0, big), c10::Error);
}

// The criterion's scores are the table values of the tokens' keys (the source layer's row),
// protected tokens 0, and prune keeps the highest.
TEST(SaliencyCriterion, ScoresFollowTheTable) {
  SaliencyCriterion criterion(table_options(kTokens), /*source_layer=*/-1);
  torch::nn::Module stage;
  criterion.create_parameters(stage, {2, 3}, kWidth);
  ASSERT_NE(criterion.saliency_table(), nullptr);
  EXPECT_EQ(criterion.saliency_table()->layers(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(stage.parameters().empty());
  EXPECT_FALSE(criterion.learned());

  auto table = criterion.saliency_table();
  auto sums = torch::zeros({2, 2, kTokens}, torch::kFloat64);
  // Layer 2's row: τ̄ = 0, 5, 1, 4, 2, 3 by position; layer 3's: reversed.
  const auto row = torch::tensor({0.0, 5.0, 1.0, 4.0, 2.0, 3.0}, torch::kFloat64);
  sums[0][0] = row;
  sums[1][0] = row.flip(0);
  sums.select(1, 1).fill_(1);
  table->update(sums, 1.0);

  TokenState state;
  state.x = torch::randn({kBatch, kTokens, kWidth});
  state.protected_count = 1;
  ScoreContext context;
  context.layer = 2;
  const auto scores = criterion.score(state, context);
  EXPECT_EQ(scores.sizes(), torch::IntArrayRef({kBatch, kTokens}));
  for (int64_t b = 0; b < kBatch; ++b) {
    EXPECT_EQ(scores[b][0].item<float>(), 0);
    for (int64_t n = 1; n < kTokens; ++n)
      EXPECT_EQ(scores[b][n].item<double>(), row[n].item<double>());
  }
  // prune keeps the 2 highest: positions 1 (5) and 3 (4), in their original order.
  auto method = Method::make("saliency", "prune");
  const auto kept = make_strategy("prune")->apply(state, scores, 2);
  EXPECT_TRUE(torch::equal(kept.positions()[0], torch::tensor({0, 1, 3}, torch::kInt64)));
  // Layer 3 reads its own row: positions 2 and 4 (row reversed: 2.0 → 4, 4.0 → 2 ...).
  context.layer = 3;
  const auto kept3 = make_strategy("prune")->apply(state, criterion.score(state, context), 2);
  EXPECT_TRUE(torch::equal(kept3.positions()[0], torch::tensor({0, 2, 4}, torch::kInt64)));
  // A pruned state keeps its original positions, so a later layer looks up the same keys.
  context.layer = 2;
  const auto rescored = criterion.score(kept3, context);
  EXPECT_EQ(rescored[0][1].item<double>(), row[2].item<double>());
  EXPECT_EQ(rescored[0][2].item<double>(), row[4].item<double>());
  context.layer = 4;
  EXPECT_THROW(criterion.score(state, context), c10::Error);  // no row for layer 4
}

// With a source layer, every reducing layer reads that one row.
TEST(SaliencyCriterion, SourceLayerFeedsEveryReducingLayer) {
  SaliencyCriterion criterion(table_options(kTokens), /*source_layer=*/0);
  torch::nn::Module stage;
  criterion.create_parameters(stage, {2, 3}, kWidth);
  EXPECT_EQ(criterion.saliency_table()->layers(), (std::vector<int64_t>{0}));
  EXPECT_EQ(criterion.source_of(3), 0);
  // Before any update every key is unseen: +∞, clamped to the largest float (finite differences).
  TokenState state;
  state.x = torch::randn({kBatch, kTokens, kWidth});
  state.protected_count = 1;
  ScoreContext context;
  context.layer = 3;
  const auto scores = criterion.score(state, context);
  EXPECT_TRUE(torch::isfinite(scores).all().item<bool>());
  EXPECT_EQ(scores[0][1].item<double>(), std::numeric_limits<float>::max());
  EXPECT_EQ(scores[0][0].item<double>(), 0);
}

// Top-k membership by τ: the target a router loss can use.
TEST(TokenSaliency, TopKMembership) {
  const auto tau = torch::tensor({{9.0, 1.0, 3.0, 3.0, 2.0}, {0.0, 5.0, 4.0, 6.0, 1.0}});
  const auto m = saliency_top_k_membership(tau, 1, 2);
  EXPECT_TRUE(torch::equal(
      m, torch::tensor({{0.0, 0.0, 1.0, 1.0, 0.0}, {0.0, 1.0, 0.0, 1.0, 0.0}}, tau.options())));
  EXPECT_EQ(saliency_top_k_membership(tau, 1, 9).sum().item<double>(), 8);
  EXPECT_EQ(saliency_top_k_membership(tau, 0, 0).sum().item<double>(), 0);
}

// state() → load_state() restores the table bit for bit; shapes and names are checked.
TEST(TokenSaliency, StateRoundTrip) {
  TokenSaliencyTable table(table_options(5, 0.9), {1, 3});
  auto sums = torch::rand({2, 2, 5}, torch::kFloat64);
  sums[1][1][2] = 0;
  table.update(sums, 3.0);
  table.update(torch::rand({2, 2, 5}, torch::kFloat64), 3.0);
  TokenSaliencyTable copy(table_options(5, 0.9), {1, 3});
  copy.load_state(table.state());
  for (const int64_t layer : {1, 3}) {
    EXPECT_TRUE(torch::equal(copy.values(layer), table.values(layer)));
    EXPECT_TRUE(torch::equal(copy.observations(layer), table.observations(layer)));
  }
  EXPECT_EQ(copy.updates(), 2);
  TokenSaliencyTable other(table_options(6), {1, 3});
  EXPECT_THROW(other.load_state(table.state()), c10::Error);
  auto extra = table.state();
  extra["bogus"] = torch::zeros({1});
  EXPECT_THROW(copy.load_state(extra), c10::Error);
}

namespace {

StaticPlannerConfig saliency_stage(const std::string& key, int64_t source_layer) {
  StaticPlannerConfig config;
  config.stages.push_back({"sal", {}});
  auto& r = config.stages.back().reduction;
  r.criterion = "saliency";
  r.strategy = "prune";
  r.layers = {2, 3};
  r.keep = {0.5};
  r.warmup_steps = 3;
  r.saliency_key = key;
  r.saliency_layer = source_layer;
  return config;
}

}  // namespace

// The planner sizes the table from the model (positions: tokens; token ids: vocabulary), lists
// it for the trainer, has the source blocks observe in training (warmup included, not in eval),
// and saves the table as its state.
TEST(SaliencyStage, PlannerMakesObservesAndSavesTheTable) {
  ModelShape shape{4, kWidth, 4, 4};
  shape.tokens = 17;
  shape.protected_tokens = 1;
  StaticPlanner planner(saliency_stage("auto", 1), shape);
  EXPECT_EQ(planner.parameters(), nullptr);
  ASSERT_EQ(planner.saliency_tables().size(), 1u);
  const auto table = planner.saliency_tables()[0];
  EXPECT_EQ(table->options().keys, 17);
  EXPECT_EQ(table->options().key, SaliencyKey::kPosition);
  EXPECT_EQ(table->layers(), (std::vector<int64_t>{1}));

  const auto warmup = planner.plan(0, /*training=*/true);
  EXPECT_TRUE(warmup.layers[2].reductions.empty());
  ASSERT_EQ(warmup.layers[1].saliency.size(), 1u);
  EXPECT_EQ(warmup.layers[1].saliency[0], table);
  EXPECT_TRUE(warmup.layers[2].saliency.empty());
  EXPECT_EQ(planner.plan(5, true).layers[2].reductions.size(), 1u);
  for (const auto& layer : planner.plan(5, /*training=*/false).layers)
    EXPECT_TRUE(layer.saliency.empty());

  table->update(torch::rand({1, 2, 17}, torch::kFloat64), 1.0);
  const auto state = planner.state();
  EXPECT_TRUE(state.count("saliency.sal.ema"));
  StaticPlanner resumed(saliency_stage("auto", 1), shape);
  resumed.load_state(state);
  EXPECT_TRUE(torch::equal(resumed.saliency_tables()[0]->values(1), table->values(1)));
  EXPECT_THROW(resumed.load_state({{"saliency.other.ema", torch::zeros({1, 17})}}), c10::Error);

  // Text models key by token id over the vocabulary.
  ModelShape text{4, kWidth, 0, 0};
  text.tokens = 8;
  text.vocab = 50;
  StaticPlanner by_token(saliency_stage("auto", -1), text);
  EXPECT_EQ(by_token.saliency_tables()[0]->options().key, SaliencyKey::kToken);
  EXPECT_EQ(by_token.saliency_tables()[0]->options().keys, 50);
  EXPECT_EQ(by_token.saliency_tables()[0]->layers(), (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(StaticPlanner(saliency_stage("token", -1), shape), c10::Error);  // no vocabulary
  EXPECT_THROW(StaticPlanner(saliency_stage("patch", -1), shape), c10::Error);
  EXPECT_THROW(StaticPlanner(saliency_stage("auto", 4), shape), c10::Error);  // layer ≥ depth
}
