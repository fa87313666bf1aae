// Token-evolution statistics against direct computation on small known tensors, the Taylor
// saliency against autograd, the monitor's EMAs, its saved state, and additivity over batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "compression/token_evolution.h"
#include "compression/token_evolution_monitor.h"

using namespace winnow::compression;

namespace {

double field(const torch::Tensor& sums, int64_t index) {
  return sums[index].item<double>();
}

// Direct, float64 reference of the per-token statistics of the counted tokens (a [B, N] bool).
struct Reference {
  std::vector<double> cosines, relative_updates, deltas;
  double uniformity_sum = 0;
  int64_t uniformity_samples = 0;
};
Reference reference_of(const torch::Tensor& x, const torch::Tensor& y,
                       const torch::Tensor& counted) {
  Reference ref;
  const auto x64 = x.detach().to(torch::kFloat64), y64 = y.detach().to(torch::kFloat64);
  for (int64_t b = 0; b < x.size(0); ++b) {
    std::vector<torch::Tensor> units;
    for (int64_t i = 0; i < x.size(1); ++i) {
      if (!counted[b][i].item<bool>()) continue;
      const auto xi = x64[b][i], yi = y64[b][i];
      const double nx = xi.norm().item<double>(), ny = yi.norm().item<double>();
      // ½‖x̂ − ŷ‖² = 1 − cos, well conditioned for small angles.
      const double delta = 0.5 * (xi / nx - yi / ny).square().sum().item<double>();
      ref.deltas.push_back(delta);
      ref.cosines.push_back(1 - delta);
      ref.relative_updates.push_back((yi - xi).norm().item<double>() / nx);
      units.push_back(yi / ny);
    }
    if (units.size() >= 2) {
      const auto u = torch::stack(units);  // [n, C]
      const auto gram = u.matmul(u.t());
      const double n = static_cast<double>(units.size());
      ref.uniformity_sum +=
          (gram.sum().item<double>() - gram.trace().item<double>()) / (n * (n - 1));
      ++ref.uniformity_samples;
    }
  }
  return ref;
}

double sum_of(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0);
}

// Tokens in the plane with δ = 1 − cos(x, y) = the given values: x = (2, 0), y = 3·(cos θ, sin θ).
std::pair<torch::Tensor, torch::Tensor> tokens_with_deltas(const std::vector<double>& deltas) {
  const int64_t n = static_cast<int64_t>(deltas.size());
  auto x = torch::zeros({1, n, 2}, torch::kFloat64);
  auto y = torch::zeros({1, n, 2}, torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) {
    const double theta = std::acos(1 - deltas[i]);
    x[0][i][0] = 2.0;
    y[0][i][0] = 3 * std::cos(theta);
    y[0][i][1] = 3 * std::sin(theta);
  }
  return {x, y};
}

int64_t bin_of(double delta) {
  const auto edges = delta_bin_edges();
  for (int64_t b = kDeltaBins - 1; b >= 0; --b) {
    if (delta >= edges[b]) return b;
  }
  return 0;
}

TokenEvolutionOptions with_decay(double decay, bool taylor = false) {
  TokenEvolutionOptions options;
  options.ema_decay = decay;
  options.taylor = taylor;
  return options;
}

}  // namespace

TEST(TokenEvolution, BinEdgesAreLogSpacedFromUnderflowToTwo) {
  const auto edges = delta_bin_edges();
  EXPECT_EQ(edges[0], 0.0);
  EXPECT_DOUBLE_EQ(edges[1], kDeltaUnderflow);
  EXPECT_EQ(edges[kDeltaBins], kDeltaMax);
  const double ratio = edges[2] / edges[1];
  EXPECT_NEAR(ratio, std::pow(2e6, 1.0 / 15), 1e-12);
  for (int64_t b = 2; b <= kDeltaBins; ++b) EXPECT_NEAR(edges[b] / edges[b - 1], ratio, 1e-9);
  EXPECT_EQ(kEvolutionFields, 7 + 2 * kDeltaBins);
}

