// route: layer-wise token routing (random-LTD): a block runs on k tokens, the rest skip it.
#pragma once

#include "compression/strategy.h"

namespace winnow::compression {

// The tokens that run a block, and where they came from.
struct RoutedTokens {
  TokenState state;       // [B, P + K, C]: protected tokens and the K chosen, ascending order
  torch::Tensor indices;  // [B, P + K] int64: their indices in the full state, ascending
};

// random-LTD (Yao et al., 2022; microsoft/DeepSpeed 38327e0,
// deepspeed/runtime/data_pipeline/data_routing/{basic_layer,utils}.py,
// deepspeed/ops/random_ltd/dropping_utils.py): choose keep_count reducible tokens per sample
// (with criterion 'random' this is random-LTD's uniform draw without replacement), sort the
// indices ascending (token_sort_), gather. Positions travel with the tokens, so the block builds
// its causal mask from them; for sorted indices that equals random-LTD's top-left slice
// mask[:, :, :k, :k]. Protected tokens always run the block.
RoutedTokens route_gather(const TokenState& state,
                          const torch::Tensor& scores,  // [B, N]
                          int64_t keep_count);

// The full state after the block: full with the routed rows overwritten by processed.x (the
// others skipped the block and are unchanged); size, pos and keep are full's. Gradients follow
// random-LTD's GatherTokens/ScatterTokens: the routed rows get only the block path's gradient.
TokenState route_scatter(const TokenState& full,         // [B, N, C]
                         const TokenState& processed,    // [B, P + K, C]
                         const torch::Tensor& indices);  // [B, P + K] int64

// route as a Strategy: apply() is route_gather(...).state, the tokens that run the block
// (traits().wraps_block). The model keeps the full state and the indices around the block and calls
// route_scatter afterwards; use route_gather directly to get the indices.
class RouteStrategy : public Strategy {
 public:
  std::string name() const override { return "route"; }
  StrategyTraits traits() const override {
    StrategyTraits traits;
    traits.wraps_block = true;
    return traits;
  }
  int64_t output_tokens(int64_t tokens, int64_t protected_count, int64_t keep_count) const override;

 protected:
  TokenState reduce(const TokenState& state, const torch::Tensor& scores, int64_t keep_count,
                    const torch::Tensor& metric) const override;
};

}  // namespace winnow::compression
