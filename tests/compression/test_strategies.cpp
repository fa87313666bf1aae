// Each strategy's behaviour on small hand-checkable inputs, the registry and the pairing rules.
#include <gtest/gtest.h>

#include "compression/criterion_registry.h"
#include "compression/mask.h"
#include "compression/merge.h"
#include "compression/pairing.h"
#include "compression/pool.h"
#include "compression/prune.h"
#include "compression/route.h"
#include "compression/strategy_registry.h"

using namespace winnow::compression;

namespace {

// x[b, n, :] = n + 1 (so a token's value tells where it came from), one CLS.
TokenState numbered_state(int64_t batch, int64_t tokens, int64_t channels) {
  TokenState state;
  state.x = (torch::arange(tokens, torch::kFloat32) + 1)
                .view({1, tokens, 1})
                .expand({batch, tokens, channels})
                .clone();
  state.protected_count = 1;
  return state;
}

TEST(Prune, KeepsTopScoresInOriginalOrder) {
  auto state = numbered_state(1, 6, 2);
  const auto scores = torch::tensor({{0.0f, 0.1f, 0.9f, 0.3f, 0.8f, 0.2f}});
  const auto out = PruneStrategy().apply(state, scores, 3);
  EXPECT_TRUE(torch::equal(out.pos, torch::tensor({{0, 2, 3, 4}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(out.x.select(2, 0), torch::tensor({{1.0f, 3.0f, 4.0f, 5.0f}})));
  EXPECT_FALSE(out.size.defined());
  const auto evit = PruneStrategy(StrategyOptions().descending_order(true)).apply(state, scores, 3);
  EXPECT_TRUE(torch::equal(evit.pos, torch::tensor({{0, 2, 4, 3}}, torch::kInt64)));
}

TEST(Prune, FuseAddsTheScoreWeightedSumOfTheDropped) {
  auto state = numbered_state(1, 5, 1);
  const auto scores = torch::tensor({{0.0f, 0.1f, 0.5f, 0.15f, 0.25f}});
  const auto out = PruneStrategy(StrategyOptions().fuse(true)).apply(state, scores, 2);
  ASSERT_EQ(out.tokens(), 4);
  // Dropped tokens 1 (value 2) and 3 (value 4): 0.1·2 + 0.15·4 = 0.8.
  EXPECT_NEAR(out.x[0][3][0].item<float>(), 0.8f, 1e-6);
  EXPECT_EQ(out.pos[0][3].item<int64_t>(), -1);
  EXPECT_EQ(PruneStrategy(StrategyOptions().fuse(true)).output_tokens(5, 1, 2), 4);
}

TEST(Prune, MaskedTokensRankLast) {
  auto state = numbered_state(1, 5, 1);
  state.keep = torch::tensor({{1.0f, 1.0f, 0.0f, 1.0f, 1.0f}});
  const auto scores = torch::tensor({{0.0f, 0.1f, 0.9f, 0.3f, 0.2f}});
  const auto out = PruneStrategy().apply(state, scores, 2);
  EXPECT_TRUE(torch::equal(out.pos, torch::tensor({{0, 3, 4}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(out.keep, torch::ones({1, 3})));
}

TEST(Prune, RejectsBadInputs) {
  auto state = numbered_state(2, 5, 3);
  EXPECT_THROW(PruneStrategy().apply(state, torch::zeros({2, 4}), 2), c10::Error);
  EXPECT_THROW(PruneStrategy().apply(state, torch::zeros({2, 5}), -1), c10::Error);
  EXPECT_EQ(keep_count_for_rate(0.7, 196), 138);  // EViT: ceil(0.7 · 196)
  EXPECT_EQ(keep_count_for_rate(0.5, 9), 5);
  EXPECT_THROW(keep_count_for_rate(0.0, 9), c10::Error);
}

TEST(Merge, MatchesAHandWorkedExample) {
  // N = 5 with CLS. A = {0, 2, 4}, B = {1, 3}. Token 2 is most similar to 3, token 4 to 1.
  TokenState state = numbered_state(1, 5, 1);
  const auto metric = torch::tensor({{{1.0f, 0.0f, 0.0f},
                                      {0.0f, 1.0f, 0.1f},
                                      {0.0f, 0.2f, 1.0f},
                                      {0.0f, 0.1f, 1.0f},
                                      {0.0f, 1.0f, 0.5f}}});
  const auto matching = bipartite_soft_matching(metric, 1, 1);
  EXPECT_TRUE(torch::equal(matching.sources, torch::tensor({{1}}, torch::kInt64)));  // token 2
  EXPECT_TRUE(torch::equal(matching.destinations, torch::tensor({{1}}, torch::kInt64)));
  const auto out = merge_tokens(state, matching);
  // Output: [CLS, token 4 | token 1, token 3 + token 2].
  EXPECT_TRUE(torch::equal(out.pos, torch::tensor({{0, 4, 1, 3}}, torch::kInt64)));
  EXPECT_TRUE(torch::allclose(out.x.squeeze(-1), torch::tensor({{1.0f, 5.0f, 2.0f, 3.5f}})));
  EXPECT_TRUE(torch::equal(out.size.squeeze(-1), torch::tensor({{1.0f, 1.0f, 1.0f, 2.0f}})));
}

TEST(Merge, CapsRAndWeighsBySize) {
  TokenState state = numbered_state(1, 5, 1);
  state.size = torch::tensor({{1.0f, 1.0f, 3.0f, 1.0f, 1.0f}}).unsqueeze(-1);
  torch::manual_seed(0);
  const auto metric = torch::randn({1, 5, 4}, torch::TensorOptions().dtype(torch::kFloat32));
  EXPECT_EQ(merge_count_limit(5, 1), 2);
  EXPECT_EQ(MergeStrategy().output_tokens(5, 1, 0), 3);
  const auto out = MergeStrategy().apply(state, {}, 0, metric);
  EXPECT_EQ(out.tokens(), 3);
  EXPECT_FLOAT_EQ(out.size.sum().item<float>(), 7.0f);
  // Σ size·x is conserved by a size-weighted average.
  EXPECT_NEAR((out.x * out.size).sum().item<float>(), (state.x * state.size).sum().item<float>(),
              1e-4);
}

TEST(Merge, KeepMergesByMaximum) {
  TokenState state = numbered_state(1, 3, 1);
  state.protected_count = 0;
  state.keep = torch::tensor({{1.0f, 0.0f, 0.0f}});
  const auto metric = torch::tensor({{{1.0f, 0.0f}, {1.0f, 0.1f}, {0.0f, 1.0f}}});
  const auto out = MergeStrategy().apply(state, {}, 1, metric);  // token 0 merges into token 1
  EXPECT_TRUE(torch::equal(out.pos, torch::tensor({{2, 1}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(out.keep, torch::tensor({{0.0f, 1.0f}})));
}

TEST(Merge, KeepOrderPermutesToMesOutputIntoCurrentOrder) {
  torch::manual_seed(9);
  TokenState state;
  state.x = torch::randn({2, 13, 3});
  state.protected_count = 1;
  const auto matching = bipartite_soft_matching(torch::randn({2, 13, 4}), 4, 1);
  const auto tome = merge_tokens(state, matching);
  const auto ordered = merge_tokens(state, matching, /*keep_order=*/true);
  EXPECT_TRUE(torch::equal(ordered.pos, std::get<0>(tome.pos.sort(1))));
  const auto order = std::get<1>(tome.pos.sort(1));
  EXPECT_TRUE(torch::equal(ordered.x, tome.x.gather(1, order.unsqueeze(-1).expand({2, 9, 3}))));
  // Destination maps follow the same permutation.
  const auto spread = [&](const TokenState& out, bool keep_order) {
    const auto index = merge_destinations(matching, 13, keep_order);
    return out.x.gather(1, index.unsqueeze(-1).expand({2, 13, 3}));
  };
  EXPECT_TRUE(torch::equal(spread(ordered, true), spread(tome, false)));
}

TEST(Merge, DestinationMapsComposeOverLayers) {
  torch::manual_seed(5);
  TokenState state;
  state.x = torch::randn({2, 21, 3});
  state.protected_count = 1;
  const auto original = state.x;
  auto source = torch::arange(21, torch::kInt64).expand({2, 21}).contiguous();
  for (const int64_t r : {6, 4, 3}) {
    const auto matching = bipartite_soft_matching(torch::randn({2, state.tokens(), 4}), r, 1);
    const auto destinations = merge_destinations(matching, state.tokens());
    state = merge_tokens(state, matching);
    source = destinations.gather(1, source);
  }
  ASSERT_EQ(state.tokens(), 21 - 13);
  // Each final token is the plain mean of the original tokens mapped to it, and its size their
  // count (all original sizes are 1).
  const auto index = source.unsqueeze(-1);
  const auto sums =
      torch::zeros({2, state.tokens(), 3}).scatter_add(1, index.expand({2, 21, 3}), original);
  const auto counts =
      torch::zeros({2, state.tokens(), 1}).scatter_add(1, index, torch::ones({2, 21, 1}));
  EXPECT_TRUE(torch::equal(counts, state.size));
  EXPECT_TRUE(torch::allclose(sums / counts, state.x, 1e-5, 1e-6));
  EXPECT_TRUE(source.select(1, 0).eq(0).all().item<bool>());  // CLS stays in slot 0
}

TEST(Pool, TwoByTwoWindowsOnAFourByFourGrid) {
  TokenState state = numbered_state(2, 17, 3);
  const PoolStrategy pool;
  EXPECT_EQ(pool.output_tokens(17, 1, 4), 5);
  const auto out = pool.apply(state, {}, 4);
  ASSERT_EQ(out.tokens(), 5);
  EXPECT_EQ(out.grid_height, 2);
  EXPECT_EQ(out.grid_width, 2);
  // Window (0, 0) holds tokens 1, 2, 5, 6 (values 2, 3, 6, 7).
  EXPECT_FLOAT_EQ(out.x[0][1][0].item<float>(), 4.5f);
  EXPECT_TRUE(torch::equal(out.pos[0], torch::tensor({0, 1, 3, 9, 11}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(out.size[0].squeeze(-1), torch::tensor({1.0f, 4.0f, 4.0f, 4.0f, 4.0f})));
  // Chained: the state's grid lets a second pool take the 2 × 2 grid to one token.
  const auto twice = pool.apply(out, {}, 1);
  EXPECT_EQ(twice.tokens(), 2);
  EXPECT_FLOAT_EQ(twice.size[0][1][0].item<float>(), 16.0f);
  EXPECT_NEAR(twice.x[0][1][0].item<float>(), state.x[0].slice(0, 1).mean().item<float>(), 1e-5);
}

TEST(Pool, PartialWindowsAndNonSquareGrids) {
  TokenState state = numbered_state(1, 1 + 3 * 5, 1);
  const PoolStrategy pool(StrategyOptions().grid_height(3).grid_width(5));
  const auto out = pool.apply(state, {}, 6);
  ASSERT_EQ(out.tokens(), 7);  // ceil(3/2) · ceil(5/2) = 6 windows
  EXPECT_TRUE(torch::equal(out.size.squeeze(-1)[0],
                           torch::tensor({1.0f, 4.0f, 4.0f, 2.0f, 2.0f, 2.0f, 1.0f})));
  EXPECT_FLOAT_EQ(out.x[0][6][0].item<float>(), 16.0f);          // the lone corner token 15
  EXPECT_THROW(PoolStrategy().apply(state, {}, 6), c10::Error);  // 15 tokens: no grid known
  EXPECT_EQ(pool_window(14, 14, 49, {}), 2);
  EXPECT_EQ(pool_window(14, 14, 48, {}), 3);
  EXPECT_EQ(pool_window(14, 14, 10, StrategyOptions().window(2)), 2);
}

TEST(Route, GatherSortsAndScatterOverwrites) {
  TokenState full = numbered_state(1, 6, 2);
  full.x.requires_grad_(true);
  const auto scores = torch::tensor({{0.0f, 0.9f, 0.1f, 0.8f, 0.2f, 0.7f}});
  const auto routed = route_gather(full, scores, 3);
  EXPECT_TRUE(torch::equal(routed.indices, torch::tensor({{0, 1, 3, 5}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(routed.state.pos, routed.indices));
  TokenState processed = routed.state;
  processed.x = processed.x * 10;
  const auto out = route_scatter(full, processed, routed.indices);
  EXPECT_TRUE(
      torch::equal(out.x.select(2, 0), torch::tensor({{10.0f, 20.0f, 3.0f, 40.0f, 5.0f, 60.0f}})));
  out.x.sum().backward();
  // Routed rows get the block path's gradient only (10), the others pass through (1).
  EXPECT_TRUE(torch::equal(full.x.grad().select(2, 0),
                           torch::tensor({{10.0f, 10.0f, 1.0f, 10.0f, 1.0f, 10.0f}})));
  TokenState wrong = processed;
  wrong.x = wrong.x.slice(1, 0, 2);
  EXPECT_THROW(route_scatter(full, wrong, routed.indices), c10::Error);
}

TEST(Mask, ZeroesTheUnselectedAndAccumulates) {
  TokenState state = numbered_state(1, 5, 1);
  const auto scores = torch::tensor({{0.0f, 0.1f, 0.9f, 0.3f, 0.8f}});
  const MaskStrategy mask;
  const auto once = mask.apply(state, scores, 2);
  EXPECT_TRUE(torch::equal(once.x, state.x));
  EXPECT_TRUE(torch::equal(once.keep, torch::tensor({{1.0f, 0.0f, 1.0f, 0.0f, 1.0f}})));
  // A later layer ranks the masked tokens last even when they score high.
  const auto twice = mask.apply(once, torch::tensor({{0.0f, 0.9f, 0.1f, 0.8f, 0.2f}}), 1);
  EXPECT_TRUE(torch::equal(twice.keep, torch::tensor({{1.0f, 0.0f, 0.0f, 0.0f, 1.0f}})));
}

TEST(Mask, StraightThroughIsHardForwardAndDifferentiable) {
  TokenState state = numbered_state(1, 5, 1);
  const auto scores = torch::tensor({{0.0f, 0.1f, 0.9f, 0.3f, 0.8f}}).requires_grad_(true);
  const auto out = MaskStrategy(StrategyOptions().straight_through(true).temperature(0.1))
                       .apply(state, scores, 2);
  EXPECT_TRUE(torch::equal(out.keep.detach(), torch::tensor({{1.0f, 0.0f, 1.0f, 0.0f, 1.0f}})));
  out.keep.sum().backward();
  ASSERT_TRUE(scores.grad().defined());
  EXPECT_EQ(scores.grad()[0][0].item<float>(), 0.0f);  // protected
  EXPECT_GT(scores.grad()[0][3].item<float>(), 0.0f);  // near the threshold
}

TEST(StrategyRegistry, ExplicitListAndUnknownNames) {
  const std::vector<std::string> expected{"prune",          "merge", "pool",   "route",
                                          "weighted_route", "mask",  "policy", "threshold_prune"};
  EXPECT_EQ(known_strategies(), expected);
  for (const auto& name : expected) EXPECT_EQ(make_strategy(name)->name(), name);
  try {
    make_strategy("drop");
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("drop"), std::string::npos);
    EXPECT_NE(message.find("merge"), std::string::npos);
  }
}

TEST(Pairing, MergeNeedsSimilarityAndFuseNeedsAttention) {
  const auto options = CriterionOptions().grid_height(2).grid_width(2);
  const auto merge = make_strategy("merge");
  const auto fuse = make_strategy("prune", StrategyOptions().fuse(true));
  const auto pool = make_strategy("pool");
  EXPECT_TRUE(pairing_problem(*make_criterion("similarity"), *merge).empty());
  EXPECT_FALSE(pairing_problem(*make_criterion("norm"), *merge).empty());
  EXPECT_TRUE(pairing_problem(*make_criterion("cls_attention"), *fuse).empty());
  EXPECT_FALSE(pairing_problem(*make_criterion("random"), *fuse).empty());
  EXPECT_TRUE(pairing_problem(*make_criterion("uniform", options), *pool).empty());
  EXPECT_THROW(check_pairing(*make_criterion("key_norm"), *merge), c10::Error);
}

}  // namespace