TEST(TokenEvolution, UnchangedTokensHaveZeroInfluenceAndDelta) {
  const auto x = torch::randn({2, 5, 8});
  const auto sums = block_evolution_sums(x, x.clone(), {}, 0);
  EXPECT_EQ(sums.scalar_type(), torch::kFloat64);
  EXPECT_EQ(sums.size(0), kEvolutionFields);
  EXPECT_EQ(field(sums, kTokenCount), 10);
  EXPECT_DOUBLE_EQ(field(sums, kCosineSum), 10);
  EXPECT_EQ(field(sums, kRelativeUpdateSum), 0);
  EXPECT_EQ(field(sums, kDeltaCountBegin), 10);  // all in the underflow bin, with no mass
  EXPECT_EQ(sums.narrow(0, kDeltaMassBegin, kDeltaBins).abs().sum().item<double>(), 0);
  const auto stats = evolution_stats(sums);
  EXPECT_EQ(stats.block_influence, 0);
  EXPECT_EQ(stats.relative_update, 0);
  EXPECT_EQ(stats.delta_share[0], 1);
}

TEST(TokenEvolution, ReversedTokensHaveCosineMinusOne) {
  const auto x = torch::randn({1, 4, 6}, torch::kFloat64);
  const auto stats = evolution_stats(block_evolution_sums(x, -x, {}, 0));
  EXPECT_NEAR(stats.block_influence, 2, 1e-12);
  EXPECT_NEAR(stats.relative_update, 2, 1e-12);
  EXPECT_NEAR(stats.delta_share[kDeltaBins - 1], 1, 1e-12);  // δ = 2: the last bin
  EXPECT_NEAR(stats.delta_mass[kDeltaBins - 1], 2, 1e-12);
}

TEST(TokenEvolution, OrthogonalUpdate) {
  // x = (1, 0, 0), update (0, 1, 0): cos = 1/√2, ‖y − x‖/‖x‖ = 1; scaled x: update 2·‖x‖.
  const auto x = torch::tensor({{{1.0, 0.0, 0.0}, {0.0, 0.0, 4.0}}}, torch::kFloat64);
  const auto y = torch::tensor({{{1.0, 1.0, 0.0}, {8.0, 0.0, 4.0}}}, torch::kFloat64);
  const auto stats = evolution_stats(block_evolution_sums(x, y, {}, 0));
  const double cos0 = 1 / std::sqrt(2.0), cos1 = 4 / std::sqrt(80.0);
  EXPECT_NEAR(stats.block_influence, 1 - (cos0 + cos1) / 2, 1e-12);
  EXPECT_NEAR(stats.relative_update, (1 + 2) / 2.0, 1e-12);
}

TEST(TokenEvolution, MatchesDirectComputationOnRandomTokens) {
  torch::manual_seed(3);
  const auto x = torch::randn({3, 7, 16}, torch::kFloat64);
  const auto y = x + 0.7 * torch::randn({3, 7, 16}, torch::kFloat64);
  const auto sums = block_evolution_sums(x, y, {}, 0);
  const auto ref = reference_of(x, y, torch::ones({3, 7}, torch::kBool));
  EXPECT_NEAR(field(sums, kCosineSum), sum_of(ref.cosines), 1e-10);
  EXPECT_NEAR(field(sums, kRelativeUpdateSum), sum_of(ref.relative_updates), 1e-10);
  EXPECT_NEAR(field(sums, kUniformitySum), ref.uniformity_sum, 1e-10);
  EXPECT_EQ(field(sums, kUniformitySamples), 3);
  std::vector<double> counts(kDeltaBins, 0), masses(kDeltaBins, 0);
  for (const double delta : ref.deltas) {
    counts[bin_of(delta)] += 1;
    masses[bin_of(delta)] += delta;
  }
  for (int64_t b = 0; b < kDeltaBins; ++b) {
    EXPECT_EQ(field(sums, kDeltaCountBegin + b), counts[b]) << "bin " << b;
    EXPECT_NEAR(field(sums, kDeltaMassBegin + b), masses[b], 1e-10) << "bin " << b;
  }
}

