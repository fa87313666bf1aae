// Our strategies against the published Python algorithms (ToMe, EViT, random-LTD) on fixtures.
#include <gtest/gtest.h>

#include "compression/attention_criteria.h"
#include "compression/merge.h"
#include "compression/prune.h"
#include "compression/route.h"
#include "compression/token_selection.h"
#include "fixture.h"

using namespace winnow::compression;
using winnow::compression::testing::entry;
using winnow::compression::testing::load_fixture;

namespace {

// float32 tolerance of the fixtures: |a − b| <= 1e-6 + 1e-5·|b|.
void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const char* what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(torch::allclose(actual.to(torch::kFloat32), expected.to(torch::kFloat32), 1e-5, 1e-6))
      << what << ": max |difference| = "
      << (actual.to(torch::kFloat32) - expected.to(torch::kFloat32)).abs().max().item<float>();
}

class ToMeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ToMeFixture, MergeMatchesBipartiteSoftMatchingWithMergeWavg) {
  const auto f = load_fixture(GetParam());
  TokenState state;
  state.x = entry(f, "x").clone().requires_grad_(true);
  if (f.count("size")) state.size = entry(f, "size");
  state.protected_count = entry(f, "protected_count").item<int64_t>();
  const int64_t merge_count = entry(f, "merge_count").item<int64_t>();

  const auto matching =
      bipartite_soft_matching(entry(f, "metric"), merge_count, state.protected_count);
  const TokenState out = merge_tokens(state, matching);
  expect_close(out.x, entry(f, "out_x"), "merged x (token order included)");
  expect_close(out.size, entry(f, "out_size"), "merged size");

  (out.x * entry(f, "weight")).sum().backward();
  expect_close(state.x.grad(), entry(f, "grad_x"), "dL/dx");

  // ToMe's unmerge: every original token gets its group's merged value.
  const auto destinations = merge_destinations(matching, state.tokens());
  const auto spread = out.x.detach().gather(
      1, destinations.unsqueeze(-1).expand({state.batch(), state.tokens(), state.width()}));
  if (f.count("unmerged_x")) expect_close(spread, entry(f, "unmerged_x"), "unmerged x");
  // Each token's slot holds its own position or its destination's.
  const auto slot_positions = out.pos.gather(1, destinations);
  const auto own = torch::arange(state.tokens(), torch::kInt64).expand_as(slot_positions);
  const auto merged_into_b = own.remainder(2).eq(0).logical_and(slot_positions.remainder(2).eq(1));
  EXPECT_TRUE(slot_positions.eq(own).logical_or(merged_into_b).all().item<bool>());

  // The Strategy entry point gives the same tokens for the equivalent keep_count.
  const int64_t capped =
      std::min(merge_count, merge_count_limit(state.tokens(), state.protected_count));
  const TokenState via_strategy =
      MergeStrategy().apply(state, {}, state.reducible() - capped, entry(f, "metric"));
  expect_close(via_strategy.x, entry(f, "out_x"), "merge strategy x");
}

INSTANTIATE_TEST_SUITE_P(Reference, ToMeFixture,
                         ::testing::Values("tome_cls_197", "tome_cls_198_sizes", "tome_nocls_10",
                                           "tome_cls_clamp_10", "tome_distill_11",
                                           "tome_cls_9_multi"));

class EViTFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(EViTFixture, PruneMatchesEViTBlockSelectionAndFuse) {
  const auto f = load_fixture(GetParam());
  TokenState state;
  state.x = entry(f, "x").clone().requires_grad_(true);
  state.protected_count = 1;
  ScoreContext context;
  context.cls_row = entry(f, "cls_row");
  const auto scores = ClsAttentionCriterion().score(state, context);

  const int64_t keep_count =
      keep_count_for_rate(entry(f, "keep_rate").item<double>(), state.reducible());
  EXPECT_EQ(keep_count, entry(f, "keep_count").item<int64_t>());
  const bool fuse = entry(f, "fuse").item<int64_t>() != 0;
  const PruneStrategy evit(StrategyOptions().fuse(fuse).descending_order(true));
  const TokenState out = evit.apply(state, scores, keep_count);

  expect_close(out.x, entry(f, "out_x"), "pruned x (EViT order, fused token last)");
  const auto kept_positions = out.pos.slice(1, 1, 1 + keep_count);
  EXPECT_TRUE(torch::equal(kept_positions, entry(f, "kept_index"))) << "kept token order";
  (out.x * entry(f, "weight")).sum().backward();
  expect_close(state.x.grad(), entry(f, "grad_x"), "dL/dx");

  // Default order: the same tokens in original order.
  const TokenState ordered =
      PruneStrategy(StrategyOptions().fuse(fuse)).apply(state, scores, keep_count);
  const auto sorted_index = std::get<0>(entry(f, "kept_index").sort(1));
  EXPECT_TRUE(torch::equal(ordered.pos.slice(1, 1, 1 + keep_count), sorted_index));
}

INSTANTIATE_TEST_SUITE_P(Reference, EViTFixture,
                         ::testing::Values("evit_fuse_070", "evit_nofuse_050",
                                           "evit_fuse_050_with_extra"));

class RandomLtdFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(RandomLtdFixture, GatherScatterMatchDecoderReference) {
  const auto f = load_fixture(GetParam());
  TokenState full;
  full.x = entry(f, "hidden").clone().requires_grad_(true);
  const auto indices = entry(f, "indices");

  const TokenState part = gather_tokens(full, indices);
  expect_close(part.x, entry(f, "part"), "gathered tokens");
  // The block's causal mask from the routed positions equals random-LTD's top-left slice.
  const auto allowed = part.pos.unsqueeze(1).le(part.pos.unsqueeze(2));  // [B, k, k]
  for (int64_t b = 0; b < allowed.size(0); ++b) {
    EXPECT_TRUE(torch::equal(allowed[b], entry(f, "part_mask"))) << "causal mask, sample " << b;
  }

  TokenState processed = part;
  processed.x = torch::tanh(torch::matmul(part.x, entry(f, "layer_weight")));
  const TokenState out = route_scatter(full, processed, indices);
  expect_close(out.x, entry(f, "out"), "scattered output");
  (out.x * entry(f, "weight")).sum().backward();
  expect_close(full.x.grad(), entry(f, "grad_hidden"), "dL/dh (overwrite semantics)");
}

INSTANTIATE_TEST_SUITE_P(Reference, RandomLtdFixture,
                         ::testing::Values("random_ltd_12_5", "random_ltd_16_9", "random_ltd_7_1"));

}  // namespace
