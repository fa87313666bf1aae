// prune: keep the top-k tokens, optionally fusing the dropped ones into one extra token (EViT).
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// prune: protected tokens, then the keep_count best-scoring reducible tokens in original order
// (so causal structure and position lookups stay intact).
// Options (EViT, Liang et al., ICLR 2022; youweiliang/evit 5ca95a7, evit.py Block.forward):
//   descending_order: kept tokens by descending score, EViT's topk(sorted=True) order;
//   fuse: append x_fused = Σ_{j dropped} s_j · x_j, weighted by the raw, unnormalised scores
//     exactly as EViT weights by CLS attention (so it needs scores_are_weights() criteria). The
//     fused token has position −1 (no original position), and size 1 and keep 1 where the state
//     carries them: EViT treats it as one ordinary token in later layers.
class PruneStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "prune"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.needs_score_weights = options_.fuse();
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