TEST(TokenEvolution, SmallUpdatesKeepTheirDeltaInFloat32) {
  // 1 − cos in float32 would be rounding noise for δ ~ 1e-9; the orthogonal-part formula is not.
  torch::manual_seed(5);
  const auto x = torch::randn({2, 9, 64});
  const auto y = x + 1e-4 * torch::randn({2, 9, 64});
  const auto sums = block_evolution_sums(x, y, {}, 0);
  const auto ref = reference_of(x, y, torch::ones({2, 9}, torch::kBool));
  const double mass = sums.narrow(0, kDeltaMassBegin, kDeltaBins).sum().item<double>();
  ASSERT_LT(sum_of(ref.deltas), 1e-6);
  EXPECT_NEAR(mass, sum_of(ref.deltas), 1e-3 * sum_of(ref.deltas));
  EXPECT_NEAR(18 - field(sums, kCosineSum), sum_of(ref.deltas), 1e-3 * sum_of(ref.deltas));
  EXPECT_NEAR(field(sums, kRelativeUpdateSum), sum_of(ref.relative_updates),
              1e-4 * sum_of(ref.relative_updates));
}

TEST(TokenEvolution, UniformityOfIdenticalTokensIsOneAndOfOrthonormalTokensZero) {
  auto same = torch::randn({1, 1, 5}).expand({2, 6, 5}) * torch::rand({2, 6, 1}).add(0.5);
  EXPECT_NEAR(
      evolution_stats(block_evolution_sums(torch::randn({2, 6, 5}), same, {}, 0)).uniformity, 1,
      1e-6);
  const auto orthonormal = torch::eye(5, torch::kFloat64).unsqueeze(0) * 3;  // [1, 5, 5]
  const auto stats = evolution_stats(
      block_evolution_sums(torch::randn({1, 5, 5}, torch::kFloat64), orthonormal, {}, 0));
  EXPECT_NEAR(stats.uniformity, 0, 1e-12);
  EXPECT_EQ(stats.uniformity_samples, 1);
  // Uniformity is of the output: the input does not matter.
  const auto other_input = evolution_stats(
      block_evolution_sums(torch::randn({1, 5, 5}, torch::kFloat64), orthonormal, {}, 0));
  EXPECT_NEAR(other_input.uniformity, 0, 1e-12);
}

TEST(TokenEvolution, ProtectedAndMaskedTokensAreExcluded) {
  torch::manual_seed(7);
  auto x = torch::randn({2, 6, 4}, torch::kFloat64);
  auto y = x + torch::randn({2, 6, 4}, torch::kFloat64);
  // The protected token (CLS) and the masked ones change wildly; they must not count.
  y.select(1, 0).mul_(-100);
  auto keep = torch::ones({2, 6}, torch::kFloat64);
  keep[0][2] = 0.0;
  keep[1][4] = 0.3;  // soft keep below one half: not kept
  keep[1][5] = 0.6;  // above one half: kept
  y[0][2] = -50 * x[0][2];
  y[1][4] = -50 * x[1][4];
  const auto sums = block_evolution_sums(x, y, keep, 1);
  auto counted = keep.gt(0.5);
  counted.select(1, 0).fill_(false);
  const auto ref = reference_of(x, y, counted);
  EXPECT_EQ(field(sums, kTokenCount), 8);
  EXPECT_NEAR(field(sums, kCosineSum), sum_of(ref.cosines), 1e-10);
  EXPECT_NEAR(field(sums, kRelativeUpdateSum), sum_of(ref.relative_updates), 1e-10);
  EXPECT_NEAR(field(sums, kUniformitySum), ref.uniformity_sum, 1e-10);
  EXPECT_EQ(field(sums, kDeltaCountBegin + kDeltaBins - 1),
            std::count_if(ref.deltas.begin(), ref.deltas.end(),
                          [](double d) { return bin_of(d) == kDeltaBins - 1; }));
  // A sample with fewer than two counted tokens has no pairs: no uniformity sample.
  auto lonely = torch::zeros({2, 6}, torch::kFloat64);
  lonely[0][1] = 1.0;
  lonely[1][1] = 1.0;
  lonely[1][2] = 1.0;
  const auto sparse = block_evolution_sums(x, y, lonely, 1);
  EXPECT_EQ(field(sparse, kTokenCount), 3);
  EXPECT_EQ(field(sparse, kUniformitySamples), 1);
  // Everything protected: nothing counted, nothing NaN.
  const auto none = block_evolution_sums(x, y, {}, 6);
  EXPECT_EQ(none.abs().sum().item<double>(), 0);
  EXPECT_TRUE(std::isnan(evolution_stats(none).block_influence));
}

