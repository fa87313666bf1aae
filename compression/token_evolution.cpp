// Token-evolution accumulators of one block: cosines, relative updates, uniformity, δ histogram
// and Taylor saliency, as additive float64 sums.
#include "compression/token_evolution.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace winnow::compression {

namespace {

// Norms below this count as zero: a cosine with a zero vector is 0 (as in the criteria).
constexpr double kNormFloor = 1e-12;

static_assert(kCosineSum == kTokenCount + 1 && kRelativeUpdateSum == kCosineSum + 1 &&
                  kUniformitySum == kRelativeUpdateSum + 1 &&
                  kUniformitySamples == kUniformitySum + 1 &&
                  kTaylorSum == kUniformitySamples + 1 && kTaylorCount == kTaylorSum + 1 &&
                  kDeltaCountBegin == kTaylorCount + 1,
              "block_evolution_sums concatenates the fields in this order");

void check_block_pair(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& keep,
                      int64_t protected_count) {
  TORCH_CHECK(x.defined() && x.dim() == 3,
              "token evolution: expected the block input x [B, N, C], got ",
              x.defined() ? x.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(y.defined() && y.sizes() == x.sizes(),
              "token evolution: expected the block output y with the input's shape ", x.sizes(),
              ", got ", y.defined() ? y.sizes() : torch::IntArrayRef{},
              " (x and y must hold the same tokens)");
  TORCH_CHECK(x.is_floating_point() && y.is_floating_point(),
              "token evolution: expected floating-point x and y, got ", x.scalar_type(), " and ",
              y.scalar_type());
  TORCH_CHECK(y.device() == x.device(), "token evolution: x is on ", x.device(), ", y on ",
              y.device());
  TORCH_CHECK(protected_count >= 0 && protected_count <= x.size(1),
              "token evolution: expected 0 <= protected_count <= ", x.size(1), " tokens, got ",
              protected_count);
  if (keep.defined()) {
    TORCH_CHECK(keep.dim() == 2 && keep.size(0) == x.size(0) && keep.size(1) == x.size(1),
                "token evolution: expected keep [", x.size(0), ", ", x.size(1), "], got ",
                keep.sizes());
  }
}

// Reduced (float32 at least) copies of the non-protected tokens: [B, R, C], R = N − P.
torch::Tensor reducible(const torch::Tensor& t, int64_t protected_count) {
  auto part = t.detach().narrow(1, protected_count, t.size(1) - protected_count);
  if (part.scalar_type() == torch::kHalf || part.scalar_type() == torch::kBFloat16) {
    part = part.to(torch::kFloat);
  }
  return part;
}

// [B, R] bool: the tokens the statistics count (kept and not protected).
torch::Tensor counted_tokens(const torch::Tensor& x, const torch::Tensor& keep,
                             int64_t protected_count) {
  const int64_t counted = x.size(1) - protected_count;
  if (!keep.defined()) {
    return torch::ones({x.size(0), counted}, x.options().dtype(torch::kBool));
  }
  return keep.detach().narrow(1, protected_count, counted).gt(0.5).to(x.device());
}

}  // namespace

std::array<double, kDeltaBins + 1> delta_bin_edges() {
  std::array<double, kDeltaBins + 1> edges{};
  const double log_bins = static_cast<double>(kDeltaBins - 1);
  for (int64_t b = 1; b <= kDeltaBins; ++b) {
    edges[b] = kDeltaUnderflow * std::pow(kDeltaMax / kDeltaUnderflow, (b - 1) / log_bins);
  }
  edges[kDeltaBins] = kDeltaMax;
  return edges;
}

torch::Tensor block_evolution_sums(const torch::Tensor& x, const torch::Tensor& y,
                                   const torch::Tensor& keep, int64_t protected_count) {
  check_block_pair(x, y, keep, protected_count);
  torch::NoGradGuard no_grad;
  const auto input = reducible(x, protected_count);               // [B, R, C]
  const auto output = reducible(y, protected_count);              // [B, R, C]
  const auto counted = counted_tokens(x, keep, protected_count);  // [B, R] bool
  const auto f64 = torch::kFloat64;

  // Per-token norms and the dot product of the input with the update d = y − x, in the data's
  // precision with float64 from here on.
  const auto update = output - input;                                           // [B, R, C]
  const auto input_norm = torch::linalg_vector_norm(input, 2, {-1}).to(f64);    // [B, R]
  const auto output_norm = torch::linalg_vector_norm(output, 2, {-1}).to(f64);  // [B, R]
  const auto update_norm = torch::linalg_vector_norm(update, 2, {-1}).to(f64);  // [B, R]
  const auto input_dot_update = (input * update).sum(-1).to(f64);               // [B, R]
  const auto input_norm_safe = input_norm.clamp_min(kNormFloor);
  const auto output_norm_safe = output_norm.clamp_min(kNormFloor);

  // cos = x·y / (‖x‖‖y‖) with x·y = ‖x‖² + x·d. δ = 1 − cos cancels catastrophically for small
  // updates, so for cos ≥ 0 it is computed as sin²/(1 + cos), sin² = ‖d⊥‖²/‖y‖², from the part of
  // the update orthogonal to x: ‖d⊥‖² = ‖d‖² − (x·d)²/‖x‖² (error ~ machine ε · ‖d‖², not ‖x‖²).
  const auto direct_cos =
      (input_norm.square() + input_dot_update) / (input_norm_safe * output_norm_safe);
  const auto orthogonal =
      (update_norm.square() - input_dot_update.square() / input_norm_safe.square()).clamp_min(0);
  const auto sine_squared = (orthogonal / output_norm_safe.square()).clamp(0, 1);
  const auto delta = torch::where(direct_cos >= 0, sine_squared / (1 + direct_cos), 1 - direct_cos)
                         .clamp(0, kDeltaMax);                 // [B, R]
  const auto relative_update = update_norm / input_norm_safe;  // [B, R]

  const auto zero = torch::zeros({}, input_norm.options());
  const auto weight = counted.to(f64);  // [B, R]
  const auto token_sums = torch::stack({weight, torch::where(counted, 1 - delta, zero),
                                        torch::where(counted, relative_update, zero)},
                                       -1)
                              .sum(std::vector<int64_t>{0, 1});  // [3]: count, Σ cos, Σ r

  // Uniformity of the output per sample: ‖Σ ŷ‖² minus the self-similarities Σ ‖ŷ_i‖² (1, or 0 for
  // a zero token), over the pairs: the mean pairwise cosine, without the N × N matrix.
  const auto unit_weight = (weight / output_norm_safe).to(output.scalar_type());  // [B, R]
  const auto unit_sum = torch::bmm(unit_weight.unsqueeze(1), output).squeeze(1);  // [B, C]
  const auto unit_sum_squared = torch::linalg_vector_norm(unit_sum, 2, {-1}).to(f64).square();
  const auto self_similarity = (weight * (output_norm / output_norm_safe).square()).sum(1);  // [B]
  const auto sample_tokens = weight.sum(1);                                                  // [B]
  const auto has_pairs = sample_tokens >= 2;
  const auto pairs = (sample_tokens * (sample_tokens - 1)).clamp_min(1);
  const auto sample_uniformity = (unit_sum_squared - self_similarity) / pairs;  // [B]
  const auto uniformity_sums = torch::stack(
      {torch::where(has_pairs, sample_uniformity, zero).sum(), has_pairs.sum().to(f64)});

  // δ histogram: bin 0 below kDeltaUnderflow, then log-spaced; uncounted tokens go to a spare bin.
  const double bin_width =
      std::log(kDeltaMax / kDeltaUnderflow) / static_cast<double>(kDeltaBins - 1);
  auto bin =
      (1 + torch::floor(torch::log(delta.clamp_min(kDeltaUnderflow) / kDeltaUnderflow) / bin_width))
          .clamp(1, kDeltaBins - 1);
  bin = torch::where(delta < kDeltaUnderflow, zero, bin).nan_to_num(0);
  const auto bin_index =
      torch::where(counted, bin, torch::full({}, static_cast<double>(kDeltaBins), bin.options()))
          .to(torch::kInt64)
          .flatten();  // [B·R]
  const auto bin_values =
      torch::stack({weight, torch::where(counted, delta, zero)}, -1).view({-1, 2});  // [B·R, 2]
  const auto histogram = torch::zeros({kDeltaBins + 1, 2}, bin_values.options())
                             .index_add_(0, bin_index, bin_values)
                             .narrow(0, 0, kDeltaBins)
                             .t();  // [2, kDeltaBins]: counts, Σ δ

  const auto taylor_sums = torch::zeros({2}, token_sums.options());
  return torch::cat(std::vector<torch::Tensor>{token_sums, uniformity_sums, taylor_sums,
                                               histogram.reshape({-1})});
}

torch::Tensor taylor_saliency_sums(const torch::Tensor& x, const torch::Tensor& y,
                                   const torch::Tensor& grad, const torch::Tensor& keep,
                                   int64_t protected_count) {
  check_block_pair(x, y, keep, protected_count);
  TORCH_CHECK(grad.defined() && grad.sizes() == y.sizes(),
              "token evolution: expected the gradient ∂L/∂y with y's shape ", y.sizes(), ", got ",
              grad.defined() ? grad.sizes() : torch::IntArrayRef{});
  torch::NoGradGuard no_grad;
  const auto update = reducible(y, protected_count) - reducible(x, protected_count);  // [B, R, C]
  const auto gradient = reducible(grad, protected_count).to(update.scalar_type());    // [B, R, C]
  const auto counted = counted_tokens(x, keep, protected_count);                      // [B, R]
  const auto saliency = (gradient * update).sum(-1).to(torch::kFloat64).abs();        // [B, R] τ
  auto sums = torch::zeros({kEvolutionFields}, saliency.options());
  sums.narrow(0, kTaylorSum, 2)
      .copy_(torch::stack({torch::where(counted, saliency, torch::zeros_like(saliency)).sum(),
                           counted.sum().to(torch::kFloat64)}));
  return sums;
}

bool add_taylor_saliency_hook(const torch::Tensor& x, const torch::Tensor& y,
                              const torch::Tensor& keep, int64_t protected_count,
                              torch::Tensor accumulator) {
  check_block_pair(x, y, keep, protected_count);
  TORCH_CHECK(accumulator.defined() && accumulator.dim() == 1 &&
                  accumulator.size(0) == kEvolutionFields &&
                  accumulator.scalar_type() == torch::kFloat64,
              "token evolution: expected a float64 accumulator [", kEvolutionFields, "], got ",
              accumulator.defined() ? accumulator.sizes() : torch::IntArrayRef{});
  TORCH_CHECK(accumulator.device() == y.device(), "token evolution: the accumulator is on ",
              accumulator.device(), ", the block output on ", y.device());
  if (!y.requires_grad()) return false;
  // Detached views share the storage (and the version counter) but not y's autograd metadata,
  // where the hook itself lives: capturing y would make a reference cycle and leak the graph.
  auto input = x.detach();
  auto output = y.detach();
  auto kept = keep.defined() ? keep.detach() : torch::Tensor();
  const int64_t version = output._version();
  y.register_hook([input, output, kept, protected_count, accumulator,
                   version](const torch::Tensor& grad) {
    if (!grad.defined()) return;
    TORCH_CHECK(output._version() == version,
                "token evolution: a block output was modified in place after its Taylor saliency "
                "hook was registered; the saliency would use the wrong values");
    accumulator.add_(taylor_saliency_sums(input, output, grad, kept, protected_count));
  });
  return true;
}

double evolution_mass(const std::array<double, kDeltaBins>& counts,
                      const std::array<double, kDeltaBins>& masses, double share) {
  TORCH_CHECK(share >= 0 && share <= 1, "token evolution: expected a capacity in [0, 1], got ",
              share);
  double total_count = 0, total_mass = 0;
  for (int64_t b = 0; b < kDeltaBins; ++b) {
    total_count += counts[b];
    total_mass += masses[b];
  }
  if (!(total_mass > 0) || !(total_count > 0)) return share;
  double wanted = share * total_count;  // tokens still to take, highest δ first
  double taken = 0;
  for (int64_t b = kDeltaBins - 1; b >= 0 && wanted > 0; --b) {
    if (counts[b] <= 0) continue;
    const double part = std::min(wanted, counts[b]);
    taken += masses[b] * (part / counts[b]);
    wanted -= part;
  }
  return std::min(1.0, taken / total_mass);
}

double EvolutionStats::evolution_mass(double capacity) const {
  TORCH_CHECK(capacity >= 0 && capacity <= 1,
              "token evolution: expected a capacity in [0, 1], got ", capacity);
  // ⌈k·N⌉ tokens, as a router with capacity k keeps; the small slack stops 0.3·10 = 3.0000000004
  // from rounding up to 4.
  const double share = tokens > 0 ? std::ceil(capacity * tokens - 1e-9) / tokens : capacity;
  return compression::evolution_mass(delta_share, delta_mass, std::min(1.0, share));
}

EvolutionStats evolution_stats(const torch::Tensor& sums) {
  TORCH_CHECK(sums.defined() && sums.dim() == 1 && sums.size(0) == kEvolutionFields,
              "token evolution: expected accumulators [", kEvolutionFields, "], got ",
              sums.defined() ? sums.sizes() : torch::IntArrayRef{});
  const auto values = sums.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* v = values.data_ptr<double>();
  EvolutionStats stats;
  stats.tokens = v[kTokenCount];
  if (stats.tokens > 0) {
    stats.block_influence = 1 - v[kCosineSum] / stats.tokens;
    stats.relative_update = v[kRelativeUpdateSum] / stats.tokens;
    for (int64_t b = 0; b < kDeltaBins; ++b) {
      stats.delta_share[b] = v[kDeltaCountBegin + b] / stats.tokens;
      stats.delta_mass[b] = v[kDeltaMassBegin + b] / stats.tokens;
    }
  }
  stats.uniformity_samples = v[kUniformitySamples];
  if (stats.uniformity_samples > 0) {
    stats.uniformity = v[kUniformitySum] / stats.uniformity_samples;
  }
  stats.taylor_tokens = v[kTaylorCount];
  if (stats.taylor_tokens > 0) {
    stats.taylor = v[kTaylorSum];
    stats.taylor_per_token = v[kTaylorSum] / stats.taylor_tokens;
  }
  return stats;
}

}  // namespace winnow::compression
