// Conformance suite: every registered criterion × strategy pair that is valid, with its variants.
// Adding a criterion or a strategy to its registry adds it here; pairs that pairing_problem()
// rejects are listed by the Pairing.RejectedPairsAreDocumented test instead.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "compression/criterion_registry.h"
#include "compression/method.h"
#include "compression/pairing.h"
#include "compression/route.h"
#include "compression/strategy_registry.h"

using namespace winnow::compression;

namespace {

constexpr int64_t kBatch = 3, kGrid = 4, kTokens = 1 + kGrid * kGrid, kChannels = 6, kKeyDim = 5;

// Strategy option variants run besides the defaults; one line per variant.
struct Variant {
  std::string label;
  StrategyOptions options;
};
std::vector<Variant> variants_of(const std::string& strategy) {
  std::vector<Variant> variants{{"default", StrategyOptions()}};
  if (strategy == "prune") {
    variants.push_back({"fuse", StrategyOptions().fuse(true)});
    variants.push_back({"evit", StrategyOptions().fuse(true).descending_order(true)});
  }
  if (strategy == "merge") {
    variants.push_back({"keep_order", StrategyOptions().keep_order(true)});
  }
  if (strategy == "mask") {
    variants.push_back({"straight_through", StrategyOptions().straight_through(true)});
  }
  if (strategy == "weighted_route") {
    variants.push_back({"tanh", StrategyOptions().router_weight("tanh")});
  }
  return variants;
}

CriterionOptions criterion_options() {
  return CriterionOptions().grid_height(kGrid).grid_width(kGrid);
}

struct Pair {
  std::string criterion, strategy, variant;
  StrategyOptions options;
};

void PrintTo(const Pair& pair, std::ostream* os) {
  *os << pair.criterion << " x " << pair.strategy << " (" << pair.variant << ")";
}

// Every criterion × strategy (× variant) pair that pairing_problem() accepts (valid = true) or
// rejects (valid = false), optionally only those whose strategy satisfies `keep_strategy`.
std::vector<Pair> all_pairs(bool valid,
                            const std::function<bool(const Strategy&)>& keep_strategy = {}) {
  std::vector<Pair> pairs;
  for (const auto& strategy_name : known_strategies()) {
    for (const auto& variant : variants_of(strategy_name)) {
      const auto strategy = make_strategy(strategy_name, variant.options);
      if (keep_strategy && !keep_strategy(*strategy)) continue;
      for (const auto& criterion_name : known_criteria()) {
        const auto criterion = make_criterion(criterion_name, criterion_options());
        if (pairing_problem(*criterion, *strategy).empty() == valid) {
          pairs.push_back({criterion_name, strategy_name, variant.label, variant.options});
        }
      }
    }
  }
  return pairs;
}

// A deterministic state: a CLS token and a 4 × 4 patch grid, sizes and keep left trivial.
TokenState make_state() {
  torch::manual_seed(1);
  TokenState state;
  state.x = torch::randn({kBatch, kTokens, kChannels});
  state.protected_count = 1;
  return state;
}

// The attention extras, computed from x the way an attention would, so that gradients reach x.
ScoreContext make_context(const TokenState& state, int64_t first_sample_id = 100) {
  torch::manual_seed(7);
  const auto key_weight = torch::randn({kChannels, kKeyDim});
  ScoreContext context;
  context.layer = 3;
  context.step = 11;
  context.seed = 1234;
  context.sample_ids =
      torch::arange(first_sample_id, first_sample_id + state.batch(), torch::kInt64);
  context.keys = torch::matmul(state.x, key_weight);                              // [B, N, D]
  const auto logits = torch::matmul(context.keys, context.keys.transpose(1, 2));  // [B, N, N]
  const auto probabilities = torch::softmax(logits / std::sqrt(double(kKeyDim)), -1);
  context.cls_row = probabilities.select(1, 0);
  context.received = probabilities.mean(1);
  return context;
}

// One slice of every context tensor along the batch.
ScoreContext slice_context(const ScoreContext& context, int64_t begin, int64_t end) {
  ScoreContext slice = context;
  slice.sample_ids = context.sample_ids.slice(0, begin, end);
  slice.keys = context.keys.slice(0, begin, end);
  slice.cls_row = context.cls_row.slice(0, begin, end);
  slice.received = context.received.slice(0, begin, end);
  return slice;
}

void expect_same_state(const TokenState& a, const TokenState& b, const std::string& what) {
  EXPECT_TRUE(torch::equal(a.x, b.x)) << what << ": x";
  EXPECT_EQ(a.size.defined(), b.size.defined()) << what << ": size defined";
  if (a.size.defined() && b.size.defined()) {
    EXPECT_TRUE(torch::equal(a.size, b.size)) << what;
  }
  EXPECT_TRUE(torch::equal(a.positions(), b.positions())) << what << ": pos";
  EXPECT_EQ(a.keep.defined(), b.keep.defined()) << what << ": keep defined";
  if (a.keep.defined() && b.keep.defined()) {
    EXPECT_TRUE(torch::equal(a.keep, b.keep)) << what;
  }
  EXPECT_EQ(a.protected_count, b.protected_count) << what;
}

class Conformance : public ::testing::TestWithParam<Pair> {
 protected:
  void SetUp() override {
    criterion = make_criterion(GetParam().criterion, criterion_options());
    // Learned criteria score with their parameters for the context's layer (3), initialised
    // from a fixed seed (so that a Method made in a test gets the same ones).
    torch::manual_seed(5);
    torch::nn::Module stage;
    criterion->create_parameters(stage, {3}, kChannels);
    strategy = make_strategy(GetParam().strategy, GetParam().options);
  }
  // Applies the pair to `state`: scores and metric from the criterion, then the strategy.
  TokenState run(const TokenState& state, const ScoreContext& context, int64_t keep) const {
    const auto scores = criterion->score(state, context);
    const auto metric =
        strategy->traits().needs_metric ? criterion->metric(state, context) : torch::Tensor();
    return strategy->apply(state, scores, keep, metric);
  }
  std::unique_ptr<Criterion> criterion;
  std::unique_ptr<Strategy> strategy;
  const int64_t keep = 4;  // of 16 reducible tokens: a quarter (pool: 2 × 2 windows)
};

TEST_P(Conformance, ShapesMatchTheAnnouncedCount) {
  const auto state = make_state();
  const auto scores = criterion->score(state, make_context(state));
  EXPECT_EQ(scores.sizes(), torch::IntArrayRef({kBatch, kTokens}));
  const auto out = run(state, make_context(state), keep);
  const int64_t tokens = strategy->output_tokens(kTokens, 1, keep);
  if (strategy->traits().variable_count) {
    // The count is each sample's: at most the announced bound, the batch's largest count.
    EXPECT_LE(out.tokens(), tokens);
    ASSERT_TRUE(out.keep.defined());
    EXPECT_EQ(out.tokens() - 1, out.keep.slice(1, 1).gt(0).sum(1).max().item<int64_t>());
    return;
  }
  EXPECT_EQ(out.x.sizes(), torch::IntArrayRef({kBatch, tokens, kChannels}));
  if (strategy->traits().keeps_length)
    EXPECT_EQ(tokens, kTokens);
  else
    EXPECT_LT(tokens, kTokens);
  EXPECT_EQ(out.positions().sizes(), torch::IntArrayRef({kBatch, tokens}));
  if (out.size.defined()) {
    EXPECT_EQ(out.size.sizes(), torch::IntArrayRef({kBatch, tokens, 1}));
  }
  if (out.keep.defined()) {
    EXPECT_EQ(out.keep.sizes(), torch::IntArrayRef({kBatch, tokens}));
  }
  EXPECT_EQ(out.protected_count, 1);
}

TEST_P(Conformance, ProtectedTokenStaysFirstAndUnchanged) {
  const auto state = make_state();
  const auto out = run(state, make_context(state), keep);
  EXPECT_TRUE(torch::equal(out.x.select(1, 0), state.x.select(1, 0)));
  EXPECT_TRUE(out.positions().select(1, 0).eq(0).all().item<bool>());
  if (out.size.defined()) {
    EXPECT_TRUE(out.size.select(1, 0).eq(1).all().item<bool>());
  }
  if (out.keep.defined()) {
    EXPECT_TRUE(out.keep.select(1, 0).eq(1).all().item<bool>());
  }
}

TEST_P(Conformance, KeepAllIsTheIdentity) {
  const auto state = make_state();
  for (const int64_t all : {kTokens - 1, kTokens + 5}) {
    const auto out = run(state, make_context(state), all);
    expect_same_state(out, state, "keep_count " + std::to_string(all));
    EXPECT_EQ(strategy->output_tokens(kTokens, 1, all), kTokens);
  }
}

TEST_P(Conformance, MethodComposesThePair) {
  auto method = Method::make(GetParam().criterion, GetParam().strategy, criterion_options(),
                             GetParam().options);
  torch::manual_seed(5);
  torch::nn::Module stage;
  method.create_parameters(stage, {3}, kChannels);
  EXPECT_EQ(method.name(), GetParam().criterion + "+" + GetParam().strategy);
  const auto state = make_state();
  expect_same_state(method.apply(state, make_context(state), keep),
                    run(state, make_context(state), keep), "Method::apply");
  // Only the extras the strategy actually reads are requested.
  const auto needs = method.needs();
  if (!strategy->traits().uses_scores && !strategy->traits().needs_metric) {
    EXPECT_FALSE(needs.cls_row || needs.received || needs.mean_keys);
  } else {
    EXPECT_EQ(needs.cls_row, criterion->needs().cls_row);
    EXPECT_EQ(needs.received, criterion->needs().received);
    EXPECT_EQ(needs.mean_keys, criterion->needs().mean_keys);
  }
}

// Pairs whose strategy announces traits().conserves_size (merge, pool).
class SizeConformance : public Conformance {};

TEST_P(SizeConformance, SizeMassIsConserved) {
  auto state = make_state();
  const auto out = run(state, make_context(state), keep);
  ASSERT_TRUE(out.size.defined());
  EXPECT_TRUE(torch::allclose(out.size.sum({1, 2}), torch::full({kBatch}, double(kTokens))));
  // Also from non-trivial sizes, and Σ size·x is conserved (a size-weighted average).
  state.size =
      torch::arange(1, kTokens + 1, torch::kFloat32).view({1, kTokens, 1}).repeat({kBatch, 1, 1});
  const auto weighted = run(state, make_context(state), keep);
  EXPECT_TRUE(torch::allclose(weighted.size.sum({1, 2}), state.size.sum({1, 2})));
  EXPECT_TRUE(torch::allclose((weighted.x * weighted.size).sum(1), (state.x * state.size).sum(1),
                              1e-5, 1e-4));
}

TEST_P(Conformance, GradientsFlowToX) {
  auto state = make_state();
  state.x.requires_grad_(true);
  const auto out = run(state, make_context(state), keep);
  torch::manual_seed(3);
  const auto weight = torch::randn(out.x.sizes());
  auto loss = (out.x * weight).sum();
  if (out.keep.defined() && out.keep.requires_grad()) loss = loss + out.keep.sum();
  loss.backward();
  ASSERT_TRUE(state.x.grad().defined());
  EXPECT_TRUE(state.x.grad().isfinite().all().item<bool>());
  EXPECT_GT(state.x.grad().abs().sum().item<double>(), 0.0);
}

TEST_P(Conformance, DeterministicBitwise) {
  const auto state = make_state();
  const auto first = run(state, make_context(state), keep);
  const auto second = run(make_state(), make_context(make_state()), keep);
  expect_same_state(first, second, "second run");
}

TEST_P(Conformance, BatchSlicesReduceLikeTheWholeBatch) {
  // N ranks ≡ 1 rank: each sample's scores and reduction depend only on that sample.
  const auto state = make_state();
  const auto context = make_context(state);
  const auto whole_scores = criterion->score(state, context);
  const auto whole = run(state, context, keep);
  for (int64_t begin = 0; begin < kBatch; ++begin) {
    TokenState slice = state;
    slice.x = state.x.slice(0, begin, begin + 1);
    const auto slice_ctx = slice_context(context, begin, begin + 1);
    const auto slice_scores = criterion->score(slice, slice_ctx);
    const auto expected = whole_scores.slice(0, begin, begin + 1);
    // Keyed randomness must be bitwise rank-invariant; the others up to the BLAS kernel chosen.
    if (criterion->name() == "random") {
      EXPECT_TRUE(torch::equal(slice_scores, expected)) << "scores of sample " << begin;
    } else {
      EXPECT_TRUE(torch::allclose(slice_scores, expected, 1e-6, 1e-6))
          << "scores of sample " << begin;
    }
    const auto out = run(slice, slice_ctx, keep);
    // A variable count pads the batch to its longest sample: compare the sample's own slots.
    const int64_t own = strategy->traits().variable_count ? out.tokens() : whole.tokens();
    EXPECT_TRUE(
        torch::allclose(out.x, whole.x.slice(0, begin, begin + 1).slice(1, 0, own), 1e-6, 1e-6))
        << "tokens of sample " << begin;
    EXPECT_TRUE(torch::equal(out.positions(),
                             whole.positions().slice(0, begin, begin + 1).slice(1, 0, own)));
  }
}

// Pairs whose strategy wraps a block (route).
class RouteConformance : public Conformance {};

TEST_P(RouteConformance, ScatterRestoresTheUntouchedTokens) {
  const auto state = make_state();
  const auto context = make_context(state);
  const auto routed = route_gather(state, criterion->score(state, context), keep);
  expect_same_state(routed.state, run(state, context, keep), "apply() = route_gather().state");
  TokenState processed = routed.state;
  processed.x = processed.x * 3 + 1;  // a stand-in block
  const auto out = route_scatter(state, processed, routed.indices);
  auto touched = torch::zeros({kBatch, kTokens}, torch::kBool);
  touched.scatter_(1, routed.indices, true);
  const auto untouched = touched.logical_not().unsqueeze(-1).expand_as(state.x);
  EXPECT_TRUE(torch::equal(out.x.masked_select(untouched), state.x.masked_select(untouched)));
  EXPECT_TRUE(torch::equal(out.x.gather(1, routed.indices.unsqueeze(-1).expand(
                                               {kBatch, routed.indices.size(1), kChannels})),
                           processed.x));
  TokenState metadata = out;  // everything but x is the full state's
  metadata.x = state.x;
  expect_same_state(metadata, state, "metadata restored");
}

std::string pair_name(const ::testing::TestParamInfo<Pair>& info) {
  return info.param.criterion + "_" + info.param.strategy + "_" + info.param.variant;
}

INSTANTIATE_TEST_SUITE_P(AllPairs, Conformance, ::testing::ValuesIn(all_pairs(true)), pair_name);
INSTANTIATE_TEST_SUITE_P(AllPairs, SizeConformance,
                         ::testing::ValuesIn(all_pairs(
                             true, [](const Strategy& s) { return s.traits().conserves_size; })),
                         pair_name);
INSTANTIATE_TEST_SUITE_P(
    AllPairs, RouteConformance,
    ::testing::ValuesIn(all_pairs(true, [](const Strategy& s) { return s.traits().wraps_block; })),
    pair_name);

// Every valid pair gives the same tokens on CUDA tensors as on CPU (skipped without a GPU).
TEST(ConformanceDevices, AllPairsMatchCpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device cuda(torch::kCUDA);
  const auto state = make_state();
  const auto context = make_context(state);
  TokenState device_state = state;
  device_state.x = state.x.to(cuda);
  ScoreContext device_context = context;
  device_context.sample_ids = context.sample_ids.to(cuda);
  device_context.keys = context.keys.to(cuda);
  device_context.cls_row = context.cls_row.to(cuda);
  device_context.received = context.received.to(cuda);
  for (const auto& pair : all_pairs(true)) {
    SCOPED_TRACE(pair.criterion + " x " + pair.strategy + " (" + pair.variant + ")");
    // Learned criteria get the same parameters on both devices (the fixture's seed).
    auto make_method = [&](const torch::Device& device) {
      auto method = std::make_shared<Method>(
          Method::make(pair.criterion, pair.strategy, criterion_options(), pair.options));
      torch::manual_seed(5);
      torch::nn::Module stage;
      method->create_parameters(stage, {3}, kChannels);
      stage.to(device);
      return method;
    };
    const auto on_cpu_method = make_method(torch::kCPU), on_cuda_method = make_method(cuda);
    // Evaluation, then training (keyed noise of learned criteria, drawn on the host).
    for (const bool training : {false, true}) {
      ScoreContext cpu_context = context, cuda_context = device_context;
      cpu_context.training = cuda_context.training = training;
      const auto on_cpu = on_cpu_method->apply(state, cpu_context, 4);
      const auto on_cuda = on_cuda_method->apply(device_state, cuda_context, 4);
      EXPECT_TRUE(on_cuda.x.is_cuda());
      EXPECT_TRUE(torch::allclose(on_cuda.x.cpu(), on_cpu.x, 1e-5, 1e-5));
      EXPECT_TRUE(torch::equal(on_cuda.positions().cpu(), on_cpu.positions()));
      EXPECT_EQ(on_cuda.keep.defined(), on_cpu.keep.defined());
      if (on_cpu.keep.defined()) {
        EXPECT_TRUE(torch::allclose(on_cuda.keep.cpu(), on_cpu.keep, 1e-5, 1e-5));
      }
    }
  }
}

TEST(Pairing, RejectedPairsAreDocumented) {
  // The invalid pairs are exactly: merge with every criterion but similarity, prune with fuse
  // with every criterion whose scores are not attention probabilities, a learned criterion with
  // every strategy that passes its scores no gradient, and policy with every criterion whose
  // scores are not log-odds (docs/methods.md).
  for (const auto& pair : all_pairs(false)) {
    const bool merge_without_metric = pair.strategy == "merge" && pair.criterion != "similarity";
    const bool fuse_without_weights = pair.strategy == "prune" && pair.options.fuse() &&
                                      pair.criterion != "cls_attention" &&
                                      pair.criterion != "attention_received";
    const bool learned_without_gradient =
        (pair.criterion == "linear" || pair.criterion == "predictor" ||
         pair.criterion == "router" || pair.criterion == "threshold") &&
        !(pair.strategy == "mask" && pair.options.straight_through()) &&
        pair.strategy != "policy" && pair.strategy != "weighted_route";
    const bool policy_without_log_odds =
        (pair.strategy == "policy" || pair.strategy == "threshold_prune") &&
        pair.criterion != "predictor" && pair.criterion != "threshold";
    EXPECT_TRUE(merge_without_metric || fuse_without_weights || learned_without_gradient ||
                policy_without_log_odds)
        << pair.criterion << " × " << pair.strategy << " (" << pair.variant << ")";
  }
  EXPECT_FALSE(all_pairs(true).empty());
  EXPECT_THROW(Method::make("norm", "merge"), c10::Error);
  EXPECT_THROW(Method::make("random", "prune", {}, StrategyOptions().fuse(true)), c10::Error);
}

}  // namespace