TEST(TokenEvolution, HistogramAndEvolutionMassOnAConstructedDistribution) {
  // Six tokens: one unchanged, two of 1e-3, one each of 0.05, 0.4 and 1.5.
  const std::vector<double> deltas = {0.0, 1e-3, 1e-3, 0.05, 0.4, 1.5};
  const auto [x, y] = tokens_with_deltas(deltas);
  const auto sums = block_evolution_sums(x, y, {}, 0);
  std::vector<double> counts(kDeltaBins, 0), masses(kDeltaBins, 0);
  for (const double d : deltas) {
    counts[bin_of(d)] += 1;
    masses[bin_of(d)] += d;
  }
  EXPECT_EQ(bin_of(0.0), 0);
  EXPECT_EQ(counts[bin_of(1e-3)], 2);
  for (int64_t b = 0; b < kDeltaBins; ++b) {
    EXPECT_EQ(field(sums, kDeltaCountBegin + b), counts[b]) << "bin " << b;
    EXPECT_NEAR(field(sums, kDeltaMassBegin + b), masses[b], 1e-12) << "bin " << b;
  }
  const auto stats = evolution_stats(sums);
  const double total = sum_of(deltas);
  EXPECT_NEAR(stats.block_influence, total / 6, 1e-12);
  // The δ are in distinct bins (ties share one): M(k) is the top ⌈6k⌉ δ over the total.
  std::vector<double> sorted = deltas;
  std::sort(sorted.rbegin(), sorted.rend());
  for (int64_t top = 0; top <= 6; ++top) {
    const double expected = std::accumulate(sorted.begin(), sorted.begin() + top, 0.0) / total;
    EXPECT_NEAR(stats.evolution_mass(top / 6.0), expected, 1e-12) << "top " << top;
  }
  // ⌈kN⌉: a capacity just above 1/6 keeps two tokens.
  EXPECT_NEAR(stats.evolution_mass(0.2), (1.5 + 0.4) / total, 1e-12);
}

TEST(TokenEvolution, EvolutionMassIsProRataInsideABin) {
  std::array<double, kDeltaBins> counts{}, masses{};
  counts[10] = 4;
  masses[10] = 2.0;  // four tokens sharing mass 2
  counts[3] = 4;
  masses[3] = 0.5;
  EXPECT_EQ(evolution_mass(counts, masses, 0), 0);
  EXPECT_NEAR(evolution_mass(counts, masses, 0.25), 1.0 / 2.5, 1e-12);  // 2 of bin 10's 4
  EXPECT_NEAR(evolution_mass(counts, masses, 0.5), 2.0 / 2.5, 1e-12);
  EXPECT_NEAR(evolution_mass(counts, masses, 0.75), 2.25 / 2.5, 1e-12);
  EXPECT_NEAR(evolution_mass(counts, masses, 1), 1, 1e-12);
  // Increasing and concave on a random histogram.
  torch::manual_seed(11);
  const auto c = torch::randint(0, 5, {kDeltaBins}, torch::kFloat64);
  const auto edges = delta_bin_edges();
  for (int64_t b = 0; b < kDeltaBins; ++b) {
    counts[b] = c[b].item<double>();
    masses[b] = counts[b] * 0.5 * (edges[b] + edges[b + 1]);  // mean δ inside its bin
  }
  double previous = 0, previous_slope = INFINITY;
  for (int step = 1; step <= 40; ++step) {
    const double m = evolution_mass(counts, masses, step / 40.0);
    const double slope = m - previous;
    EXPECT_GE(slope, -1e-15);
    EXPECT_LE(slope, previous_slope + 1e-12);
    previous = m;
    previous_slope = slope;
  }
  EXPECT_NEAR(previous, 1, 1e-12);
  // No change at all: a capacity k keeps the share k (any tokens are as good as any other).
  std::array<double, kDeltaBins> still{}, none{};
  still[0] = 10;
  EXPECT_EQ(evolution_mass(still, none, 0.3), 0.3);
  EXPECT_THROW(evolution_mass(counts, masses, 1.5), c10::Error);
  EXPECT_THROW(evolution_mass(counts, masses, -0.1), c10::Error);
}

