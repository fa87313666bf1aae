// Keyed uniform token scores.
#include "compression/random_criterion.h"

#include "data/keyed_random.h"

namespace winnow::compression {
namespace {

// Separates token scores from every other keyed stream that hashes (seed, ...) tuples.
constexpr uint64_t kTokenScoreDomain = 0x746F6B656E73636FULL;  // "tokensco"

}  // namespace

torch::Tensor keyed_uniform_scores(uint64_t seed, int64_t step, int64_t layer,
                                   const torch::Tensor& sample_ids,
                                   const torch::Tensor& positions) {
  TORCH_CHECK(positions.dim() == 2, "random: expected positions [B, N], got ", positions.sizes());
  TORCH_CHECK(
      sample_ids.defined() && sample_ids.dim() == 1 && sample_ids.size(0) == positions.size(0),
      "random: expected ScoreContext::sample_ids [B] = [", positions.size(0), "], got ",
      sample_ids.defined() ? sample_ids.sizes() : torch::IntArrayRef{});
  const auto ids = sample_ids.to(torch::kCPU, torch::kInt64).contiguous();
  const auto pos = positions.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t batch = pos.size(0), tokens = pos.size(1);
  auto scores = torch::empty({batch, tokens}, torch::dtype(torch::kFloat64));
  const auto id = ids.accessor<int64_t, 1>();
  const auto p = pos.accessor<int64_t, 2>();
  auto out = scores.accessor<double, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    const uint64_t sample_key =
        data::hash_keys({kTokenScoreDomain, seed, static_cast<uint64_t>(step),
                         static_cast<uint64_t>(layer), static_cast<uint64_t>(id[b])});
    for (int64_t n = 0; n < tokens; ++n) {
      out[b][n] =
          data::unit_interval(data::hash_keys({sample_key, static_cast<uint64_t>(p[b][n])}));
    }
  }
  return scores.to(positions.device());
}

torch::Tensor RandomCriterion::score(const TokenState& state, const ScoreContext& context) const {
  return keyed_uniform_scores(context.seed, context.step, context.layer, context.sample_ids,
                              state.positions());
}

}  // namespace winnow::compression
