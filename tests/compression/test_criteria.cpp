// Each criterion's formula on small hand-checkable inputs, and the criterion registry.
#include <gtest/gtest.h>

#include "compression/attention_criteria.h"
#include "compression/criterion_registry.h"
#include "compression/norm_criteria.h"
#include "compression/random_criterion.h"
#include "compression/similarity_criterion.h"
#include "compression/uniform_criterion.h"

using namespace winnow::compression;

namespace {

TokenState state_of(torch::Tensor x) {  // [B, N, C]
  TokenState state;
  state.x = std::move(x);
  return state;
}

ScoreContext context_with_ids(std::vector<int64_t> ids, int64_t layer = 0, int64_t step = 0) {
  ScoreContext context;
  context.sample_ids = torch::tensor(ids, torch::kInt64);
  context.layer = layer;
  context.step = step;
  context.seed = 42;
  return context;
}

TEST(RandomCriterion, KeyedOnSeedStepLayerSampleAndPosition) {
  TokenState state = state_of(torch::zeros({2, 16, 4}));
  const RandomCriterion criterion;
  const auto scores = criterion.score(state, context_with_ids({7, 8}));
  EXPECT_EQ(scores.sizes(), torch::IntArrayRef({2, 16}));
  EXPECT_EQ(scores.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(scores.ge(0).all().item<bool>() && scores.lt(1).all().item<bool>());
  EXPECT_TRUE(torch::equal(scores, criterion.score(state, context_with_ids({7, 8}))));
  EXPECT_FALSE(torch::equal(scores[0], scores[1]));  // different samples
  EXPECT_FALSE(torch::equal(scores, criterion.score(state, context_with_ids({7, 8}, 1))));
  EXPECT_FALSE(torch::equal(scores, criterion.score(state, context_with_ids({7, 8}, 0, 1))));
  auto other_seed = context_with_ids({7, 8});
  other_seed.seed = 43;
  EXPECT_FALSE(torch::equal(scores, criterion.score(state, other_seed)));
  // The same sample in another batch slot, on another rank, scores the same.
  EXPECT_TRUE(torch::equal(scores[1], criterion.score(state, context_with_ids({8, 9}))[0]));
}

TEST(RandomCriterion, FollowsOriginalPositionsThroughPruning) {
  TokenState full = state_of(torch::zeros({1, 10, 2}));
  const auto context = context_with_ids({3});
  const auto all = RandomCriterion().score(full, context);
  TokenState pruned = state_of(torch::zeros({1, 3, 2}));
  pruned.pos = torch::tensor({{0, 4, 9}}, torch::kInt64);
  const auto some = RandomCriterion().score(pruned, context);
  EXPECT_TRUE(torch::equal(some, all.index_select(1, pruned.pos[0])));
}

TEST(RandomCriterion, NeedsSampleIds) {
  TokenState state = state_of(torch::zeros({2, 4, 3}));
  EXPECT_THROW(RandomCriterion().score(state, ScoreContext{}), c10::Error);
}

TEST(NormCriteria, FeatureNormAndNegatedKeyNorm) {
  TokenState state = state_of(torch::tensor({{{3.0f, 4.0f}, {0.0f, 1.0f}}}));
  EXPECT_TRUE(torch::allclose(NormCriterion().score(state, {}), torch::tensor({{5.0f, 1.0f}})));
  ScoreContext context;
  context.keys = torch::tensor({{{6.0f, 8.0f}, {1.0f, 0.0f}}});
  const KeyNormCriterion key_norm;
  EXPECT_TRUE(key_norm.needs().mean_keys);
  // KNorm keeps low-norm keys: the smaller key scores higher.
  EXPECT_TRUE(torch::allclose(key_norm.score(state, context), torch::tensor({{-10.0f, -1.0f}})));
  EXPECT_THROW(key_norm.score(state, ScoreContext{}), c10::Error);
}

TEST(AttentionCriteria, ReadTheRequestedExtras) {
  TokenState state = state_of(torch::zeros({1, 3, 2}));
  state.protected_count = 1;
  ScoreContext context;
  context.cls_row = torch::tensor({{0.5f, 0.2f, 0.3f}});
  context.received = torch::tensor({{0.1f, 0.6f, 0.3f}});
  const ClsAttentionCriterion cls;
  const AttentionReceivedCriterion received;
  EXPECT_TRUE(cls.needs().cls_row && !cls.needs().received && cls.scores_are_weights());
  EXPECT_TRUE(received.needs().received && received.scores_are_weights());
  EXPECT_TRUE(torch::equal(cls.score(state, context), context.cls_row));
  EXPECT_TRUE(torch::equal(received.score(state, context), context.received));
  state.protected_count = 0;
  EXPECT_THROW(cls.score(state, context), c10::Error);  // EViT needs a class token
  context.received = torch::zeros({1, 4});
  EXPECT_THROW(received.score(state, context), c10::Error);
}

TEST(UniformCriterion, QuarterOfTheGridIsTheStrideTwoLattice) {
  for (const int64_t side : {14, 16}) {
    TokenState state = state_of(torch::zeros({1, 1 + side * side, 2}));
    state.protected_count = 1;
    const auto scores = UniformCriterion(side, side).score(state, {});
    const int64_t quarter = (side / 2) * (side / 2);
    const auto top = std::get<1>(scores.slice(1, 1).topk(quarter, 1));
    const auto rows = top.div(side, "floor"), cols = top.remainder(side);
    EXPECT_TRUE(rows.remainder(2).eq(0).all().item<bool>()) << side;
    EXPECT_TRUE(cols.remainder(2).eq(0).all().item<bool>()) << side;
    const int64_t sixteenth = ((side + 3) / 4) * ((side + 3) / 4);
    const auto coarse = std::get<1>(scores.slice(1, 1).topk(sixteenth, 1));
    EXPECT_TRUE(coarse.div(side, "floor").remainder(4).eq(0).all().item<bool>()) << side;
    EXPECT_TRUE(coarse.remainder(side).remainder(4).eq(0).all().item<bool>()) << side;
  }
}

TEST(UniformCriterion, ProtectedAndUnplacedTokensScoreZero) {
  TokenState state = state_of(torch::zeros({1, 4, 2}));
  state.protected_count = 1;
  state.pos = torch::tensor({{0, 1, 2, -1}}, torch::kInt64);
  const auto scores = UniformCriterion(2, 2).score(state, {});
  EXPECT_EQ(scores[0][0].item<double>(), 0.0);
  EXPECT_EQ(scores[0][3].item<double>(), 0.0);
  EXPECT_EQ(scores[0][1].item<double>(), 1.0);  // cell (0, 0) comes first
  EXPECT_THROW(UniformCriterion(0, 4), c10::Error);
}

TEST(UniformCriterion, RanksArePermutations) {
  const auto ranks = uniform_grid_ranks(5, 7);
  EXPECT_TRUE(torch::equal(std::get<0>(ranks.sort()), torch::arange(35, torch::kInt64)));
}

TEST(SimilarityCriterion, MetricIsKeysAndScoreIsDistinctiveness) {
  TokenState state = state_of(torch::zeros({1, 3, 2}));
  ScoreContext context;
  context.keys = torch::tensor({{{1.0f, 0.0f}, {2.0f, 0.1f}, {0.0f, 1.0f}}});
  const SimilarityCriterion similarity;
  EXPECT_TRUE(similarity.provides_metric());
  EXPECT_TRUE(torch::equal(similarity.metric(state, context), context.keys));
  const auto scores = similarity.score(state, context);
  // Tokens 0 and 1 are near-duplicates; token 2 is the most distinctive.
  EXPECT_GT(scores[0][2].item<float>(), scores[0][0].item<float>());
  EXPECT_GT(scores[0][2].item<float>(), scores[0][1].item<float>());
  EXPECT_NEAR(scores[0][0].item<float>(), -2.0f / std::sqrt(4.01f), 1e-6);
}

TEST(CriterionRegistry, ExplicitListAndUnknownNames) {
  const auto names = known_criteria();
  const std::vector<std::string> expected{
      "random",  "norm",       "key_norm", "cls_attention", "attention_received",
      "uniform", "similarity", "linear",   "predictor",     "saliency",
      "router",  "threshold"};
  EXPECT_EQ(names, expected);
  for (const auto& name : names) {
    EXPECT_EQ(make_criterion(name, CriterionOptions().grid_height(2).grid_width(2))->name(), name);
  }
  try {
    make_criterion("entropy");
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("entropy"), std::string::npos);
    EXPECT_NE(message.find("cls_attention"), std::string::npos);
  }
}

}  // namespace