TEST(TokenEvolution, HalfBatchesAddUpToTheWholeBatch) {
  torch::manual_seed(13);
  const auto x = torch::randn({4, 9, 8});
  const auto y = x + 0.3 * torch::randn({4, 9, 8});
  const auto keep = torch::rand({4, 9});
  const auto whole = block_evolution_sums(x, y, keep, 1);
  const auto halves =
      block_evolution_sums(x.narrow(0, 0, 2), y.narrow(0, 0, 2), keep.narrow(0, 0, 2), 1) +
      block_evolution_sums(x.narrow(0, 2, 2), y.narrow(0, 2, 2), keep.narrow(0, 2, 2), 1);
  EXPECT_TRUE(torch::allclose(whole, halves, 1e-12, 1e-12)) << whole - halves;
  EXPECT_GT(field(whole, kTokenCount), 0);
}

TEST(TokenEvolution, NoAutogradGraph) {
  const auto x = torch::randn({1, 3, 4}, torch::requires_grad());
  const auto y = x * 2 + 1;
  const auto sums = block_evolution_sums(x, y, {}, 0);
  EXPECT_FALSE(sums.requires_grad());
}

TEST(TokenEvolution, RejectsBadShapes) {
  const auto x = torch::randn({2, 4, 3});
  EXPECT_THROW(block_evolution_sums(x, torch::randn({2, 3, 3}), {}, 0), c10::Error);
  EXPECT_THROW(block_evolution_sums(x.view({8, 3}), x.view({8, 3}), {}, 0), c10::Error);
  EXPECT_THROW(block_evolution_sums(x, x, torch::ones({2, 3}), 0), c10::Error);
  EXPECT_THROW(block_evolution_sums(x, x, {}, 5), c10::Error);
  EXPECT_THROW(block_evolution_sums(x, x, {}, -1), c10::Error);
  EXPECT_THROW(evolution_stats(torch::zeros({5}, torch::kFloat64)), c10::Error);
}

namespace {

// A block y = x + tanh(x W) on a leaf x, and a loss that weights every output token differently.
struct TaylorCase {
  torch::Tensor x, w, weights;
  TaylorCase() {
    torch::manual_seed(17);
    x = torch::randn({2, 5, 4}, torch::kFloat64).requires_grad_();
    w = torch::randn({4, 4}, torch::kFloat64);
    weights = torch::randn({2, 5, 4}, torch::kFloat64);
  }
  torch::Tensor block() const { return x + torch::tanh(x.matmul(w)); }
  torch::Tensor loss(const torch::Tensor& y) const { return (y * y * weights).sum(); }
};

}  // namespace

TEST(TokenEvolution, TaylorSaliencyMatchesAutograd) {
  const TaylorCase c;
  auto keep = torch::ones({2, 5});
  keep[1][3] = 0.0;
  const int64_t protect = 1;

  // Manual: τ_i = |⟨∂L/∂y_i, y_i − x_i⟩| over counted tokens.
  const auto y_ref = c.block();
  const auto grad = torch::autograd::grad({c.loss(y_ref)}, {y_ref})[0];
  const auto tau = (grad * (y_ref - c.x)).sum(-1).abs().detach();  // [B, N]
  double expected = 0;
  int64_t tokens = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = protect; i < 5; ++i) {
      if (keep[b][i].item<float>() > 0.5) {
        expected += tau[b][i].item<double>();
        ++tokens;
      }
    }
  }

  auto accumulator = torch::zeros({kEvolutionFields}, torch::kFloat64);
  const auto y = c.block();
  ASSERT_TRUE(add_taylor_saliency_hook(c.x, y, keep, protect, accumulator));
  EXPECT_EQ(accumulator.abs().sum().item<double>(), 0);  // nothing before backward
  c.loss(y).backward();
  EXPECT_NEAR(field(accumulator, kTaylorSum), expected, 1e-10);
  EXPECT_EQ(field(accumulator, kTaylorCount), tokens);
  EXPECT_EQ(accumulator.narrow(0, 0, kTaylorSum).abs().sum().item<double>(), 0);
  EXPECT_EQ(accumulator.narrow(0, kDeltaCountBegin, 2 * kDeltaBins).abs().sum().item<double>(), 0);
  EXPECT_TRUE(torch::allclose(accumulator, taylor_saliency_sums(c.x, y_ref, grad, keep, protect),
                              1e-14, 1e-14));
}

