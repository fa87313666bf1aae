// random: keyed uniform scores, a pure function of (seed, step, layer, sample id, position).
#pragma once

#include "compression/criterion.h"

namespace winnow::compression {

// Uniform scores in [0, 1) (float64, so ties are practically impossible) keyed on
// (seed, step, layer, global sample id, original token position) through data::hash_keys. Taking
// the top k is then a uniform random subset without replacement, drawn afresh per layer, step and
// sample, as random-LTD draws it (Yao et al. 2022), but reproducible: N ranks ≡ 1 rank, and a
// resumed run draws the same without saved generator state. Keys are hashed on the host (B·N
// hashes) and the scores moved to the state's device.
class RandomCriterion : public Criterion {
 public:
  std::string name() const override { return "random"; }
  torch::Tensor score(const TokenState& state, const ScoreContext& context) const override;
};

// The keyed scores themselves: [B, N] float64 on positions' device.
torch::Tensor keyed_uniform_scores(uint64_t seed, int64_t step, int64_t layer,
                                   const torch::Tensor& sample_ids,  // [B] int64
                                   const torch::Tensor& positions);  // [B, N] int64

}  // namespace winnow::compression
