// merge: ToMe's bipartite soft matching with size-weighted averaging (merge_wavg).
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// The result of matching: which A tokens (even indices) stay, which merge into which B token
// (odd indices). Indices are into A = tokens 0, 2, 4, ... and B = tokens 1, 3, 5, ...
struct BipartiteMatching {
  torch::Tensor unmerged;      // [B, ceil(N/2) - r] int64 A indices, in output order
  torch::Tensor sources;       // [B, r] int64 A indices merged away
  torch::Tensor destinations;  // [B, r] int64 B index each source merges into
  int64_t protected_count = 0;
};

// The most tokens ToMe merges in one step: (N − protected) / 2, rounded down.
int64_t merge_count_limit(int64_t tokens, int64_t protected_count);

// ToMe's bipartite_soft_matching (Bolya et al., ICLR 2023; facebookresearch/ToMe af95e4b,
// tome/merge.py), reimplemented from the algorithm (ToMe is CC-BY-NC):
//   r ← min(r, (N − P) / 2); m ← metric / ‖metric‖; A = m[0::2], B = m[1::2]; S = A Bᵀ;
//   protected tokens are never sources or destinations (rows of protected A tokens and columns
//   of protected B tokens are −inf; P = 1 is ToMe's class token, P = 2 adds its distill token);
//   each A token's best partner: (node_max, node_idx) = max over B; edges by descending node_max
//   (stable sort here; ToMe's argsort is unstable, identical without ties); the first r are merged;
//   the unmerged ones are sorted by index when P > 0 (ToMe sorts only with a class token).
// No gradient flows through the matching.
BipartiteMatching bipartite_soft_matching(const torch::Tensor& metric,  // [B, N, D]
                                          int64_t merge_count, int64_t protected_count);

// ToMe's merge_wavg: x' = merge_sum(x·size) / merge_sum(size), size' = merge_sum(size), in ToMe's
// output order [protected tokens in original order, other unmerged A tokens, other B tokens in
// original order] (for P ≤ 2 exactly ToMe's cat([unm, dst]) and its distill-token variant).
// A destination keeps its own position; keep merges by maximum. Gradients flow through x.
// With keep_order, the output is instead ordered by each output token's representative (an
// unmerged A token itself, or the destination B token), i.e. tokens stay in their current order.
TokenState merge_tokens(const TokenState& state, const BipartiteMatching& matching,
                        bool keep_order = false);

// For each token before the merge, the index of the token it became part of in merge_tokens'
// output: [B, N] int64. merged.x.gather(1, index) "unmerges" (ToMe's unmerge: every original
// token gets its group's value), and maps compose over layers: source ← destinations.gather(1,
// source) tracks each original token to its final slot (ToMe's trace_source, as an index map
// instead of an N × N adjacency matrix), e.g. to restore order for dense tasks.
torch::Tensor merge_destinations(const BipartiteMatching& matching, int64_t tokens,
                                 bool keep_order = false);

// merge: r = reducible − keep_count, capped at merge_count_limit; pairs with criterion
// 'similarity', whose metric it consumes; scores are not used. Option keep_order (see
// merge_tokens); ToMe's order by default.
class MergeStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string name() const override { return "merge"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.uses_scores = false;
    traits.needs_metric = true;
    traits.conserves_size = true;
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