TEST(TokenEvolution, TaylorHookOnlyWhenTheOutputRequiresGradAndValuesStayPut) {
  const TaylorCase c;
  auto accumulator = torch::zeros({kEvolutionFields}, torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    EXPECT_FALSE(add_taylor_saliency_hook(c.x, c.block(), {}, 0, accumulator));
  }
  // Changing y in place after registering would make the saliency use the wrong values.
  auto y = c.block();
  auto z = y * 1;  // keep a graph from y to the loss
  ASSERT_TRUE(add_taylor_saliency_hook(c.x, y, {}, 0, accumulator));
  y.detach().mul_(2);
  EXPECT_THROW(c.loss(z).backward(), c10::Error);
  EXPECT_THROW(add_taylor_saliency_hook(c.x, c.block(), {}, 0, torch::zeros({3}, torch::kFloat64)),
               c10::Error);
}

TEST(TokenEvolutionMonitor, CollectsPerLayerSumsAndTaylorFromBackward) {
  const TaylorCase c;
  TokenEvolutionMonitor monitor(3, with_decay(0.9, /*taylor=*/true));
  const auto y = c.block();
  monitor.observe(1, c.x, y, {}, 0);
  const auto sums = monitor.step_sums();
  EXPECT_EQ(sums.sizes(), torch::IntArrayRef({3, kEvolutionFields}));
  EXPECT_EQ(sums[0].abs().sum().item<double>(), 0);
  EXPECT_EQ(field(sums[1], kTaylorCount), 0);
  c.loss(y).backward();
  EXPECT_EQ(field(sums[1], kTaylorCount), 10);
  const auto grad_free = block_evolution_sums(c.x, y, {}, 0);
  EXPECT_TRUE(torch::equal(sums[1].narrow(0, 0, kTaylorSum), grad_free.narrow(0, 0, kTaylorSum)));

  monitor.update(sums, 0);
  EXPECT_TRUE(monitor.observed(1));
  EXPECT_FALSE(monitor.observed(0));
  EXPECT_TRUE(monitor.taylor_observed(1));
  EXPECT_NEAR(monitor.taylor(1), field(sums[1], kTaylorSum), 1e-12);
  EXPECT_NEAR(monitor.taylor_per_token(1), field(sums[1], kTaylorSum) / 10, 1e-12);
  EXPECT_THROW(monitor.block_influence(0), c10::Error);          // never observed
  EXPECT_EQ(monitor.step_sums().abs().sum().item<double>(), 0);  // the next step starts empty

  // Without the option, no Taylor fields.
  TokenEvolutionMonitor plain(3);
  const auto y2 = c.block();
  plain.observe(1, c.x, y2, {}, 0);
  c.loss(y2).backward();
  EXPECT_EQ(field(plain.step_sums()[1], kTaylorCount), 0);
  plain.update(plain.step_sums(), 0);
  EXPECT_FALSE(plain.taylor_observed(1));
  EXPECT_THROW(plain.taylor(1), c10::Error);
}

TEST(TokenEvolutionMonitor, EmaStartsAtTheFirstValueAndSkipsUnobservedLayers) {
  TokenEvolutionMonitor monitor(2, with_decay(0.9));
  const auto x = torch::randn({2, 4, 8}, torch::kFloat64);
  const auto y1 = x + 0.5 * torch::randn({2, 4, 8}, torch::kFloat64);
  const auto y2 = x + 2.0 * torch::randn({2, 4, 8}, torch::kFloat64);
  monitor.observe(0, x, y1, {}, 0);
  monitor.observe(1, x, y1, {}, 0);
  const auto first = evolution_stats(monitor.step_sums()[0]);
  monitor.update(monitor.step_sums(), 1);
  EXPECT_DOUBLE_EQ(monitor.block_influence(0), first.block_influence);
  EXPECT_DOUBLE_EQ(monitor.relative_update(0), first.relative_update);
  EXPECT_DOUBLE_EQ(monitor.uniformity(0), first.uniformity);
  EXPECT_DOUBLE_EQ(monitor.last(0).block_influence, first.block_influence);

  monitor.observe(0, x, y2, {}, 0);  // layer 1 skipped this step
  const auto second = evolution_stats(monitor.step_sums()[0]);
  monitor.update(monitor.step_sums(), 2);
  EXPECT_NEAR(monitor.block_influence(0),
              0.9 * first.block_influence + 0.1 * second.block_influence, 1e-12);
  EXPECT_NEAR(monitor.relative_update(0),
              0.9 * first.relative_update + 0.1 * second.relative_update, 1e-12);
  EXPECT_NEAR(monitor.uniformity(0), 0.9 * first.uniformity + 0.1 * second.uniformity, 1e-12);
  EXPECT_DOUBLE_EQ(monitor.block_influence(1), first.block_influence);  // not observed: unchanged
  EXPECT_EQ(monitor.last(1).tokens, 0);
  EXPECT_TRUE(std::isnan(monitor.last(1).block_influence));
  // The EMA histogram gives M(k): shares and masses blended like the scalars.
  const auto ema = monitor.ema(0);
  for (int64_t b = 0; b < kDeltaBins; ++b) {
    EXPECT_NEAR(ema.delta_mass[b], 0.9 * first.delta_mass[b] + 0.1 * second.delta_mass[b], 1e-12);
  }
  EXPECT_NEAR(monitor.evolution_mass(0, 0.5), evolution_mass(ema.delta_share, ema.delta_mass, 0.5),
              1e-15);
  EXPECT_EQ(monitor.evolution_mass(0, 0), 0);
  EXPECT_NEAR(monitor.evolution_mass(0, 1), 1, 1e-12);
  EXPECT_EQ(monitor.updates(), 2);
  EXPECT_EQ(monitor.last_step(), 2);
  EXPECT_THROW(monitor.update(monitor.step_sums(), 2), c10::Error);  // same step twice
  EXPECT_THROW(monitor.update(torch::zeros({3, kEvolutionFields}, torch::kFloat64), 3), c10::Error);
  EXPECT_THROW(monitor.observe(2, x, y1, {}, 0), c10::Error);
  EXPECT_THROW(monitor.evolution_mass(0, 1.01), c10::Error);
  EXPECT_THROW(TokenEvolutionMonitor(2, with_decay(1.0)), c10::Error);
  EXPECT_THROW(TokenEvolutionMonitor(0), c10::Error);
}

TEST(TokenEvolutionMonitor, NonFiniteSumsAreNotObserved) {
  TokenEvolutionMonitor monitor(1, with_decay(0.5));
  const auto x = torch::randn({1, 4, 3}, torch::kFloat64);
  monitor.observe(0, x, x * 2, {}, 0);
  monitor.update(monitor.step_sums(), 0);
  const double before = monitor.block_influence(0);
  auto bad = torch::zeros({1, kEvolutionFields}, torch::kFloat64);
  bad[0][kTokenCount] = 4;
  bad[0][kCosineSum] = NAN;
  monitor.update(bad, 1);
  EXPECT_EQ(monitor.block_influence(0), before);
  EXPECT_EQ(monitor.non_finite(0), 1);
}

TEST(TokenEvolutionMonitor, DiscardedStepLeavesNoTrace) {
  TokenEvolutionMonitor monitor(1);
  const auto x = torch::randn({1, 4, 3});
  monitor.observe(0, x, x + 1, {}, 0);
  monitor.discard_step();
  EXPECT_EQ(monitor.step_sums().abs().sum().item<double>(), 0);
  monitor.update(monitor.step_sums(), 0);
  EXPECT_FALSE(monitor.observed(0));
}

TEST(TokenEvolutionMonitor, RanksSummedEqualOneRank) {
  // Two "ranks" observe half of the global batch each; their summed sums give the statistics of
  // one monitor that saw the whole batch (micro-batches accumulate the same way).
  torch::manual_seed(19);
  const auto x = torch::randn({6, 5, 8});
  const auto y = x + 0.4 * torch::randn({6, 5, 8});
  const auto keep = torch::rand({6, 5});
  TokenEvolutionMonitor whole(2), rank0(2), rank1(2), accumulated(2);
  for (int64_t layer = 0; layer < 2; ++layer) {
    whole.observe(layer, x, y, keep, 1);
    rank0.observe(layer, x.narrow(0, 0, 3), y.narrow(0, 0, 3), keep.narrow(0, 0, 3), 1);
    rank1.observe(layer, x.narrow(0, 3, 3), y.narrow(0, 3, 3), keep.narrow(0, 3, 3), 1);
    for (int64_t b = 0; b < 6; b += 2) {
      accumulated.observe(layer, x.narrow(0, b, 2), y.narrow(0, b, 2), keep.narrow(0, b, 2), 1);
    }
  }
  const auto reduced = rank0.step_sums() + rank1.step_sums();
  EXPECT_TRUE(torch::allclose(reduced, whole.step_sums(), 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(accumulated.step_sums(), whole.step_sums(), 1e-12, 1e-12));
  rank0.update(reduced, 0);
  whole.update(whole.step_sums(), 0);
  for (int64_t layer = 0; layer < 2; ++layer) {
    EXPECT_NEAR(rank0.block_influence(layer), whole.block_influence(layer), 1e-14);
    EXPECT_NEAR(rank0.uniformity(layer), whole.uniformity(layer), 1e-14);
    EXPECT_NEAR(rank0.evolution_mass(layer, 0.3), whole.evolution_mass(layer, 0.3), 1e-14);
  }
}

TEST(TokenEvolutionMonitor, StateRoundTripIsBitIdentical) {
  torch::manual_seed(23);
  TokenEvolutionMonitor monitor(3, with_decay(0.99));
  auto run_step = [](TokenEvolutionMonitor& m, int64_t step, const torch::Tensor& x,
                     const torch::Tensor& y) {
    m.observe(0, x, y, {}, 1);
    if (step % 2 == 0) m.observe(2, y, x, {}, 1);
    m.update(m.step_sums(), step);
  };
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches;
  for (int i = 0; i < 4; ++i) {
    const auto x = torch::randn({2, 6, 5});
    batches.push_back({x, x + torch::randn({2, 6, 5})});
  }
  run_step(monitor, 0, batches[0].first, batches[0].second);
  run_step(monitor, 1, batches[1].first, batches[1].second);

  TokenEvolutionMonitor restored(3, with_decay(0.99));
  restored.load_state(monitor.state());
  const auto saved = monitor.state();
  for (const auto& [name, tensor] : restored.state()) {
    EXPECT_TRUE(torch::equal(tensor, saved.at(name))) << name;
  }
  EXPECT_FALSE(restored.observed(1));
  EXPECT_EQ(restored.last_step(), 1);
  // Both continue identically.
  for (int64_t step = 2; step < 4; ++step) {
    run_step(monitor, step, batches[step].first, batches[step].second);
    run_step(restored, step, batches[step].first, batches[step].second);
  }
  for (const auto& [name, tensor] : restored.state()) {
    EXPECT_TRUE(torch::equal(tensor, monitor.state().at(name))) << name;
  }
  EXPECT_EQ(restored.block_influence(2), monitor.block_influence(2));

  // Clear errors for a state from another model or a damaged one.
  TokenEvolutionMonitor deeper(4);
  EXPECT_THROW(deeper.load_state(monitor.state()), c10::Error);
  auto missing = monitor.state();
  missing.erase("delta_mass");
  EXPECT_THROW(restored.load_state(missing), c10::Error);
  auto unknown = monitor.state();
  unknown["bogus"] = torch::zeros({1});
  EXPECT_THROW(restored.load_state(unknown), c10::Error);
  auto wrong_type = monitor.state();
  wrong_type["observations"] = wrong_type["observations"].to(torch::kFloat64);
  EXPECT_THROW(restored.load_state(wrong_type), c10::Error);
  try {
    deeper.load_state(monitor.state());
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("depth 4"), std::string::npos) << error.what();
  }
}
